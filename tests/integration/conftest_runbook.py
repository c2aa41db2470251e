"""Fixtures for the runbook/SSH integration tests (imported explicitly by those test files).

- ``sshd``: a real OpenSSH sshd on a random loopback port (its own host key, pinned known_hosts).
- ``web``: nginx serving app.test with a 2-day certificate + sshd (no ACME).
- ``e2e``: the full stack: nginx + pebble + a certbot lineage whose current
  certificate expires in 2 days + sshd.
- ``cli_env``: environment for ``certpager`` subprocesses (private HOME and XDG dirs, run
  locks in the test's own directory).
- :func:`certpager_cli` and :func:`run_in_pty` run the real CLI as a subprocess.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.e2e_stack import E2EStack
from tests.support.sshd import Sshd

__all__ = ["CliResult", "certpager_cli", "cli_env", "e2e", "run_in_pty", "sshd", "web"]

CERTPAGER = [sys.executable, "-m", "certpager"]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real sshd for root@127.0.0.1 with key auth."""
    server = Sshd(tmp_path / "ssh").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[E2EStack]:
    """nginx (2-day certificate from a legacy CA) + sshd."""
    stack = E2EStack(tmp_path / "stack", with_pebble=False)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2EStack]:
    """nginx + pebble + certbot lineage (2 days left) + sshd."""
    stack = E2EStack(tmp_path / "stack", with_pebble=True)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``certpager`` subprocesses: private HOME/XDG dirs, no agent, no colour."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_AUTH_SOCK", "SSH_AGENT", "XDG_"))}
    for sub in ("config", "data", "state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        CERTPAGER_LOCK_DIR=str(tmp_path / "locks"),  # not the machine-wide /run/lock/certpager
    )
    env.pop("CERTPAGER_AUDIT_LOG", None)
    return env


def audit_path(env: dict[str, str]) -> Path:
    """The audit log a CLI run with ``env`` writes."""
    return Path(env["XDG_DATA_HOME"]) / "certpager" / "audit.jsonl"


@dataclass
class CliResult:
    """A finished CLI subprocess."""

    returncode: int
    """Exit code."""
    stdout: str
    """Standard output."""
    stderr: str
    """Standard error."""
    seconds: float
    """Wall time."""


def certpager_cli(args: list[str], env: dict[str, str], *, timeout: float = 300.0) -> CliResult:
    """Run ``certpager ARGS`` with stdin at EOF (no terminal)."""
    started = time.monotonic()
    proc = subprocess.run(
        [*CERTPAGER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def run_in_pty(
    args: list[str], env: dict[str, str], answers: list[tuple[str, str]], *, timeout: float = 300.0
) -> CliResult:
    """Run ``certpager ARGS`` on a pseudo-terminal; answer each prompt matching a regex in order.

    The output (stdout and stderr share the terminal) is returned in ``stdout``.
    """
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CERTPAGER, *args], env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    pending = list(answers)
    searched = 0
    try:
        while True:
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"certpager did not finish in {timeout} s:\n{out.decode(errors='replace')}"
                )
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out.extend(chunk)
            elif proc.poll() is not None:
                break
            text = out.decode(errors="replace")
            if pending and re.search(pending[0][0], text[searched:]):
                searched = len(text)
                os.write(master, (pending.pop(0)[1] + "\n").encode())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        os.close(master)
    if pending:
        raise AssertionError(f"prompts never shown: {pending}\n{out.decode(errors='replace')}")
    return CliResult(proc.returncode or 0, out.decode(errors="replace"), "", time.monotonic() - started)
