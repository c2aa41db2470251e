"""The one-line header of the endpoint list: counts per status, what is shown, modes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from certpager.probe import Status
from certpager.tui import view


class StatusSummary(Widget):
    """``certpager  ‼ 1 PAGE  ✖ 1 ERROR  ▲ 2 WARN  ✓ 5 OK   9 endpoints``, plus filter and modes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-summary--title",
        "status-summary--muted",
        "status-summary--ok",
        "status-summary--warning",
        "status-summary--critical",
        "status-summary--page",
        "status-summary--error",
        "status-summary--pending",
        "status-summary--mode",
    }

    counts: reactive[dict[Status | None, int]] = reactive(dict, always_update=True)
    """Endpoints per status over all endpoints (None: not checked yet)."""
    total: reactive[int] = reactive(0)
    """Number of endpoints configured."""
    shown: reactive[int] = reactive(0)
    """Number of rows passing the filter."""
    filter_text: reactive[str] = reactive("")
    """The active filter."""
    checking: reactive[int] = reactive(0)
    """Probes in flight."""
    bell: reactive[bool] = reactive(True)
    """The bell rings when an endpoint gets worse."""
    readonly: reactive[bool] = reactive(False)
    """Runbook actions are hidden."""

    def render(self) -> Text:
        text = self._line(compact=False)
        width = self.size.width
        if width and text.cell_len > width:
            # A fleet's five-digit counts: drop the title and the padding before anything is cut.
            text = self._line(compact=True)
        return text

    def _line(self, *, compact: bool) -> Text:
        style = self.get_component_rich_style
        pad = "" if compact else " "
        gap = " " if compact else "  "
        text = Text(no_wrap=True, overflow="ellipsis")
        if not compact:
            text.append(" certpager ", style("status-summary--title"))
            text.append(" ")
        for status in view.STATUS_ORDER:
            n = self.counts.get(status, 0)
            if n == 0 and status is not Status.OK:
                continue
            symbol, label = view.BADGES[status]
            key = view.status_key(status) if n else "pending"
            text.append(f"{pad}{symbol} {n} {label}{pad}", style(f"status-summary--{key}"))
            text.append(" ")
        pending = self.counts.get(None, 0)
        if pending:
            text.append(f"{pad}· {pending} not checked yet{pad}", style("status-summary--pending"))
            text.append(" ")
        muted = style("status-summary--muted")
        if self.filter_text:
            text.append(f"{gap}/{view.printable(self.filter_text)}{gap}{self.shown} of {self.total}", muted)
        else:
            noun = "endpoint" if self.total == 1 else "endpoints"
            text.append(f"{gap}{self.total} {noun}", muted)
        if self.checking:
            text.append(f"{gap}{view.CHECKING_SYMBOL} {self.checking} checking", muted)
        if not self.bell:
            text.append(f"{gap}bell off", muted)
        if self.readonly:
            text.append(gap)
            text.append(" READ-ONLY ", style("status-summary--mode"))
        return text
