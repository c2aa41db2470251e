"""RowList (the list's rows kept in order one row at a time) gives what sorting, filtering
and counting every row would: checked after every step of a seeded random stream of
reports, probe starts and filters."""

from __future__ import annotations

import dataclasses
import random

import tuilab
from rich.cells import cell_len

from certpager.config import Endpoint
from certpager.tui import view


def lab_rows() -> tuple[list[Endpoint], list[view.EndpointRow]]:
    """Endpoints renamed ``ep-NNN`` and the rows of every lab report (variety of status, expiry, issuer)."""
    checker = tuilab.FakeChecker()
    templates = [
        view.make_row(ep, tuilab.build(ep, checker.specs[ep.name], tuilab.NOW), False, tuilab.NOW)
        for ep in tuilab.endpoints()
    ]
    tags = ("prod", "staging", "edge")
    endpoints = [
        Endpoint(name=f"ep-{i:03d}", host=f"h{i}.example", port=443 + i % 2, tags=(tags[i % 3],))
        for i in range(60)
    ]
    return endpoints, templates


def expected(rows: dict[str, view.EndpointRow], query: str) -> list[view.EndpointRow]:
    return view.sort_rows(r for r in rows.values() if view.matches(r, query))


def test_rowlist_matches_sort_filter_and_count_of_every_row() -> None:
    rng = random.Random(15)
    endpoints, templates = lab_rows()
    current = {ep.name: view.make_row(ep, None, True, tuilab.NOW) for ep in endpoints[:40]}
    rows = view.RowList(current.values())
    query = ""
    for step in range(600):
        ep = rng.choice(endpoints)
        action = rng.random()
        if action < 0.6:  # a report (or the first row of a new endpoint)
            template = rng.choice(templates)
            row = dataclasses.replace(
                template, name=ep.name, address=ep.address, host=ep.host, tags=ep.tags, checking=False
            )
        elif action < 0.9 and ep.name in current:  # a probe starts: same place
            row = dataclasses.replace(current[ep.name], checking=True)
        else:
            query = rng.choice(["", "ep-01", "tag:edge", "h3", "prod ep-0", "nothing-matches"])
            rows.set_query(query)
            row = None
        if row is not None:
            current[row.name] = row
            rows.put(row)
        want = expected(current, query)
        assert list(rows.shown) == want, f"step {step}"
        assert rows.counts == view.count_statuses(list(current.values()))
        widest = rows.widest()
        for key in view.WIDE_COLUMNS:
            assert widest[key] == max((cell_len(getattr(r, key)) for r in want), default=0)
        if want:
            pick = rng.choice(want)
            assert rows.index(pick.name) == want.index(pick)
        hidden = [n for n in current if n not in {r.name for r in want}]
        if hidden:
            assert rows.index(hidden[0]) is None


def test_typing_a_filter_on_and_back_with_reports_in_between_gives_what_filtering_every_row_would() -> None:
    """Typing on looks at the rows shown and a backspace goes back to a remembered filter:
    reports and new endpoints arriving between the keys must not be missed by either."""
    rng = random.Random(16)
    endpoints, templates = lab_rows()
    current = {ep.name: view.make_row(ep, None, True, tuilab.NOW) for ep in endpoints[:30]}
    rows = view.RowList(current.values())
    typings = ["ep-01", "tag:edge", "h1 tag:ed", "ep-0 prod"]
    text, cut = typings[0], 0
    for step in range(300):
        if rng.random() < 0.1:  # another filter typed from scratch
            text, cut = rng.choice(typings), 0
        cut = max(0, min(len(text), cut + rng.choice((1, 1, -1))))  # a key, or a backspace
        query = text[:cut]
        rows.set_query(query)
        for _ in range(rng.randrange(4)):
            ep = rng.choice(endpoints)
            row = dataclasses.replace(
                rng.choice(templates), name=ep.name, address=ep.address, host=ep.host, tags=ep.tags
            )
            current[row.name] = row
            rows.put(row)
        want = expected(current, query)
        assert list(rows.shown) == want, f"step {step}: {query!r}"
        for row in current.values():
            assert (rows.index(row.name) is not None) == (row in want), f"step {step}: {row.name}"


def reference_matches(row: view.EndpointRow, query: str) -> bool:
    """The filter as documented, word by word: every word in the name, host, host:port or a
    tag; ``tag:x`` in a tag (a bare ``tag:``: any tag)."""
    for word in query.lower().split():
        if word.startswith("tag:"):
            if not any(word[4:] in tag.lower() for tag in row.tags):
                return False
        elif not any(word in text.lower() for text in (row.name, row.host, row.address, *row.tags)):
            return False
    return True


QUERIES = [
    "",
    "e",  # every row
    "ep",
    "ep-0",
    "ep-01",
    "ep-013",
    "EP-01 tag:prod",
    "tag:",  # any tag: not the untagged rows
    "tag:e",
    "tag:edge",
    "tag:prod",
    "prod",  # in a tag, so in the whole text too
    "west",  # the second word of the tag "eu west"
    "tag:west tag:st",
    "h1 tag:ed",
    ":444",
    "ep tag:",
    "nothing-matches",
    "tag:nothing",
    "adhoc",  # only the rows added while filtered
    "example",  # every row but the added ones on .test hosts
    ".",  # every row
]
"""Queries of every kind: all rows, some, none, tags (bare, partial, two), several words."""

TAGS: tuple[tuple[str, ...], ...] = ((), ("prod",), ("staging", "eu west"), ("Edge",), ("prod", "edge"))


def fleet(n: int, prefix: str = "ep") -> list[Endpoint]:
    """``n`` endpoints with no tag, one, two (one with a space) or an upper-case one."""
    return [
        Endpoint(name=f"{prefix}-{i:03d}", host=f"h{i}.example", port=443 + i % 2, tags=TAGS[i % len(TAGS)])
        for i in range(n)
    ]


ISSUERS = ("", "R3", "Let's Encrypt R11", "An Issuing CA With A Name Longer Than The Column")


def a_report(rng: random.Random, ep: Endpoint, templates: list[view.EndpointRow]) -> view.EndpointRow:
    """A row of ``ep`` as a report makes it: some status, expiry and issuer (of several widths)."""
    return dataclasses.replace(
        rng.choice(templates),
        name=ep.name,
        address=ep.address,
        host=ep.host,
        tags=ep.tags,
        checking=False,
        issuer=rng.choice(ISSUERS),
    )


def check_against_plain(
    rows: view.RowList, current: dict[str, view.EndpointRow], query: str, step: int
) -> None:
    """Everything RowList says, against filtering, sorting, counting and measuring every row."""
    want = view.sort_rows(r for r in current.values() if reference_matches(r, query))
    assert list(rows.shown) == want, f"step {step}: {query!r}"
    assert len(rows) == len(current)
    assert rows.counts == view.count_statuses(list(current.values())), f"step {step}"
    widest = rows.widest()
    for key in view.WIDE_COLUMNS:
        assert widest[key] == max((cell_len(getattr(r, key)) for r in want), default=0), f"step {step}: {key}"
    positions = {r.name: i for i, r in enumerate(want)}
    for name in current:
        assert rows.index(name) == positions.get(name), f"step {step}: {name} in {query!r}"
        assert rows.get(name) is current[name]


def next_query(rng: random.Random, query: str) -> str:
    """What is typed next: a key of a query (typing on), a backspace, or another query."""
    pick = rng.random()
    if pick < 0.4:
        target = rng.choice([q for q in QUERIES if q.startswith(query) and q != query] or QUERIES)
        return target[: len(query) + 1] if target.startswith(query) else target
    if pick < 0.6:
        return query[:-1]
    return rng.choice(QUERIES)


def test_rowlist_under_every_kind_of_filter_with_reports_probes_and_new_endpoints() -> None:
    """Reports (moving rows, changing their widths), probe starts (rows in place) and
    endpoints added (as an alert names one) while filtered by every kind of query, and the
    filter typed on, backspaced, replaced and cleared: each step gives what filtering,
    sorting, counting and measuring every row would. The fast paths (a filter every row
    passes shows the list of every row, typing on looks at the rows shown, a remembered
    filter, the width counters kept up to date) each meet rows changing under them."""
    endpoints, templates = lab_rows()
    del endpoints
    for seed in range(6):
        rng = random.Random(100 + seed)
        configured = fleet(40)
        adhoc = [
            Endpoint(
                name=f"adhoc-endpoint-with-a-long-name-{i}", host=f"x{i}.{domain}", port=443, tags=TAGS[i % 5]
            )
            for i, domain in enumerate(["example", "test"] * 12)
        ]
        current = {ep.name: view.make_row(ep, None, True, tuilab.NOW) for ep in configured}
        rows = view.RowList(current.values())
        query = ""
        for step in range(400):
            action = rng.random()
            if action < 0.45:  # a report
                ep = rng.choice(configured + [a for a in adhoc if a.name in current])
                row: view.EndpointRow | None = a_report(rng, ep, templates)
            elif action < 0.6:  # a probe starts: same place
                row = dataclasses.replace(current[rng.choice(list(current))], checking=True)
            elif action < 0.7 and len(current) < len(configured) + len(adhoc):  # an endpoint added
                every = [q for q in QUERIES if q and all(reference_matches(r, q) for r in current.values())]
                if every and rng.random() < 0.5:  # while a filter every row passes holds
                    query = rng.choice(every)
                    rows.set_query(query)
                ep = adhoc[len(current) - len(configured)]
                row = view.make_row(ep, None, False, tuilab.NOW)
            else:
                query = next_query(rng, query)
                rows.set_query(query)
                row = None
            if row is not None:
                current[row.name] = row
                rows.put(row)
            check_against_plain(rows, current, query, step)


def test_endpoints_added_while_a_filter_passes_every_row() -> None:
    """A filter every row passes shows the list of every row itself; an endpoint added then
    that does not pass must stay out of the rows shown (and out of their widths) while the
    filter holds, and come in when it is cleared; one that passes comes in at once."""
    rng = random.Random(7)
    _, templates = lab_rows()
    configured = fleet(30)
    current = {ep.name: a_report(rng, ep, templates) for ep in configured}
    rows = view.RowList(current.values())
    for query in ("e", "ep", "ep-"):  # every row, typed on
        rows.set_query(query)
        check_against_plain(rows, current, query, 0)
    outsider = Endpoint(name="x" * 40, host="far.example", port=443, tags=("adhoc",))
    insider = Endpoint(name="ep-adhoc", host="near.example", port=8443, tags=())
    for i, ep in enumerate((outsider, insider)):
        row = dataclasses.replace(
            a_report(rng, ep, templates), issuer="An Issuer Wider Than Any Other Of This List"
        )
        current[row.name] = row
        rows.put(row)
        check_against_plain(rows, current, "ep-", i + 1)
    for step, query in enumerate(("ep-0", "ep-", "ep", "e", "", "ep", "x", "")):
        rows.set_query(query)
        for ep in (outsider, insider, *configured[:3]):
            row = a_report(rng, ep, templates)
            current[row.name] = row
            rows.put(row)
        check_against_plain(rows, current, query, 10 + step)


def test_filters_that_keep_every_row_shown_no_row_or_every_row_again() -> None:
    """From every row to none and back, typed on and backspaced, with reports in between."""
    rng = random.Random(8)
    _, templates = lab_rows()
    configured = fleet(50)
    current = {ep.name: a_report(rng, ep, templates) for ep in configured}
    rows = view.RowList(current.values())
    typed = ["e", "ep", "ep-", "ep-0", "ep-01", "ep-013", "ep-013x", "ep-013", "ep-01", "ep-0", "ep-", ""]
    typed += ["t", "ta", "tag", "tag:", "tag:p", "tag:pr", "tag:pro", "tag:prod", "tag:prod ", "tag:prod e"]
    typed += ["tag:prod ep", "tag:prod", "tag:pro", "tag:", "tag", "", "nothing", "", "tag:", "tag:x", ""]
    for step, query in enumerate(typed):
        rows.set_query(query)
        check_against_plain(rows, current, query, step)
        for ep in rng.sample(configured, 5):
            row = a_report(rng, ep, templates)
            current[row.name] = row
            rows.put(row)
        check_against_plain(rows, current, query, step)
