"""Result types of the probe engine: frozen dataclasses, no behaviour beyond helpers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    # Results of the checks over extra connections, typed here, defined (and imported at
    # run time) only where those checks run: a run without them never loads these modules.
    from certpager.probe.aia import AiaResult
    from certpager.probe.http import HstsResult, RedirectResult
    from certpager.probe.protocols import ProtocolReport


class Severity(enum.IntEnum):
    """How bad a finding is. Ordered: a larger value is worse."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2
    PAGE = 3
    ERROR = 4
    """No handshake could be completed."""

    @property
    def label(self) -> str:
        """Lower-case name used in JSON and the UI."""
        return self.name.lower()


class Status(enum.Enum):
    """Status of an endpoint: the worst over its findings and backends."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    PAGE = "page"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Sort key, larger is worse: page > error > critical > warning > ok."""
        return _STATUS_RANK[self]

    @property
    def exit_code(self) -> int:
        """Nagios exit code: 0 ok, 1 warning, 2 critical/page/error."""
        return {Status.OK: 0, Status.WARNING: 1}.get(self, 2)

    @classmethod
    def from_severity(cls, severity: Severity | None) -> Status:
        """The status a worst finding of ``severity`` gives (INFO and None are OK)."""
        if severity is None or severity == Severity.INFO:
            return cls.OK
        return {
            Severity.WARNING: cls.WARNING,
            Severity.CRITICAL: cls.CRITICAL,
            Severity.PAGE: cls.PAGE,
            Severity.ERROR: cls.ERROR,
        }[severity]


_STATUS_RANK = {
    Status.OK: 0,
    Status.WARNING: 1,
    Status.CRITICAL: 2,
    Status.ERROR: 3,
    Status.PAGE: 4,
}


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong (or worth knowing) about an endpoint."""

    code: str
    """Stable code, e.g. ``chain_incomplete`` (see :mod:`certpager.probe.findings`)."""
    severity: Severity
    """How bad it is."""
    message: str
    """One line in plain words."""
    hint: str = ""
    """How to fix it."""
    runbook: str | None = None
    """Name of the runbook that fixes it, if any."""
    backends: tuple[str, ...] = ()
    """Backend addresses it was seen on (empty: all, or not backend-specific)."""


@dataclass(frozen=True)
class CertInfo:
    """Facts about one certificate, parsed from its DER bytes."""

    subject: str
    """Subject DN, RFC 4514 string."""
    issuer: str
    """Issuer DN, RFC 4514 string."""
    serial: str
    """Serial number, upper-case hex without separators."""
    not_before: datetime
    """Start of validity (UTC)."""
    not_after: datetime
    """End of validity (UTC)."""
    sha256: str
    """SHA-256 fingerprint of the DER, lower-case hex."""
    spki_pin: str
    """``sha256/BASE64`` of the SubjectPublicKeyInfo (HPKP-style pin)."""
    key_type: str
    """``RSA``, ``EC``, ``Ed25519``, ``Ed448``, ``DSA`` or ``unknown``."""
    key_bits: int
    """Key size in bits."""
    key_desc: str
    """Human description, e.g. ``RSA 2048`` or ``EC P-256``."""
    signature_algorithm: str
    """Signature algorithm, e.g. ``sha256WithRSAEncryption``."""
    signature_hash: str | None
    """Hash of the signature algorithm, e.g. ``sha256``; None for EdDSA."""
    sans: tuple[str, ...]
    """DNS names then IP addresses in subjectAltName, for display (``DNS:`` / ``IP:`` stripped)."""
    common_name: str | None
    """Subject CN, if any (never used for name matching)."""
    is_ca: bool
    """basicConstraints CA flag."""
    self_issued: bool
    """Subject equals issuer."""
    self_signed: bool
    """Self-issued and its signature verifies with its own key."""
    ca_issuers: tuple[str, ...]
    """AIA caIssuers URLs."""
    der: bytes = field(repr=False)
    """The certificate as sent."""
    dns_sans: tuple[str, ...] = ()
    """subjectAltName dNSName entries only (what host names match against)."""
    ip_sans: tuple[str, ...] = ()
    """subjectAltName iPAddress entries only (what IP targets match against)."""

    def days_left(self, now: datetime) -> float:
        """Days from ``now`` until ``not_after`` (negative once expired)."""
        return (self.not_after - now).total_seconds() / 86400.0

    @property
    def lifetime_days(self) -> float:
        """Total validity period in days."""
        return (self.not_after - self.not_before).total_seconds() / 86400.0


@dataclass(frozen=True)
class Timings:
    """Wall time of each probe phase, in milliseconds (None: phase not reached)."""

    dns_ms: float | None = None
    """Name resolution (0 for addresses and explicit backends given as IPs)."""
    connect_ms: float | None = None
    """TCP connect."""
    handshake_ms: float | None = None
    """TLS handshake."""
    total_ms: float | None = None
    """Whole probe of this backend."""


@dataclass(frozen=True)
class Handshake:
    """What one fresh TCP + TLS connection to one address observed."""

    address: str
    """IP address connected to."""
    port: int
    """TCP port."""
    sni: str | None
    """Server name sent (None: no SNI)."""
    chain_der: tuple[bytes, ...] = ()
    """Certificates exactly as the server sent them, in order."""
    tls_version: str | None = None
    """Negotiated protocol, e.g. ``TLSv1.3``."""
    cipher: str | None = None
    """Negotiated cipher suite (OpenSSL name)."""
    alpn: str | None = None
    """Negotiated ALPN protocol."""
    client_cert_requested: bool = False
    """The server sent a CertificateRequest."""
    client_ca_names: tuple[str, ...] = ()
    """CA names the server accepts for client certificates."""
    client_cert_sent: bool = False
    """A configured client certificate was offered."""
    timings: Timings = field(default_factory=Timings)
    """Per-phase timings."""
    error_code: str | None = None
    """``dns_error``, ``connect_refused``, ``connect_failed``, ``connect_timeout``,
    ``handshake_timeout`` or ``handshake_failed``; None on success."""
    error: str | None = None
    """The error in plain words."""
    client_auth_error: str | None = None
    """The server asked for a client certificate and then refused the handshake
    (none configured, or the configured one rejected). The server's chain is still
    reported; this is not an ``error_code``."""
    verified_path: tuple[bytes, ...] | None = None
    """The path (leaf first, DER) OpenSSL built from ``chain_der`` and verified
    without error during the handshake, against the trust store the handshake was
    given; None when it was given none or verification reported any error (the
    analysis then verifies on its own and says why)."""
    verified_by: str | None = None
    """Name of the trust store ``verified_path`` was verified against."""

    @property
    def ok(self) -> bool:
        """Whether the handshake completed."""
        return self.error_code is None

    @property
    def label(self) -> str:
        """``address:port`` for display."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class ChainAnalysis:
    """Verdict on a chain as sent, for one hostname, at one time, against one trust store."""

    chain: tuple[CertInfo, ...]
    """The certificates as sent, parsed."""
    trusted: bool
    """A path from the leaf to a trusted root was built."""
    verify_error: str | None
    """Why not, in plain words (None when trusted)."""
    verified_path: tuple[CertInfo, ...]
    """Leaf first, trust anchor last (empty when untrusted)."""
    hostname_ok: bool
    """The leaf's SANs cover the hostname."""
    leaf_not_after: datetime | None
    """Leaf expiry."""
    chain_not_after: datetime | None
    """Earliest expiry over the verified path (roots in the path included, extra certs never)."""
    findings: tuple[Finding, ...]
    """Everything wrong with the chain."""

    @property
    def leaf(self) -> CertInfo | None:
        """The first certificate sent."""
        return self.chain[0] if self.chain else None


class DeepCheck(enum.Enum):
    """The deeper checks (:mod:`certpager.probe.deep`), in the order they run and are assembled:
    first those on what the main handshakes hold, then those over extra connections."""

    CLIENT_AUTH = "client_auth"
    PINS = "pins"
    BACKENDS = "backends"
    PROTOCOLS = "protocols"
    NO_SNI = "no_sni"
    HTTP = "http"
    AIA = "aia"

    # Members are singletons: hash by identity, in C (Enum's own __hash__ is Python code,
    # and every endpoint's run asks a set of checks a dozen times).
    __hash__ = object.__hash__


ALL_CHECKS: frozenset[DeepCheck] = frozenset(DeepCheck)
"""Every deeper check (each still subject to the endpoint's own flags)."""
NO_CHECKS: frozenset[DeepCheck] = frozenset()
"""The main handshakes and their analysis only."""


# --- results of the deeper checks (certpager.probe.deep) ---------------------------------
#
# Each result is a frozen value; ``as_json()`` gives its keys of the ``--json`` object
# (docs/deeper-checks.md, "JSON facts"), in the order the output has always had.


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def cert_facts_json(cert: CertInfo) -> dict[str, object]:
    """A certificate named by a deeper check (no-SNI, backends): the facts to tell it by."""
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "sans": list(cert.sans),
        "not_after": _iso(cert.not_after),
        "serial": cert.serial,
        "sha256": cert.sha256,
        "spki_pin": cert.spki_pin,
    }


@dataclass(frozen=True)
class ClientAuthResult:
    """What one backend asks of clients: ``not_requested``, ``optional``, ``required``,
    ``accepted`` or ``rejected``."""

    state: str
    note: str | None = None
    """Why a configured client certificate was not used."""

    def as_json(self) -> dict[str, object]:
        if self.note is None:
            return {"client_auth": self.state}
        return {"client_auth": self.state, "client_auth_note": self.note}


class PinMatch(NamedTuple):
    """A certificate of the chain sent or the verified path, with its role."""

    role: str
    """``leaf``, ``intermediate`` or ``root``."""
    cert: CertInfo


@dataclass(frozen=True)
class PinsResult:
    """The configured SPKI pins against one backend's chain."""

    configured: tuple[str, ...]
    candidates: tuple[PinMatch, ...]
    """Every distinct certificate sent or in the verified path, leaf first."""
    matched: tuple[PinMatch, ...]
    """The candidates whose key is pinned."""

    @property
    def state(self) -> str:
        """``match`` or ``mismatch``."""
        return "match" if self.matched else "mismatch"

    def as_json(self) -> dict[str, object]:
        return {
            "configured": list(self.configured),
            "matched": [{"role": r, "subject": c.subject, "spki_pin": c.spki_pin} for r, c in self.matched],
            "state": self.state,
        }


@dataclass(frozen=True)
class BackendFacts:
    """One backend's deeper-check results (None: that check did not run)."""

    client_auth: ClientAuthResult | None = None
    pins: PinsResult | None = None
    protocols: ProtocolReport | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        self.write_json(out)
        return out

    def write_json(self, out: dict[str, object]) -> None:
        """Add the JSON keys to ``out`` (a backend's object)."""
        auth = self.client_auth
        if auth is not None:
            out["client_auth"] = auth.state
            if auth.note is not None:
                out["client_auth_note"] = auth.note
        if self.pins is not None:
            out["pins"] = self.pins.as_json()
        if self.protocols is not None:
            out.update(self.protocols.as_json())


NO_BACKEND_FACTS = BackendFacts()


@dataclass(frozen=True)
class EndpointClientAuth:
    """The worst client-authentication state over the backends, and the CA names they accept."""

    state: str
    ca_names: tuple[str, ...] = ()


class SpkiPin(NamedTuple):
    """The SPKI pin of a certificate sent or in the verified path (primary backend)."""

    role: str
    cert: CertInfo
    sent: bool


class ServedCertificate(NamedTuple):
    """A leaf and the backends serving it."""

    cert: CertInfo
    backends: tuple[str, ...]


def spki_pins_json(pins: tuple[SpkiPin, ...]) -> list[dict[str, object]]:
    """The ``spki_pins`` fact."""
    return [
        {
            "role": p.role,
            "subject": p.cert.subject,
            "spki_pin": p.cert.spki_pin,
            "sha256": p.cert.sha256,
            "sent": p.sent,
        }
        for p in pins
    ]


@dataclass(frozen=True)
class BackendsResult:
    """Whether the backends serve the same leaf."""

    agree: bool
    served: tuple[ServedCertificate, ...] | None = None
    """Each distinct leaf served; None for a single backend (nothing to compare)."""

    def as_json(self) -> dict[str, object]:
        if self.served is None:
            return {"backends_agree": self.agree}
        certs = [
            {**cert_facts_json(s.cert), "not_before": _iso(s.cert.not_before), "backends": list(s.backends)}
            for s in self.served
        ]
        return {"backends_agree": self.agree, "certificates_served": certs}


@dataclass(frozen=True)
class ProtocolsResult:
    """The protocol versions over every backend (accepted when any backend accepts)."""

    versions: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    """Why SSLv3 could not be tested."""
    checked: bool = True
    """False: ``check_protocols`` is off."""

    @property
    def accepted(self) -> list[str]:
        """The versions some backend accepts."""
        return [v for v, state in self.versions.items() if state == "accepted"]

    def as_json(self) -> dict[str, object]:
        if not self.checked:
            return {"protocols": "not checked (check_protocols is off)"}
        return {
            "protocols": dict(self.versions),
            "protocols_accepted": self.accepted,
            "protocol_notes": dict(self.notes),
        }


@dataclass(frozen=True)
class NoSniResult:
    """What a client that sends no SNI is served: ``same`` or ``differs`` (with the
    certificate), ``refused``, ``failed`` or ``skipped`` (with the error)."""

    state: str
    cert: CertInfo | None = None
    error: str = ""

    def as_json(self) -> dict[str, object]:
        if self.cert is None:
            return {"state": self.state, "error": self.error}
        return {"state": self.state, "certificate": cert_facts_json(self.cert)}


@dataclass(frozen=True)
class CheckFailed:
    """A check over the network that gave no result (an exception, the deadline)."""

    state: str
    """``failed`` (redirect) or ``fetch_failed`` (AIA)."""
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class ClientAuthHttp:
    """The HTTPS answer of a server that completed an mTLS handshake, and its verdict."""

    status: int | None
    verdict: str | None
    """``required``, ``rejected`` or None (the answer decides nothing)."""
    detail: str | None

    def as_json(self) -> dict[str, object]:
        return {"status": self.status, "verdict": self.verdict, "detail": self.detail}


@dataclass(frozen=True)
class HttpResult:
    """The plain-HTTP redirect, the HSTS header, and what the HTTPS answer says of the
    client certificate."""

    off: bool = False
    """The endpoint has no HTTP checks."""
    redirect: RedirectResult | CheckFailed | None = None
    hsts: HstsResult | None = None
    hsts_before_connections: bool = False
    """``hsts`` was skipped before any connection (the client certificate is refused)."""
    client_auth: ClientAuthHttp | None = None


@dataclass(frozen=True)
class StoredFacts:
    """The stored certificate against the one served (see :mod:`certpager.check.stored`)."""

    location: str
    state: str
    """``same as served``, ``differs (...)`` or ``not compared``."""
    cert: CertInfo | None = None
    """The stored leaf."""
    differing_backends: tuple[str, ...] = ()
    error: str | None = None
    """Why it was not compared."""
    reason: str | None = None
    """Why, as a kind (``host_key_changed``...)."""

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"location": self.location, "state": self.state}
        if self.error is not None:
            out["error"] = self.error
            out["reason"] = self.reason
            return out
        if self.cert is not None:
            out["serial"] = self.cert.serial
            out["sha256"] = self.cert.sha256
            out["not_after"] = _iso(self.cert.not_after)
        if self.differing_backends:
            out["differing_backends"] = list(self.differing_backends)
        return out


@dataclass(frozen=True)
class EndpointFacts:
    """One endpoint's deeper-check results (None: that check did not run)."""

    client_auth: EndpointClientAuth | None = None
    backends: BackendsResult | None = None
    spki_pins: tuple[SpkiPin, ...] | None = None
    protocols: ProtocolsResult | None = None
    no_sni: NoSniResult | None = None
    http: HttpResult | None = None
    aia: AiaResult | CheckFailed | None = None
    error: str | None = None
    """The deeper checks failed as a whole (an internal error)."""
    stored: StoredFacts | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        self.write_json(out)
        return out

    def write_json(self, out: dict[str, object]) -> None:
        """Add the JSON keys to ``out`` (an endpoint's object), in the order of the checks.
        Written out, not one call per result: it runs for every endpoint of a bulk check."""
        auth = self.client_auth
        if auth is not None:
            out["client_auth"] = auth.state
            out["client_ca_names"] = list(auth.ca_names)
        backends = self.backends
        if backends is not None:
            if backends.served is None:
                out["backends_agree"] = backends.agree
            else:
                out.update(backends.as_json())
        if self.spki_pins is not None:
            out["spki_pins"] = spki_pins_json(self.spki_pins)
        http = self.http
        if http is not None:
            if http.off:
                out["http"] = {"state": "skipped", "detail": "HTTP checks are off for this endpoint"}
            if http.hsts is not None and http.hsts_before_connections:
                out["hsts"] = http.hsts.as_json()
        protocols = self.protocols
        if protocols is not None:
            if protocols.checked:
                out.update(protocols.as_json())
            else:
                out["protocols"] = "not checked (check_protocols is off)"
        if self.no_sni is not None:
            out["no_sni"] = self.no_sni.as_json()
        if http is not None and (http.client_auth or http.redirect or http.hsts) is not None:
            _http_after(http, out)
        if self.aia is not None:
            out["aia"] = self.aia.as_json()
        if self.error is not None:
            out["deep_checks_error"] = self.error
        if self.stored is not None:
            out["stored"] = self.stored.as_json()


def _http_after(http: HttpResult, out: dict[str, object]) -> None:
    """The HTTP facts from the answers, in the order they are decided."""
    hsts = http.hsts if not http.hsts_before_connections else None
    if http.client_auth is not None:
        out["client_auth_http"] = http.client_auth.as_json()
    if hsts is not None and hsts.state == "skipped":  # decided by the HTTPS answer
        out["hsts"] = hsts.as_json()
        hsts = None
    if http.redirect is not None:
        out["redirect"] = http.redirect.as_json()
    if hsts is not None:
        out["hsts"] = hsts.as_json()


NO_ENDPOINT_FACTS = EndpointFacts()


@dataclass(frozen=True)
class BackendResult:
    """Probe and analysis of one backend address."""

    handshake: Handshake
    """What the connection observed."""
    analysis: ChainAnalysis | None
    """Chain verdict (None when no handshake completed)."""
    findings: tuple[Finding, ...]
    """Findings of this backend (error findings included)."""
    deep: BackendFacts = field(default_factory=lambda: NO_BACKEND_FACTS)
    """Facts from the deeper checks (mTLS, pins, protocols)."""

    @property
    def status(self) -> Status:
        """Worst status over this backend's findings."""
        return Status.from_severity(max((f.severity for f in self.findings), default=None))


@dataclass(frozen=True)
class EndpointReport:
    """Everything certpager knows about one endpoint after one check."""

    name: str
    """Endpoint name."""
    host: str
    """Host connected to."""
    port: int
    """Port."""
    sni: str | None
    """SNI sent."""
    status: Status
    """Worst over findings and backends."""
    findings: tuple[Finding, ...]
    """Merged findings over all backends, worst first."""
    backends: tuple[BackendResult, ...]
    """One result per backend address."""
    checked_at: datetime
    """When the check started (UTC)."""
    error: str | None = None
    """Set when no backend completed a handshake."""
    deep: EndpointFacts = field(default_factory=lambda: NO_ENDPOINT_FACTS)
    """Endpoint-level facts from the deeper checks and the stored-certificate comparison."""

    @property
    def primary(self) -> BackendResult | None:
        """The first backend that completed a handshake, else the first backend."""
        for b in self.backends:
            if b.handshake.ok:
                return b
        return self.backends[0] if self.backends else None

    @property
    def leaf(self) -> CertInfo | None:
        """Leaf certificate of the primary backend."""
        p = self.primary
        if p is None or p.analysis is None:
            return None
        return p.analysis.leaf

    def days_left(self, now: datetime | None = None) -> float | None:
        """Days until the leaf (of the primary backend) expires."""
        leaf = self.leaf
        if leaf is None:
            return None
        return leaf.days_left(now or self.checked_at)
