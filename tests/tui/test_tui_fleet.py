"""10,000 endpoints: every row reachable by keys, the first screen whole (issue 15); the
endpoints Alertmanager pages about first and marked among them.

No timing assertions (bench/tui_fleet.py measures): the test checks what the user
sees once 10,000 reports are in: the first screen at 80x24 and 120x40, the last
row after End and G, one endpoint found by the filter.
"""

from __future__ import annotations

import dataclasses

import pytest
import tuilab

from certpager.config import Config, Endpoint, Settings
from certpager.fleet.alertmanager import Alert
from certpager.fleet.pages import PageMap, map_alerts
from certpager.probe import EndpointReport
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.view import PAGED_BADGE, sort_key
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.summary import StatusSummary

N = 10_000


def fleet() -> Config:
    ca = str(tuilab.ROOT_PEM)
    tags = ("prod", "staging", "internal", "edge")
    endpoints = tuple(
        Endpoint(name=f"ep-{i:05d}", host=f"ep{i}.example", port=443, tags=(tags[i % 4],), ca_file=ca)
        for i in range(N)
    )
    return Config(endpoints=endpoints, settings=Settings(concurrency=200))


class FleetChecker:
    """Answers at once from the lab's real reports, renamed per endpoint."""

    def __init__(self) -> None:
        lab = {ep.name: ep for ep in tuilab.endpoints()}
        self.templates = [
            tuilab.build(lab[name], spec, tuilab.NOW) for name, spec in tuilab.scenario().items()
        ]

    async def __call__(self, endpoint: Endpoint) -> EndpointReport:
        index = int(endpoint.name[3:]) if endpoint.name.startswith("ep-") else len(endpoint.name)
        template = self.templates[index % len(self.templates)]
        return dataclasses.replace(template, name=endpoint.name, host=endpoint.host, port=endpoint.port)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_ten_thousand_rows_are_all_reachable(size: tuple[int, int]) -> None:
    app = tuilab.build_app(fleet(), checker=FleetChecker(), clock=tuilab.frozen_clock, auto_refresh=False)
    async with app.run_test(size=size) as pilot:
        await tuilab.wait_for(
            pilot, lambda: not app.endpoints_screen.in_flight, rounds=5000, what="10,000 reports"
        )
        await pilot.pause()
        table = app.endpoints_screen.query_one(EndpointTable)
        summary = app.endpoints_screen.query_one(StatusSummary)
        assert len(table.rows) == N and sum(summary.counts.values()) == N and summary.checking == 0

        # The first screen is whole: summary, header, a full page of rows, the footer.
        lines = tuilab.screen_text(app).splitlines()
        assert "10000 endpoints" in lines[0]
        assert "STATUS" in lines[1] and "NAME" in lines[1] and "DAYS" in lines[1]
        page = table.size.height - 1
        assert page >= 18
        for offset, row in enumerate(table.rows[:page]):
            assert row.name in lines[2 + offset] and row.badge in lines[2 + offset]
        assert "Quit" in lines[-1]

        # End and G show the last row; g and Home come back.
        last = table.rows[-1].name
        for key in ("end", "G"):
            await pilot.press("home")
            await pilot.press(key)
            assert table.highlighted == last
            assert last in tuilab.screen_text(app)
        await pilot.press("g")
        assert table.cursor == 0

        # The filter finds one endpoint among 10,000, and Esc brings them all back.
        await pilot.press("slash", *"ep-09876")
        await pilot.pause()
        assert [r.name for r in table.rows] == ["ep-09876"]
        assert "ep-09876" in tuilab.screen_text(app) and "1 of 10000" in tuilab.screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.rows) == N


PAGED = ("ep-00007", "ep-05000", "ep-09999")
"""Configured endpoints paged about (spread over the list, whatever their status)."""
STRAY = "https://127.0.0.1:8443"
"""An alert's target the config does not hold (an ad-hoc endpoint, probed by the fake checker)."""


def alerts(names: tuple[str, ...], *, stray: bool) -> PageMap:
    config = fleet()
    found = [
        Alert(
            "CertificateExpiringSoon",
            "page",
            tuilab.NOW,
            {"endpoint": n},
            f"fp-{n}",
            {"summary": f"{n} expires"},
        )
        for n in names
    ]
    if stray:
        found.append(Alert("BlackboxCertExpiry", "page", tuilab.NOW, {"instance": STRAY}, "fp-stray"))
    return map_alerts(found, config.endpoints, config.settings)


async def test_paged_endpoints_first_and_marked_among_ten_thousand() -> None:
    app = tuilab.build_app(fleet(), checker=FleetChecker(), clock=tuilab.frozen_clock, auto_refresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.endpoints_screen
        await tuilab.wait_for(pilot, lambda: not screen.in_flight, rounds=5000, what="10,000 reports")
        table = screen.query_one(EndpointTable)
        unpaged_order = [r.name for r in table.rows]

        screen.set_pages(alerts(PAGED, stray=True))
        await tuilab.wait_for(pilot, lambda: not screen.in_flight, what="the ad-hoc endpoint's report")
        await pilot.pause()
        rows = list(table.rows)
        stray = next(iter(screen.adhoc))
        assert len(rows) == N + 1 and {r.name for r in rows[:4]} == {*PAGED, stray}
        assert all(r.badge == PAGED_BADGE for r in rows[:4]) and not any(r.pages for r in rows[4:])
        assert [sort_key(r) for r in rows] == sorted(sort_key(r) for r in rows)
        assert [r.name for r in rows[4:]] == [n for n in unpaged_order if n not in PAGED]
        lines = tuilab.screen_text(app).splitlines()
        assert "10001 endpoints" in lines[0]
        for offset, row in enumerate(rows[:4]):
            assert row.name in lines[2 + offset] and PAGED_BADGE in lines[2 + offset]
        assert PAGED_BADGE not in lines[6]

        # The detail screen of a paged endpoint says who pages; when the alert resolves it
        # stops saying so, and the row goes back to its place, unmarked.
        assert table.move_to("ep-05000")
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        assert any("ep-05000 expires" in text for _, text in detail.page_lines)
        screen.set_pages(alerts(("ep-00007",), stray=False))
        await tuilab.wait_for(
            pilot, lambda: not detail.page_lines, what="the resolved alert leaving the detail"
        )
        await pilot.press("escape")
        await pilot.pause()
        rows = list(table.rows)
        assert rows[0].name == "ep-00007" and rows[0].badge == PAGED_BADGE
        # The stray target's alert resolved too: it leaves the list (nothing keeps it).
        assert not any(r.pages for r in rows[1:]) and len(rows) == N and stray not in screen.endpoints
        assert [r.name for r in rows if r.name != stray][1:] == [n for n in unpaged_order if n != "ep-00007"]
