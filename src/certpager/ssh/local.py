"""Run commands on this machine (an SSH target of ``local``).

The command runs under ``/bin/sh -c`` in a new session (its own process group),
with stdin at EOF. On timeout or cancel the whole group gets TERM, then KILL
after :data:`~certpager.ssh.base.KILL_GRACE` seconds, and the runner proves the
group is gone. The environment is certpager's own (unlike SSH, which starts clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shlex
import signal
import time
from pathlib import Path

from certpager.errors import SSHError
from certpager.ssh.base import (
    KILL_GRACE,
    CommandResult,
    ConnectionInfo,
    LineSplitter,
    OutputCallback,
    RemoteState,
    drain,
    pump,
    wait_for_end,
)


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is in group ``pgid`` (orphans re-parented to PID 1
    may stay zombies for a while; they are not running)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


async def _start(command: str, stdin: bytes | None) -> asyncio.subprocess.Process:
    """``/bin/sh -c command`` in a new session (its own process group), ``stdin`` written
    and closed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise SSHError(f"cannot start /bin/sh: {exc.strerror}") from None
    assert proc.stdin is not None
    if stdin:
        proc.stdin.write(stdin)
    with contextlib.suppress(OSError):
        await proc.stdin.drain()
    proc.stdin.close()
    return proc


def _exit(code: int | None) -> tuple[int | None, str | None]:
    """``(exit status, signal name)`` from a return code (negative: killed by that signal)."""
    if code is None or code >= 0:
        return code, None
    signal_name: str | None = None
    with contextlib.suppress(ValueError):
        signal_name = signal.Signals(-code).name.removeprefix("SIG")
    return None, signal_name


class LocalRunner:
    """A :class:`~certpager.ssh.base.CommandRunner` for commands on this machine."""

    def __init__(self) -> None:
        try:
            self._user = getpass.getuser()
        except (KeyError, OSError):
            self._user = str(os.getuid())

    @property
    def label(self) -> str:
        """``local``."""
        return "local"

    @property
    def user(self) -> str:
        """The local user commands run as."""
        return self._user

    async def connect(self) -> ConnectionInfo:
        """Nothing to connect; describes this machine."""
        return ConnectionInfo(
            host="local", port=0, user=self._user, address=None, host_key_fingerprint=None, local=True
        )

    def wire_command(self, command: str, timeout: float) -> str:
        """The exact argv executed, as a shell string."""
        return shlex.join(["/bin/sh", "-c", command])

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` locally; see :class:`~certpager.ssh.base.CommandRunner`."""
        started = time.monotonic()
        proc = await _start(command, stdin)
        assert proc.stdout is not None and proc.stderr is not None
        out = LineSplitter("stdout", on_output)
        err = LineSplitter("stderr", on_output)
        pumps = [asyncio.ensure_future(pump(proc.stdout, out)), asyncio.ensure_future(pump(proc.stderr, err))]
        exited = asyncio.ensure_future(proc.wait())
        ending = await wait_for_end(
            exited, timeout=timeout, cancel=cancel, terminate=lambda: self._terminate(proc.pid, exited)
        )
        await drain(pumps)
        status, signal_name = _exit(proc.returncode)
        return CommandResult(
            exit_status=status,
            exit_signal=signal_name,
            duration=time.monotonic() - started,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            timed_out=ending.timed_out,
            cancelled=ending.cancelled,
            remote_state=ending.remote_state,
            remote_note=ending.note,
        )

    async def _terminate(self, pgid: int, exited: asyncio.Future[int]) -> tuple[RemoteState, str]:
        for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if exited.done() and not _group_alive(pgid):
                    return RemoteState.ENDED, f"process group {pgid} is gone"
                await asyncio.sleep(0.05)
        if not _group_alive(pgid):
            return RemoteState.ENDED, f"process group {pgid} is gone"
        return RemoteState.UNKNOWN, f"process group {pgid} survived SIGKILL"

    async def read_file(self, path: str, *, max_bytes: int = 1 << 20) -> bytes:
        """Read a local file (at most ``max_bytes``)."""
        try:
            data = await asyncio.to_thread(_read_head, Path(path), max_bytes + 1)
        except FileNotFoundError:
            raise SSHError(f"local: {path}: no such file") from None
        except OSError as exc:
            raise SSHError(f"local: {path}: {exc.strerror}") from None
        if len(data) > max_bytes:
            raise SSHError(f"local: {path}: larger than {max_bytes} bytes, not a certificate")
        return data

    async def close(self) -> None:
        """Nothing to close."""
