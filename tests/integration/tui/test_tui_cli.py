"""``certpager`` without a subcommand: bad input is one line and exit 3, before the app starts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from certpager.errors import ConfigError
from certpager.tui import cli


def run(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_home), "XDG_CONFIG_HOME": str(env_home / ".config")}
    return subprocess.run(
        [sys.executable, "-m", "certpager", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
    )


def test_missing_config_is_one_line_and_exit_3(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nope.yaml"), env_home=tmp_path)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "nope.yaml" in result.stderr and "certpager demo" in result.stderr
    assert "\x1b[" not in result.stdout  # the app never started


def test_default_config_path_is_used(tmp_path: Path) -> None:
    result = run(env_home=tmp_path)
    assert result.returncode == 3
    assert str(tmp_path / ".config" / "certpager" / "endpoints.yaml") in result.stderr


def test_invalid_config_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text("endpoints:\n  - name: a\n    host: a.example\n    port: 99999\n")
    result = run("--config", str(config), env_home=tmp_path)
    assert result.returncode == 3
    assert f"{config}:4" in result.stderr and "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_tui_raises_before_the_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        cli.run_tui(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError):
        cli.main(argparse.Namespace(config=str(tmp_path / "missing.yaml"), readonly=True))
