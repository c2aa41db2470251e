"""However a ``certpager run --silence`` ends, each silence it created ends with exactly one
``silence_expired`` or ``silence_kept`` record, the kept note saying why and until when,
and the silence records take the run's ``seq`` (the real CLI, real sshd, a real
Alertmanager)."""

from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_runbook_nginx import sleepy_setup, start, wait_for_line
from tests.support.alertmanager import Alertmanager
from tests.support.cli import audit_path, certpager_cli
from tests.support.sshd import Sshd

from certpager.lab.ports import reserve_port

pytestmark = pytest.mark.sshd


def _records(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_path(env).read_text().splitlines()]


def _config(sshd: Sshd, env: dict[str, str], tmp_path: Path, am: Alertmanager) -> Path:
    config = sleepy_setup(sshd, env, tmp_path)
    config.write_text(f"settings:\n  alertmanager: {{url: '{am.url}', timeout: 3}}\n" + config.read_text())
    am.post_alerts([{"labels": {"alertname": "CertpagerEndpointCritical", "endpoint": "box", "code": "x"}}])
    return config


def _args(config: Path, tag: str) -> list[str]:
    return [
        "--config",
        str(config),
        "run",
        "sleepy",
        "--endpoint",
        "box",
        "--silence",
        "--param",
        f"tag={tag}",
    ]


def _one_kept(env: dict[str, str], am: Alertmanager) -> dict[str, Any]:
    """The one silence of the run, kept (active in Alertmanager), and its record; the run's
    records, silences included, numbered 1, 2, 3... in the order they were written."""
    records = _records(env)
    recs = [r for r in records if r.get("run_id") == records[0]["run_id"]]
    kinds = [r["type"] for r in recs]
    assert kinds.count("silence_created") == 1 and kinds.count("silence_expired") == 0, kinds
    assert kinds.count("silence_kept") == 1, kinds
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1)), kinds
    kept = next(r for r in recs if r["type"] == "silence_kept")
    created = next(r for r in recs if r["type"] == "silence_created")
    assert kept["silence_id"] == created["silence_id"] and kept["until"] == created["ends_at"]
    (silence,) = am.silences()
    assert silence["id"] == kept["silence_id"] and silence["status"]["state"] == "active"
    return kept


def _interrupted(config: Path, env: dict[str, str], interrupts: int) -> tuple[int, str, str]:
    """Run the sleepy runbook with a silence, send SIGINT ``interrupts`` times once its command
    started; returns the exit code, stdout and stderr."""
    token = f"certpager-silence-{secrets.token_hex(4)}"
    proc = start(_args(config, token), env)
    try:
        wait_for_line(proc, f"started {token}")
        for i in range(interrupts):
            if i:
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc.returncode, out, err


def test_second_ctrl_c_keeps_the_silence_and_says_why(
    sshd: Sshd, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = _interrupted(_config(sshd, cli_env, tmp_path, am), cli_env, 2)
    assert code == 130, out + err
    kept = _one_kept(cli_env, am)
    why = "a second SIGINT stopped certpager before the run ended; the remote state may be unknown"
    assert kept["reason"] == why
    assert f"Silence: silence {kept['silence_id']} kept until {kept['until']} ({why})" in out
    assert "Traceback" not in err


def test_first_ctrl_c_keeps_the_silence(
    sshd: Sshd, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = _interrupted(_config(sshd, cli_env, tmp_path, am), cli_env, 1)
    assert code == 130, out + err
    assert _one_kept(cli_env, am)["reason"] == "the run is cancelled"


def test_ssh_connect_failure_keeps_the_silence(
    sshd: Sshd, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = _config(sshd, cli_env, tmp_path, am)
    with reserve_port() as sock:
        closed = sock.getsockname()[1]
        config.write_text(config.read_text().replace(f"port: {sshd.port}", f"port: {closed}"))
        result = certpager_cli(_args(config, "x"), cli_env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    kept = _one_kept(cli_env, am)
    assert kept["reason"] == "the run is failed"
    assert any(r["type"] == "connect_failed" for r in _records(cli_env))


def test_a_run_that_cannot_start_keeps_the_silence_and_says_why(
    sshd: Sshd, am: Alertmanager, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = _config(sshd, cli_env, tmp_path, am)
    token = f"certpager-holder-{secrets.token_hex(4)}"
    holder = start(
        ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", f"tag={token}"], cli_env
    )
    try:
        wait_for_line(holder, f"started {token}")
        result = certpager_cli(_args(config, "x"), cli_env, timeout=120)
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    mine = next(r for r in _records(cli_env) if r["type"] == "silence_created")["run_id"]
    recs = [r for r in _records(cli_env) if r.get("run_id") == mine]
    assert [r["type"] for r in recs] == ["silence_created", "silence_kept"]
    assert [r["seq"] for r in recs] == [1, 2]
    reason = recs[1]["reason"]
    assert reason.startswith("the run did not start: ") and "another run is active" in reason, reason
    assert "Traceback" not in result.stderr


def test_ctrl_c_while_asking_alertmanager_cancels_the_run_on_record(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Ctrl-C while Alertmanager is still being asked (it never answers): the signal is
    handled (before, it arrived before the run's handlers and stopped certpager with no
    record of the run): the run is cancelled before its first step, on record, exit 130."""
    from tests.support.hostile import SilentServer

    config = sleepy_setup(sshd, cli_env, tmp_path)
    with SilentServer(max_seconds=20) as silent:
        config.write_text(
            f"settings:\n  alertmanager: {{url: 'http://127.0.0.1:{silent.port}', timeout: 3}}\n"
            + config.read_text()
        )
        proc = start(_args(config, "never-runs"), cli_env)
        try:
            wait_for_line(proc, "sleepy")  # the plan is printed: the silences are being asked for
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    assert proc.returncode == 130, out + err
    assert "cancelling the run" in err and "Traceback" not in err
    assert "Silence: nothing silenced: alertmanager " in out
    recs = _records(cli_env)
    assert [r["type"] for r in recs] == ["run_start", "run_end"]
    assert recs[-1]["outcome"] == "cancelled" and "nothing was run" in recs[-1]["message"]
