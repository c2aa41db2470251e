"""The main screen: every endpoint, worst first, re-probed live.

The screen owns the state (latest report per endpoint, which probes are in
flight, the filter) and derives the rows the table shows. Probes run as one
named, exclusive worker per endpoint, bounded by the config's concurrency; each
calls the injected checker and posts :class:`ProbeFinished`. Reports that arrive
in a burst are folded into one re-sort.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from certpager.config import Config, Endpoint
from certpager.fleet.pages import PageMap
from certpager.probe import EndpointReport, Status
from certpager.tui import view
from certpager.tui.alerts import watch_alerts
from certpager.tui.messages import ProbeCrashed, ProbeFinished
from certpager.tui.services import Checker, Clock, Schedule, safe_check
from certpager.tui.view import EndpointRow
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.summary import StatusSummary

if TYPE_CHECKING:
    from certpager.tui.app import CertpagerApp

CLOCK_TICK = 5.0
"""Seconds between refreshes of the days-left and CHECKED columns."""


class FilterInput(Input):
    """The ``/`` filter: live as you type; Enter keeps it, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter"),
        Binding("down", "leave", "To list", show=False),
    ]

    def action_clear(self) -> None:
        self.value = ""
        self.screen.query_one(EndpointTable).focus()

    def action_leave(self) -> None:
        self.screen.query_one(EndpointTable).focus()


class EndpointsScreen(Screen[None]):
    """Every configured endpoint with its live handshake status."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "recheck", "Recheck"),
        Binding("R", "recheck_all", "Recheck all"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("question_mark", "app.help", "Keys"),
        Binding("colon", "app.command_palette", "Commands"),
        Binding("b", "toggle_bell", "Bell", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    rows: reactive[tuple[EndpointRow, ...]] = reactive((), always_update=True)
    """Rows shown: filtered, worst first."""
    counts: reactive[dict[Status | None, int]] = reactive(dict, always_update=True)
    """Endpoints per status (all endpoints, not just those shown)."""
    total: reactive[int] = reactive(0)
    """Endpoints configured."""
    shown: reactive[int] = reactive(0)
    """Rows passing the filter."""
    filter_text: reactive[str] = reactive("")
    """The filter (name, host or tag words)."""
    checking: reactive[int] = reactive(0)
    """Probes in flight."""
    bell: reactive[bool] = reactive(True)
    """Ring the bell and notify when an endpoint gets worse."""
    readonly: reactive[bool] = reactive(False)
    """Runbook actions are hidden."""
    now: reactive[datetime] = reactive(datetime.min)
    """The clock as of the last tick."""

    def __init__(
        self,
        config: Config,
        *,
        checker: Checker,
        clock: Clock,
        schedule: Schedule | None,
        bell: bool,
        readonly: bool,
    ) -> None:
        super().__init__()
        self.config = config
        """The loaded config."""
        self.endpoints: dict[str, Endpoint] = {ep.name: ep for ep in config.endpoints}
        """Endpoints by name, in config order."""
        self.reports: dict[str, EndpointReport] = {}
        """Latest report per endpoint."""
        self.in_flight: set[str] = set()
        """Endpoints being probed now."""
        self.pages = PageMap()
        """Alertmanager's alerts by endpoint (kept current by certpager.tui.alerts)."""
        self.adhoc: set[str] = set()
        """Endpoints added because an alert names a target the config does not hold."""
        self._checker = checker
        self._clock = clock
        self._schedule = schedule
        self._limit = asyncio.Semaphore(max(config.settings.concurrency, 1))
        self._row_cache: dict[str, EndpointRow] = {}
        self._rebuild_scheduled = False
        self._quiet: set[str] = set()
        """Endpoints whose next report must not ring the bell (the full probe right after a
        runbook's lean verification report may add deep-check findings: not a regression)."""
        self.set_reactive(EndpointsScreen.bell, bell)
        self.set_reactive(EndpointsScreen.readonly, readonly)
        self.set_reactive(EndpointsScreen.total, len(self.endpoints))
        self.set_reactive(EndpointsScreen.now, clock())

    @property
    def cp_app(self) -> CertpagerApp:
        """The app, typed."""
        from certpager.tui.app import CertpagerApp

        assert isinstance(self.app, CertpagerApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield StatusSummary(id="summary").data_bind(
            EndpointsScreen.counts,
            EndpointsScreen.total,
            EndpointsScreen.shown,
            EndpointsScreen.filter_text,
            EndpointsScreen.checking,
            EndpointsScreen.bell,
            EndpointsScreen.readonly,
        )
        yield EndpointTable(id="endpoints").data_bind(EndpointsScreen.rows, EndpointsScreen.now)
        filter_input = FilterInput(
            placeholder="filter by name, host or tag (tag:prod) · Enter keeps · Esc clears",
            id="filter",
        )
        filter_input.display = False
        yield filter_input
        # ": Commands" is the palette's key here; the palette hint would push `q Quit` off an 80-column footer.
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._rebuild(all_rows=True)
        self.query_one(EndpointTable).focus()
        self.probe(self.endpoints.values())
        if self._schedule is not None:
            self.set_interval(1.0, self._tick, name="schedule")
        self.set_interval(CLOCK_TICK, self._tick_clock, name="clock")
        watch_alerts(self)

    # -- probing ------------------------------------------------------------

    def probe(self, endpoints: Iterable[Endpoint]) -> int:
        """Start a fresh probe of each endpoint not already in flight; return how many started."""
        started = 0
        for endpoint in endpoints:
            if endpoint.name in self.in_flight:
                continue
            self.in_flight.add(endpoint.name)
            self._row_cache.pop(endpoint.name, None)
            self.cp_app.probe_started(endpoint.name)
            self.run_worker(
                self._probe(endpoint),
                name=f"probe {endpoint.name}",
                group=f"probe:{endpoint.name}",
                exclusive=True,
                exit_on_error=False,
                description=f"probe {endpoint.address}",
            )
            started += 1
        if started:
            self.checking = len(self.in_flight)
            self._schedule_rebuild()
        return started

    async def _probe(self, endpoint: Endpoint) -> None:
        async with self._limit:
            report = await safe_check(self._checker, endpoint, self._clock)
        self.post_message(ProbeFinished(report))

    def recheck(self, names: Iterable[str] = ()) -> int:
        """Probe the named endpoints now (none named: all of them)."""
        wanted = list(names)
        endpoints = (
            [self.endpoints[n] for n in wanted if n in self.endpoints] if wanted else self.endpoints.values()
        )
        return self.probe(endpoints)

    def _tick(self) -> None:
        assert self._schedule is not None
        due = self._schedule.pop_due(time.monotonic(), (n for n in self.endpoints if n not in self.in_flight))
        if due:
            self.probe(self.endpoints[n] for n in due)

    def _tick_clock(self) -> None:
        now = self._clock()
        if now != self.now:
            self.now = now
            self._rebuild(all_rows=True)

    @on(ProbeFinished)
    def _on_probe_finished(self, message: ProbeFinished) -> None:
        message.stop()  # handled here; the app would forward it back
        self.accept_report(message.report)

    def accept_report(self, report: EndpointReport, *, quiet: bool = False) -> None:
        """Take a new report: update the row, alert if it got worse, refresh open detail screens.

        Args:
            report: the new report.
            quiet: no alert for this report nor for the next one of the same endpoint.
        """
        name = report.name
        if name not in self.endpoints:
            return
        old = self.reports.get(name)
        self.reports[name] = report
        self.in_flight.discard(name)
        self.checking = len(self.in_flight)
        self._row_cache.pop(name, None)
        if self._schedule is not None:
            self._schedule.probed(name, time.monotonic())
        if quiet:
            self._quiet.add(name)
        elif name in self._quiet:
            self._quiet.discard(name)
        elif view.got_worse(old, report) and old is not None:
            self._alert(old, report)
        self.cp_app.report_updated(report)
        self._schedule_rebuild()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A probe worker that failed outright (a bug) must not leave its row checking forever."""
        worker = event.worker
        if event.state is WorkerState.ERROR and worker.group.startswith("probe:"):
            name = worker.group.removeprefix("probe:")
            self.post_message(ProbeCrashed(name, f"{type(worker.error).__name__}: {worker.error}"))

    @on(ProbeCrashed)
    def _on_probe_crashed(self, message: ProbeCrashed) -> None:
        message.stop()
        self.in_flight.discard(message.name)
        self.checking = len(self.in_flight)
        self._row_cache.pop(message.name, None)
        self._schedule_rebuild()
        self.notify(
            view.printable(f"Probe of {message.name} failed: {message.error}"), severity="error", markup=False
        )

    def _alert(self, old: EndpointReport, new: EndpointReport) -> None:
        if not self.bell:
            return
        self.app.bell()
        worst = view.worst_finding(new)
        detail = f"\n{view.printable(worst.message)}" if worst is not None else ""
        self.notify(
            f"{view.printable(new.name)}: {old.status.value} → {new.status.value}{detail}",
            title="Endpoint got worse",
            severity="error" if new.status.rank >= Status.CRITICAL.rank else "warning",
            timeout=15,
            markup=False,
        )

    def set_pages(self, pages: PageMap) -> None:
        """Take a fresh set of alerts: mark and sort the paged rows, add and probe the
        endpoints only an alert names."""
        self.pages = pages
        new = [ep for ep in pages.adhoc if ep.name not in self.endpoints]
        for endpoint in new:
            self.endpoints[endpoint.name] = endpoint
            self.adhoc.add(endpoint.name)
        self.total = len(self.endpoints)
        self.probe(new)
        self._rebuild(all_rows=True)
        self.cp_app.pages_updated()

    # -- rows ---------------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            self.call_later(self._rebuild)

    def _rebuild(self, all_rows: bool = False) -> None:
        """Recompute rows from reports (cached per endpoint), sort, filter, count."""
        self._rebuild_scheduled = False
        if all_rows:
            self._row_cache.clear()
        now = self.now
        every: list[EndpointRow] = []
        for name, endpoint in self.endpoints.items():
            row = self._row_cache.get(name)
            if row is None:
                row = view.make_row(
                    endpoint, self.reports.get(name), name in self.in_flight, now, self.pages.of(name)
                )
                self._row_cache[name] = row
            every.append(row)
        self.counts = view.count_statuses(every)
        shown = [r for r in every if view.matches(r, self.filter_text)]
        self.shown = len(shown)
        table = self.query_one(EndpointTable)
        if self.filter_text:
            table.empty_text = (
                f"No endpoint matches “{view.printable(self.filter_text)}”. Esc clears the filter."
            )
        else:
            table.empty_text = "No endpoints configured."
        self.rows = tuple(view.sort_rows(shown))

    # -- filter -------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter and type into it."""
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter."""
        box = self.query_one(FilterInput)
        box.value = ""
        box.display = False
        self.query_one(EndpointTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        box = self.query_one(FilterInput)
        if not box.value:
            box.display = False
        self.query_one(EndpointTable).focus()

    def watch_filter_text(self) -> None:
        if self.is_mounted:
            self._rebuild()
            if not self.filter_text and not self.query_one(FilterInput).has_focus:
                self.query_one(FilterInput).display = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.filter_text)
        return True

    # -- actions ------------------------------------------------------------

    def action_recheck(self) -> None:
        """Probe the endpoint under the cursor now."""
        name = self.query_one(EndpointTable).highlighted
        if name is not None and not self.recheck([name]):
            self.notify(view.printable(f"{name} is already being checked."), markup=False, timeout=3)

    def action_recheck_all(self) -> None:
        """Probe every endpoint now."""
        started = self.recheck()
        self.notify(f"Rechecking {started} endpoint{'s' if started != 1 else ''}.", timeout=3)

    def action_toggle_bell(self) -> None:
        """Turn the bell and notifications on worsening on or off."""
        self.bell = not self.bell
        self.notify(f"Bell {'on' if self.bell else 'off'}.", timeout=3)

    @on(EndpointTable.Selected)
    def _selected(self, message: EndpointTable.Selected) -> None:
        self.cp_app.show_endpoint(message.name)

    def highlighted(self) -> str | None:
        """The endpoint under the cursor."""
        return self.query_one(EndpointTable).highlighted

    def palette_commands(self) -> Iterator[SystemCommand]:
        """Actions of this screen for the command palette."""
        name = self.highlighted()
        if name is not None:
            yield SystemCommand(
                f"Details of {name}",
                "Open the endpoint under the cursor",
                self.query_one(EndpointTable).action_select,
            )
            yield SystemCommand(
                f"Recheck {name}", "Probe the endpoint under the cursor now (r)", self.action_recheck
            )
        yield SystemCommand("Recheck all", "Probe every endpoint now (R)", self.action_recheck_all)
        yield SystemCommand("Filter", "Filter by name, host or tag (/)", self.action_filter)
        if self.filter_text:
            yield SystemCommand("Clear filter", "Show every endpoint (Esc)", self.action_clear_filter)
        yield SystemCommand(
            "Bell off" if self.bell else "Bell on",
            "Ring the bell and notify when an endpoint gets worse (b)",
            self.action_toggle_bell,
        )
        for row in self.rows[:500]:
            yield SystemCommand(
                f"Go to {row.name}",
                f"{row.badge} {row.address}",
                lambda n=row.name: self._goto(n),
                discover=False,
            )

    def _goto(self, name: str) -> None:
        self.query_one(EndpointTable).move_to(name)
        self.cp_app.show_endpoint(name)
