"""Result types of the probe engine: frozen dataclasses, no behaviour beyond helpers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(frozen=True)
class BackendResult:
    """Probe and analysis of one backend address."""

    handshake: Handshake
    """What the connection observed."""
    analysis: ChainAnalysis | None
    """Chain verdict (None when no handshake completed)."""
    findings: tuple[Finding, ...]
    """Findings of this backend (error findings included)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Facts from deeper checks (protocols accepted, HTTP, no-SNI certificate...)."""

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
    extra: dict[str, object] = field(default_factory=dict)
    """Endpoint-level facts from deeper checks (HTTP, stored certificate...)."""

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
