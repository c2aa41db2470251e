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
