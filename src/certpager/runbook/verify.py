"""The verification step: prove with fresh handshakes that every backend serves the new certificate.

A reload takes a moment to apply (nginx answers with the old certificate for
~0.1 s after ``-s reload``), so this polls until a deadline. A backend passes
when its handshake completes, the chain verifies against the endpoint's trust
setting, the name matches, more than ``min_days_left`` days are left, and the
leaf is the new one:

- ``changed``: its SHA-256 differs from every leaf served before the run;
- ``stored``: it equals the stored leaf;
- ``changed_or_stored`` (default): when the stored leaf could be read, it must
  equal it (the strongest proof); otherwise it must have changed.

The run passes only when every backend passes in the same round.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from certpager.config import Endpoint, Settings, with_overrides
from certpager.formats import format_seconds
from certpager.probe.model import EndpointReport
from certpager.runbook.events import BackendVerdict, ServedCert, VerificationResult
from certpager.runbook.model import VerifyExpect, VerifySpec

ProbeFn = Callable[[Endpoint], Awaitable[EndpointReport]]
"""Fresh handshakes to every backend of an endpoint (default: ``certpager.probe.check_endpoint``)."""


def default_probe(settings: Settings | None = None) -> ProbeFn:
    """``check_endpoint`` without the deeper checks (protocol scans, HTTP)."""
    from certpager.probe import check_endpoint

    accepts_deep = "deep" in inspect.signature(check_endpoint).parameters

    async def probe(endpoint: Endpoint) -> EndpointReport:
        lean = with_overrides(endpoint, check_protocols=False, http=None)
        if accepts_deep:
            return await check_endpoint(lean, settings=settings, deep=False)
        return await check_endpoint(lean, settings=settings)

    return probe


def served_certs(report: EndpointReport) -> dict[str, ServedCert]:
    """``{backend: leaf}`` for every backend of ``report`` that completed a handshake."""
    out: dict[str, ServedCert] = {}
    for backend in report.backends:
        analysis = backend.analysis
        if backend.handshake.ok and analysis is not None and analysis.leaf is not None:
            out[backend.handshake.label] = ServedCert.from_info(backend.handshake.label, analysis.leaf)
    return out


def judge(
    report: EndpointReport,
    endpoint: Endpoint,
    spec: VerifySpec,
    before: Mapping[str, ServedCert],
    stored: ServedCert | None,
    now: datetime | None = None,
) -> tuple[BackendVerdict, ...]:
    """Per-backend verdicts for one round of handshakes (pure)."""
    min_days = spec.min_days_left if spec.min_days_left is not None else endpoint.thresholds.warning_days
    before_any = {c.sha256 for c in before.values()}
    verdicts: list[BackendVerdict] = []
    for backend in report.backends:
        label = backend.handshake.label
        prior = before.get(label)
        reasons: list[str] = []
        after: ServedCert | None = None
        analysis = backend.analysis
        if not backend.handshake.ok or analysis is None or analysis.leaf is None:
            reasons.append(
                f"no handshake: {backend.handshake.error or backend.handshake.error_code or 'no certificate'}"
            )
        else:
            leaf = analysis.leaf
            after = ServedCert.from_info(label, leaf)
            if not analysis.trusted:
                reasons.append(f"chain does not verify: {analysis.verify_error or 'untrusted'}")
            if not analysis.hostname_ok:
                reasons.append(f"certificate does not match {endpoint.verify_name}")
            days = leaf.days_left(now or datetime.now(UTC))
            if days <= min_days:
                reasons.append(f"only {days:.1f} days left (needs more than {min_days:g})")
            old = {prior.sha256} if prior is not None else before_any
            changed = leaf.sha256 not in old
            same_as_stored = stored is not None and leaf.sha256 == stored.sha256
            if spec.expect is VerifyExpect.CHANGED and not changed:
                reasons.append(f"still serves the certificate from before the run (serial {leaf.serial})")
            elif spec.expect is VerifyExpect.STORED:
                if stored is None:
                    reasons.append("no stored certificate to compare with")
                elif not same_as_stored:
                    reasons.append(f"serves serial {leaf.serial}, the stored one is serial {stored.serial}")
            elif spec.expect is VerifyExpect.CHANGED_OR_STORED:
                if stored is not None and not same_as_stored:
                    what = "the certificate from before the run" if not changed else "another certificate"
                    reasons.append(
                        f"serves {what} (serial {leaf.serial}), not the stored one (serial {stored.serial})"
                    )
                elif stored is None and not changed:
                    reasons.append(f"still serves the certificate from before the run (serial {leaf.serial})")
        verdicts.append(BackendVerdict(label, not reasons, tuple(reasons), prior, after))
    return tuple(verdicts)


async def verify_endpoint(
    endpoint: Endpoint,
    spec: VerifySpec,
    *,
    before: Mapping[str, ServedCert],
    stored: ServedCert | None,
    probe: ProbeFn,
    cancel: asyncio.Event | None = None,
    on_attempt: Callable[[int, tuple[BackendVerdict, ...]], None] | None = None,
    notes: tuple[str, ...] = (),
) -> VerificationResult:
    """Poll fresh handshakes until every backend passes or ``spec.deadline`` passes."""
    started = time.monotonic()
    deadline = started + spec.deadline
    attempt = 0
    verdicts: tuple[BackendVerdict, ...] = ()
    while True:
        attempt += 1
        remaining = max(deadline - time.monotonic(), 1.0)
        ep = with_overrides(endpoint, timeout=min(endpoint.timeout, remaining))
        report = await probe(ep)
        verdicts = judge(report, endpoint, spec, before, stored)
        passed = bool(verdicts) and all(v.passed for v in verdicts)
        if on_attempt is not None:
            on_attempt(attempt, verdicts)
        if passed:
            return VerificationResult(
                True,
                attempt,
                time.monotonic() - started,
                verdicts,
                stored,
                f"every backend ({len(verdicts)}) serves the new certificate",
                notes,
            )
        if time.monotonic() + spec.interval > deadline:
            break
        if cancel is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), spec.interval)
            if cancel.is_set():
                return VerificationResult(
                    False,
                    attempt,
                    time.monotonic() - started,
                    verdicts,
                    stored,
                    "verification cancelled",
                    notes,
                )
        else:
            await asyncio.sleep(spec.interval)
    failing = [v for v in verdicts if not v.passed]
    if not verdicts:
        summary = "no backend answered"
    else:
        summary = "; ".join(f"{v.backend}: {', '.join(v.reasons)}" for v in failing)
    return VerificationResult(
        False,
        attempt,
        time.monotonic() - started,
        verdicts,
        stored,
        f"after {format_seconds(spec.deadline)}, {len(failing)} of {len(verdicts)} backend(s) fail: {summary}",
        notes,
    )
