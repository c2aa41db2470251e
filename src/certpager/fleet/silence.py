"""Silence an endpoint's alerts while a runbook fixes it (``certpager run --silence``, the TUI).

One silence per alert (its ``alertname`` and its ``instance``/``target``/``endpoint``
label, matched exactly), created once the operator confirmed it and before the first
step, lasting the whole plan (every step's timeout and every verification's deadline)
plus a margin. ``createdBy`` is the operator as the audit log names them; the comment
names the runbook and the run id. When the run ends VERIFIED the silences are expired;
otherwise they are kept, and the operator is told until when. Each of these is an
audit record (``silence_created``, ``silence_expired``, ``silence_kept``; see
docs/audit-log.md) carrying the run id and the silence id.

Nothing here stops a run: a silence that cannot be created, expired or audited is a
notice (the returned lines), and the run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from certpager.config import AlertmanagerSettings, Config
from certpager.errors import AlertmanagerError, AuditError
from certpager.fleet.alertmanager import AlertmanagerClient, fetch_alerts, silence_labels
from certpager.fleet.pages import Page, map_alerts
from certpager.runbook.audit import AuditLog, operator
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
    audit: AuditLog
    """Where they are recorded."""
    plan: Plan
    """The run's plan."""
    run_id: str
    """The run."""
    created: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """``(silence id, labels matched)`` of each silence created."""
    ends_at: datetime | None = None
    """When they end by themselves."""

    def _record(self, kind: str, **fields: object) -> str | None:
        """Write an audit record; the reason in words when it could not be written."""
        try:
            self.audit.append(
                {"type": kind, "run_id": self.run_id, "endpoint": self.plan.endpoint.name, **fields}
            )
        except AuditError as exc:
            return f"the audit log has no {kind} record: {exc}"
        return None

    async def create(self, pages: Sequence[Page], now: datetime | None = None) -> list[str]:
        """Silence ``pages``' alerts for the run; notices for the operator."""
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

    async def finish(self, result: RunResult | None) -> list[str]:
        """Expire the silences when the run is VERIFIED; else keep them, saying until when
        (``result`` None: the run did not start or was stopped without a result)."""
        verified = (
            result is not None and result.outcome is RunOutcome.SUCCEEDED and result.verification is not None
        )
        client = AlertmanagerClient(self.settings)
        notes: list[str] = []
        until = _when(self.ends_at) if self.ends_at is not None else "its end"
        for silence_id, labels in self.created:
            if verified:
                try:
                    await client.expire_silence(silence_id)
                except AlertmanagerError as exc:
                    notes.append(f"silence {silence_id} could not be expired ({exc}); it ends at {until}")
                    problem = self._record(
                        "silence_kept", silence_id=silence_id, reason=str(exc), until=until
                    )
                else:
                    notes.append(f"silence {silence_id} expired: the fix is verified")
                    problem = self._record("silence_expired", silence_id=silence_id)
            else:
                why = _why_kept(result)
                notes.append(f"silence {silence_id} kept until {until} ({why}): {_matchers(labels)}")
                problem = self._record("silence_kept", silence_id=silence_id, reason=why, until=until)
            if problem:
                notes.append(problem)
        return notes


async def silence_run(
    config: Config, plan: Plan, run_id: str, audit: AuditLog
) -> tuple[RunSilences | None, list[str]]:
    """``certpager run --silence``: ask Alertmanager which alerts page about the plan's
    endpoint and silence them for the run (none firing, or Alertmanager down: a notice)."""
    settings = config.settings.alertmanager
    if settings is None:
        return None, []
    try:
        batch = await fetch_alerts(settings)
    except AlertmanagerError as exc:
        return None, [f"nothing silenced: {exc}; the run goes on"]
    pages = map_alerts(batch.alerts, config.endpoints, config.settings).of(plan.endpoint.name)
    if not pages:
        return None, [f"nothing silenced: no alert pages about {plan.endpoint.name} now"]
    silences = RunSilences(settings, audit, plan, run_id)
    return silences, await silences.create(pages)


def _why_kept(result: RunResult | None) -> str:
    if result is None:
        return "the run ended without a result"
    if result.outcome is RunOutcome.SUCCEEDED:
        return "the run succeeded without a verification"
    return f"the run is {result.outcome.value}"


def _matchers(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


__all__ = ["MARGIN", "RunSilences", "created_by", "run_duration", "silence_run"]
