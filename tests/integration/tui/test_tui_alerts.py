"""The TUI with a real Alertmanager: paged endpoints first with a PAGED badge, the detail
screen's "Paged by ... since ..." line, endpoints only an alert names (probed, no fix
offered), and an Alertmanager that is down (one notice, the endpoints still checked).

The probes are the TUI suite's fake checker (tests/tui/tuilab.py); the alerts come from
prometheus-alertmanager on loopback, posted the way Prometheus sends them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import tuilab
from tests.support.alertmanager import Alertmanager
from textual.pilot import Pilot

from certpager.config import AlertmanagerSettings, Config
from certpager.lab.ports import reserve_port
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.pages_view import PagesView

DEADLINE = 20.0


def _config(url: str) -> Config:
    config = tuilab.lab_config()
    return replace(
        config, settings=replace(config.settings, alertmanager=AlertmanagerSettings(url=url, timeout=2.0))
    )


async def _until(pilot: Pilot[int], predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {DEADLINE} s: {what}")
        await pilot.pause(0.05)


def _rows(app: tuilab.CertpagerApp) -> list[tuple[str, str]]:
    return [(r.name, r.badge) for r in app.endpoints_screen.query_one(EndpointTable).rows]


async def test_paged_endpoint_first_and_detail_says_who_pages(am: Alertmanager, checker) -> None:
    evil = "\x1b]0;owned\x07\u202e"
    am.post_alerts(
        [
            {
                "labels": {
                    "alertname": "CertificateExpiringSoon",
                    "instance": "https://mail.example",
                    "job": "blackbox",
                },
                "annotations": {"summary": f"mail certificate expires soon{evil}"},
            },
            {
                "labels": {
                    "alertname": "CertpagerEndpointCritical",
                    "endpoint": "mail",
                    "code": "expires_soon",
                }
            },
            {"labels": {"alertname": "CertificateExpiringSoon", "instance": "new.example:8443"}},
        ]
    )
    app = tuilab.make_app(checker, config=_config(am.url))
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: bool(app.endpoints_screen.pages.pages), "alerts fetched")
        await tuilab.settle(pilot)
        rows = _rows(app)
        # Paged first (mail is OK, the ad-hoc endpoint does not resolve: worst first among them).
        assert rows[:2] == [("new.example:8443", "⚑ PAGED"), ("mail", "⚑ PAGED")]
        assert all(badge != "⚑ PAGED" for _, badge in rows[2:])
        assert "⚑ PAGED" in tuilab.screen_text(app)
        assert "new.example:8443" in checker.calls  # the ad-hoc endpoint was probed

        table = app.endpoints_screen.query_one(EndpointTable)
        table.move_to("mail")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail screen")
        text = tuilab.screen_text(app)
        assert "Paged by CertificateExpiringSoon since " in text and "(2 alerts)" in text
        assert "\x1b" not in text and "\u202e" not in text
        assert isinstance(app.screen, DetailScreen)
        shown = [line for _, line in app.screen.query_one(PagesView).lines]
        assert shown[1] == "CertificateExpiringSoon: mail certificate expires soon\\x1b]0;owned\\x07\\u202e"
        assert app.can_fix("mail")

        await pilot.press("escape")
        table.move_to("new.example:8443")
        await pilot.press("enter")
        await _until(pilot, lambda: bool(app.screen.query(PagesView)), "detail of the ad-hoc endpoint")
        assert isinstance(app.screen, DetailScreen) and app.screen.endpoint.name == "new.example:8443"
        lines = app.screen.query_one(PagesView).lines
        assert lines[-1][1].startswith("Not in the config (an alert names this target): no runbook can run")
        assert not app.can_fix("new.example:8443")
        assert "Fix…" not in tuilab.screen_text(app)


async def test_alertmanager_down_is_one_notice_and_probes_go_on(checker) -> None:
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        app = tuilab.make_app(checker, config=_config(f"http://127.0.0.1:{port}"))
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: bool(app._notifications), "a notice")
            await tuilab.settle(pilot)
            (notice,) = list(app._notifications)
            assert notice.message.startswith(
                f"alertmanager http://127.0.0.1:{port}: nothing listens on port {port}"
            )
            assert "Endpoints are still checked" in notice.message
            assert len(checker.calls) == len(tuilab.endpoints())
            assert not any(badge == "⚑ PAGED" for _, badge in _rows(app))


def _audit_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_run_from_the_tui_silences_after_asking_and_expires_when_verified(
    am: Alertmanager, checker, host, state_dir: Path, audit_path: Path
) -> None:
    from certpager.runbook import RunOutcome
    from certpager.tui.screens.runbook import AskModal, ConfirmModal, PlanScreen, RunbookChooser, RunScreen

    am.post_alerts([{"labels": {"alertname": "CertpagerEndpointCritical", "endpoint": "shop-api"}}])
    config = _config(am.url)
    app = tuilab.make_app(
        checker, config=config, runbooks=tuilab.runbook_service(checker, host, state_dir, config)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: bool(app.endpoints_screen.pages.pages), "alerts fetched")
        await tuilab.settle(pilot)
        app.show_endpoint("shop-api")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail")
        await pilot.press("f")
        await _until(pilot, lambda: isinstance(app.screen, RunbookChooser), "chooser")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, PlanScreen), "plan")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, AskModal), "the silence question")
        assert "1 alert page about shop-api (CertpagerEndpointCritical)" in tuilab.screen_text(app)
        assert host.commands == []  # nothing runs before the answer
        await pilot.press("y")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmModal), "typed confirmation")
        (silence,) = am.silences()
        assert silence["status"]["state"] == "active"
        assert (
            silence["comment"]
            == "certpager: runbook certbot-force-renew on shop-api, run 20260314T021300Z-5a1c0e"
        )
        await pilot.press(*"shop-api", "enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmModal) and not app.screen.typed, "reload")
        await pilot.press("y")
        await _until(
            pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase == "finished", "end"
        )
        run = app.screen
        assert isinstance(run, RunScreen) and run.result is not None
        assert run.result.outcome is RunOutcome.SUCCEEDED
        await _until(pilot, lambda: am.silences()[0]["status"]["state"] == "expired", "silence expired")

        def output() -> str:  # the log's lines, wrapped at the screen's width, joined again
            lines = run.query_one("#output").lines  # type: ignore[attr-defined]
            return " ".join(" ".join(str(line.text) for line in lines).split())

        await _until(pilot, lambda: "expired: the fix is verified" in output(), "the note")
        assert (
            'INFO: silenced {alertname="CertpagerEndpointCritical", endpoint="shop-api"} until ' in output()
        )
    kinds = [r["type"] for r in _audit_records(audit_path)]
    assert (
        kinds.index("silence_created")
        < kinds.index("run_start")
        < kinds.index("run_end")
        < kinds.index("silence_expired")
    )


async def test_detail_names_the_certificate_behind_a_false_blackbox_page(
    am: Alertmanager, pki, ca, other_ca, serve
) -> None:
    """A real TLS server sends a good chain plus an unrelated CA certificate that expires in
    3 days: blackbox pages, clients are fine, and the endpoint screen says why."""
    from certpager.config import Endpoint
    from certpager.tui.app import build_app

    stray = other_ca.root.intermediate("Stray Cross-Sign CA", not_before=-300, not_after=3)
    server = serve(*ca.serve_files("tui-false-page", ca.leaf("app.test", not_after=80), extra=[stray]))
    endpoint = Endpoint(
        name="app", host="127.0.0.1", port=server.port, sni="app.test", ca_file=str(ca.root_file),
        check_protocols=False, fetch_aia=False, check_no_sni=False,
    )  # fmt: skip
    am.post_alerts(
        [{"labels": {"alertname": "CertificateExpiringSoon", "instance": f"https://app.test:{server.port}"}}]
    )
    settings = replace(_config(am.url).settings, check_http=False)
    app = build_app(Config(endpoints=(endpoint,), settings=settings), auto_refresh=False, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: bool(app.endpoints_screen.pages.pages), "alerts fetched")
        await _until(pilot, lambda: "app" in app.endpoints_screen.reports, "the probe")
        app.show_endpoint("app")
        await _until(pilot, lambda: bool(app.screen.query(PagesView)), "the detail screen")
        lines = [line for _, line in app.screen.query_one(PagesView).lines]
        assert lines[0].startswith("Paged by CertificateExpiringSoon since ")
        assert lines[1].startswith("Blackbox's probe_ssl_earliest_cert_expiry is ")
        assert "certificate #3 sent, CN=Stray Cross-Sign CA" in lines[1]
        assert "is not on the path clients verify" in lines[1]
        assert lines[1].endswith("clients are not affected: the cause of blackbox's page")


async def test_tui_run_stopped_mid_way_keeps_the_silence_and_records_why(
    am: Alertmanager, checker, host, state_dir: Path, audit_path: Path
) -> None:
    """The run's flow is torn down while it waits for a confirmation (its worker cancelled,
    as when the app closes): the silence is kept, recorded once, with why and until when,
    in the run's sequence."""
    from certpager.tui.screens.runbook import AskModal, ConfirmModal, PlanScreen, RunbookChooser

    am.post_alerts([{"labels": {"alertname": "CertpagerEndpointCritical", "endpoint": "shop-api"}}])
    config = _config(am.url)
    app = tuilab.make_app(
        checker, config=config, runbooks=tuilab.runbook_service(checker, host, state_dir, config)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: bool(app.endpoints_screen.pages.pages), "alerts fetched")
        await tuilab.settle(pilot)
        app.show_endpoint("shop-api")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail")
        await pilot.press("f")
        await _until(pilot, lambda: isinstance(app.screen, RunbookChooser), "chooser")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, PlanScreen), "plan")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, AskModal), "the silence question")
        await pilot.press("y")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmModal), "typed confirmation")
        for worker in app.workers:
            if worker.group.startswith("runbook:"):
                worker.cancel()
        await _until(pilot, lambda: not app.active_runs, "the flow ended")
    records = [r for r in _audit_records(audit_path) if r.get("run_id") == "20260314T021300Z-5a1c0e"]
    kinds = [r["type"] for r in records]
    assert kinds.count("silence_created") == 1 and kinds.count("silence_kept") == 1, kinds
    assert "silence_expired" not in kinds and kinds[-1] == "silence_kept"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    kept = records[-1]
    assert kept["reason"] == (
        "certpager stopped the run before it ended (its task was cancelled); the remote state may be unknown"
    )
    assert kept["until"] == records[0]["ends_at"]
    assert [s["status"]["state"] for s in am.silences()] == ["active"]


def _resolved(alert: Mapping[str, object]) -> dict[str, object]:
    """``alert`` as Prometheus sends it once it stops firing (endsAt in the past)."""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {**alert, "startsAt": past, "endsAt": past}


async def test_adhoc_endpoint_leaves_the_list_when_its_alert_resolves(am: Alertmanager, checker) -> None:
    """Two targets only an alert names: when their alerts resolve, the one nobody looks at
    leaves the list at the next fetch; the one whose screen is open stays, marked, its screen
    saying so, and leaves when the screen closes."""
    from certpager.config import AlertmanagerSettings
    from certpager.tui.view import RESOLVED_LINE

    gone = {"labels": {"alertname": "CertificateExpiringSoon", "instance": "gone.example:8443"}}
    held = {"labels": {"alertname": "CertificateExpiringSoon", "instance": "held.example:8443"}}
    am.post_alerts([gone, held])
    config = _config(am.url)
    config = replace(
        config,
        settings=replace(
            config.settings, alertmanager=AlertmanagerSettings(url=am.url, timeout=2.0, interval=0.3)
        ),
    )
    configured = {ep.name for ep in config.endpoints}
    app = tuilab.make_app(checker, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.endpoints_screen
        names = lambda: {name for name, _ in _rows(app)}  # noqa: E731
        await _until(pilot, lambda: {"gone.example:8443", "held.example:8443"} <= names(), "ad-hoc rows")
        app.show_endpoint("held.example:8443")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail of held.example")

        am.post_alerts([_resolved(gone), _resolved(held)])
        await _until(pilot, lambda: "gone.example:8443" not in screen.endpoints, "gone.example left")
        assert names() == configured | {"held.example:8443"}
        assert screen.total == len(configured) + 1
        row = screen.row_list.get("held.example:8443")
        assert row is not None and row.resolved and row.badge.startswith("⚐ ") and not row.pages
        await _until(
            pilot,
            lambda: RESOLVED_LINE in [line for _, line in app.screen.query_one(PagesView).lines],
            "the detail screen says the alert resolved",
        )

        await pilot.press("escape")
        await _until(pilot, lambda: "held.example:8443" not in names(), "held.example left on Esc")
        assert names() == configured and screen.total == len(configured)
        assert screen.adhoc == set() and screen.resolved == set()
        assert "held.example" not in tuilab.screen_text(app)

        am.post_alerts([held])  # it fires again: back in the list, paged
        await _until(pilot, lambda: ("held.example:8443", "⚑ PAGED") in _rows(app), "held.example back")
