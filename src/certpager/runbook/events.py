"""What a run reports, and how it asks: event dataclasses, confirmation request/reply, results.

The engine knows nothing of terminals or Textual. A front end (the CLI, the TUI)
passes two callables to :class:`certpager.runbook.engine.RunbookRun`:

- ``on_event(event: RunEvent) -> None`` receives every event below but the
  :class:`RecordOnly` ones, in order, on the event loop thread (a TUI posts them as messages);
- ``confirm(request: ConfirmRequest) -> Awaitable[ConfirmReply]`` is awaited
  before each step that needs a confirmation. The engine itself checks a typed
  reply against :attr:`ConfirmRequest.expected`, so a front end cannot get it wrong.

The same events are the audit log's source: the engine hands each one first to
:class:`certpager.runbook.audit_records.RunRecorder` (which writes its record, if it has
one) and then to the front end. :class:`RecordOnly` events are facts the audit log keeps
that a front end is not given.

All text in events that came from a remote host (output lines) is already
redacted and has control characters escaped; still render it literally
(never as markup).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from certpager.probe.model import CertInfo
from certpager.runbook.model import ConfirmKind, StepKind
from certpager.runbook.plan import Plan, PlannedStep
from certpager.ssh.base import ConnectionInfo


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ outcomes


class StepOutcome(enum.Enum):
    """How a step ended."""

    OK = "ok"
    """It ran and succeeded (exit 0; verification passed; confirmation given)."""
    FAILED = "failed"
    """It ran and failed (non-zero exit, signal, verification failed)."""
    TIMEOUT = "timeout"
    """Its timeout expired; the command was ended."""
    CANCELLED = "cancelled"
    """The operator cancelled it."""
    UNKNOWN = "unknown"
    """It may or may not have completed (connection dropped mid-step)."""
    DECLINED = "declined"
    """The operator said no (or typed the wrong name): it did not run."""
    SKIPPED = "skipped"
    """It did not run because an earlier step stopped the run."""

    @property
    def ok(self) -> bool:
        """Whether the run may go on after this outcome."""
        return self is StepOutcome.OK


class RunOutcome(enum.Enum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    """Every step succeeded and the verification (if any) passed."""
    FAILED = "failed"
    """A step failed, timed out, its outcome is unknown, or verification failed."""
    CANCELLED = "cancelled"
    """The operator cancelled it."""
    DECLINED = "declined"
    """The operator declined a confirmation; nothing after it ran."""


@dataclass(frozen=True)
class ServedCert:
    """A certificate as seen on one backend (or the stored one): what the before/after shows."""

    backend: str
    """``address:port`` it was served on, or ``stored`` / a path for the stored one."""
    serial: str
    """Serial number, upper-case hex."""
    sha256: str
    """SHA-256 fingerprint of the DER, lower-case hex."""
    not_after: datetime
    """Expiry (UTC)."""
    issuer: str
    """Issuer DN."""
    subject: str
    """Subject DN (display only; never substituted into commands)."""

    @classmethod
    def from_info(cls, backend: str, info: CertInfo) -> ServedCert:
        """Build from a parsed certificate."""
        return cls(backend, info.serial, info.sha256, info.not_after, info.issuer, info.subject)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "backend": self.backend,
            "serial": self.serial,
            "sha256": self.sha256,
            "not_after": self.not_after.isoformat(),
            "issuer": self.issuer,
            "subject": self.subject,
        }

    def short(self) -> str:
        """``serial 1A2B… sha256 ab12cd34… notAfter 2026-11-29``."""
        return f"serial {self.serial} sha256 {self.sha256[:16]}… notAfter {self.not_after:%Y-%m-%d %H:%M}Z"


@dataclass(frozen=True)
class StepResult:
    """How one step ended."""

    step_id: str
    """The step."""
    title: str
    """Its title."""
    kind: StepKind
    """What it was."""
    outcome: StepOutcome
    """How it ended."""
    message: str = ""
    """Plain words (``exit 1``, ``timed out after 60 s``, the decline reason...)."""
    exit_status: int | None = None
    """Exit status of the command."""
    exit_signal: str | None = None
    """Signal that ended the command."""
    duration: float = 0.0
    """Seconds."""
    remote_state: str = "ended"
    """``ended`` or ``unknown`` (whether the command is proven gone on the target)."""
    remote_note: str = ""
    """Details on the remote state."""
    stdout_bytes: int = 0
    """Bytes of stdout received."""
    stderr_bytes: int = 0
    """Bytes of stderr received."""
    parent: str | None = None
    """Id of the step whose ``on_failure`` this is."""


@dataclass(frozen=True)
class BackendVerdict:
    """Verification of one backend in one attempt."""

    backend: str
    """``address:port``."""
    passed: bool
    """All checks passed on this backend."""
    reasons: tuple[str, ...]
    """Why not (empty when passed)."""
    before: ServedCert | None
    """What it served before the run."""
    after: ServedCert | None
    """What it serves now (None when the handshake failed)."""
    findings_before: tuple[str, ...] = ()
    """Finding codes seen on it before the run (with the deeper checks the run needs)."""
    findings_after: tuple[str, ...] = ()
    """Finding codes seen on it in this round."""
    remaining: tuple[str, ...] = ()
    """Codes the run is for that remain on it (or are not proven gone)."""
    new: tuple[str, ...] = ()
    """Codes at warning or above that no backend had before the run (it got worse)."""


@dataclass(frozen=True)
class VerificationResult:
    """The verdict of a verification step."""

    passed: bool
    """On every backend, in the same round: the findings the run is for are gone, nothing
    got worse, and for a renewal the new certificate is served, trusted, matching, not expiring."""
    attempts: int
    """Handshake rounds made."""
    elapsed: float
    """Seconds spent."""
    backends: tuple[BackendVerdict, ...]
    """Per-backend verdicts of the last attempt."""
    stored: ServedCert | None
    """The stored certificate compared against, if any."""
    message: str
    """One line summary."""
    notes: tuple[str, ...] = ()
    """Extra facts (e.g. why the stored certificate could not be read)."""
    targets: tuple[str, ...] = ()
    """Finding codes the run was for."""
    gone: tuple[str, ...] = ()
    """Of those, the ones seen before the run and gone on every backend now."""
    remaining: tuple[str, ...] = ()
    """Of those, the ones still seen (or not proven gone) on some backend."""
    new: tuple[str, ...] = ()
    """Findings at warning or above that were not there before the run (it got worse)."""
    other: tuple[str, ...] = ()
    """Findings that were there before and still are, but the run was not for them."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the audit log)."""
        return {
            "passed": self.passed,
            "attempts": self.attempts,
            "elapsed": round(self.elapsed, 3),
            "message": self.message,
            "targets": list(self.targets),
            "gone": list(self.gone),
            "remaining": list(self.remaining),
            "new": list(self.new),
            "other": list(self.other),
            "stored": self.stored.to_dict() if self.stored else None,
            "notes": list(self.notes),
            "backends": [
                {
                    "backend": b.backend,
                    "passed": b.passed,
                    "reasons": list(b.reasons),
                    "before": b.before.to_dict() if b.before else None,
                    "after": b.after.to_dict() if b.after else None,
                    "findings_before": list(b.findings_before),
                    "findings_after": list(b.findings_after),
                }
                for b in self.backends
            ],
        }


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    run_id: str
    """The run."""
    outcome: RunOutcome
    """Overall outcome."""
    steps: tuple[StepResult, ...]
    """Every step, in the order handled (skipped ones included)."""
    verification: VerificationResult | None
    """The last verification, if a verification step ran."""
    message: str
    """One line summary."""
    duration: float
    """Seconds."""
    error: Exception | None = None
    """The error that stopped the run before or between steps (SSH, host key, audit)."""
    audit_path: str | None = None
    """The audit log written."""

    @property
    def succeeded(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome is RunOutcome.SUCCEEDED


# ------------------------------------------------------------------ confirmation


@dataclass(frozen=True)
class ConfirmRequest:
    """What the engine asks before a step that needs a confirmation."""

    run_id: str
    """The run."""
    endpoint: str
    """Endpoint name."""
    step: PlannedStep
    """The step about to run (its argv, command, target, message)."""
    kind: ConfirmKind
    """``PLAIN`` (yes/no) or ``TYPED``."""
    expected: str | None
    """For ``TYPED``: the text the operator must type (endpoint or certificate name)."""
    target: str
    """``user@host:port`` or ``local (user)`` the step runs on."""
    address: str | None
    """IP address connected to."""
    host_key_fingerprint: str | None
    """SHA256 fingerprint of the host key verified for this connection."""

    @property
    def text(self) -> str:
        """Everything the operator must see, as plain text (shown by the CLI; the TUI
        may lay it out differently but must show the same facts)."""
        step = self.step
        lines = [f"Step [{step.id}] {step.title}", f"  endpoint: {self.endpoint}"]
        if step.kind is StepKind.RUN:
            where = self.target
            if self.address:
                where += f" ({self.address})"
            lines.append(f"  on: {where}")
            if self.host_key_fingerprint:
                lines.append(f"  host key: {self.host_key_fingerprint}")
            lines.append(f"  command: {step.display_command}")
        if step.message:
            lines.extend(f"  ! {line}" for line in step.message.splitlines())
        return "\n".join(lines)

    @property
    def digest(self) -> str:
        """SHA-256 of :attr:`text` (recorded in the audit log with the answer)."""
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class ConfirmReply:
    """The operator's answer."""

    accepted: bool
    """Yes (for a typed confirmation: the operator submitted a text)."""
    typed: str | None = None
    """What was typed, for a typed confirmation."""

    @classmethod
    def yes(cls) -> ConfirmReply:
        """Plain yes."""
        return cls(True)

    @classmethod
    def no(cls) -> ConfirmReply:
        """No."""
        return cls(False)

    @classmethod
    def with_text(cls, text: str) -> ConfirmReply:
        """A typed answer (the engine compares it with the expected token)."""
        return cls(True, text)


Confirmer = Callable[[ConfirmRequest], Awaitable[ConfirmReply]]
"""The injected confirmation callable."""


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class RunEvent:
    """Base of every event a run emits."""

    run_id: str
    """The run."""
    at: datetime = field(default_factory=_now, kw_only=True)
    """When (UTC)."""


@dataclass(frozen=True)
class RunStarted(RunEvent):
    """The run holds the endpoint lock and the audit log has its opening record."""

    plan: Plan
    """What will run."""
    audit_path: str
    """The audit log."""
    lock: str
    """The run lock file held."""
    target_key: str
    """What the lock is for (the endpoint and its SSH target)."""


@dataclass(frozen=True)
class Connected(RunEvent):
    """The SSH connection is up, the host key verified (or the local runner is ready)."""

    info: ConnectionInfo
    """Target, address, host key fingerprint."""


@dataclass(frozen=True)
class BaselineCaptured(RunEvent):
    """The certificates served before the run (what verification compares against)."""

    certs: tuple[ServedCert, ...]
    """One per backend that completed a handshake."""
    error: str | None = None
    """Why no baseline could be taken, if so."""
    findings: tuple[str, ...] = ()
    """Finding codes seen before the run (any backend)."""
    targets: tuple[str, ...] = ()
    """The findings the run is for (chosen, or the current ones the runbook fixes)."""
    chosen: bool = False
    """Whether the targets were chosen (``--for``, the TUI) rather than found by this check."""
    by_backend: Mapping[str, tuple[str, ...]] | None = None
    """Finding codes seen before the run, per backend (sorted). None when the probe gave no
    report at all (then nothing was observed and no ``baseline`` record is written)."""
    stored: ServedCert | None = None
    """The stored certificate read before the run, if any."""
    notes: tuple[str, ...] = ()
    """Why the stored certificate could not be read, if so."""


@dataclass(frozen=True)
class StepStarted(RunEvent):
    """A step is about to be handled (its confirmation, if any, comes next)."""

    step: PlannedStep
    """The step."""
    number: str
    """``1``, ``2``, ``2.1`` (on_failure)..."""


@dataclass(frozen=True)
class ConfirmationAnswered(RunEvent):
    """The operator answered a confirmation."""

    step_id: str
    """The step."""
    accepted: bool
    """Whether the step may run."""
    detail: str
    """``yes``, ``no``, ``typed 'app'``, ``typed 'ap' (expected 'app')``..."""
    kind: ConfirmKind
    """``PLAIN`` or ``TYPED``."""
    asked_at: datetime
    """When the question was put to the operator."""
    shown_sha256: str
    """SHA-256 of the text shown (:attr:`ConfirmRequest.digest`)."""


@dataclass(frozen=True)
class CommandSent(RunEvent):
    """The command is about to be sent: a front end gets this event only once its
    ``step_intent`` record is durable."""

    step: PlannedStep
    """The step (argv, command, timeout, stdin)."""
    wire: str
    """The exact string sent (with the remote guard)."""
    info: ConnectionInfo
    """Where: target, address, host key verified."""

    @property
    def step_id(self) -> str:
        """The step's id."""
        return self.step.id

    @property
    def command(self) -> str:
        """``shlex.join(argv)``."""
        return self.step.command

    @property
    def target(self) -> str:
        """``user@host:port`` or ``local (user)``."""
        return self.info.label


@dataclass(frozen=True)
class OutputReceived(RunEvent):
    """One line of command output (redacted, control characters escaped)."""

    step_id: str
    """The step."""
    stream: str
    """``stdout`` or ``stderr``."""
    line: str
    """The line, without newline."""


@dataclass(frozen=True)
class CapturedOutput:
    """A command's output as the audit log keeps it (redacted, head and tail within a cap)."""

    stdout: str
    """Standard output kept."""
    stdout_truncated: bool
    """Whether some standard output was left out."""
    stderr: str
    """Standard error kept."""
    stderr_truncated: bool
    """Whether some standard error was left out."""


@dataclass(frozen=True)
class StepFinished(RunEvent):
    """A step ended (ran, failed, was declined or cancelled)."""

    result: StepResult
    """How."""
    attempted: bool = False
    """Whether the step was carried out: its command sent (or refused to start), its
    verification made, a confirmation step confirmed. False when it ended before that
    (declined, cancelled, not run); such a step has no ``step_result`` record."""
    output: CapturedOutput | None = None
    """For a command that ran: its output as recorded."""
    error: str | None = None
    """For a command that could not be started: why."""


@dataclass(frozen=True)
class StepSkipped(RunEvent):
    """A step will not run because an earlier one stopped the run."""

    step_id: str
    """The step."""
    title: str
    """Its title."""
    reason: str
    """Why."""


@dataclass(frozen=True)
class VerificationAttempted(RunEvent):
    """One round of handshakes of a verification step."""

    step_id: str
    """The step."""
    attempt: int
    """1, 2, ..."""
    backends: tuple[BackendVerdict, ...]
    """Per-backend verdicts."""
    passed: bool
    """All backends passed."""


@dataclass(frozen=True)
class VerificationFinished(RunEvent):
    """A verification step reached its verdict."""

    step_id: str
    """The step."""
    result: VerificationResult
    """Before/after and verdict."""


@dataclass(frozen=True)
class Notice(RunEvent):
    """Something the operator must know that is not a step result."""

    level: str
    """``info``, ``warning`` or ``error``."""
    message: str
    """Plain words."""


@dataclass(frozen=True)
class RunFinished(RunEvent):
    """The run ended; the closing audit record is written (or its failure reported)."""

    result: RunResult
    """How it ended."""


# ------------------------------------------------------------------ record-only events


@dataclass(frozen=True)
class RecordOnly(RunEvent):
    """A fact the audit log records and a front end is not given (the engine keeps these
    events from the front end: what it shows does not depend on them)."""


@dataclass(frozen=True)
class ConnectFailed(RecordOnly):
    """The SSH connection failed (the run then finishes with the error)."""

    target: str
    """Where certpager tried to connect."""
    error: str
    """Why it failed."""
    host_key_fingerprint: str | None = None
    """For a refused host key: the fingerprint the server offered."""
    host_key_refused: bool = False
    """Whether the host key was the reason."""


@dataclass(frozen=True)
class ConfirmationCancelled(RecordOnly):
    """The run was cancelled while a confirmation was asked (the step then finishes cancelled)."""

    step_id: str
    """The step."""
    kind: ConfirmKind
    """``PLAIN`` or ``TYPED``."""


@dataclass(frozen=True)
class VerificationStarted(RecordOnly):
    """A verification step starts its handshakes."""

    step_id: str
    """The step."""
    baseline: tuple[ServedCert, ...]
    """The certificates served before the run, compared against."""
    targets: tuple[str, ...]
    """The finding codes the run is for."""


@dataclass(frozen=True)
class StepNotDue(RecordOnly):
    """An ``on_failure`` step that was never due (its step succeeded or was itself skipped).
    Recorded as ``step_skipped``; a front end lists it as pending."""

    step_id: str
    """The step."""
    reason: str
    """Why."""


@dataclass(frozen=True)
class StepInterrupted(RecordOnly):
    """The task running the run was cancelled while a command ran: its outcome is unknown."""

    step_id: str
    """The step."""
    output: CapturedOutput
    """The output received until then."""


@dataclass(frozen=True)
class FrontEndFailed(RecordOnly):
    """The front end's event callback raised (the run goes on without it)."""

    error: str
    """``ExceptionType: message``."""


EventSink = Callable[[RunEvent], None]
"""The injected event callback."""
