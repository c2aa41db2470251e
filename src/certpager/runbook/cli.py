"""``certpager run RUNBOOK --endpoint NAME``: the headless runbook command.

Confirmations:

- on a terminal (stdin is a TTY), each confirmation is asked on the terminal:
  ``y``/``yes`` for a plain one, the exact name for a typed one;
- ``--yes`` answers plain confirmations (automation);
- typed confirmations are answered only by typing the name, or by
  ``--confirm NAME`` where NAME is exactly the name asked for (repeatable);
- without a terminal, a run whose confirmations are not all answered by those
  flags is refused before anything runs (exit 3).

Exit codes: 0 the run succeeded (verification passed), 1 a confirmation was
declined, 2 the run failed (a step failed or timed out, verification failed,
SSH or host-key failure, another run holds the endpoint), 3 bad input
(config, runbook, parameters, arguments) or a refused headless run,
130 cancelled (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

from certpager.config import Config, Endpoint, default_config_path, load_config
from certpager.errors import HeadlessRefusedError as HeadlessRefusedError
from certpager.errors import OutputError, UserError
from certpager.fleet.silence import RunSilences, silence_run, stopped_why
from certpager.formats import with_elapsed
from certpager.runbook.audit import AuditLog
from certpager.runbook.engine import RunbookRun
from certpager.runbook.events import (
    BackendVerdict,
    BaselineCaptured,
    CommandSent,
    ConfirmationAnswered,
    ConfirmReply,
    ConfirmRequest,
    Connected,
    Notice,
    OutputReceived,
    RunEvent,
    RunFinished,
    RunOutcome,
    RunResult,
    RunStarted,
    StepFinished,
    StepOutcome,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
)
from certpager.runbook.loader import find_runbook, list_runbooks, runbook_dirs, shipped_runbook_dir
from certpager.runbook.lock import run_is_active
from certpager.runbook.model import ConfirmKind
from certpager.runbook.plan import Plan, build_plan
from certpager.text import emit, printable

EXIT_OK = 0
EXIT_DECLINED = 1
EXIT_FAILED = 2
EXIT_BAD_INPUT = 3
EXIT_CANCELLED = 130


def _parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def _load(args: argparse.Namespace) -> Config:
    path = Path(args.config) if args.config else default_config_path()
    return load_config(path)


def _endpoint(config: Config, name: str | None) -> Endpoint:
    if not name:
        raise UserError("certpager run: --endpoint NAME is required (see certpager run --help)")
    endpoint = config.endpoint(name)
    if endpoint is None:
        known = ", ".join(e.name for e in config.endpoints) or "none"
        raise UserError(f"{config.path}: no endpoint named {name!r} (endpoints: {known})")
    return endpoint


def _list(config: Config, endpoint: Endpoint | None, dirs: list[Path], out: TextIO) -> int:
    shipped = shipped_runbook_dir()
    emit(out, "Runbook search path: " + ", ".join(str(d) for d in dirs))
    for entry in list_runbooks(dirs):
        origin = "shipped" if shipped and entry.path.parent == shipped else str(entry.path.parent)
        if entry.runbook is None:
            emit(out, f"  {entry.path.stem:24} INVALID: {entry.error}")
            continue
        rb = entry.runbook
        if endpoint is not None and not rb.applies_to(endpoint):
            continue
        note = " (shadowed)" if entry.shadowed else ""
        emit(out, f"  {rb.name:24} {rb.title} [{origin}]{note}")
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    """Handle ``certpager run``; returns the exit code."""
    config = _load(args)
    config_dir = config.path.resolve().parent if config.path else None
    dirs = runbook_dirs(config.settings, config_dir=config_dir)
    if args.list_runbooks:
        return _list(config, _endpoint(config, args.endpoint) if args.endpoint else None, dirs, sys.stdout)
    if not args.runbook:
        raise UserError("certpager run: RUNBOOK is required (certpager run --list shows them)")
    endpoint = _endpoint(config, args.endpoint)
    runbook = find_runbook(args.runbook, dirs)
    if not runbook.applies_to(endpoint):
        raise UserError(
            f"runbook {runbook.name} does not apply to endpoint {endpoint.name} (it applies to "
            f"tags {list(runbook.applies_to_tags)} / endpoints {list(runbook.applies_to_endpoints)}); "
            f"add it to the endpoint's runbooks: list in {config.path} to allow it"
        )
    plan = build_plan(runbook, endpoint, _parse_params(args.params), targets=list(args.for_codes or ()))
    if getattr(args, "silence", False) and config.settings.alertmanager is None:
        raise UserError(
            f"--silence: {config.path} names no Alertmanager (settings: alertmanager: {{url: ...}})"
        )
    if args.plan:
        emit(sys.stdout, plan.render_text())
        return EXIT_OK
    interactive = sys.stdin.isatty()
    _check_answers(plan, interactive=interactive, yes=args.yes, names=list(args.confirm_names))
    audit = AuditLog(Path(args.audit_log) if args.audit_log else None)
    audit.check()
    for unfinished in audit.unfinished(is_active=run_is_active):
        emit(sys.stderr, f"certpager: WARNING: {unfinished.describe()}")
        audit.acknowledge(unfinished)
    emit(sys.stdout, plan.render_text() + "\n")
    sys.stdout.flush()
    return asyncio.run(
        _run(
            plan,
            config,
            audit,
            interactive=interactive,
            yes=args.yes,
            names=args.confirm_names,
            silence=getattr(args, "silence", False),
        )
    )


def _check_answers(plan: Plan, *, interactive: bool, yes: bool, names: list[str]) -> None:
    """Refuse, before anything runs, a run whose confirmations cannot be answered."""
    tokens = {s.confirm_token for s in plan.confirmations() if s.confirm is ConfirmKind.TYPED}
    for name in names:
        if name not in tokens:
            expected = (
                " or ".join(repr(t) for t in sorted(t for t in tokens if t))
                or "nothing (no typed confirmation)"
            )
            raise UserError(
                f"--confirm {name!r} does not match what {plan.runbook.name} asks to type: {expected}"
            )
    if interactive:
        return
    missing: list[str] = []
    for step in plan.confirmations():
        if step.confirm is ConfirmKind.PLAIN and not yes:
            missing.append(f"step {step.id} needs a yes (--yes)")
        elif step.confirm is ConfirmKind.TYPED and step.confirm_token not in names:
            missing.append(
                f"step {step.id} needs the typed name {step.confirm_token!r} (--confirm {step.confirm_token})"
            )
    if missing:
        raise HeadlessRefusedError(
            "refusing to run without a terminal: " + "; ".join(missing) + ". Nothing was run."
        )


# ------------------------------------------------------------------ terminal I/O


async def _read_line(prompt: str) -> str | None:
    """Prompt on stderr and read one line from the terminal without blocking the loop."""
    emit(sys.stderr, prompt, end="")
    sys.stderr.flush()
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    future: asyncio.Future[str | None] = loop.create_future()
    buffer = bytearray()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            if not future.done():
                future.set_result(None)
            return
        buffer.extend(data)
        if b"\n" in buffer and not future.done():
            future.set_result(bytes(buffer).split(b"\n", 1)[0].decode("utf-8", "replace"))

    loop.add_reader(fd, readable)
    try:
        return await future
    finally:
        loop.remove_reader(fd)


class _Console:
    """Prints events as plain text; answers confirmations from flags or the terminal."""

    def __init__(self, plan: Plan, *, interactive: bool, yes: bool, names: list[str]):
        self.plan = plan
        self.interactive = interactive
        self.yes = yes
        self.names = set(names)
        self.total = len(plan.steps)
        self.out = sys.stdout
        self.lost: str | None = None
        """Why the output could not be written, once it could not (the run goes on)."""

    def _print(self, text: str = "") -> None:
        if self.lost is not None:
            return
        try:
            emit(self.out, text, flush=True)
        except OutputError as exc:
            # The run is never broken off halfway over a terminal: it goes on, every step
            # is in the audit log, and the command says so and exits 3 at the end.
            self.lost = exc.reason

    async def confirm(self, request: ConfirmRequest) -> ConfirmReply:
        emit(sys.stderr, "\n" + request.text)
        if request.kind is ConfirmKind.PLAIN:
            if self.yes:
                emit(sys.stderr, "  -> yes (--yes)")
                return ConfirmReply.yes()
            if not self.interactive:
                return ConfirmReply.no()
            answer = await _read_line("Run this step? [y/N] ")
            return ConfirmReply(answer is not None and answer.strip().lower() in ("y", "yes"))
        expected = request.expected or ""
        if expected in self.names:
            emit(sys.stderr, f"  -> typed {expected!r} (--confirm)")
            return ConfirmReply.with_text(expected)
        if not self.interactive:
            return ConfirmReply.no()
        answer = await _read_line(f"Type {expected!r} to run this step (anything else does not run it): ")
        if answer is None:
            return ConfirmReply.no()
        return ConfirmReply.with_text(answer)

    @functools.singledispatchmethod
    def on_event(self, event: RunEvent) -> None:
        """Print one event: one handler per event type below (an event without one prints nothing)."""

    @on_event.register
    def _run_started(self, event: RunStarted) -> None:
        plan = event.plan
        self._print(
            f"Run {event.run_id}: {plan.runbook.name} on {plan.endpoint.name} (audit log {event.audit_path})"
        )

    @on_event.register
    def _connected(self, event: Connected) -> None:
        info = event.info
        if info.local:
            self._print(f"Local commands run as {info.user}")
        else:
            self._print(
                f"Connected to {info.label} ({info.address}), host key {info.host_key_fingerprint} (verified)"
            )

    @on_event.register
    def _baseline(self, event: BaselineCaptured) -> None:
        p = self._print
        if event.error:
            p(f"Before: no certificate served ({event.error})")
        for cert in event.certs:
            p(f"Before: {cert.backend} {cert.short()} issuer {printable(cert.issuer)}")
        p(f"Before: findings {', '.join(event.findings) or 'none'}")
        if event.targets:
            how = "chosen" if event.chosen else "the most severe finding seen now that the runbook fixes"
            p(f"This run is for: {', '.join(event.targets)} ({how})")
        elif self.plan.runbook.fixes:
            p(f"This run is for: nothing seen now (no finding {self.plan.runbook.name} fixes is present)")

    @on_event.register
    def _step_started(self, event: StepStarted) -> None:
        total = f"/{self.total}" if "." not in event.number else ""
        self._print(f"\n[{event.number}{total}] {event.step.id}: {event.step.title}")

    @on_event.register
    def _command_sent(self, event: CommandSent) -> None:
        self._print(f"  $ {printable(event.command)}   (on {event.target})")

    @on_event.register
    def _output(self, event: OutputReceived) -> None:
        self._print(f"  {'out' if event.stream == 'stdout' else 'err'}| {event.line.expandtabs()}")

    @on_event.register
    def _answered(self, event: ConfirmationAnswered) -> None:
        self._print(f"  confirmation: {event.detail}" + ("" if event.accepted else " - not run"))

    @on_event.register
    def _step_finished(self, event: StepFinished) -> None:
        r = event.result
        label = {StepOutcome.OK: "OK"}.get(r.outcome, r.outcome.value.upper())
        self._print(
            "  " + with_elapsed(f"{label}: {r.message}", r.duration or None, "{message} in {elapsed}")
        )

    @on_event.register
    def _step_skipped(self, event: StepSkipped) -> None:
        self._print(f"\n[skipped] {event.step_id}: {event.title} ({event.reason})")

    @on_event.register
    def _attempted(self, event: VerificationAttempted) -> None:
        for verdict in event.backends:
            if not verdict.passed:
                self._print(f"  attempt {event.attempt}: {verdict.backend}: {'; '.join(verdict.reasons)}")

    @on_event.register
    def _verified(self, event: VerificationFinished) -> None:
        p = self._print
        result = event.result
        if result.stored is not None:
            p(f"  stored: {result.stored.short()} ({printable(result.stored.backend)})")
        for note in result.notes:
            p(f"  note: {note}")
        if result.targets:
            p(f"  findings this run is for: {', '.join(result.targets)}")
            p(f"    gone:    {', '.join(result.gone) or '(none)'}")
            p(f"    remain:  {', '.join(result.remaining) or '(none)'}")
        if result.new:
            p(f"  got worse (new findings): {', '.join(result.new)}")
        if result.other:
            p(f"  still there (not this run's): {', '.join(result.other)}")
        for verdict in result.backends:
            self._verdict(verdict)

    def _verdict(self, verdict: BackendVerdict) -> None:
        """One backend's before/after and why it failed."""
        p = self._print
        p(f"  {verdict.backend}: {'PASS' if verdict.passed else 'FAIL'}")
        before = (
            verdict.before.short() + " issuer " + printable(verdict.before.issuer)
            if verdict.before
            else "(none)"
        )
        after = (
            verdict.after.short() + " issuer " + printable(verdict.after.issuer)
            if verdict.after
            else "(no handshake)"
        )
        p(f"    before: {before}")
        p(f"    after:  {after}")
        if verdict.findings_before or verdict.findings_after:
            p(f"    findings before: {', '.join(verdict.findings_before) or 'none'}")
            p(f"    findings after:  {', '.join(verdict.findings_after) or 'none'}")
        for reason in verdict.reasons:
            p(f"    - {reason}")

    @on_event.register
    def _notice(self, event: Notice) -> None:
        self._print(f"  {event.level.upper()}: {event.message}")

    @on_event.register
    def _run_finished(self, event: RunFinished) -> None:
        run = event.result
        self._print("\n" + with_elapsed(f"Run {run.outcome.value.upper()}: {run.message}", run.duration))
        self._print(f"Audit log: {run.audit_path}")


class _Signals:
    """Ctrl-C, SIGTERM, SIGHUP during a run: the first cancels the run (the remote command
    is ended), the second stops waiting for it (the task is cancelled). Installed before
    the silences are created and removed once they are ended, so no signal in between
    skips recording a silence's end."""

    def __init__(self, run: RunbookRun, task: asyncio.Future[RunResult]):
        self.run = run
        self.task = task
        self.hits = 0
        self.last = ""
        """The last signal's name."""
        self._loop = asyncio.get_running_loop()
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._on_signal, sig.name)
                self._installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self._installed:
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, signame: str) -> None:
        self.hits += 1
        self.last = signame
        if self.task.done():
            emit(sys.stderr, f"\ncertpager: {signame}: the run has ended; finishing...")
        elif self.hits == 1:
            emit(sys.stderr, f"\ncertpager: {signame}: cancelling the run (ending the remote command)...")
            self.run.cancel(f"cancelled by {signame}")
        else:
            emit(sys.stderr, "\ncertpager: stopping now; the remote state may be unknown")
            self.task.cancel()


async def _silenced(
    run: RunbookRun, silences: RunSilences | None, config: Config, console: _Console
) -> RunResult:
    """Silence the endpoint's alerts (if asked), then run."""
    if silences is not None:
        for note in await silence_run(config, silences):
            console._print(f"Silence: {note}")
    return await run.execute()


async def _run(
    plan: Plan,
    config: Config,
    audit: AuditLog,
    *,
    interactive: bool,
    yes: bool,
    names: list[str],
    silence: bool = False,
) -> int:
    console = _Console(plan, interactive=interactive, yes=yes, names=names)
    run = RunbookRun(
        plan, confirm=console.confirm, on_event=console.on_event, settings=config.settings, audit=audit
    )
    settings = config.settings.alertmanager
    silences = RunSilences(settings, run.records, plan) if silence and settings is not None else None
    task = asyncio.ensure_future(_silenced(run, silences, config, console))
    result: RunResult | None = None
    why: str | None = None
    with _Signals(run, task) as signals:
        try:
            result = await task
        except asyncio.CancelledError:
            why = f"a second {signals.last} stopped certpager before the run ended; the remote state may be unknown"
            return EXIT_CANCELLED
        except BaseException as exc:
            why = stopped_why(exc)
            raise
        finally:
            for note in await silences.finish(result, why) if silences is not None else ():
                console._print(f"Silence: {note}")
    return _exit_code(result, console)


def _exit_code(result: RunResult, console: _Console) -> int:
    """The exit code of a run that ended with ``result`` (its error on stderr)."""
    if result.error is not None and result.outcome is RunOutcome.FAILED:
        emit(sys.stderr, f"certpager: {result.error}")
    if console.lost is not None:
        raise OutputError(
            f"could not write the run's output: {console.lost}; the run {result.outcome.value}: "
            f"every step is in the audit log {result.audit_path}"
        )
    return {
        RunOutcome.SUCCEEDED: EXIT_OK,
        RunOutcome.DECLINED: EXIT_DECLINED,
        RunOutcome.CANCELLED: EXIT_CANCELLED,
    }.get(result.outcome, EXIT_FAILED)
