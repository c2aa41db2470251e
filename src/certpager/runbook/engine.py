"""The runbook engine: execute a :class:`~certpager.runbook.plan.Plan`, step by step.

Usage (the CLI and the TUI do exactly this)::

    runbook = find_runbook("certbot-force-renew", runbook_dirs(settings))
    plan = build_plan(runbook, endpoint, {"reload_command": "..."})   # validates; runs nothing
    run = RunbookRun(plan, confirm=ask, on_event=show, settings=settings)
    result = await run.execute()          # RunResult; raises only RunLockedError
    ...
    run.cancel()                          # from any callback/task on the same loop

Order of a run:

1. Take the target's run lock (:class:`RunLockedError` if another run holds it;
   see :mod:`certpager.runbook.lock`).
2. Write the ``run_start`` audit record (nothing runs if the log cannot be written).
3. Connect to the SSH target (host key verified) before asking anything, so a
   refused host key stops the run before the first confirmation.
4. Take the baseline when the plan verifies: the certificates and findings seen now,
   with the deeper checks the runbook's ``fixes:`` need. It settles what the run is
   for: the plan's chosen findings, or the current findings the runbook fixes.
5. For each step: ask for its confirmation (if any); write and fsync the
   ``step_intent`` record; send the command; stream output; record the result.
   A failure runs the step's ``on_failure`` steps and stops the run unless the
   step says ``continue_on_error``. Later steps are recorded as skipped.
6. Write ``run_end``; release the lock; close the connection.

Events and records: each fact of a run is one typed event (:mod:`certpager.runbook.events`),
emitted once, first to the audit log's :class:`~certpager.runbook.audit_records.RunRecorder`
(the log holds the records of the run's events, in order) and then to the front end. Where a
record comes before an action (``run_start``, ``step_intent``, ``confirmation``), a failure to
write it stops the action and the front end is not told it happened (a confirmation is shown
as not given); a closing record that cannot be written becomes a notice.

Cancellation: :meth:`RunbookRun.cancel` ends the running command (signal, then a
kill of its process group, then proof it is gone) and stops the run; cancelling
the task that awaits :meth:`execute` does the same on the way out and still
writes the closing records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from certpager.config import Settings
from certpager.errors import AuditError, CertpagerError, HostKeyError, SSHError
from certpager.errors import _Cancelled as _Cancelled
from certpager.formats import format_seconds
from certpager.probe.model import Finding
from certpager.runbook.audit import (
    AuditLog,
    LineRedactor,
    OutputCapture,
    Redactor,
    RunAudit,
    is_secret_key,
    operator,
)
from certpager.runbook.audit_records import RunRecorder
from certpager.runbook.events import (
    BaselineCaptured,
    CapturedOutput,
    CommandSent,
    ConfirmationAnswered,
    ConfirmationCancelled,
    Confirmer,
    ConfirmReply,
    ConfirmRequest,
    Connected,
    ConnectFailed,
    EventSink,
    FrontEndFailed,
    Notice,
    OutputReceived,
    RecordOnly,
    RunEvent,
    RunFinished,
    RunOutcome,
    RunResult,
    RunStarted,
    ServedCert,
    StepFinished,
    StepInterrupted,
    StepNotDue,
    StepOutcome,
    StepResult,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
    VerificationResult,
    VerificationStarted,
)
from certpager.runbook.lock import EndpointLock, default_lock_dir
from certpager.runbook.model import ConfirmKind, ParamType, StepKind
from certpager.runbook.plan import Plan, PlannedStep
from certpager.runbook.template import sanitize_output
from certpager.runbook.verify import (
    ProbeFn,
    Targets,
    checks_for,
    default_probe,
    default_targets,
    observe,
    probe_view,
    served_certs,
    verify_endpoint,
)
from certpager.ssh import (
    CommandResult,
    CommandRunner,
    ConnectionInfo,
    RemoteState,
    RunnerFactory,
    describe_exit,
    runner_for,
)
from certpager.ssh.local import LocalRunner

T = TypeVar("T")

_FREE_TEXT = frozenset({ParamType.STRING, ParamType.COMMAND, ParamType.ARGS})

_EXIT_HINTS = {
    126: "the command is not executable on the target",
    127: "command not found on the target (is it installed, and on the login shell's PATH?)",
}


def plan_redactor(plan: Plan) -> Redactor:
    """The redactor of a run: hides the values of ``secret: true`` parameters and of free-text
    parameters whose name says secret (``api_token``...) wherever they appear. A parameter
    whose type makes it an identifier (``secret: {type: k8s_name}`` names a Kubernetes
    Secret; hosts, paths, URLs, numbers) is not a secret."""
    free_text = {p.name for p in plan.runbook.params if p.type in _FREE_TEXT}
    named = [v.name for v in plan.values if v.secret or (v.name in free_text and is_secret_key(v.name))]
    values = [v.value for v in plan.values if not v.secret and v.name in named]
    public = [v.name for v in plan.values if v.name not in named]
    return Redactor((*plan.secrets, *values), named, learn=True, public_names=public)


def _endpoint_lock(plan: Plan, lock_dir: Path) -> EndpointLock:
    """The run lock of ``plan``'s endpoint on its SSH target (or on this machine)."""
    target = plan.target
    return EndpointLock(
        plan.endpoint,
        lock_dir,
        ssh_host="local" if target is not None and target.local else (target.host if target else None),
        ssh_port=target.port if target is not None and not target.local else None,
    )


def new_run_id() -> str:
    """A unique, sortable run id: ``20261127T101500Z-1a2b3c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunbookRun:
    """One run of one plan. Create, then ``await execute()`` once.

    Every event goes to two sinks, in order: the audit log's :class:`RunRecorder` (which
    writes the event's record, if it has one, and fails closed) and then the front end's
    ``on_event`` (which never sees :class:`~certpager.runbook.events.RecordOnly` events,
    nor an event whose record could not be written where that stops what it announces).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        confirm: Confirmer,
        on_event: EventSink | None = None,
        settings: Settings | None = None,
        audit: AuditLog | None = None,
        runner_factory: RunnerFactory | None = None,
        local_runner: CommandRunner | None = None,
        probe: ProbeFn | None = None,
        lock_dir: Path | None = None,
        run_id: str | None = None,
    ):
        """Args:
        plan: from :func:`certpager.runbook.plan.build_plan`.
        confirm: awaited before each step that needs a confirmation.
        on_event: receives every :class:`~certpager.runbook.events.RunEvent` but the record-only ones.
        settings: global settings (probe DNS timeout).
        audit: the audit log (default: :func:`certpager.runbook.audit.default_audit_path`).
        runner_factory: builds the SSH target's runner (default: asyncssh / local).
        local_runner: runner for ``where: local`` steps (default: :class:`LocalRunner`).
        probe: fresh-handshake function for baseline and verification.
        lock_dir: where run locks live (default :func:`~certpager.runbook.lock.default_lock_dir`:
            ``$CERTPAGER_LOCK_DIR``, ``settings.lock_dir``, ``/run/lock/certpager``).
        run_id: force a run id (default: time + random).
        """
        self.plan = plan
        """What this run executes."""
        self.run_id = run_id or new_run_id()
        """Unique id (also in every audit record)."""
        self.settings = settings or Settings()
        self.audit_log = audit or AuditLog()
        """The audit log written."""
        self._confirm = confirm
        self._on_event = on_event
        self._runner_factory = runner_factory or runner_for
        self._local_runner = local_runner
        self._probe = probe or default_probe(self.settings)
        self._lock = _endpoint_lock(plan, lock_dir or default_lock_dir(self.settings))
        self._cancel = asyncio.Event()
        self._cancel_reason = ""
        self._redactor = plan_redactor(plan)
        self.records = RunAudit(self.audit_log, self.run_id, self._redactor)
        """The run's records (``run_id``, ``seq``, redaction): a front end's records about the
        run (its silences) go through it too, so they take the run's sequence."""
        self._recorder = RunRecorder(self.records)
        self._runner: CommandRunner | None = None
        self._info: ConnectionInfo | None = None
        self._local_info: ConnectionInfo | None = None
        self._baseline: dict[str, ServedCert] = {}
        self._before: dict[str, dict[str, Finding]] | None = None
        self._targets: tuple[str, ...] = plan.targets
        self._checks = checks_for((*plan.runbook.fixes, *plan.targets))
        self._results: list[StepResult] = []
        self._verification: VerificationResult | None = None
        self._started = 0.0
        self._executed = False

    # ------------------------------------------------------------ public API

    def cancel(self, reason: str = "cancelled by the operator") -> None:
        """Stop the run: end the running command on its target, skip the rest."""
        if not self._cancel.is_set():
            self._cancel_reason = reason
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    async def execute(self) -> RunResult:
        """Run the plan. Returns a :class:`RunResult`; never raises for a failed step.

        Raises:
            RunLockedError: another run on this endpoint is active (nothing was done).
        """
        if self._executed:
            raise RuntimeError("a RunbookRun executes once; build a new one")
        self._executed = True
        self._started = time.monotonic()
        holder = {
            "pid": os.getpid(),
            "runbook": self.plan.runbook.name,
            "run_id": self.run_id,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            **operator(),
        }
        self._lock.acquire(holder)
        try:
            return await self._execute()
        finally:
            self._lock.release()

    # ---------------------------------------------------------------- events

    @property
    def _audit_broken(self) -> str | None:
        """Why a record could not be written, once one could not: nothing more runs."""
        return self._recorder.broken

    def _emit(self, event: RunEvent) -> None:
        """Record ``event``, then show it.

        Raises:
            AuditError: its record could not be written; the front end does not get it,
                and the caller stops what the event announces.
        """
        self._recorder(event)
        self._show(event)

    def _emit_closing(self, event: RunEvent, *, stopping: str = "") -> None:
        """Record ``event`` (a closing or record-only fact); a failure becomes a notice,
        and the event is shown all the same."""
        try:
            self._recorder(event)
        except AuditError as exc:
            self._show(Notice(self.run_id, level="error", message=f"audit log: {exc}{stopping}"))
        self._show(event)

    def _show(self, event: RunEvent) -> None:
        """Give ``event`` to the front end (never a record-only one); a broken front end
        must not break the run, so its failure is only recorded."""
        if self._on_event is None or isinstance(event, RecordOnly):
            return
        try:
            self._on_event(event)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._recorder(FrontEndFailed(self.run_id, error=f"{type(exc).__name__}: {exc}"))

    # --------------------------------------------------------------- helpers

    async def _until_cancelled(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, or raise :class:`_Cancelled` if the run is cancelled first."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._cancel.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _Cancelled

    def _result(self, outcome: RunOutcome, message: str, error: Exception | None = None) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            outcome=outcome,
            steps=tuple(self._results),
            verification=self._verification,
            message=message,
            duration=time.monotonic() - self._started,
            error=error,
            audit_path=str(self.audit_log.path),
        )

    def _finish(self, result: RunResult) -> RunResult:
        self._emit_closing(RunFinished(self.run_id, result=result))
        return result

    # ------------------------------------------------------------------ run

    async def _execute(self) -> RunResult:
        plan = self.plan
        started = RunStarted(
            self.run_id,
            plan=plan,
            audit_path=str(self.audit_log.path),
            lock=str(self._lock.path),
            target_key=self._lock.key,
        )
        try:
            self._emit(started)
        except AuditError as exc:
            # No opening record: the run never opened, so RunFinished closes no record.
            return self._finish(
                self._result(
                    RunOutcome.FAILED, f"nothing was run: the audit log cannot be written: {exc}", exc
                )
            )
        try:
            return await self._steps()
        except asyncio.CancelledError:
            # The task itself was cancelled (front end closing): close the records.
            with contextlib.suppress(BaseException):
                self._finish(self._result(RunOutcome.CANCELLED, "the run's task was cancelled"))
            raise
        finally:
            await self._close_runners()

    async def _close_runners(self) -> None:
        for runner in (self._runner, self._local_runner):
            if runner is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner.close(), 10.0)

    async def _connect(self) -> RunResult | None:
        """Connect to the SSH target (if any step needs it); a failure ends the run."""
        plan = self.plan
        all_steps = plan.all_steps()
        if any(s.kind is StepKind.RUN and s.local for s in all_steps):
            if self._local_runner is None:
                self._local_runner = LocalRunner()
            self._local_info = await self._local_runner.connect()
        if not any(s.kind is StepKind.RUN and not s.local for s in all_steps):
            return None
        ssh = plan.endpoint.ssh
        assert ssh is not None  # build_plan guarantees it
        try:
            self._runner = self._runner_factory(ssh)
            self._info = await self._until_cancelled(self._runner.connect())
        except _Cancelled:
            return self._finish(
                self._result(RunOutcome.CANCELLED, "cancelled while connecting; nothing was run")
            )
        except (SSHError, ValueError) as exc:
            refused = isinstance(exc, HostKeyError)
            self._emit_closing(
                ConnectFailed(
                    self.run_id,
                    target=plan.target.label if plan.target else ssh.host,
                    error=str(exc),
                    host_key_fingerprint=exc.fingerprint if isinstance(exc, HostKeyError) else None,
                    host_key_refused=refused,
                )
            )
            return self._finish(self._result(RunOutcome.FAILED, f"nothing was run: {exc}", exc))
        connected = Connected(self.run_id, info=self._info)
        try:
            self._recorder(connected)
        except AuditError as exc:
            self._show(Notice(self.run_id, level="error", message=f"audit log: {exc}"))
        if self._audit_broken:
            return self._finish(
                self._result(RunOutcome.FAILED, f"nothing was run: audit log: {self._audit_broken}")
            )
        self._show(connected)
        return None

    async def _take_baseline(self) -> None:
        plan = self.plan
        endpoint = probe_view(plan.endpoint, self._checks)
        try:
            report = await self._until_cancelled(self._probe(endpoint))
        except _Cancelled:
            raise
        except Exception as exc:  # the probe never raises by contract; be safe anyway
            self._emit(BaselineCaptured(self.run_id, certs=(), error=str(exc), targets=self._targets))
            return
        stored: ServedCert | None = None
        notes: tuple[str, ...] = ()
        if plan.endpoint.stored is not None and any(b.handshake.ok for b in report.backends):
            stored, notes = await self._until_cancelled(self._read_stored())
        self._baseline = served_certs(report)
        self._before = observe(report, stored)
        seen = {code for found in self._before.values() for code in found}
        chosen = bool(plan.targets)
        if not chosen:
            self._targets = default_targets(plan.runbook.fixes, self._before)
        self._emit_closing(
            BaselineCaptured(
                self.run_id,
                certs=tuple(self._baseline.values()),
                error=None if self._baseline else (report.error or "no backend completed a handshake"),
                findings=tuple(sorted(seen)),
                targets=self._targets,
                chosen=chosen,
                by_backend={label: tuple(sorted(found)) for label, found in self._before.items()},
                stored=stored,
                notes=notes,
            )
        )

    async def _steps(self) -> RunResult:
        failed = await self._connect()
        if failed is not None:
            return failed
        if self.plan.has_verify:
            try:
                await self._take_baseline()
            except _Cancelled:
                return self._finish(self._result(RunOutcome.CANCELLED, "cancelled before the first step"))
        stop = await self._each_step()
        if stop is not None:
            return self._finish(self._result(*stop))
        return self._finish(self._verdict())

    async def _each_step(self) -> _Stop | None:
        """Handle every top-level step in order; once one stops the run, the rest are
        skipped. Returns why the run stopped, None when no step stopped it."""
        stop: _Stop | None = None
        for number, step in enumerate(self.plan.steps, 1):
            if stop is not None:
                self._skip(step, stop.message)
                for sub in step.on_failure:
                    self._skip(sub, stop.message, quiet=True)
                continue
            result = await self._step(step, str(number))
            if result.outcome.ok:
                for sub in step.on_failure:
                    self._skip(sub, "its step succeeded", quiet=True)
                continue
            ran = result.outcome not in (StepOutcome.CANCELLED, StepOutcome.DECLINED)
            if ran and step.on_failure and not self._audit_broken:
                await self._on_failure(step, number)
            stop = self._stop_after(step, result)
        return stop

    def _stop_after(self, step: PlannedStep, result: StepResult) -> _Stop | None:
        """Whether the run stops after ``step`` ended as ``result`` (not OK), and why."""
        if result.outcome is StepOutcome.CANCELLED:
            return _Stop(RunOutcome.CANCELLED, f"the run was cancelled at step {step.id}")
        if result.outcome is StepOutcome.DECLINED:
            return _Stop(RunOutcome.DECLINED, f"step {step.id} was declined: {result.message}")
        if self._cancel.is_set():
            return _Stop(RunOutcome.CANCELLED, f"the run was cancelled after step {step.id} failed")
        if not step.continue_on_error:
            return _Stop(RunOutcome.FAILED, f"step {step.id} {result.message}")
        if self._audit_broken:
            message = f"the audit log cannot be written: {self._audit_broken}"
            return _Stop(RunOutcome.FAILED, message, AuditError(self._audit_broken))
        return None

    def _verdict(self) -> RunResult:
        """How a run that no step stopped ended: the verification decides, else the steps."""
        if self._verification is not None and not self._verification.passed:
            return self._result(RunOutcome.FAILED, f"verification failed: {self._verification.message}")
        failed_steps = [r for r in self._results if r.outcome not in (StepOutcome.OK, StepOutcome.SKIPPED)]
        if failed_steps and self._verification is None:
            ids = ", ".join(r.step_id for r in failed_steps)
            return self._result(RunOutcome.FAILED, f"step(s) {ids} failed (continue_on_error)")
        message = "all steps succeeded"
        if self._verification is not None:
            message += f"; verified: {self._verification.message}"
        return self._result(RunOutcome.SUCCEEDED, message)

    async def _on_failure(self, step: PlannedStep, number: int) -> None:
        for sub_number, sub in enumerate(step.on_failure, 1):
            result = await self._step(sub, f"{number}.{sub_number}")
            if not result.outcome.ok:
                for rest in step.on_failure[sub_number:]:
                    self._skip(rest, f"on_failure step {sub.id} did not succeed", quiet=False)
                return

    def _skip(self, step: PlannedStep, reason: str, *, quiet: bool = False) -> None:
        """Record ``step`` as skipped; a quiet skip (an on_failure step never due) is not shown."""
        result = StepResult(step.id, step.title, step.kind, StepOutcome.SKIPPED, reason, parent=step.parent)
        self._results.append(result)
        if quiet:
            self._emit_closing(StepNotDue(self.run_id, step_id=step.id, reason=reason))
        else:
            self._emit_closing(StepSkipped(self.run_id, step_id=step.id, title=step.title, reason=reason))

    def _done(
        self,
        step: PlannedStep,
        outcome: StepOutcome,
        message: str,
        *,
        attempted: bool = False,
        output: CapturedOutput | None = None,
        error: str | None = None,
        stopping: str = "",
        **fields: Any,
    ) -> StepResult:
        """The step ended: keep its result, record it (if it was attempted) and show it."""
        result = StepResult(step.id, step.title, step.kind, outcome, message, parent=step.parent, **fields)
        self._results.append(result)
        finished = StepFinished(self.run_id, result=result, attempted=attempted, output=output, error=error)
        self._emit_closing(finished, stopping=stopping)
        return result

    # ------------------------------------------------------------- one step

    async def _step(self, step: PlannedStep, number: str) -> StepResult:
        self._emit(StepStarted(self.run_id, step=step, number=number))
        if self._audit_broken:
            return self._done(
                step, StepOutcome.FAILED, f"not run: the audit log cannot be written ({self._audit_broken})"
            )
        if self._cancel.is_set():
            return self._done(step, StepOutcome.CANCELLED, "not run: the run was cancelled")
        if step.confirm is not ConfirmKind.NONE:
            declined = await self._ask(step)
            if declined is not None:
                return declined
        if self._cancel.is_set():
            return self._done(step, StepOutcome.CANCELLED, "not run: the run was cancelled")
        if step.kind is StepKind.CONFIRM:
            return self._done(step, StepOutcome.OK, "confirmed", attempted=True)
        if step.kind is StepKind.VERIFY:
            return await self._verify(step)
        return await self._run(step)

    async def _ask(self, step: PlannedStep) -> StepResult | None:
        """Ask ``step``'s confirmation: None when it may run, else how it ended."""
        info = self._local_info if step.local else self._info
        request = ConfirmRequest(
            run_id=self.run_id,
            endpoint=self.plan.endpoint.name,
            step=step,
            kind=step.confirm,
            expected=step.confirm_token if step.confirm is ConfirmKind.TYPED else None,
            target=info.label if info else step.target,
            address=info.address if info else None,
            host_key_fingerprint=info.host_key_fingerprint if info else None,
        )
        asked = datetime.now(UTC)
        try:
            reply = await self._until_cancelled(self._confirm(request))
        except _Cancelled:
            self._emit_closing(ConfirmationCancelled(self.run_id, step_id=step.id, kind=step.confirm))
            return self._done(step, StepOutcome.CANCELLED, "cancelled at the confirmation; not run")
        except Exception as exc:  # a broken confirmation front end means no
            reply = ConfirmReply.no()
            self._emit(Notice(self.run_id, level="error", message=f"confirmation failed: {exc}"))
        accepted, detail = _judge(request, reply)
        answered = ConfirmationAnswered(
            self.run_id,
            step_id=step.id,
            accepted=accepted,
            detail=detail,
            kind=step.confirm,
            asked_at=asked,
            shown_sha256=request.digest,
        )
        try:
            self._recorder(answered)
        except AuditError:
            detail += "; the audit log cannot be written, so the step is not run"
            answered = replace(answered, accepted=False, detail=detail)
        self._show(answered)
        if answered.accepted:
            return None
        return self._done(step, StepOutcome.DECLINED, f"not run ({detail})")

    async def _run(self, step: PlannedStep) -> StepResult:
        runner = self._local_runner if step.local else self._runner
        info = self._local_info if step.local else self._info
        assert runner is not None and info is not None
        wire = runner.wire_command(step.command, step.timeout)
        try:
            self._emit(CommandSent(self.run_id, step=step, wire=wire, info=info))
        except AuditError as exc:
            return self._done(
                step, StepOutcome.FAILED, f"not run: the 'about to run' record cannot be written ({exc})"
            )

        def show(stream: str, line: str) -> None:
            self._emit(OutputReceived(self.run_id, step_id=step.id, stream=stream, line=line))

        output = _StepOutput(self._redactor, show)
        try:
            result = await runner.run(
                step.command,
                timeout=step.timeout,
                on_output=output.add,
                cancel=self._cancel,
                stdin=step.stdin,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                self._recorder(StepInterrupted(self.run_id, step_id=step.id, output=output.captured()))
            raise
        except CertpagerError as exc:
            message = f"could not be started: {exc}"
            return self._done(step, StepOutcome.FAILED, message, attempted=True, error=str(exc))
        return self._ran(step, result, output.captured())

    def _ran(self, step: PlannedStep, result: CommandResult, output: CapturedOutput) -> StepResult:
        """The command of ``step`` ended as ``result``: say so, record it, show it."""
        outcome, message = _judge_exit(step, result)
        if result.remote_state is RemoteState.UNKNOWN:
            self._emit(
                Notice(
                    self.run_id,
                    level="warning",
                    message=f"step {step.id}: remote state unknown: {result.remote_note}",
                )
            )
        return self._done(
            step,
            outcome,
            message,
            attempted=True,
            output=output,
            stopping="; stopping before the next step",
            exit_status=result.exit_status,
            exit_signal=result.exit_signal,
            duration=result.duration,
            remote_state=result.remote_state.value,
            remote_note=result.remote_note,
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
        )

    async def _read_stored(self) -> tuple[ServedCert | None, tuple[str, ...]]:
        endpoint = self.plan.endpoint
        if endpoint.stored is None:
            return None, ()
        from certpager.check.stored import StoredCertError, read_stored_cert

        runner = self._runner
        own = False
        if runner is None:
            if endpoint.ssh is None:
                return None, ("the stored certificate cannot be read: the endpoint has no ssh target",)
            runner = self._runner_factory(endpoint.ssh)
            own = True
        try:
            info = await asyncio.wait_for(read_stored_cert(endpoint, runner), 30.0)
        except (StoredCertError, SSHError, TimeoutError) as exc:
            return None, (f"stored certificate not compared: {exc or 'timed out'}",)
        finally:
            if own:
                with contextlib.suppress(Exception):
                    await runner.close()
        from certpager.check.stored import stored_location

        return ServedCert.from_info(stored_location(endpoint), info), ()

    async def _verify(self, step: PlannedStep) -> StepResult:
        assert step.verify is not None
        started = time.monotonic()
        self._emit_closing(
            VerificationStarted(
                self.run_id, step_id=step.id, baseline=tuple(self._baseline.values()), targets=self._targets
            )
        )
        stored, notes = await self._read_stored()

        def on_attempt(attempt: int, verdicts: tuple[Any, ...]) -> None:
            passed = bool(verdicts) and all(v.passed for v in verdicts)
            self._emit(
                VerificationAttempted(
                    self.run_id, step_id=step.id, attempt=attempt, backends=verdicts, passed=passed
                )
            )

        result = await verify_endpoint(
            probe_view(self.plan.endpoint, self._checks),
            step.verify,
            before=self._baseline,
            stored=stored,
            probe=self._probe,
            cancel=self._cancel,
            on_attempt=on_attempt,
            notes=notes,
            targets=Targets(self._targets, self._before),
        )
        self._verification = result
        self._emit_closing(VerificationFinished(self.run_id, step_id=step.id, result=result))
        if self._cancel.is_set() and not result.passed:
            outcome = StepOutcome.CANCELLED
        else:
            outcome = StepOutcome.OK if result.passed else StepOutcome.FAILED
        duration = time.monotonic() - started
        return self._done(step, outcome, result.message, attempted=True, duration=duration)


class _Stop(NamedTuple):
    """Why a run stopped before its end."""

    outcome: RunOutcome
    message: str
    error: Exception | None = None


class _StepOutput:
    """One command's output: each line redacted (a private key block across lines too) and
    escaped, then shown and kept (head and tail within a cap) for its ``step_result`` record."""

    def __init__(self, redactor: Redactor, show: Callable[[str, str], None]):
        self._show = show
        self._captures = {"stdout": OutputCapture(), "stderr": OutputCapture()}
        self._redactors = {
            "stdout": LineRedactor(redactor=redactor),
            "stderr": LineRedactor(redactor=redactor),
        }

    def add(self, stream: str, line: str) -> None:
        """One line of ``stream`` (the runner's ``on_output``)."""
        clean = self._redactors[stream](line)
        if clean is None:
            return
        clean = sanitize_output(clean)
        self._captures[stream].add(clean)
        self._show(stream, clean)

    def captured(self) -> CapturedOutput:
        """What the audit log keeps of it."""
        out, err = self._captures["stdout"], self._captures["stderr"]
        return CapturedOutput(out.text(), out.truncated, err.text(), err.truncated)


def _judge(request: ConfirmRequest, reply: ConfirmReply) -> tuple[bool, str]:
    """Whether ``reply`` lets the step run, and the answer in words (``typed 'app'``...)."""
    if request.kind is not ConfirmKind.TYPED:
        return reply.accepted, "yes" if reply.accepted else "no"
    if not reply.accepted:
        return False, "no"
    typed = (reply.typed or "").strip()
    accepted = typed == request.expected
    return accepted, f"typed {typed!r}" + ("" if accepted else f" (expected {request.expected!r})")


def _judge_exit(step: PlannedStep, result: CommandResult) -> tuple[StepOutcome, str]:
    """The outcome of a command that ended as ``result``, and its message in words."""
    if result.cancelled:
        outcome = StepOutcome.CANCELLED
    elif result.timed_out:
        outcome = StepOutcome.TIMEOUT
    elif result.error:
        outcome = StepOutcome.UNKNOWN
    elif result.ok:
        outcome = StepOutcome.OK
    else:
        outcome = StepOutcome.FAILED
    message = describe_exit(result)
    if result.timed_out and not result.cancelled:
        message = f"timed out after {format_seconds(step.timeout)}; " + message.replace("timed out, ", "")
    hint = _EXIT_HINTS.get(result.exit_status or 0) if outcome is StepOutcome.FAILED else None
    if hint:
        message += f" ({hint})"
    return outcome, message
