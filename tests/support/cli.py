"""Run the real ``certpager`` CLI as a subprocess (plain pipes or a pseudo-terminal).

- :func:`certpager_cli` and :func:`run_in_pty` run it; :class:`CliResult` is what they return.
- :func:`audit_path`: the audit log a run with a ``cli_env`` environment writes.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from certpager.lab import process

__all__ = ["CERTPAGER", "CliResult", "audit_path", "certpager_cli", "run_in_pty"]

CERTPAGER = [sys.executable, "-m", "certpager"]


def isolated_env(home: Path, lock_dir: Path | None = None) -> dict[str, str]:
    """Environment for a ``certpager`` subprocess: private HOME/XDG dirs under ``home``, no SSH
    agent, no colour, no inherited audit log; run locks in ``lock_dir`` (default
    ``home/locks``), never the machine-wide directory."""
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
        CERTPAGER_LOCK_DIR=str(lock_dir if lock_dir is not None else home / "locks"),
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
    started = time.monotonic()
    proc, master = process.spawn_pty([*CERTPAGER, *args], env=env)
    out = bytearray()
    pending = list(answers)
    try:
        _converse(proc, master, out, pending, timeout)
        proc.wait(30)
    finally:
        process.stop(proc, 5)
        os.close(master)
    if pending:
        raise AssertionError(f"prompts never shown: {pending}\n{out.decode(errors='replace')}")
    return CliResult(proc.returncode or 0, out.decode(errors="replace"), "", time.monotonic() - started)


def _converse(
    proc: subprocess.Popen[bytes], master: int, out: bytearray, pending: list[tuple[str, str]], timeout: float
) -> None:
    """Collect the terminal's output into ``out`` until the child exits, answering
    ``pending`` prompts (removed as answered); AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    searched = 0
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"certpager did not finish in {timeout} s:\n{out.decode(errors='replace')}")
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk and proc.poll() is not None:
                return
            out.extend(chunk)
        elif proc.poll() is not None:
            return
        text = out.decode(errors="replace")
        if pending and re.search(pending[0][0], text[searched:]):
            searched = len(text)
            os.write(master, (pending.pop(0)[1] + "\n").encode())
