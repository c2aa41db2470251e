"""The whole fleet loop as one chain of real processes on loopback (issue 15's "done when").

- Debian's nginx (the ``web`` stack, with its sshd) serves ``app`` with the leaf alone: its
  intermediate is missing (chain_incomplete). A second nginx serves ``soon`` (a 2-day
  certificate) and ``fine`` (healthy, never scraped: not paged).
- ``certpager exporter`` and Debian's blackbox exporter probe them; Debian's Prometheus scrapes
  both every second (the certpager job is deploy/prometheus/scrape.yml's endpoint job, with the
  interval, the targets and the exporter's address changed) and evaluates the SHIPPED rules
  (only ``for:`` rewritten to 0s); its ``alerting:`` points at a real Alertmanager.
- The shipped rules fire; Alertmanager holds the alerts; ``certpager check --json`` and the
  table show both endpoints paged; the TUI lists them first with the PAGED badge; the fix
  from the TUI (the nginx site pointed at the full chain, then runbook nginx-reload over SSH)
  with the silence accepted ends VERIFIED, the silence is expired in Alertmanager, and the
  audit log has silence_created and silence_expired.

Every wait is bounded; every process is stopped by PID by its fixture.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.test_exporter_prometheus import rules_without_for
from tests.support.alertmanager import Alertmanager, start_alertmanager
from tests.support.cli import certpager_cli, isolated_env
from tests.support.e2e_stack import DOMAIN, E2EStack, file_leaf
from tests.support.nginx import Nginx, Site
from tests.support.pki import Hierarchy
from tests.support.prometheus import Blackbox, CertpagerExporter, Prometheus, multi_target_job
from textual.pilot import Pilot

from certpager.config import load_config
from certpager.runbook import RunOutcome
from certpager.tui.app import CertpagerApp, build_app
from certpager.tui.runbooks import RunbookService
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.runbook import AskModal, ConfirmModal, PlanScreen, RunbookChooser, RunScreen
from certpager.tui.widgets.endpoint_table import EndpointTable

pytestmark = [pytest.mark.sshd, pytest.mark.nginx, pytest.mark.slow]

SCRAPE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "scrape.yml"
DEADLINE = 45.0
"""Seconds any one step of the chain may take on a loaded machine."""
PAGED = "⚑ PAGED"


@dataclass
class AlertingPrometheus(Prometheus):
    """The fixture's Prometheus with an ``alerting:`` section sending to ``alertmanager``."""

    alertmanager: str = ""

    def argv(self) -> list[str]:
        argv = super().argv()
        path = self.directory / "prometheus.yml"
        config = yaml.safe_load(path.read_text())
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        path.write_text(yaml.safe_dump(config))
        return argv


def shipped_endpoint_job(exporter_port: int, names: list[str]) -> dict[str, Any]:
    """deploy/prometheus/scrape.yml's ``certpager-endpoints`` job: 1 s interval, these endpoint
    names, the exporter's test port; the relabelling as shipped."""
    doc = yaml.safe_load(SCRAPE.read_text())
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "certpager-endpoints"]
    job.update(scrape_interval="1s", scrape_timeout="1s", static_configs=[{"targets": names}])
    (address,) = [r for r in job["relabel_configs"] if r.get("target_label") == "__address__"]
    assert address["replacement"] == "127.0.0.1:9219"
    address["replacement"] = f"127.0.0.1:{exporter_port}"
    return dict(job)


@dataclass
class Fleet:
    """Everything the chain runs on."""

    web: E2EStack
    other: Nginx
    config: Path
    am: Alertmanager
    prometheus: Prometheus
    full_chain: Path
    key: Path


def _wait(what: str, predicate: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


@pytest.fixture
def fleet(web: E2EStack, ca: Hierarchy, tmp_path: Path) -> Iterator[Fleet]:
    leaf = ca.leaf(DOMAIN, not_after=60.0)
    full, key = ca.serve_files("fleet-app-full", leaf, "full")
    only, _ = ca.serve_files("fleet-app-leaf", leaf, "leaf")
    web.point_tls(only, key)  # the incident: cert.pem where fullchain.pem belongs
    web.reload_nginx(expect_sha256=file_leaf(only).sha256)
    soon = ca.leaf("soon.test", not_before=-30, not_after=2)
    fine = ca.leaf("fine.test", not_after=80)
    other = Nginx(
        prefix=tmp_path / "nginx-other",
        sites=[
            Site("soon", *ca.serve_files("fleet-soon", soon), server_name="soon.test"),
            Site("fine", *ca.serve_files("fleet-fine", fine), server_name="fine.test"),
        ],
    )
    other.start()
    am = start_alertmanager(tmp_path / "am")
    try:
        config = tmp_path / "endpoints.yaml"
        root = str(ca.root_file)
        endpoints = [
            web.endpoint_config(ca_file=root, params={"reload_command": web.nginx_reload_command()}),
            {"name": "soon", "host": "127.0.0.1", "port": other.port("soon"), "sni": "soon.test", "ca_file": root},
            {"name": "fine", "host": "127.0.0.1", "port": other.port("fine"), "sni": "fine.test", "ca_file": root},
        ]  # fmt: skip
        # The protocol scan and the HTTP checks are off: each probe fits the 1 s scrape.
        settings = {
            "timeout": 5,
            "check_protocols": False,
            "check_http": False,
            "alertmanager": {"url": am.url, "timeout": 3},
        }
        config.write_text(yaml.safe_dump({"settings": settings, "endpoints": endpoints}, sort_keys=False))
        modules = {
            f"tls_{name}": {
                "prober": "tcp",
                "timeout": "5s",
                "tcp": {"tls": True, "tls_config": {"ca_file": root, "server_name": sni}},
            }
            for name, sni in (("app", DOMAIN), ("soon", "soon.test"))
        }
        with (
            CertpagerExporter(tmp_path / "exporter", config=config) as exporter,
            Blackbox(tmp_path / "blackbox", modules=modules) as blackbox,
        ):
            jobs = [shipped_endpoint_job(exporter.port, ["app", "soon"])]
            for name, port in (("app", web.https_port), ("soon", other.port("soon"))):
                job = multi_target_job(f"blackbox-{name}", blackbox.port, [f"127.0.0.1:{port}"])
                job["params"] = {"module": [f"tls_{name}"]}
                jobs.append(job)
            prometheus = AlertingPrometheus(
                tmp_path / "prometheus",
                scrape_configs=jobs,
                rule_files=[rules_without_for(tmp_path)],
                alertmanager=am.url.removeprefix("http://"),
            )
            with prometheus:
                yield Fleet(web, other, config, am, prometheus, full, key)
    finally:
        am.stop()
        other.stop()


def _expected(fleet: Fleet) -> set[tuple[str, str, str]]:
    """(alertname, instance, job) the shipped rules must fire."""
    soon = f"127.0.0.1:{fleet.other.port('soon')}"
    return {
        ("CertificateChainIncomplete", "app", "certpager-endpoints"),
        ("CertificateExpiresIn3Days", "soon", "certpager-endpoints"),
        ("CertificateRenewalOverdue", "soon", "certpager-endpoints"),  # 2 days left of 32
        ("CertificateExpiresIn3Days", soon, "blackbox-soon"),
        # blackbox cannot verify the leaf-only chain: to it, the probe failed.
        ("CertificateProbeFailed", f"127.0.0.1:{fleet.web.https_port}", "blackbox-app"),
    }


def _keys(alerts: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (a["labels"]["alertname"], a["labels"].get("instance", ""), a["labels"].get("job", ""))
        for a in alerts
    }


def _check_pages(fleet: Fleet, env: dict[str, str]) -> None:
    """``certpager check --json`` and the table: both endpoints paged, ``fine`` not."""
    run = certpager_cli(["check", "--config", str(fleet.config), "--json"], env, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr  # critical findings
    assert run.stderr == ""
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    assert set(reports) == {"app", "soon", "fine"}  # every alert maps to a configured endpoint
    app_alerts = {a["alertname"] for a in reports["app"]["alerts"]}
    assert app_alerts == {"CertificateChainIncomplete", "CertificateProbeFailed"}
    assert "chain_incomplete" in {f["code"] for f in reports["app"]["findings"]}
    soon_alerts = {(a["alertname"], a["labels"]["job"], a["severity"]) for a in reports["soon"]["alerts"]}
    # 2 days left of 32: the expiry rule for both probes, and certpager's renewal-overdue rule.
    assert soon_alerts == {
        ("CertificateExpiresIn3Days", "blackbox-soon", "critical"),
        ("CertificateExpiresIn3Days", "certpager-endpoints", "critical"),
        ("CertificateRenewalOverdue", "certpager-endpoints", "warning"),
    }
    assert all(a["severity"] == "critical" for a in reports["app"]["alerts"])
    assert reports["fine"]["alerts"] == []

    table = certpager_cli(["check", "--config", str(fleet.config)], env, timeout=120)
    lines = table.stdout.splitlines()
    for name in ("app", "soon"):
        row = next(i for i, line in enumerate(lines) if line.split()[1:2] == [name])
        assert lines[row + 1].strip().startswith("PAGED    paged by Certificate"), lines[row : row + 2]
    row = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["fine"])
    assert "PAGED" not in " ".join(lines[row : row + 2])


async def _until(pilot: Pilot[int], predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {DEADLINE:g} s: {what}")
        await pilot.pause(0.05)


async def _fix_from_the_tui(app: CertpagerApp, pilot: Pilot[int], fleet: Fleet) -> RunScreen:
    """Open ``app``, Fix…, nginx-reload, accept the silence, confirm; the finished run."""
    app.show_endpoint("app")
    await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
    await pilot.press("f")
    await _until(pilot, lambda: isinstance(app.screen, RunbookChooser), "the runbook chooser")
    chooser = app.screen
    assert isinstance(chooser, RunbookChooser)
    assert chooser.runbooks[0].name == "nginx-reload"  # the one that fixes chain_incomplete
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, AskModal), "the silence question")
    assert fleet.am.silences() == []  # nothing silenced before the answer
    await pilot.press("y")
    deadline = time.monotonic() + DEADLINE * 2
    while not (isinstance(app.screen, RunScreen) and app.screen.phase == "finished"):
        assert time.monotonic() < deadline, "the run did not finish"
        modal = app.screen
        if isinstance(modal, ConfirmModal):  # the reload's confirmation (typed ones: the name)
            keys = [*(modal.request.expected or ""), "enter"] if modal.typed else ["y"]
            await pilot.press(*keys)

            def taken(m: ConfirmModal = modal) -> bool:
                return app.screen is not m

            await _until(pilot, taken, "the confirmation taken")
        await pilot.pause(0.05)
    run = app.screen
    assert isinstance(run, RunScreen)
    return run


def _rows(app: CertpagerApp) -> list[tuple[str, str]]:
    return [(r.name, r.badge) for r in app.endpoints_screen.query_one(EndpointTable).rows]


async def test_alert_to_verified_fix_through_prometheus_and_alertmanager(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    prometheus = fleet.prometheus
    expected = _expected(fleet)

    def firing() -> set[tuple[str, str, str]]:
        alerts = prometheus.api("/api/v1/alerts")["alerts"]
        return _keys([a for a in alerts if a["state"] == "firing"])

    _wait("the shipped rules firing in Prometheus", lambda: expected <= firing())
    _wait("Alertmanager holding the alerts", lambda: expected <= _keys(fleet.am.alerts()))
    held = {(a["labels"]["alertname"], a["labels"]["instance"]): a for a in fleet.am.alerts()}
    assert held[("CertificateChainIncomplete", "app")]["status"]["state"] == "active"

    env = isolated_env(tmp_path / "home")
    _check_pages(fleet, env)

    # The TUI, in this process: the real checker, the real runbook engine over the stack's sshd.
    state = tmp_path / "tui"
    for key, sub in (
        ("HOME", "home"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ):
        (state / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(key, str(state / sub))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    audit = state / "audit.jsonl"
    config = load_config(fleet.config)
    runbooks = RunbookService(config, audit_path=audit, lock_dir=state / "locks")
    app = build_app(config, auto_refresh=False, runbooks=runbooks)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.endpoints_screen
        await _until(pilot, lambda: set(screen.pages.pages) == {"app", "soon"}, "the alerts fetched")
        await _until(pilot, lambda: {"app", "soon", "fine"} <= set(screen.reports), "every endpoint probed")
        await _until(pilot, lambda: [b for _, b in _rows(app)].count(PAGED) == 2, "two PAGED rows")
        rows = _rows(app)
        assert {name for name, _ in rows[:2]} == {"app", "soon"} and all(b == PAGED for _, b in rows[:2])
        assert rows[2][0] == "fine" and rows[2][1] != PAGED

        fleet.web.point_tls(fleet.full_chain, fleet.key)  # the operator's fix, applied by the runbook
        run = await _fix_from_the_tui(app, pilot, fleet)
        assert run.result is not None and run.result.outcome is RunOutcome.SUCCEEDED, run.result

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds.index("silence_created") < kinds.index("run_start") < kinds.index("run_end")
    assert kinds.index("run_end") < kinds.index("silence_expired")
    verification = next(r for r in records if r["type"] == "verification")
    assert verification["passed"] is True and "chain_incomplete" in verification["gone"]
    created = {r["silence_id"] for r in records if r["type"] == "silence_created"}
    assert created == {r["silence_id"] for r in records if r["type"] == "silence_expired"}
    assert len(created) == 2  # one per alert about app: certpager's and blackbox's
    for silence_id in created:
        silence = json.loads(_get(f"{fleet.am.url}/api/v2/silence/{silence_id}"))
        assert silence["status"]["state"] == "expired"
    print(f"\nfleet loop: alert to verified fix in {time.monotonic() - started:.1f} s (after the setup)")


def _get(url: str) -> bytes:
    import urllib.request

    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: bytes = answer.read()
    return body
