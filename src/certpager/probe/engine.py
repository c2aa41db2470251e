"""The endpoint monitor: resolve, handshake every backend, analyse, merge.

``check_endpoint`` never raises: every failure is an error finding. One overall
deadline covers DNS, every backend and the deeper checks of one endpoint;
``check_endpoints`` bounds how many endpoints are in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from certpager.config import Endpoint, Settings, is_ip
from certpager.formats import format_seconds
from certpager.probe import findings as F
from certpager.probe.analysis import analyze_chain
from certpager.probe.handshake import ClientOptions, ResolveError, handshake, resolve
from certpager.probe.model import (
    ALL_CHECKS,
    NO_ENDPOINT_FACTS,
    BackendResult,
    DeepCheck,
    EndpointFacts,
    EndpointReport,
    Finding,
    Handshake,
    Severity,
    Status,
    Timings,
)
from certpager.probe.trust import TrustStore, TrustStoreError, get_trust_store


def client_options(endpoint: Endpoint) -> ClientOptions:
    """The default probe's client settings for ``endpoint``."""
    return ClientOptions(client_cert=endpoint.client_cert, client_key=endpoint.client_key)


def _needs_dns(endpoint: Endpoint) -> bool:
    """Whether any address of ``endpoint`` is a name to resolve."""
    if endpoint.backends:
        return not all(is_ip(b.host) for b in endpoint.backends)
    return not is_ip(endpoint.host)


async def _targets(
    endpoint: Endpoint, dns_timeout: float
) -> tuple[list[tuple[str, int, float]], Handshake | None]:
    """``[(address, port, dns_ms)]`` to probe, or an error handshake on DNS failure."""
    pairs = [(b.host, b.port) for b in endpoint.backends] or [(endpoint.host, endpoint.port)]
    out: list[tuple[str, int, float]] = []
    for host, port in pairs:
        if is_ip(host):
            out.append((host.strip("[]"), port, 0.0))
            continue
        start = time.perf_counter()
        try:
            addrs = await resolve(host, port, dns_timeout)
        except ResolveError as exc:
            return [], Handshake(
                address=host,
                port=port,
                sni=endpoint.server_name,
                error_code="dns_error",
                error=str(exc),
                timings=Timings(dns_ms=(time.perf_counter() - start) * 1000),
            )
        dns_ms = (time.perf_counter() - start) * 1000
        out.extend((addr, port, dns_ms) for _fam, addr in addrs)
    return out, None


def backend_result(endpoint: Endpoint, hs: Handshake, now: datetime) -> BackendResult:
    """Analyse one handshake into findings."""
    found: list[Finding] = []
    label = (hs.label,)
    if hs.error_code is not None:
        found.append(F.make(hs.error_code, hs.error or hs.error_code, backends=label))
        return BackendResult(handshake=hs, analysis=None, findings=tuple(found))
    try:
        trust = get_trust_store(endpoint.ca_file)
    except TrustStoreError as exc:
        found.append(F.make("untrusted_root", f"cannot load the trust store: {exc}", backends=label))
        return BackendResult(handshake=hs, analysis=None, findings=tuple(found))
    analysis = analyze_chain(
        hs.chain_der,
        endpoint.verify_name,
        now,
        trust,
        endpoint.thresholds,
        verified_path=hs.verified_path if hs.verified_by == trust.name else None,
    )
    found.extend(_with_backend(f, label) for f in analysis.findings)
    if hs.client_cert_requested:
        names = ", ".join(hs.client_ca_names) or "any CA (the server sent no names)"
        found.append(
            F.make(
                "client_cert_required",
                f"the server requests a client certificate (mTLS); accepted CAs: {names}",
                backends=label,
            )
        )
        if hs.client_auth_error and endpoint.client_cert:
            found.append(
                F.make(
                    "client_cert_rejected",
                    f"the server refused the configured client certificate {endpoint.client_cert}: "
                    f"{hs.client_auth_error}",
                    backends=label,
                )
            )
    return BackendResult(handshake=hs, analysis=analysis, findings=tuple(found))


def _with_backend(f: Finding, label: tuple[str, ...]) -> Finding:
    return Finding(f.code, f.severity, f.message, f.hint, f.runbook, label)


def merge_findings(backends: Sequence[BackendResult], extra: Sequence[Finding] = ()) -> tuple[Finding, ...]:
    """Merge per-backend findings: one finding per (code, message), naming the
    backends it was seen on (none when seen on all). Worst first."""
    merged: dict[tuple[str, str], tuple[Finding, list[str]]] = {}
    for b in backends:
        for f in b.findings:
            key = (f.code, f.message)
            if key in merged:
                merged[key][1].extend(x for x in f.backends if x not in merged[key][1])
            else:
                merged[key] = (f, list(f.backends))
    all_labels = {b.handshake.label for b in backends}
    out: list[Finding] = []
    for f, labels in merged.values():
        shown = () if set(labels) >= all_labels and len(all_labels) > 0 else tuple(labels)
        if len(all_labels) <= 1:
            shown = ()
        out.append(Finding(f.code, f.severity, f.message, f.hint, f.runbook, shown))
    out.extend(extra)
    out.sort(key=lambda f: -f.severity)
    return tuple(out)


def status_of(findings: Sequence[Finding]) -> Status:
    """Worst status over findings."""
    return Status.from_severity(max((f.severity for f in findings), default=None))


def build_report(
    endpoint: Endpoint,
    backends: Sequence[BackendResult],
    checked_at: datetime,
    extra_findings: Sequence[Finding] = (),
    deep: EndpointFacts = NO_ENDPOINT_FACTS,
) -> EndpointReport:
    """Assemble an :class:`EndpointReport` from backend results."""
    merged = merge_findings(backends, extra_findings)
    ok = [b for b in backends if b.handshake.ok]
    error = None
    if not ok:
        error = "; ".join(dict.fromkeys(b.handshake.error or "" for b in backends)) or "no backend"
    return EndpointReport(
        name=endpoint.name,
        host=endpoint.host,
        port=endpoint.port,
        sni=endpoint.server_name,
        status=status_of(merged),
        findings=merged,
        backends=tuple(backends),
        checked_at=checked_at,
        error=error,
        deep=deep,
    )


def with_findings(
    report: EndpointReport, added: Sequence[Finding], deep: EndpointFacts | None = None
) -> EndpointReport:
    """A copy of ``report`` with more endpoint-level findings and, when given, the
    endpoint's facts ``deep`` (replacing the report's)."""
    findings = tuple(sorted((*report.findings, *added), key=lambda f: -f.severity))
    return replace(
        report, status=status_of(findings), findings=findings, deep=report.deep if deep is None else deep
    )


def with_backends(
    report: EndpointReport,
    backends: Sequence[BackendResult],
    added: Sequence[Finding] = (),
    deep: EndpointFacts | None = None,
) -> EndpointReport:
    """A copy of ``report`` with refined backend results (findings re-merged over
    them), the endpoint-level findings earlier hooks added kept, ``added`` appended,
    and, when given, the endpoint's facts ``deep`` (replacing the report's)."""
    derived = set(merge_findings(report.backends))
    endpoint_level = [f for f in report.findings if f not in derived]
    findings = merge_findings(backends, (*endpoint_level, *added))
    return replace(
        report,
        status=status_of(findings),
        findings=findings,
        backends=tuple(backends),
        deep=report.deep if deep is None else deep,
    )


async def check_endpoint(
    endpoint: Endpoint,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    checks: frozenset[DeepCheck] = ALL_CHECKS,
) -> EndpointReport:
    """Probe every backend of ``endpoint`` with fresh handshakes and analyse them.

    Never raises (cancellation aside). The whole check, DNS included, finishes
    within ``endpoint.timeout`` plus a small margin.

    Args:
        endpoint: what to check.
        settings: global settings (DNS timeout).
        now: the time to judge expiry at (default: the moment the check starts).
        checks: the deeper checks to run (:func:`certpager.probe.deep.deep_checks`),
            each only when the endpoint's own flags also turn it on; empty: none.
    """
    settings = settings or Settings()
    checked_at = now or datetime.now(UTC)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + endpoint.timeout
    try:
        targets, dns_failure = await _resolve_within(endpoint, settings)
        if dns_failure is not None:
            return build_report(endpoint, [backend_result(endpoint, dns_failure, checked_at)], checked_at)
        report = await _main_handshakes(endpoint, targets, checked_at, max(deadline - loop.time(), 0.01))
        if checks and loop.time() < deadline:
            # Imported here, not at the top: the deeper checks build on this module's helpers.
            from certpager.probe.deep import deep_checks

            try:
                report = await deep_checks(endpoint, report, deadline, checks)
            except Exception as exc:
                report = with_findings(report, [], EndpointFacts(error=f"{type(exc).__name__}: {exc}"))
        return report
    except Exception as exc:
        return internal_error_report(endpoint, exc, checked_at)


def internal_error_report(endpoint: Endpoint, exc: Exception, now: datetime) -> EndpointReport:
    """The report for a check that raised (a bug): one failed handshake that says so."""
    hs = Handshake(
        address=endpoint.host,
        port=endpoint.port,
        sni=endpoint.server_name,
        error_code="handshake_failed",
        error=f"internal error while probing: {type(exc).__name__}: {exc}",
    )
    return build_report(endpoint, [backend_result(endpoint, hs, now)], now)


async def _resolve_within(
    endpoint: Endpoint, settings: Settings
) -> tuple[list[tuple[str, int, float]], Handshake | None]:
    """:func:`_targets`, with name resolution bounded by the endpoint's timeout."""
    if not _needs_dns(endpoint):
        return await _targets(endpoint, settings.dns_timeout)
    try:
        async with asyncio.timeout(endpoint.timeout):
            return await _targets(endpoint, min(settings.dns_timeout, endpoint.timeout))
    except TimeoutError:
        return [], Handshake(
            address=endpoint.host,
            port=endpoint.port,
            sni=endpoint.server_name,
            error_code="dns_error",
            error=f"DNS lookup of {endpoint.host} did not finish within {format_seconds(endpoint.timeout)}",
        )


async def _main_handshakes(
    endpoint: Endpoint, targets: list[tuple[str, int, float]], checked_at: datetime, remaining: float
) -> EndpointReport:
    """One fresh handshake per target, analysed, as a report."""
    options = client_options(endpoint)
    try:
        trust: TrustStore | None = get_trust_store(endpoint.ca_file)
    except TrustStoreError:
        trust = None  # backend_result reports it
    probes = [
        handshake(
            addr,
            port,
            endpoint.server_name,
            timeout=remaining,
            options=options,
            dns_ms=dns_ms,
            budget=endpoint.timeout,
            trust=trust,
        )
        for addr, port, dns_ms in targets
    ]
    # A task per backend, even for one. Awaiting a lone handshake inline in the endpoint's
    # task executes fewer instructions (30,000 per endpoint, counted with cachegrind) but
    # costs far more time: at 1000 endpoints +0.3 s CPU in one process and +1.0 s over two
    # workers (7 interleaved reps each, measured twice, a session apart). Valgrind runs
    # the client ~50x slower than nginx answers, so it cannot see event-loop timing.
    handshakes = await asyncio.gather(*probes)
    return build_report(endpoint, [backend_result(endpoint, hs, checked_at) for hs in handshakes], checked_at)


async def stream_endpoints(
    endpoints: Sequence[Endpoint],
    on_report: Callable[[int, EndpointReport], None],
    *,
    settings: Settings | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
    checker: EndpointChecker | None = None,
) -> None:
    """Check many endpoints, at most ``concurrency`` at a time, and hand each report to
    ``on_report(index, report)`` (``index`` into ``endpoints``) as it completes.

    Keeps no report: a bulk run that encodes or prints each one as it comes holds
    only what is in flight (and the garbage collector has that much less to scan).
    The deadline of each endpoint starts when it gets a slot, not when queued.
    ``checker`` replaces :func:`check_endpoint` (e.g. to add the stored comparison).
    """
    settings = settings or Settings()
    check = checker or check_endpoint
    limit = asyncio.Semaphore(concurrency or settings.concurrency)

    async def one(index: int, ep: Endpoint) -> None:
        async with limit:
            report = await check(ep, settings=settings, now=now)
        on_report(index, report)

    await asyncio.gather(*(one(i, ep) for i, ep in enumerate(endpoints)))


async def check_endpoints(
    endpoints: Sequence[Endpoint],
    *,
    settings: Settings | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
    on_report: Callable[[int, EndpointReport], None] | None = None,
    checker: EndpointChecker | None = None,
) -> list[EndpointReport]:
    """:func:`stream_endpoints`, keeping every report: the list in input order.
    ``on_report(index, report)``, when given, is still called as each one completes."""
    reports: list[EndpointReport | None] = [None] * len(endpoints)

    def keep(index: int, report: EndpointReport) -> None:
        reports[index] = report
        if on_report is not None:
            on_report(index, report)

    await stream_endpoints(
        endpoints, keep, settings=settings, concurrency=concurrency, now=now, checker=checker
    )
    return [r for r in reports if r is not None]


class EndpointChecker(Protocol):
    """Anything shaped like :func:`check_endpoint`."""

    def __call__(
        self, endpoint: Endpoint, *, settings: Settings | None = ..., now: datetime | None = ...
    ) -> Awaitable[EndpointReport]: ...


def sort_reports(reports: Sequence[EndpointReport], now: datetime | None = None) -> list[EndpointReport]:
    """Worst first, then fewest days left, then name."""

    def key(r: EndpointReport) -> tuple[int, float, str]:
        days = r.days_left(now)
        return (-r.status.rank, days if days is not None else float("inf"), r.name)

    return sorted(reports, key=key)


__all__ = [
    "Severity",
    "backend_result",
    "build_report",
    "check_endpoint",
    "check_endpoints",
    "merge_findings",
    "sort_reports",
    "stream_endpoints",
    "with_backends",
    "with_findings",
]
