"""The one scrolling pane every long view sits in, and the keys that move it.

A :class:`Pane` is a focusable vertical scroll container whose children take the
height of their content (``height: auto``), so whatever a view renders is inside
the scrollable area and reachable: arrows or ``j``/``k`` by line, PgUp/PgDn by
page, Home/End or ``g``/``G`` to either end. Nothing scrolls sideways: views wrap
to the pane's width. :class:`OutputLog` is the run output built on the same rules.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import RichLog

VIM_KEYS: list[BindingType] = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
]
"""``j``/``k``/``g``/``G`` on top of the arrows, PgUp/PgDn and Home/End of every scroll view."""


class Pane(VerticalScroll, can_focus=True):
    """A vertical scroll pane: its content is as tall as it renders, every line reachable by keys."""

    DEFAULT_CSS = """
    Pane {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    Pane > * {
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = VIM_KEYS


class OutputLog(RichLog):
    """Streamed run output that always wraps to the width it is shown at.

    Every line is kept as written and wrapped again whenever the pane's width
    changes (a resize, the narrow layout, a scrollbar): no line is ever cut at the
    right edge and nothing needs sideways scrolling. RichLog alone wraps at a
    minimum of 78 columns and never re-wraps what it already wrote.
    """

    BINDINGS: ClassVar[list[BindingType]] = VIM_KEYS

    DEFAULT_CSS = """
    OutputLog {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    def __init__(self, *, max_lines: int = 5000, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            max_lines=max_lines, min_width=1, wrap=True, markup=False, highlight=False, id=id, classes=classes
        )
        self.source: deque[Text] = deque(maxlen=max_lines)
        """Every line as written (before wrapping), newest last."""
        self._wrapped_at = 0

    def add(self, line: Text) -> None:
        """Append one line (wrapped to the current width).

        Tabs (kept in remote output so that its columns line up) are expanded here, so
        that wrapping counts the columns they take.
        """
        if "\t" in line.plain:
            line = line.copy()
            line.expand_tabs()
        self.source.append(line)
        self.write(line, shrink=True)

    def on_resize(self, event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if self._size_known and width != self._wrapped_at and width > 0:
            self._rewrap(width)
        elif width > 0:
            self._wrapped_at = width

    def _rewrap(self, width: int) -> None:
        self._wrapped_at = width
        at_end = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self.lines.clear()
        self._line_cache.clear()
        self._start_line = 0
        self._widest_line_width = 0
        for line in self.source:
            self.write(line, shrink=True, scroll_end=False)
        if at_end:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()
