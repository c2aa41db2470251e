"""The fire drill end to end through the TUI, against the real lab: the page is on top
in red, Enter drills in, the shipped certbot-force-renew runbook renews over the lab's
real SSH host (host key checked), both confirmations are answered, the verification
shows a new certificate, and the row turns green.

Nothing is faked here: real probes, real asyncssh, the lab's stand-ins, real files.
Waits are bounded by generous wall-clock deadlines, never timed assertions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("certpager.tui.screens.runbook")

from tests.integration.demo.support import disk_serial, running_lab, served_serial
from textual.pilot import Pilot

from certpager.config import load_config
from certpager.demo.info import LabInfo
from certpager.probe import Status
from certpager.runbook import RunOutcome
from certpager.tui.app import CertpagerApp, build_app
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.runbook import (
    ConfirmModal,
    PlanScreen,
    RunbookChooser,
    RunScreen,
)
from certpager.tui.widgets.run_views import VerificationPanel

DEADLINE = 60.0
"""Seconds any step of the drill may take on a loaded machine."""


@pytest.fixture(autouse=True)
def _frozen_engine_clock() -> Iterator[None]:
    """Override the TUI suite's frozen clock: the lab's certificates are relative to now."""
    yield


@pytest.fixture
def lab() -> Iterator[LabInfo]:
    with running_lab() as (_proc, info):
        yield info


def _audit_types(path: Path) -> list[str]:
    return [json.loads(line)["type"] for line in path.read_text().splitlines()]


async def until(pilot: Pilot[int], predicate: object, what: str, deadline: float = DEADLINE) -> None:
    """Let the app (and the real network) run until ``predicate()`` holds; bounded."""
    assert callable(predicate)
    step = 0.05
    for _ in range(int(deadline / step)):
        if predicate():
            return
        await pilot.pause(step)
    raise AssertionError(f"never happened within {deadline:g} s: {what}")


async def test_drill_from_page_to_verified_fix(lab: LabInfo, state_dir: Path, audit_path: Path) -> None:
    root = str(Path(lab.dir) / "ca" / "drill-root.pem")
    cert_file = Path(lab.dir) / "letsencrypt" / "live" / "api.drill.test" / "cert.pem"
    port = lab.endpoint_ports["api"]
    serial_before = served_serial(port, "api.drill.test", root)

    app: CertpagerApp = build_app(load_config(Path(lab.config)), auto_refresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.endpoints_screen
        await until(
            pilot,
            lambda: len(screen.reports) == 9 and not screen.in_flight,
            "the first probe of every lab endpoint",
        )
        reports = screen.reports
        assert reports["api"].status is Status.PAGE
        assert reports["metrics"].status is Status.ERROR
        assert reports["shop"].status is Status.OK

        await pilot.press("enter")  # the top row is the worst: the page
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        detail = app.screen
        assert isinstance(detail, DetailScreen) and detail.report is not None
        assert detail.report.name == "api"

        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, RunbookChooser), "the runbook chooser")
        chooser = app.screen
        assert isinstance(chooser, RunbookChooser)
        assert chooser.runbooks[0].name == "certbot-force-renew"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the typed confirmation")
        typed = app.screen
        assert isinstance(typed, ConfirmModal) and typed.typed
        assert typed.request.expected == "api"
        assert disk_serial(cert_file) == serial_before  # nothing ran before the confirmation

        await pilot.press(*"api", "enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConfirmModal) and app.screen is not typed,
            "the reload confirmation (after certbot and nginx -t ran over SSH)",
        )
        renewed = disk_serial(cert_file)
        assert renewed != serial_before, "the stand-in certbot did not renew"
        assert served_serial(port, "api.drill.test", root) == serial_before, "served before the reload"

        await pilot.press("y")
        await until(
            pilot,
            lambda: isinstance(app.screen, RunScreen) and app.screen.phase == "finished",
            "the run to finish",
        )
        run = app.screen
        assert isinstance(run, RunScreen) and run.result is not None
        assert run.result.outcome is RunOutcome.SUCCEEDED, run.result
        panel = run.query_one(VerificationPanel)
        assert panel.result is not None and panel.result.passed
        pairs = [(b.before, b.after) for b in panel.result.backends]
        assert pairs and all(before and after and before.serial != after.serial for before, after in pairs)
        assert served_serial(port, "api.drill.test", root) == renewed

        await until(pilot, lambda: screen.reports["api"].status is Status.OK, "the api row to turn green")

    types = _audit_types(audit_path)
    assert types[0] == "run_start" and types[-1] == "run_end"
    assert types.count("confirmation") == 2 and "verification" in types
