"""Render-only views of one endpoint report: header, findings, handshakes, extra facts.

Each widget takes the report (and the clock) as reactives set by its screen and
builds ``rich.text.Text`` from plain strings; nothing from a certificate or a
server is ever parsed as markup, and control characters are shown escaped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.widget import Widget

from certpager.config import Endpoint
from certpager.probe import BackendResult, EndpointReport, Severity, Status
from certpager.probe.findings import hint_label
from certpager.probe.model import NO_ENDPOINT_FACTS
from certpager.tui import facts, view

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SEVERITY_LABEL = {
    Severity.INFO: ("ℹ", "INFO"),
    Severity.WARNING: ("▲", "WARN"),
    Severity.CRITICAL: ("✖", "CRIT"),
    Severity.PAGE: ("‼", "PAGE"),
    Severity.ERROR: ("✖", "ERROR"),
}

_STATUS_CLASSES = ("ok", "warning", "critical", "page", "error", "pending")


def _status_classes(prefix: str) -> set[str]:
    return {f"{prefix}--{key}" for key in _STATUS_CLASSES} | {f"{prefix}--muted", f"{prefix}--heading"}


class ReportView(Widget):
    """Base of the report views: a report, an endpoint and a clock, rendered as Text."""

    report: reactive[EndpointReport | None] = reactive(None, layout=True)
    """The report shown (None: not checked yet); its height follows what it renders."""
    now: reactive[datetime] = reactive(_EPOCH)
    """The clock days-left are measured against."""
    checking: reactive[bool] = reactive(False)
    """A fresh probe is in flight."""

    def __init__(self, endpoint: Endpoint, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.endpoint = endpoint
        """The endpoint the report is about."""

    PREFIX: ClassVar[str] = "report-view"
    """Prefix of the component classes of a subclass."""

    def _style(self, key: str) -> Style:
        return self.get_component_rich_style(f"{self.PREFIX}--{key}")

    def _status_style(self, status: Status | None) -> Style:
        return self._style(view.status_key(status))

    def _tone(self, tone: str) -> Style:
        """Style of a fact's tone (``ok``, ``warning``, ``critical``, ``muted``)."""
        if tone == "muted":
            return self._style("muted")
        return self._style(tone) if tone in ("ok", "warning", "critical") else Style()


class DetailHeader(ReportView):
    """Two lines: badge, name, address and SNI; leaf expiry, issuer and when it was checked.

    Each wraps at the screen's width (the header is as tall as it renders), so nothing is cut."""

    PREFIX = "detail-header"
    COMPONENT_CLASSES: ClassVar[set[str]] = _status_classes("detail-header")

    def render(self) -> Text:
        report = self.report
        status = report.status if report is not None else None
        symbol, label = view.BADGES[status]
        text = Text(overflow="fold")
        text.append(
            f" {view.CHECKING_SYMBOL if self.checking else symbol} {label} ", self._status_style(status)
        )
        text.append("  ")
        text.append(view.printable(self.endpoint.name), self._style("heading"))
        text.append(f"  {view.printable(self.endpoint.address)}", self._style("muted"))
        sni = self.endpoint.server_name
        if sni and sni != self.endpoint.host:
            text.append(f"  SNI {view.printable(sni)}", self._style("muted"))
        if self.endpoint.tags:
            text.append(
                "  " + " ".join(f"#{view.printable(t)}" for t in self.endpoint.tags), self._style("muted")
            )
        text.append("\n")
        if report is None:
            text.append(" not checked yet" + (" — checking…" if self.checking else ""), self._style("muted"))
            return text
        leaf = report.leaf
        if leaf is not None:
            days = leaf.days_left(self.now)
            text.append(" leaf ")
            text.append(view.days_long(days), self._status_style(_expiry_status(report)))
            text.append(f"  ({view.datetime_text(leaf.not_after)})", self._style("muted"))
            text.append("  issuer ")
            text.append(view.printable(view.dn_short(leaf.issuer)))
        elif report.error:
            text.append(" no handshake: ", self._status_style(Status.ERROR))
            text.append(view.printable(report.error))
        age = view.age_text(max((self.now - report.checked_at).total_seconds(), 0.0))
        when = "checking…" if self.checking else f"checked {age} ago" if age != "now" else "checked just now"
        text.append(f"  · {when}", self._style("muted"))
        return text


def _expiry_status(report: EndpointReport) -> Status:
    sev = [
        f.severity for f in report.findings if f.code in ("cert_expired", "expires_soon", "renewal_overdue")
    ]
    return Status.from_severity(max(sev)) if sev else Status.OK


def _grid(label_width: int) -> Table:
    """Two columns: a fixed label column and a text column that wraps under itself."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


class FindingsView(ReportView):
    """Every finding, worst first: what is wrong in plain words, the fix, the runbook."""

    PREFIX = "findings-view"
    COMPONENT_CLASSES: ClassVar[set[str]] = _status_classes("findings-view") | {
        "findings-view--runbook",
        "findings-view--badge-page",
    }

    readonly: reactive[bool] = reactive(False)
    """Hide the hint that points at the fix key."""
    selected: reactive[str | None] = reactive(None)
    """Code of the finding the fix key is for (None: the first, worst one); marked with ▶."""

    def _selected_index(self) -> int:
        report = self.report
        if report is None:
            return 0
        codes = [f.code for f in report.findings]
        return codes.index(self.selected) if self.selected in codes else 0

    def _rows(self) -> list[tuple[Text, Text]]:
        """One (label, body) row per finding, the selected one marked."""
        report = self.report
        if report is None:
            return []
        chosen = self._selected_index()
        many = len(report.findings) > 1
        rows: list[tuple[Text, Text]] = []
        for i, finding in enumerate(report.findings):
            symbol, label = _SEVERITY_LABEL[finding.severity]
            if finding.severity == Severity.PAGE:
                style = self._style("badge-page")
            elif finding.severity == Severity.INFO:
                style = self._style("muted")
            else:
                style = self._status_style(view.severity_status(finding.severity))
            body = Text()
            body.append(view.printable(finding.message))
            body.append(f"  {finding.code}", self._style("muted"))
            if finding.hint:
                body.append(f"\n{hint_label(finding).capitalize()}  ", self._style("muted"))
                body.append(view.printable(finding.hint))
            here = not self.readonly and i == chosen
            if finding.runbook:
                body.append("\nRunbook  ", self._style("muted"))
                body.append(finding.runbook, self._style("runbook"))
                if here:
                    body.append("  press f", self._style("muted"))
            elif here:
                body.append("\npress f to choose a runbook for it", self._style("muted"))
            if here and many:
                body.append("\nn / p mark another finding (what f fixes)", self._style("muted"))
            if finding.backends:
                body.append("\nSeen on  ", self._style("muted"))
                body.append(", ".join(finding.backends))
            marker = "▶ " if many and i == chosen else "  "
            rows.append((Text.assemble(marker, (f"{symbol} {label}", style)), body))
        return rows

    def _table(self, rows: list[tuple[Text, Text]]) -> Group:
        grid = _grid(9)
        for i, (label, body) in enumerate(rows):
            if i:
                grid.add_row("", "")
            grid.add_row(label, body)
        return Group(Text("WHY", self._style("heading")), grid)

    def render(self) -> RenderableType:
        report = self.report
        heading = Text("WHY", self._style("heading"))
        if report is None:
            return Group(heading, Text("Not checked yet.", self._style("muted")))
        if not report.findings:
            ok = Text(
                "✓ Nothing wrong: the chain verifies, the name matches, expiry is far.", self._style("ok")
            )
            return Group(heading, ok)
        return self._table(self._rows())

    def scroll_visible_selected(self) -> None:
        """Scroll the pane this view sits in so that the selected finding is in view."""
        rows = self._rows()
        parent = self.parent
        width = self.content_region.width
        if not rows or not isinstance(parent, Widget) or width <= 0:
            return
        console = self.app.console
        options = console.options.update_width(width)
        chosen = self._selected_index()
        start = len(console.render_lines(self._table(rows[:chosen]), options, pad=False)) if chosen else 0
        end = len(console.render_lines(self._table(rows[: chosen + 1]), options, pad=False))
        top = self.virtual_region.y + (start + 1 if chosen else 0)
        parent.scroll_to_region(Region(0, top, width, max(end - start, 1)), animate=False)


class HandshakeView(ReportView):
    """Per backend: protocol, cipher, ALPN, client-certificate request, per-phase timings."""

    PREFIX = "handshake-view"
    COMPONENT_CLASSES: ClassVar[set[str]] = _status_classes("handshake-view") | {"handshake-view--badge-page"}

    def render(self) -> RenderableType:
        report = self.report
        heading = Text.assemble(("HANDSHAKES", self._style("heading")))
        if report is None:
            return Group(heading, Text("Not checked yet.", self._style("muted")))
        n = len(report.backends)
        heading.append(
            f"  {n} backend{'s' if n != 1 else ''}, a fresh connection to each", self._style("muted")
        )
        grid = _grid(7)
        for i, backend in enumerate(report.backends):
            if i:
                grid.add_row("", "")
            symbol, label = view.BADGES[backend.status]
            style = (
                self._style("badge-page")
                if backend.status is Status.PAGE
                else self._status_style(backend.status)
            )
            grid.add_row(Text(f"{symbol} {label}", style), self._backend(backend))
        return Group(heading, grid)

    def _backend(self, backend: BackendResult) -> Text:
        hs = backend.handshake
        muted = self._style("muted")
        text = Text()
        text.append(view.printable(hs.label), self._style("heading"))
        if not hs.ok:
            text.append(f"\n{hs.error_code}: ", self._status_style(Status.ERROR))
            text.append(view.printable(hs.error or ""))
        else:
            text.append(f"\n{hs.tls_version or '?'} · {hs.cipher or '?'} · ")
            text.append(f"ALPN {hs.alpn}" if hs.alpn else "no ALPN", muted)
        t = hs.timings
        text.append(
            f"\ndns {view.ms_text(t.dns_ms)} · connect {view.ms_text(t.connect_ms)}"
            f" · TLS {view.ms_text(t.handshake_ms)} · total {view.ms_text(t.total_ms)}",
            muted,
        )
        if hs.client_cert_requested and backend.deep.client_auth is None:
            # Without the deeper checks' verdict (the mTLS fact below), say only that it was
            # asked for: the accepted CAs are in the client_cert_required finding.
            text.append("\nclient certificate requested", muted)
        if hs.client_auth_error:
            text.append("\nclient certificate refused: ", self._status_style(Status.CRITICAL))
            text.append(view.printable(hs.client_auth_error))
        analysis = backend.analysis
        if analysis is not None:
            text.append("\n")
            if analysis.trusted:
                text.append("✓ chain verifies", self._status_style(Status.OK))
            else:
                text.append("✖ chain does not verify: ", self._status_style(Status.CRITICAL))
                text.append(view.printable(analysis.verify_error or "?"))
            text.append(" · ")
            if analysis.hostname_ok:
                text.append("✓ name matches", self._status_style(Status.OK))
            else:
                text.append("✖ name does not match", self._status_style(Status.CRITICAL))
        for fact in facts.backend_facts(backend.deep):
            text.append(f"\n{view.printable(fact.label)}  ", muted)
            text.append(view.printable(fact.value), self._tone(fact.tone))
        return text


class FactsView(ReportView):
    """Facts from the deeper checks: HTTP redirect and HSTS, protocols, served vs stored."""

    PREFIX = "facts-view"
    COMPONENT_CLASSES: ClassVar[set[str]] = _status_classes("facts-view")

    def render(self) -> RenderableType:
        report = self.report
        heading = Text("HTTP, PROTOCOLS, STORED", self._style("heading"))
        deep = report.deep if report is not None else NO_ENDPOINT_FACTS
        if deep == NO_ENDPOINT_FACTS:
            if self.endpoint.http is None and self.endpoint.stored is None:
                note = "No HTTP or stored-certificate check configured for this endpoint."
            else:
                note = "No result from the deeper checks yet."
            return Group(heading, Text(note, self._style("muted")))
        grid = _grid(12)
        for fact in facts.endpoint_facts(deep):
            grid.add_row(
                Text(view.printable(fact.label), self._style("muted")),
                Text(view.printable(fact.value), self._tone(fact.tone)),
            )
        return Group(heading, grid)
