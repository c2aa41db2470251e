"""One :class:`~certpager.probe.model.EndpointReport` as Prometheus metric families (pure).

The exporter's ``/probe`` answer: blackbox-compatible series (``probe_success``,
``probe_duration_seconds``, ``probe_ssl_earliest_cert_expiry``) plus certpager's own
(status, findings, leaf and chain expiry). The table is in docs/fleet.md.

Differences from blackbox, on purpose:

- ``probe_ssl_earliest_cert_expiry`` is the earliest notAfter over the *verified* path
  (leaf, intermediates, anchor), not over every certificate the server sent: an extra,
  unrelated certificate that expires tomorrow breaks nobody. When no path verifies
  (a missing intermediate, an unknown root) it is the leaf's notAfter. Over several
  backends it is the earliest of them.
- ``probe_success`` is 1 when a handshake completed (on at least one backend); what is
  wrong with the certificate is in ``certpager_status`` and ``certpager_finding``.

Every label value goes through prometheus_client, which escapes it: a subject DN or a
finding from a hostile server never breaks the exposition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from certpager.probe.model import BackendResult, EndpointReport, Status

STATUS_VALUES: dict[Status, int] = {
    Status.OK: 0,
    Status.WARNING: 1,
    Status.CRITICAL: 2,
    Status.PAGE: 3,
    Status.ERROR: 3,
}
"""``certpager_status``: 0 ok, 1 warning, 2 critical, 3 page or error (no handshake: unknown)."""

LABEL_MAX = 256
"""Longest label value kept (a subject DN can be any length); longer ones end in ``...``."""


def _label(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 3] + "..."


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _ok_backends(report: EndpointReport) -> list[BackendResult]:
    return [b for b in report.backends if b.handshake.ok and b.analysis is not None]


def _earliest_expiry(backend: BackendResult) -> datetime | None:
    """The earliest notAfter over the verified path, else the leaf's."""
    a = backend.analysis
    if a is None:
        return None
    if a.verified_path and a.chain_not_after is not None:
        return a.chain_not_after
    return a.leaf_not_after


def _backend_label(backend: BackendResult) -> str:
    return _label(backend.handshake.label)


def _expiry_families(report: EndpointReport) -> Iterator[Metric]:
    ok = _ok_backends(report)
    earliest = [e for e in (_earliest_expiry(b) for b in ok) if e is not None]
    if earliest:
        first = min(earliest)
        yield GaugeMetricFamily(
            "probe_ssl_earliest_cert_expiry",
            "Earliest notAfter (unix seconds) over the verified path (the leaf when none verifies)",
            value=_ts(first),
        )
    leaves = [(b, na) for b in ok if b.analysis is not None and (na := b.analysis.leaf_not_after) is not None]
    if leaves:
        days = min((na - report.checked_at).total_seconds() for _, na in leaves) / 86400.0
        yield GaugeMetricFamily(
            "certpager_days_left", "Days until the first leaf (over backends) expires", value=days
        )
    leaf = GaugeMetricFamily(
        "certpager_leaf_not_after_seconds", "Leaf notAfter (unix seconds), per backend", labels=["backend"]
    )
    for backend, not_after in leaves:
        leaf.add_metric([_backend_label(backend)], _ts(not_after))
    yield leaf
    chain = GaugeMetricFamily(
        "certpager_chain_not_after_seconds",
        "notAfter (unix seconds) of each certificate of the verified path (position 0: the leaf)",
        labels=["backend", "position", "subject"],
    )
    for backend in ok:
        assert backend.analysis is not None
        for position, cert in enumerate(backend.analysis.verified_path):
            chain.add_metric(
                [_backend_label(backend), str(position), _label(cert.subject)], _ts(cert.not_after)
            )
    yield chain


def _backends_differ(report: EndpointReport) -> bool:
    return len({b.findings for b in report.backends}) > 1


def _finding_family(report: EndpointReport) -> Metric:
    """One series per present finding; ``backend`` names the backend it was seen on when
    the backends differ, else it is empty (every backend, or not backend-specific)."""
    family = GaugeMetricFamily(
        "certpager_finding", "A present finding (docs/findings.md)", labels=["code", "severity", "backend"]
    )
    per_backend = _backends_differ(report)
    seen: set[tuple[str, str, str]] = set()
    for finding in report.findings:
        backends = finding.backends if per_backend and finding.backends else ("",)
        for backend in backends:
            key = (_label(finding.code), finding.severity.label, _label(backend))
            if key not in seen:
                seen.add(key)
                family.add_metric(list(key), 1)
    return family


def report_families(report: EndpointReport, duration: float) -> list[Metric]:
    """The metric families of one probe that took ``duration`` seconds."""
    families: list[Metric] = [
        GaugeMetricFamily(
            "probe_success", "1 when a TLS handshake completed", value=1 if _ok_backends(report) else 0
        ),
        GaugeMetricFamily("probe_duration_seconds", "Seconds the whole check took", value=duration),
        GaugeMetricFamily(
            "certpager_status",
            "Endpoint status: 0 ok, 1 warning, 2 critical, 3 page or error",
            value=STATUS_VALUES[report.status],
        ),
    ]
    info = GaugeMetricFamily("certpager_status_info", "The endpoint's status as a label", labels=["status"])
    info.add_metric([report.status.value], 1)
    families.append(info)
    families.extend(_expiry_families(report))
    families.append(_finding_family(report))
    return families


def failure_families(duration: float) -> list[Metric]:
    """The families of a probe that produced no report (its deadline passed)."""
    return [
        GaugeMetricFamily("probe_success", "1 when a TLS handshake completed", value=0),
        GaugeMetricFamily("probe_duration_seconds", "Seconds the whole check took", value=duration),
    ]


class StaticCollector(Collector):
    """A collector that yields families built beforehand (one per request registry)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        """The families."""
        return iter(self._families)


def exposition(families: Iterable[Metric]) -> bytes:
    """The text exposition of ``families``, through a fresh registry and ``generate_latest``."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StaticCollector(families))
    return generate_latest(registry)


__all__ = ["STATUS_VALUES", "exposition", "failure_families", "report_families"]
