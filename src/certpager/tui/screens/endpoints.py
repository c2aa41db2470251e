"""The main screen: every endpoint, worst first, re-probed live.

The screen owns the state (latest report per endpoint, which probes are in
flight, the filter) and the rows the table shows (a :class:`view.RowList`, kept in
order one row at a time). Probes wait in one queue drained by as many pump
workers as the config's concurrency allows; each report goes into a buffer that
is applied at most every :data:`FLUSH_INTERVAL` seconds: the rows, the counts and
the screen update once per batch, so 10,000 endpoints reporting in a burst cost
one repaint per batch, not one per report. What the app needs to know (probes
started, reports taken, an endpoint chosen) is posted to it as messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.timer import Timer
from textual.widgets import Footer, Input

from certpager.config import Config, Endpoint
from certpager.fleet.pages import PageMap
from certpager.probe import EndpointReport, Status
from certpager.tui import view
from certpager.tui.alerts import watch_alerts
from certpager.tui.messages import PagesUpdated, ProbeCrashed, ProbeStarted, ReportsAccepted, ShowEndpoint
from certpager.tui.screens.kept import KeptScreen
from certpager.tui.services import Checker, Clock, Schedule, safe_check
from certpager.tui.view import EndpointRow, RowList
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.scrolling import FixedSizeScrolling
from certpager.tui.widgets.summary import StatusSummary

CLOCK_TICK = 5.0
"""Seconds between refreshes of the days-left and CHECKED columns."""

FLUSH_INTERVAL = 0.05
"""Reports arriving within this many seconds of the last repaint wait and are applied together."""

ALERTS_SHOWN = 3
"""At most this many "got worse" notices per batch of reports; more are told as one count."""


def _never(name: str) -> bool:
    return False


class FilterInput(FixedSizeScrolling, Input):
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


class EndpointsScreen(KeptScreen):
    """Every configured endpoint with its live handshake status.

    Its reactives are ``var``s: they feed the summary and the table (``data_bind``), and a
    change must repaint those widgets, not the whole screen (a screen-wide repaint on every
    batch of reports made each batch a full-screen render, the main cost of key latency
    at 10,000 endpoints).
    """

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

    counts: var[dict[Status | None, int]] = var(dict)
    """Endpoints per status (all endpoints, not just those shown)."""
    total: var[int] = var(0)
    """Endpoints configured."""
    shown: var[int] = var(0)
    """Rows passing the filter."""
    filter_text: var[str] = var("", init=False)
    """The filter (name, host or tag words)."""
    checking: var[int] = var(0)
    """Probes in flight."""
    bell: var[bool] = var(True)
    """Ring the bell and notify when an endpoint gets worse."""
    readonly: var[bool] = var(False)
    """Runbook actions are hidden."""
    now: var[datetime] = var(datetime.min)
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
        """Latest report per endpoint (as shown: reports wait for the next repaint)."""
        self.in_flight: set[str] = set(self.endpoints)
        """Endpoints being probed now (until their report is shown); every one from the start."""
        self.pages = PageMap()
        """Alertmanager's alerts by endpoint (kept current by certpager.tui.alerts)."""
        self.adhoc: set[str] = set()
        """Endpoints added because an alert names a target the config does not hold."""
        self.resolved: set[str] = set()
        """Ad-hoc endpoints no alert names any more, kept while :attr:`in_use` (marked ``⚐``)."""
        self.in_use: Callable[[str], bool] = _never
        """Whether a run of the endpoint is going or a screen of it is open (the app sets it):
        an ad-hoc endpoint whose alert resolved leaves the list only when it is not."""
        self._checker = checker
        self._clock = clock
        self._schedule = schedule
        self._concurrency = max(config.settings.concurrency, 1)
        self._queue: asyncio.Queue[Endpoint] = asyncio.Queue()
        """Endpoints waiting for a pump."""
        for endpoint in self.endpoints.values():
            self._queue.put_nowait(endpoint)
        self._pumps = 0
        """Pump workers started (they live as long as the screen, waiting on the queue when idle)."""
        self._arrived: list[EndpointReport] = []
        """Reports not applied yet (until the next flush)."""
        self._flush_timer: Timer | None = None
        self._flush_pending = False
        self._flushed_at = 0.0
        self._quiet: set[str] = set()
        """Endpoints whose next report must not ring the bell (the full probe right after a
        runbook's lean verification report may add deep-check findings: not a regression)."""
        now = clock()
        self.row_list = RowList(
            view.make_row(ep, None, True, now, self.pages.of(ep.name)) for ep in self.endpoints.values()
        )
        """Every row, and the rows shown in order."""
        self.set_reactive(EndpointsScreen.bell, bell)
        self.set_reactive(EndpointsScreen.readonly, readonly)
        self.set_reactive(EndpointsScreen.total, len(self.endpoints))
        self.set_reactive(EndpointsScreen.now, now)

    @property
    def rows(self) -> Sequence[EndpointRow]:
        """Rows shown: filtered, worst first."""
        return self.row_list.shown

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
        yield EndpointTable(id="endpoints").data_bind(EndpointsScreen.now)
        filter_input = FilterInput(
            placeholder="filter by name, host or tag (tag:prod) · Enter keeps · Esc clears",
            id="filter",
        )
        filter_input.display = False
        yield filter_input
        # ": Commands" is the palette's key here; the palette hint would push `q Quit` off an 80-column footer.
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(EndpointTable).focus()
        self._start_pumps()  # every endpoint is queued (and its row says checking) from the start
        self._flush()
        if self._schedule is not None:
            self.set_interval(1.0, self._tick, name="schedule")
        self.set_interval(CLOCK_TICK, self._tick_clock, name="clock")
        watch_alerts(self)

    # -- probing ------------------------------------------------------------

    def probe(self, endpoints: Iterable[Endpoint]) -> int:
        """Start a fresh probe of each endpoint not already in flight; return how many started."""
        started: list[str] = []
        for endpoint in endpoints:
            name = endpoint.name
            if name in self.in_flight:
                continue
            self.in_flight.add(name)
            self._queue.put_nowait(endpoint)
            row = self.row_list.get(name)
            if row is not None and not row.checking:
                self.row_list.put(dataclasses.replace(row, checking=True))
            started.append(name)
        if started:
            self.post_message(ProbeStarted(tuple(started)))
            self._start_pumps()
            self._schedule_flush()
        return len(started)

    def _start_pumps(self) -> None:
        """Enough pump workers for the queue, up to the configured concurrency."""
        while self._pumps < min(self._concurrency, self._queue.qsize()):
            self._pumps += 1
            self.run_worker(self._pump(), group="probes", exit_on_error=False, description="probes")

    async def _pump(self) -> None:
        """Probe queued endpoints one after the other, for as long as the screen lives."""
        while True:
            endpoint = await self._queue.get()
            try:
                report = await safe_check(self._checker, endpoint, self._clock)
            except Exception as exc:  # a bug, not a TLS failure: the row must not stay checking
                self.post_message(ProbeCrashed(endpoint.name, f"{type(exc).__name__}: {exc}"))
                continue
            self._arrived.append(report)
            self._schedule_flush()

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
            self.now = now  # the table measures days and ages against it when it paints

    def accept_report(self, report: EndpointReport, *, quiet: bool = False) -> None:
        """Take a new report now (a runbook's verification): the row, alerts, open detail screens.

        Args:
            report: the new report.
            quiet: no alert for this report nor for the next one of the same endpoint.
        """
        if report.name not in self.endpoints:
            return
        worse = self._apply(report, quiet=quiet)
        self._alert(worse)
        self.post_message(ReportsAccepted((report,)))
        self._schedule_flush()

    def _apply(
        self, report: EndpointReport, *, quiet: bool = False
    ) -> list[tuple[EndpointReport, EndpointReport]]:
        """Record ``report`` and replace its row; returns (old, new) if it is worse than the last one."""
        name = report.name
        old = self.reports.get(name)
        self.reports[name] = report
        self.in_flight.discard(name)
        row = view.make_row(
            self.endpoints[name], report, False, self.now, self.pages.of(name), resolved=name in self.resolved
        )
        self.row_list.put(row)
        if self._schedule is not None:
            self._schedule.probed(name, time.monotonic())
        if quiet:
            self._quiet.add(name)
        elif name in self._quiet:
            self._quiet.discard(name)
        elif old is not None and view.got_worse(old, report):
            return [(old, report)]
        return []

    @on(ProbeCrashed)
    def _on_probe_crashed(self, message: ProbeCrashed) -> None:
        message.stop()
        self.in_flight.discard(message.name)
        row = self.row_list.get(message.name)
        if row is not None and row.checking:
            self.row_list.put(dataclasses.replace(row, checking=False))
        self._schedule_flush()
        self.notify(
            view.printable(f"Probe of {message.name} failed: {message.error}"), severity="error", markup=False
        )

    def _alert(self, worse: list[tuple[EndpointReport, EndpointReport]]) -> None:
        if not self.bell or not worse:
            return
        self.app.bell()
        for old, new in worse[:ALERTS_SHOWN]:
            found = view.worst_finding(new)
            detail = f"\n{view.printable(found.message)}" if found is not None else ""
            self.notify(
                f"{view.printable(new.name)}: {old.status.value} → {new.status.value}{detail}",
                title="Endpoint got worse",
                severity="error" if new.status.rank >= Status.CRITICAL.rank else "warning",
                timeout=15,
                markup=False,
            )
        if len(worse) > ALERTS_SHOWN:
            more = len(worse) - ALERTS_SHOWN
            self.notify(
                f"{more} more endpoint{'s' if more != 1 else ''} got worse: they are at the top of the list.",
                title="Endpoints got worse",
                severity="error",
                timeout=15,
                markup=False,
            )

    def set_pages(self, pages: PageMap) -> None:
        """Take a fresh set of alerts: mark and move the rows whose alerts changed (not every
        row), add and probe the endpoints only an alert names, take out those no alert names
        any more (:meth:`_settle_adhoc`); screens showing one of the endpoints whose alerts
        changed are told (:class:`PagesUpdated`)."""
        old, self.pages = self.pages, pages
        now = self.now
        new = [ep for ep in pages.adhoc if ep.name not in self.endpoints]
        for endpoint in new:
            self.endpoints[endpoint.name] = endpoint
            self.adhoc.add(endpoint.name)
            # probe() only marks rows that exist: the row goes in first.
            self.row_list.put(view.make_row(endpoint, None, False, now, pages.of(endpoint.name)))
        changed = tuple(sorted(n for n in {*old.pages, *pages.pages} if old.of(n) != pages.of(n)))
        for name in changed:
            row = self.row_list.get(name)
            if row is not None and row.pages != len(pages.of(name)):
                self.row_list.put(dataclasses.replace(row, pages=len(pages.of(name))))
        self._settle_adhoc()
        self.probe(new)
        self._flush()
        if changed:
            self.post_message(PagesUpdated(changed))

    def _settle_adhoc(self) -> None:
        """Ad-hoc endpoints no alert names any more leave the list, unless :attr:`in_use`:
        then they stay, marked resolved, until a later call finds them unused; one an alert
        names again is no longer resolved."""
        for name in sorted(self.adhoc):
            paged = bool(self.pages.of(name))
            if paged or self.in_use(name):
                self._mark_resolved(name, not paged)
                continue
            del self.endpoints[name]
            self.adhoc.discard(name)
            self.resolved.discard(name)
            self.reports.pop(name, None)
            self.in_flight.discard(name)  # a report still coming is dropped (not an endpoint any more)
            self._quiet.discard(name)
            self.row_list.remove(name)
        self.total = len(self.endpoints)

    def _mark_resolved(self, name: str, resolved: bool) -> None:
        if (name in self.resolved) == resolved:
            return
        if resolved:
            self.resolved.add(name)
        else:
            self.resolved.discard(name)
        row = self.row_list.get(name)
        if row is not None:
            self.row_list.put(dataclasses.replace(row, resolved=resolved))

    def release_resolved(self) -> None:
        """Take out the ad-hoc endpoints whose alert resolved and that nothing uses any more
        (a run of one ended, a screen of one closed)."""
        if self.resolved:
            self._settle_adhoc()
            self._flush()

    def on_screen_resume(self) -> None:
        """Back on the list: a screen above closed, so an endpoint it kept may leave."""
        self.release_resolved()

    # -- rows ---------------------------------------------------------------

    def _schedule_flush(self) -> None:
        """Apply what arrived on the next turn of the loop, or when FLUSH_INTERVAL has passed
        since the last flush if that is later (a stream of reports repaints ~20 times a second)."""
        if self._flush_pending:
            return
        self._flush_pending = True
        wait = self._flushed_at + FLUSH_INTERVAL - time.monotonic()
        if wait > 0:
            self._flush_timer = self.set_timer(wait, self._flush, name="flush")
        else:
            self.call_later(self._flush)

    def _flush(self) -> None:
        """Apply the reports that arrived, then show the rows, the counts and the filter state."""
        self._flush_pending = False
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        self._flushed_at = time.monotonic()
        arrived, self._arrived = self._arrived, []
        worse: list[tuple[EndpointReport, EndpointReport]] = []
        for report in arrived:
            if report.name in self.endpoints:
                worse += self._apply(report)
        if arrived:
            self._alert(worse)
            self.post_message(ReportsAccepted(tuple(arrived)))
        self._show_rows()

    def _show_rows(self) -> None:
        """Show the rows, the counts and the filter state as they are (the reports that
        arrived since the last flush wait for the next one)."""
        self.checking = len(self.in_flight)
        self.counts = dict(self.row_list.counts)
        self.shown = len(self.row_list.shown)
        table = next(iter(self.query(EndpointTable)), None)
        if table is None:  # not composed yet: on_mount flushes
            return
        if self.filter_text:
            table.empty_text = (
                f"No endpoint matches “{view.printable(self.filter_text)}”. Esc clears the filter."
            )
        else:
            table.empty_text = "No endpoints configured."
        table.show(self.row_list)

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
        self.row_list.set_query(self.filter_text)
        if self.is_mounted:
            self._show_rows()  # the filter now; reports waiting for the flush are not its business
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
        self.post_message(ShowEndpoint(message.name))

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
        self.post_message(ShowEndpoint(name))
