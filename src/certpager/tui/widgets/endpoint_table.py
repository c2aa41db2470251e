"""The endpoint list: a Line API table that renders only the visible rows.

``DataTable`` rebuilds rows in Python on every re-sort and slows down with
thousands of rows (reliability-plan T67); this widget shows the rows of a
:class:`certpager.tui.view.RowList` its screen keeps in order and renders only
the lines in view, so 10,000 endpoints sort, filter and scroll without blocking
input: nothing here walks every row. Columns that do not fit the width are
dropped in a fixed order of importance (issuer and latency first), so the list
stays readable at 80x24.

Cells are plain text turned into segments: a certificate field or an endpoint
name is never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from certpager.probe import Status
from certpager.tui import view
from certpager.tui.view import EndpointRow, RowList
from certpager.tui.widgets.scrolling import FixedSizeScrolling


@dataclass(frozen=True)
class Column:
    """A column of the endpoint list."""

    key: str
    """Identifier."""
    title: str
    """Header text."""
    width: int
    """Minimum width in cells."""
    priority: int
    """Lower is more important: columns are dropped from the highest priority down."""
    flex: int = 0
    """Share of spare width this column takes (0: fixed)."""
    max_width: int = 0
    """Widest it grows (0: no limit)."""
    right: bool = False
    """Right-align the cells."""


COLUMNS: tuple[Column, ...] = (
    Column("status", "STATUS", 7, 0),
    Column("name", "NAME", 12, 0, flex=2, max_width=26),
    Column("address", "HOST:PORT", 14, 3, flex=2, max_width=34),
    Column("days", "DAYS", 6, 0, right=True),
    Column("expires", "EXPIRES", 10, 1),
    Column("issuer", "ISSUER", 10, 5, flex=3, max_width=28),
    Column("tls", "TLS", 3, 6),
    Column("latency", "LATENCY", 7, 7, right=True),
    Column("findings", "FINDINGS", 8, 2, right=True),
    Column("checked", "CHECKED", 9, 4),
)
"""Every column, in display order."""

SEPARATOR = 1
"""Blank cells between columns."""

LINE_CACHE = 400
"""Rendered rows kept (a few screens' worth)."""


def layout_columns(
    width: int, columns: tuple[Column, ...] = COLUMNS, wants: Mapping[str, int] | None = None
) -> list[tuple[Column, int]]:
    """Choose the columns that fit ``width`` and their widths, in display order.

    ``wants`` (column key -> widest content) makes spare width go first to the flexible
    columns whose content would be cut, up to what they hold; what is left is shared
    as before (up to each column's ``max_width``).
    """
    chosen: set[str] = set()
    used = 0
    for col in sorted(columns, key=lambda c: c.priority):
        need = col.width + (SEPARATOR if chosen else 0)
        if used + need > width and chosen:
            break  # strict importance: a less important column never displaces a skipped one
        chosen.add(col.key)
        used += need
    visible = [c for c in columns if c.key in chosen]
    widths = {c.key: c.width for c in visible}
    spare = max(width - used, 0)
    caps = (
        [{c.key: min(c.max_width or wants[c.key], wants[c.key]) for c in visible if c.key in wants}]
        if wants
        else []
    )
    caps.append({c.key: c.max_width for c in visible if c.max_width})
    for cap in caps:
        flexible = [c for c in visible if c.flex and widths[c.key] < cap.get(c.key, width)]
        while spare > 0 and flexible:
            total = sum(c.flex for c in flexible)
            given = 0
            for col in flexible:
                share = max(spare * col.flex // total, 1)
                share = min(share, cap.get(col.key, width) - widths[col.key], spare - given)
                widths[col.key] += max(share, 0)
                given += max(share, 0)
            spare -= given
            flexible = [c for c in flexible if widths[c.key] < cap.get(c.key, width)]
            if given == 0:
                break
    return [(c, widths[c.key]) for c in visible]


def cell_text(row: EndpointRow, key: str, now: datetime) -> str:
    """The plain text of one cell."""
    if key == "status":
        return row.badge
    if key == "name":
        return row.name
    if key == "address":
        return row.address
    if key == "days":
        return view.days_text(row.days_at(now))
    if key == "expires":
        return view.date_text(row.not_after)
    if key == "issuer":
        return row.issuer or ("—" if row.status is not None else "")
    if key == "tls":
        return view.tls_short(row.tls_version) if row.status is not None else ""
    if key == "latency":
        return view.ms_text(row.latency_ms) if row.status is not None else ""
    if key == "findings":
        return str(row.findings) if row.status is not None else ""
    if key == "checked":
        return row.checked_text(now)
    raise KeyError(key)


def fit(text: str, width: int, right: bool = False) -> str:
    """Pad or cut ``text`` to exactly ``width`` cells (an ellipsis marks a cut)."""
    text = view.printable(text)
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


class EndpointTable(FixedSizeScrolling, ScrollView, can_focus=True):
    """Every endpoint, one line each: status badge, name, expiry, handshake facts."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "endpoint-table--header",
        "endpoint-table--cursor",
        "endpoint-table--empty",
        "endpoint-table--muted",
        "endpoint-table--ok",
        "endpoint-table--warning",
        "endpoint-table--critical",
        "endpoint-table--page",
        "endpoint-table--error",
        "endpoint-table--pending",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "select", "Details"),
    ]

    now: reactive[datetime] = reactive(datetime(1970, 1, 1, tzinfo=UTC))
    """The clock the CHECKED ages are measured against."""
    cursor: reactive[int] = reactive(0)
    """Index of the highlighted row."""
    empty_text: reactive[str] = reactive("No endpoints.")
    """Shown when there are no rows."""

    @dataclass
    class Highlighted(Message):
        """The cursor moved to another endpoint."""

        name: str
        """The highlighted endpoint."""

    @dataclass
    class Selected(Message):
        """The user chose an endpoint (Enter or double click)."""

        name: str
        """The chosen endpoint."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._followed: str | None = None
        """Endpoint the cursor stays on across re-sorts, once the user has moved it."""
        self._list = RowList()
        self._columns_cache: tuple[tuple[int, int], list[tuple[Column, int]]] | None = None
        """(width, rows version) -> column widths."""
        self._version = 0
        """Bumped each time the rows are shown again (the column widths are measured once per version)."""
        self._painted_state: tuple[object, ...] = ()
        self._painted_rows: Sequence[EndpointRow] = ()
        """What :meth:`show` last repainted: scroll, cursor, widths and the rows in view."""
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(LINE_CACHE)
        """Rendered rows: a repaint after a batch of reports renders only the rows that changed."""

    # -- state --------------------------------------------------------------

    @property
    def rows(self) -> Sequence[EndpointRow]:
        """The rows shown, in order (the screen sorts and filters)."""
        return self._list.shown

    @property
    def highlighted(self) -> str | None:
        """Name of the endpoint under the cursor."""
        rows = self.rows
        if 0 <= self.cursor < len(rows):
            return rows[self.cursor].name
        return None

    def show(self, rows: RowList) -> None:
        """Show ``rows`` (again, after its screen changed them): the cursor stays on the
        endpoint the user moved it to, wherever that endpoint is now."""
        before = self.highlighted if self.rows else None
        self._list = rows
        self._version += 1
        shown = rows.shown
        if self._followed is not None:
            index = rows.index(self._followed)
            if index is not None:
                self.set_reactive(EndpointTable.cursor, index)
        if self.cursor >= len(shown):
            self.set_reactive(EndpointTable.cursor, max(len(shown) - 1, 0))
        self.virtual_size = Size(self.size.width, len(shown) + 1)
        self._scroll_cursor_into_view()
        self._refresh_if_changed()
        after = self.highlighted
        if after is not None and after != before:
            self.post_message(self.Highlighted(after))

    def _refresh_if_changed(self) -> None:
        """Repaint unless the rows in view are the very rows shown last time (most reports of a
        large fleet change rows out of view)."""
        top = int(self.scroll_y)
        in_view = self.rows[top : top + max(self.size.height, 1)]
        state = (top, self.cursor, len(self.rows), tuple(self._list.widest().values()))
        same = state == self._painted_state and len(in_view) == len(self._painted_rows)
        if same and all(a is b for a, b in zip(in_view, self._painted_rows, strict=True)):
            return
        self._painted_state = state
        self._painted_rows = in_view
        self.refresh()

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1)) if self.rows else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        name = self.highlighted
        if name is not None:
            self.post_message(self.Highlighted(name))

    def watch_now(self) -> None:
        self.refresh()

    def move_to(self, name: str) -> bool:
        """Put the cursor on ``name`` and keep it there; False if it is not shown."""
        index = self._list.index(name)
        if index is None:
            return False
        self._followed = name
        self.cursor = index
        return True

    def _user_move(self, index: int) -> None:
        self.cursor = index
        self._followed = self.highlighted

    def _scroll_cursor_into_view(self) -> None:
        if not self.rows or not self.size.height:
            return
        region = Region(0, self.cursor + 1, max(self.size.width, 1), 1)
        self.scroll_to_region(region, spacing=Spacing(top=1), animate=False, force=True)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.rows) + 1)
        self._scroll_cursor_into_view()

    # -- actions ------------------------------------------------------------

    def action_cursor_up(self) -> None:
        self._user_move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._user_move(self.cursor + 1)

    def action_page_up(self) -> None:
        self._user_move(self.cursor - max(self.size.height - 2, 1))

    def action_page_down(self) -> None:
        self._user_move(self.cursor + max(self.size.height - 2, 1))

    def action_first(self) -> None:
        self._user_move(0)

    def action_last(self) -> None:
        self._user_move(len(self.rows) - 1)

    def action_select(self) -> None:
        name = self.highlighted
        if name is not None:
            self._followed = name
            self.post_message(self.Selected(name))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y - 1
        if event.y < 1 or not 0 <= index < len(self.rows):
            return
        self.focus()
        self._user_move(index)
        if event.chain >= 2:
            self.action_select()

    # -- rendering ----------------------------------------------------------

    def _columns(self, width: int) -> list[tuple[Column, int]]:
        key = (width, self._version)
        if self._columns_cache is None or self._columns_cache[0] != key:
            self._columns_cache = (key, layout_columns(width, wants=self._list.widest()))
        return self._columns_cache[1]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._render_header(width, base)
        index = int(self.scroll_y) + y - 1
        rows = self.rows
        if not rows:
            if y == 2:
                style = base + self.get_component_rich_style("endpoint-table--empty")
                return Strip([Segment(fit("  " + self.empty_text, width), style)], width)
            return Strip.blank(width, base)
        if index >= len(rows):
            return Strip.blank(width, base)
        return self._render_row(rows[index], index == self.cursor, width, base)

    def _render_header(self, width: int, base: Style) -> Strip:
        style = base + self.get_component_rich_style("endpoint-table--header")
        segments: list[Segment] = []
        used = 0
        for i, (col, w) in enumerate(self._columns(width)):
            if i:
                segments.append(Segment(" " * SEPARATOR, style))
                used += SEPARATOR
            segments.append(Segment(fit(col.title, w, col.right), style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments, width)

    def notify_style_update(self) -> None:
        self._lines.clear()
        super().notify_style_update()

    def _render_row(self, row: EndpointRow, is_cursor: bool, width: int, base: Style) -> Strip:
        key = (row, is_cursor, width, base, self.now, tuple(w for _, w in self._columns(width)))
        strip = self._lines.get(key)
        if strip is None:
            strip = self._lines[key] = self._paint_row(row, is_cursor, width, base)
        return strip

    def _paint_row(self, row: EndpointRow, is_cursor: bool, width: int, base: Style) -> Strip:
        rich_style: Callable[[str], Style] = self.get_component_rich_style
        row_style = base
        if row.status is None:
            row_style = base + rich_style("endpoint-table--pending")
        cursor_style = rich_style("endpoint-table--cursor") if is_cursor else None
        muted = rich_style("endpoint-table--muted")
        segments: list[Segment] = []
        used = 0
        for i, (col, w) in enumerate(self._columns(width)):
            if i:
                segments.append(
                    Segment(" " * SEPARATOR, row_style + cursor_style if cursor_style else row_style)
                )
                used += SEPARATOR
            style = row_style
            if col.key == "status":
                style = row_style + rich_style(f"endpoint-table--{view.status_key(row.status)}")
            elif col.key == "days" and row.days_status is not None:
                # The badge already shouts PAGE; the days stay bold red, not reversed.
                days_status = Status.CRITICAL if row.days_status is Status.PAGE else row.days_status
                style = row_style + rich_style(f"endpoint-table--{view.status_key(days_status)}")
            elif (col.key == "findings" and row.findings == 0) or col.key in (
                "checked",
                "latency",
                "tls",
                "issuer",
            ):
                style = row_style + muted
            if cursor_style is not None:
                style = style + cursor_style
            segments.append(Segment(fit(cell_text(row, col.key, self.now), w, col.right), style))
            used += w
        if used < width:
            tail = row_style + cursor_style if cursor_style else row_style
            segments.append(Segment(" " * (width - used), tail))
        return Strip(segments, width)
