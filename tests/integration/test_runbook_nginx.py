"""The real CLI against real nginx and sshd: a failing ``nginx -t`` stops the run before the
reload; Ctrl-C (SIGINT) mid-step ends the remote command; a second run on the same endpoint is
refused; a step that times out is killed on the target; a killed certpager leaves an
"outcome unknown" report for the next start."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.support.cli import CERTPAGER, audit_path, certpager_cli
from tests.support.e2e_stack import E2EStack
from tests.support.sshd import Sshd

pytestmark = pytest.mark.sshd

SLEEPY = """
name: sleepy
title: Sleep on the target
params:
  tag: {type: string}  # not "token": a parameter named like a secret is redacted everywhere
  seconds: {type: int, default: "300"}
  marker: {type: path, default: /dev/null}
steps:
  - id: nap
    title: Sleep
    script: 'echo started "$1"; sleep "$2"; echo done'
    args: ["{tag}", "{seconds}"]
    timeout: {timeout}
  - id: after
    run: [touch, "{marker}"]
"""


def records(env: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in audit_path(env).read_text().splitlines()]


def sleepy_setup(sshd: Sshd, env: dict[str, str], tmp_path: Path, timeout: int = 120) -> Path:
    user_dir = Path(env["XDG_CONFIG_HOME"]) / "certpager" / "runbooks"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "sleepy.yaml").write_text(SLEEPY.replace("{timeout}", str(timeout)))
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        f"""endpoints:
  - name: box
    host: 127.0.0.1
    port: 9
    ssh: {{host: 127.0.0.1, port: {sshd.port}, user: root, known_hosts: {sshd.known_hosts}, identity_files: [{sshd.client_key}]}}
"""
    )
    return config


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CERTPAGER, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60.0) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed:\n{''.join(seen)}")


@pytest.mark.nginx
def test_failing_nginx_test_stops_before_the_reload(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = web.served()
    (web.nginx_prefix / "tls-app.conf").write_text(
        "ssl_certificate /nonexistent/cert.pem;\nssl_certificate_key /nonexistent/key.pem;\n"
    )
    config = web.write_config(tmp_path / "endpoints.yaml")
    result = certpager_cli(
        ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--yes",
         "--param", f"reload_command={web.nginx_reload_command()}"],
        cli_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[2/3] reload" not in result.stdout and "[skipped] reload" in result.stdout
    assert "nginx-test" in result.stdout and "FAILED: exit 1" in result.stdout
    assert "cannot load certificate" in result.stdout  # nginx's own words, streamed
    recs = records(cli_env)
    kinds = [(r["type"], r.get("step_id")) for r in recs]
    assert ("step_intent", "reload") not in kinds and ("step_skipped", "reload") in kinds
    assert ("step_skipped", "verify") in kinds
    assert recs[-1]["outcome"] == "failed"
    assert "reconfiguring" not in web.nginx_log()  # the master never got a reload
    assert web.nginx_proc is not None and web.nginx_proc.poll() is None
    assert web.served() == before


def test_ctrl_c_mid_step_ends_the_remote_command(sshd: Sshd, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = sleepy_setup(sshd, cli_env, tmp_path)
    token = f"certpager-sigint-{secrets.token_hex(4)}"
    marker = tmp_path / "after-ran"
    args = ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", f"tag={token}"]
    proc = start([*args, "--param", f"marker={marker}"], cli_env)
    try:
        wait_for_line(proc, f"started {token}")
        assert sshd.processes_matching(token)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 130, out + err
    assert "cancelling the run" in err and "Run CANCELLED" in out
    assert sshd.processes_matching(token) == []
    print(f"\nSIGINT to certpager -> remote process gone, certpager exited in {elapsed:.2f} s")
    recs = records(cli_env)
    result = next(r for r in recs if r["type"] == "step_result" and r["step_id"] == "nap")
    assert result["outcome"] == "cancelled" and result["remote_state"] == "ended"
    assert ("step_skipped", "after") in [(r["type"], r.get("step_id")) for r in recs]
    assert recs[-1]["type"] == "run_end" and recs[-1]["outcome"] == "cancelled"
    assert not marker.exists()


def test_a_second_run_on_the_same_endpoint_is_refused(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = sleepy_setup(sshd, cli_env, tmp_path)
    token = f"certpager-lock-{secrets.token_hex(4)}"
    first = start(
        ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", f"tag={token}"], cli_env
    )
    try:
        wait_for_line(first, f"started {token}")
        second = certpager_cli(
            ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", "tag=x"], cli_env
        )
        assert second.returncode == 2
        assert (
            "(endpoint 'box'): another run is active, locked by user" in second.stderr
            and "runbook sleepy" in second.stderr
        )
        assert f"pid {first.pid}" in second.stderr
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        assert first.returncode == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
    third = certpager_cli(
        [
            "--config",
            str(config),
            "run",
            "sleepy",
            "--endpoint",
            "box",
            "--param",
            f"tag={token}",
            "--param",
            "seconds=0",
        ],
        cli_env,
    )
    assert third.returncode == 0, third.stdout + third.stderr


def test_step_timeout_kills_the_remote_command(sshd: Sshd, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = sleepy_setup(sshd, cli_env, tmp_path, timeout=2)
    token = f"certpager-timeout-{secrets.token_hex(4)}"
    result = certpager_cli(
        ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", f"tag={token}"], cli_env
    )
    assert result.returncode == 2
    assert "TIMEOUT: timed out after 2 s" in result.stdout
    assert sshd.processes_matching(token) == []
    step = next(r for r in records(cli_env) if r["type"] == "step_result" and r["step_id"] == "nap")
    assert step["outcome"] == "timeout" and step["remote_state"] == "ended"
    assert "gone on the target" in str(step["remote_note"])


def test_killed_certpager_leaves_an_outcome_unknown_report(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = sleepy_setup(sshd, cli_env, tmp_path, timeout=3)
    token = f"certpager-kill9-{secrets.token_hex(4)}"
    proc = start(
        ["--config", str(config), "run", "sleepy", "--endpoint", "box", "--param", f"tag={token}"], cli_env
    )
    try:
        wait_for_line(proc, f"started {token}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    # Nothing closed the record: the next start says so, once.
    nxt = certpager_cli(
        [
            "--config",
            str(config),
            "run",
            "sleepy",
            "--endpoint",
            "box",
            "--param",
            "tag=again",
            "--param",
            "seconds=0",
        ],
        cli_env,
    )
    assert nxt.returncode == 0, nxt.stderr
    assert "WARNING: outcome unknown: run" in nxt.stderr and "step(s) nap were about to run" in nxt.stderr
    again = certpager_cli(
        [
            "--config",
            str(config),
            "run",
            "sleepy",
            "--endpoint",
            "box",
            "--param",
            "tag=again",
            "--param",
            "seconds=0",
        ],
        cli_env,
    )
    assert "outcome unknown" not in again.stderr
    # The orphaned remote command was still ended by its remote guard (3 s + 5 s).
    for _ in range(40):
        if not sshd.processes_matching(token):
            break
        time.sleep(1)
    assert sshd.processes_matching(token) == []
