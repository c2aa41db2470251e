"""``certpager run --silence`` around a real run: real nginx and sshd (the ``web`` stack),
a real Alertmanager. The endpoint's alerts are silenced before the first step (createdBy
the operator, the comment naming the runbook and the run id), the silence is expired when
the run is VERIFIED and kept, with a note saying until when, when it is not; the audit log
records each with the silence id. An Alertmanager that is down is a notice: the run runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.alertmanager import Alertmanager
from tests.support.cli import audit_path, certpager_cli
from tests.support.e2e_stack import DOMAIN, E2EStack

from certpager.lab.ports import reserve_port

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]


def _config(web: E2EStack, path: Path, url: str) -> Path:
    data = {"settings": {"alertmanager": {"url": url, "timeout": 3}}, "endpoints": [web.endpoint_config()]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _records(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_path(env).read_text().splitlines()]


#: A harmless run on the target, then the verification (nothing must get worse).
RUNBOOK = """
name: poke
title: Run a command on the target, verify
applies_to: {tags: [nginx]}
params:
  command: {type: command, default: "true"}
steps:
  - id: poke
    title: A command on the target
    run: ["{command}"]
    timeout: 30
  - id: verify
    title: Verify nothing got worse
    verify: {deadline: 10, interval: 1, expect: findings}
"""


def _run(web: E2EStack, config: Path, env: dict[str, str], command: str = "true"):
    runbooks = Path(env["XDG_CONFIG_HOME"]) / "certpager" / "runbooks"
    runbooks.mkdir(parents=True, exist_ok=True)
    (runbooks / "poke.yaml").write_text(RUNBOOK)
    return certpager_cli(
        ["--config", str(config), "run", "poke", "--endpoint", "app", "--yes", "--silence",
         "--param", f"command={command}"],
        env,
        timeout=240,
    )  # fmt: skip


def _page(am: Alertmanager, web: E2EStack) -> None:
    am.post_alerts(
        [
            {
                "labels": {
                    "alertname": "CertificateExpiringSoon",
                    "instance": f"{DOMAIN}:{web.https_port}",
                    "job": "blackbox",
                }
            },
            {"labels": {"alertname": "CertpagerEndpointCritical", "endpoint": "app", "code": "expires_soon"}},
            {"labels": {"alertname": "CertificateExpiringSoon", "instance": "other.test:443"}},
        ]
    )


def test_silence_created_then_expired_when_verified(
    web: E2EStack, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    _page(am, web)
    config = _config(web, tmp_path / "endpoints.yaml", am.url)
    result = _run(web, config, cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = _records(cli_env)
    run_id = next(r["run_id"] for r in recs if r["type"] == "run_start")
    who = next(r["operator"] for r in recs if r["type"] == "run_start")
    operator = who["sudo_user"] or who["user"]
    created = [r for r in recs if r["type"] == "silence_created"]
    expired = [r for r in recs if r["type"] == "silence_expired"]
    assert len(created) == 2 and all(r["run_id"] == run_id for r in created)
    assert {r["silence_id"] for r in expired} == {r["silence_id"] for r in created}
    kinds = [r["type"] for r in recs]
    assert kinds.index("silence_created") < kinds.index("run_start")  # before the first step
    assert kinds.index("silence_expired") > kinds.index("run_end")
    silences = {s["id"]: s for s in am.silences()}
    for record in created:
        silence = silences[record["silence_id"]]
        assert silence["status"]["state"] == "expired"
        assert silence["createdBy"] == operator
        assert silence["comment"] == f"certpager: runbook poke on app, run {run_id}"
    matchers = sorted(
        tuple(sorted((m["name"], m["value"]) for m in silences[r["silence_id"]]["matchers"])) for r in created
    )
    assert matchers == [
        (("alertname", "CertificateExpiringSoon"), ("instance", f"{DOMAIN}:{web.https_port}")),
        (("alertname", "CertpagerEndpointCritical"), ("endpoint", "app")),
    ]
    assert 'Silence: silenced {alertname="CertificateExpiringSoon"' in result.stdout
    assert "expired: the fix is verified" in result.stdout


def test_silence_kept_with_a_note_when_the_run_fails(
    web: E2EStack, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    _page(am, web)
    config = _config(web, tmp_path / "endpoints.yaml", am.url)
    result = _run(web, config, cli_env, "false")
    assert result.returncode == 2, result.stdout + result.stderr
    recs = _records(cli_env)
    kept = [r for r in recs if r["type"] == "silence_kept"]
    assert len(kept) == 2 and all(r["reason"] == "the run is failed" for r in kept)
    assert not [r for r in recs if r["type"] == "silence_expired"]
    states = {s["id"]: s["status"]["state"] for s in am.silences()}
    assert all(states[r["silence_id"]] == "active" for r in kept)
    note = next(line for line in result.stdout.splitlines() if "kept until" in line)
    assert note.startswith("Silence: silence ") and "(the run is failed)" in note


def test_alertmanager_down_is_a_notice_and_the_run_runs(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        config = _config(web, tmp_path / "endpoints.yaml", f"http://127.0.0.1:{port}")
        result = _run(web, config, cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"Silence: nothing silenced: alertmanager http://127.0.0.1:{port}: nothing listens on port {port} "
        "(connection refused); the run goes on"
    ) in result.stdout
    assert not [r for r in _records(cli_env) if str(r["type"]).startswith("silence_")]


def test_silence_without_alertmanager_is_bad_input(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = web.write_config(tmp_path / "endpoints.yaml")
    result = _run(web, config, cli_env)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"certpager: --silence: {config} names no Alertmanager (settings: alertmanager: {{url: ...}})"
    ]
