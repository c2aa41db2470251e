"""The lab's SSH host: an asyncssh server on 127.0.0.1 that runs commands in a real shell.

- Host key: a fresh Ed25519 key per lab, written to the lab's ``known_hosts``
  as ``[127.0.0.1]:PORT``; certpager's client verifies it like any other host.
- Auth: public key only, the lab's client key, for one user name.
- ``exec`` requests run as ``/bin/sh -c COMMAND`` in a new session (so the
  command is a process group leader), with a clean sshd-like environment whose
  ``PATH`` starts with the lab's stand-in ``certbot``/``nginx``/``systemctl``.
  stdout and stderr stream back as they come, the exit status (or the killing
  signal) is returned. A ``signal`` request from the client is sent to the
  command's process group; when the channel closes while the command still
  runs (the client cancelled or vanished), the group gets TERM, then KILL.
- SFTP is served (certpager reads stored certificates with it).
- No interactive shells, no PTYs, no forwarding.

While a command runs its PID is recorded in ``run/commands/PID`` so that the
parent of the lab can kill it even if the lab process itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncssh

from certpager.lab import process as process_lib

KILL_GRACE = 3.0
"""Seconds between TERM and KILL when a command must end."""


def _signal_number(name: str) -> int | None:
    sig = getattr(signal, f"SIG{name.upper().removeprefix('SIG')}", None)
    return int(sig) if sig is not None else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


class _Auth(asyncssh.SSHServer):
    """Public-key auth for one user and one key."""

    def __init__(self, user: str, client_key: asyncssh.SSHKey):
        self._user = user
        self._key = client_key.public_data

    def begin_auth(self, username: str) -> bool:
        return True  # always require auth

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._user and key.public_data == self._key


class DrillSSHServer:
    """The lab's SSH host."""

    def __init__(
        self,
        *,
        host_key: asyncssh.SSHKey,
        client_key: asyncssh.SSHKey,
        user: str,
        env: Mapping[str, str],
        cwd: Path,
        pid_dir: Path,
    ):
        self.host_key = host_key
        """The server's host key."""
        self.client_key = client_key
        """The only key allowed to log in."""
        self.user = user
        """The only user name allowed."""
        self.env = dict(env)
        """Environment of every command."""
        self.cwd = cwd
        """Working directory of every command (the lab user's home)."""
        self.pid_dir = pid_dir
        """Where running command PIDs are recorded."""
        self.port = 0
        """Bound port."""
        self.commands_run = 0
        """Commands started so far."""
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self._acceptor = await asyncssh.create_server(
            lambda: _Auth(self.user, self.client_key),
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            process_factory=self._process,
            sftp_factory=True,
            encoding=None,
            allow_scp=False,
            allow_pty=False,
            x11_forwarding=False,
            agent_forwarding=False,
            login_timeout=30,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    def known_hosts_line(self) -> str:
        """The ``[127.0.0.1]:PORT keytype base64`` line for known_hosts."""
        public = self.host_key.export_public_key("openssh").decode().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}"

    def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if command is None:
            process.stderr.write(b"the fire-drill SSH host runs commands only (no interactive shell)\n")
            process.exit(1)
            return
        # A client "signal" request is delivered to the session object; asyncssh would
        # queue it behind stdin, which certpager closes at once. Take it directly.
        relay = _SignalRelay()
        process.signal_received = relay.on_signal  # type: ignore[method-assign,assignment]
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._command_env(process),
                cwd=str(self.cwd),
                start_new_session=True,
            )
        except OSError as exc:
            process.stderr.write(f"cannot start /bin/sh: {exc.strerror}\n".encode())
            process.exit(127)
            return
        self.commands_run += 1
        relay.attach(proc)
        code = await self._serve_command(process, proc, command)
        with contextlib.suppress(OSError, asyncssh.Error):
            if code < 0:
                process.exit_with_signal(_signal_name(-code))
            else:
                process.exit(code)

    def _command_env(self, process: asyncssh.SSHServerProcess[bytes]) -> dict[str, str]:
        """The lab environment plus sshd's SSH_CONNECTION/SSH_CLIENT for this session."""
        env = dict(self.env)
        peer = process.get_extra_info("peername") or ("127.0.0.1", 0)
        env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} 127.0.0.1 {self.port}"
        env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {self.port}"
        return env

    async def _serve_command(
        self, process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process, command: str
    ) -> int:
        """Relay stdin/stdout/stderr between the channel and the command until it exits;
        its PID is recorded in :attr:`pid_dir` meanwhile. Returns its exit status."""
        self._procs.add(proc)
        pid_file = self.pid_dir / str(proc.pid)
        with contextlib.suppress(OSError):
            pid_file.write_text(command[:4000] + "\n", encoding="utf-8")
        watcher = asyncio.get_running_loop().create_task(self._watch_channel(process, proc))
        feeder = asyncio.get_running_loop().create_task(self._feed_stdin(process, proc))
        try:
            assert proc.stdout is not None and proc.stderr is not None
            await asyncio.gather(
                _pump(proc.stdout, process.stdout),
                _pump(proc.stderr, process.stderr),
            )
            return await proc.wait()
        finally:
            self._procs.discard(proc)
            with contextlib.suppress(OSError):
                pid_file.unlink()
            feeder.cancel()
            watcher.cancel()

    async def _feed_stdin(
        self, process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process
    ) -> None:
        assert proc.stdin is not None
        try:
            while True:
                try:
                    data = await process.stdin.read(65536)
                except asyncssh.SignalReceived as exc:
                    number = _signal_number(exc.signal)
                    if number is not None:
                        _killpg(proc, number)
                    continue
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                    continue
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
        except (OSError, asyncssh.Error):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.close()

    async def _watch_channel(
        self, process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process
    ) -> None:
        """End the command when its channel goes away first (cancel, disconnect)."""
        await process.channel.wait_closed()
        if proc.returncode is None:
            await terminate(proc)

    async def stop(self) -> None:
        """Stop listening, end every running command (TERM, then KILL), close connections."""
        if self._acceptor is not None:
            self._acceptor.close()
        await asyncio.gather(*(terminate(p) for p in list(self._procs)), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self._acceptor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 2.0)


def _killpg(proc: asyncio.subprocess.Process, number: int) -> None:
    if proc.returncode is None:
        process_lib.signal_group(proc.pid, number)


class _SignalRelay:
    """Signals a client asks for: sent to the command's process group, or held until it starts."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: list[int] = []

    def on_signal(self, name: str) -> None:
        """asyncssh's ``signal_received``: relay (or hold) the named signal."""
        number = _signal_number(name)
        if number is None:
            return
        if self.proc is not None:
            _killpg(self.proc, number)
        else:
            self.pending.append(number)

    def attach(self, proc: asyncio.subprocess.Process) -> None:
        """The command started: deliver what was held."""
        self.proc = proc
        for number in self.pending:
            _killpg(proc, number)
        self.pending.clear()


async def terminate(proc: asyncio.subprocess.Process) -> None:
    """TERM the command's process group, KILL it after :data:`KILL_GRACE`, reap it."""
    await process_lib.stop_group(proc, KILL_GRACE)


async def _pump(src: asyncio.StreamReader, dst: Any) -> None:
    """Copy a command's output to the SSH channel as it comes."""
    while True:
        data = await src.read(65536)
        if not data:
            return
        try:
            dst.write(data)
            await dst.drain()
        except (OSError, asyncssh.Error, BrokenPipeError):
            # The client is gone: keep draining so the command does not block on a full pipe.
            continue
