"""The analysis as pure functions of (chain DER as sent, hostname, time, trust store, thresholds).

No network: certificates come from the factory in ``tests/support/pki.py``. The same
findings are proven against live servers in ``tests/integration/test_probe_findings.py``;
here the edges (exact thresholds, time travel, unparseable input, P-224 keys that no
TLS stack will serve) are cheap to reach.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.support.pki import PKI, Hierarchy, Issued, generate_key

from certpager.config import Thresholds
from certpager.probe.analysis import (
    CertParseError,
    analyze_chain,
    expiry_findings,
    parse_cert,
    raw_names,
    threshold_severity,
)
from certpager.probe.model import ChainAnalysis, Severity
from certpager.probe.trust import TrustStore

DEFAULT = Thresholds()


@pytest.fixture(scope="module")
def trust(ca: Hierarchy) -> TrustStore:
    return TrustStore.from_file(ca.root_file)


def analyze(
    chain: Sequence[Issued | bytes],
    trust: TrustStore,
    now: dt.datetime,
    host: str = "app.test",
    thresholds: Thresholds = DEFAULT,
) -> ChainAnalysis:
    ders = [c if isinstance(c, bytes) else c.der for c in chain]
    return analyze_chain(ders, host, now, trust, thresholds)


def codes(result: ChainAnalysis) -> set[str]:
    return {f.code for f in result.findings}


def severity(result: ChainAnalysis, code: str) -> Severity:
    (finding,) = [f for f in result.findings if f.code == code]
    return finding.severity


# --- parse_cert ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "desc", "key_type", "bits"),
    [
        ("rsa1024", "RSA 1024", "RSA", 1024),
        ("rsa2048", "RSA 2048", "RSA", 2048),
        ("ec224", "EC secp224r1", "EC", 224),
        ("ec256", "EC P-256", "EC", 256),
        ("ec384", "EC P-384", "EC", 384),
    ],
)
def test_parse_cert_keys(ca: Hierarchy, key: str, desc: str, key_type: str, bits: int) -> None:
    info = parse_cert(ca.leaf("app.test", key=key).der)
    assert (info.key_type, info.key_bits) == (key_type, bits)
    if key != "ec224":
        assert info.key_desc == desc
    else:
        assert info.key_desc.startswith("EC ")


@pytest.mark.parametrize(
    ("hash", "algorithm"),
    [
        ("sha256", "sha256WithRSAEncryption"),
        ("sha384", "sha384WithRSAEncryption"),
        ("sha1", "sha1WithRSAEncryption"),
        ("md5", "md5WithRSAEncryption"),
    ],
)
def test_parse_cert_signatures(ca: Hierarchy, hash: str, algorithm: str) -> None:
    info = parse_cert(ca.leaf("app.test", hash=hash).der)
    assert info.signature_hash == hash
    assert info.signature_algorithm == algorithm


def test_parse_cert_facts(ca: Hierarchy, now: dt.datetime) -> None:
    leaf = ca.leaf(
        "app.test",
        sans=["app.test", "*.app.test", "10.1.2.3", "::1"],
        not_before=-10,
        not_after=80,
        aia_ca_issuers="http://ca.invalid/inter.der",
    )
    info = parse_cert(leaf.der)
    assert info.subject == "CN=app.test,O=certpager tests"
    assert info.issuer == ca.intermediate.subject
    assert info.common_name == "app.test"
    assert set(info.sans) == {"app.test", "*.app.test", "10.1.2.3", "::1"}
    serial = leaf.cert.serial_number
    assert (
        info.serial == serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex().upper()
    )  # openssl's form
    assert info.sha256 == hashlib.sha256(leaf.der).hexdigest() == leaf.sha256
    assert info.not_before == now - dt.timedelta(days=10)
    assert info.not_after == now + dt.timedelta(days=80)
    assert info.lifetime_days == pytest.approx(90)
    assert info.days_left(now) == pytest.approx(80)
    assert info.ca_issuers == ("http://ca.invalid/inter.der",)
    assert not info.is_ca and not info.self_issued and not info.self_signed
    assert info.spki_pin.startswith("sha256/") and len(info.spki_pin) == len("sha256/") + 44
    assert info.der == leaf.der


def test_parse_cert_cn_only(ca: Hierarchy) -> None:
    info = parse_cert(ca.leaf("app.test", sans=[]).der)
    assert info.sans == () and info.common_name == "app.test"


@pytest.mark.parametrize("hash", ["sha256", "sha1", "md5"])
def test_roots_are_self_signed_whatever_their_hash(pki: PKI, hash: str) -> None:
    info = parse_cert(pki.root(f"Root {hash}", hash=hash).der)
    assert info.is_ca and info.self_issued and info.self_signed


def test_cross_sign_is_self_issued_name_but_not_self_signed(ca: Hierarchy, other_ca: Hierarchy) -> None:
    cross = other_ca.root.cross_sign(ca.root)
    info = parse_cert(cross.der)
    assert info.subject == ca.root.subject and info.issuer == other_ca.root.subject
    assert not info.self_signed and info.is_ca


def test_parse_cert_rejects_garbage() -> None:
    with pytest.raises(CertParseError):
        parse_cert(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CertParseError):
        parse_cert(b"not a certificate")


# --- thresholds and expiry --------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (100, None),
        (14.001, None),
        (14, Severity.WARNING),
        (7.001, Severity.WARNING),
        (7, Severity.CRITICAL),
        (3.001, Severity.CRITICAL),
        (3, Severity.PAGE),
        (0.01, Severity.PAGE),
        (-5, Severity.PAGE),
    ],
)
def test_threshold_severity(days: float, expected: Severity | None) -> None:
    assert threshold_severity(days, DEFAULT) == expected


def test_threshold_severity_custom() -> None:
    assert threshold_severity(25, Thresholds(30, 20, 10)) == Severity.WARNING
    assert threshold_severity(15, Thresholds(30, 20, 10)) == Severity.CRITICAL
    assert threshold_severity(25, DEFAULT) is None


def test_expiry_is_a_function_of_time(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    """One chain judged at different instants: nothing, overdue, soon, expired."""
    leaf = ca.leaf("app.test", not_before=-10, not_after=80)  # 90-day lifetime
    chain = [leaf, ca.intermediate]
    assert codes(analyze(chain, trust, now)) == set()
    assert codes(analyze(chain, trust, now + dt.timedelta(days=55))) == {"renewal_overdue"}
    later = analyze(chain, trust, now + dt.timedelta(days=70))
    assert codes(later) == {"renewal_overdue", "expires_soon"}
    assert severity(later, "expires_soon") is Severity.WARNING
    assert severity(analyze(chain, trust, now + dt.timedelta(days=78)), "expires_soon") is Severity.PAGE
    expired = analyze(chain, trust, now + dt.timedelta(days=80, seconds=1))
    assert codes(expired) == {"cert_expired"}
    assert severity(expired, "cert_expired") is Severity.PAGE
    early = analyze(chain, trust, now - dt.timedelta(days=11))
    assert codes(early) == {"cert_not_yet_valid"}
    assert severity(early, "cert_not_yet_valid") is Severity.CRITICAL


def test_renewal_overdue_boundary(ca: Hierarchy, now: dt.datetime) -> None:
    info = parse_cert(ca.leaf("app.test", not_before=-60, not_after=30).der)  # exactly 1/3 left
    assert "renewal_overdue" not in {f.code for f in expiry_findings(info, now, DEFAULT)}
    later = now + dt.timedelta(seconds=60)
    assert "renewal_overdue" in {f.code for f in expiry_findings(info, later, DEFAULT)}


def test_expiry_messages_are_plain(ca: Hierarchy, now: dt.datetime) -> None:
    info = parse_cert(ca.leaf("app.test", not_before=-89, not_after=0.25).der)
    (soon, overdue) = sorted(expiry_findings(info, now, DEFAULT), key=lambda f: f.code)
    assert soon.code == "expires_soon" and "6.0 hours" in soon.message
    assert "UTC" in soon.message
    assert overdue.code == "renewal_overdue" and "89-day lifetime" in overdue.message


def test_expired_leaf_is_not_also_expiring(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    result = analyze([ca.leaf("app.test", not_before=-100, not_after=-0.5), ca.intermediate], trust, now)
    assert codes(result) == {"cert_expired"}
    assert "12.0 hours ago" in result.findings[0].message


# --- the chain ------------------------------------------------------------------------------


def test_verified_path_and_separate_expiry_facts(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    inter = ca.root.intermediate("Facts CA", not_after=40)
    leaf = inter.leaf("app.test", not_after=80)
    result = analyze([leaf, inter], trust, now)
    assert result.trusted and result.verify_error is None and result.hostname_ok
    assert [c.sha256 for c in result.verified_path] == [leaf.sha256, inter.sha256, ca.root.sha256]
    assert result.leaf_not_after == leaf.not_after
    assert result.chain_not_after == inter.not_after
    assert codes(result) == {"chain_expires_before_leaf"}
    assert severity(result, "chain_expires_before_leaf") is Severity.WARNING


@pytest.mark.parametrize(
    ("days", "expected"),
    [(30, Severity.WARNING), (10, Severity.WARNING), (5, Severity.CRITICAL), (1, Severity.PAGE)],
)
def test_chain_expires_before_leaf_severity_rises(
    ca: Hierarchy, trust: TrustStore, now: dt.datetime, days: float, expected: Severity
) -> None:
    inter = ca.root.intermediate(f"Rising {days} CA", not_after=days)
    result = analyze([inter.leaf("app.test", not_after=80), inter], trust, now)
    assert severity(result, "chain_expires_before_leaf") is expected


def test_extra_and_cross_signed_certs_never_drive_expiry(
    ca: Hierarchy, other_ca: Hierarchy, trust: TrustStore, now: dt.datetime
) -> None:
    leaf = ca.leaf("app.test", not_after=80)
    unrelated = other_ca.intermediate.leaf("unrelated.test", not_before=-89, not_after=0.5)
    old_cross = other_ca.root.cross_sign(ca.root, not_before=-900, not_after=-10)
    result = analyze([leaf, ca.intermediate, unrelated, old_cross], trust, now)
    assert result.trusted
    assert result.chain_not_after == leaf.not_after
    assert codes(result) == {"chain_extra_cert"}
    (finding,) = result.findings
    assert "#3" in finding.message and "#4" in finding.message and "not part of the path" in finding.message


def test_duplicates_are_extra(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    leaf = ca.leaf("app.test")
    result = analyze([leaf, ca.intermediate, ca.intermediate, leaf], trust, now)
    assert codes(result) == {"chain_extra_cert"}
    assert result.findings[0].message.count("duplicate") == 2


def test_unparseable_extra_cert(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    result = analyze([ca.leaf("app.test"), ca.intermediate, b"\x30\x00"], trust, now)
    assert result.trusted
    assert codes(result) == {"chain_extra_cert"}
    assert "cannot be parsed" in result.findings[0].message


def test_unparseable_leaf_and_empty_chain(trust: TrustStore, now: dt.datetime) -> None:
    bad = analyze_chain([b"garbage"], "app.test", now, trust, DEFAULT)
    assert codes(bad) == {"chain_invalid"} and not bad.trusted and bad.leaf is None
    empty = analyze_chain([], "app.test", now, trust, DEFAULT)
    assert codes(empty) == {"chain_invalid"} and "no certificate" in empty.findings[0].message


def test_chain_incomplete_vs_untrusted_vs_self_signed(
    pki: PKI, ca: Hierarchy, other_ca: Hierarchy, trust: TrustStore, now: dt.datetime
) -> None:
    leaf = ca.leaf("app.test")
    incomplete = analyze([leaf], trust, now)
    assert codes(incomplete) == {"chain_incomplete"} and not incomplete.trusted
    assert "it sent only the leaf" in incomplete.findings[0].message
    assert "AIA" in incomplete.findings[0].message  # no AIA URL: nobody can fetch it

    untrusted = analyze([leaf, ca.intermediate], TrustStore.from_file(other_ca.root_file), now)
    assert codes(untrusted) == {"untrusted_root"}

    self_signed = analyze([pki.self_signed("app.test")], trust, now)
    assert codes(self_signed) == {"self_signed"}

    trusted_self = pki.self_signed("pinned.test")
    store = TrustStore.from_file(pki.write_pem("pinned-trust.pem", trusted_self))
    assert codes(analyze([trusted_self], store, now, host="pinned.test")) == set()


def test_chain_incomplete_with_aia_url(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    leaf = ca.leaf("app.test", aia_ca_issuers="http://ca.invalid/inter.der")
    result = analyze([leaf], trust, now)
    assert codes(result) == {"chain_incomplete"}
    assert "names no AIA issuer URL" not in result.findings[0].message


def test_against_the_system_store(ca: Hierarchy, now: dt.datetime) -> None:
    system = TrustStore.system()
    result = analyze([ca.leaf("app.test"), ca.intermediate], system, now)
    assert not result.trusted and codes(result) == {"untrusted_root"}
    assert "system trust store" in result.findings[0].message


def test_chain_invalid(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    forged = ca.intermediate.leaf("app.test", signing_key=generate_key("rsa2048"))
    assert "chain_invalid" in codes(analyze([forged, ca.intermediate], trust, now))
    not_ca = ca.root.issue("Plain Cert", ca=False, key="rsa2048", server_auth=False)
    assert codes(analyze([not_ca.leaf("app.test"), not_ca], trust, now)) == {"chain_invalid"}


def test_order_root_sent(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    leaf = ca.leaf("app.test")
    assert codes(analyze([leaf, ca.intermediate, ca.root], trust, now)) == {"chain_root_sent"}
    assert codes(analyze([leaf, ca.root, ca.intermediate], trust, now)) == {
        "chain_root_sent",
        "chain_wrong_order",
    }
    i1 = ca.root.intermediate("Order One CA")
    i2 = i1.intermediate("Order Two CA")
    leaf2 = i2.leaf("app.test")
    assert codes(analyze([leaf2, i2, i1], trust, now)) == set()
    wrong = analyze([leaf2, i1, i2], trust, now)
    assert codes(wrong) == {"chain_wrong_order"}
    assert "#3, #2" in wrong.findings[0].message


def test_weak_keys(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    for key, weak in [
        ("rsa1024", True),
        ("ec224", True),
        ("rsa2048", False),
        ("ec256", False),
        ("ec384", False),
    ]:
        result = analyze([ca.leaf("app.test", key=key), ca.intermediate], trust, now)
        assert ("weak_key" in codes(result)) is weak, key
    inter = ca.root.intermediate("Weak Key CA", key="rsa1024")
    result = analyze([inter.leaf("app.test"), inter], trust, now)
    assert codes(result) == {"weak_key"} and "intermediate" in result.findings[0].message


def test_weak_signatures_but_not_the_roots_own(
    pki: PKI, ca: Hierarchy, trust: TrustStore, now: dt.datetime
) -> None:
    for hash, weak in [
        ("sha1", True),
        ("md5", True),
        ("sha256", False),
        ("sha384", False),
        ("sha512", False),
    ]:
        result = analyze([ca.leaf("app.test", hash=hash, key="rsa2048"), ca.intermediate], trust, now)
        assert ("weak_signature" in codes(result)) is weak, hash
    inter = ca.root.intermediate("SHA1 Signed CA", hash="sha1")
    result = analyze([inter.leaf("app.test"), inter], trust, now)
    assert codes(result) == {"weak_signature"} and "intermediate" in result.findings[0].message
    legacy_root = pki.root("Legacy SHA1 Self Root", hash="sha1")
    legacy_inter = legacy_root.intermediate("Legacy Inter CA")
    store = TrustStore.from_file(pki.write_pem("legacy-sha1-root.pem", legacy_root))
    chain = [legacy_inter.leaf("app.test"), legacy_inter]
    assert codes(analyze(chain, store, now)) == set()
    assert codes(analyze([*chain, legacy_root], store, now)) == {"chain_root_sent"}


def test_expired_intermediate_in_path(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    inter = ca.root.intermediate("Old CA", not_before=-500, not_after=-2)
    result = analyze([inter.leaf("app.test"), inter], trust, now)
    assert result.trusted  # trust is judged apart from dates
    assert codes(result) == {"chain_cert_expired"}
    assert severity(result, "chain_cert_expired") is Severity.PAGE


def test_analysis_is_pure(ca: Hierarchy, trust: TrustStore, now: dt.datetime) -> None:
    chain = [ca.leaf("app.test", not_after=5), ca.root, ca.intermediate]
    assert analyze(chain, trust, now) == analyze(chain, trust, now)


def test_every_finding_has_a_hint_and_plain_message(
    pki: PKI, ca: Hierarchy, trust: TrustStore, now: dt.datetime
) -> None:
    results = [
        analyze([ca.leaf("x.test", key="rsa1024", hash="sha1", not_after=2, sans=[])], trust, now),
        analyze([pki.self_signed("app.test", not_before=-100, not_after=-1)], trust, now),
        analyze([ca.leaf("app.test"), ca.root, ca.intermediate, ca.intermediate], trust, now),
    ]
    seen = set()
    for result in results:
        for f in result.findings:
            seen.add(f.code)
            assert f.message and "\n" not in f.message
            assert f.hint
    assert {"weak_key", "weak_signature", "expires_soon", "hostname_mismatch", "chain_incomplete"} <= seen


@pytest.mark.parametrize(
    ("order", "extra", "expected"),
    [
        ("full", False, set()),
        ("leaf", False, {"chain_incomplete"}),
        ("with_root", False, {"chain_root_sent"}),
        ("reversed", False, {"chain_root_sent", "chain_wrong_order"}),
        ("full", True, {"chain_extra_cert"}),
    ],
)
def test_chain_files_as_written(
    ca: Hierarchy, trust: TrustStore, now: dt.datetime, order: str, extra: bool, expected: set[str]
) -> None:
    """The factory's chain files hold the certificates in the order asked for, and the
    analysis of what they hold is what the file's shape says."""
    leaf = ca.leaf("app.test")
    chain_file, key_file = ca.serve_files(
        f"order-{order}-{extra}", leaf, order, extra=[ca.intermediate] if extra else []
    )
    ders = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(chain_file.read_bytes())]
    assert ders[0] == leaf.der
    assert key_file.read_bytes() == leaf.key_pem
    assert codes(analyze_chain(ders, "app.test", now, trust, DEFAULT)) == expected


def test_raw_names_are_the_names_as_encoded(pki: PKI, ca: Hierarchy) -> None:
    """The issuer and subject sliced from the DER (the key of the issuer-text cache)
    are the names' encodings, short and long (a 300-character organisation makes the
    name's length take two bytes)."""
    long_name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "o" * 300),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "Long Name CA"),
        ]
    )
    long_ca = ca.root.issue(None, subject=long_name, ca=True)
    certs = [ca.root, ca.intermediate, ca.leaf("raw.test"), long_ca, long_ca.leaf("under-long.test")]
    for cert in certs:
        assert raw_names(cert.der) == (cert.cert.issuer.public_bytes(), cert.cert.subject.public_bytes())
    der = ca.leaf("cut.test").der
    for broken in (b"", der[:40], b"\x02\x01\x00" + der[3:], b"\x30\x85" + der[2:]):
        assert raw_names(broken) is None


def test_issuer_in_words_is_the_same_from_the_cache(pki: PKI, ca: Hierarchy, other_ca: Hierarchy) -> None:
    """Leaves of two issuers, each parsed after its issuer's text was cached: every
    issuer is the one cryptography spells for that very certificate."""
    leaves = [h.leaf(f"cache{i}.test") for i in range(3) for h in (ca, other_ca)]
    for leaf in leaves:
        info = parse_cert(leaf.der)
        assert info.issuer == leaf.cert.issuer.rfc4514_string()
        assert info.subject == leaf.cert.subject.rfc4514_string()
        assert not info.self_issued
    root = parse_cert(ca.root.der)
    assert root.self_issued and root.issuer == root.subject
