"""Reachability: every piece of text a pane must show becomes visible, whole, by keys.

The check reads what the terminal shows (the compositor's lines, as in
:func:`tuilab.screen_text`), cropped to the pane's visible content area, at every
scroll position the keys reach. An item counts as shown when all of its
characters appear in that area in order, across the pane's wrapped lines
(whitespace is ignored, so a wrap point anywhere is fine; a character cut at
the right edge, an ellipsis or a line below the last reachable one is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rich.cells import get_character_cell_size
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from tuilab import screen_text

_IGNORED = re.compile(r"[\s\u2500-\u257f]+")
"""Whitespace and box-drawing characters (a tree's guides start every wrapped line)."""


def squash(text: str) -> str:
    """``text`` without whitespace or box drawing (wrapping may break a line at any space)."""
    return _IGNORED.sub("", text)


def crop_cells(line: str, x0: int, x1: int) -> str:
    """The characters of ``line`` in cell columns ``[x0, x1)``."""
    out: list[str] = []
    x = 0
    for ch in line:
        w = get_character_cell_size(ch)
        if x >= x0 and x + w <= x1:
            out.append(ch)
        x += w
        if x >= x1:
            break
    return "".join(out)


def visible_area(widget: Widget) -> Region:
    """Where ``widget``'s content is on the screen (minus padding, border and scrollbars)."""
    return widget.scrollable_content_region.intersection(widget.screen.region)


def area_rows(widget: Widget) -> list[str]:
    """The screen's text rows inside ``widget``'s visible content area."""
    area = visible_area(widget)
    rows = screen_text(widget.app).splitlines()  # type: ignore[arg-type]
    return [
        crop_cells(rows[y], area.x, area.right) if y < len(rows) else "" for y in range(area.y, area.bottom)
    ]


def shown(widget: Widget) -> str:
    """The text visible in ``widget`` now, squashed."""
    return squash("".join(area_rows(widget)))


def missing(views: Iterable[str], items: Iterable[str]) -> list[str]:
    """Items not whole in any of the ``views`` (squashed texts)."""
    seen = list(views)
    return [item for item in items if not any(squash(item) in v for v in seen)]


async def scroll_through(
    pilot: Pilot[int], widget: Widget, *, step: str = "j", top: str = "home", limit: int = 400
) -> list[str]:
    """Focus ``widget``, go to the top with ``top``, then press ``step`` until nothing moves;
    return what was visible at every position (squashed)."""
    widget.focus()
    await pilot.pause()
    await pilot.press(top)
    await pilot.pause()
    views = [shown(widget)]
    for _ in range(limit):
        before = (widget.scroll_offset, getattr(widget, "cursor_line", None))
        await pilot.press(step)
        await pilot.pause()
        views.append(shown(widget))
        if (widget.scroll_offset, getattr(widget, "cursor_line", None)) == before:
            break
    return views


async def assert_reachable(
    pilot: Pilot[int],
    widget: Widget,
    items: Sequence[str],
    *,
    what: str,
    step: str = "j",
    top: str = "home",
) -> None:
    """Every item appears whole in ``widget`` at some position reached with ``step`` from ``top``."""
    assert items, f"{what}: nothing to look for"
    views = await scroll_through(pilot, widget, step=step, top=top)
    lost = missing(views, items)
    size = f"{widget.app.size.width}x{widget.app.size.height}"
    assert not lost, f"{what} at {size}: never shown whole: {lost!r}\nlast view:\n" + "\n".join(
        area_rows(widget)
    )


async def assert_end_reachable(
    pilot: Pilot[int], widget: Widget, last: str, *, what: str, keys: Sequence[str] = ("end",)
) -> None:
    """After ``keys`` (End, G, PgDn...), ``last`` (the final item) is shown whole."""
    widget.focus()
    await pilot.pause()
    await pilot.press(*keys)
    await pilot.pause()
    assert squash(last) in shown(widget), f"{what}: {keys} does not reach {last!r}:\n" + "\n".join(
        area_rows(widget)
    )
