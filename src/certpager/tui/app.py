"""The certpager Textual app and its factory.

The app holds the services (config, checker, clock, runbook service) and routes
requests between screens; the screens own the state. :func:`build_app` is the
one place an app is made, by ``certpager`` and by the tests (with fakes).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import ClassVar

from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.filter import LineFilter
from textual.screen import Screen
from textual.worker import Worker

from certpager.config import Config
from certpager.errors import CertpagerError, RunLockedError
from certpager.fleet.silence import RunSilences, stopped_why
from certpager.probe import EndpointReport
from certpager.runbook import ConfirmReply, ConfirmRequest, Notice, Plan, RunbookRun, RunEvent, RunResult
from certpager.text import printable
from certpager.tui import collector
from certpager.tui.alerts import silence_question
from certpager.tui.messages import (
    PagesUpdated,
    ProbeFinished,
    ProbeStarted,
    Recheck,
    ReportsAccepted,
    RunbookCrashed,
    RunbookEvent,
    ShowEndpoint,
    StartFix,
)
from certpager.tui.runbooks import RunbookService, advised_runbook, recommendations
from certpager.tui.safe import PrintableFilter
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.endpoints import EndpointsScreen
from certpager.tui.screens.help import HelpScreen, TooSmallScreen
from certpager.tui.screens.runbook import (
    AskModal,
    ConfirmModal,
    MessageModal,
    PlanScreen,
    RunbookChooser,
    RunScreen,
)
from certpager.tui.services import Checker, Clock, Schedule, default_checker, system_clock
from certpager.tui.view import page_texts

STYLES = Path(__file__).parent / "styles"


MIN_SIZE = (60, 16)
"""Below this (columns, rows) a notice replaces the layout (80x24 is the design size)."""

STOP_GRACE = 15.0
"""Seconds a signal or quit waits for a cancelled run to end its command and close its audit record."""


class CertpagerApp(App[int]):
    """From page to verified fix: the endpoint list, the detail screen, the runbook flow."""

    TITLE = "certpager"
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        STYLES / "global.tcss",
        STYLES / "endpoints.tcss",
        STYLES / "detail.tcss",
        STYLES / "runbook.tcss",
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]
    ENABLE_COMMAND_PALETTE = True

    startup_notice: str | None = None
    """A problem found before the app opened (a failed Prometheus import), shown once it is up."""

    def __init__(
        self,
        config: Config,
        *,
        checker: Checker,
        clock: Clock,
        readonly: bool = False,
        schedule: Schedule | None = None,
        bell: bool = True,
        runbooks: RunbookService | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        """The loaded endpoint config."""
        self.checker = checker
        """Probes one endpoint."""
        self.clock = clock
        """Current time (frozen in tests)."""
        self.readonly = readonly
        """Hide every runbook action."""
        self.endpoints_screen = EndpointsScreen(
            config, checker=checker, clock=clock, schedule=schedule, bell=bell, readonly=readonly
        )
        """The main screen (bottom of the stack, never popped)."""
        self.endpoints_screen.in_use = self.endpoint_in_use
        self.runbooks = runbooks if not readonly else None
        """The runbook engine as the app uses it (None in read-only mode)."""
        self.active_runs: dict[str, RunbookRun] = {}
        """Runs in progress, by endpoint."""
        self.run_screens: dict[str, RunScreen] = {}
        """The latest run screen per endpoint."""
        self._signals_installed: list[tuple[int, signal._HANDLER]] = []
        self._collector = collector.Collector()
        """Keeps the garbage collector's full passes off the keys (see certpager.tui.collector)."""
        self._detail: DetailScreen | None = None
        """The detail screen, built once and pointed at each endpoint opened (see DetailScreen.show)."""

    _printable_filter = PrintableFilter()

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, then the one that keeps unprintable characters off the terminal."""
        return [*super().get_line_filters(), self._printable_filter]

    def get_default_screen(self) -> Screen[None]:
        return self.endpoints_screen

    # -- lifecycle ----------------------------------------------------------

    def on_mount(self) -> None:
        self._install_signal_handlers()
        if self.startup_notice:
            self.notify(printable(self.startup_notice), severity="warning", timeout=30, markup=False)
        # Validating every runbook file takes a moment: do it once the list is on screen (the
        # thread shares the interpreter lock with the first frame), off the event loop, so the
        # first `f` opens the chooser at once.
        self.call_after_refresh(self._load_runbooks)
        self._collector.start()
        self.call_after_refresh(self._collector.tick)  # freezes the config, the rows, the widgets
        self.set_interval(collector.TICK, self._collector.tick, name="garbage collector")

    def _load_runbooks(self) -> None:
        if self.runbooks is not None:
            self.run_worker(
                self.runbooks.catalog,
                thread=True,
                name="load runbooks",
                group="runbooks",
                exit_on_error=False,
            )

    def on_unmount(self) -> None:
        self._remove_signal_handlers()
        self._collector.stop()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self._collector.input()
        await super().on_event(event)

    def on_resize(self, event: events.Resize) -> None:
        """Say so when the terminal is too small, instead of showing a broken layout."""
        small = event.size.width < MIN_SIZE[0] or event.size.height < MIN_SIZE[1]
        notice = next((s for s in self.screen_stack if isinstance(s, TooSmallScreen)), None)
        if small and notice is None:
            self.push_screen(TooSmallScreen(MIN_SIZE))
        elif not small and notice is not None and notice is self.screen:
            notice.dismiss(None)

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGHUP: leave through the normal exit, which restores the terminal.

        Textual's Linux driver only handles TSTP/CONT/WINCH; without this, TERM and
        HUP would kill the process with the terminal still in raw/mouse mode.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                continue
            self._signals_installed.append((signum, previous))

    def _remove_signal_handlers(self) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for signum, previous in self._signals_installed:
            loop.remove_signal_handler(signum)
            # Put back whatever handler the caller had (the demo wraps the app with its own).
            with contextlib.suppress(TypeError, ValueError, OSError):
                signal.signal(signum, previous)
        self._signals_installed.clear()

    def _on_signal(self, signum: int) -> None:
        self.call_later(self.shutdown_on_signal, signum)

    async def shutdown_on_signal(self, signum: int) -> None:
        """Cancel a running runbook (its audit record is closed by the engine), then exit."""
        await self.stop_runs(reason=f"{signal.Signals(signum).name} received")
        self.exit(return_code=128 + signum)

    async def stop_runs(self, reason: str) -> None:
        """Cancel every running runbook and wait for the engine to close its records.

        A flow that has not started a run (it waits in the chooser, the plan or a message)
        has nothing to close: it is cancelled at once, never waited for.
        """
        for run in list(self.active_runs.values()):
            run.cancel(reason)
        flows: list[Worker[object]] = []
        for worker in self.workers:
            if not worker.group.startswith("runbook:") or worker.is_finished:
                continue
            if worker.group.removeprefix("runbook:") in self.active_runs:
                flows.append(worker)
            else:
                worker.cancel()
        if flows:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_GRACE):
                    for worker in flows:
                        await worker.wait()

    async def action_quit(self) -> None:
        """Quit; a running runbook is cancelled first (after asking), so its audit record closes."""
        if self.active_runs:
            self.push_screen(
                AskModal(
                    "A runbook is running",
                    "Cancel the running runbook and quit? The running command is ended on its target.",
                    yes="Cancel it and quit (y)",
                    no="Keep running (n)",
                ),
                self._quit_answered,
            )
            return
        self.exit()

    async def _quit_answered(self, yes: bool | None) -> None:
        if yes:
            await self.stop_runs("cancelled: certpager is quitting")
            self.exit()

    # -- routing between screens -------------------------------------------

    def show_endpoint(self, name: str) -> None:
        """Open the detail screen of ``name``.

        One detail screen is built (on the first Enter), kept installed and pointed at each
        endpoint opened after (:meth:`DetailScreen.show`): at 10,000 endpoints, composing,
        styling and laying out a new screen was most of what Enter cost. A second detail
        screen is built only while the kept one is still on the stack or not mounted yet.
        """
        screen = self.endpoints_screen
        endpoint = screen.endpoints.get(name)
        if endpoint is None:
            return
        report = screen.reports.get(name)
        checking = name in screen.in_flight
        kept = self._detail
        if kept is not None and kept.is_mounted and kept not in self.screen_stack:
            kept.show(
                endpoint,
                report,
                checking=checking,
                fixable=self.can_fix(name),
                page_lines=self._page_lines(name),
            )
            self.push_screen(kept)
            return
        detail = DetailScreen(
            endpoint,
            report,
            clock=self.clock,
            readonly=self.readonly,
            checking=checking,
            fixable=self.can_fix(name),
        )
        detail.set_reactive(DetailScreen.page_lines, self._page_lines(name))
        if kept is None:
            self._detail = detail
            self.install_screen(detail, "detail")
        self.push_screen(detail)

    def _page_lines(self, name: str) -> tuple[tuple[str, str], ...]:
        screen = self.endpoints_screen
        return tuple(
            page_texts(
                screen.pages.of(name),
                screen.reports.get(name),
                configured=name not in screen.adhoc,
                can_run=(ep := screen.endpoints.get(name)) is not None and ep.ssh is not None,
                resolved=name in screen.resolved,
            )
        )

    def endpoint_in_use(self, name: str) -> bool:
        """Whether a runbook flow or run for ``name`` is going, or a screen of it is open (an
        endpoint only an alert named stays listed after its alert resolved until neither)."""
        if name in self.active_runs or any(
            w.group == f"runbook:{name}" and not w.is_finished for w in self.workers
        ):
            return True
        return any(
            (isinstance(s, DetailScreen) and s.endpoint.name == name)
            or (isinstance(s, RunScreen) and s.plan.endpoint.name == name)
            for s in self.screen_stack
        )

    @on(PagesUpdated)
    def _pages_updated(self, message: PagesUpdated) -> None:
        """Fresh alerts: screens showing one of those endpoints say what pages about it."""
        names = set(message.names)
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.endpoint.name in names:
                screen.page_lines = self._page_lines(screen.endpoint.name)

    @on(ShowEndpoint)
    def _show_endpoint(self, message: ShowEndpoint) -> None:
        self.show_endpoint(message.name)

    @on(ProbeStarted)
    def _probe_started(self, message: ProbeStarted) -> None:
        """Probes began: screens showing one of those endpoints say it is being checked."""
        names = set(message.names)
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.endpoint.name in names:
                screen.checking = True

    @on(ReportsAccepted)
    def _reports_accepted(self, message: ReportsAccepted) -> None:
        """The list took new reports: update every screen showing one of those endpoints."""
        latest: dict[str, EndpointReport] = {r.name: r for r in message.reports}
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.endpoint.name in latest:
                screen.report = latest[screen.endpoint.name]
                screen.checking = False
                screen.page_lines = self._page_lines(screen.endpoint.name)

    @on(Recheck)
    def _recheck(self, message: Recheck) -> None:
        self.endpoints_screen.recheck(message.names)

    @on(ProbeFinished)
    def _probe_finished(self, message: ProbeFinished) -> None:
        """Reports posted to the app (a runbook's verification) go to the list."""
        self.endpoints_screen.accept_report(message.report)

    # -- runbooks -----------------------------------------------------------

    @on(StartFix)
    def _start_fix(self, message: StartFix) -> None:
        self.start_fix(message.name, finding=message.finding)

    def can_fix(self, name: str) -> bool:
        """Whether a runbook can be offered for ``name`` (never in read-only mode, nor for
        an endpoint only an alert names when nothing says where runbooks run for it)."""
        screen = self.endpoints_screen
        if name in screen.adhoc and (ep := screen.endpoints.get(name)) is not None and ep.ssh is None:
            return False
        return not self.readonly and self.runbooks is not None

    def start_fix(self, name: str, *, finding: str | None = None) -> None:
        """Choose a runbook for ``name``, show its plan, run it (as a worker on the app).

        ``finding`` is the code of the finding the run is for (the detail screen's selected
        finding); None means the endpoint's worst finding.
        """
        if not self.can_fix(name):
            return
        active = self.run_screens.get(name)
        if active is not None and active.phase != "finished":
            if active is not self.screen and active not in self.screen_stack:
                self.push_screen(active)
            self.notify(printable(f"A runbook is already running for {name}."), markup=False)
            return
        if any(w.name == f"fix {name}" and not w.is_finished for w in self.workers):
            return
        self.run_worker(
            self.fix_flow(name, finding=finding),
            name=f"fix {name}",
            group=f"runbook:{name}",
            exclusive=False,
            exit_on_error=False,
            description=f"runbook flow for {name}",
        )

    async def fix_flow(self, name: str, *, finding: str | None = None) -> None:
        """Choose -> plan -> run with confirmations -> verify. Runs in a worker on the app
        (its own group per endpoint), so popping a screen or a probe refresh never cancels it."""
        service = self.runbooks
        endpoint = self.config.endpoint(name) or self.endpoints_screen.endpoints.get(name)
        if service is None or endpoint is None:
            return
        report = self.endpoints_screen.reports.get(name)
        try:
            runbooks, invalid = service.for_endpoint(endpoint)
        except Exception as exc:  # the fix key never silently does nothing (the worker swallows errors)
            await self.push_screen_wait(MessageModal("Cannot list runbooks", _reason(exc)))
            return
        if not runbooks:
            extra = "".join(f"\n{e.path.name}: {e.error}" for e in invalid)
            await self.push_screen_wait(
                MessageModal(
                    f"No runbook for {name}",
                    f"No runbook applies to {name}. Add one to its `runbooks:` list (or give it a tag a "
                    f"runbook applies to) in {self.config.path or 'the config'}.{extra}",
                )
            )
            return
        # What the fix is for: the finding selected on the endpoint screen, else the endpoint's
        # worst finding (what its row and screen lead with).
        findings = report.findings if report is not None else ()
        present = [f.code for f in findings]
        selected = finding if finding in present else (present[0] if present else None)
        recommended = recommendations(findings, runbooks)
        advised = advised_runbook(findings, selected, runbooks)
        while True:
            runbook = await self.push_screen_wait(
                RunbookChooser(endpoint, runbooks, recommended, invalid, selected=selected, advised=advised)
            )
            if runbook is None:
                return
            try:
                targets = [selected] if selected is not None and selected in runbook.fixes else []
                plan = service.plan(runbook, endpoint, targets=targets)
            except Exception as exc:  # shown, never swallowed by the worker
                await self.push_screen_wait(MessageModal(f"Cannot plan {runbook.name}", _reason(exc)))
                continue
            if await self.push_screen_wait(PlanScreen(plan)):
                break
            if len(runbooks) == 1:
                return
        await self._run_plan(service, plan, silence=await self._ask_silence(plan))

    async def _ask_silence(self, plan: Plan) -> bool:
        """Whether to silence the endpoint's alerts during the run (asked only when some page)."""
        pages = self.endpoints_screen.pages.of(plan.endpoint.name)
        if self.config.settings.alertmanager is None or not pages:
            return False
        question = silence_question(pages, plan)
        ask = AskModal("Silence the alerts?", question, yes="Silence them (y)", no="Do not silence (n)")
        answer: bool = await self.push_screen_wait(ask)
        return answer

    async def _run_plan(self, service: RunbookService, plan: Plan, *, silence: bool = False) -> None:
        name = plan.endpoint.name
        holder: list[RunbookRun] = []
        screen = RunScreen(
            plan, clock=self.clock, cancel=lambda reason: holder[0].cancel(reason) if holder else None
        )
        self.run_screens[name] = screen
        await self.push_screen(screen)
        try:
            for note in service.unfinished_runs():
                screen.post_message(RunbookEvent(Notice(run_id="", level="warning", message=note)))
        except CertpagerError as exc:
            screen.post_message(RunbookCrashed(f"the audit log cannot be used, so nothing runs: {exc}"))
            return

        def on_event(event: RunEvent) -> None:
            screen.post_message(RunbookEvent(event))

        try:
            run = service.new_run(plan, confirm=self._confirm, on_event=on_event)
            holder.append(run)
            self.active_runs[name] = run
            silences = None
            if silence and (settings := self.config.settings.alertmanager) is not None:
                silences = RunSilences(settings, run.records, plan)
            result: RunResult | None = None
            why: str | None = None
            try:
                for note in await silences.create(self.endpoints_screen.pages.of(name)) if silences else ():
                    on_event(Notice(run_id=run.run_id, level="info", message=note))
                result = await run.execute()
            except BaseException as exc:
                why = stopped_why(exc)
                raise
            finally:
                for note in await silences.finish(result, why) if silences is not None else ():
                    on_event(Notice(run_id=run.run_id, level="info", message=note))
        except RunLockedError as exc:
            screen.post_message(RunbookCrashed(f"not started: {exc}"))
            return
        except Exception as exc:  # a bug must not leave the screen saying RUNNING, nor end the app
            self.log.error(f"runbook run for {name} failed: {exc!r}")
            screen.post_message(RunbookCrashed(f"the run stopped unexpectedly: {type(exc).__name__}: {exc}"))
            return
        finally:
            self.active_runs.pop(name, None)
        # The row updates at once from the verification's own handshakes, then a full
        # probe (deep checks included) follows.
        verified = service.last_reports.get(name)
        if verified is not None and result.verification is not None:
            self.endpoints_screen.accept_report(verified, quiet=True)
        self.endpoints_screen.recheck([name])

    async def _confirm(self, request: ConfirmRequest) -> ConfirmReply:
        """The engine's confirmation callable: a modal, awaited inside the run's worker."""
        modal = ConfirmModal(request)
        try:
            reply: ConfirmReply = await self.push_screen_wait(modal)
        except asyncio.CancelledError:
            # The run was cancelled while asking (signal, cancel): take the question away.
            if modal.is_attached and modal in self.screen_stack:
                modal.dismiss(ConfirmReply.no())
            raise
        return reply

    # -- keys and palette ---------------------------------------------------

    def action_help(self) -> None:
        """Show every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.readonly))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()
        yield SystemCommand("Keys", "Show every key (?)", self.action_help)
        yield from (c for c in super().get_system_commands(screen) if c.title not in ("Keys",))


def build_app(
    config: Config,
    *,
    checker: Checker | None = None,
    clock: Clock | None = None,
    readonly: bool = False,
    auto_refresh: bool = True,
    interval: float | None = None,
    bell: bool | None = None,
    seed: int | None = None,
    runbooks: RunbookService | None = None,
) -> CertpagerApp:
    """Make the app. Tests inject a fake ``checker`` and a frozen ``clock``.

    Args:
        config: the loaded config.
        checker: probes one endpoint (default: the real probe with the config's settings).
        clock: current time (default: the wall clock).
        readonly: hide every runbook action.
        auto_refresh: re-probe on the interval (off in tests: only explicit probes).
        interval: seconds between re-probes (default: the config's ``interval``).
        bell: ring the bell when an endpoint gets worse (default: the config's ``bell``).
        seed: seed of the jitter (tests).
        runbooks: the runbook service (default: the real engine on the config; None in read-only).
    """
    clock = clock or system_clock
    settings = config.settings
    schedule = (
        Schedule(interval=interval or settings.interval, rng=random.Random(seed)) if auto_refresh else None
    )
    return CertpagerApp(
        config,
        checker=checker or default_checker(settings, clock),
        clock=clock,
        readonly=readonly,
        schedule=schedule,
        bell=settings.bell if bell is None else bell,
        runbooks=None if readonly else (runbooks or RunbookService(config)),
    )


def _reason(exc: Exception) -> str:
    """An error as the user reads it: the message of a certpager error, else its type too."""
    return str(exc) if isinstance(exc, CertpagerError) else f"{type(exc).__name__}: {exc}"
