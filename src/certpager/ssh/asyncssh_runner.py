"""Run commands over SSH with asyncssh, with OpenSSH's host-key strictness and no surprises.

- Host, port, user and keys come from the endpoint's SSH target and the user's
  ``~/.ssh/config`` (``Host`` aliases, ``Hostname``, ``Port``, ``User``,
  ``IdentityFile``, ``ProxyJump`` ... as asyncssh understands them).
- Host keys are **always** verified. certpager passes an explicit known-hosts
  value on every connection: the target's ``known_hosts`` file, else the files
  ``~/.ssh/config`` names (``UserKnownHostsFile``/``GlobalKnownHostsFile``),
  else OpenSSH's defaults ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``.
  ``UserKnownHostsFile none`` (which asyncssh would turn into "no checking") is
  refused. An unknown or changed key raises :class:`HostKeyError` with the
  SHA256 fingerprint the server offered and the known_hosts line to add once it
  has been checked out of band. Nothing is ever trusted on first use.
- Connect timeout, keepalive (15 s x 3), no agent forwarding, no PTY, stdin at
  EOF, and a quoting self-test of the login shell on first contact.
- Each command is wrapped by :func:`certpager.ssh.base.guarded_command`; on
  timeout or cancel the runner signals it, kills its process group over a second
  channel if needed, and proves it is gone (``kill -0 -PGID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh

from certpager.config import SSHTarget, format_hostport
from certpager.errors import HostKeyError, SSHConnectError, SSHError
from certpager.formats import format_seconds
from certpager.inputs import PEM_MAX_BYTES, InputFileError, read_input_file
from certpager.ssh.base import (
    KILL_GRACE,
    PID_MARKER,
    REMOTE_TIMEOUT_MARGIN,
    CommandResult,
    ConnectionInfo,
    Ending,
    LineSplitter,
    OutputCallback,
    RemoteState,
    drain,
    guarded_command,
    pump,
    wait_for_end,
)

DEFAULT_LOGIN_TIMEOUT = 20.0
"""Seconds allowed for authentication once TCP is connected."""
KEEPALIVE_INTERVAL = 15.0
"""Seconds between SSH keepalives; a dead link is found after 3 missed ones."""
KEEPALIVE_COUNT_MAX = 3
"""Missed keepalives before the connection is declared dead."""
SIGNAL_WAIT = 1.0
"""Seconds to wait for the SSH signal request to end a command before killing its group."""

_SELF_TEST_CANARY = "a b'c\"d$e;f\\g`h|i&j*k?~l(m)n<o>p#q=r%s!t{u}v é"


def _fingerprint(key: Any) -> str:
    return str(key.get_fingerprint("sha256"))


class _Client(asyncssh.SSHClient):
    """Remembers the host key the server offered when it is not trusted."""

    def __init__(self) -> None:
        self.offered_key: Any = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.offered_key = key
        return False  # never trust a key that is not in known_hosts


class _GuardPid:
    """stderr with the guard's first line (``PID_MARKER<pgid>``) taken out: the process
    group id goes to ``pid_box`` (for killing the group), the rest to ``err``."""

    def __init__(self, err: LineSplitter) -> None:
        self.err = err
        self.pid_box: list[int] = []
        self._head = bytearray()
        self._done = False

    def feed(self, data: bytes) -> None:
        if self._done:
            self.err.feed(data)
            return
        head = self._head
        head += data
        nl = head.find(b"\n")
        if nl < 0 and len(head) < 256:
            return
        first = bytes(head[:nl]) if nl >= 0 else b""
        self._done = True
        if first.startswith(PID_MARKER.encode()) and first[len(PID_MARKER) :].isdigit():
            self.pid_box.append(int(first[len(PID_MARKER) :]))
            rest = bytes(head[nl + 1 :])
        else:
            rest = bytes(head)
        if rest:
            self.err.feed(rest)

    def close(self) -> None:
        if not self._done and self._head:
            self.err.feed(bytes(self._head))
        self.err.close()


class AsyncsshRunner:
    """A :class:`~certpager.ssh.base.CommandRunner` over one asyncssh connection."""

    def __init__(
        self,
        target: SSHTarget,
        *,
        ssh_config: Sequence[str] | None = None,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        self_test: bool = True,
    ):
        """Prepare (but do not open) a connection to ``target``.

        Args:
            target: the endpoint's SSH target.
            ssh_config: OpenSSH client config files; None means ``~/.ssh/config`` if readable.
            login_timeout: seconds for authentication after TCP connect.
            keepalive_interval: seconds between keepalives (0 disables them).
            self_test: run the login-shell quoting self-test on connect.
        """
        if target.is_local:
            raise ValueError("AsyncsshRunner needs a remote target; use LocalRunner for 'local'")
        self.target = target
        """The configured target."""
        if ssh_config is None:
            default = Path("~/.ssh/config").expanduser()
            ssh_config = [str(default)] if os.access(default, os.R_OK) else []
        self.ssh_config = list(ssh_config)
        """OpenSSH config files read for this target."""
        self.login_timeout = login_timeout
        self.keepalive_interval = keepalive_interval
        self.self_test = self_test
        self._conn: asyncssh.SSHClientConnection | None = None
        self._info: ConnectionInfo | None = None
        self._lock = asyncio.Lock()
        self._resolved: tuple[str, int, str] | None = None

    # ------------------------------------------------------------------ naming

    def resolve(self) -> tuple[str, int, str]:
        """``(hostname, port, user)`` after ``~/.ssh/config``, without any network traffic."""
        if self._resolved is None:
            try:
                opts = asyncssh.SSHClientConnectionOptions(
                    config=self.ssh_config,
                    host=self.target.host,
                    port=self.target.port if self.target.port else (),
                    username=self.target.user if self.target.user else (),
                )
            except asyncssh.ConfigParseError as exc:
                raise SSHConnectError(
                    f"ssh config: {exc}", host=self.target.host, port=self.target.port, phase="config"
                ) from None
            port = self.target.port or int(str(opts.config.get("Port", 22) or 22))
            hostname = str(opts.config.get("Hostname") or self.target.host)
            self._resolved = (hostname, port, str(opts.username))
        return self._resolved

    @property
    def label(self) -> str:
        """``user@host:port`` (after ``~/.ssh/config``)."""
        try:
            host, port, user = self.resolve()
        except SSHError:
            return self.target.host
        return f"{user}@{format_hostport(host, port)}"

    # ------------------------------------------------------------- known hosts

    def known_hosts_files(self) -> list[str]:
        """The known_hosts files used for this target, in lookup order.

        Raises:
            SSHConnectError: the ssh config turns host-key checking off.
        """
        if self.target.known_hosts:
            return [os.path.expanduser(self.target.known_hosts)]
        try:
            opts = asyncssh.SSHClientConnectionOptions(config=self.ssh_config, host=self.target.host)
        except asyncssh.ConfigParseError as exc:
            raise SSHConnectError(
                f"ssh config: {exc}", host=self.target.host, port=self.target.port, phase="config"
            ) from None
        configured = opts.known_hosts
        if configured is None:
            where = ", ".join(self.ssh_config) or "ssh config"
            raise SSHConnectError(
                f"{where}: 'UserKnownHostsFile none' for host {self.target.host} turns host-key "
                "checking off; certpager always verifies host keys. Remove that line, or give the "
                "endpoint's ssh target an explicit known_hosts file.",
                host=self.target.host,
                port=self.target.port,
                phase="config",
            )
        files = [os.path.expanduser(str(p)) for p in configured]  # type: ignore[union-attr]
        if not files:
            files = [str(Path("~/.ssh/known_hosts").expanduser()), "/etc/ssh/ssh_known_hosts"]
        return files

    def _load_known_hosts(self, files: list[str]) -> Any:
        chunks: list[str] = []
        for path in files:
            if not os.path.lexists(path) or os.path.realpath(path) == os.devnull:
                continue  # a missing file (or /dev/null) knows no hosts: every key is unknown
            try:  # never blocks on a FIFO, never reads /dev/zero
                chunks.append(read_input_file(path, cap=PEM_MAX_BYTES).decode("utf-8", "replace"))
            except InputFileError as exc:
                raise SSHConnectError(
                    f"cannot read known_hosts file {exc}",
                    host=self.target.host,
                    port=self.target.port,
                    phase="host_key",
                ) from None
        try:
            return asyncssh.import_known_hosts("\n".join(chunks))
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise SSHConnectError(
                f"known_hosts ({', '.join(files)}) cannot be parsed: {exc}",
                host=self.target.host,
                port=self.target.port,
                phase="host_key",
            ) from None

    # ----------------------------------------------------------------- connect

    async def connect(self) -> ConnectionInfo:
        """Connect and authenticate (once); see the module docstring for the policy."""
        async with self._lock:
            if self._conn is not None and self._info is not None:
                return self._info
            self._info = await self._connect()
            return self._info

    async def _connect(self) -> ConnectionInfo:
        host, port, user = self.resolve()
        files = self.known_hosts_files()
        known = self._load_known_hosts(files)
        client = _Client()
        kwargs = self._connect_options(known, client)
        bound = self.target.connect_timeout + self.login_timeout + 5.0
        try:
            conn = await asyncio.wait_for(asyncssh.connect(self.target.host, **kwargs), bound)
        except asyncssh.HostKeyNotVerifiable:
            if client.offered_key is None:
                # asyncssh refuses a key that known_hosts marks @revoked without showing it
                # to the client: ask for it once more, matching nothing (never trusted).
                client.offered_key = await _offered_key(self.target.host, kwargs, bound)
            raise self._host_key_error(client, known, host, port, files) from None
        except (asyncssh.Error, OSError, ValueError) as exc:
            raise self._login_error(exc, host, port, user, files) from None
        self._conn = conn
        info = _connection_info(conn, self.target.host, port, user)
        if self.self_test:
            try:
                await self._quoting_self_test(info)
            except BaseException:
                await self.close()
                raise
        return info

    def _connect_options(self, known: Any, client: _Client) -> dict[str, Any]:
        """``asyncssh.connect`` keyword arguments: the host-key policy, timeouts, keepalive,
        no forwarding, and the target's port, user and identity files when given."""
        kwargs: dict[str, Any] = {
            "config": self.ssh_config,
            "known_hosts": known,
            "client_factory": lambda: client,
            "connect_timeout": self.target.connect_timeout,
            "login_timeout": self.login_timeout,
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "agent_forwarding": False,
            "x11_forwarding": False,
        }
        if self.target.port:
            kwargs["port"] = self.target.port
        if self.target.user:
            kwargs["username"] = self.target.user
        if self.target.identity_files:
            kwargs["client_keys"] = _expand_all(self.target.identity_files)
        return kwargs

    def _login_error(
        self, exc: BaseException, host: str, port: int, user: str, files: list[str]
    ) -> SSHConnectError | HostKeyError:
        """One line saying why connecting or logging in to ``host`` failed (checked in
        order: the first matching kind of failure names it)."""
        where = format_hostport(host, port)

        def fail(message: str, phase: str) -> SSHConnectError:
            return SSHConnectError(message, host=host, port=port, phase=phase)

        if isinstance(exc, asyncssh.PermissionDenied):
            keys = ", ".join(self.target.identity_files) or "the agent and ~/.ssh keys"
            return fail(
                f"SSH authentication failed for {user}@{where} (offered: {keys}); check the user "
                "and that the key is in the remote authorized_keys",
                "auth",
            )
        if isinstance(exc, asyncssh.KeyExchangeFailed):
            return _key_exchange_error(exc, host, port, files)
        if isinstance(exc, asyncssh.ConfigParseError):
            return fail(f"ssh config: {exc}", "config")
        if isinstance(exc, asyncssh.KeyImportError):
            return fail(
                f"cannot load SSH identity for {user}@{where}: {exc} (an encrypted key must be "
                "loaded into ssh-agent)",
                "auth",
            )
        if isinstance(exc, asyncssh.ConnectionLost):
            return fail(f"SSH connection to {where} lost during login: {exc.reason}", "connect")
        if isinstance(exc, asyncssh.DisconnectError):
            return fail(f"SSH connection to {where} closed during login: {exc.reason}", "connect")
        return self._network_error(exc, host, port)

    def _network_error(self, exc: BaseException, host: str, port: int) -> SSHConnectError:
        """A failure below SSH (name lookup, TCP, timeout, a missing key file) or any other."""
        where = format_hostport(host, port)

        def fail(message: str, phase: str) -> SSHConnectError:
            return SSHConnectError(message, host=host, port=port, phase=phase)

        if isinstance(exc, socket.gaierror):
            return fail(f"cannot resolve SSH host {host}: {exc.strerror}", "resolve")
        if isinstance(exc, ConnectionRefusedError):
            return fail(f"SSH connection to {where} refused (is sshd running on that port?)", "connect")
        if isinstance(exc, TimeoutError):
            return fail(
                f"SSH connection to {where} timed out after {format_seconds(self.target.connect_timeout)} "
                "(host down, firewall, or not an SSH server)",
                "connect",
            )
        if isinstance(exc, FileNotFoundError):
            return fail(f"SSH identity file not found: {exc.filename}", "auth")
        if isinstance(exc, OSError):
            return fail(f"cannot connect to {where}: {exc.strerror or exc}", "connect")
        return fail(f"SSH connection to {where} failed: {exc}", "connect")

    def _host_key_error(
        self, client: _Client, known: Any, host: str, port: int, files: list[str]
    ) -> HostKeyError:
        where = format_hostport(host, port)
        offered = client.offered_key
        fp = _fingerprint(offered) if offered is not None else None
        name = _known_hosts_name(host, port)
        trusted: list[Any] = []
        place: str | None = None
        with contextlib.suppress(Exception):
            addr = socket.gethostbyname(host) if not _is_ip(host) else host
            trusted = list(asyncssh.match_known_hosts(known, host, addr, port if port != 22 else None)[0])
            if offered is not None:
                place = _revoked_line(files, offered, host, addr, port if port != 22 else None)
        if offered is not None and place is not None:
            message = (
                f"host key of {where} is REVOKED in {place}; do not connect: the server offered "
                f"{offered.get_algorithm()} key {fp}, which that file marks @revoked (a stolen or "
                "retired key). The server may be an impostor or still use the retired key: have its "
                "administrator check it. certpager did not log in."
            )
        elif trusted:
            # A key listed under both the name and the address (or twice) is named once.
            known_fps = list(dict.fromkeys(_fingerprint(k) for k in trusted))
            old = ", ".join(known_fps)
            message = (
                f"host key for {where} has CHANGED: known_hosts ({files[0]}) has {old}, the server "
                f"offered {fp or 'an unknown key'}. This may be an attack (man in the middle) or the "
                f"host was re-installed. Check the new fingerprint out of band; if it is right, "
                f"remove the old entry with: ssh-keygen -R {shlex.quote(name)} -f {files[0]} "
                "and add the new one. certpager did not log in."
            )
        else:
            line = ""
            if offered is not None:
                line = f"{name} {offered.export_public_key('openssh').decode().strip()}"
            message = (
                f"host key for {where} is not known (not in {', '.join(files)}); the server offered "
                f"{offered.get_algorithm() if offered is not None else 'a'} key {fp or '(unknown)'}. "
                "certpager never trusts a first key. Check this fingerprint out of band (on the host: "
                "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub); if it matches, trust it by adding this "
                f"line to {files[0]}:\n    {line}"
                if line
                else "certpager never trusts a first key."
            )
        return HostKeyError(message, host=host, port=port, fingerprint=fp, changed=bool(trusted))

    async def _quoting_self_test(self, info: ConnectionInfo) -> None:
        """Refuse a login shell that does not parse POSIX quoting the way ``shlex`` writes it."""
        command = shlex.join(["printf", "%s\\n", _SELF_TEST_CANARY])
        status, out, err = await self._exec_capture(command, timeout=15.0)
        want = (_SELF_TEST_CANARY + "\n").encode()
        if status != 0 or out != want:
            detail = err.decode("utf-8", "replace").strip()[:200] or out.decode("utf-8", "replace")[:200]
            raise SSHConnectError(
                f"the login shell of {info.label} does not parse POSIX shell quoting "
                f"(quoting self-test failed: {detail!r}); certpager needs sh, bash, dash, ksh or zsh",
                host=info.host,
                port=info.port,
                phase="shell",
            )

    # ---------------------------------------------------------------- commands

    def wire_command(self, command: str, timeout: float) -> str:
        """The exact string sent: the command inside the remote ``timeout`` guard."""
        return guarded_command(command, timeout)

    async def _exec_capture(self, command: str, *, timeout: float) -> tuple[int | None, bytes, bytes]:
        """Run a small helper command and collect its output (for kill, proof, self-test)."""
        assert self._conn is not None
        result = await asyncio.wait_for(
            self._conn.run(command, check=False, encoding=None, request_pty=False, stdin=asyncssh.DEVNULL),
            timeout,
        )
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        err = result.stderr if isinstance(result.stderr, bytes) else b""
        return result.exit_status, out, err

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` on the target; see :class:`~certpager.ssh.base.CommandRunner`."""
        await self.connect()
        assert self._conn is not None
        wire = self.wire_command(command, timeout)
        started = time.monotonic()
        backstop = datetime.now(UTC) + timedelta(seconds=timeout + REMOTE_TIMEOUT_MARGIN + KILL_GRACE)
        proc = await self._start(wire, stdin)
        out = LineSplitter("stdout", on_output)
        err = LineSplitter("stderr", on_output)
        guard = _GuardPid(err)
        lost = (asyncssh.Error, OSError)
        pumps = [
            asyncio.ensure_future(pump(proc.stdout, out, errors=lost)),
            asyncio.ensure_future(pump(proc.stderr, guard, errors=lost)),
        ]
        closed = asyncio.ensure_future(proc.wait_closed())
        ending = await wait_for_end(
            closed,
            timeout=timeout,
            cancel=cancel,
            terminate=lambda: self._terminate(proc, closed, guard.pid_box, backstop),
            terminate_bound=KILL_GRACE * 3,
        )
        await drain(pumps)
        duration = time.monotonic() - started
        return await self._result(proc, ending, duration, (out.total, err.total), backstop)

    async def _start(self, wire: str, stdin: bytes | None) -> Any:
        """Open the command's channel (no PTY, no X11), write ``stdin`` and close it."""
        assert self._conn is not None
        try:
            proc = await self._conn.create_process(
                wire, encoding=None, request_pty=False, term_type=None, x11_forwarding=False
            )
        except (asyncssh.Error, OSError) as exc:
            raise SSHError(f"cannot start the command on {self.label}: {exc}") from None
        if stdin:
            proc.stdin.write(stdin)
        proc.stdin.write_eof()
        return proc

    async def _result(
        self, proc: Any, ending: Ending, duration: float, totals: tuple[int, int], backstop: datetime
    ) -> CommandResult:
        """The command's result from its exit status or signal; a connection that dropped
        mid-step (no status, no signal) leaves the remote state unknown and is closed."""
        status = proc.exit_status
        signal_info = proc.exit_signal
        signal_name = signal_info[0] if signal_info else None
        if status == -1 and signal_name:
            status = None
        error = None
        if status is None and signal_name is None and not (ending.timed_out or ending.cancelled):
            error = "the SSH connection dropped mid-step"
            ending.remote_state = RemoteState.UNKNOWN
            ending.note = (
                "the connection is gone, so certpager cannot tell whether the command is still "
                f"running; the remote timeout stops it by {backstop:%H:%M:%S} UTC at the latest"
            )
            await self.close()
        elif status == 124 and not (ending.timed_out or ending.cancelled):
            ending.timed_out = True  # the remote `timeout` fired first
        return CommandResult(
            exit_status=status,
            exit_signal=signal_name,
            duration=duration,
            stdout_bytes=totals[0],
            stderr_bytes=totals[1],
            timed_out=ending.timed_out,
            cancelled=ending.cancelled,
            remote_state=ending.remote_state,
            remote_note=ending.note,
            error=error,
        )

    async def _terminate(
        self, proc: Any, closed: asyncio.Future[Any], pid_box: list[int], backstop: datetime
    ) -> tuple[RemoteState, str]:
        """End the command: SSH signal, then TERM/KILL its process group over a second
        channel, then prove the group is gone (``kill -0 -PGID``).

        The SSH "signal" request is tried first, but OpenSSH ignores it for root
        sessions ("session signalling requires privilege separation") and before
        7.9, hence the second channel.
        """
        unknown_note = (
            "certpager could not prove the command ended; the remote timeout stops it by "
            f"{backstop:%H:%M:%S} UTC at the latest"
        )
        with contextlib.suppress(Exception):
            proc.send_signal("TERM")
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(closed), SIGNAL_WAIT)
        pid = pid_box[0] if pid_box else None
        if pid is None:
            if not closed.done():
                with contextlib.suppress(Exception):
                    proc.close()
            return RemoteState.UNKNOWN, unknown_note
        try:
            _status, out, _err = await self._exec_capture(_kill_group_script(pid), timeout=KILL_GRACE + 20.0)
        except (asyncssh.Error, OSError, TimeoutError, AssertionError):
            out = b""
        if not closed.done():
            with contextlib.suppress(Exception):
                proc.close()
        if out.strip().endswith(b"gone"):
            return RemoteState.ENDED, f"process group {pid} is gone on the target"
        return RemoteState.UNKNOWN, unknown_note

    async def read_file(self, path: str, *, max_bytes: int = 1 << 20) -> bytes:
        """Read ``path`` on the target over SFTP (at most ``max_bytes``)."""
        await self.connect()
        assert self._conn is not None
        try:
            async with self._conn.start_sftp_client() as sftp, sftp.open(path, "rb") as fh:
                data = await fh.read(max_bytes + 1)
        except asyncssh.SFTPNoSuchFile:
            raise SSHError(f"{self.label}: {path}: no such file") from None
        except asyncssh.SFTPPermissionDenied:
            raise SSHError(f"{self.label}: {path}: permission denied") from None
        except asyncssh.SFTPError as exc:
            raise SSHError(f"{self.label}: {path}: cannot read over SFTP: {exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise SSHError(f"{self.label}: {path}: SFTP is not available: {exc}") from None
        assert isinstance(data, bytes)
        if len(data) > max_bytes:
            raise SSHError(f"{self.label}: {path}: larger than {max_bytes} bytes, not a certificate")
        return data

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        self._info = None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5.0)


def _kill_group_script(pgid: int) -> str:
    """TERM the process group, wait up to KILL_GRACE for it, KILL it, say ``gone``/``alive``.

    Zombies do not count as alive: an orphan killed with its group is re-parented to
    PID 1, which may take its time to reap it.
    """
    rounds = int(KILL_GRACE / 0.2)
    return (
        f"pg={pgid}; "
        "alive() { if command -v ps >/dev/null 2>&1; then "
        "ps -e -o pgid= -o stat= 2>/dev/null | awk -v g=\"$pg\" '$1==g && $2 !~ /^Z/ {f=1} END {exit !f}'; "
        "else kill -0 -$pg 2>/dev/null; fi; }; "
        "kill -TERM -$pg 2>/dev/null; i=0; "
        f"while alive && [ $i -lt {rounds} ]; do sleep 0.2; i=$((i+1)); done; "
        "if alive; then kill -KILL -$pg 2>/dev/null; i=0; "
        "while alive && [ $i -lt 15 ]; do sleep 0.2; i=$((i+1)); done; fi; "
        "alive && echo alive || echo gone"
    )


def _expand_all(paths: Sequence[str]) -> list[str]:
    return [os.path.expanduser(p) for p in paths]


def _key_exchange_error(
    exc: asyncssh.KeyExchangeFailed, host: str, port: int, files: list[str]
) -> SSHConnectError | HostKeyError:
    """A failed key exchange: a changed host key when the server offers no key of the type
    known_hosts records, else a connection error."""
    where = format_hostport(host, port)
    text = str(exc.reason if hasattr(exc, "reason") else exc)
    if "host key" in text.lower():
        return HostKeyError(
            f"host key for {where} has CHANGED: the server offers no key of the type "
            f"recorded in known_hosts ({', '.join(files)}): {text}. This may be an attack. "
            f"If the host was re-keyed, check the new key out of band, then run: "
            f"ssh-keygen -R {shlex.quote(_known_hosts_name(host, port))} -f {files[0]}",
            host=host,
            port=port,
            fingerprint=None,
            changed=True,
        )
    return SSHConnectError(
        f"SSH key exchange with {where} failed: {text}", host=host, port=port, phase="connect"
    )


def _connection_info(conn: asyncssh.SSHClientConnection, host: str, port: int, user: str) -> ConnectionInfo:
    """Who and where a fresh connection logged in: user, peer address, host key."""
    key = conn.get_server_host_key()
    peer = conn.get_extra_info("peername")
    address = str(peer[0]) if peer else None
    return ConnectionInfo(
        host=host,
        port=port,
        user=str(conn.get_extra_info("username") or user),
        address=address,
        host_key_fingerprint=_fingerprint(key) if key is not None else None,
        host_key_type=str(key.get_algorithm()) if key is not None else None,
    )


async def _offered_key(host: str, kwargs: dict[str, Any], bound: float) -> Any:
    """The host key the server at ``host`` offers, learnt from a connection that trusts no
    key (it ends at the host-key check, before any authentication); None if it fails."""
    probe = _Client()
    options = {**kwargs, "known_hosts": ([], [], []), "client_factory": lambda: probe}
    with contextlib.suppress(Exception):
        conn = await asyncio.wait_for(asyncssh.connect(host, **options), bound)
        conn.abort()  # pragma: no cover - a key trusted with nothing to trust it: never
    return probe.offered_key


def _key_blob(key: Any) -> str | None:
    """The base64 field of a key's OpenSSH public form."""
    try:
        return str(key.export_public_key("openssh").decode().split()[1])
    except (IndexError, ValueError, AttributeError, asyncssh.KeyExportError):
        return None


def _revoked_line(files: list[str], key: Any, host: str, addr: str, port: int | None) -> str | None:
    """``FILE:LINE`` of the first ``@revoked`` line of ``files`` that names ``key`` for this
    host (its host patterns matched the way asyncssh matches any line), else None.

    Read here rather than from ``match_known_hosts``: that drops the revoked keys of a
    ``[host]:port`` line when no trusted key matches the port and it retries without it.
    """
    blob = _key_blob(key)
    if blob is None:
        return None
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if len(fields) < 4 or fields[0] != "@revoked" or fields[3] != blob:
                continue
            with contextlib.suppress(Exception):
                plain = asyncssh.import_known_hosts(line.split(None, 1)[1] + "\n")
                if asyncssh.match_known_hosts(plain, host, addr, port)[0]:
                    return f"{path}:{number}"
    return None


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True
