"""``certpager`` as a real process in a pseudo-terminal: send keys, wait for text, send signals.

Waiting is bounded (a hang fails the test with what the screen last showed); nothing
here measures speed. The screen is read from the raw output with escape sequences
removed, which keeps every run of text Textual writes in one piece (a title, a label).
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

_ESCAPE = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])")

KEYS = {"enter": b"\r", "escape": b"\x1b", "down": b"\x1b[B", "tab": b"\t"}


class PtyApp:
    """One ``certpager`` process on a pty of a given size."""

    def __init__(self, args: list[str], *, env: Mapping[str, str], size: tuple[int, int] = (80, 24)):
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "certpager", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.raw = bytearray()
        """Everything the process wrote."""
        self._seen = 0

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the process closed the pty
                data = b""
            self.raw.extend(data)

    def text(self) -> str:
        """The output so far, escape sequences removed."""
        return _ESCAPE.sub(b"", bytes(self.raw)).decode("utf-8", "replace")

    def wait_for(self, needle: str, *, bound: float = 60.0) -> None:
        """Read until ``needle`` appears in the output written since the last wait."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if needle in _ESCAPE.sub(b"", bytes(self.raw[self._seen :])).decode("utf-8", "replace"):
                self._seen = len(self.raw)
                return
            if self.proc.poll() is not None:
                break
            self._read(0.1)
        raise AssertionError(f"{needle!r} never appeared; the screen showed:\n{self.text()[-3000:]}")

    def press(self, *keys: str) -> None:
        """Type keys (names from :data:`KEYS` or literal text)."""
        for key in keys:
            os.write(self.master, KEYS.get(key, key.encode()))
            self._read(0.05)

    def signal_and_wait(self, signum: int, bound: float) -> int | None:
        """Send ``signum``; the exit code if the process ended within ``bound`` seconds, else None."""
        self.proc.send_signal(signum)
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            self._read(0.05)
        return None

    def close(self) -> None:
        """Kill the process if it is still there (by its own PID) and close the pty."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            while True:
                ready, _, _ = select.select([self.master], [], [], 0)
                if not ready or not os.read(self.master, 65536):
                    break
        os.close(self.master)


@contextlib.contextmanager
def running(args: list[str], *, env: Mapping[str, str], size: tuple[int, int] = (80, 24)) -> Iterator[PtyApp]:
    """A :class:`PtyApp`, always closed."""
    app = PtyApp(args, env=env, size=size)
    try:
        yield app
    finally:
        app.close()


def base_env(home: Path) -> dict[str, str]:
    """A clean environment for the process: its own HOME and XDG dirs, a real TERM."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".state"),
        "XDG_DATA_HOME": str(home / ".data"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
