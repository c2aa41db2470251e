"""The endpoint list: order, header, live re-probe, filter, bell, failures (Pilot)."""

from __future__ import annotations

import tuilab

from certpager.probe import Status
from certpager.tui.messages import ProbeFinished
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.summary import StatusSummary


def names(app: tuilab.CertpagerApp) -> list[str]:
    return [r.name for r in app.endpoints_screen.query_one(EndpointTable).rows]


async def test_list_is_worst_first_with_counts(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        assert names(app)[:3] == ["shop-api", "status-page", "auth"]
        assert names(app)[-1] == "mail"
        summary = app.endpoints_screen.query_one(StatusSummary)
        assert summary.counts[Status.PAGE] == 1
        rendered = str(summary.render())
        assert "‼ 1 PAGE" in rendered and "✖ 1 ERROR" in rendered and "✓ 3 OK" in rendered
        assert sorted(checker.calls) == sorted(ep.name for ep in tuilab.endpoints())


async def test_rows_show_checking_and_probes_do_not_block_keys(checker: tuilab.FakeChecker) -> None:
    import asyncio

    checker.gate = asyncio.Event()
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.wait_for(pilot, lambda: len(checker.calls) == 9, what="all probes started")
        table = app.endpoints_screen.query_one(EndpointTable)
        assert all(r.checking and r.badge.startswith("↻") for r in table.rows)
        assert all(r.checked_text(tuilab.NOW) == "checking…" for r in table.rows)
        await pilot.press("j", "j")
        assert table.cursor == 2
        checker.gate.set()
        await tuilab.settle(pilot)
        assert not any(r.checking for r in table.rows)


async def test_r_rechecks_the_row_and_R_rechecks_all(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        checker.calls.clear()
        await pilot.press("j", "r")
        await tuilab.settle(pilot)
        assert checker.calls == ["status-page"]
        checker.calls.clear()
        await pilot.press("R")
        await tuilab.settle(pilot)
        assert len(checker.calls) == 9


async def test_cursor_stays_on_its_endpoint_across_resorts(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("G")  # mail, the last row
        table = app.endpoints_screen.query_one(EndpointTable)
        assert table.highlighted == "mail"
        checker.specs["mail"] = tuilab.Spec(None, error=("connect_refused", "connection refused"))
        await pilot.press("r")
        await tuilab.settle(pilot)
        assert names(app).index("mail") < names(app).index("auth")
        assert table.highlighted == "mail"


async def test_bell_and_notification_when_an_endpoint_gets_worse(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    bells: list[int] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        await tuilab.settle(pilot)
        assert bells == []  # the first report of an endpoint is not a change
        checker.specs["www"] = tuilab.Spec(None, error=("connect_refused", "connection refused"))
        app.endpoints_screen.recheck(["www"])
        await tuilab.settle(pilot)
        assert bells == [1]
        notes = [n.message for n in app._notifications]
        assert any(m.startswith("www: ok → error") for m in notes)
        # better again: no bell; bell off: silent
        checker.specs["www"] = tuilab.scenario()["www"]
        app.endpoints_screen.recheck(["www"])
        await tuilab.settle(pilot)
        await pilot.press("b")
        checker.specs["www"] = tuilab.Spec(None, error=("connect_refused", "connection refused"))
        app.endpoints_screen.recheck(["www"])
        await tuilab.settle(pilot)
        assert bells == [1]


async def test_filter_by_name_host_and_tag_then_clear(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("slash", *"tag:internal")
        await pilot.pause()
        assert names(app) == ["legacy-intranet", "grafana"]
        summary = app.endpoints_screen.query_one(StatusSummary)
        assert "2 of 9" in str(summary.render())
        await pilot.press("enter")  # keep the filter, back to the list
        assert app.endpoints_screen.query_one(EndpointTable).has_focus
        await pilot.press("enter")
        assert type(app.screen).__name__ == "DetailScreen"
        await pilot.press("escape")
        assert names(app) == ["legacy-intranet", "grafana"]
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        assert len(names(app)) == 9
        await pilot.press("slash", *"nothing-like-this")
        await pilot.pause()
        assert names(app) == []
        await pilot.press("escape")
        await pilot.pause()
        assert len(names(app)) == 9


async def test_a_checker_that_raises_gives_an_error_row_not_a_crash(checker: tuilab.FakeChecker) -> None:
    checker.fail = {"mail"}
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        report = app.endpoints_screen.reports["mail"]
        assert report.status is Status.ERROR
        assert "internal error while probing: RuntimeError: checker exploded on mail" in (report.error or "")
        assert app.is_running


async def test_many_probe_failures_keep_the_app_up(checker: tuilab.FakeChecker) -> None:
    checker.fail = {ep.name for ep in tuilab.endpoints()}
    app = tuilab.make_app(checker)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(20):
            app.endpoints_screen.recheck()
            await tuilab.settle(pilot)
        assert app.is_running
        assert all(r.status is Status.ERROR for r in app.endpoints_screen.query_one(EndpointTable).rows)


async def test_a_report_posted_by_another_screen_updates_the_row(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        ep = next(e for e in tuilab.endpoints() if e.name == "shop-api")
        renewed = tuilab.build(ep, tuilab.Spec("shop-api-renewed"), tuilab.NOW)
        app.post_message(ProbeFinished(renewed))
        await pilot.pause()
        await pilot.pause()
        assert names(app)[-1] == "shop-api"
        assert app.endpoints_screen.reports["shop-api"].status is Status.OK


async def test_interval_schedule_is_jittered() -> None:
    import random

    from certpager.tui.services import Schedule

    schedule = Schedule(interval=60, rng=random.Random(7))
    for i in range(50):
        schedule.probed(f"ep{i}", 1000.0)
    dues = [schedule.due[f"ep{i}"] - 1000.0 for i in range(50)]
    assert all(54 <= d <= 66 for d in dues)
    assert len({round(d, 3) for d in dues}) > 40
    assert schedule.pop_due(1000.0, ["ep0", "new"]) == ["new"]  # never probed: due at once
    assert schedule.pop_due(2000.0, ["ep0", "new"]) == ["ep0"]  # "new" waits for its report
    assert schedule.pop_due(3000.0, ["ep0", "new"]) == []


async def test_help_lists_the_keys(checker: tuilab.FakeChecker) -> None:
    from certpager.tui.screens.help import HelpScreen

    app = tuilab.make_app(checker)
    async with app.run_test(size=(80, 24)) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = tuilab.screen_text(app)
        for key in ("recheck this endpoint now", "filter by name, host or tag", "command palette"):
            assert key in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.endpoints_screen  # type: ignore[comparison-overlap]


async def test_palette_offers_every_action(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.endpoints_screen)]  # type: ignore[arg-type]
        for wanted in (
            "Details of shop-api",
            "Recheck shop-api",
            "Recheck all",
            "Filter",
            "Bell off",
            "Keys",
            "Quit",
        ):
            assert wanted in titles
        assert "Go to mail" in titles
        checker.calls.clear()
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"Recheck all")
        await pilot.pause()
        await pilot.press("enter")
        await tuilab.settle(pilot)
        assert len(checker.calls) == 9
        app.show_endpoint("shop-api")
        await tuilab.wait_for(pilot, lambda: app.screen is not app.endpoints_screen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in (
            "Fix shop-api…",
            "Recheck shop-api",
            "Copy leaf PEM",
            "Copy SHA-256 fingerprint",
            "Back to the list",
        ):
            assert wanted in titles


async def test_too_small_terminal_says_so(checker: tuilab.FakeChecker) -> None:
    from certpager.tui.screens.help import TooSmallScreen

    app = tuilab.make_app(checker)
    async with app.run_test(size=(50, 12)) as pilot:
        await tuilab.settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        assert "Terminal too small" in tuilab.screen_text(app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        assert app.screen is app.endpoints_screen  # type: ignore[comparison-overlap]


async def test_endpoints_are_reprobed_when_due(checker: tuilab.FakeChecker) -> None:
    app = tuilab.build_app(
        tuilab.lab_config(),
        checker=checker,
        clock=tuilab.frozen_clock,
        auto_refresh=True,
        interval=60,
        seed=3,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        screen = app.endpoints_screen
        schedule = screen._schedule
        assert schedule is not None
        dues = sorted(schedule.due.values())
        assert len(dues) == 9 and dues[-1] - dues[0] > 0.5  # jittered, not in lockstep
        checker.calls.clear()
        screen._tick()  # nothing is due yet
        assert checker.calls == []
        schedule.due["www"] = 0.0
        schedule.due["mail"] = 0.0
        screen._tick()
        await tuilab.settle(pilot)
        assert sorted(checker.calls) == ["mail", "www"]
