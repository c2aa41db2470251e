"""Scrolling widgets whose content length changes often, without laying the screen out.

Textual's ``Widget.virtual_size`` asks for a layout of the whole screen each time it
changes. A scrolling widget of a fixed size does not move or resize anything when its
content grows or shrinks: only its own scroll range and scrollbars change. Done as a
layout, it is a repaint of every widget on the screen: at 10,000 endpoints, on each key
typed into the filter (the input's text grows by a cell, the list's row count changes),
about half of what each key cost.

The scroll update is Textual's own (``Widget._scroll_update``, what a layout calls for a
scrolling widget whose virtual size changed): private, so ``tests/tui/test_tui_filter_scroll.py``
checks the scroll range, the scrollbar and the text in view on the pinned Textual version.
"""

from __future__ import annotations

from typing import cast

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widget import Widget


class FixedSizeScrolling:
    """Mixed into a scrolling widget (listed before its Textual class) whose size does not
    depend on its content (no ``auto`` width or height): a change of its virtual size
    repaints it and updates its scroll range and scrollbars, without a layout of the screen.

    Not a widget itself, so the widget's CSS type and component classes stay its Textual
    class's."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        # What a layout does for a scrolling widget whose virtual size changed
        # (ScrollView._size_updated); a scrollbar appearing or going still lays the screen
        # out (that reactive asks for it).
        widget = cast(Widget, self)
        if widget.is_mounted and widget.container_size:
            widget._scroll_update(size)
