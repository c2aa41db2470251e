"""The demo keeps all of its state in its lab directory: a drill (lab up, a runbook run the
way the demo's hints say, lab stopped) leaves HOME and the XDG directories empty; its run
lock is in the lab. ``certpager demo --config FILE`` is refused (exit 3)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.demo.support import DEADLINE, wait_until

CERTPAGER = [sys.executable, "-m", "certpager"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CERTPAGER_", "SSH_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_a_drill_leaves_home_and_xdg_dirs_empty(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    err_log = tmp_path / "demo.err"
    with err_log.open("wb") as err:
        demo = subprocess.Popen(
            [*CERTPAGER, "demo", "--no-tui"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            assert demo.stdout is not None
            config = demo.stdout.readline().decode().strip()
            assert config.endswith("endpoints.yaml"), err_log.read_text()
            assert wait_until(lambda: "certpager --config" in err_log.read_text(), DEADLINE)
            # The run the demo suggests, as printed (plus answers for its confirmations).
            hint = next(
                line.strip() for line in err_log.read_text().splitlines() if "certpager --config" in line
            )
            words = shlex.split(hint)
            args = words[words.index("certpager") + 1 :]
            endpoint = args[args.index("--endpoint") + 1]
            done = subprocess.run(
                [*CERTPAGER, *args, "--yes", "--confirm", endpoint],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            lab_dir = Path(config).parent
            assert list((lab_dir / "locks").glob("*.lock")), "the drill run's lock is not in the lab"
            assert (lab_dir / "audit.jsonl").is_file()
        finally:
            demo.send_signal(signal.SIGTERM)
            demo.communicate(timeout=120)
    assert demo.returncode == 0, err_log.read_text()
    assert not lab_dir.exists()
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


def test_demo_refuses_config(tmp_path: Path) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text("endpoints: []\n")
    for args in (["demo", "--config", str(config)], ["--config", str(config), "demo", "--no-tui"]):
        done = subprocess.run(
            [*CERTPAGER, *args],
            env=_env(tmp_path),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3
        assert done.stdout == ""
        assert re.fullmatch(r"certpager demo: --config is not used by the demo .*\n", done.stderr)


def test_the_lab_environment_is_restored_when_the_lab_stops(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In one process, after the demo returns, CERTPAGER_AUDIT_LOG/CERTPAGER_LOCK_DIR are what
    they were: nothing goes on writing audit records or locks into the removed lab."""
    import argparse

    from certpager.demo import cli as demo_cli

    monkeypatch.setenv("CERTPAGER_LOCK_DIR", "/operator/locks")
    monkeypatch.delenv("CERTPAGER_AUDIT_LOG", raising=False)
    seen: dict[str, str | None] = {}

    def stop_at_once(lab: object) -> int:
        seen["lock"] = os.environ.get("CERTPAGER_LOCK_DIR")
        seen["audit"] = os.environ.get("CERTPAGER_AUDIT_LOG")
        return 0

    monkeypatch.setattr(demo_cli, "_wait_for_stop", stop_at_once)
    code = demo_cli.run_demo(argparse.Namespace(no_tui=True, audit_log=None, config=None))
    assert code == 0
    # While the lab ran, both pointed into it ...
    assert seen["lock"] is not None and "certpager-demo-" in seen["lock"]
    assert seen["audit"] is not None and "certpager-demo-" in seen["audit"]
    lab_dir = Path(seen["lock"]).parent
    # ... and afterwards they are restored, and the lab is gone for good.
    assert os.environ.get("CERTPAGER_LOCK_DIR") == "/operator/locks"
    assert "CERTPAGER_AUDIT_LOG" not in os.environ
    assert not lab_dir.exists()
