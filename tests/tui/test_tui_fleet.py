"""10,000 endpoints: every row reachable by keys, the first screen whole (issue 15).

No timing assertions (bench/tui_fleet.py measures): the test checks what the user
sees once 10,000 reports are in: the first screen at 80x24 and 120x40, the last
row after End and G, one endpoint found by the filter.
"""

from __future__ import annotations

import dataclasses

import pytest
import tuilab

from certpager.config import Config, Endpoint, Settings
from certpager.probe import EndpointReport
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
        template = self.templates[int(endpoint.name[3:]) % len(self.templates)]
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
