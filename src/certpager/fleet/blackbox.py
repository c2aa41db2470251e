"""Blackbox's expiry against the path clients verify (pure).

``probe_ssl_earliest_cert_expiry`` of the blackbox exporter is the earliest notAfter of
*every* certificate the server sent (Go's ``PeerCertificates``), including extra roots
and unused cross-signs that no client puts on its path: a frequent false page. certpager
knows the verified path, so it can say which certificate blackbox counted, that it is
not on that path, and whether clients are affected at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from certpager.probe.model import CertInfo, EndpointReport


@dataclass(frozen=True)
class BlackboxExpiry:
    """Blackbox's number and the verified path's, when they differ."""

    blackbox_not_after: datetime
    """What blackbox reports: the earliest notAfter of every certificate sent."""
    counted: CertInfo
    """The certificate that number comes from."""
    position: int
    """Its position in what the server sent (1 = the leaf)."""
    on_verified_path: bool
    """Whether clients put it on their path."""
    verified_not_after: datetime
    """The earliest notAfter over the verified path."""
    clients_affected: bool
    """Whether clients see a problem: the verified path is expired or untrusted."""

    @property
    def false_page(self) -> bool:
        """Whether blackbox counts an earlier expiry than clients ever see: a certificate
        off the verified path, while that path is fine."""
        return (
            not self.on_verified_path
            and self.blackbox_not_after < self.verified_not_after
            and not self.clients_affected
        )

    def sentence(self) -> str:
        """In words, for the TUI and the table (unescaped: subjects are the server's text)."""
        when = self.blackbox_not_after.strftime("%Y-%m-%d %H:%M UTC")
        path = self.verified_not_after.strftime("%Y-%m-%d %H:%M UTC")
        where = "is on" if self.on_verified_path else "is not on"
        impact = "clients are affected" if self.clients_affected else "clients are not affected"
        return (
            f"blackbox's probe_ssl_earliest_cert_expiry is {when}: certificate #{self.position} sent, "
            f"{self.counted.subject}, which {where} the path clients verify (earliest expiry there: {path}); "
            f"{impact}"
        )

    def json(self) -> dict[str, object]:
        """The fact in ``certpager check --json`` (docs/check.md, "blackbox_expiry")."""
        return {
            "probe_ssl_earliest_cert_expiry": _iso(self.blackbox_not_after),
            "certificate": {
                "subject": self.counted.subject,
                "not_after": _iso(self.counted.not_after),
                "position": self.position,
                "sha256": self.counted.sha256,
            },
            "on_verified_path": self.on_verified_path,
            "verified_path_not_after": _iso(self.verified_not_after),
            "clients_affected": self.clients_affected,
        }


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def blackbox_expiry(report: EndpointReport, now: datetime | None = None) -> BlackboxExpiry | None:
    """Blackbox's expiry and the verified path's when they differ (None when they agree,
    or when no chain was received or no path verified)."""
    primary = report.primary
    a = primary.analysis if primary is not None else None
    if a is None or not a.chain or not a.verified_path:
        return None
    position, counted = min(enumerate(a.chain, 1), key=lambda item: (item[1].not_after, item[0]))
    verified = min(c.not_after for c in a.verified_path)
    if counted.not_after == verified:
        return None
    when = now or report.checked_at
    return BlackboxExpiry(
        blackbox_not_after=counted.not_after,
        counted=counted,
        position=position,
        on_verified_path=any(c.sha256 == counted.sha256 for c in a.verified_path),
        verified_not_after=verified,
        clients_affected=not a.trusted or verified <= when,
    )


__all__ = ["BlackboxExpiry", "blackbox_expiry"]
