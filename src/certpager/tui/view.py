"""What the screens show, as plain values: rows, badges, short texts.

Pure functions of core results and a clock; no Textual here, so the wording and
the order can be tested without an app. Everything returned is plain text; the
widgets turn it into ``rich.text.Text`` (never markup), so certificate fields
cannot restyle the screen.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import compress

from rich.cells import cell_len

from certpager.config import Endpoint
from certpager.fleet.blackbox import blackbox_expiry
from certpager.fleet.pages import Page, page_line
from certpager.formats import message_lines
from certpager.probe import EndpointReport, Finding, Severity, Status
from certpager.text import printable as _printable

PENDING = "pending"
"""Style key of an endpoint that has no report yet."""

#: Symbol and short label per status. The label carries the meaning on its own, so the
#: list reads the same with ``NO_COLOR`` (T64): colour only repeats it.
BADGES: dict[Status | None, tuple[str, str]] = {
    Status.PAGE: ("‼", "PAGE"),
    Status.ERROR: ("✖", "ERROR"),
    Status.CRITICAL: ("✖", "CRIT"),
    Status.WARNING: ("▲", "WARN"),
    Status.OK: ("✓", "OK"),
    None: ("·", "—"),
}

PAGED_BADGE = "⚑ PAGED"
"""The badge of an endpoint an Alertmanager alert pages about (its colour stays its status's)."""

RESOLVED_SYMBOL = "⚐"
"""Replaces the badge symbol of an endpoint only an alert named, once that alert resolved,
while a run or a screen of it keeps it in the list."""

RESOLVED_LINE = (
    "Its alert resolved: this target leaves the list once no run for it is going and no screen of it is open."
)
"""What the endpoint screen says of an endpoint only an alert named, once that alert resolved."""

CHECKING_SYMBOL = "↻"
"""Replaces the badge symbol while a fresh probe of the row is in flight."""

#: Order of the header counts: worst first.
STATUS_ORDER: tuple[Status, ...] = (Status.PAGE, Status.ERROR, Status.CRITICAL, Status.WARNING, Status.OK)

_EXPIRY_CODES = frozenset({"cert_expired", "expires_soon", "renewal_overdue"})


def printable(text: str, *, tabs: bool = False) -> str:
    """``text`` with control, bidi and invisible characters (ESC, CR, BEL, U+202E...)
    shown as ``\\x1b``, ``\\u202e`` etc.: the core's one escaper,
    :func:`certpager.text.printable`.

    Certificate fields, config values and remote output come from strangers; they are
    displayed, never interpreted.
    """
    return _printable(text, tabs=tabs)


def printable_lines(text: str) -> str:
    """certpager's own multi-line message as lines, each made :func:`printable` on its own
    (its line breaks stay line breaks; control characters within a line are still escaped)."""
    return "\n".join(printable(line) for line in message_lines(text))


def home_path(path: str | os.PathLike[str] | None) -> str:
    """``path`` with the home directory shown as ``~`` (shorter, and the same on every machine)."""
    if path is None:
        return ""
    text = str(path)
    home = os.path.expanduser("~")
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def status_key(status: Status | None) -> str:
    """The style key of a status: ``ok``, ``warning``, ``critical``, ``page``, ``error`` or ``pending``."""
    return PENDING if status is None else status.value


def severity_status(severity: Severity) -> Status:
    """The status colour a finding of ``severity`` is shown in (info shows as ok)."""
    return Status.from_severity(severity)


def days_text(days: float | None) -> str:
    """Days left, short: ``62d``, ``6.4d``, ``-2.0d`` (expired); ``—`` when unknown."""
    if days is None:
        return "—"
    if abs(days) < 10:
        return f"{days:.1f}d"
    return f"{days:.0f}d"


def days_long(days: float | None) -> str:
    """Days left in words: ``expires in 1 day 14 h``, ``expired 3 days ago``."""
    if days is None:
        return "unknown"
    whole = abs(days)
    if whole >= 730:
        years = f"{whole / 365.25:.1f} years"
        return f"expired {years} ago" if days < 0 else f"expires in {years}"
    d = int(whole)
    h = round((whole - d) * 24)
    if h == 24:
        d, h = d + 1, 0
    unit = "day" if d == 1 else "days"
    span = f"{d} {unit} {h} h" if d < 7 and h else f"{d} {unit}"
    if d == 0:
        span = f"{h} h" if h else "less than an hour"
    return f"expired {span} ago" if days < 0 else f"expires in {span}"


def date_text(when: datetime | None) -> str:
    """``2026-03-15`` (UTC), ``—`` when unknown."""
    return when.strftime("%Y-%m-%d") if when is not None else "—"


def datetime_text(when: datetime | None) -> str:
    """``2026-03-15 17:40 UTC``, ``—`` when unknown."""
    return when.strftime("%Y-%m-%d %H:%M UTC") if when is not None else "—"


def age_text(seconds: float) -> str:
    """How long ago: ``now``, ``12s``, ``3m``, ``2h``, ``4d``."""
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def ms_text(ms: float | None) -> str:
    """``38 ms``, ``1.2 s``, ``—``."""
    if ms is None:
        return "—"
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.0f} ms"


def tls_short(version: str | None) -> str:
    """``TLSv1.3`` -> ``1.3``; ``—`` when no handshake."""
    if not version:
        return "—"
    return version.removeprefix("TLSv").removeprefix("SSLv") or version


def _split_dn(dn: str) -> list[tuple[str, str]]:
    """Split an RFC 4514 string into (type, value) pairs, honouring ``\\,`` escapes."""
    parts: list[str] = []
    buf: list[str] = []
    escaped = False
    for ch in dn:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",+":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    out: list[tuple[str, str]] = []
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            out.append((key.strip().upper(), value.strip()))
    return out


def dn_short(dn: str) -> str:
    """The most telling part of a DN: its CN, else O, else the whole string."""
    pairs = _split_dn(dn)
    for wanted in ("CN", "O", "OU"):
        for key, value in pairs:
            if key == wanted and value:
                return value
    return dn


@dataclass(frozen=True)
class EndpointRow:
    """One line of the endpoint list, ready to render."""

    name: str
    """Endpoint name (the row key)."""
    status: Status | None
    """Last known status; None before the first report."""
    checking: bool
    """A probe of this endpoint is in flight."""
    address: str
    """``host:port``."""
    days_left: float | None
    """Days until the leaf expires (from the frozen/real clock)."""
    not_after: datetime | None
    """Leaf expiry."""
    issuer: str
    """Short issuer name of the leaf."""
    tls_version: str | None
    """Negotiated protocol of the primary backend."""
    latency_ms: float | None
    """TLS handshake time of the primary backend."""
    findings: int
    """Findings of warning severity or worse."""
    checked_at: datetime | None
    """When the last report was taken."""
    days_status: Status | None
    """The status the expiry alone deserves (colours the days column)."""
    error: str | None
    """Why no handshake completed, if so."""
    tags: tuple[str, ...] = ()
    """Endpoint tags (for filtering)."""
    host: str = ""
    """Endpoint host (for filtering)."""
    pages: int = 0
    """Firing Alertmanager alerts about the endpoint."""
    resolved: bool = False
    """An endpoint only an alert named, whose alert resolved: it stays while a run or a screen
    of it is open (:data:`RESOLVED_SYMBOL`)."""

    def days_at(self, now: datetime) -> float | None:
        """Days left as of ``now`` (``days_left`` is as of when the row was made)."""
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400.0

    @property
    def badge(self) -> str:
        """``✓ OK``, ``‼ PAGE``...; the symbol becomes ``↻`` while checking; ``⚑ PAGED``
        while an alert pages about it; ``⚐`` once the alert of an endpoint only it named resolved."""
        if self.pages:
            return PAGED_BADGE if not self.checking else f"{CHECKING_SYMBOL} PAGED"
        symbol, label = BADGES[self.status]
        if self.resolved:
            symbol = RESOLVED_SYMBOL
        return f"{CHECKING_SYMBOL if self.checking else symbol} {label}"

    def checked_text(self, now: datetime) -> str:
        """``checking…``, ``12s``, ``—``."""
        if self.checking:
            return "checking…"
        if self.checked_at is None:
            return "—"
        return age_text(max((now - self.checked_at).total_seconds(), 0.0))


def make_row(
    endpoint: Endpoint,
    report: EndpointReport | None,
    checking: bool,
    now: datetime,
    pages: Sequence[Page] = (),
    *,
    resolved: bool = False,
) -> EndpointRow:
    """The list row of ``endpoint`` given its latest ``report`` and the alerts paging about it
    (``resolved``: see :attr:`EndpointRow.resolved`)."""
    if report is None:
        return EndpointRow(
            name=endpoint.name,
            status=None,
            checking=checking,
            address=endpoint.address,
            days_left=None,
            not_after=None,
            issuer="",
            tls_version=None,
            latency_ms=None,
            findings=0,
            checked_at=None,
            days_status=None,
            error=None,
            tags=endpoint.tags,
            host=endpoint.host,
            pages=len(pages),
            resolved=resolved,
        )
    leaf = report.leaf
    primary = report.primary
    expiry = [f.severity for f in report.findings if f.code in _EXPIRY_CODES]
    days_status = Status.from_severity(max(expiry)) if expiry else (Status.OK if leaf else None)
    return EndpointRow(
        name=endpoint.name,
        status=report.status,
        checking=checking,
        address=endpoint.address,
        days_left=leaf.days_left(now) if leaf is not None else None,
        not_after=leaf.not_after if leaf is not None else None,
        issuer=dn_short(leaf.issuer) if leaf is not None else "",
        tls_version=primary.handshake.tls_version if primary is not None else None,
        latency_ms=primary.handshake.timings.handshake_ms if primary is not None else None,
        findings=sum(1 for f in report.findings if f.severity >= Severity.WARNING),
        checked_at=report.checked_at,
        days_status=days_status,
        error=report.error,
        tags=endpoint.tags,
        host=endpoint.host,
        pages=len(pages),
        resolved=resolved,
    )


SortKey = tuple[bool, int, float, str]


def sort_key(row: EndpointRow) -> SortKey:
    """The list order: paged endpoints first; then worst first, then soonest expiry, then
    name; endpoints not yet checked last.

    Past the paged ones, the same order as :func:`certpager.probe.sort_reports`. Every input
    is a field of the row and none depends on the clock, so a row keeps its place until its
    report or its alerts change.
    """
    rank = row.status.rank if row.status is not None else -1
    expires = row.not_after.timestamp() if row.not_after is not None else math.inf
    return (not row.pages, -rank, expires, row.name)


def sort_rows(rows: Iterable[EndpointRow]) -> list[EndpointRow]:
    """``rows`` in the list order (:func:`sort_key`)."""
    return sorted(rows, key=sort_key)


Haystack = tuple[str, str]
"""What the filter searches in a row, lower case: ``name host host:port tag...``, and its tags
each after a line break (empty when it has none). A query word never holds white space, so
it is in that tag text only when it is within one tag."""

Needle = tuple[int, str]
"""A query word as (which text of the :data:`Haystack`, what to find in it)."""


def _haystack(row: EndpointRow) -> Haystack:
    tags = [t.lower() for t in row.tags]
    text = " ".join([row.name.lower(), row.host.lower(), row.address.lower(), *tags])
    return text, "".join("\n" + t for t in tags)


def _needles(query: str) -> tuple[Needle, ...]:
    """The words of ``query`` as needles: ``tag:x`` looks for ``x`` in the tags (a bare
    ``tag:`` for a line break: any tag), any other word in the whole text."""
    return tuple((1, w[4:] or "\n") if w.startswith("tag:") else (0, w) for w in query.lower().split())


def _has_all(haystack: Haystack, needles: Sequence[Needle]) -> bool:
    return all(needle in haystack[field] for field, needle in needles)


def matches(row: EndpointRow, query: str) -> bool:
    """Whether ``row`` passes the filter: every word of ``query`` (case-insensitive)
    is in the name, host, host:port or a tag. ``tag:x`` matches tags only."""
    return _has_all(_haystack(row), _needles(query))


def _narrows(old: Sequence[Needle], new: Sequence[Needle]) -> bool:
    """Whether every row passing the filter ``new`` passes ``old``: each old needle is part
    of a new needle looked for in the same text (a bare ``tag:`` is narrowed by any tag word)."""
    return all(any(f == g and (w in v or w == "\n") for g, v in new) for f, w in old)


RECENT_FILTERS = 16
"""Filters whose passing rows :class:`RowList` remembers."""

WIDE_COLUMNS = ("name", "address", "issuer")
"""The flexible columns whose widest shown text :class:`RowList` keeps track of."""


class _Ordered:
    """Rows in :func:`sort_key` order, with their keys alongside for binary search and the
    number of each row's endpoint (see :class:`RowList`)."""

    def __init__(self, rows: list[EndpointRow], keys: list[SortKey], ids: list[int]) -> None:
        self.rows = rows
        self.keys = keys
        self.ids = ids

    def find(self, row: EndpointRow) -> int:
        """Position of ``row`` (which must be here)."""
        return bisect_left(self.keys, sort_key(row))

    def replace(self, old: EndpointRow | None, row: EndpointRow, key: SortKey, ident: int) -> None:
        """Put ``row`` (of endpoint ``ident``) in its place, taking ``old`` (None: nothing) out;
        in place when the key is the same."""
        if old is not None:
            i = self.find(old)
            if self.keys[i] == key:
                self.rows[i] = row
                return
            del self.keys[i]
            del self.rows[i]
            del self.ids[i]
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.rows.insert(i, row)
        self.ids.insert(i, ident)

    def select(self, flags: bytearray) -> _Ordered:
        """The rows whose endpoint's flag is set, in the same order."""
        kept = list(map(flags.__getitem__, self.ids))
        return _Ordered(
            list(compress(self.rows, kept)), list(compress(self.keys, kept)), list(compress(self.ids, kept))
        )

    def copy(self) -> _Ordered:
        """The same rows, in lists of their own."""
        return _Ordered(list(self.rows), list(self.keys), list(self.ids))


Flags = bytearray
"""One byte per endpoint number (see :class:`RowList`): 1 if it passes the filter."""


class RowList:
    """The list's rows, kept in order as reports arrive, one row at a time.

    Holds every endpoint's row in :func:`sort_key` order, the rows passing the filter
    (in the same order), the count per status (over every row) and the widest text of
    each of :data:`WIDE_COLUMNS` (over the rows shown). Replacing a row costs a binary
    search and a list insertion, not a re-sort, a re-filter or a re-count of every row
    (a row that keeps its place, such as one starting a probe, is replaced where it
    is). Whether a row passes the filter depends only on its endpoint (name, host,
    tags), so what the filter searches is kept per endpoint, numbered in order of
    arrival, in lists apart from the rows: a new filter runs through those lists (not
    through the rows, which reports keep replacing all over memory) and sorts nothing.
    A filter every row passes (typing the start of every name) shows the list of every
    row itself, and clearing the filter costs nothing: the widths of every row are
    counted as rows come and go.
    """

    def __init__(self, rows: Iterable[EndpointRow] = (), query: str = "") -> None:
        self._fill({row.name: row for row in rows})
        self.query = query
        """The filter (see :func:`matches`)."""
        self._needles: tuple[Needle, ...] = ()
        self._passing: Flags | None = None
        """Which endpoints pass the filter (None: every one; the view is then every row)."""
        self._recent: dict[tuple[Needle, ...], Flags | None] = {}
        """Which endpoints pass each of the last few filters (a backspace goes back to one)."""
        self._view = self._order
        self._widest = self._widest_all
        """Like ``_widest_all``, over the rows shown (the same counters when every row is)."""
        self.set_query(query)

    def _fill(self, rows: dict[str, EndpointRow]) -> None:
        """Take in ``rows`` (by name), sorting them once."""
        self._all = rows
        self._ids = {name: ident for ident, name in enumerate(rows)}
        self._gone: set[int] = set()
        """Numbers of the endpoints removed (see :meth:`remove`)."""
        """Number of each endpoint: its place in the lists below."""
        haystacks = [_haystack(row) for row in rows.values()]
        self._texts = ([text for text, _ in haystacks], [tags for _, tags in haystacks])
        """What the filter searches, per endpoint number (the two texts of a :data:`Haystack`)."""
        widths = [_widths(row) for row in rows.values()]
        self._widths = tuple([w[i] for w in widths] for i in range(len(WIDE_COLUMNS)))
        """Per column of :data:`WIDE_COLUMNS`, the cell width of each endpoint's text."""
        self._widest_all = [Counter(col) for col in self._widths]
        """Per column of :data:`WIDE_COLUMNS`: how many rows have each width, over every row."""
        self.counts = count_statuses(list(rows.values()))
        """Rows per status (None: not checked yet), over every row."""
        keyed = sorted((sort_key(row), ident, row) for ident, row in enumerate(rows.values()))
        self._order = _Ordered(
            [row for _, _, row in keyed], [key for key, _, _ in keyed], [ident for _, ident, _ in keyed]
        )

    @property
    def shown(self) -> Sequence[EndpointRow]:
        """The rows passing the filter, in order (read only)."""
        return self._view.rows

    def __len__(self) -> int:
        return len(self._all)

    def get(self, name: str) -> EndpointRow | None:
        """The row of ``name``, shown or not."""
        return self._all.get(name)

    def index(self, name: str) -> int | None:
        """Position of ``name`` among the rows shown; None if it is not shown."""
        row = self._all.get(name)
        if row is None or not self._passes(name):
            return None
        return self._view.find(row)

    def set_query(self, query: str) -> None:
        """Filter by ``query`` (see :func:`matches`). Typing on (a filter that can only keep
        fewer rows) looks only at the endpoints shown; a recent filter is remembered."""
        needles = _needles(query)
        if self._needles and _narrows(self._needles, needles):
            source, within, widest = self._view, self._passing, self._widest
        else:
            source, within, widest = self._order, None, self._widest_all
        self.query = query
        self._needles = needles
        if not needles:
            self._show(self._order, None, self._widest_all)
            return
        passing = self._recent.pop(needles) if needles in self._recent else self._search(needles, within)
        if len(self._recent) >= RECENT_FILTERS:
            del self._recent[next(iter(self._recent))]
        self._recent[needles] = passing  # most recent last
        if passing is None:
            self._show(self._order, None, self._widest_all)
        elif passing.count(1) == len(source.rows):  # typing on kept every row shown
            self._show(source, passing, widest)
        else:
            view = source.select(passing)
            self._show(view, passing, [Counter(map(col.__getitem__, view.ids)) for col in self._widths])

    def _search(self, needles: tuple[Needle, ...], within: Flags | None) -> Flags | None:
        """Which endpoints pass (None: every one), looking only at those ``within`` (None: all)."""
        flags = within
        for field, needle in needles:
            texts = self._texts[field]
            if flags is None:
                flags = bytearray([needle in text for text in texts])
            else:
                flags = bytearray([flag and needle in text for flag, text in zip(flags, texts, strict=True)])
        every = flags is None or flags.count(0) == len(self._gone)  # a removed endpoint passes nothing
        return None if every else flags

    def _show(self, view: _Ordered, passing: Flags | None, widest: list[Counter[int]]) -> None:
        self._view, self._passing, self._widest = view, passing, widest

    def _passes(self, name: str) -> bool:
        return self._passing is None or bool(self._passing[self._ids[name]])

    def put(self, row: EndpointRow) -> None:
        """Add ``row`` or replace the row of the same name, keeping the order and the counts."""
        name = row.name
        old = self._all.get(name)
        ident = self._ids[name] if old is not None else self._add(row)
        self._all[name] = row
        if old is None or old.status is not row.status:
            self._count(old, row)
        key = sort_key(row)
        self._order.replace(old, row, key, ident)
        shown = self._passes(name)
        if shown and self._view is not self._order:
            self._view.replace(old, row, key, ident)
        if old is None or old.issuer != row.issuer:
            self._count_widths(ident, _widths(row), shown, old is None)

    def _add(self, row: EndpointRow) -> int:
        """Number the endpoint of a new ``row`` and keep what the filter searches of it (before
        its row goes in); returns its number."""
        ident = self._ids[row.name] = len(self._texts[0])  # numbers are never reused (see remove)
        text, tags = _haystack(row)
        self._texts[0].append(text)
        self._texts[1].append(tags)
        for col in self._widths:
            col.append(0)
        self._recent.clear()  # they do not know of this endpoint
        passes = _has_all((text, tags), self._needles)
        if self._passing is not None:
            self._passing.append(passes)
        elif not passes:  # every row passed, so the rows shown were every row: apart from now on
            flags = bytearray(b"\x01" * ident + b"\x00")
            for gone in self._gone:
                flags[gone] = 0
            self._show(self._order.copy(), flags, [counter.copy() for counter in self._widest_all])
        return ident

    def remove(self, name: str) -> None:
        """Take the row of ``name`` out (nothing if there is none), keeping the order and the
        counts. Its endpoint number is not reused: what the filter searches of it is emptied
        (it passes no filter) and it no longer counts against "every row passes"."""
        row = self._all.get(name)
        if row is None:
            return
        shown = self._passes(name)
        del self._all[name]
        ident = self._ids.pop(name)
        self._gone.add(ident)
        self._recent.clear()
        self.counts[row.status] -= 1
        if not self.counts[row.status]:
            del self.counts[row.status]
        views = [self._order] + ([self._view] if shown and self._view is not self._order else [])
        for view in views:
            i = view.find(row)
            del view.keys[i], view.rows[i], view.ids[i]
        counted = [self._widest_all] + (
            [self._widest] if shown and self._widest is not self._widest_all else []
        )
        for col, *counters in zip(self._widths, *counted, strict=True):
            for counter in counters:
                counter[col[ident]] -= 1
                if not counter[col[ident]]:
                    del counter[col[ident]]
            col[ident] = 0
        self._texts[0][ident] = self._texts[1][ident] = ""
        if self._passing is not None:
            self._passing[ident] = 0

    def _count(self, old: EndpointRow | None, row: EndpointRow) -> None:
        if old is not None:
            self.counts[old.status] -= 1
            if not self.counts[old.status]:
                del self.counts[old.status]
        self.counts[row.status] = self.counts.get(row.status, 0) + 1

    def _count_widths(self, ident: int, widths: tuple[int, ...], shown: bool, new: bool) -> None:
        """Count ``widths`` as endpoint ``ident``'s (``new``: it had none), over every row and,
        if its row is ``shown``, over the rows shown."""
        counted = [self._widest_all]
        if shown and self._widest is not self._widest_all:
            counted.append(self._widest)
        for col, width, *counters in zip(self._widths, widths, *counted, strict=True):
            for counter in counters:
                if not new:
                    was = col[ident]
                    counter[was] -= 1
                    if not counter[was]:
                        del counter[was]
                counter[width] += 1
            col[ident] = width

    def widest(self) -> dict[str, int]:
        """Column key -> widest text among the rows shown, for each of :data:`WIDE_COLUMNS`."""
        return {key: max(counter, default=0) for key, counter in zip(WIDE_COLUMNS, self._widest, strict=True)}


def _widths(row: EndpointRow) -> tuple[int, int, int]:
    """Cell widths of the row's texts in :data:`WIDE_COLUMNS`."""
    return cell_len(row.name), cell_len(row.address), cell_len(row.issuer)


def count_statuses(rows: Sequence[EndpointRow]) -> dict[Status | None, int]:
    """How many rows have each status (None: not yet checked)."""
    counts: dict[Status | None, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def got_worse(old: EndpointReport | None, new: EndpointReport) -> bool:
    """Whether ``new`` is worse than the previous report (the first report never is)."""
    return old is not None and new.status.rank > old.status.rank


def worst_finding(report: EndpointReport) -> Finding | None:
    """The first (worst) finding, if any."""
    return report.findings[0] if report.findings else None


def page_texts(
    pages: Sequence[Page],
    report: EndpointReport | None,
    *,
    configured: bool,
    can_run: bool,
    resolved: bool = False,
) -> list[tuple[str, str]]:
    """The detail screen's lines about the alerts paging for an endpoint, as
    ``(tone, text)`` (tone: ``page``, ``muted``, ``ok``, ``critical``), escaped.

    ``Paged by ALERT since TIME (N alerts)``, each alert's summary; blackbox's expiry
    when it differs from the verified path's (and, next to a blackbox page, whether that
    is its cause); for an endpoint that only an alert names, that it is not in the config,
    and once its alert resolved (``resolved``), that it leaves the list.
    """
    out: list[tuple[str, str]] = []
    if resolved and not pages:
        out.append(("ok", RESOLVED_LINE))
    if pages:
        line = page_line(pages)
        out.append(("page", printable("P" + line[1:])))
        seen: set[str] = set()
        for page in pages:
            if page.summary and page.summary not in seen:
                seen.add(page.summary)
                out.append(("muted", printable(f"{page.alertname}: {page.summary}")))
    fact = blackbox_expiry(report) if report is not None else None
    if fact is not None:
        blackbox_page = any(p.from_blackbox for p in pages)
        tone = "critical" if fact.clients_affected else "ok" if fact.false_page else "muted"
        cause = ": the cause of blackbox's page" if fact.false_page and blackbox_page else ""
        out.append((tone, printable(fact.sentence()[0].upper() + fact.sentence()[1:] + cause)))
    if not configured:
        where = (
            "runbooks run over the SSH target of the configured endpoint on the same host."
            if can_run
            else "no runbook can run for it, as nothing says where (add it to the config with an ssh: target)."
        )
        out.append(("muted", f"Not in the config (an alert names this target): {where}"))
    return out
