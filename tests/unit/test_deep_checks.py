"""The deeper checks' pure parts: suite classification, what the main handshake
proves, pins, backends, client-auth states, AIA payloads, config keys and the CLI
switches. No network."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from tests.support.pki import PKI, Hierarchy, hierarchy

from certpager.__main__ import main
from certpager.config import Endpoint, HttpCheck, Settings, Thresholds, load_config, parse_target
from certpager.errors import ConfigError
from certpager.probe import deep
from certpager.probe.aia import AiaError, AiaResult, parse_certificates
from certpager.probe.analysis import analyze_chain, parse_cert
from certpager.probe.engine import build_report, with_backends
from certpager.probe.model import (
    BackendFacts,
    BackendResult,
    ClientAuthResult,
    EndpointFacts,
    Finding,
    Handshake,
    Severity,
)
from certpager.probe.protocols import (
    ProtocolReport,
    can_offer,
    known_from_main,
    merge_versions,
    static_rsa_suites,
    suite_weaknesses,
)
from certpager.probe.trust import TrustStore

# --- suites and versions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cipher", "weak"),
    [
        ("TLS_AES_128_GCM_SHA256", ()),
        ("TLS_CHACHA20_POLY1305_SHA256", ()),
        ("ECDHE-RSA-AES128-GCM-SHA256", ()),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", ()),
        ("DHE-RSA-AES256-CCM", ()),
        ("ECDHE-RSA-AES128-SHA", ("no AEAD (CBC mode)",)),
        ("AES128-GCM-SHA256", ("no forward secrecy (static RSA key exchange)",)),
        ("AES256-SHA", ("no forward secrecy (static RSA key exchange)", "no AEAD (CBC mode)")),
        (
            "DES-CBC3-SHA",
            (
                "64-bit block cipher (3DES/DES)",
                "no forward secrecy (static RSA key exchange)",
                "no AEAD (CBC mode)",
            ),
        ),
        ("ECDHE-RSA-RC4-SHA", ("RC4 stream cipher", "no AEAD (CBC mode)")),
        ("NULL-SHA256", ("no encryption (NULL cipher)", "no forward secrecy (static RSA key exchange)")),
        ("ADH-AES128-GCM-SHA256", ("anonymous key exchange (no server authentication)",)),
    ],
)
def test_suite_weaknesses(cipher: str, weak: tuple[str, ...]) -> None:
    assert suite_weaknesses(cipher) == weak


def test_static_rsa_offer_has_only_static_rsa() -> None:
    suites = static_rsa_suites().split(":")
    assert suites[-1] == "@SECLEVEL=0"
    assert "AES128-GCM-SHA256" in suites and "AES256-SHA" in suites
    assert not [s for s in suites[:-1] if s.startswith(("ECDHE", "DHE", "TLS_")) or "NULL" in s or "PSK" in s]


def test_can_offer() -> None:
    assert can_offer("TLSv1") and can_offer("TLSv1.1") and can_offer("TLSv1.3")
    assert not can_offer("SSLv3")  # this OpenSSL build; the report says "not_testable"


def test_known_from_main() -> None:
    hs = Handshake("127.0.0.1", 443, "a.test", tls_version="TLSv1.1", cipher="ECDHE-RSA-AES128-SHA")
    versions, notes = known_from_main(hs)
    assert versions == {
        "SSLv3": "not_testable",
        "TLSv1": "not_tested",
        "TLSv1.1": "accepted",
        "TLSv1.2": "refused",
        "TLSv1.3": "refused",
    }
    assert "ECDHE-RSA-AES128-SHA" in notes["TLSv1.1"]
    assert (
        known_from_main(Handshake("127.0.0.1", 443, None, error_code="connect_refused"))[0]["TLSv1"]
        == "not_tested"
    )


def test_merge_versions_accepted_anywhere_wins() -> None:
    a = ProtocolReport(
        versions={
            "SSLv3": "not_testable",
            "TLSv1": "refused",
            "TLSv1.1": "refused",
            "TLSv1.2": "accepted",
            "TLSv1.3": "accepted",
        }
    )
    b = ProtocolReport(
        versions={
            "SSLv3": "not_testable",
            "TLSv1": "accepted",
            "TLSv1.1": "inconclusive",
            "TLSv1.2": "accepted",
            "TLSv1.3": "refused",
        }
    )
    merged = merge_versions([a, b])
    assert merged == {
        "SSLv3": "not_testable",
        "TLSv1": "accepted",
        "TLSv1.1": "inconclusive",
        "TLSv1.2": "accepted",
        "TLSv1.3": "accepted",
    }
    assert a.accepted() == ["TLSv1.2", "TLSv1.3"]


# --- pins, backends, client auth on analysed chains ---------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[PKI, Hierarchy, TrustStore, dt.datetime]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pki = PKI(now, tmp_path_factory.mktemp("deep-unit"))
    h = hierarchy(pki, "Deep Unit")
    return pki, h, TrustStore.from_pem("test", h.root.pem), now


def _backend(world, leaf, port: int = 443, **hs_kw) -> BackendResult:  # type: ignore[no-untyped-def]
    _pki, h, trust, now = world
    chain = (leaf.der, h.intermediate.der)
    hs = Handshake(
        "127.0.0.1",
        port,
        "app.test",
        chain_der=chain,
        tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        **hs_kw,
    )
    analysis = analyze_chain(chain, "app.test", now, trust, Thresholds())
    return BackendResult(handshake=hs, analysis=analysis, findings=analysis.findings)


def test_pin_check(world) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, _now = world
    leaf = h.leaf("app.test")
    b = _backend(world, leaf)
    leaf_pin = parse_cert(leaf.der).spki_pin
    inter_pin = parse_cert(h.intermediate.der).spki_pin
    root_pin = parse_cert(h.root.der).spki_pin
    assert deep.pin_check(b, (inter_pin,))[0] == []
    found, facts = deep.pin_check(b, (leaf_pin,))
    assert [f.code for f in found] == ["pin_rotation_risk"] and inter_pin in found[0].message
    assert deep.pin_check(b, (root_pin,))[0] == []
    found, facts = deep.pin_check(b, ("sha256/" + "A" * 43 + "=",))
    assert [(f.code, f.severity) for f in found] == [("pin_mismatch", Severity.CRITICAL)]
    assert facts["pins"]["state"] == "mismatch"  # type: ignore[index]


def test_backends_check_and_spki_pins(world) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, now = world
    old = h.leaf("app.test", not_before=-50)
    new = h.leaf("app.test", not_before=-2)
    same = deep.backends_check(build_report(_ep(), [_backend(world, new, 1), _backend(world, new, 2)], now))
    assert same[0] == [] and same[1]["backends_agree"] is True
    report = build_report(_ep(), [_backend(world, new, 1), _backend(world, old, 2)], now)
    found, facts = deep.backends_check(report)
    (finding,) = found
    assert finding.code == "backends_disagree" and finding.backends == ("127.0.0.1:2",)
    assert facts["backends_agree"] is False
    pins = deep.spki_pins(report)
    assert [p["role"] for p in pins] == ["leaf", "intermediate", "root"]
    assert [p["sent"] for p in pins] == [True, True, False]


def _ep(**kw: object) -> Endpoint:
    return Endpoint(name="e", host="127.0.0.1", sni="app.test", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "error", "cert", "state"),
    [
        (False, None, None, "not_requested"),
        (True, None, None, "optional"),
        (True, "alert certificate required", None, "required"),
        (True, None, "c.pem", "accepted"),
        (True, "alert bad certificate", "c.pem", "rejected"),
    ],
)
def test_client_auth_state(world, requested: bool, error: str | None, cert: str | None, state: str) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, _now = world
    b = _backend(world, h.leaf("app.test"), client_cert_requested=requested, client_auth_error=error)
    ep = _ep(client_cert=cert, client_key="k.pem" if cert else None)
    assert deep.client_auth_state(b, ep) == state


def test_every_deep_check_has_an_implementation() -> None:
    assert set(deep.CHECKS) == set(deep.DeepCheck)


def test_no_sni_findings_and_facts(world) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, _now = world
    other = parse_cert(h.leaf("default.test").der)
    differs = deep.NoSniResult("differs", cert=other)
    (finding,) = deep.no_sni_findings(differs, "app.test")
    assert finding.code == "no_sni_cert_differs"
    assert "default.test" in finding.message and "it does not cover app.test" in finding.message
    assert differs.as_json()["certificate"]["sans"] == ["default.test"]  # type: ignore[index]
    covered = deep.no_sni_findings(deep.NoSniResult("differs", cert=other), "default.test")
    assert "does not cover" not in covered[0].message
    assert deep.no_sni_findings(deep.NoSniResult("same", cert=other), "app.test") == ()
    refused = deep.NoSniResult("refused", error="alert unrecognized name")
    assert deep.no_sni_findings(refused, "app.test") == ()
    assert refused.as_json() == {"state": "refused", "error": "alert unrecognized name"}


def test_with_backends_keeps_earlier_endpoint_findings(world) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, now = world
    report = build_report(_ep(), [_backend(world, h.leaf("app.test"))], now)
    earlier = Finding("served_not_stored", Severity.CRITICAL, "stale", "reload")
    from certpager.probe.engine import with_findings

    report = with_findings(report, [earlier])
    added = Finding("hsts_missing", Severity.WARNING, "no header", "add it")
    refined = with_backends(report, report.backends, [added], EndpointFacts(error="fact"))
    assert earlier in refined.findings and added in refined.findings
    assert refined.status.value == "critical" and refined.deep.as_json()["deep_checks_error"] == "fact"


def test_facts_only_refinement_equals_the_full_re_merge(world) -> None:  # type: ignore[no-untyped-def]
    """deep_checks skips re-merging the backends' findings when none changed; that must
    give exactly what with_backends gives (order and labels of findings included)."""
    from dataclasses import replace

    from certpager.probe.engine import with_findings

    _pki, h, _trust, now = world
    backends = [
        _backend(world, h.leaf("app.test", not_after=2), 1),  # expires soon on one backend
        _backend(world, h.leaf("app.test"), 2),
        _backend(world, h.leaf("other.test"), 3),  # hostname mismatch on another
    ]
    report = build_report(_ep(), backends, now)
    report = with_findings(report, [Finding("served_not_stored", Severity.WARNING, "stale", "reload")])
    added = [
        Finding("hsts_missing", Severity.WARNING, "no header", "add it"),
        Finding("sslv3", Severity.CRITICAL, "old", "off"),
    ]
    not_requested = BackendFacts(client_auth=ClientAuthResult("not_requested"))
    refined = [replace(b, deep=not_requested) for b in report.backends]
    full = with_backends(report, refined, added, EndpointFacts(error="fact"))
    fast = with_findings(replace(report, backends=tuple(refined)), added, EndpointFacts(error="fact"))
    assert len({f.code for f in full.findings}) >= 4
    assert fast == full


# --- AIA payloads ------------------------------------------------------------------------


def test_parse_certificates_formats(world) -> None:  # type: ignore[no-untyped-def]
    _pki, h, _trust, _now = world
    cert = h.intermediate
    assert parse_certificates(cert.der) == ((cert.der,), "DER")
    assert parse_certificates(b"\n" + cert.pem) == ((cert.der,), "PEM")
    p7 = pkcs7.serialize_certificates([cert.cert, h.root.cert], Encoding.DER)
    ders, fmt = parse_certificates(p7)
    assert fmt == "PKCS7" and set(ders) == {cert.der, h.root.der}
    p7pem = pkcs7.serialize_certificates([cert.cert], Encoding.PEM)
    assert parse_certificates(p7pem) == ((cert.der,), "PKCS7")
    with pytest.raises(AiaError, match="not a certificate"):
        parse_certificates(b"<html>hello</html>")
    with pytest.raises(AiaError):
        parse_certificates(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_aia_sentences() -> None:
    assert (
        "no client can build a path" in AiaResult("fetch_failed", ("http://x/",), detail="refused").sentence()
    )
    assert "no http caIssuers URL" in AiaResult("no_url").sentence()


# --- config keys ----------------------------------------------------------------------------


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    return load_config(path)


def test_config_deep_keys(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "settings:\n  check_protocols: false\n  check_http: false\n"
        "endpoints:\n"
        "  - {name: a, host: a.test}\n"
        "  - {name: b, host: b.test, check_protocols: true, check_no_sni: false, fetch_aia: false, http: true}\n"
        "  - {name: c, host: c.test, port: 8443, http: {port: 8080, hsts_min_days: 365}}\n",
    )
    a, b, c = config.endpoints
    assert (a.check_protocols, a.check_no_sni, a.fetch_aia, a.http) == (False, True, True, None)
    assert (b.check_protocols, b.check_no_sni, b.fetch_aia, b.http) == (True, False, False, HttpCheck())
    assert c.http == HttpCheck(port=8080, hsts_min_days=365)


def test_config_http_defaults_follow_the_port(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "endpoints:\n  - {name: web, host: w.test}\n  - {name: api, host: a.test, port: 8443}\n"
        "  - {name: none, host: o.test, http: false}\n",
    )
    web, api, off = config.endpoints
    assert web.http == HttpCheck() and api.http is None and off.http is None


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        (
            "endpoints:\n  - name: a\n    host: a.test\n    check_no_sni: maybe\n",
            4,
            "endpoints[0].check_no_sni",
        ),
        ("endpoints:\n  - name: a\n    host: a.test\n    fetch_aia: 1\n", 4, "endpoints[0].fetch_aia"),
        ("settings:\n  check_http: yes please\nendpoints: []\n", 2, "settings.check_http"),
        ("endpoints:\n  - name: a\n    host: a.test\n    http: {port: 0}\n", 4, "endpoints[0].http.port"),
        ("endpoints:\n  - name: a\n    host: a.test\n    http: {prot: 80}\n", 4, "endpoints[0].http.prot"),
    ],
)
def test_config_deep_key_mistakes(tmp_path: Path, text: str, line: int, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.line == line and info.value.key == key, str(info.value)


def test_targets_get_http_checks_on_443_only() -> None:
    assert parse_target("a.test").http == HttpCheck()
    assert parse_target("a.test:8443").http is None
    assert parse_target("a.test", Settings(check_http=False, check_protocols=False)).check_protocols is False


# --- CLI switches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--client-cert", "{cert}"], "--client-cert and --client-key go together"),
        (["--client-cert", "/nope.pem", "--client-key", "{key}"], "--client-cert: /nope.pem: file not found"),
        (["--client-cert", "{key}", "--client-key", "{key}"], "holds no readable PEM certificate"),
        (["--client-cert", "{cert}", "--client-key", "{cert}"], "holds no readable PEM private key"),
        (["--client-cert", "{cert}", "--client-key", "{other_key}"], "is not the private key of"),
        (["--http-port", "0"], "is not a port number"),
        (["--http-port", "http"], "is not a port number"),
    ],
)
def test_cli_bad_switches_exit_3(
    world,
    args: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    pki, h, _trust, _now = world
    leaf = h.leaf("client", server_auth=False)
    cert, key = pki.write_chain("cli-client", [leaf], key_of=leaf)
    other = h.leaf("other", server_auth=False)
    other_key = pki.write_key("cli-other.key", other)
    argv = [a.format(cert=cert, key=key, other_key=other_key) for a in args]
    try:
        code = main(["check", "127.0.0.1:1", *argv])
    except SystemExit as exc:  # argparse errors exit 3 through the parser
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 3, err
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_switches_shape_the_endpoints(world) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from certpager import commands
    from certpager.check import cli as cli_check

    pki, h, _trust, _now = world
    leaf = h.leaf("client", server_auth=False)
    cert, key = pki.write_chain("cli-client2", [leaf], key_of=leaf)
    parser = argparse.ArgumentParser()
    parser.set_defaults(config=None)
    commands.configure_check(parser)
    args = parser.parse_args(
        ["a.test:8443", "b.test", "--http-port", "8080", "--client-cert", str(cert), "--client-key", str(key)]
    )
    (a, b), _settings = cli_check.gather_endpoints(args)
    assert a.http == HttpCheck(port=8080) and b.http == HttpCheck(port=8080)
    assert a.client_cert == str(cert.resolve()) and a.client_key == str(key.resolve())
    args = parser.parse_args(["b.test", "--no-http", "--no-protocols", "--no-sni-check", "--no-aia"])
    ((b,), _settings) = cli_check.gather_endpoints(args)
    assert (b.http, b.check_protocols, b.check_no_sni, b.fetch_aia) == (None, False, False, False)
