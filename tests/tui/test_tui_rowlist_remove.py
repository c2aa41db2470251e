"""RowList.remove (an ad-hoc endpoint leaving the list when its alert resolved) keeps what
sorting, filtering and counting every row would give: a seeded random stream of reports,
filters and removals, checked after every step."""

from __future__ import annotations

import dataclasses
import random

import tuilab
from rich.cells import cell_len
from test_tui_rowlist import expected, lab_rows

from certpager.tui import view


def test_removing_rows_keeps_order_filter_counts_and_widths() -> None:
    rng = random.Random(151)
    endpoints, templates = lab_rows()
    current = {ep.name: view.make_row(ep, None, True, tuilab.NOW) for ep in endpoints[:40]}
    rows = view.RowList(current.values())
    query = ""
    removed = 0
    for step in range(800):
        ep = rng.choice(endpoints)
        action = rng.random()
        if action < 0.45:  # a report, or the row of a new endpoint
            template = rng.choice(templates)
            row = dataclasses.replace(
                template, name=ep.name, address=ep.address, host=ep.host, tags=ep.tags, checking=False
            )
            current[row.name] = row
            rows.put(row)
        elif action < 0.8:  # the endpoint leaves (or was never there: nothing happens)
            removed += ep.name in current
            current.pop(ep.name, None)
            rows.remove(ep.name)
        else:
            query = rng.choice(
                ["", "ep-01", "tag:edge", "h3", "prod ep-0", "nothing-matches", "ep", "ep-0", "tag:", "e"]
            )
            rows.set_query(query)
        want = expected(current, query)
        assert list(rows.shown) == want, f"step {step}"
        assert len(rows) == len(current) and all(
            rows.get(n) is None for n in {ep.name for ep in endpoints} - set(current)
        )
        assert rows.counts == view.count_statuses(list(current.values()))
        widest = rows.widest()
        for key in view.WIDE_COLUMNS:
            assert widest[key] == max((cell_len(getattr(r, key)) for r in want), default=0)
        for pick in want[:3]:
            assert rows.index(pick.name) == want.index(pick)
    assert removed > 100
