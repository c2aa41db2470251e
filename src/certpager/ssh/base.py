"""The :class:`CommandRunner` protocol and the value types every runner shares.

A runner executes one shell command string on one target (a host over SSH, or
this machine) and reports output line by line through a callback. It never
allocates a terminal, never leaves stdin open (commands cannot wait for input)
and, when a step times out or is cancelled, ends the command on the target and
says whether that could be proven (:attr:`CommandResult.remote_state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

OutputCallback = Callable[[str, str], None]
"""Called as ``on_output(stream, line)`` with ``stream`` ``"stdout"`` or ``"stderr"``.

``line`` is decoded UTF-8 (invalid bytes replaced), without its newline, and at
most :data:`MAX_LINE_CHARS` long (longer lines are cut with a marker).
"""

MAX_LINE_CHARS = 16 * 1024
"""Longest line passed to the output callback; the rest of a longer line is dropped."""

KILL_GRACE = 5.0
"""Seconds between the polite signal (TERM) and the forced kill (KILL)."""

REMOTE_TIMEOUT_MARGIN = 5.0
"""The remote ``timeout`` limit is the step timeout plus this margin, so the local
timer normally fires first and the remote one is the backstop."""


class RemoteState(enum.Enum):
    """Whether the command is known to have ended on the target."""

    ENDED = "ended"
    """The command (and its process group) is proven gone."""
    UNKNOWN = "unknown"
    """It could not be proven: the process may still be running on the target."""


@dataclass(frozen=True)
class ConnectionInfo:
    """Who certpager is talking to, as recorded in the audit log and shown on confirmations."""

    host: str
    """The host as configured (an alias from ``~/.ssh/config`` stays an alias)."""
    port: int
    """The SSH port (0 for local)."""
    user: str
    """Login user."""
    address: str | None
    """The IP address actually connected to (None for local)."""
    host_key_fingerprint: str | None
    """``SHA256:...`` of the host key the server proved it holds (None for local)."""
    host_key_type: str | None = None
    """Key algorithm, e.g. ``ssh-ed25519``."""
    local: bool = False
    """Commands run on this machine, not over SSH."""

    @property
    def label(self) -> str:
        """``user@host:port``, or ``local``."""
        if self.local:
            return f"local ({self.user})"
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """How one command ended."""

    exit_status: int | None
    """Exit status; None when it was killed by a signal or never reported one."""
    exit_signal: str | None
    """Name of the signal that killed it (``TERM``, ``KILL``...), if any."""
    duration: float
    """Seconds from sending the command to its end."""
    stdout_bytes: int
    """Total bytes received on stdout."""
    stderr_bytes: int
    """Total bytes received on stderr."""
    timed_out: bool = False
    """The step's timeout expired (locally, or the remote ``timeout`` fired)."""
    cancelled: bool = False
    """The user cancelled it."""
    remote_state: RemoteState = RemoteState.ENDED
    """Whether the command is proven to have ended on the target."""
    remote_note: str = ""
    """Plain words about the remote state (e.g. when the remote timeout will stop it)."""
    error: str | None = None
    """A transport failure (connection dropped mid-step...), in plain words."""

    @property
    def ok(self) -> bool:
        """The command ran to completion and exited 0."""
        return self.exit_status == 0 and not self.timed_out and not self.cancelled and self.error is None


@runtime_checkable
class CommandRunner(Protocol):
    """Runs commands on one target. Implementations: ``AsyncsshRunner``, ``LocalRunner``,
    ``FakeRunner``."""

    @property
    def label(self) -> str:
        """``user@host:port`` or ``local``, for messages (known before connecting)."""
        ...

    async def connect(self) -> ConnectionInfo:
        """Open the connection (idempotent), verifying the host key; raise ``SSHError``."""
        ...

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` (a POSIX shell string), stream its output, end it on timeout or cancel.

        Never raises for the command's own failure; raises ``SSHError`` only when
        the command could not be started at all.
        """
        ...

    def wire_command(self, command: str, timeout: float) -> str:
        """The exact string sent to the target for ``command`` (with the remote guards)."""
        ...

    async def read_file(self, path: str, *, max_bytes: int = 1 << 20) -> bytes:
        """Read a file on the target (SFTP over SSH); raise ``SSHError`` with a clear message."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...


class LineSplitter:
    """Turns a byte stream into lines for an :data:`OutputCallback`, bounding memory."""

    def __init__(self, stream: str, callback: OutputCallback | None, max_chars: int = MAX_LINE_CHARS):
        self.stream = stream
        """``stdout`` or ``stderr``."""
        self.callback = callback
        """Where lines go."""
        self.max_bytes = max_chars * 4
        self.max_chars = max_chars
        self.total = 0
        """Bytes seen so far."""
        self._buf = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> None:
        """Add received bytes; complete lines are emitted."""
        self.total += len(data)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            self._append(data[start:nl])
            self._emit_line()
            start = nl + 1
        self._append(data[start:])

    def _append(self, chunk: bytes) -> None:
        if self._dropping or not chunk:
            return
        room = self.max_bytes - len(self._buf)
        if len(chunk) > room:
            self._buf += chunk[: max(room, 0)]
            self._emit(self._decode() + " …[line truncated]")
            self._buf.clear()
            self._dropping = True
        else:
            self._buf += chunk

    def _decode(self) -> str:
        text = bytes(self._buf).decode("utf-8", errors="replace").rstrip("\r")
        if len(text) > self.max_chars:
            text = text[: self.max_chars]
        return text

    def _emit_line(self) -> None:
        if self._dropping:
            self._dropping = False
            self._buf.clear()
            return
        self._emit(self._decode())
        self._buf.clear()

    def _emit(self, line: str) -> None:
        if self.callback is not None:
            self.callback(self.stream, line)

    def close(self) -> None:
        """Flush a last line without a newline."""
        if self._buf and not self._dropping:
            self._emit(self._decode())
        self._buf.clear()
        self._dropping = False


# ------------------------------------------------------ waiting for a command
# The runners share these: start the command, pump its output into LineSplitters,
# wait for it to end (or time out, or be cancelled), then collect what is left.


class ByteSink(Protocol):
    """Where a pump puts the bytes it reads (a :class:`LineSplitter` or a filter before one)."""

    def feed(self, data: bytes) -> None:
        """Take received bytes."""
        ...

    def close(self) -> None:
        """The stream ended."""
        ...


async def pump(stream: Any, sink: ByteSink, *, errors: tuple[type[BaseException], ...] = ()) -> None:
    """Feed ``stream`` (anything with ``async read(n) -> bytes``) to ``sink`` until EOF, or
    until it fails with one of ``errors``; then close the sink."""
    with contextlib.suppress(*errors):
        while data := await stream.read(65536):
            assert isinstance(data, bytes)
            sink.feed(data)
    sink.close()


async def drain(pumps: Sequence[asyncio.Future[Any]], bound: float = 5.0) -> None:
    """Let the pumps take the last output (for at most ``bound`` seconds), then stop them."""
    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
        await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), bound)
    for task in pumps:
        task.cancel()


@dataclass
class Ending:
    """How waiting for a command ended: by itself, by timeout or by cancel, and whether
    it is proven gone on the target."""

    timed_out: bool = False
    """The step timeout fired first."""
    cancelled: bool = False
    """The cancel event was set first."""
    remote_state: RemoteState = RemoteState.ENDED
    """Whether the command is known to have ended."""
    note: str = ""
    """How that is known (or why not)."""


Terminate = Callable[[], Awaitable[tuple[RemoteState, str]]]
"""Ends a command on its target; says whether it is proven gone, and how."""


async def wait_for_end(
    finished: asyncio.Future[Any],
    *,
    timeout: float,
    cancel: asyncio.Event | None,
    terminate: Terminate,
    terminate_bound: float | None = None,
) -> Ending:
    """Wait until ``finished`` (the command ended) for at most ``timeout`` seconds or until
    ``cancel`` is set; in those two cases, and when the caller's task is cancelled, end the
    command with ``terminate`` (bounded by ``terminate_bound`` seconds in the last case)."""
    waiters: set[asyncio.Future[Any]] = {finished}
    cancel_wait: asyncio.Future[Any] | None = None
    if cancel is not None:
        cancel_wait = asyncio.ensure_future(cancel.wait())
        waiters.add(cancel_wait)
    ending = Ending()
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if finished not in done:
            ending.cancelled = cancel_wait is not None and cancel_wait in done
            ending.timed_out = not ending.cancelled
            ending.remote_state, ending.note = await terminate()
    except asyncio.CancelledError:
        # The caller's task was cancelled: end the command before giving up.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(terminate()), terminate_bound)
        raise
    finally:
        if cancel_wait is not None:
            cancel_wait.cancel()
    return ending


def guarded_command(command: str, timeout: float) -> str:
    """Wrap ``command`` so it dies on the target even if the connection does not.

    The wrapper prints its PID on stderr (the runner hides that line), then
    ``exec``s coreutils ``timeout``, which runs the command (directly when it is
    a plain argv, else under ``sh -c``) in its own process group, forwards TERM
    to the whole group and sends KILL after :data:`KILL_GRACE` seconds. The PID (= process group id) lets the runner
    kill the group and then prove it is gone. Where ``timeout`` is missing the
    command runs unguarded (the PID still allows a kill).
    """
    limit = int(timeout + REMOTE_TIMEOUT_MARGIN + 0.999)
    kill_after = int(KILL_GRACE)
    inner = command if is_simple_command(command) else shlex.join(["sh", "-c", command])
    return (
        f"printf '{PID_MARKER}%s\\n' \"$$\" >&2; "
        f"if command -v timeout >/dev/null 2>&1; then "
        f"exec timeout --kill-after={kill_after}s {limit}s {inner}; "
        f"else exec {inner}; fi"
    )


_SHELL_ONLY = frozenset(
    {
        ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "declare", "eval", "exec",
        "exit", "export", "fg", "for", "function", "getopts", "hash", "if", "jobs", "let", "local",
        "read", "readonly", "return", "select", "set", "shift", "source", "time", "times", "trap",
        "type", "typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while", "{", "!", "[[",
    }
)  # fmt: skip


def is_simple_command(command: str) -> bool:
    """Whether ``command`` is exactly ``shlex.join(argv)`` of a program call.

    Such a command is ``exec``\\ ed directly under ``timeout`` (so a signal that
    kills it is reported as such); anything else (builtins, ``&&``, pipes,
    ``VAR=value cmd``) runs as ``sh -c COMMAND``.
    """
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    if not argv or shlex.join(argv) != command:
        return False
    first = argv[0]
    return first not in _SHELL_ONLY and "=" not in first and not first.startswith("-")


PID_MARKER = "certpager-step-pid="
"""Prefix of the first stderr line printed by :func:`guarded_command`."""


def describe_exit(result: CommandResult) -> str:
    """``exit 0`` / ``killed by signal TERM`` / ``timed out`` ... in plain words."""
    parts: list[str] = []
    if result.error:
        parts.append(result.error)
    if result.cancelled:
        parts.append("cancelled")
    elif result.timed_out:
        parts.append("timed out")
    if result.exit_signal:
        parts.append(f"killed by signal {result.exit_signal}")
    elif result.exit_status is not None:
        parts.append(f"exit {result.exit_status}")
    if result.remote_state is RemoteState.UNKNOWN:
        parts.append("remote state unknown")
    return ", ".join(parts) or "no exit status"


def quote_argv(argv: list[str] | tuple[str, ...]) -> str:
    """``shlex.join`` for an argv (every element shell-quoted)."""
    return shlex.join(argv)
