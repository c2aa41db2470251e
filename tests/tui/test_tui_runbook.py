"""The runbook flow through the real engine with a fake SSH host and the fake network:
choose -> plan -> confirm (typed, then plain) -> streamed output -> verify -> row updated.
Also: Enter alone never confirms a destructive step, declining, cancelling, read-only,
and SIGTERM during a run (terminal restored through the normal exit, audit record closed)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import tuilab
from textual.widgets import OptionList

from certpager.probe import Status
from certpager.runbook import RunOutcome, StepFinished, VerificationFinished
from certpager.ssh import FakeResponse
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.runbook import AskModal, ConfirmModal, PlanScreen, RunbookChooser, RunScreen
from certpager.tui.widgets.run_views import VerificationPanel


def make(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, **kw: object
) -> tuilab.CertpagerApp:
    return tuilab.make_app(checker, runbooks=tuilab.runbook_service(checker, host, state_dir), **kw)  # type: ignore[arg-type]


def audit_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def to_plan(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp, name: str = "shop-api") -> PlanScreen:
    await tuilab.settle(pilot)
    app.show_endpoint(name)
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
    await pilot.press("f")
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser), what="chooser")
    await pilot.press("enter")
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan")
    assert isinstance(app.screen, PlanScreen)
    return app.screen


async def to_first_confirmation(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp) -> ConfirmModal:
    await to_plan(pilot, app)
    await pilot.press("enter")
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirmation")
    assert isinstance(app.screen, ConfirmModal)
    return app.screen


async def test_chooser_offers_the_runbooks_that_apply_recommended_first(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path
) -> None:
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        app.show_endpoint("shop-api")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("f")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser))
        chooser = app.screen
        assert isinstance(chooser, RunbookChooser)
        # The worst finding (expires_soon) is what the fix is for: the runbooks whose fixes:
        # name it first, then those recommended for the other findings, then the rest.
        assert chooser.selected == "expires_soon"
        assert [rb.name for rb in chooser.runbooks] == [
            "certbot-force-renew",
            "certbot-dry-run",
            "nginx-reload",
        ]
        assert chooser.recommended == {
            "certbot-force-renew": ["expires_soon", "renewal_overdue"],
            "certbot-dry-run": ["renewal_overdue"],
        }
        options = chooser.query_one("#runbooks", OptionList)
        first = str(options.get_option_at_index(0).prompt)
        assert "fixes: expires_soon (this finding), renewal_overdue" in first
        assert (
            "fixes: served_not_stored, chain_incomplete, chain_cert_expired and 12 more (none seen now)"
            in str(options.get_option_at_index(2).prompt)
        )
        await pilot.press("escape")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert host.commands == []


async def test_the_selected_finding_is_what_the_run_is_for(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path
) -> None:
    """n/p on the endpoint screen move the ▶ mark; f fixes the marked finding, not the worst."""
    app = make(checker, host, state_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await tuilab.settle(pilot)
        app.show_endpoint("shop-api")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        assert detail.report is not None
        codes = [f.code for f in detail.report.findings]
        assert codes[:2] == ["expires_soon", "renewal_overdue"]
        assert detail.selected_finding() == "expires_soon"
        await pilot.pause()
        assert "▶" in tuilab.screen_text(app) and "n / p mark another finding" in tuilab.screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert detail.selected_finding() == "renewal_overdue"
        await pilot.press("p", "p")
        await pilot.pause()
        assert detail.selected_finding() == codes[-1]
        await pilot.pause()
        # The pane scrolls to the marked finding, even when it is the last one at 80x24.
        assert "▶" in tuilab.screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert detail.selected_finding() == "expires_soon"
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("f")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser), what="chooser")
        chooser = app.screen
        assert isinstance(chooser, RunbookChooser)
        assert chooser.selected == "renewal_overdue"
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan")
        plan = app.screen
        assert isinstance(plan, PlanScreen)
        assert plan.plan.targets == ("renewal_overdue",)
        assert host.commands == []


async def test_plan_shows_every_command_host_and_user_before_anything_runs(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, audit_path: Path
) -> None:
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        plan = await to_plan(pilot, app)
        from rich.console import Console

        console = Console(width=160, record=True, color_system=None)
        console.print(plan.query_one("#plan").render())
        text = console.export_text()
        assert "deploy@web-1.shop.example:22" in text
        assert "user deploy" in text
        assert (
            "$ certbot renew --non-interactive --force-renewal --no-random-sleep-on-renew --cert-name api.shop.example"
            in text
        )
        assert "$ nginx -t" in text and "$ systemctl reload nginx" in text
        assert "asks you to type 'shop-api' first" in text
        assert "nothing has run" in text.lower()
        assert host.commands == [] and not audit_path.exists()  # noqa: ASYNC240 - a test, nothing else runs
        await pilot.press("escape")  # back to the chooser: still nothing ran
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser))
        assert host.commands == []


async def test_full_flow_list_detail_runbook_confirm_verify(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, audit_path: Path
) -> None:
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("enter")  # the worst row: shop-api
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("f")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser))
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, PlanScreen))
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed
        assert modal.request.expected == "shop-api"
        # Enter alone, or a wrong name, never confirms a destructive step.
        await pilot.press("enter")
        await pilot.press(*"shop-ap", "enter")
        await pilot.pause()
        assert app.screen is modal and host.commands == []
        await pilot.press("i", "enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen is not modal)
        reload_modal = app.screen
        assert isinstance(reload_modal, ConfirmModal) and not reload_modal.typed
        assert host.commands[:2] == [
            "certbot renew --non-interactive --force-renewal --no-random-sleep-on-renew --cert-name api.shop.example",
            "nginx -t",
        ]
        await pilot.press("y")
        await tuilab.wait_for(
            pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase == "finished"
        )
        run = app.screen
        assert isinstance(run, RunScreen) and run.result is not None
        assert run.result.outcome is RunOutcome.SUCCEEDED
        panel = run.query_one(VerificationPanel)
        assert panel.display and panel.result is not None and panel.result.passed
        assert [b.before.serial != b.after.serial for b in panel.result.backends if b.before and b.after] == [
            True,
            True,
        ]
        # streamed output reached the screen
        lines = "\n".join(str(line.text) for line in run.query_one("#output").lines)  # type: ignore[attr-defined]
        assert "Congratulations, all renewals succeeded:" in lines
        assert "syntax is ok" in lines
        # the row updated at once, and the audit log holds the whole run
        await tuilab.settle(pilot)
        assert app.endpoints_screen.reports["shop-api"].status is Status.OK
        types = [r["type"] for r in audit_records(audit_path)]
        assert types[0] == "run_start" and types[-1] == "run_end"
        assert types.count("confirmation") == 2 and "verification" in types
        await pilot.press("escape")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert isinstance(app.screen, DetailScreen) and app.screen.report is not None
        assert app.screen.report.status is Status.OK


async def test_declining_stops_the_run_and_nothing_runs(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, audit_path: Path
) -> None:
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_first_confirmation(pilot, app)
        await pilot.press("escape")
        await tuilab.wait_for(
            pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase == "finished"
        )
        assert isinstance(app.screen, RunScreen) and app.screen.result is not None
        assert app.screen.result.outcome is RunOutcome.DECLINED
        assert host.commands == []
        assert audit_records(audit_path)[-1]["type"] == "run_end"
        assert app.endpoints_screen.reports["shop-api"].status is Status.PAGE


async def test_ctrl_c_cancels_the_running_step_after_asking(
    checker: tuilab.FakeChecker, state_dir: Path, audit_path: Path
) -> None:
    host = tuilab.FakeHost(checker, **{"nginx -t": FakeResponse(stdout="testing…", hang=True)})
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_first_confirmation(pilot, app)
        await pilot.press(*"shop-api", "enter")
        await tuilab.wait_for(pilot, lambda: "nginx -t" in host.commands, what="nginx -t running")
        run = app.screen
        assert isinstance(run, RunScreen)
        await tuilab.wait_for(
            pilot, lambda: any(s.state == "running" and s.step.id == "nginx-test" for s in run.steps)
        )
        await pilot.press("ctrl+c")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, AskModal))
        await pilot.press("n")  # keep running
        await pilot.pause()
        assert run.phase == "running"
        await pilot.press("escape")  # Esc asks too
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, AskModal))
        await pilot.press("y")
        await tuilab.wait_for(pilot, lambda: run.phase == "finished", what="run to end")
        assert run.result is not None and run.result.outcome is RunOutcome.CANCELLED
        finished = [e.result for e in run.events if isinstance(e, StepFinished)]
        assert finished[-1].step_id == "nginx-test" and finished[-1].outcome.value == "cancelled"
        assert "systemctl reload nginx" not in host.commands
        assert audit_records(audit_path)[-1]["type"] == "run_end"


QUICK_RELOAD = """
name: quick-reload
title: Reload nginx and verify (short deadline, for tests)
applies_to:
  endpoints: [shop-api]
steps:
  - id: reload
    title: Reload nginx
    run: [systemctl, reload, nginx]
    timeout: 10
  - id: verify
    title: Verify
    verify:
      deadline: 1
      interval: 0.5
      expect: changed
"""


async def test_failed_verification_is_shown_red(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, tmp_path: Path
) -> None:
    # The reload "works" (exit 0) but the server keeps the old certificate: only the
    # verification can tell, and the screen says so in red.
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "quick-reload.yaml").write_text(QUICK_RELOAD)
    service = tuilab.runbook_service(checker, host, state_dir)
    service.dirs = [runbooks]
    app = tuilab.make_app(checker, runbooks=service)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_plan(pilot, app)
        await pilot.press("enter")
        run = await wait_run(pilot, app)
        await tuilab.wait_for(pilot, lambda: run.phase == "finished", rounds=10000, what="run to end")
        assert run.result is not None and run.result.outcome is RunOutcome.FAILED
        verdict = next(e.result for e in run.events if isinstance(e, VerificationFinished))
        assert not verdict.passed
        assert any(
            "still serves the certificate from before the run" in r
            for b in verdict.backends
            for r in b.reasons
        )
        panel = run.query_one(VerificationPanel)
        assert "NOT VERIFIED" in str(panel.render().renderables[0])  # type: ignore[union-attr]
        assert app.endpoints_screen.reports["shop-api"].status is Status.PAGE


async def wait_run(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp) -> RunScreen:
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="run screen")
    assert isinstance(app.screen, RunScreen)
    return app.screen


async def test_readonly_hides_every_runbook_action(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        assert app.runbooks is None
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        footer_keys = {key for key, b in screen.active_bindings.items() if b.binding.show and b.enabled}
        assert "f" not in footer_keys and "c" in footer_keys
        await pilot.press("f")
        await pilot.pause()
        assert app.screen is screen
        titles = [c.title for c in app.get_system_commands(screen)]
        assert not any(t.startswith("Fix") for t in titles)
        from certpager.tui.widgets.report_views import FindingsView

        assert "press f" not in str(screen.query_one(FindingsView).render())


async def test_sigterm_during_a_run_cancels_it_closes_the_audit_record_and_exits(
    checker: tuilab.FakeChecker, state_dir: Path, audit_path: Path
) -> None:
    host = tuilab.FakeHost(checker, **{"nginx -t": FakeResponse(hang=True)})
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_first_confirmation(pilot, app)
        await pilot.press(*"shop-api", "enter")
        await tuilab.wait_for(pilot, lambda: "nginx -t" in host.commands)
        os.kill(os.getpid(), signal.SIGTERM)
        await tuilab.wait_for(pilot, lambda: not app.is_running, rounds=5000, what="app to exit")
    assert app.return_code == 128 + signal.SIGTERM
    records = audit_records(audit_path)
    assert records[-1]["type"] == "run_end" and records[-1]["outcome"] == "cancelled"
    assert any(r["type"] == "step_result" and r.get("outcome") == "cancelled" for r in records)


async def test_a_second_fix_while_running_does_not_start_another_run(
    checker: tuilab.FakeChecker, state_dir: Path
) -> None:
    host = tuilab.FakeHost(checker, **{"nginx -t": FakeResponse(hang=True)})
    app = make(checker, host, state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_first_confirmation(pilot, app)
        await pilot.press(*"shop-api", "enter")
        await tuilab.wait_for(pilot, lambda: "nginx -t" in host.commands)
        app.start_fix("shop-api")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert len([w for w in app.workers if w.name == "fix shop-api"]) == 1
        # a probe refresh of every endpoint does not cancel the run (T62)
        app.endpoints_screen.recheck()
        await tuilab.settle(pilot)
        assert app.screen.phase == "running"
        app.active_runs["shop-api"].cancel("test over")
        await tuilab.wait_for(pilot, lambda: app.screen.phase == "finished")  # type: ignore[attr-defined]


async def test_a_run_that_cannot_start_is_shown_and_the_app_stays_up(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path
) -> None:
    app = make(checker, host, state_dir)
    service = app.runbooks
    assert service is not None

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("engine exploded")

    service.new_run = broken  # type: ignore[assignment, method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await to_plan(pilot, app)
        await pilot.press("enter")
        run = await wait_run(pilot, app)
        await tuilab.wait_for(pilot, lambda: run.phase == "finished")
        assert "engine exploded" in tuilab.screen_text(app)
        await pilot.press("escape")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.is_running
        assert host.commands == []


async def test_a_held_lock_is_reported_and_nothing_runs(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path
) -> None:
    from certpager.runbook import EndpointLock

    app = make(checker, host, state_dir)
    endpoint = tuilab.lab_config().endpoint("shop-api")
    assert endpoint is not None
    lock = EndpointLock(endpoint, state_dir / "locks")
    lock.acquire({"pid": 1, "runbook": "other", "run_id": "x"})
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await to_plan(pilot, app)
            await pilot.press("enter")
            run = await wait_run(pilot, app)
            await tuilab.wait_for(pilot, lambda: run.phase == "finished")
            assert "not started" in tuilab.screen_text(app)
            assert host.commands == []
    finally:
        lock.release()


async def test_certpagers_own_multi_line_message_is_shown_as_lines(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path
) -> None:
    app = make(checker, host, state_dir)
    service = app.runbooks
    assert service is not None

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("first line of the reason\n    second line: add this\x1b[2J")

    service.new_run = broken  # type: ignore[assignment, method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await to_plan(pilot, app)
        await pilot.press("enter")
        run = await wait_run(pilot, app)
        await tuilab.wait_for(pilot, lambda: run.phase == "finished")
        text = tuilab.screen_text(app)
        assert "second line: add this\\x1b[2J" in text  # its own line; the ESC still escaped
        assert "\\x0a" not in text
