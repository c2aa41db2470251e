"""Every finding the probe produces, shown and not shown, against real TLS servers on loopback.

Each case generates its certificates, serves them from a Python TLS server in
the exact order given, probes it with ``check_endpoint`` (a real TCP + TLS
handshake) at the frozen ``now``, and checks which finding codes come back.
For every code there is at least one case that must show it and one (near the
boundary where that makes sense) that must not: :func:`test_every_code_has_both_cases`
keeps the table honest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.codes import ANALYSIS_CODES, ERROR_CODES
from tests.support.hostile import BacklogFull, GarbageServer, SilentServer
from tests.support.pki import PKI, Hierarchy, Issued, generate_key, hierarchy
from tests.support.tls_server import TLSServer

from certpager.config import Backend, Endpoint, Settings, Thresholds
from certpager.lab.ports import free_port
from certpager.probe.engine import check_endpoint, check_endpoints
from certpager.probe.handshake import ClientOptions, handshake
from certpager.probe.model import NO_CHECKS, EndpointReport, Severity, Status

TRUST_CHAIN_CODES = {"untrusted_root", "self_signed", "chain_incomplete", "chain_invalid"}


@dataclass
class World:
    """What a case may build from: the factory, the trusted hierarchy, an unrelated one."""

    pki: PKI
    ca: Hierarchy
    other: Hierarchy
    cache: dict[str, object] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], object]) -> object:
        """Build a shared object once per session (e.g. a second-level hierarchy)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


@dataclass
class Case:
    """One served chain and what the probe must (not) report."""

    id: str
    chain: Callable[[World], Sequence[Issued]]
    shows: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    sni: str | None = "app.test"
    trust: str = "ca"  # "ca": the hierarchy's root; "other": an unrelated root; "self": the leaf itself
    severities: dict[str, Severity] = field(default_factory=dict)
    bug: str | None = None
    """A known bug in src: the case is a strict xfail with this reason."""


def _case(
    id: str,
    chain: Callable[[World], Sequence[Issued]],
    shows: Sequence[str] = (),
    absent: Sequence[str] = (),
    **kw: object,
) -> Case:
    return Case(id, chain, frozenset(shows), frozenset(absent), **kw)  # type: ignore[arg-type]


def _two_level(w: World) -> tuple[Issued, Issued]:
    """root -> I1 -> I2 (two intermediates), shared per session."""

    def make() -> tuple[Issued, Issued]:
        i1 = w.ca.root.intermediate("Level One CA")
        i2 = i1.intermediate("Level Two CA")
        return i1, i2

    return w.once("two_level", make)  # type: ignore[return-value]


def _sha1_root(w: World) -> tuple[Issued, Issued, Path]:
    """A root self-signed with SHA-1 (its own signature must not count), an intermediate."""

    def make() -> tuple[Issued, Issued, Path]:
        root = w.pki.root("SHA1 Self-Signed Root", hash="sha1")
        inter = root.intermediate("Under SHA1 Root CA")
        return root, inter, w.pki.write_pem("sha1-root.pem", root)

    return w.once("sha1_root", make)  # type: ignore[return-value]


def _leaf(w: World, **kw: object) -> Issued:
    kw.setdefault("sans", ["app.test", "*.wild.test", "127.0.0.1", "::1"])
    return w.ca.leaf("app.test", **kw)  # type: ignore[arg-type]


def _full(**kw: object) -> Callable[[World], Sequence[Issued]]:
    return lambda w: [_leaf(w, **kw), w.ca.intermediate]


def _extra_expiring_tomorrow(w: World) -> Sequence[Issued]:
    unrelated = w.other.intermediate.leaf("unrelated.test", not_before=-89, not_after=1)
    return [_leaf(w), w.ca.intermediate, unrelated]


def _expired_cross_sign(w: World) -> Sequence[Issued]:
    # The DST Root CA X3 story: the server still sends an old cross-sign of its root that
    # expired; clients that trust the root itself never use it.
    cross = w.other.root.cross_sign(w.ca.root, not_before=-800, not_after=-30)
    return [_leaf(w), w.ca.intermediate, cross]


def _cross_sign_tomorrow(w: World) -> Sequence[Issued]:
    cross = w.other.root.cross_sign(w.ca.root, not_before=-800, not_after=1)
    return [_leaf(w), w.ca.intermediate, cross]


def _forged(w: World) -> Sequence[Issued]:
    forged = w.ca.intermediate.leaf("app.test", signing_key=generate_key("rsa2048"))
    return [forged, w.ca.intermediate]


def _not_a_ca(w: World) -> Sequence[Issued]:
    not_ca = w.ca.root.issue("Not A CA", ca=False, key="rsa2048", server_auth=False)
    return [not_ca.leaf("app.test"), not_ca]


def _expired_intermediate(w: World) -> Sequence[Issued]:
    inter = w.ca.root.intermediate("Expired Intermediate CA", not_before=-400, not_after=-1)
    return [inter.leaf("app.test"), inter]


def _short_intermediate(days: float) -> Callable[[World], Sequence[Issued]]:
    def build(w: World) -> Sequence[Issued]:
        inter = w.ca.root.intermediate(f"Short Intermediate {days} CA", not_after=days)
        return [inter.leaf("app.test", not_after=80), inter]

    return build


def _sha1_intermediate(w: World) -> Sequence[Issued]:
    inter = w.ca.root.intermediate("SHA1 Signed Intermediate CA", hash="sha1")
    return [inter.leaf("app.test"), inter]


def _weak_intermediate(w: World) -> Sequence[Issued]:
    inter = w.ca.root.intermediate("RSA1024 Intermediate CA", key="rsa1024")
    return [inter.leaf("app.test"), inter]


def _under_sha1_root(w: World) -> Sequence[Issued]:
    _root, inter, _file = _sha1_root(w)
    return [inter.leaf("app.test"), inter]


def _under_sha1_root_sent(w: World) -> Sequence[Issued]:
    root, inter, _file = _sha1_root(w)
    return [inter.leaf("app.test"), inter, root]


CASES: list[Case] = [
    # -- the healthy baseline: shows nothing at all
    _case("healthy", _full(), absent=ANALYSIS_CODES + ERROR_CODES),
    # -- cert_expired
    _case(
        "expired",
        _full(not_before=-91, not_after=-1),
        ["cert_expired"],
        ["expires_soon", "cert_not_yet_valid"],
    ),
    _case("expires-in-12-hours", _full(not_before=-89, not_after=0.5), ["expires_soon"], ["cert_expired"]),
    # -- cert_not_yet_valid
    _case("not-yet-valid", _full(not_before=1, not_after=90), ["cert_not_yet_valid"], ["cert_expired"]),
    _case("valid-since-2-hours", _full(not_before=-0.1, not_after=90), absent=["cert_not_yet_valid"]),
    # -- expires_soon, by threshold (renewal_overdue may ride along: lifetime is long here)
    _case(
        "expires-in-10-days",
        _full(not_before=-355, not_after=10),
        ["expires_soon"],
        ["cert_expired"],
        severities={"expires_soon": Severity.WARNING},
    ),
    _case(
        "expires-in-5-days",
        _full(not_before=-355, not_after=5),
        ["expires_soon"],
        severities={"expires_soon": Severity.CRITICAL},
    ),
    _case(
        "expires-in-2-days",
        _full(not_before=-355, not_after=2),
        ["expires_soon"],
        severities={"expires_soon": Severity.PAGE},
    ),
    _case(
        "expires-in-20-days", _full(not_before=-10, not_after=20), absent=["expires_soon", "renewal_overdue"]
    ),
    # -- renewal_overdue: under a third of the lifetime left, above the day thresholds
    _case(
        "renewal-overdue",
        _full(not_before=-65, not_after=25),
        ["renewal_overdue"],
        ["expires_soon"],
        severities={"renewal_overdue": Severity.WARNING},
    ),
    _case("renewal-on-time", _full(not_before=-55, not_after=35), absent=["renewal_overdue", "expires_soon"]),
    # -- chain_expires_before_leaf (severity rises with the thresholds)
    _case(
        "intermediate-expires-in-20-days",
        _short_intermediate(20),
        ["chain_expires_before_leaf"],
        ["expires_soon", "chain_cert_expired"],
        severities={"chain_expires_before_leaf": Severity.WARNING},
    ),
    _case(
        "intermediate-expires-in-5-days",
        _short_intermediate(5),
        ["chain_expires_before_leaf"],
        severities={"chain_expires_before_leaf": Severity.CRITICAL},
    ),
    _case(
        "intermediate-expires-in-2-days",
        _short_intermediate(2),
        ["chain_expires_before_leaf"],
        severities={"chain_expires_before_leaf": Severity.PAGE},
    ),
    # -- chain_cert_expired
    _case(
        "expired-intermediate",
        _expired_intermediate,
        ["chain_cert_expired"],
        ["cert_expired", "chain_expires_before_leaf"],
        severities={"chain_cert_expired": Severity.PAGE},
    ),
    # -- the root or an unrelated extra certificate never drives the expiry
    _case(
        "extra-cert-expiring-tomorrow",
        _extra_expiring_tomorrow,
        ["chain_extra_cert"],
        [
            "expires_soon",
            "chain_expires_before_leaf",
            "chain_cert_expired",
            "renewal_overdue",
            "cert_expired",
        ],
    ),
    _case(
        "expired-cross-signed-root-sent",
        _expired_cross_sign,
        ["chain_extra_cert"],
        ["chain_cert_expired", "chain_expires_before_leaf", "untrusted_root", "cert_expired"],
    ),
    _case(
        "cross-signed-root-expiring-tomorrow-sent",
        _cross_sign_tomorrow,
        ["chain_extra_cert"],
        ["chain_expires_before_leaf", "expires_soon", "chain_cert_expired"],
    ),
    # -- hostname_mismatch
    _case("wrong-name", _full(), ["hostname_mismatch"], sni="other.test"),
    _case(
        "cn-only-no-san",
        lambda w: [w.ca.leaf("app.test", sans=[]), w.ca.intermediate],
        ["hostname_mismatch"],
    ),
    _case("wildcard-one-label", _full(), absent=["hostname_mismatch"], sni="x.wild.test"),
    _case("wildcard-two-labels", _full(), ["hostname_mismatch"], sni="a.b.wild.test"),
    _case("wildcard-bare-domain", _full(), ["hostname_mismatch"], sni="wild.test"),
    _case("name-case-and-trailing-dot", _full(), absent=["hostname_mismatch"], sni="APP.Test."),
    _case("ip-in-san-no-sni", _full(), absent=["hostname_mismatch"], sni=None),
    _case(
        "ip-not-in-san-no-sni",
        lambda w: [_leaf(w, sans=["app.test"]), w.ca.intermediate],
        ["hostname_mismatch"],
        sni=None,
    ),
    # -- untrusted_root
    _case(
        "untrusted-root",
        _full(),
        ["untrusted_root"],
        ["chain_incomplete", "self_signed"],
        trust="other",
    ),
    _case(
        "untrusted-root-sent",
        lambda w: [_leaf(w), w.ca.intermediate, w.ca.root],
        ["untrusted_root", "chain_root_sent"],
        ["chain_incomplete", "self_signed"],
        trust="other",
    ),
    # -- self_signed
    _case(
        "self-signed",
        lambda w: [w.pki.self_signed("app.test")],
        ["self_signed"],
        ["untrusted_root", "chain_incomplete"],
    ),
    _case(
        "self-signed-but-trusted",
        lambda w: [w.pki.self_signed("app.test")],
        absent=["self_signed", "untrusted_root", "chain_incomplete"],
        trust="self",
    ),
    # -- chain_incomplete
    _case(
        "leaf-only",
        lambda w: [_leaf(w)],
        ["chain_incomplete"],
        ["untrusted_root", "self_signed", "chain_invalid"],
        severities={"chain_incomplete": Severity.CRITICAL},
    ),
    # -- chain_invalid
    _case("forged-signature", _forged, ["chain_invalid"], ["chain_incomplete", "self_signed"]),
    _case("intermediate-not-a-ca", _not_a_ca, ["chain_invalid"], ["chain_incomplete"]),
    # -- chain_wrong_order
    _case(
        "two-intermediates-swapped",
        lambda w: [_two_level(w)[1].leaf("app.test"), *_two_level(w)],
        ["chain_wrong_order"],
        ["chain_extra_cert", "chain_incomplete"],
    ),
    _case(
        "two-intermediates-in-order",
        lambda w: [_two_level(w)[1].leaf("app.test"), _two_level(w)[1], _two_level(w)[0]],
        absent=["chain_wrong_order", "chain_extra_cert"],
    ),
    _case(
        "root-before-intermediate",
        lambda w: [_leaf(w), w.ca.root, w.ca.intermediate],
        ["chain_wrong_order", "chain_root_sent"],
    ),
    # -- chain_extra_cert
    _case(
        "duplicate-intermediate",
        lambda w: [_leaf(w), w.ca.intermediate, w.ca.intermediate],
        ["chain_extra_cert"],
        ["chain_wrong_order"],
    ),
    # -- chain_root_sent
    _case(
        "root-sent",
        lambda w: [_leaf(w), w.ca.intermediate, w.ca.root],
        ["chain_root_sent"],
        ["chain_wrong_order", "chain_extra_cert", "untrusted_root"],
    ),
    # -- weak_key
    _case("leaf-rsa-1024", _full(key="rsa1024"), ["weak_key"]),
    # (EC P-224 has no TLS 1.2/1.3 signature scheme: no client completes a handshake with it,
    # so it is covered by the pure-analysis tests instead.)
    _case("intermediate-rsa-1024", _weak_intermediate, ["weak_key"]),
    _case("leaf-rsa-2048", _full(key="rsa2048"), absent=["weak_key"]),
    _case("leaf-ec-p256", _full(key="ec256"), absent=["weak_key"]),
    _case("leaf-ec-p384", _full(key="ec384"), absent=["weak_key"]),
    # -- weak_signature
    _case("leaf-sha1", _full(hash="sha1"), ["weak_signature"]),
    _case("leaf-md5", _full(hash="md5"), ["weak_signature"]),
    _case("intermediate-sha1", _sha1_intermediate, ["weak_signature"]),
    _case("leaf-sha384", _full(hash="sha384"), absent=["weak_signature"]),
    _case("root-self-signed-with-sha1", _under_sha1_root, absent=["weak_signature"], trust="sha1root"),
    _case(
        "root-self-signed-with-sha1-sent",
        _under_sha1_root_sent,
        ["chain_root_sent"],
        ["weak_signature"],
        trust="sha1root",
    ),
    _case(
        "root-self-signed-with-sha1-not-sent", _under_sha1_root, absent=["chain_root_sent"], trust="sha1root"
    ),
]


@pytest.fixture(scope="module")
def world(pki: PKI, ca: Hierarchy, other_ca: Hierarchy) -> World:
    return World(pki, ca, other_ca)


def _trust_file(world: World, case: Case, chain: Sequence[Issued]) -> Path:
    if case.trust == "ca":
        return world.ca.root_file
    if case.trust == "other":
        return world.other.root_file
    if case.trust == "self":
        return world.pki.write_pem(f"{case.id}-trust.pem", chain[0])
    if case.trust == "sha1root":
        return _sha1_root(world)[2]
    raise AssertionError(case.trust)


def endpoint(
    port: int,
    *,
    sni: str | None = "app.test",
    ca_file: Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = 5.0,
    name: str = "ep",
    **kw: object,
) -> Endpoint:
    """An endpoint on loopback; ``sni=None`` sends none and verifies the IP."""
    return Endpoint(
        name=name,
        host=host,
        port=port,
        sni=sni,
        ca_file=str(ca_file) if ca_file else None,
        timeout=timeout,
        **kw,  # type: ignore[arg-type]
    )


async def probe_main(endpoint: Endpoint, **kw: object) -> EndpointReport:
    """The main handshakes and their analysis only (``checks=NO_CHECKS``): the deeper checks
    (protocol versions, no-SNI certificate, HTTP, AIA) open more connections and add
    findings of their own, which are not what these tests are about."""
    return await check_endpoint(endpoint, checks=NO_CHECKS, **kw)  # type: ignore[arg-type]


def codes(report: EndpointReport) -> set[str]:
    return {f.code for f in report.findings}


async def _probe_case(world: World, case: Case, serve: Callable[..., TLSServer], now: dt.datetime):
    chain = list(case.chain(world))
    chain_file, key_file = world.pki.write_chain(case.id, chain, key_of=chain[0])
    server = serve(chain_file, key_file)
    ep = endpoint(server.port, sni=case.sni, ca_file=_trust_file(world, case, chain))
    report = await probe_main(ep, now=now)
    return chain, report


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
        for c in CASES
    ],
)
async def test_finding(world: World, case: Case, serve: Callable[..., TLSServer], now: dt.datetime) -> None:
    chain, report = await _probe_case(world, case, serve, now)
    got = codes(report)
    backend = report.backends[0]
    assert backend.handshake.ok, backend.handshake.error
    # The probe saw the chain exactly as the server sent it.
    assert backend.handshake.chain_der == tuple(c.der for c in chain)
    missing = case.shows - got
    unexpected = case.absent & got
    detail = "\n".join(f"  {f.code} [{f.severity.label}]: {f.message}" for f in report.findings)
    assert not missing, f"expected {sorted(missing)}; got:\n{detail}"
    assert not unexpected, f"must not show {sorted(unexpected)}; got:\n{detail}"
    for code, severity in case.severities.items():
        (finding,) = [f for f in report.findings if f.code == code]
        assert finding.severity == severity, f"{code}: {finding.severity.label} != {severity.label}"
    for f in report.findings:
        assert f.message and "\n" not in f.message
        assert f.hint, f"{f.code} has no fix hint"


def test_every_code_has_both_cases() -> None:
    shown = set().union(*(c.shows for c in CASES if not c.bug))
    absent = set().union(*(c.absent for c in CASES if not c.bug))
    assert set(ANALYSIS_CODES) <= shown, set(ANALYSIS_CODES) - shown
    assert set(ANALYSIS_CODES) <= absent, set(ANALYSIS_CODES) - absent


async def test_healthy_reports_ok_with_facts(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    case = CASES[0]
    chain, report = await _probe_case(world, case, serve, now)
    assert report.status is Status.OK
    assert report.findings == ()
    backend = report.backends[0]
    hs = backend.handshake
    assert hs.tls_version == "TLSv1.3"
    assert hs.cipher
    assert hs.timings.connect_ms is not None and hs.timings.handshake_ms is not None
    analysis = backend.analysis
    assert analysis is not None and analysis.trusted and analysis.hostname_ok
    assert [c.sha256 for c in analysis.verified_path] == [
        chain[0].sha256,
        world.ca.intermediate.sha256,
        world.ca.root.sha256,
    ]
    assert report.days_left(now) == pytest.approx((chain[0].not_after - now).total_seconds() / 86400)


async def test_healthy_with_deep_checks_is_ok(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """With every deeper check on (the default), a healthy TLS 1.3 server stays ok:
    whatever they add is at most informational."""
    chain_file, key_file = world.pki.write_chain("healthy-deep", [_leaf(world), world.ca.intermediate])
    server = serve(chain_file, key_file)
    report = await check_endpoint(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    assert report.status is Status.OK, [(f.code, f.severity.label, f.message) for f in report.findings]
    assert not codes(report) & set(ANALYSIS_CODES + ERROR_CODES)


async def test_leaf_and_path_expiry_are_separate_facts(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    inter = world.ca.root.intermediate("Separate Facts CA", not_after=30)
    leaf = inter.leaf("app.test", not_before=-10, not_after=80)
    chain_file, key_file = world.pki.write_chain("separate", [leaf, inter])
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    analysis = report.backends[0].analysis
    assert analysis is not None
    assert analysis.leaf_not_after == leaf.not_after
    assert analysis.chain_not_after == inter.not_after
    assert report.days_left(now) == pytest.approx(80)
    assert {"chain_expires_before_leaf"} == codes(report)


@pytest.mark.parametrize("builder", [_extra_expiring_tomorrow, _cross_sign_tomorrow, _expired_cross_sign])
async def test_unused_extra_cert_never_drives_expiry(
    world: World,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
    builder: Callable[[World], Sequence[Issued]],
) -> None:
    chain = list(builder(world))
    chain_file, key_file = world.pki.write_chain(f"extra-{builder.__name__}", chain)
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    analysis = report.backends[0].analysis
    assert analysis is not None and analysis.trusted
    extra = chain[-1]
    assert extra.sha256 not in {c.sha256 for c in analysis.verified_path}
    expected = min(chain[0].not_after, world.ca.intermediate.not_after, world.ca.root.not_after)
    assert analysis.chain_not_after == expected
    assert analysis.leaf_not_after == chain[0].not_after
    assert codes(report) == {"chain_extra_cert"}
    assert report.status is Status.OK


async def test_root_sent_is_in_path_but_does_not_shorten_expiry(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    leaf = _leaf(world)
    chain_file, key_file = world.pki.write_chain(
        "root-sent-expiry", [leaf, world.ca.intermediate, world.ca.root]
    )
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    analysis = report.backends[0].analysis
    assert analysis is not None
    assert analysis.chain_not_after == leaf.not_after  # root and intermediate outlive the leaf
    assert codes(report) == {"chain_root_sent"}


async def test_per_endpoint_thresholds(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    leaf = _leaf(world, not_before=-340, not_after=25)
    chain_file, key_file = world.pki.write_chain("thresholds", [leaf, world.ca.intermediate])
    server = serve(chain_file, key_file)
    default = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    assert "expires_soon" not in codes(default)
    strict = await probe_main(
        endpoint(server.port, ca_file=world.ca.root_file, thresholds=Thresholds(30, 20, 10)), now=now
    )
    (finding,) = [f for f in strict.findings if f.code == "expires_soon"]
    assert finding.severity is Severity.WARNING


async def test_status_is_worst_severity(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    # expired leaf (page) + leaf only (critical) + root missing: page wins.
    leaf = _leaf(world, not_before=-91, not_after=-1)
    chain_file, key_file = world.pki.write_chain("worst", [leaf])
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    assert {"cert_expired", "chain_incomplete"} <= codes(report)
    assert report.status is Status.PAGE
    assert report.findings[0].severity is Severity.PAGE  # worst first


async def test_system_store_leaf_only_private_ca(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """Against the system store, a private CA's chain is distrusted, never silently ok."""
    chain_file, key_file = world.pki.write_chain("system", [_leaf(world), world.ca.intermediate])
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port), now=now)
    assert "untrusted_root" in codes(report)
    assert any("system trust store" in f.message for f in report.findings)


async def test_chain_incomplete_message_is_plain_words(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    chain_file, key_file = world.pki.write_chain("incomplete-words", [_leaf(world)])
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    (finding,) = [f for f in report.findings if f.code == "chain_incomplete"]
    assert "did not send the intermediate" in finding.message
    assert "Intermediate CA" in finding.message
    assert "full chain" in finding.hint.lower() or "fullchain" in finding.hint


async def test_hostname_mismatch_cn_only_says_why(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    chain_file, key_file = world.pki.write_chain(
        "cn-only-words", [world.ca.leaf("app.test", sans=[]), world.ca.intermediate]
    )
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, ca_file=world.ca.root_file), now=now)
    (finding,) = [f for f in report.findings if f.code == "hostname_mismatch"]
    assert "subjectAltName" in finding.message and "CN=app.test" in finding.message


async def test_ip_target_needs_an_ip_san_not_a_dns_name(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    leaf = world.ca.leaf("app.test", sans=["app.test", "DNS:127.0.0.1"])
    chain_file, key_file = world.pki.write_chain("dns-ip", [leaf, world.ca.intermediate])
    server = serve(chain_file, key_file)
    report = await probe_main(endpoint(server.port, sni=None, ca_file=world.ca.root_file), now=now)
    assert "hostname_mismatch" in codes(report)


# --- error findings: shown, and not shown ------------------------------------------


@pytest.fixture
def healthy_server(world: World, serve: Callable[..., TLSServer]) -> TLSServer:
    chain_file, key_file = world.pki.write_chain("healthy-errors", [_leaf(world), world.ca.intermediate])
    return serve(chain_file, key_file)


async def test_no_error_codes_on_healthy(world: World, healthy_server: TLSServer, now: dt.datetime) -> None:
    report = await probe_main(endpoint(healthy_server.port, ca_file=world.ca.root_file), now=now)
    assert not codes(report) & set(ERROR_CODES)
    assert report.error is None


async def test_connect_refused(now: dt.datetime) -> None:
    report = await probe_main(endpoint(free_port(), timeout=3), now=now)
    assert codes(report) == {"connect_refused"}
    assert report.status is Status.ERROR
    assert "refused" in (report.error or "")


async def test_connect_failed_unreachable(now: dt.datetime) -> None:
    # The kernel refuses a TCP connect to the broadcast address at once: no packet leaves.
    report = await probe_main(endpoint(443, host="255.255.255.255", sni="app.test", timeout=3), now=now)
    assert codes(report) == {"connect_failed"}
    assert report.status is Status.ERROR


async def test_connect_timeout_when_syns_are_dropped(now: dt.datetime) -> None:
    with BacklogFull() as blackhole:
        if not blackhole.connect_blocks():
            pytest.fail("precondition: a full accept queue should hold new connects on Linux loopback")
        loop = asyncio.get_running_loop()
        start = loop.time()
        report = await probe_main(endpoint(blackhole.port, timeout=2), now=now)
        elapsed = loop.time() - start
    assert codes(report) == {"connect_timeout"}
    assert elapsed < 2 + 1


async def test_dns_error(now: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake(host: object, *args: object, **kw: object) -> object:
        if host == "nxdomain.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    report = await probe_main(endpoint(443, host="nxdomain.test", sni=None, timeout=3), now=now)
    assert codes(report) == {"dns_error"}
    assert "does not resolve" in (report.error or "")


async def test_dns_timeout_is_dns_error(now: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    import threading

    release = threading.Event()

    def stuck(host: object, *args: object, **kw: object) -> object:
        if host == "slow.test":
            release.wait(5)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        report = await probe_main(
            endpoint(443, host="slow.test", sni=None, timeout=3), settings=Settings(dns_timeout=1), now=now
        )
    finally:
        release.set()
    assert loop.time() - start < 1 + 1
    assert codes(report) == {"dns_error"}


async def test_dns_resolves_locally_no_error(
    world: World, healthy_server: TLSServer, now: dt.datetime
) -> None:
    report = await probe_main(
        endpoint(healthy_server.port, host="localhost", sni="app.test", ca_file=world.ca.root_file), now=now
    )
    assert "dns_error" not in codes(report)
    assert report.status is Status.OK


async def test_handshake_failed_alert_in_words(world: World, serve: Callable[..., TLSServer]) -> None:
    chain_file, key_file = world.pki.write_chain("tls13only", [_leaf(world), world.ca.intermediate])
    server = serve(chain_file, key_file, min_version="TLSv1.3")
    hs = await handshake(
        "127.0.0.1", server.port, "app.test", timeout=3, options=ClientOptions(max_version="TLSv1.2")
    )
    assert hs.error_code == "handshake_failed"
    assert "protocol version" in (hs.error or "")
    ok = await handshake("127.0.0.1", server.port, "app.test", timeout=3)
    assert ok.error_code is None and ok.tls_version == "TLSv1.3"


async def test_handshake_failure_alert_in_plain_words(world: World, serve: Callable[..., TLSServer]) -> None:
    chain_file, key_file = world.pki.write_chain("no-common-suite", [_leaf(world), world.ca.intermediate])
    server = serve(chain_file, key_file, max_version="TLSv1.2", ciphers="ECDHE-ECDSA-AES128-SHA")
    hs = await handshake(
        "127.0.0.1",
        server.port,
        "app.test",
        timeout=3,
        options=ClientOptions(max_version="TLSv1.2", ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"),
    )
    assert hs.error_code == "handshake_failed"
    assert "handshake failure" in (hs.error or "")  # the alert itself is named
    assert "refused the handshake" in (hs.error or ""), hs.error


async def test_handshake_failed_not_tls(now: dt.datetime, zoo: Callable[..., object]) -> None:
    garbage = zoo(GarbageServer())
    report = await probe_main(endpoint(garbage.port, timeout=3), now=now)  # type: ignore[attr-defined]
    assert codes(report) == {"handshake_failed"}


async def test_handshake_timeout(now: dt.datetime, zoo: Callable[..., object]) -> None:
    silent = zoo(SilentServer())
    report = await probe_main(endpoint(silent.port, timeout=1.5), now=now)  # type: ignore[attr-defined]
    assert codes(report) == {"handshake_timeout"}


async def test_timeout_message_names_the_configured_deadline(
    now: dt.datetime, zoo: Callable[..., object]
) -> None:
    silent = zoo(SilentServer())
    report = await probe_main(endpoint(silent.port, timeout=1.5), now=now)  # type: ignore[attr-defined]
    assert "within 1.5 s" in (report.error or ""), report.error


# --- every address, explicit backends ----------------------------------------------


@pytest.fixture
def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_every_resolved_address_is_probed(
    world: World,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
    ipv6_loopback: bool,
) -> None:
    """A name with several A/AAAA records: each address gets its own handshake, with the same SNI,
    and a finding seen on only some addresses names them."""
    good_file, good_key = world.pki.write_chain("multi-good", [_leaf(world), world.ca.intermediate])
    stale = _leaf(world, not_before=-91, not_after=-1)
    stale_file, stale_key = world.pki.write_chain("multi-stale", [stale, world.ca.intermediate])
    first = serve(good_file, good_key, host="127.0.0.1")
    port = first.port
    addresses = ["127.0.0.1", "127.0.0.2"] + (["::1"] if ipv6_loopback else [])
    serve(stale_file, stale_key, host="127.0.0.2", port=port)
    if ipv6_loopback:
        serve(good_file, good_key, host="::1", port=port)
    real = socket.getaddrinfo

    def fake(host: object, p: object, *args: object, **kw: object) -> object:
        if host == "multi.test":
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, p))
                for a in reversed(addresses)
            ]
        return real(host, p, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    report = await probe_main(
        endpoint(port, host="multi.test", sni=None, ca_file=world.ca.root_file), now=now
    )
    probed = [b.handshake.address for b in report.backends]
    assert sorted(probed) == sorted(addresses)
    assert probed == sorted(probed, key=lambda a: ":" in a)  # IPv4 first
    assert all(b.handshake.sni == "multi.test" for b in report.backends)
    assert all(b.handshake.ok for b in report.backends)
    expired = [f for f in report.findings if f.code == "cert_expired"]
    assert len(expired) == 1 and expired[0].backends == (f"127.0.0.2:{port}",)
    assert report.status is Status.PAGE
    # the name mismatch (SANs do not hold multi.test) is on every backend: no backend list
    mismatch = [f for f in report.findings if f.code == "hostname_mismatch"]
    assert mismatch and mismatch[0].backends == ()


async def test_explicit_backends_each_get_a_result(
    world: World, serve: Callable[..., TLSServer], now: dt.datetime, ipv6_loopback: bool
) -> None:
    good_file, good_key = world.pki.write_chain("backends-good", [_leaf(world), world.ca.intermediate])
    leaf_only_file, leaf_only_key = world.pki.write_chain("backends-leaf", [_leaf(world)])
    a = serve(good_file, good_key)
    b = serve(leaf_only_file, leaf_only_key, host="127.0.0.2")
    backends = [Backend("127.0.0.1", a.port), Backend("127.0.0.2", b.port), Backend("127.0.0.1", free_port())]
    if ipv6_loopback:
        c = serve(good_file, good_key, host="::1")
        backends.append(Backend("::1", c.port))
    ep = endpoint(443, host="app.test", sni=None, ca_file=world.ca.root_file, backends=tuple(backends))
    report = await probe_main(ep, now=now)
    assert len(report.backends) == len(backends)
    assert [(r.handshake.address, r.handshake.port) for r in report.backends] == [
        (x.host, x.port) for x in backends
    ]
    assert all(r.handshake.sni == "app.test" for r in report.backends)
    by_code = {f.code: f for f in report.findings}
    assert by_code["chain_incomplete"].backends == (f"127.0.0.2:{b.port}",)
    assert by_code["connect_refused"].backends == (f"127.0.0.1:{backends[2].port}",)
    assert report.status is Status.ERROR or report.status is Status.CRITICAL
    assert report.primary is not None and report.primary.handshake.ok


async def test_check_endpoints_keeps_order_and_bounds_concurrency(
    world: World, healthy_server: TLSServer, now: dt.datetime
) -> None:
    eps = [endpoint(healthy_server.port, ca_file=world.ca.root_file, name=f"ep{i}") for i in range(12)] + [
        endpoint(free_port(), name="refused")
    ]
    reports = await check_endpoints(eps, settings=Settings(), concurrency=3, now=now)
    assert [r.name for r in reports] == [e.name for e in eps]
    assert all(r.status is Status.OK for r in reports[:-1])
    assert reports[-1].status is Status.ERROR


async def test_every_probe_is_a_fresh_handshake(
    world: World, healthy_server: TLSServer, now: dt.datetime
) -> None:
    ep = endpoint(healthy_server.port, ca_file=world.ca.root_file)
    for _ in range(3):
        await probe_main(ep, now=now)
    # The server thread counts a handshake after it completes on its side, which may be a
    # moment after the client is done: wait (bounded) for its bookkeeping, never for more.
    for _ in range(100):
        if healthy_server.handshakes >= 3:
            break
        await asyncio.sleep(0.02)
    assert healthy_server.handshakes == 3
    assert healthy_server.accepted == 3


async def test_hierarchy_helper_is_isolated(pki: PKI) -> None:
    """Two hierarchies never trust each other (guards the fixtures themselves)."""
    a = hierarchy(pki, "Iso A")
    b = hierarchy(pki, "Iso B")
    assert a.root.sha256 != b.root.sha256
    assert a.root_file.read_bytes() != b.root_file.read_bytes()
