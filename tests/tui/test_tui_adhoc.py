"""An endpoint only an alert names, once its alert resolved, stays in the list while a run
for it is going (marked ⚐) and leaves at the next fetch after the run ended. The alerts are
given to the screen directly (the fetch from a real Alertmanager is
tests/integration/tui/test_tui_alerts.py); the probes are the suite's fake checker."""

from __future__ import annotations

from typing import cast

import tuilab

from certpager.fleet.alertmanager import Alert
from certpager.fleet.pages import PageMap, map_alerts
from certpager.runbook.engine import RunbookRun
from certpager.tui.view import PAGED_BADGE

STRAY = "stray.example:8443"


def _paging(app: tuilab.CertpagerApp) -> PageMap:
    config = app.config
    alert = Alert("CertificateExpiringSoon", "page", tuilab.NOW, {"instance": STRAY}, "fp-stray")
    return map_alerts([alert], config.endpoints, config.settings)


async def test_a_run_keeps_a_resolved_adhoc_endpoint_until_it_ends(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.endpoints_screen
        configured = set(screen.endpoints)
        screen.set_pages(_paging(app))
        await tuilab.settle(pilot)
        row = screen.row_list.get(STRAY)
        assert row is not None and row.badge == PAGED_BADGE

        app.active_runs[STRAY] = cast(RunbookRun, object())  # a run for it is going
        screen.set_pages(PageMap())
        await tuilab.settle(pilot)
        row = screen.row_list.get(STRAY)
        assert row is not None and row.resolved and row.badge.startswith("⚐ ")
        assert STRAY in [r.name for r in screen.rows] and STRAY in tuilab.screen_text(app)
        assert app._page_lines(STRAY)[0][1].startswith("Its alert resolved")

        screen.set_pages(_paging(app))  # paged again while kept: no longer resolved
        await tuilab.settle(pilot)
        row = screen.row_list.get(STRAY)
        assert row is not None and not row.resolved and row.badge == PAGED_BADGE

        screen.set_pages(PageMap())
        del app.active_runs[STRAY]  # the run ended
        screen.release_resolved()
        await tuilab.settle(pilot)
        assert set(screen.endpoints) == configured and STRAY not in tuilab.screen_text(app)
        assert screen.total == len(configured) and screen.resolved == set() == screen.adhoc
