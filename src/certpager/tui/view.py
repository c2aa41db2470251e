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


def _haystack(row: EndpointRow) -> tuple[str, tuple[str, ...]]:
    tags = tuple(t.lower() for t in row.tags)
    return " ".join([row.name.lower(), row.host.lower(), row.address.lower(), *tags]), tags


def _matches_words(haystack: str, tags: tuple[str, ...], words: Sequence[str]) -> bool:
    for word in words:
        if word.startswith("tag:"):
            wanted = word[4:]
            if not any(wanted in t for t in tags):
                return False
        elif word not in haystack:
            return False
    return True


def matches(row: EndpointRow, query: str) -> bool:
    """Whether ``row`` passes the filter: every word of ``query`` (case-insensitive)
    is in the name, host, host:port or a tag. ``tag:x`` matches tags only."""
    words = query.lower().split()
    return not words or _matches_words(*_haystack(row), words)


def _narrows(old: Sequence[str], new: Sequence[str]) -> bool:
    """Whether every row passing the filter ``new`` passes ``old`` (words as :func:`matches`
    splits them): each old word is part of a new word of the same kind (``tag:`` or not)."""
    return all(any(w in v and w.startswith("tag:") == v.startswith("tag:") for v in new) for w in old)


RECENT_FILTERS = 16
"""Filters whose passing rows :class:`RowList` remembers."""

WIDE_COLUMNS = ("name", "address", "issuer")
"""The flexible columns whose widest shown text :class:`RowList` keeps track of."""


class _Ordered:
    """Rows in :func:`sort_key` order, with their keys alongside for binary search."""

    def __init__(self, rows: list[EndpointRow], keys: list[SortKey]) -> None:
        self.rows = rows
        self.keys = keys

    def find(self, row: EndpointRow) -> int:
        """Position of ``row`` (which must be here)."""
        return bisect_left(self.keys, sort_key(row))

    def replace(self, old: EndpointRow | None, row: EndpointRow, key: SortKey) -> None:
        """Put ``row`` in its place, taking ``old`` (None: nothing) out; in place when the key is the same."""
        if old is not None:
            i = self.find(old)
            if self.keys[i] == key:
                self.rows[i] = row
                return
            del self.keys[i]
            del self.rows[i]
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.rows.insert(i, row)


class RowList:
    """The list's rows, kept in order as reports arrive, one row at a time.

    Holds every endpoint's row in :func:`sort_key` order, the rows passing the filter
    (in the same order), the count per status (over every row) and the widest text of
    each of :data:`WIDE_COLUMNS` (over the rows shown). Replacing a row costs a binary
    search and a list insertion, not a re-sort, a re-filter or a re-count of every row
    (a row that keeps its place, such as one starting a probe, is replaced where it
    is). A new filter looks at every row once and sorts nothing. Whether a row passes
    the filter depends only on its endpoint (name, host, tags).
    """

    def __init__(self, rows: Iterable[EndpointRow] = (), query: str = "") -> None:
        self._all: dict[str, EndpointRow] = {row.name: row for row in rows}
        self._haystacks = {name: _haystack(row) for name, row in self._all.items()}
        """Lower-case text the filter searches, per endpoint (it depends only on the endpoint)."""
        self._widths = {name: _widths(row) for name, row in self._all.items()}
        self.counts: dict[Status | None, int] = count_statuses(list(self._all.values()))
        """Rows per status (None: not checked yet), over every row."""
        ordered = sort_rows(self._all.values())
        self._order = _Ordered(ordered, [sort_key(row) for row in ordered])
        self.query = query
        """The filter (see :func:`matches`)."""
        self._words: tuple[str, ...] = ()
        self._passing: set[str] | None = None
        """Names passing the filter (None: there is no filter)."""
        self._recent: dict[tuple[str, ...], set[str]] = {}
        """Names passing each of the last few filters (a backspace goes back to one)."""
        self._view = self._order
        self._widest: list[Counter[int]] = []
        self.set_query(query)

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
        fewer rows) looks at the rows shown, not every row; a recent filter is remembered."""
        words = tuple(query.lower().split())
        source = self._view if self._words and _narrows(self._words, words) else self._order
        self.query = query
        self._words = words
        if words:
            self._passing = self._passing_of(words, source.rows)
            passing = self._passing
            kept = [i for i, row in enumerate(source.rows) if row.name in passing]
            self._view = _Ordered([source.rows[i] for i in kept], [source.keys[i] for i in kept])
        else:
            self._passing = None
            self._view = self._order  # one list: a row is put once
        widths = [self._widths[row.name] for row in self._view.rows]
        self._widest = [Counter(column) for column in zip(*widths, strict=True)] or [
            Counter() for _ in WIDE_COLUMNS
        ]

    def _passing_of(self, words: tuple[str, ...], candidates: Sequence[EndpointRow]) -> set[str]:
        """Names passing ``words``: remembered, or worked out over ``candidates`` (every row
        that can pass)."""
        passing = self._recent.pop(words, None)
        if passing is None:
            haystacks = self._haystacks
            passing = {row.name for row in candidates if _matches_words(*haystacks[row.name], words)}
        elif len(self._recent) >= RECENT_FILTERS:
            del self._recent[next(iter(self._recent))]
        self._recent[words] = passing  # most recent last
        return passing

    def _passes(self, name: str) -> bool:
        return self._passing is None or name in self._passing

    def put(self, row: EndpointRow) -> None:
        """Add ``row`` or replace the row of the same name, keeping the order and the counts."""
        name = row.name
        old = self._all.get(name)
        self._all[name] = row
        if old is None:
            self._haystacks[name] = _haystack(row)
            self._recent.clear()  # they do not know of this row
            if self._passing is not None and _matches_words(*self._haystacks[name], self._words):
                self._passing.add(name)
        if old is None or old.status is not row.status:
            self._count(old, row)
        old_widths = self._widths.get(name)
        widths = old_widths
        if old is None or old.issuer != row.issuer:
            widths = self._widths[name] = _widths(row)
        key = sort_key(row)
        self._order.replace(old, row, key)
        if self._passes(name):
            if self._view is not self._order:
                self._view.replace(old, row, key)
            if widths is not old_widths:
                self._count_widths(old_widths, -1)
                self._count_widths(widths, 1)

    def remove(self, name: str) -> None:
        """Take the row of ``name`` out (nothing if there is none), keeping the order and the counts."""
        row = self._all.pop(name, None)
        if row is None:
            return
        del self._haystacks[name]
        self._recent.clear()
        self.counts[row.status] -= 1
        if not self.counts[row.status]:
            del self.counts[row.status]
        i = self._order.find(row)
        del self._order.keys[i], self._order.rows[i]
        if self._passes(name):
            if self._view is not self._order:
                i = self._view.find(row)
                del self._view.keys[i], self._view.rows[i]
            self._count_widths(self._widths[name], -1)
        del self._widths[name]
        if self._passing is not None:
            self._passing.discard(name)

    def _count(self, old: EndpointRow | None, row: EndpointRow) -> None:
        if old is not None:
            self.counts[old.status] -= 1
            if not self.counts[old.status]:
                del self.counts[old.status]
        self.counts[row.status] = self.counts.get(row.status, 0) + 1

    def _count_widths(self, widths: tuple[int, ...] | None, step: int) -> None:
        if widths is None:
            return
        for counter, width in zip(self._widest, widths, strict=True):
            counter[width] += step
            if not counter[width]:
                del counter[width]

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
