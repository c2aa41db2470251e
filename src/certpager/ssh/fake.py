"""An in-memory :class:`~certpager.ssh.base.CommandRunner` for unit tests of runbook logic.

Never the only test of an integration: the real ones run against OpenSSH sshd.

Example::

    runner = FakeRunner({"nginx -t": FakeResponse(stderr="emerg", exit_status=1)})
    ...
    assert runner.commands == ["nginx -t"]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from certpager.errors import SSHError
from certpager.ssh.base import (
    CommandResult,
    ConnectionInfo,
    LineSplitter,
    OutputCallback,
    RemoteState,
)


@dataclass(frozen=True)
class FakeResponse:
    """What a fake command does."""

    stdout: str = ""
    """Text written to stdout (split into lines)."""
    stderr: str = ""
    """Text written to stderr."""
    exit_status: int | None = 0
    """Exit status (None with ``exit_signal``)."""
    exit_signal: str | None = None
    """Signal that killed it."""
    delay: float = 0.0
    """Seconds before it exits."""
    hang: bool = False
    """Never exit on its own (until timeout or cancel)."""
    error: str | None = None
    """A transport failure to report (e.g. connection dropped)."""
    remote_state: RemoteState = RemoteState.ENDED
    """Remote state to report after a timeout, cancel or error."""


Responder = Mapping[str, FakeResponse] | Callable[[str], FakeResponse]


class FakeRunner:
    """Records commands and answers them from a table or a function."""

    def __init__(
        self,
        responses: Responder | None = None,
        *,
        files: Mapping[str, bytes] | None = None,
        info: ConnectionInfo | None = None,
        connect_error: Exception | None = None,
    ):
        """Args:
        responses: ``{substring: FakeResponse}`` (first key contained in the command wins)
            or a function of the command; default: exit 0 with no output.
        files: contents returned by :meth:`read_file`.
        info: what :meth:`connect` returns.
        connect_error: raised by :meth:`connect` instead.
        """
        self.responses = responses or {}
        self.files = dict(files or {})
        """Files :meth:`read_file` can read."""
        self.info = info or ConnectionInfo(
            host="fake.example",
            port=22,
            user="root",
            address="127.0.0.1",
            host_key_fingerprint="SHA256:fakefakefakefakefakefakefakefakefakefakefak",
            host_key_type="ssh-ed25519",
        )
        """Connection facts reported by :meth:`connect`."""
        self.connect_error = connect_error
        self.commands: list[str] = []
        """Every command run, in order."""
        self.stdin: list[bytes | None] = []
        """The stdin given to each command."""
        self.connects = 0
        """How many times :meth:`connect` was called."""
        self.closed = False
        """Whether :meth:`close` was called."""

    @property
    def label(self) -> str:
        """``user@host:port``."""
        return f"{self.info.user}@{self.info.host}:{self.info.port}"

    async def connect(self) -> ConnectionInfo:
        """Return :attr:`info`, or raise :attr:`connect_error`."""
        self.connects += 1
        if self.connect_error is not None:
            raise self.connect_error
        return self.info

    def wire_command(self, command: str, timeout: float) -> str:
        """The command itself."""
        return command

    def _response(self, command: str) -> FakeResponse:
        if callable(self.responses):
            return self.responses(command)
        for key, response in self.responses.items():
            if key in command:
                return response
        return FakeResponse()

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Play the matching :class:`FakeResponse`."""
        await self.connect()
        self.commands.append(command)
        self.stdin.append(stdin)
        response = self._response(command)
        started = time.monotonic()
        totals = _play_output(response, on_output)
        timed_out, cancelled = await _wait(response, timeout, cancel)
        if timed_out or cancelled:
            return CommandResult(
                exit_status=None,
                exit_signal="TERM",
                duration=time.monotonic() - started,
                stdout_bytes=totals[0],
                stderr_bytes=totals[1],
                timed_out=timed_out,
                cancelled=cancelled,
                remote_state=response.remote_state,
                remote_note="fake",
            )
        return CommandResult(
            exit_status=response.exit_status,
            exit_signal=response.exit_signal,
            duration=time.monotonic() - started,
            stdout_bytes=totals[0],
            stderr_bytes=totals[1],
            error=response.error,
            remote_state=response.remote_state if response.error else RemoteState.ENDED,
        )

    async def read_file(self, path: str, *, max_bytes: int = 1 << 20) -> bytes:
        """Return ``files[path]`` or raise ``SSHError``."""
        await self.connect()
        if path not in self.files:
            raise SSHError(f"{self.label}: {path}: no such file")
        return self.files[path]

    async def close(self) -> None:
        """Mark closed."""
        self.closed = True


def _play_output(response: FakeResponse, on_output: OutputCallback | None) -> tuple[int, int]:
    """Send the response's stdout and stderr to ``on_output`` line by line; their sizes."""
    out = LineSplitter("stdout", on_output)
    err = LineSplitter("stderr", on_output)
    out.feed(response.stdout.encode())
    err.feed(response.stderr.encode())
    out.close()
    err.close()
    return out.total, err.total


async def _wait(response: FakeResponse, timeout: float, cancel: asyncio.Event | None) -> tuple[bool, bool]:
    """``(timed out, cancelled)`` for a response that hangs or takes ``delay`` seconds."""
    if not (response.hang or response.delay):
        return False, False
    wait = None if response.hang else response.delay
    cancel_task = asyncio.ensure_future((cancel or asyncio.Event()).wait())
    try:
        done, _ = await asyncio.wait({cancel_task}, timeout=min(x for x in (wait, timeout) if x is not None))
    finally:
        cancel_task.cancel()
    if cancel_task in done:
        return False, True
    return wait is None or wait > timeout, False
