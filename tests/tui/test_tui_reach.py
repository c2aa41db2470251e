"""Every screen shows all of its content, whole, at 80x24 and 120x40.

For each screen the test collects the text it must show (from the app's own data:
the plan's commands and hosts, the run's output lines and steps, the chain's
fingerprints and pins, ...), drives the keys an operator would (j, End, G, Tab)
and requires every item to appear whole on the rendered screen at some scroll
position (see :mod:`reach`). A snapshot accepts whatever is drawn; this does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import reach
import tuilab
from textual.widget import Widget
from textual.widgets import Footer, OptionList

from certpager.probe import CertInfo
from certpager.runbook import CommandSent, ConfirmKind, OutputReceived, StepKind
from certpager.ssh import FakeResponse
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.endpoints import EndpointsScreen
from certpager.tui.screens.help import DETAIL_KEYS, LIST_KEYS, RUNBOOK_KEYS, HelpScreen
from certpager.tui.screens.runbook import ConfirmModal, PlanScreen, RunbookChooser, RunScreen
from certpager.tui.widgets.chain_tree import ChainTree
from certpager.tui.widgets.run_views import STATE_MARKS, plan_steps

SIZES = [(80, 24), (120, 40)]
ids = [f"{w}x{h}" for w, h in SIZES]

pytestmark = pytest.mark.parametrize("size", SIZES, ids=ids)


def app_for(checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path) -> tuilab.CertpagerApp:
    return tuilab.make_app(checker, runbooks=tuilab.runbook_service(checker, host, state_dir))


async def to_screen(pilot: tuilab.Pilot[int], kind: type, what: str) -> Widget:
    app = pilot.app
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, kind), what=what)
    await pilot.pause()
    return app.screen


async def open_detail(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp, name: str) -> DetailScreen:
    await tuilab.settle(pilot)
    app.show_endpoint(name)
    screen = await to_screen(pilot, DetailScreen, "detail")
    assert isinstance(screen, DetailScreen)
    return screen


async def open_plan(
    pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp, name: str, runbook: str
) -> PlanScreen:
    await open_detail(pilot, app, name)
    await pilot.press("f")
    chooser = await to_screen(pilot, RunbookChooser, "chooser")
    assert isinstance(chooser, RunbookChooser)
    options = chooser.query_one(OptionList)
    options.highlighted = next(i for i, rb in enumerate(chooser.runbooks) if rb.name == runbook)
    await pilot.press("enter")
    screen = await to_screen(pilot, PlanScreen, "plan")
    assert isinstance(screen, PlanScreen)
    return screen


def cert_items(cert: CertInfo) -> list[str]:
    return [cert.subject, cert.issuer, cert.sha256, cert.spki_pin, cert.serial, ", ".join(cert.sans)]


# -- endpoint list -------------------------------------------------------------


async def test_list_rows_and_footer_quit(checker: tuilab.FakeChecker, size: tuple[int, int]) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=size) as pilot:
        await tuilab.settle(pilot)
        screen = app.screen
        assert isinstance(screen, EndpointsScreen)
        # Every name; every address from 120 columns on (at 80 the HOST:PORT column may cut a
        # long one with an ellipsis: the detail header shows it whole, asserted below).
        items = [ep.name for ep in screen.endpoints.values()]
        if size[0] >= 120:
            items += [ep.address for ep in screen.endpoints.values()]
        await reach.assert_reachable(pilot, screen.query_one("#endpoints"), items, what="endpoint list")
        footer = reach.shown(screen.query_one(Footer))
        assert "qQuit" in footer and "?Keys" in footer, footer


async def test_help_every_key(checker: tuilab.FakeChecker, size: tuple[int, int]) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=size) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("question_mark")
        screen = await to_screen(pilot, HelpScreen, "help")
        items = [f"{key}{what}" for key, what in (*LIST_KEYS, *DETAIL_KEYS, *RUNBOOK_KEYS)]
        await reach.assert_reachable(pilot, screen.query_one("#help-box"), items, what="help")


# -- endpoint detail -----------------------------------------------------------


@pytest.mark.parametrize("name", ["shop-api", "auth", "www"])
async def test_detail_header_findings_and_chain(
    checker: tuilab.FakeChecker, size: tuple[int, int], name: str
) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=size) as pilot:
        screen = await open_detail(pilot, app, name)
        report = screen.report
        assert report is not None and report.leaf is not None
        ep = screen.endpoint
        header = reach.shown(screen.query_one("#detail-header"))
        for item in [ep.name, ep.address, *(f"#{t}" for t in ep.tags), "checked"]:
            assert reach.squash(item) in header, f"header at {size}: {item!r} not shown: {header}"
        findings = []
        for f in report.findings:
            findings += [f.message, f.code, f.hint or "", f.runbook or ""]
        findings += [b.handshake.label for b in report.backends]
        await reach.assert_reachable(
            pilot, screen.query_one("#facts"), [i for i in findings if i], what=f"{name} findings"
        )
        tree = screen.query_one(ChainTree)
        chain = [
            item for b in report.backends if b.analysis for c in b.analysis.chain for item in cert_items(c)
        ]
        await reach.assert_reachable(pilot, tree, [i for i in chain if i], what=f"{name} chain", step="down")


# -- runbook flow ----------------------------------------------------------------


async def test_chooser_every_runbook(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, size: tuple[int, int]
) -> None:
    app = app_for(checker, host, state_dir)
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, app, "shop-api")
        await pilot.press("f")
        chooser = await to_screen(pilot, RunbookChooser, "chooser")
        assert isinstance(chooser, RunbookChooser)
        items = [f"{rb.name}{rb.title}" for rb in chooser.runbooks]
        await reach.assert_reachable(pilot, chooser.query_one(OptionList), items, what="chooser", step="down")


@pytest.mark.parametrize(("name", "runbook"), [("shop-api", "certbot-force-renew"), ("auth", "nginx-reload")])
async def test_plan_every_command_and_host(
    checker: tuilab.FakeChecker,
    host: tuilab.FakeHost,
    state_dir: Path,
    size: tuple[int, int],
    name: str,
    runbook: str,
) -> None:
    app = app_for(checker, host, state_dir)
    async with app.run_test(size=size) as pilot:
        plan_screen = await open_plan(pilot, app, name, runbook)
        plan = plan_screen.plan
        items = [f"{v.name}{v.value}" for v in plan.values if v.value and len(v.name) <= 14]
        for number, step in plan_steps(plan):
            items.append(f"{number}.{step.title}")
            if step.kind is StepKind.RUN:
                items += [f"on {step.target}", f"$ {step.display_command}"]
            if step.confirm is ConfirmKind.TYPED:
                items.append(f"asks you to type {step.confirm_token!r} first")
        body = plan_screen.query_one("#plan-body")
        await reach.assert_reachable(pilot, body, items, what=f"plan of {runbook}")
        for keys in (("end",), ("G",), ("pagedown",) * 20):
            await pilot.press("home")
            await reach.assert_end_reachable(
                pilot, body, "everything is written to the audit log.", what="plan end", keys=keys
            )


async def test_plan_end_is_the_first_key_pressed(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, size: tuple[int, int]
) -> None:
    """End (or G) as the very first key on a freshly opened plan reaches its last line: the
    pane's height must not grow after the first layout (a scrollbar appearing rewraps text)."""
    for keys in (("end",), ("G",)):
        app = app_for(checker, host, state_dir)
        async with app.run_test(size=size) as pilot:
            plan_screen = await open_plan(pilot, app, "shop-api", "certbot-force-renew")
            body = plan_screen.query_one("#plan-body")
            await reach.assert_end_reachable(
                pilot, body, "everything is written to the audit log.", what="plan end", keys=keys
            )


async def test_confirmations_show_their_keys(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, size: tuple[int, int]
) -> None:
    app = app_for(checker, host, state_dir)
    async with app.run_test(size=size) as pilot:
        await open_plan(pilot, app, "shop-api", "certbot-force-renew")
        await pilot.press("enter")
        typed = await to_screen(pilot, ConfirmModal, "typed confirmation")
        assert isinstance(typed, ConfirmModal) and typed.typed
        req = typed.request
        items = [req.step.display_command, req.step.title, req.target, f"Type {req.expected!r}"]
        items += [line for line in req.step.message.splitlines() if line]
        views = [reach.shown(typed.query_one("#confirm-box"))]
        views += await reach.scroll_through(pilot, typed.query_one("#confirm-facts"))
        assert not reach.missing(views, items), reach.missing(views, items)
        typed.query_one("#confirm-input").focus()
        await pilot.press(*"shop-api", "enter")
        await tuilab.wait_for(pilot, lambda: getattr(app.screen, "typed", True) is False, what="yes/no")
        plain = app.screen
        assert isinstance(plain, ConfirmModal)
        box = reach.shown(plain.query_one("#confirm-box"))
        for item in (plain.request.step.display_command, "(y)", "(n"):
            assert reach.squash(item) in box, f"yes/no confirmation at {size}: {item!r} not shown:\n{box}"
        await pilot.press("n")


async def run_to_end(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp, answer: str) -> RunScreen:
    await open_plan(pilot, app, "shop-api", "certbot-force-renew")
    await pilot.press("enter")
    await to_screen(pilot, ConfirmModal, "typed confirmation")
    await pilot.press(*"shop-api", "enter")
    await tuilab.wait_for(
        pilot,
        lambda: getattr(app.screen, "typed", True) is False or getattr(app.screen, "phase", "") == "finished",
        what="yes/no or the end",
    )
    if isinstance(app.screen, ConfirmModal):
        await pilot.press(answer)
    await tuilab.wait_for(pilot, lambda: getattr(app.screen, "phase", "") == "finished", what="the end")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, RunScreen)
    return screen


async def assert_run_whole(pilot: tuilab.Pilot[int], run: RunScreen, what: str) -> None:
    steps = [f"{STATE_MARKS[s.state][0]}{s.number}{s.step.title}" for s in run.steps]
    steps += [s.note for s in run.steps if s.note]
    await reach.assert_reachable(pilot, run.query_one("#run-steps"), steps, what=f"{what}: steps")
    output = [e.line for e in run.events if isinstance(e, OutputReceived) and e.line.strip()]
    output += [f"$ {e.command}" for e in run.events if isinstance(e, CommandSent)]
    await reach.assert_reachable(pilot, run.query_one("#output"), output, what=f"{what}: output")


async def test_run_after_a_declined_confirmation(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, size: tuple[int, int]
) -> None:
    app = app_for(checker, host, state_dir)
    async with app.run_test(size=size) as pilot:
        run = await run_to_end(pilot, app, "n")
        states = {s.step.id: s.state for s in run.steps}
        assert states == {"renew": "ok", "nginx-test": "ok", "reload": "declined", "verify": "skipped"}
        await assert_run_whole(pilot, run, "declined run")


async def test_run_after_a_failed_step(
    checker: tuilab.FakeChecker, state_dir: Path, size: tuple[int, int]
) -> None:
    long = "nginx: [emerg] cannot load certificate " + "/etc/letsencrypt/live/api.shop.example/" * 3
    failing = tuilab.FakeHost(checker, **{"nginx -t": FakeResponse(stderr=long, exit_status=1)})
    app = app_for(checker, failing, state_dir)
    async with app.run_test(size=size) as pilot:
        run = await run_to_end(pilot, app, "y")
        states = {s.step.id: s.state for s in run.steps}
        assert states["nginx-test"] == "failed" and states["verify"] == "skipped", states
        await assert_run_whole(pilot, run, "failed run")


async def test_verification_backends_whole(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, size: tuple[int, int]
) -> None:
    app = app_for(checker, host, state_dir)
    async with app.run_test(size=size) as pilot:
        run = await run_to_end(pilot, app, "y")
        result = run.query_one("VerificationPanel").result  # type: ignore[attr-defined]
        assert result is not None and result.passed
        items = ["VERIFIED"] + [v.backend for v in result.backends]
        items += [v.after.sha256[:24] for v in result.backends if v.after is not None]
        await reach.assert_reachable(pilot, run.query_one("#verification-pane"), items, what="verification")
        await assert_run_whole(pilot, run, "verified run")
