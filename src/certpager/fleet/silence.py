"""Silence an endpoint's alerts while a runbook fixes it (``certpager run --silence``, the TUI).

One silence per alert (its ``alertname`` and its ``instance``/``target``/``endpoint``
label, matched exactly), created once the operator confirmed it and before the first
step, lasting the whole plan (every step's timeout and every verification's deadline)
plus a margin. ``createdBy`` is the operator as the audit log names them; the comment
names the runbook and the run id. When the run ends VERIFIED the silences are expired;
otherwise they are kept, and the operator is told why and until when. Each of these is
an audit record (``silence_created``, ``silence_expired``, ``silence_kept``; see
docs/audit-log.md) carrying the silence id, written through the run's own records
(:attr:`certpager.runbook.engine.RunbookRun.records`): they take the run's ``run_id``
and its ``seq``.

However the run ends (verified, failed, cancelled, stopped by a second Ctrl-C, never
started, an exception), :meth:`RunSilences.finish` records exactly one
``silence_expired`` or ``silence_kept`` per silence created: the front end calls it in a
``finally``, with the reason when there is no result (:func:`stopped_why`), and a second
call records nothing more. Keeping a silence needs no request, so it is recorded even
while the front end is being torn down.

Nothing here stops a run: a silence that cannot be created, expired or audited is a
notice (the returned lines), and the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from certpager.config import AlertmanagerSettings, Config
from certpager.errors import AlertmanagerError, AuditError, RunLockedError
from certpager.fleet.alertmanager import AlertmanagerClient, fetch_alerts, silence_labels
from certpager.fleet.pages import Page, map_alerts
from certpager.runbook.audit import RunAudit, operator
from certpager.runbook.events import RunOutcome, RunResult
from certpager.runbook.plan import Plan

#: Added to the plan's own time: confirmations are answered by people.
MARGIN = timedelta(minutes=15)


def run_duration(plan: Plan) -> timedelta:
    """The longest a run of ``plan`` takes: every step's timeout (``on_failure`` steps
    included) and every verification's deadline."""
    seconds = 0.0
    for step in plan.all_steps():
        seconds += step.timeout
        if step.verify is not None:
            seconds += step.verify.deadline
    return timedelta(seconds=seconds)


def created_by() -> str:
    """The operator, as the audit log's ``run_start`` names them (``SUDO_USER`` first)."""
    who = operator()
    return str(who.get("sudo_user") or who.get("user") or "certpager")


def _when(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class RunSilences:
    """The silences of one run."""

    settings: AlertmanagerSettings
    """Where they are created."""
    records: RunAudit
    """The run's records: silence records take its ``run_id`` and its ``seq``."""
    plan: Plan
    """The run's plan."""
    created: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """``(silence id, labels matched)`` of each silence created."""
    ended: set[str] = field(default_factory=set)
    """Silences whose end (expired or kept) was recorded."""
    ends_at: datetime | None = None
    """When they end by themselves."""

    @property
    def run_id(self) -> str:
        """The run."""
        return self.records.run_id

    def _record(self, kind: str, **fields: object) -> str | None:
        """Write an audit record; the reason in words when it could not be written."""
        try:
            self.records.write(kind, endpoint=self.plan.endpoint.name, **fields)
        except AuditError as exc:
            return f"the audit log has no {kind} record: {exc}"
        return None

    async def create(self, pages: Sequence[Page], now: datetime | None = None) -> list[str]:
        """Silence ``pages``' alerts for the run; notices for the operator.

        Each silence is in :attr:`created` as soon as Alertmanager gave its id, so one
        created before the front end was stopped mid-way is still ended by :meth:`finish`."""
        start = now or datetime.now(UTC)
        self.ends_at = start + run_duration(self.plan) + MARGIN
        client = AlertmanagerClient(self.settings)
        notes: list[str] = []
        wanted = {tuple(sorted(silence_labels(p.labels).items())) for p in pages}
        for items in sorted(wanted):
            labels = dict(items)
            try:
                silence_id = await client.create_silence(
                    labels,
                    starts_at=start,
                    ends_at=self.ends_at,
                    created_by=created_by(),
                    comment=f"certpager: runbook {self.plan.runbook.name} on {self.plan.endpoint.name}, run {self.run_id}",
                )
            except AlertmanagerError as exc:
                notes.append(f"no silence for {_matchers(labels)}: {exc}; the run goes on")
                continue
            self.created.append((silence_id, labels))
            notes.append(f"silenced {_matchers(labels)} until {_when(self.ends_at)} (silence {silence_id})")
            problem = self._record(
                "silence_created", silence_id=silence_id, matchers=labels, ends_at=_when(self.ends_at)
            )
            if problem:
                notes.append(problem)
        return notes

    async def finish(self, result: RunResult | None, why: str | None = None) -> list[str]:
        """Expire the silences when the run is VERIFIED; else keep them, saying why and until
        when. Each silence's end is recorded once: a second call records nothing.

        Args:
            result: the run's result; None when it has none (never started, or stopped).
            why: why there is no result (:func:`stopped_why`), for the kept note.
        """
        verified = (
            result is not None and result.outcome is RunOutcome.SUCCEEDED and result.verification is not None
        )
        client = AlertmanagerClient(self.settings)
        notes: list[str] = []
        for silence_id, labels in self.created:
            if silence_id in self.ended:
                continue
            self.ended.add(silence_id)
            if not verified:
                notes.extend(self._keep(silence_id, labels, why or _why_kept(result)))
                continue
            try:
                await client.expire_silence(silence_id)
            except AlertmanagerError as exc:
                notes.extend(self._keep(silence_id, labels, f"it could not be expired: {exc}"))
                continue
            except BaseException:
                # Stopped while expiring: whether Alertmanager expired it is unknown.
                self._keep(silence_id, labels, "certpager was stopped while expiring it")
                raise
            notes.append(f"silence {silence_id} expired: the fix is verified")
            notes.extend(filter(None, [self._record("silence_expired", silence_id=silence_id)]))
        return notes

    def _keep(self, silence_id: str, labels: dict[str, str], why: str) -> list[str]:
        """Record that ``silence_id`` is kept and why; the note for the operator."""
        until = self._until()
        notes = [f"silence {silence_id} kept until {until} ({why}): {_matchers(labels)}"]
        problem = self._record("silence_kept", silence_id=silence_id, reason=why, until=until)
        return [*notes, problem] if problem else notes

    def _until(self) -> str:
        return _when(self.ends_at) if self.ends_at is not None else "its end"


async def silence_run(config: Config, silences: RunSilences) -> list[str]:
    """``certpager run --silence``: ask Alertmanager which alerts page about the plan's
    endpoint and silence them for the run (none firing, or Alertmanager down: a notice)."""
    endpoint = silences.plan.endpoint.name
    try:
        batch = await fetch_alerts(silences.settings)
    except AlertmanagerError as exc:
        return [f"nothing silenced: {exc}; the run goes on"]
    pages = map_alerts(batch.alerts, config.endpoints, config.settings).of(endpoint)
    if not pages:
        return [f"nothing silenced: no alert pages about {endpoint} now"]
    return await silences.create(pages)


def stopped_why(exc: BaseException) -> str:
    """Why a run has no result, in words for a kept silence's note (``exc``: what stopped it)."""
    if isinstance(exc, RunLockedError):
        return f"the run did not start: {exc}"
    if isinstance(exc, asyncio.CancelledError):
        return "certpager stopped the run before it ended (its task was cancelled); the remote state may be unknown"
    if isinstance(exc, KeyboardInterrupt):
        return "certpager was interrupted before the run ended; the remote state may be unknown"
    return f"the run stopped on an error: {type(exc).__name__}: {exc}"


def _why_kept(result: RunResult | None) -> str:
    if result is None:
        return "the run ended without a result"
    if result.outcome is RunOutcome.SUCCEEDED:
        return "the run succeeded without a verification"
    return f"the run is {result.outcome.value}"


def _matchers(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


__all__ = ["MARGIN", "RunSilences", "created_by", "run_duration", "silence_run", "stopped_why"]
