"""Chain, name and expiry analysis: pure functions of (chain as sent, hostname,
time, trust store, thresholds).

Trust is OpenSSL's verdict (``X509StoreContext``) with time checks switched
off, so that expiry is reported as its own finding; the leaf's expiry and the
earliest expiry over the *verified path* are separate facts, and neither a
root the server sent nor an unrelated extra certificate ever drives them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import warnings
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID
from OpenSSL import crypto

from certpager.config import Thresholds, ip_literal, is_ip
from certpager.errors import CertParseError as CertParseError
from certpager.formats import format_serial
from certpager.probe.findings import RELOAD_RUNBOOK, make, readvise
from certpager.probe.model import CertInfo, ChainAnalysis, Finding, Severity
from certpager.probe.trust import TrustStore

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

# OpenSSL X509_V_ERR_* codes used to classify trust failures.
_UNABLE_TO_GET_ISSUER_CERT = 2
_DEPTH_ZERO_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNABLE_TO_GET_ISSUER_LOCALLY = 20
_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21


@functools.lru_cache(maxsize=4096)
def parse_cert(der: bytes) -> CertInfo:
    """Parse DER bytes into :class:`CertInfo` (cached: intermediates repeat a lot).

    Raises:
        CertParseError: the bytes are not a certificate cryptography can read.
    """
    try:
        with warnings.catch_warnings():
            # Servers send odd certificates (negative serials...): report, don't warn.
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            return _info(cert, der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertParseError(f"unreadable certificate: {exc}") from None


def _key_facts(key: object) -> tuple[str, int, str]:
    """``(type, bits, words)`` of a public key, e.g. ``("EC", 256, "EC P-256")``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, f"EC {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, f"DSA {key.key_size}"
    return "unknown", 0, "unknown key"


_SAN = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
_BASIC_CONSTRAINTS = ExtensionOID.BASIC_CONSTRAINTS
_AIA = ExtensionOID.AUTHORITY_INFORMATION_ACCESS


def _signature(cert: x509.Certificate) -> tuple[str, str | None]:
    """``(algorithm name, hash name)`` of the certificate's signature."""
    try:
        hash_alg = cert.signature_hash_algorithm
        sig_hash = hash_alg.name if hash_alg is not None else None
    except UnsupportedAlgorithm:
        sig_hash = "unknown"
    sig_oid = cert.signature_algorithm_oid
    return getattr(sig_oid, "_name", None) or sig_oid.dotted_string, sig_hash


def _extension_facts(cert: x509.Certificate) -> tuple[list[str], list[str], bool, list[str]]:
    """``(DNS SANs, IP SANs, is a CA, CA issuers URLs)`` read in one pass over the
    extensions (the certificate is parsed once per server)."""
    dns_sans: list[str] = []
    ip_sans: list[str] = []
    is_ca = False
    ca_issuers: list[str] = []
    try:
        extensions = list(cert.extensions)
    except ValueError:
        extensions = []  # malformed or duplicate extensions: none of them is trusted
    for ext in extensions:
        oid, value = ext.oid, ext.value
        if oid == _SAN and isinstance(value, x509.SubjectAlternativeName):
            dns_sans.extend(value.get_values_for_type(x509.DNSName))
            ip_sans.extend(str(ip) for ip in value.get_values_for_type(x509.IPAddress))
        elif oid == _BASIC_CONSTRAINTS and isinstance(value, x509.BasicConstraints):
            is_ca = bool(value.ca)
        elif oid == _AIA and isinstance(value, x509.AuthorityInformationAccess):
            ca_issuers.extend(
                d.access_location.value
                for d in value
                if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                and isinstance(d.access_location, x509.UniformResourceIdentifier)
            )
    return dns_sans, ip_sans, is_ca, ca_issuers


def _info(cert: x509.Certificate, der: bytes) -> CertInfo:
    key = cert.public_key()
    key_type, bits, desc = _key_facts(key)
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    sig_name, sig_hash = _signature(cert)
    dns_sans, ip_sans, is_ca, ca_issuers = _extension_facts(cert)
    subject = cert.subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    subject_text = _rfc4514(subject)
    names = raw_names(der)
    issuer_text = _issuer_text(names[0], cert) if names is not None else _rfc4514(cert.issuer)
    # Different texts mean different names; equal texts are confirmed on the encoding.
    self_issued = subject_text == issuer_text and subject.public_bytes() == cert.issuer.public_bytes()
    self_signed = self_issued and signed_by(cert, cert)
    return CertInfo(
        subject=subject_text,
        issuer=issuer_text,
        serial=format_serial(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        spki_pin="sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
        key_type=key_type,
        key_bits=bits,
        key_desc=desc,
        signature_algorithm=sig_name,
        signature_hash=sig_hash,
        sans=(*dns_sans, *ip_sans),
        dns_sans=tuple(dns_sans),
        ip_sans=tuple(ip_sans),
        common_name=str(cn) if cn is not None else None,
        is_ca=is_ca,
        self_issued=self_issued,
        self_signed=self_signed,
        ca_issuers=tuple(ca_issuers),
        der=der,
    )


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, start of contents, end)`` of the DER item that starts at ``pos``."""
    tag, size = data[pos], data[pos + 1]
    start = pos + 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + size
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, start, end


def raw_names(der: bytes) -> tuple[bytes, bytes] | None:
    """The issuer and subject names of a certificate exactly as encoded in it, or None
    when its layout is not the usual one (X.509 v1-v3 ``TBSCertificate``)."""
    try:
        tag, contents, _ = _der_item(der, 0)  # Certificate
        if tag != 0x30:
            return None
        tag, pos, _ = _der_item(der, contents)  # TBSCertificate
        if tag != 0x30:
            return None
        items: list[tuple[int, int, int]] = []
        for _ in range(6):  # [version], serialNumber, signature, issuer, validity, subject
            tag, _, end = _der_item(der, pos)
            items.append((tag, pos, end))
            pos = end
        if items[0][0] == 0xA0:
            items = items[1:]
        if [tag for tag, _, _ in items[:5]] != [0x02, 0x30, 0x30, 0x30, 0x30]:
            return None
        (_, i_start, i_end), (_, s_start, s_end) = items[2], items[4]
        return der[i_start:i_end], der[s_start:s_end]
    except (IndexError, ValueError):
        return None


#: Issuer names in words by their encoding: a fleet's leaves share a few issuers, and
#: building cryptography's ``Name`` and its RFC 4514 text is a third of parsing a leaf.
_ISSUER_TEXTS: dict[bytes, str] = {}
_MAX_ISSUER_TEXTS = 1024


def _issuer_text(encoded: bytes, cert: x509.Certificate) -> str:
    text = _ISSUER_TEXTS.get(encoded)
    if text is None:
        text = _rfc4514(cert.issuer)
        if len(_ISSUER_TEXTS) < _MAX_ISSUER_TEXTS:
            _ISSUER_TEXTS[encoded] = text
    return text


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key verifies ``cert``'s signature.

    Done by hand because ``verify_directly_issued_by`` refuses legacy hashes
    (SHA-1, MD5) — exactly the certificates this tool must still recognise.
    """
    key = issuer.public_key()
    sig, tbs = cert.signature, cert.tbs_certificate_bytes
    try:
        hash_alg = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            if hash_alg is None:
                return False
            params = cert.signature_algorithm_parameters
            pad = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            key.verify(sig, tbs, pad, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if hash_alg is None:
                return False
            key.verify(sig, tbs, ec.ECDSA(hash_alg))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            if hash_alg is None:
                return False
            key.verify(sig, tbs, hash_alg)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:
        return repr(name)


# --- hostname -----------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _normalise(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name  # what the IDNA codec would give (it only changes non-ASCII labels)
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def match_hostname(dns_sans: Sequence[str], hostname: str, ip_sans: Sequence[str] = ()) -> bool:
    """Whether the subjectAltName entries cover ``hostname`` (RFC 6125, as browsers do).

    Only subjectAltName counts (a CN-only certificate does not match); a
    wildcard is a whole left-most label and covers exactly one label; an IP
    address target matches only iPAddress entries (``ip_sans``), never a
    dNSName that happens to spell an address.
    """
    ip = ip_literal(hostname)
    if ip is not None:
        return any(ip_literal(san) == ip for san in ip_sans)
    host = _normalise(hostname)
    host_labels = host.split(".")
    for san in dns_sans:
        pattern = _normalise(san)
        if not pattern or is_ip(pattern):
            continue
        if pattern == host:
            return True
        if pattern.startswith("*."):
            rest = pattern[2:]
            if "*" in rest or "." not in rest:
                continue  # no nested or top-level wildcards
            if len(host_labels) >= 2 and host_labels[0] and ".".join(host_labels[1:]) == rest:
                return True
    return False


# --- expiry ---------------------------------------------------------------------


def threshold_severity(days_left: float, thresholds: Thresholds) -> Severity | None:
    """Severity of ``days_left`` under the thresholds (None: far enough away)."""
    if days_left <= thresholds.page_days:
        return Severity.PAGE
    if days_left <= thresholds.critical_days:
        return Severity.CRITICAL
    if days_left <= thresholds.warning_days:
        return Severity.WARNING
    return None


def _when(dt: datetime) -> str:
    """``2026-11-27 13:05 UTC`` (``dt`` is in UTC)."""
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d} UTC"


def _days(days: float) -> str:
    if abs(days) < 1:
        hours = abs(days) * 24
        return f"{hours:.1f} hours"
    return f"{abs(days):.1f} days"


def expiry_findings(leaf: CertInfo, now: datetime, thresholds: Thresholds) -> list[Finding]:
    """``cert_expired``, ``cert_not_yet_valid``, ``expires_soon``, ``renewal_overdue``."""
    out: list[Finding] = []
    if now < leaf.not_before:
        out.append(
            make(
                "cert_not_yet_valid",
                f"certificate is not valid until {_when(leaf.not_before)} "
                f"({_days((leaf.not_before - now).total_seconds() / 86400)} from now)",
            )
        )
        return out
    days = leaf.days_left(now)
    if days < 0:
        out.append(make("cert_expired", f"certificate expired {_days(days)} ago, on {_when(leaf.not_after)}"))
        return out
    severity = threshold_severity(days, thresholds)
    if severity is not None:
        out.append(
            make(
                "expires_soon",
                f"certificate expires in {_days(days)}, on {_when(leaf.not_after)}",
                severity=severity,
            )
        )
    lifetime = leaf.lifetime_days
    if lifetime > 0 and days < lifetime / 3:
        out.append(make("renewal_overdue", _overdue(leaf, now) + " did not happen"))
    return out


def _overdue(leaf: CertInfo, now: datetime) -> str:
    """``only 12.0 days of a 90-day lifetime left: automatic renewal (at 1/3 left, ...)``."""
    return (
        f"only {_days(leaf.days_left(now))} of a {leaf.lifetime_days:.0f}-day lifetime left: automatic "
        f"renewal (at 1/3 left, {_when(leaf.not_after - (leaf.not_after - leaf.not_before) / 3)})"
    )


# --- served vs stored: one incident, one recommendation -------------------------------

LEAF_CODES = frozenset(
    {"cert_expired", "cert_not_yet_valid", "expires_soon", "renewal_overdue", "hostname_mismatch"}
)
"""Findings about the served leaf alone: serving another leaf can clear them."""


def leaf_codes(leaf: CertInfo, now: datetime, thresholds: Thresholds, hostname: str) -> frozenset[str]:
    """The :data:`LEAF_CODES` that ``leaf`` would raise if it were served for ``hostname`` at ``now``."""
    codes = {f.code for f in expiry_findings(leaf, now, thresholds)}
    if not match_hostname(leaf.dns_sans, hostname, leaf.ip_sans):
        codes.add("hostname_mismatch")
    return frozenset(codes)


def reload_verdict(
    served: CertInfo, stored: CertInfo, now: datetime, thresholds: Thresholds, hostname: str
) -> tuple[frozenset[str], str | None]:
    """What loading ``stored`` in place of ``served`` would do.

    Returns:
        ``(cleared, worse)``: the :data:`LEAF_CODES` of the served leaf that the stored one
        does not have (a reload fixes them), and, when the stored leaf is not a
        better certificate to serve (older, not valid now, or without the name the
        served one covers), why in words (then nothing is cleared).
    """
    if now < stored.not_before:
        return frozenset(), f"a certificate that is not valid until {_when(stored.not_before)}"
    if stored.not_after <= now:
        return frozenset(), f"a certificate that expired on {_when(stored.not_after)}"
    stored_codes = leaf_codes(stored, now, thresholds, hostname)
    served_codes = leaf_codes(served, now, thresholds, hostname)
    if "hostname_mismatch" in stored_codes and "hostname_mismatch" not in served_codes:
        return frozenset(), f"a certificate whose names do not cover {hostname}"
    if stored.not_after <= served.not_after:
        return frozenset(), (
            f"an older certificate (valid until {_when(stored.not_after)}; the served one until "
            f"{_when(served.not_after)})"
        )
    return served_codes - stored_codes, None


def renewed_on_disk(
    findings: Sequence[Finding],
    served: CertInfo,
    stored: CertInfo,
    cleared: frozenset[str],
    now: datetime,
    location: str,
) -> tuple[Finding, ...]:
    """One incident, one recommendation: the findings about ``served`` that loading the
    newer ``stored`` leaf clears (``cleared``, from :func:`reload_verdict`) recommend the
    reload, not a renewal; ``renewal_overdue`` says the renewal happened. Other findings
    are returned unchanged."""
    if not cleared:
        return tuple(findings)
    hint = (
        f"Already renewed on disk: {location} holds serial {stored.serial}, valid until "
        f"{_when(stored.not_after)}. Reload the server so that it serves it; do not force a "
        "renewal (it spends CA rate limit for nothing)."
    )
    out: list[Finding] = []
    for f in findings:
        if f.code not in cleared:
            out.append(f)
            continue
        message = None
        if f.code == "renewal_overdue":
            message = (
                f"{_overdue(served, now)} happened on disk (the stored certificate is dated "
                f"{_when(stored.not_before)}), but the server was not reloaded and still serves "
                "the old one"
            )
        out.append(readvise(f, hint=hint, runbook=RELOAD_RUNBOOK, message=message))
    return tuple(out)


# --- trust and chain -------------------------------------------------------------


def _x509(der: bytes) -> crypto.X509:
    return crypto.load_certificate(crypto.FILETYPE_ASN1, der)


@functools.lru_cache(maxsize=256)
def _x509_shared(der: bytes) -> crypto.X509:
    """:func:`_x509` for the certificates sent after the leaf: the same intermediates come
    back from many servers, so their decoding is kept (bounded). OpenSSL takes its own
    reference to each one for a verification and never changes what it verifies."""
    return _x509(der)


def _der(cert: crypto.X509) -> bytes:
    return crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)


def _issued_by(child: CertInfo, parent: CertInfo) -> bool:
    if child.issuer != parent.subject:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return signed_by(
            x509.load_der_x509_certificate(child.der), x509.load_der_x509_certificate(parent.der)
        )


def _name_chain(chain: Sequence[CertInfo]) -> list[CertInfo]:
    """Best-effort path from the leaf through the sent certificates, by issuer name
    and signature, used when no trusted path exists."""
    path = [chain[0]]
    remaining = list(chain[1:])
    while True:
        current = path[-1]
        if current.self_signed:
            break
        nxt = next((c for c in remaining if _issued_by(current, c)), None)
        if nxt is None:
            break
        path.append(nxt)
        remaining.remove(nxt)
    return path


def analyze_chain(
    chain_der: Sequence[bytes],
    hostname: str,
    now: datetime,
    trust: TrustStore,
    thresholds: Thresholds,
    *,
    verified_path: Sequence[bytes] | None = None,
) -> ChainAnalysis:
    """Judge a chain exactly as the server sent it.

    Args:
        chain_der: certificates in the order sent, leaf first.
        hostname: the name the client asked for (SNI or IP address).
        now: the time to judge expiry at.
        trust: the trust store to verify against.
        thresholds: expiry thresholds.
        verified_path: the path OpenSSL already built from ``chain_der`` and verified
            without error against ``trust`` (during the handshake); None to verify here.
    """
    findings: list[Finding] = []
    chain, unusable = _parse_sent(chain_der, findings)
    if unusable is not None:
        return ChainAnalysis((), False, unusable, (), False, None, None, tuple(findings))
    leaf = chain[0]
    if verified_path:
        trusted, verify_error, path = True, None, _known(chain, verified_path)
    else:
        trusted, verify_error, path = _verify(chain, trust, findings)
    if not trusted:
        path = _name_chain(chain)
    hostname_ok = match_hostname(leaf.dns_sans, hostname, leaf.ip_sans)
    if not hostname_ok:
        findings.append(_hostname_mismatch(leaf, hostname))
    findings.extend(expiry_findings(leaf, now, thresholds))
    _path_expiry(path, now, thresholds, findings)
    _hygiene(chain, path, findings)
    _weak_crypto(path, trust, findings)
    return ChainAnalysis(
        chain=tuple(chain),
        trusted=trusted,
        verify_error=verify_error,
        verified_path=tuple(path) if trusted else (),
        hostname_ok=hostname_ok,
        leaf_not_after=leaf.not_after,
        chain_not_after=min((c.not_after for c in path), default=None),
        findings=tuple(findings),
    )


def _parse_sent(chain_der: Sequence[bytes], findings: list[Finding]) -> tuple[list[CertInfo], str | None]:
    """The certificates sent, parsed, and why there is no leaf to judge (None: there is
    one); that case adds the ``chain_invalid`` finding. Others that cannot be parsed are
    left out with a ``chain_extra_cert`` finding."""
    chain: list[CertInfo] = []
    for i, der in enumerate(chain_der):
        try:
            chain.append(parse_cert(der))
        except CertParseError as exc:
            if i == 0:
                findings.append(make("chain_invalid", f"the server's certificate cannot be parsed: {exc}"))
                return [], str(exc)
            findings.append(make("chain_extra_cert", f"certificate #{i + 1} sent cannot be parsed: {exc}"))
    if not chain:
        findings.append(make("chain_invalid", "the server sent no certificate"))
        return [], "no certificate"
    return chain, None


def _hostname_mismatch(leaf: CertInfo, hostname: str) -> Finding:
    if not leaf.sans and leaf.common_name:
        msg = (
            f"{hostname} is not in the certificate: it has no subjectAltName, only "
            f"CN={leaf.common_name}, which clients ignore"
        )
    else:
        shown = ", ".join(leaf.sans[:6]) + (f" (+{len(leaf.sans) - 6} more)" if len(leaf.sans) > 6 else "")
        msg = f"{hostname} is not in the certificate's names: {shown or 'none'}"
    return make("hostname_mismatch", msg)


def _path_expiry(
    path: Sequence[CertInfo], now: datetime, thresholds: Thresholds, findings: list[Finding]
) -> None:
    """Expiry of the path above the leaf (never of extra certificates)."""
    leaf = path[0]
    for cert in path[1:]:
        days = cert.days_left(now)
        role = "root" if cert.self_signed else "intermediate"
        if days < 0:
            findings.append(
                make(
                    "chain_cert_expired",
                    f"{role} {cert.subject} expired on {_when(cert.not_after)}: clients cannot build a valid path",
                )
            )
        elif cert.not_after < leaf.not_after:
            sev = max(Severity.WARNING, threshold_severity(days, thresholds) or Severity.WARNING)
            findings.append(
                make(
                    "chain_expires_before_leaf",
                    f"{role} {cert.subject} expires on {_when(cert.not_after)} ({_days(days)}), "
                    f"before the leaf ({_when(leaf.not_after)})",
                    severity=sev,
                )
            )


def _hygiene(chain: Sequence[CertInfo], path: Sequence[CertInfo], findings: list[Finding]) -> None:
    """How the chain was sent: order, certificates not needed, the root."""
    path_ders = [c.der for c in path]
    seen_path: set[bytes] = set()
    extras: list[str] = []
    for i, cert in enumerate(chain):
        if cert.der in path_ders and cert.der not in seen_path:
            seen_path.add(cert.der)
            continue
        if i == 0:
            continue
        why = (
            "duplicate"
            if cert.der in seen_path or cert.der in [c.der for c in chain[:i]]
            else "not part of the path"
        )
        extras.append(f"#{i + 1} {cert.subject} ({why})")
    first_positions = []
    for der in path_ders:
        idx = next((i for i, c in enumerate(chain) if c.der == der), None)
        if idx is not None:
            first_positions.append(idx)
    if first_positions != sorted(first_positions):
        order = ", ".join(f"#{i + 1}" for i in first_positions)
        findings.append(
            make(
                "chain_wrong_order",
                f"certificates sent out of order: the path uses them as {order}; each certificate "
                "should be followed by its issuer",
            )
        )
    if extras:
        findings.append(
            make(
                "chain_extra_cert",
                "the server sent certificates it does not need: " + "; ".join(extras),
            )
        )
    for i, cert in enumerate(chain[1:], 2):
        if cert.self_signed and cert.is_ca and cert.der in path_ders:
            findings.append(make("chain_root_sent", f"the server sends the root {cert.subject} (#{i})"))
            break


def _weak_crypto(path: Sequence[CertInfo], trust: TrustStore, findings: list[Finding]) -> None:
    """Keys and signatures of the leaf and intermediates (a root's own signature does not matter)."""
    leaf = path[0]
    for cert in path:
        if trust.is_anchor(cert.der) and cert is not leaf:
            continue
        role = "leaf" if cert is leaf else ("root" if cert.self_signed else "intermediate")
        weak = (
            (cert.key_type == "RSA" and cert.key_bits < 2048)
            or (cert.key_type == "EC" and cert.key_bits < 256)
            or cert.key_type == "DSA"
        )
        if weak:
            findings.append(make("weak_key", f"{role} {cert.subject} has a weak key: {cert.key_desc}"))
        if not cert.self_signed and cert.signature_hash in ("sha1", "md5"):
            findings.append(
                make(
                    "weak_signature",
                    f"{role} {cert.subject} is signed with {cert.signature_algorithm} ({cert.signature_hash.upper()})",
                )
            )


def _verify(
    chain: list[CertInfo], trust: TrustStore, findings: list[Finding]
) -> tuple[bool, str | None, list[CertInfo]]:
    """OpenSSL path validation; appends the trust finding on failure."""
    try:
        ctx = crypto.X509StoreContext(
            trust.store, _x509(chain[0].der), chain=[_x509_shared(c.der) for c in chain[1:]]
        )
        verified = ctx.get_verified_chain()
    except crypto.X509StoreContextError as exc:
        return False, _refused(exc, chain, trust, findings), []
    return True, None, _known(chain, [_der(c) for c in verified])


def _refused(
    exc: crypto.X509StoreContextError, chain: list[CertInfo], trust: TrustStore, findings: list[Finding]
) -> str:
    """Why OpenSSL refused the chain: the finding appended, the verify error returned."""
    leaf = chain[0]
    code, depth, reason = (
        [*exc.errors, None, None, None][:3] if isinstance(exc.errors, list) else (None, None, str(exc))
    )
    failing_info = parse_cert(_der(exc.certificate)) if exc.certificate is not None else leaf
    store = "the system trust store" if trust.name == "system" else f"the CA bundle {trust.name}"
    if code == _DEPTH_ZERO_SELF_SIGNED or (leaf.self_signed and len(chain) == 1):
        findings.append(
            make("self_signed", f"the certificate is self-signed ({leaf.subject}) and not in {store}")
        )
        return "self-signed certificate"
    if code == _SELF_SIGNED_IN_CHAIN:
        findings.append(
            make(
                "untrusted_root",
                f"the chain ends in the root {failing_info.subject}, which is not in {store}",
            )
        )
        return f"root {failing_info.subject} is not trusted"
    if code in (_UNABLE_TO_GET_ISSUER_LOCALLY, _UNABLE_TO_VERIFY_LEAF_SIGNATURE, _UNABLE_TO_GET_ISSUER_CERT):
        return _issuer_not_found(failing_info, chain, store, findings)
    findings.append(
        make(
            "chain_invalid",
            f"chain verification failed at depth {depth}: {reason} ({failing_info.subject})",
        )
    )
    return str(reason)


def _issuer_not_found(
    failing_info: CertInfo, chain: list[CertInfo], store: str, findings: list[Finding]
) -> str:
    """The issuer of ``failing_info`` is neither sent nor trusted: an incomplete chain
    when it is the leaf's, else an untrusted root."""
    leaf = chain[0]
    top_is_leaf = failing_info.der == leaf.der or not failing_info.is_ca
    if top_is_leaf and failing_info.issuer.encode() and not leaf.self_issued:
        only = " (it sent only the leaf)" if len(chain) == 1 else ""
        no_aia = (
            ""
            if leaf.ca_issuers
            else f"; the leaf names no AIA issuer URL, so no client can fetch it (if {leaf.issuer} "
            "is a private CA, trust it with ca_file)"
        )
        findings.append(
            make(
                "chain_incomplete",
                f"the server did not send the intermediate certificate {leaf.issuer}{only}: "
                f"clients that do not fetch it (curl, Python, Java, most APIs) cannot verify the "
                f"chain against {store}{no_aia}",
            )
        )
        return f"issuer {leaf.issuer} missing from the chain sent"
    where = "sent by the server" if failing_info.der in {c.der for c in chain} else "in the store"
    findings.append(
        make(
            "untrusted_root",
            f"{failing_info.subject} ({where}) is issued by {failing_info.issuer}, which is not in {store}",
        )
    )
    return f"issuer {failing_info.issuer} is not trusted"


def _known(chain: Sequence[CertInfo], path_der: Sequence[bytes]) -> list[CertInfo]:
    """A verified path as :class:`CertInfo`: the certificates sent are already parsed,
    only those from the store (the root) are parsed here."""
    sent = {c.der: c for c in chain}
    return [sent.get(der) or parse_cert(der) for der in path_der]
