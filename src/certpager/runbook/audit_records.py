"""The audit log as one more consumer of a run's events: each event type maps to its record.

:class:`RunRecorder` is the first sink the engine hands every event to (the front end
comes second). :func:`record_of` maps one event to the record it adds to the log, or to
None for an event the log does not keep (a step starting, an output line, a verification
attempt, a notice): one small function per event type, registered with
:func:`functools.singledispatch`. The records and their fields are described in
docs/audit-log.md; :class:`~certpager.runbook.audit.RunAudit` adds ``run_id`` and ``seq``
and redacts each record as a whole.

Records about no run's events stay explicit where they are written: ``outcome_unknown``
(:meth:`~certpager.runbook.audit.AuditLog.acknowledge`) reports another, dead run before
this run exists, and continues that run's ``seq``; the front end's ``silence_*`` records
(:mod:`certpager.fleet.silence`) go through the run's own
:class:`~certpager.runbook.audit.RunAudit`, so they take the run's ``seq``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from certpager import __version__
from certpager.errors import AuditError
from certpager.runbook.audit import RunAudit, operator
from certpager.runbook.events import (
    BaselineCaptured,
    CommandSent,
    ConfirmationAnswered,
    ConfirmationCancelled,
    Connected,
    ConnectFailed,
    FrontEndFailed,
    Notice,
    OutputReceived,
    RunEvent,
    RunFinished,
    RunStarted,
    StepFinished,
    StepInterrupted,
    StepNotDue,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
    VerificationStarted,
)
from certpager.runbook.model import StepKind

Record = tuple[str, dict[str, Any]]
"""A record type and its fields (``run_id``, ``seq``, ``v`` and ``ts`` are added when written)."""


class RunRecorder:
    """Writes the record of each event of one run (an event sink that fails closed)."""

    def __init__(self, audit: RunAudit):
        self.audit = audit
        """The run's records (``run_id``, ``seq``, redaction)."""
        self.broken: str | None = None
        """Why the last record could not be written, once one could not."""

    def __call__(self, event: RunEvent) -> None:
        """Write ``event``'s record, if it has one.

        Raises:
            AuditError: the record could not be written (remembered in :attr:`broken`);
                the engine then gives the event to no one else and stops before the next step.
        """
        record = record_of(event, self.audit)
        if record is None:
            return
        record_type, fields = record
        try:
            self.audit.write(record_type, **fields)
        except AuditError as exc:
            self.broken = str(exc)
            raise


@functools.singledispatch
def record_of(event: RunEvent, audit: RunAudit) -> Record | None:
    """The record ``event`` adds to the log, or None (``audit`` gives the run's redactor and
    how many records it has). Every event type registers its own function below."""
    raise TypeError(f"no audit mapping for {type(event).__name__}")


@record_of.register(StepStarted)
@record_of.register(OutputReceived)
@record_of.register(VerificationAttempted)
@record_of.register(Notice)
def _no_record(event: RunEvent, audit: RunAudit) -> None:
    """Shown, not recorded: the records around them hold the facts (output goes in the
    ``step_result`` record, the last verification round in ``verification``)."""
    return None


@record_of.register
def _run_start(event: RunStarted, audit: RunAudit) -> Record:
    plan = event.plan
    return "run_start", {
        "endpoint": plan.endpoint.name,
        "runbook": plan.runbook.name,
        "runbook_path": plan.runbook.file,
        "runbook_sha256": plan.runbook.sha256,
        "certpager_version": __version__,
        "operator": operator(),
        "pid": os.getpid(),
        "lock": event.lock,
        "target_key": event.target_key,
        "params": {v.name: v.value for v in plan.values},
        "fixes": list(plan.runbook.fixes),
        "for_findings": list(plan.targets) if plan.targets else None,
        "plan": plan.to_dict(),
    }


@record_of.register
def _connected(event: Connected, audit: RunAudit) -> Record:
    info = event.info
    return "connected", {
        "target": info.label,
        "address": info.address,
        "host_key_fingerprint": info.host_key_fingerprint,
        "host_key_type": info.host_key_type,
    }


@record_of.register
def _connect_failed(event: ConnectFailed, audit: RunAudit) -> Record:
    fields: dict[str, Any] = {"target": event.target, "error": event.error}
    if event.host_key_refused:
        fields.update(host_key_fingerprint=event.host_key_fingerprint, reason="host_key")
    return "connect_failed", fields


@record_of.register
def _baseline(event: BaselineCaptured, audit: RunAudit) -> Record | None:
    if event.by_backend is None:  # the probe gave no report: nothing was observed
        return None
    return "baseline", {
        "certs": [c.to_dict() for c in event.certs],
        "error": event.error,
        "findings": {label: list(codes) for label, codes in event.by_backend.items()},
        "stored": event.stored.to_dict() if event.stored is not None else None,
        "notes": list(event.notes),
        "targets": list(event.targets),
        "targets_from": "chosen" if event.chosen else "the most severe current findings the runbook fixes",
    }


@record_of.register
def _confirmation(event: ConfirmationAnswered, audit: RunAudit) -> Record:
    return "confirmation", {
        "step_id": event.step_id,
        "kind": event.kind.value,
        "answer": "yes" if event.accepted else "no",
        "detail": audit.redactor.text(event.detail),
        "asked_at": event.asked_at.isoformat(),
        "shown_sha256": event.shown_sha256,
    }


@record_of.register
def _confirmation_cancelled(event: ConfirmationCancelled, audit: RunAudit) -> Record:
    return "confirmation", {"step_id": event.step_id, "kind": event.kind.value, "answer": "cancelled"}


@record_of.register
def _step_intent(event: CommandSent, audit: RunAudit) -> Record:
    step, info, redact = event.step, event.info, audit.redactor.text
    return "step_intent", {
        "step_id": step.id,
        "parent": step.parent,
        "target": info.label,
        "address": info.address,
        "host_key_fingerprint": info.host_key_fingerprint,
        "argv": [redact(a) for a in step.argv],
        "command": redact(step.command),
        "wire": redact(event.wire),
        "timeout": step.timeout,
        "stdin": "given" if step.stdin is not None else None,
    }


@record_of.register
def _verify_intent(event: VerificationStarted, audit: RunAudit) -> Record:
    return "step_intent", {
        "step_id": event.step_id,
        "kind": "verify",
        "baseline": [c.to_dict() for c in event.baseline],
        "targets": list(event.targets),
    }


@record_of.register
def _step_result(event: StepFinished, audit: RunAudit) -> Record | None:
    r = event.result
    if not event.attempted:  # declined, cancelled or refused before it ran
        return None
    if r.kind is StepKind.CONFIRM:
        return "step_result", {"step_id": r.step_id, "outcome": r.outcome.value, "kind": "confirm"}
    if r.kind is StepKind.VERIFY:
        return "step_result", {"step_id": r.step_id, "outcome": r.outcome.value, "message": r.message}
    if event.output is None:  # the command could not be started
        message = audit.redactor.text(event.error or r.message)
        return "step_result", {"step_id": r.step_id, "outcome": r.outcome.value, "message": message}
    out = event.output
    return "step_result", {
        "step_id": r.step_id,
        "outcome": r.outcome.value,
        "exit_status": r.exit_status,
        "exit_signal": r.exit_signal,
        "duration": round(r.duration, 3),
        "remote_state": r.remote_state,
        "remote_note": r.remote_note,
        "message": audit.redactor.text(r.message),
        "stdout": out.stdout,
        "stdout_bytes": r.stdout_bytes,
        "stdout_truncated": out.stdout_truncated,
        "stderr": out.stderr,
        "stderr_bytes": r.stderr_bytes,
        "stderr_truncated": out.stderr_truncated,
    }


@record_of.register
def _step_interrupted(event: StepInterrupted, audit: RunAudit) -> Record:
    return "step_result", {
        "step_id": event.step_id,
        "outcome": "unknown",
        "message": "the run's task was cancelled mid-step",
        "stdout": event.output.stdout,
        "stderr": event.output.stderr,
    }


@record_of.register(StepSkipped)
@record_of.register(StepNotDue)
def _step_skipped(event: StepSkipped | StepNotDue, audit: RunAudit) -> Record:
    return "step_skipped", {"step_id": event.step_id, "reason": audit.redactor.text(event.reason)}


@record_of.register
def _verification(event: VerificationFinished, audit: RunAudit) -> Record:
    return "verification", {"step_id": event.step_id, **event.result.to_dict()}


@record_of.register
def _run_end(event: RunFinished, audit: RunAudit) -> Record | None:
    if audit.seq == 0:  # the opening record was never written: there is nothing to close
        return None
    result, redact = event.result, audit.redactor.text
    return "run_end", {
        "outcome": result.outcome.value,
        "message": redact(result.message),
        "duration": round(result.duration, 3),
        "error": redact(str(result.error)) if result.error else None,
    }


@record_of.register
def _front_end_failed(event: FrontEndFailed, audit: RunAudit) -> Record:
    return "event_sink_error", {"error": event.error}
