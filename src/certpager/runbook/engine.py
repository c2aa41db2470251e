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
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from certpager import __version__
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
from certpager.runbook.events import (
    BaselineCaptured,
    CommandSent,
    ConfirmationAnswered,
    Confirmer,
    ConfirmReply,
    ConfirmRequest,
    Connected,
    EventSink,
    Notice,
    OutputReceived,
    RunEvent,
    RunFinished,
    RunOutcome,
    RunResult,
    RunStarted,
    ServedCert,
    StepFinished,
    StepOutcome,
    StepResult,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
    VerificationResult,
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
from certpager.ssh import CommandRunner, ConnectionInfo, RemoteState, RunnerFactory, describe_exit, runner_for
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


def new_run_id() -> str:
    """A unique, sortable run id: ``20261127T101500Z-1a2b3c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunbookRun:
    """One run of one plan. Create, then ``await execute()`` once."""

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
        on_event: receives every :class:`~certpager.runbook.events.RunEvent`.
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
        target = plan.target
        self._lock = EndpointLock(
            plan.endpoint,
            lock_dir or default_lock_dir(self.settings),
            ssh_host="local" if target is not None and target.local else (target.host if target else None),
            ssh_port=target.port if target is not None and not target.local else None,
        )
        self._cancel = asyncio.Event()
        self._cancel_reason = ""
        self._redactor = plan_redactor(plan)
        self._audit = RunAudit(self.audit_log, self.run_id, self._redactor)
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
        self._audit_broken: str | None = None

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

    # --------------------------------------------------------------- helpers

    def _emit(self, event: RunEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception as exc:  # a broken front end must not break the run
                with contextlib.suppress(Exception):
                    self._write("event_sink_error", error=f"{type(exc).__name__}: {exc}")

    def _write(self, record_type: str, /, **fields: Any) -> None:
        """Append an audit record; remember (and re-raise) a failure.

        Every record goes through the run's one :class:`Redactor` where it is
        serialised (:meth:`RunAudit.write`): plan, argv, env, output, messages."""
        try:
            self._audit.write(record_type, **fields)
        except AuditError as exc:
            self._audit_broken = str(exc)
            raise

    def _safe_write(self, record_type: str, /, **fields: Any) -> None:
        """Append a closing/record-only audit record; a failure becomes a notice."""
        try:
            self._write(record_type, **fields)
        except AuditError as exc:
            self._emit(Notice(self.run_id, level="error", message=f"audit log: {exc}"))

    def _redact(self, text: str) -> str:
        return self._redactor.text(text)

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
        self._safe_write(
            "run_end",
            outcome=result.outcome.value,
            message=self._redact(result.message),
            duration=round(result.duration, 3),
            error=self._redact(str(result.error)) if result.error else None,
        )
        self._emit(RunFinished(self.run_id, result=result))
        return result

    # ------------------------------------------------------------------ run

    async def _execute(self) -> RunResult:
        plan = self.plan
        params = {v.name: v.value for v in plan.values}
        try:
            self._write(
                "run_start",
                endpoint=plan.endpoint.name,
                runbook=plan.runbook.name,
                runbook_path=plan.runbook.file,
                runbook_sha256=plan.runbook.sha256,
                certpager_version=__version__,
                operator=operator(),
                pid=os.getpid(),
                lock=str(self._lock.path),
                target_key=self._lock.key,
                params=params,
                fixes=list(plan.runbook.fixes),
                for_findings=list(plan.targets) if plan.targets else None,
                plan=plan.to_dict(),
            )
        except AuditError as exc:
            result = self._result(
                RunOutcome.FAILED, f"nothing was run: the audit log cannot be written: {exc}", exc
            )
            self._emit(RunFinished(self.run_id, result=result))
            return result
        self._emit(RunStarted(self.run_id, plan=plan, audit_path=str(self.audit_log.path)))
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
            fields: dict[str, Any] = {
                "target": plan.target.label if plan.target else ssh.host,
                "error": str(exc),
            }
            if isinstance(exc, HostKeyError):
                fields.update(host_key_fingerprint=exc.fingerprint, reason="host_key")
            self._safe_write("connect_failed", **fields)
            return self._finish(self._result(RunOutcome.FAILED, f"nothing was run: {exc}", exc))
        info = self._info
        self._safe_write(
            "connected",
            target=info.label,
            address=info.address,
            host_key_fingerprint=info.host_key_fingerprint,
            host_key_type=info.host_key_type,
        )
        if self._audit_broken:
            return self._finish(
                self._result(RunOutcome.FAILED, f"nothing was run: audit log: {self._audit_broken}")
            )
        self._emit(Connected(self.run_id, info=info))
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
        error = None if self._baseline else (report.error or "no backend completed a handshake")
        self._safe_write(
            "baseline",
            certs=[c.to_dict() for c in self._baseline.values()],
            error=error,
            findings={label: sorted(found) for label, found in self._before.items()},
            stored=stored.to_dict() if stored is not None else None,
            notes=list(notes),
            targets=list(self._targets),
            targets_from="chosen" if chosen else "the most severe current findings the runbook fixes",
        )
        self._emit(
            BaselineCaptured(
                self.run_id,
                certs=tuple(self._baseline.values()),
                error=error,
                findings=tuple(sorted(seen)),
                targets=self._targets,
                chosen=chosen,
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
        stop: RunOutcome | None = None
        stop_message = ""
        error: Exception | None = None
        for number, step in enumerate(self.plan.steps, 1):
            if stop is not None:
                self._skip(step, stop_message)
                for sub in step.on_failure:
                    self._skip(sub, stop_message, quiet=True)
                continue
            result = await self._step(step, str(number))
            if result.outcome.ok:
                for sub in step.on_failure:
                    self._skip(sub, "its step succeeded", quiet=True)
                continue
            if result.outcome is StepOutcome.CANCELLED:
                stop, stop_message = RunOutcome.CANCELLED, f"the run was cancelled at step {step.id}"
            elif result.outcome is StepOutcome.DECLINED:
                stop, stop_message = RunOutcome.DECLINED, f"step {step.id} was declined: {result.message}"
            else:
                if step.on_failure and not self._audit_broken:
                    await self._on_failure(step, number)
                if self._cancel.is_set():
                    stop, stop_message = (
                        RunOutcome.CANCELLED,
                        f"the run was cancelled after step {step.id} failed",
                    )
                elif not step.continue_on_error:
                    stop, stop_message = RunOutcome.FAILED, f"step {step.id} {result.message}"
            if self._audit_broken and stop is None:
                stop, stop_message = (
                    RunOutcome.FAILED,
                    f"the audit log cannot be written: {self._audit_broken}",
                )
                error = AuditError(self._audit_broken)
        if stop is not None:
            return self._finish(self._result(stop, stop_message, error))
        if self._verification is not None and not self._verification.passed:
            return self._finish(
                self._result(RunOutcome.FAILED, f"verification failed: {self._verification.message}")
            )
        failed_steps = [r for r in self._results if r.outcome not in (StepOutcome.OK, StepOutcome.SKIPPED)]
        if failed_steps and self._verification is None:
            ids = ", ".join(r.step_id for r in failed_steps)
            return self._finish(self._result(RunOutcome.FAILED, f"step(s) {ids} failed (continue_on_error)"))
        message = "all steps succeeded"
        if self._verification is not None:
            message += f"; verified: {self._verification.message}"
        return self._finish(self._result(RunOutcome.SUCCEEDED, message))

    async def _on_failure(self, step: PlannedStep, number: int) -> None:
        for sub_number, sub in enumerate(step.on_failure, 1):
            result = await self._step(sub, f"{number}.{sub_number}")
            if not result.outcome.ok:
                for rest in step.on_failure[sub_number:]:
                    self._skip(rest, f"on_failure step {sub.id} did not succeed", quiet=False)
                return

    def _skip(self, step: PlannedStep, reason: str, *, quiet: bool = False) -> None:
        result = StepResult(step.id, step.title, step.kind, StepOutcome.SKIPPED, reason, parent=step.parent)
        self._results.append(result)
        self._safe_write("step_skipped", step_id=step.id, reason=self._redact(reason))
        if not quiet:
            self._emit(StepSkipped(self.run_id, step_id=step.id, title=step.title, reason=reason))

    def _done(self, step: PlannedStep, outcome: StepOutcome, message: str, **fields: Any) -> StepResult:
        result = StepResult(step.id, step.title, step.kind, outcome, message, parent=step.parent, **fields)
        self._results.append(result)
        self._emit(StepFinished(self.run_id, result=result))
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
            self._safe_write("step_result", step_id=step.id, outcome="ok", kind="confirm")
            return self._done(step, StepOutcome.OK, "confirmed")
        if step.kind is StepKind.VERIFY:
            return await self._verify(step)
        return await self._run(step)

    async def _ask(self, step: PlannedStep) -> StepResult | None:
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
            self._safe_write("confirmation", step_id=step.id, kind=step.confirm.value, answer="cancelled")
            return self._done(step, StepOutcome.CANCELLED, "cancelled at the confirmation; not run")
        except Exception as exc:  # a broken confirmation front end means no
            reply = ConfirmReply.no()
            self._emit(Notice(self.run_id, level="error", message=f"confirmation failed: {exc}"))
        accepted = reply.accepted
        if step.confirm is ConfirmKind.TYPED:
            typed = (reply.typed or "").strip()
            accepted = accepted and typed == request.expected
            detail = f"typed {typed!r}" + (
                "" if accepted or not reply.accepted else f" (expected {request.expected!r})"
            )
            if not reply.accepted:
                detail = "no"
        else:
            detail = "yes" if accepted else "no"
        try:
            self._write(
                "confirmation",
                step_id=step.id,
                kind=step.confirm.value,
                answer="yes" if accepted else "no",
                detail=self._redact(detail),
                asked_at=asked.isoformat(),
                shown_sha256=request.digest,
            )
        except AuditError:
            accepted = False
            detail += "; the audit log cannot be written, so the step is not run"
        self._emit(ConfirmationAnswered(self.run_id, step_id=step.id, accepted=accepted, detail=detail))
        if accepted:
            return None
        return self._done(step, StepOutcome.DECLINED, f"not run ({detail})")

    async def _run(self, step: PlannedStep) -> StepResult:
        runner = self._local_runner if step.local else self._runner
        info = self._local_info if step.local else self._info
        assert runner is not None and info is not None
        wire = runner.wire_command(step.command, step.timeout)
        try:
            self._write(
                "step_intent",
                step_id=step.id,
                parent=step.parent,
                target=info.label,
                address=info.address,
                host_key_fingerprint=info.host_key_fingerprint,
                argv=[self._redact(a) for a in step.argv],
                command=self._redact(step.command),
                wire=self._redact(wire),
                timeout=step.timeout,
                stdin="given" if step.stdin is not None else None,
            )
        except AuditError as exc:
            return self._done(
                step, StepOutcome.FAILED, f"not run: the 'about to run' record cannot be written ({exc})"
            )
        captures = {"stdout": OutputCapture(), "stderr": OutputCapture()}
        redactors = {
            "stdout": LineRedactor(redactor=self._redactor),
            "stderr": LineRedactor(redactor=self._redactor),
        }

        def on_output(stream: str, line: str) -> None:
            clean = redactors[stream](line)
            if clean is None:
                return
            clean = sanitize_output(clean)
            captures[stream].add(clean)
            self._emit(OutputReceived(self.run_id, step_id=step.id, stream=stream, line=clean))

        self._emit(
            CommandSent(self.run_id, step_id=step.id, command=step.command, wire=wire, target=info.label)
        )
        try:
            result = await runner.run(
                step.command, timeout=step.timeout, on_output=on_output, cancel=self._cancel, stdin=step.stdin
            )
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                self._write(
                    "step_result",
                    step_id=step.id,
                    outcome="unknown",
                    message="the run's task was cancelled mid-step",
                    stdout=captures["stdout"].text(),
                    stderr=captures["stderr"].text(),
                )
            raise
        except CertpagerError as exc:
            self._safe_write("step_result", step_id=step.id, outcome="failed", message=self._redact(str(exc)))
            return self._done(step, StepOutcome.FAILED, f"could not be started: {exc}")
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
        if result.remote_state is RemoteState.UNKNOWN:
            self._emit(
                Notice(
                    self.run_id,
                    level="warning",
                    message=f"step {step.id}: remote state unknown: {result.remote_note}",
                )
            )
        try:
            self._write(
                "step_result",
                step_id=step.id,
                outcome=outcome.value,
                exit_status=result.exit_status,
                exit_signal=result.exit_signal,
                duration=round(result.duration, 3),
                remote_state=result.remote_state.value,
                remote_note=result.remote_note,
                message=self._redact(message),
                stdout=captures["stdout"].text(),
                stdout_bytes=result.stdout_bytes,
                stdout_truncated=captures["stdout"].truncated,
                stderr=captures["stderr"].text(),
                stderr_bytes=result.stderr_bytes,
                stderr_truncated=captures["stderr"].truncated,
            )
        except AuditError as exc:
            self._emit(
                Notice(self.run_id, level="error", message=f"audit log: {exc}; stopping before the next step")
            )
        return self._done(
            step,
            outcome,
            message,
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
        self._safe_write(
            "step_intent",
            step_id=step.id,
            kind="verify",
            baseline=[c.to_dict() for c in self._baseline.values()],
            targets=list(self._targets),
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
        self._safe_write("verification", step_id=step.id, **result.to_dict())
        self._emit(VerificationFinished(self.run_id, step_id=step.id, result=result))
        if self._cancel.is_set() and not result.passed:
            outcome = StepOutcome.CANCELLED
        else:
            outcome = StepOutcome.OK if result.passed else StepOutcome.FAILED
        self._safe_write("step_result", step_id=step.id, outcome=outcome.value, message=result.message)
        return self._done(step, outcome, result.message, duration=time.monotonic() - started)
