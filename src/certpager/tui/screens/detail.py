"""The endpoint screen: why it is red, the chain as sent, the handshakes, the fix.

Left: findings in plain words with fix and runbook, then handshake facts per
backend and the deeper checks (HTTP, protocols, served vs stored). Right: the
chain tree. Below 110 columns the two stack. The report is a reactive the main
screen updates when a new probe arrives; the panes are only re-rendered when
what they show changed, so a routine re-probe does not move the reader's place.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Footer

from certpager.config import Endpoint
from certpager.probe import CertInfo, EndpointReport
from certpager.tui import view
from certpager.tui.messages import Recheck, StartFix
from certpager.tui.screens.kept import KeptScreen
from certpager.tui.services import Clock
from certpager.tui.widgets.chain_tree import ChainTree
from certpager.tui.widgets.pages_view import PagesView
from certpager.tui.widgets.pane import Pane
from certpager.tui.widgets.report_views import (
    DetailHeader,
    FactsView,
    FindingsView,
    HandshakeView,
    ReportView,
)

NARROW = 110
"""Below this width the findings and the chain stack instead of sitting side by side."""


def _shape(report: EndpointReport | None) -> object:
    """What the panes show, minus timings and timestamps (so a routine re-probe is a no-op)."""
    if report is None:
        return None
    return (
        report.status,
        report.findings,
        tuple(
            (b.handshake.label, b.handshake.error_code, b.handshake.tls_version, b.handshake.cipher)
            for b in report.backends
        ),
        tuple(tuple(c.sha256 for c in b.analysis.chain) if b.analysis else () for b in report.backends),
        report.deep,
    )


class DetailScreen(KeptScreen):
    """Everything known about one endpoint."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back"),
        Binding("r", "recheck", "Recheck"),
        Binding("f", "fix", "Fix…"),
        Binding("n", "next_finding", "Next finding", show=False),
        Binding("p", "previous_finding", "Previous finding", show=False),
        Binding("c", "copy_pem", "Copy PEM"),
        Binding("y", "copy_fingerprint", "Copy SHA-256"),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False),
        Binding("question_mark", "app.help", "Keys"),
        Binding("colon", "app.command_palette", "Commands", show=False),
    ]

    report: reactive[EndpointReport | None] = reactive(None, init=False)
    """Latest report of the endpoint."""
    now: reactive[datetime] = reactive(datetime.min, init=False)
    """The clock as of the last tick."""
    checking: reactive[bool] = reactive(False)
    """A probe of this endpoint is in flight."""
    readonly: reactive[bool] = reactive(False)
    """Runbook actions are hidden."""
    selected: reactive[str | None] = reactive(None, init=False)
    """Code of the finding the fix key is for (n/p move it); None: the first (worst)."""
    page_lines: reactive[tuple[tuple[str, str], ...]] = reactive((), init=False)
    """What the alerts paging about the endpoint say (certpager.tui.view.page_texts)."""

    def __init__(
        self,
        endpoint: Endpoint,
        report: EndpointReport | None,
        *,
        clock: Clock,
        readonly: bool,
        checking: bool = False,
        fixable: bool = False,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        """The endpoint shown."""
        self._clock = clock
        self.set_reactive(DetailScreen.report, report)
        self.set_reactive(DetailScreen.now, clock())
        self.set_reactive(DetailScreen.readonly, readonly)
        self.set_reactive(DetailScreen.checking, checking)
        self._shown_shape = _shape(report)
        self._bindings_state: tuple[bool, ...] = ()
        self._clock_timer: Timer | None = None
        self.fixable = fixable
        """A runbook can be offered for this endpoint (the app says so when it opens the screen)."""

    def show(
        self,
        endpoint: Endpoint,
        report: EndpointReport | None,
        *,
        checking: bool,
        fixable: bool,
        page_lines: tuple[tuple[str, str], ...],
    ) -> None:
        """Show ``endpoint`` on this (kept) screen as a new screen would show it.

        The app keeps one detail screen and points it at the endpoint opened: building
        a screen per Enter was most of what opening an endpoint cost at fleet size. The
        reader's place is reset: the first (worst) finding marked, both panes scrolled
        to the top, every certificate expanded, the findings pane focused.
        """
        self.endpoint = endpoint
        self.fixable = fixable
        self._shown_shape = _shape(report)
        self.set_class(self.app.size.width < NARROW, "-narrow")  # the terminal may have changed meanwhile
        self.set_reactive(DetailScreen.selected, None)
        self.set_reactive(DetailScreen.report, report)
        self.set_reactive(DetailScreen.checking, checking)
        self.set_reactive(DetailScreen.page_lines, page_lines)
        self.set_reactive(DetailScreen.now, self._clock())
        for view_ in self.query(ReportView):
            view_.endpoint = endpoint
            view_.set_reactive(ReportView.report, report)
            view_.set_reactive(ReportView.now, self.now)
            view_.set_reactive(ReportView.checking, checking)
            if isinstance(view_, FindingsView):
                view_.set_reactive(FindingsView.selected, None)
            view_.refresh(layout=True)
        for pages in self.query(PagesView):
            pages.lines = page_lines
        for pane in self.query(Pane):
            pane.scroll_home(animate=False, immediate=True)
            pane.focus()
        for tree in self.query(ChainTree):
            tree.show(report, self.now, endpoint.thresholds)
        self._refresh_bindings()

    @property
    def can_fix(self) -> bool:
        """Whether the fix key offers a runbook (never in read-only mode)."""
        return self.fixable and not self.readonly

    def compose(self) -> ComposeResult:
        bound = {"report": DetailScreen.report, "now": DetailScreen.now, "checking": DetailScreen.checking}
        yield DetailHeader(self.endpoint, id="detail-header").data_bind(**bound)
        with Horizontal(id="detail-body"):
            with Pane(id="facts"):
                yield PagesView(id="pages").data_bind(lines=DetailScreen.page_lines)
                yield FindingsView(self.endpoint, id="findings").data_bind(
                    report=DetailScreen.report, readonly=DetailScreen.readonly, selected=DetailScreen.selected
                )
                yield HandshakeView(self.endpoint, id="handshakes").data_bind(report=DetailScreen.report)
                yield FactsView(self.endpoint, id="extra").data_bind(report=DetailScreen.report)
            tree = ChainTree(self.endpoint.thresholds, id="chain")
            tree.set_reactive(ChainTree.report, self.report)
            tree.set_reactive(ChainTree.now, self.now)
            yield tree
        yield Footer()

    def on_mount(self) -> None:
        for facts in self.query("#facts"):
            facts.focus()
        self._clock_timer = self.set_interval(5.0, self._tick_clock, name="clock")

    def on_screen_suspend(self) -> None:
        if self._clock_timer is not None:
            self._clock_timer.pause()  # the app keeps this screen: no ticking while the list is shown

    def on_screen_resume(self) -> None:
        if self._clock_timer is not None:
            self._clock_timer.resume()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def _tick_clock(self) -> None:
        now = self._clock()
        if now != self.now:
            self.now = now

    def _refresh_bindings(self) -> None:
        """Refresh the footer's keys when what they offer changed (the footer rebuilds all its
        keys on every refresh: a re-probe that changes nothing they say should not)."""
        state = (self.can_fix, self._cert() is not None, bool(self.check_action("next_finding", ())))
        if state != self._bindings_state:
            self._bindings_state = state
            self.refresh_bindings()

    def watch_report(self, report: EndpointReport | None) -> None:
        self._refresh_bindings()
        shape = _shape(report)
        if shape != self._shown_shape:
            self._shown_shape = shape
            for tree in self.query(ChainTree):
                tree.report = report

    # -- actions ------------------------------------------------------------

    def action_back(self) -> None:
        """Back to the list."""
        self.dismiss(None)

    def action_recheck(self) -> None:
        """Probe this endpoint now."""
        self.checking = True
        self.post_message(Recheck((self.endpoint.name,)))

    def action_fix(self) -> None:
        """Choose and run a runbook for this endpoint, for the selected finding."""
        if self.can_fix:
            self.post_message(StartFix(self.endpoint.name, finding=self.selected_finding()))

    def selected_finding(self) -> str | None:
        """The code of the selected finding (the first, worst one unless n/p moved it)."""
        codes = [f.code for f in self.report.findings] if self.report is not None else []
        if self.selected in codes:
            return self.selected
        return codes[0] if codes else None

    def _move_selection(self, step: int) -> None:
        codes = [f.code for f in self.report.findings] if self.report is not None else []
        if not codes:
            return
        current = self.selected_finding()
        index = codes.index(current) if current in codes else 0
        self.selected = codes[(index + step) % len(codes)]
        for view_ in self.query(FindingsView):
            view_.scroll_visible_selected()

    def action_next_finding(self) -> None:
        """Select the next finding (what the fix key is for)."""
        self._move_selection(1)

    def action_previous_finding(self) -> None:
        """Select the previous finding."""
        self._move_selection(-1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fix":
            return self.can_fix
        if action in ("next_finding", "previous_finding"):
            return self.report is not None and len(self.report.findings) > 1
        if action in ("copy_pem", "copy_fingerprint"):
            return self._cert() is not None
        return True

    def watch_readonly(self) -> None:
        self._refresh_bindings()

    def _cert(self) -> CertInfo | None:
        """The certificate under the tree cursor when the tree has focus, else the leaf."""
        for tree in self.query(ChainTree):
            if tree.has_focus and tree.selected_cert is not None:
                return tree.selected_cert
        return self.report.leaf if self.report is not None else None

    def action_copy_pem(self) -> None:
        """Copy the PEM of the leaf (or of the certificate under the tree cursor)."""
        cert = self._cert()
        if cert is None:
            return
        pem = ssl.DER_cert_to_PEM_cert(cert.der)
        self.app.copy_to_clipboard(pem)
        self.notify(
            view.printable(f"Copied the PEM of {cert.subject} ({len(pem)} bytes)."), timeout=4, markup=False
        )

    def action_copy_fingerprint(self) -> None:
        """Copy the SHA-256 fingerprint of the leaf (or of the certificate under the tree cursor)."""
        cert = self._cert()
        if cert is None:
            return
        self.app.copy_to_clipboard(cert.sha256)
        self.notify(
            view.printable(f"Copied SHA-256 {cert.sha256[:16]}… of {cert.subject}."), timeout=4, markup=False
        )

    def palette_commands(self) -> Iterator[SystemCommand]:
        """Actions of this screen for the command palette."""
        name = self.endpoint.name
        if self.can_fix:
            yield SystemCommand(f"Fix {name}…", "Choose a runbook, see its plan, run it (f)", self.action_fix)
        yield SystemCommand(f"Recheck {name}", "Probe this endpoint now (r)", self.action_recheck)
        if self._cert() is not None:
            yield SystemCommand(
                "Copy leaf PEM", "Copy the certificate as PEM to the clipboard (c)", self.action_copy_pem
            )
            yield SystemCommand(
                "Copy SHA-256 fingerprint",
                "Copy the fingerprint to the clipboard (y)",
                self.action_copy_fingerprint,
            )
        yield SystemCommand("Back to the list", "Esc", self.action_back)
