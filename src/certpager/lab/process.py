"""Start a child process, wait until it is ready, stop it by PID.

The one implementation the demo, the test servers (nginx, sshd, pebble) and the
benchmark share:

- :func:`spawn`: start ``argv`` with stdin on /dev/null (or a pipe) and its output
  appended to a log file;
- :func:`wait_ready`: poll a readiness predicate until a deadline, giving up at once
  when the child exits;
- :func:`spawn_pty`: the same on a new pseudo-terminal (stdin, stdout and stderr);
- :func:`stop` / :func:`stop_all`: SIGTERM, SIGKILL after a grace period, reap;
- :func:`signal_group` / :func:`stop_group`: the same for a child started in its
  own session (an asyncio subprocess whose own children must go too);
- :class:`Started`: the ``with`` protocol of anything with ``start``/``stop`` (servers,
  daemons, stacks): entering starts it unless it runs already, leaving always stops it.

Only the processes passed in are signalled, by their PID (or the process group
whose leader that PID is).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import pty
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

POLL_INTERVAL = 0.05
"""Seconds between two readiness checks."""

STOP_GRACE = 5.0
"""Default seconds between SIGTERM and SIGKILL."""


def spawn(
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv``; its stderr (and stdout unless ``stdout`` is given) go to ``log``
    (appended; inherited when None). ``new_session``: its own session, so a terminal's
    Ctrl-C reaches only the caller, which stops the child itself."""
    with contextlib.ExitStack() as stack:
        out: int | IO[bytes] | None = None
        if log is not None:
            out = stack.enter_context(log.open("ab"))
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=out if stdout is None else stdout,
            stderr=out,
            env=env,
            start_new_session=new_session,
            close_fds=True,
        )


def spawn_pty(
    argv: Sequence[str], *, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` on a new pseudo-terminal; returns the child and the master end's fd
    (the caller reads and writes it and closes it after :func:`stop`)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(list(argv), env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return proc, master


def wait_ready(
    proc: subprocess.Popen[bytes] | None,
    ready: Callable[[], bool],
    timeout: float,
    interval: float = POLL_INTERVAL,
) -> bool:
    """Poll ``ready()`` until it holds (True), ``proc`` exits or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return False
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether ``host:port`` accepts a TCP connection now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def ports_accepting(ports: Iterable[int], host: str = "127.0.0.1") -> Callable[[], bool]:
    """A readiness predicate for :func:`wait_ready`: every port in ``ports`` has accepted once."""
    pending = set(ports)

    def ready() -> bool:
        for port in sorted(pending):
            if port_accepts(port, host):
                pending.discard(port)
        return not pending

    return ready


def stop(proc: subprocess.Popen[bytes] | None, grace: float = STOP_GRACE) -> bool:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds, reap it. True if it had to be killed."""
    return stop_all([] if proc is None else [proc], grace)


def stop_all(procs: Sequence[subprocess.Popen[bytes]], grace: float = STOP_GRACE) -> bool:
    """:func:`stop` for several processes: SIGTERM them all (last started first), then reap
    each, SIGKILLing those still running after ``grace``. True if any had to be killed."""
    killed = False
    for proc in reversed(procs):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    for proc in reversed(procs):
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            killed = True
            proc.wait(grace)
    return killed


def signal_group(pid: int, number: int) -> None:
    """Send ``number`` to the process group led by ``pid`` (a child started in its own
    session); nothing when it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)


async def stop_group(proc: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """TERM the process group of ``proc`` (started with ``start_new_session``), KILL it
    after ``grace`` seconds, reap ``proc``; then KILL whatever is left in the group."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    # Whatever else is left in the group (children that ignored TERM).
    signal_group(proc.pid, signal.SIGKILL)


class Started(abc.ABC):
    """``with thing as t:`` starts ``thing`` (unless :meth:`running`) and always stops it."""

    def running(self) -> bool:
        """Whether it was started and not stopped since (subclasses say; False: always start)."""
        return False

    @abc.abstractmethod
    def start(self) -> object:
        """Start it."""

    @abc.abstractmethod
    def stop(self) -> object:
        """Stop it."""

    def __enter__(self) -> Self:
        if not self.running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = [
    "POLL_INTERVAL",
    "STOP_GRACE",
    "Started",
    "port_accepts",
    "ports_accepting",
    "signal_group",
    "spawn",
    "spawn_pty",
    "stop",
    "stop_all",
    "stop_group",
    "wait_ready",
]
