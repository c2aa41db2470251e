"""Start and stop the lab child process, and prove nothing is left behind.

:class:`LabProcess` creates the lab dir (``mkdtemp``), starts
``python -m certpager.demo.lab`` in its own session with a pipe on its stdin,
waits for its ready line, and on :meth:`LabProcess.stop` ends it by PID
(stdin EOF + SIGTERM, SIGKILL after a grace period), kills any command the
lab's SSH host left running (by PID, only if it carries this lab's marker in
its environment), and removes the dir. If this process dies without stopping
it, the lab sees EOF on its stdin (or Linux's parent-death signal) and cleans
up after itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from certpager.demo.info import LAB_ENV, LabInfo
from certpager.errors import LabError as LabError
from certpager.lab import process

START_TIMEOUT = 30.0
"""Seconds the lab may take to get ready (generous: a loaded CI box)."""

STOP_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when stopping the lab."""


@dataclass
class StopReport:
    """What :meth:`LabProcess.stop` did."""

    pid: int | None = None
    """The lab process."""
    exit_code: int | None = None
    """Its exit status (negative: killed by that signal)."""
    killed: bool = False
    """It had to be SIGKILLed."""
    leftover_commands: list[int] = field(default_factory=list)
    """PIDs of SSH commands still running after the lab ended, killed here."""
    dir_removed: bool = False
    """The lab dir is gone."""


class LabProcess(process.Started):
    """The lab as a child process. Use as a context manager or call start/stop."""

    def __init__(
        self,
        *,
        base_dir: str | None = None,
        start_timeout: float = START_TIMEOUT,
        python: str | None = None,
    ):
        self.base_dir = base_dir
        """Parent of the lab dir; None means the system temp dir."""
        self.python = python or sys.executable
        """Interpreter that runs the lab (this one by default)."""
        self.start_timeout = start_timeout
        """Seconds to wait for the ready line."""
        self.dir: Path | None = None
        """The lab dir, once created."""
        self.proc: subprocess.Popen[bytes] | None = None
        """The lab process."""
        self.info: LabInfo | None = None
        """What the lab reported when ready."""
        self.startup_seconds: float | None = None
        """Wall-clock seconds from spawn to ready, measured here."""
        self.log_tail = ""
        """Last lines of the lab's log, kept when it failed."""
        self._stopped = False
        self._t0 = 0.0

    @property
    def pid(self) -> int | None:
        """PID of the lab process."""
        return self.proc.pid if self.proc else None

    def start(self) -> LabInfo:
        """Spawn the lab and wait until it is ready; raise :class:`LabError` if it is not."""
        self.spawn()
        return self.wait_ready()

    def spawn(self) -> None:
        """Create the lab dir and start the lab process (returns at once; see :meth:`wait_ready`)."""
        self._t0 = time.monotonic()
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="certpager-demo-", dir=self.base_dir))
        except OSError as exc:
            where = self.base_dir or tempfile.gettempdir()
            raise LabError(
                f"the fire-drill lab did not start: cannot create its directory in {where}: "
                f"{exc.strerror or exc}"
            ) from None
        log_path = self.dir / "lab.log"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.proc = process.spawn(
                [self.python, "-m", "certpager.demo.lab", "--dir", str(self.dir)],
                log=log_path,
                env=env,
                new_session=True,  # terminal signals go to us; we stop it by PID
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            self.stop()
            raise LabError(f"the fire-drill lab did not start: cannot run {self.python}: {exc}") from None

    def wait_ready(self) -> LabInfo:
        """Wait for the ready line of a spawned lab; on failure stop it and raise :class:`LabError`."""
        if self.info is not None:
            return self.info
        if self.proc is None:
            raise LabError("the fire-drill lab was not started")
        try:
            line = self._read_ready_line()
            self.info = LabInfo.from_json(json.loads(line))
        except (LabError, ValueError, TypeError) as exc:
            self.log_tail = self.read_log_tail()
            self.stop()
            detail = f"{exc}"
            if self.log_tail:
                detail += f"; its log ends with: {self.log_tail}"
            raise LabError(f"the fire-drill lab did not start: {detail}") from None
        self.startup_seconds = time.monotonic() - self._t0
        return self.info

    def _read_ready_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(f"not ready after {self.start_timeout:g} s")
                if not sel.select(min(left, 0.5)):
                    if self.proc.poll() is not None:
                        raise LabError(f"the lab process exited with status {self.proc.returncode}")
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise LabError(f"the lab process exited with status {self.proc.wait(5)}")
                buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace")

    def read_log_tail(self) -> str:
        """The last lines of the lab's log, joined with `` | `` ("" when there is none)."""
        if self.dir is None:
            return ""
        try:
            lines = (self.dir / "lab.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def alive(self) -> bool:
        """Whether the lab process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the lab to exit; its status, or None if still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = STOP_GRACE) -> StopReport:
        """End the lab by PID, kill leftover commands, remove the dir. Idempotent."""
        report = StopReport(pid=self.pid)
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                report.killed = process.stop(proc, grace)
            report.exit_code = proc.returncode
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self.dir is not None:
            report.leftover_commands = self._kill_leftover_commands()
            shutil.rmtree(self.dir, ignore_errors=True)
            report.dir_removed = not self.dir.exists()
        self._stopped = True
        return report

    def _kill_leftover_commands(self) -> list[int]:
        """Kill SSH commands the lab recorded and did not end (only if the lab was SIGKILLed)."""
        assert self.dir is not None
        killed: list[int] = []
        pid_dir = self.dir / "run" / "commands"
        if not pid_dir.is_dir():
            return killed
        marker = f"{LAB_ENV}={self.dir.resolve()}".encode()
        for entry in pid_dir.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue  # gone already (or not ours to read)
            if marker not in environ.split(b"\0"):
                continue  # PID reused by an unrelated process: leave it alone
            process.signal_group(pid, signal.SIGKILL)
            killed.append(pid)
        return killed
