"""``certpager run``: the plan view, bad input (exit 3, one line, no traceback), headless
confirmation rules, and precedence of parameters. Nothing here opens a connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from certpager.__main__ import main

CONFIG = {
    "endpoints": [
        {
            "name": "app",
            "host": "127.0.0.1",
            "port": 9,
            "sni": "app.test",
            "tags": ["certbot", "nginx"],
            "ssh": {
                "host": "127.0.0.1",
                "port": 9,
                "user": "deploy",
                "known_hosts": "/nonexistent/known_hosts",
            },
            "params": {"reload_command": "nginx -s reload", "cert_name": "from-config"},
        },
        {"name": "bare", "host": "127.0.0.1", "port": 9, "tags": ["nginx"]},
        {"name": "k8s", "host": "127.0.0.1", "port": 9, "tags": ["web"], "ssh": "local"},
    ]
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("config", "data", "state"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("CERTPAGER_AUDIT_LOG", raising=False)
    config = tmp_path / "endpoints.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return config


class NoTerminal:
    """stdin that is not a terminal."""

    def isatty(self) -> bool:
        return False


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), "run", *args])


def test_plan_prints_every_command_with_host_and_user_and_touches_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = run(env, "certbot-force-renew", "--endpoint", "app", "--plan", "--param", "cert_name=cli.example")
    out = capsys.readouterr().out
    assert code == 0
    assert "Target deploy@127.0.0.1:9" in out
    assert (
        "$ certbot renew --non-interactive --force-renewal --no-random-sleep-on-renew --cert-name cli.example"
        in out
    )
    assert "$ nginx -t" in out and "$ nginx -s reload" in out
    assert "asks you to type 'app' first" in out and "nothing has run" in out
    assert "cert_name      = cli.example  (--param)" in out
    assert "reload_command = nginx -s reload  (endpoint app params)" in out
    assert "nginx_test     = nginx -t  (default)" in out
    assert not (tmp_path / "data" / "certpager").exists()  # no audit log written
    assert not (tmp_path / "state" / "certpager").exists()  # no lock taken


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["certbot-force-renew", "--endpoint", "app", "--param", "cert_name=--all"],
            "params.cert_name: value '--all' from --param starts with '-'",
        ),
        (["certbot-force-renew", "--endpoint", "app", "--param", "nope=1"], "unknown parameter 'nope'"),
        (["certbot-force-renew", "--endpoint", "app", "--param", "novalue"], "expected NAME=VALUE"),
        (
            ["certbot-force-renew", "--endpoint", "ghost"],
            "no endpoint named 'ghost' (endpoints: app, bare, k8s)",
        ),
        (["no-such-runbook", "--endpoint", "app"], "no runbook named 'no-such-runbook'"),
        (["certbot-force-renew"], "--endpoint NAME is required"),
        (["nginx-reload", "--endpoint", "bare", "--plan"], "has no ssh target"),
        (["cert-manager-reissue", "--endpoint", "k8s", "--plan"], "does not apply to endpoint k8s"),
        (
            ["certbot-force-renew", "--endpoint", "app", "--confirm", "wrong"],
            "--confirm 'wrong' does not match",
        ),
        (["certbot-force-renew", "--endpoint", "app"], "refusing to run without a terminal"),
        (["certbot-force-renew", "--endpoint", "app", "--yes"], "needs the typed name 'app' (--confirm app)"),
        (["certbot-force-renew", "--endpoint", "app", "--confirm", "app"], "step reload needs a yes (--yes)"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(
    env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragment: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", NoTerminal())
    code = run(env, *args)
    err = capsys.readouterr().err
    assert code == 3, err
    assert fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_runbook_file_names_file_line_key(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: mine\ntitle: t\nsteps:\n  - id: a\n    run: [echo, '{nope}']\n")
    assert run(env, str(bad), "--endpoint", "app", "--plan") == 3
    err = capsys.readouterr().err
    assert f"{bad}:5: steps[0].run[1]: unknown variable {{nope}}" in err


def test_bad_config_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text("endpoints:\n  - name: app\n    hots: x\n")
    assert run(config, "nginx-reload", "--endpoint", "app") == 3
    assert "endpoints.yaml:2: endpoints[0].host: is required" in capsys.readouterr().err


def test_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "--list") == 0
    out = capsys.readouterr().out
    for name in ("certbot-force-renew", "nginx-reload", "certbot-dry-run", "cert-manager-reissue"):
        assert name in out
    assert run(env, "--list", "--endpoint", "bare") == 0
    out = capsys.readouterr().out
    assert "nginx-reload" in out and "certbot-force-renew" not in out


def test_user_runbook_overrides_shipped_one(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    user = tmp_path / "config" / "certpager" / "runbooks"
    user.mkdir(parents=True)
    (user / "nginx-reload.yaml").write_text(
        "name: nginx-reload\ntitle: Mine\nsteps:\n  - id: a\n    run: [echo, mine]\n"
    )
    assert run(env, "nginx-reload", "--endpoint", "app", "--plan") == 0
    assert "$ echo mine" in capsys.readouterr().out


def test_real_subprocess_never_prints_a_traceback(env: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "certpager",
            "--config",
            str(env),
            "run",
            "certbot-force-renew",
            "--endpoint",
            "app",
            "--param",
            "cert_name=a;b",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
        },
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("certpager: ") and "Traceback" not in proc.stderr
    assert "params.cert_name" in proc.stderr and "certificate name" in proc.stderr
