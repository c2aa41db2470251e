"""The verification step: prove with fresh handshakes that the incident is gone on every backend.

A run is started *for* findings (its targets: the codes the operator chose, or the
endpoint's current findings that the runbook's ``fixes:`` names). Verification
re-probes every backend with the deeper checks those findings need (a protocol
scan for ``tls1_0_enabled``, the HTTP checks for ``hsts_missing``, the stored
certificate for ``served_not_stored``...) and polls, quickly at first (0.1 s,
doubling up to the step's ``interval``: a reload applies within a fraction of a
second), until a deadline. A backend passes in a round when:

- its handshake completes;
- none of the target findings remains on it, and each one is *proven* gone (the
  check that reports it ran and says so: TLS 1.0 refused, HSTS sent, the stored
  certificate read and equal to the served one);
- nothing got worse: no finding at warning or above that no backend had before;
- for a renewal (``expect`` other than ``findings``): the chain verifies, the name
  matches, more than ``min_days_left`` days are left, and the leaf is the new one
  (``changed``: differs from every leaf served before the run; ``stored``: equals the
  stored leaf; ``changed_or_stored``: equals the stored leaf when it could be read,
  otherwise changed).

The run passes only when every backend passes in the same round, and that pass
holds: the next round, ``confirm_wait`` seconds later (0.5 s unless the step says),
passes too. After ``nginx -s reload`` old workers keep accepting connections until
they handle the master's QUIT, so one passing round can be one lucky handshake on a
new worker. The confirming round runs even when the deadline passed meanwhile (a
verification may end up to one wait and one round after its deadline); when it fails,
polling goes on as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from certpager.config import Endpoint, HttpCheck, Settings, with_overrides
from certpager.formats import format_seconds
from certpager.probe.engine import internal_error_report
from certpager.probe.findings import SPECS, make
from certpager.probe.model import BackendResult, CertInfo, ChainAnalysis, EndpointReport, Finding, Severity
from certpager.runbook.events import BackendVerdict, ServedCert, VerificationResult
from certpager.runbook.model import VerifyExpect, VerifySpec

ProbeFn = Callable[[Endpoint], Awaitable[EndpointReport]]
"""Fresh handshakes to every backend of an endpoint, plus the deeper checks its flags
turn on (default: ``certpager.probe.check_endpoint``). The engine passes the endpoint
as :func:`probe_view` shaped it."""

FIRST_WAIT = 0.1
"""Seconds before the second attempt; each later wait doubles, up to the step's interval."""

_PROTOCOL_VERSION = {"sslv3_enabled": "SSLv3", "tls1_0_enabled": "TLSv1", "tls1_1_enabled": "TLSv1.1"}
CHECK_OF: dict[str, str] = {
    **dict.fromkeys(
        ("sslv3_enabled", "tls1_0_enabled", "tls1_1_enabled", "no_tls1_3", "weak_cipher"), "protocols"
    ),
    **dict.fromkeys(("hsts_missing", "hsts_short", "no_https_redirect", "http_check_failed"), "http"),
    "served_not_stored": "stored",
    "no_sni_cert_differs": "no_sni",
}
"""The check that reports a finding code (the rest come from the main handshakes)."""


def checks_for(codes: Iterable[str]) -> frozenset[str]:
    """The deeper checks (``protocols``, ``http``, ``stored``, ``no_sni``) that ``codes`` need."""
    return frozenset(CHECK_OF[c] for c in codes if c in CHECK_OF)


def probe_view(endpoint: Endpoint, checks: Iterable[str]) -> Endpoint:
    """``endpoint`` with exactly the deeper checks ``checks`` on (never an AIA fetch:
    it explains, never changes a verdict, and may leave loopback)."""
    wanted = set(checks)
    return with_overrides(
        endpoint,
        check_protocols="protocols" in wanted,
        check_no_sni="no_sni" in wanted,
        http=(endpoint.http or HttpCheck()) if "http" in wanted else None,
        fetch_aia=False,
    )


def default_probe(settings: Settings | None = None) -> ProbeFn:
    """``check_endpoint`` with the deeper checks the endpoint's flags ask for."""
    from certpager.probe import check_endpoint

    async def probe(endpoint: Endpoint) -> EndpointReport:
        return await check_endpoint(endpoint, settings=settings)

    return probe


def served_certs(report: EndpointReport) -> dict[str, ServedCert]:
    """``{backend: leaf}`` for every backend of ``report`` that completed a handshake."""
    out: dict[str, ServedCert] = {}
    for backend in report.backends:
        analysis = backend.analysis
        if backend.handshake.ok and analysis is not None and analysis.leaf is not None:
            out[backend.handshake.label] = ServedCert.from_info(backend.handshake.label, analysis.leaf)
    return out


def observe(report: EndpointReport, stored: ServedCert | None) -> dict[str, dict[str, Finding]]:
    """``{backend: {code: finding}}`` seen in one round (pure).

    A backend holds its own findings plus the endpoint-level ones (backends disagree,
    HTTP, no-SNI). With ``stored`` given, ``served_not_stored`` is decided here, per
    backend, from the leaf it serves.
    """
    own = {code for b in report.backends for code in (f.code for f in b.findings)}
    endpoint_level = [f for f in report.findings if f.code not in own and f.code != "served_not_stored"]
    out: dict[str, dict[str, Finding]] = {}
    for backend in report.backends:
        label = backend.handshake.label
        seen: dict[str, Finding] = {}
        for f in (*backend.findings, *endpoint_level):
            if stored is not None and f.code == "served_not_stored":
                continue
            seen.setdefault(f.code, f)
        leaf = backend.analysis.leaf if backend.analysis is not None else None
        if stored is not None and backend.handshake.ok and leaf is not None and leaf.sha256 != stored.sha256:
            seen["served_not_stored"] = make(
                "served_not_stored",
                f"serves serial {leaf.serial}, the stored certificate is serial {stored.serial}",
                backends=(label,),
            )
        out[label] = seen
    return out


def default_targets(fixes: Iterable[str], before: Mapping[str, Mapping[str, Finding]]) -> tuple[str, ...]:
    """What a run is for when nobody chose: the most severe of the findings seen before the
    run that the runbook fixes (the incident), in ``fixes:`` order (pure).

    Less severe ones it could also fix (an HSTS warning next to a missing intermediate) are
    not required to go: name them with ``--for`` to make them part of the proof.
    """
    worst: dict[str, Severity] = {}
    for found in before.values():
        for code, finding in found.items():
            worst[code] = max(worst.get(code, finding.severity), finding.severity)
    present = [c for c in fixes if c in worst]
    if not present:
        return ()
    top = max(worst[c] for c in present)
    return tuple(c for c in present if worst[c] == top)


def title_of(code: str) -> str:
    """The catalogue's short title of ``code``."""
    spec = SPECS.get(code)
    return spec.title if spec is not None else code


def _unproven(
    code: str, backend: BackendResult, report: EndpointReport, stored: ServedCert | None
) -> str | None:
    """Why the absence of ``code`` on ``backend`` proves nothing (None: it proves it is gone)."""
    check = CHECK_OF.get(code)
    if check == "protocols":
        protocols = backend.deep.protocols
        if protocols is None:
            return "the protocol scan did not run"
        versions = protocols.versions
        version = _PROTOCOL_VERSION.get(code)
        if version is not None and versions.get(version) != "refused":
            return f"{version} is {versions.get(version, 'not tested')}, not refused"
        return None
    if check == "http":
        key = "redirect" if code in ("no_https_redirect", "http_check_failed") else "hsts"
        state = _http_state(report, key)
        good: tuple[str, ...] = ("redirects", "closed") if key == "redirect" else ("ok",)
        if code == "http_check_failed":
            good = ("redirects", "closed", "no_redirect")
        if state not in good:
            return f"the {key} check says {state or 'nothing'}"
        return None
    if check == "stored":
        return None if stored is not None else "the stored certificate could not be read"
    if check == "no_sni":
        no_sni = report.deep.no_sni
        if no_sni is None or no_sni.state in ("failed", "skipped"):
            return "the no-SNI check did not complete"
        return None
    return None


def _http_state(report: EndpointReport, key: str) -> str | None:
    """The state of the ``redirect`` or ``hsts`` check (None: it did not run)."""
    http = report.deep.http
    if http is None:
        return None
    result = http.redirect if key == "redirect" else http.hsts
    return result.state if result is not None else None


def _sev(findings: Mapping[str, Finding], code: str) -> Severity:
    return findings[code].severity


def judge(
    report: EndpointReport,
    endpoint: Endpoint,
    spec: VerifySpec,
    before: Mapping[str, ServedCert],
    stored: ServedCert | None,
    now: datetime | None = None,
    *,
    targets: Iterable[str] = (),
    before_findings: Mapping[str, Mapping[str, Finding]] | None = None,
) -> tuple[BackendVerdict, ...]:
    """Per-backend verdicts for one round of handshakes (pure).

    Args:
        report: this round's probe.
        endpoint: the endpoint (trust, thresholds, name).
        spec: the verification step's parameters.
        before: leaves served before the run, per backend.
        stored: the stored leaf, when read.
        now: when to judge expiry at.
        targets: finding codes the run is for.
        before_findings: :func:`observe` of the baseline (None: not taken).
    """
    round_ = _Round(
        endpoint=endpoint,
        spec=spec,
        before_any=frozenset(c.sha256 for c in before.values()),
        stored=stored,
        now=now or datetime.now(UTC),
        targets=tuple(dict.fromkeys(targets)),
        had=frozenset(code for seen in (before_findings or {}).values() for code in seen),
        baseline=before_findings is not None,
    )
    after_by_backend = observe(report, stored)
    verdicts: list[BackendVerdict] = []
    for backend in report.backends:
        label = backend.handshake.label
        prior = before.get(label)
        seen = after_by_backend.get(label, {})
        after, reasons, remaining, new = _backend_round(round_, report, backend, seen, prior)
        verdicts.append(
            BackendVerdict(
                label,
                not reasons,
                tuple(reasons),
                prior,
                after,
                findings_before=tuple(sorted((before_findings or {}).get(label, {}))),
                findings_after=tuple(sorted(seen)),
                remaining=tuple(remaining),
                new=tuple(new),
            )
        )
    return tuple(verdicts)


@dataclass(frozen=True)
class _Round:
    """What :func:`judge` judges every backend of one round against."""

    endpoint: Endpoint
    spec: VerifySpec
    before_any: frozenset[str]
    """Leaves (SHA-256) served by any backend before the run."""
    stored: ServedCert | None
    now: datetime
    targets: tuple[str, ...]
    had: frozenset[str]
    """Finding codes of the baseline, over every backend."""
    baseline: bool
    """Whether a baseline was taken (new findings are judged only then)."""


def _backend_round(
    r: _Round,
    report: EndpointReport,
    backend: BackendResult,
    seen: Mapping[str, Finding],
    prior: ServedCert | None,
) -> tuple[ServedCert | None, list[str], list[str], list[str]]:
    """``(leaf served, reasons it fails, targets remaining, new findings)`` of one backend."""
    analysis = backend.analysis
    if not backend.handshake.ok or analysis is None or analysis.leaf is None:
        hs = backend.handshake
        return None, [f"no handshake: {hs.error or hs.error_code or 'no certificate'}"], list(r.targets), []
    leaf = analysis.leaf
    reasons: list[str] = []
    remaining: list[str] = []
    for code in r.targets:
        if code in seen:
            remaining.append(code)
            reasons.append(f"{code} remains ({seen[code].message})")
        else:
            why = _unproven(code, backend, report, r.stored)
            if why is not None:
                remaining.append(code)
                reasons.append(f"{code} not proven gone: {why}")
    new: list[str] = []
    if r.baseline:
        for code in seen:
            if code not in r.had and code not in r.targets and _sev(seen, code) >= Severity.WARNING:
                new.append(code)
                reasons.append(f"got worse: {code} is new ({seen[code].message})")
    if r.spec.expect is not VerifyExpect.FINDINGS:
        reasons.extend(_renewal_reasons(r, analysis, leaf, seen, prior))
    return ServedCert.from_info(backend.handshake.label, leaf), reasons, remaining, new


def _renewal_reasons(
    r: _Round, analysis: ChainAnalysis, leaf: CertInfo, seen: Mapping[str, Finding], prior: ServedCert | None
) -> list[str]:
    """Why a renewal is not done yet on one backend (none: it is)."""
    reasons: list[str] = []
    min_days = (
        r.spec.min_days_left if r.spec.min_days_left is not None else r.endpoint.thresholds.warning_days
    )
    if not analysis.trusted and not _already(r.had, seen, r.targets, "chain"):
        reasons.append(f"chain does not verify: {analysis.verify_error or 'untrusted'}")
    if not analysis.hostname_ok and not _already(r.had, seen, r.targets, "hostname"):
        reasons.append(f"certificate does not match {r.endpoint.verify_name}")
    days = leaf.days_left(r.now)
    if days <= min_days:
        reasons.append(f"only {days:.1f} days left (needs more than {min_days:g})")
    reasons.extend(_newness(r.spec.expect, leaf.sha256, leaf.serial, prior, r.before_any, r.stored))
    return reasons


_CHAIN_CODES = frozenset(
    {"chain_incomplete", "chain_invalid", "untrusted_root", "self_signed", "chain_cert_expired"}
)


def _already(had: frozenset[str], seen: Mapping[str, Finding], targets: tuple[str, ...], what: str) -> bool:
    """Whether an untrusted chain / name mismatch is already reported as a finding: as a
    target that remains, or as one that was there before the run (not this run's to fix)."""
    codes = _CHAIN_CODES if what == "chain" else frozenset({"hostname_mismatch"})
    present = codes.intersection(seen)
    return bool(present) and all(c in targets or c in had for c in present)


def _newness(
    expect: VerifyExpect,
    sha256: str,
    serial: str,
    prior: ServedCert | None,
    before_any: frozenset[str],
    stored: ServedCert | None,
) -> list[str]:
    """Why the served leaf is not the new one (empty: it is)."""
    old = {prior.sha256} if prior is not None else before_any
    changed = sha256 not in old
    same_as_stored = stored is not None and sha256 == stored.sha256
    if expect is VerifyExpect.CHANGED and not changed:
        return [f"still serves the certificate from before the run (serial {serial})"]
    if expect is VerifyExpect.STORED:
        if stored is None:
            return ["no stored certificate to compare with"]
        if not same_as_stored:
            return [f"serves serial {serial}, the stored one is serial {stored.serial}"]
    if expect is VerifyExpect.CHANGED_OR_STORED:
        if stored is not None and not same_as_stored:
            what = "the certificate from before the run" if not changed else "another certificate"
            return [f"serves {what} (serial {serial}), not the stored one (serial {stored.serial})"]
        if stored is None and not changed:
            return [f"still serves the certificate from before the run (serial {serial})"]
    return []


@dataclass(frozen=True)
class Targets:
    """What a verification proves: the findings the run is for, and what was seen before."""

    codes: tuple[str, ...] = ()
    """Finding codes the run is for."""
    before: Mapping[str, Mapping[str, Finding]] | None = None
    """:func:`observe` of the baseline (None when no baseline could be taken)."""


def _summary(
    verdicts: tuple[BackendVerdict, ...], targets: Targets, spec: VerifySpec, stored: ServedCert | None
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(gone, remaining, new, other)`` codes over every backend."""
    had = {code for seen in (targets.before or {}).values() for code in seen}
    remaining = tuple(dict.fromkeys(c for v in verdicts for c in v.remaining))
    gone = tuple(c for c in targets.codes if c in had and c not in remaining)
    new = tuple(dict.fromkeys(c for v in verdicts for c in v.new))
    other = tuple(
        dict.fromkeys(
            c
            for v in verdicts
            for c in v.findings_after
            if c not in targets.codes and c not in new and c in had
        )
    )
    return gone, remaining, new, other


def describe_outcome(result: VerificationResult) -> str:
    """``chain_incomplete gone; tls1_1_enabled remains; new: hsts_missing`` (empty when nothing to say)."""
    parts: list[str] = []
    if result.gone:
        parts.append(f"{', '.join(result.gone)} gone")
    if result.remaining:
        parts.append(f"{', '.join(result.remaining)} remain{'s' if len(result.remaining) == 1 else ''}")
    if result.new:
        parts.append(f"new: {', '.join(result.new)}")
    return "; ".join(parts)


def next_wait(attempt: int, interval: float) -> float:
    """Seconds to wait after attempt ``attempt`` (1-based): 0.1, 0.2, 0.4... up to ``interval``."""
    return float(min(FIRST_WAIT * 2.0 ** (attempt - 1), interval))


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
    targets: Targets | None = None,
    on_report: Callable[[EndpointReport], None] | None = None,
) -> VerificationResult:
    """Poll fresh handshakes until every backend passes in two rounds in a row (the second
    ``spec.confirm_wait`` seconds after the first) or ``spec.deadline`` passes.

    ``endpoint`` is probed as given: shape it with :func:`probe_view` first.
    """
    targets = targets or Targets()
    started = time.monotonic()
    deadline = started + spec.deadline
    attempt = 0
    verdicts: tuple[BackendVerdict, ...] = ()

    def result(passed: bool, message: str) -> VerificationResult:
        gone, remaining, new, other = _summary(verdicts, targets, spec, stored)
        return VerificationResult(
            passed,
            attempt,
            time.monotonic() - started,
            verdicts,
            stored,
            message,
            notes,
            targets=targets.codes,
            gone=gone,
            remaining=remaining,
            new=new,
            other=other,
        )

    confirming = False  # whether this round must confirm the previous round's pass
    last_pass = 0
    while True:
        attempt += 1
        verdicts = await _round(endpoint, spec, deadline, before, stored, probe, targets, on_report)
        passed = bool(verdicts) and all(v.passed for v in verdicts)
        if on_attempt is not None:
            on_attempt(attempt, verdicts)
        if passed and confirming:
            return result(True, _pass_message(verdicts, targets, spec, stored))
        if passed:  # maybe one lucky handshake: confirm it, even past the deadline
            confirming, last_pass, wait = True, attempt, spec.confirm_wait
        else:
            confirming, now = False, time.monotonic()
            if now >= deadline:
                break
            wait = min(next_wait(attempt, spec.interval), deadline - now)
        if await _cancelled_during(cancel, wait):
            return result(False, "verification cancelled")
    return result(False, _fail_message(verdicts, spec, last_pass))


async def _round(
    endpoint: Endpoint,
    spec: VerifySpec,
    deadline: float,
    before: Mapping[str, ServedCert],
    stored: ServedCert | None,
    probe: ProbeFn,
    targets: Targets,
    on_report: Callable[[EndpointReport], None] | None,
) -> tuple[BackendVerdict, ...]:
    """One round: fresh handshakes to every backend (each within the time left, at least
    a second), judged."""
    remaining_time = max(deadline - time.monotonic(), 1.0)
    ep = with_overrides(endpoint, timeout=min(endpoint.timeout, remaining_time))
    report = await _probe_safely(probe, ep)
    if on_report is not None:
        on_report(report)
    return judge(
        report, endpoint, spec, before, stored, targets=targets.codes, before_findings=targets.before
    )


async def _probe_safely(probe: ProbeFn, endpoint: Endpoint) -> EndpointReport:
    """``probe(endpoint)``; a probe that raises (a bug, or a custom probe) gives the
    internal-error report, so the attempt fails with the reason instead of the run crashing."""
    try:
        return await probe(endpoint)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return internal_error_report(endpoint, exc, datetime.now(UTC))


async def _cancelled_during(cancel: asyncio.Event | None, wait: float) -> bool:
    """Wait ``wait`` seconds, or less when ``cancel`` is set; whether it was."""
    if cancel is None:
        await asyncio.sleep(wait)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancel.wait(), wait)
    return cancel.is_set()


def _fail_message(verdicts: tuple[BackendVerdict, ...], spec: VerifySpec, last_pass: int = 0) -> str:
    """Why verification failed at its deadline, backend by backend (and, when a round
    passed, that its pass did not hold)."""
    failing = [v for v in verdicts if not v.passed]
    if not verdicts:
        summary = "no backend answered"
    else:
        summary = "; ".join(f"{v.backend}: {', '.join(v.reasons)}" for v in failing)
    held = f" (attempt {last_pass} passed, the next round did not)" if last_pass else ""
    return (
        f"after {format_seconds(spec.deadline)}, {len(failing)} of {len(verdicts)} backend(s) fail"
        f"{held}: {summary}"
    )


def _pass_message(
    verdicts: tuple[BackendVerdict, ...], targets: Targets, spec: VerifySpec, stored: ServedCert | None
) -> str:
    n = len(verdicts)
    gone, _remaining, _new, _other = _summary(verdicts, targets, spec, stored)
    parts: list[str] = []
    if gone:
        parts.append(f"{', '.join(gone)} gone on every backend ({n})")
    absent = [c for c in targets.codes if c not in gone]
    if absent:
        parts.append(f"{', '.join(absent)} not seen on any backend ({n}), before or after")
    if spec.expect is not VerifyExpect.FINDINGS:
        what = "the stored certificate" if stored is not None else "the new certificate"
        parts.append(f"every backend ({n}) serves {what}")
    if not parts:
        parts.append(f"every backend ({n}) answers")
    if targets.before is not None:
        parts.append("nothing got worse")
    # No duration here: the step's elapsed time is added after the message (one per message).
    return "; ".join(parts) + "; held on a second round"
