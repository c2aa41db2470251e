"""The filter box and the list scroll as their content grows and shrinks, although neither
lays the screen out again when it does (widgets/scrolling.py): a long filter shows its end
where it is typed, and the list's scroll range and scrollbar follow the rows shown."""

from __future__ import annotations

import tuilab
from test_tui_fleet import FleetChecker

from certpager.config import Config, Endpoint, Settings
from certpager.tui.screens.endpoints import FilterInput
from certpager.tui.widgets.endpoint_table import EndpointTable

N = 200


def config() -> Config:
    ca = str(tuilab.ROOT_PEM)
    endpoints = tuple(
        Endpoint(
            name=f"ep-{i:05d}", host=f"ep{i}.example", port=443, tags=("prod",) if i % 4 else (), ca_file=ca
        )
        for i in range(N)
    )
    return Config(endpoints=endpoints, settings=Settings(concurrency=50))


async def test_long_filter_scrolls_to_its_end_and_the_list_follows_the_rows_shown() -> None:
    app = tuilab.build_app(config(), checker=FleetChecker(), clock=tuilab.frozen_clock, auto_refresh=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.endpoints_screen
        await tuilab.wait_for(pilot, lambda: not screen.in_flight, rounds=2000, what="200 reports")
        await pilot.pause()
        table = screen.query_one(EndpointTable)
        box = screen.query_one(FilterInput)
        page = table.size.height - 1
        assert table.show_vertical_scrollbar and table.max_scroll_y == N + 1 - table.size.height

        # Fewer rows than the page: no scrollbar, nothing to scroll; every row on screen.
        await pilot.press("slash", *"ep-0011")
        await pilot.pause()
        assert len(table.rows) == 10 < page
        assert not table.show_vertical_scrollbar and table.max_scroll_y == 0
        text = tuilab.screen_text(app)
        assert all(row.name in text for row in table.rows)

        # More rows again: the scroll range is theirs, and G shows the last of them.
        await pilot.press("backspace", "enter")  # ep-001
        await pilot.pause()
        assert len(table.rows) == 100
        assert table.show_vertical_scrollbar and table.max_scroll_y == 100 + 1 - table.size.height
        assert table.vertical_scrollbar.window_virtual_size == 100 + 1
        await pilot.press("G")
        await pilot.pause()
        assert table.highlighted == table.rows[-1].name and table.rows[-1].name in tuilab.screen_text(app)

        # A filter longer than its box: the end of what was typed is on screen.
        await pilot.press(
            "slash", *"tag:prod and-a-long-tail-of-words-that-matches-no-endpoint-at-all-and-goes-on-xyz"
        )
        await pilot.pause()
        assert len(box.value) > box.size.width and box.max_scroll_x > 0 and box.scroll_x > 0
        assert "goes-on-xyz" in tuilab.screen_text(app)
        assert table.rows == [] and "No endpoint matches" in tuilab.screen_text(app)

        # Esc: every row, scrollable to the last one.
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.rows) == N and table.max_scroll_y == N + 1 - table.size.height
        await pilot.press("G")
        await pilot.pause()
        assert table.rows[-1].name in tuilab.screen_text(app)
