"""One run per target at a time, machine-wide: an ``flock`` on a per-target file.

The target of a run is where it acts: the SSH host (``host:port`` after
``~/.ssh/config``, ``local`` for this machine) and the endpoint's TLS address
(``host:port``). Two endpoint names for the same target share one lock; the
login user, the runbook and the SNI do not matter.

The lock directory is machine-wide so every operator of one jump host shares
it: ``$CERTPAGER_LOCK_DIR`` if set, else ``settings.lock_dir`` of the config,
else ``/run/lock/certpager`` (``/var/lock/certpager``, then
``/tmp/certpager-locks`` where ``/run/lock`` does not exist). certpager creates
it with mode 1777 (anyone may add a lock file, only its owner may remove it,
like ``/tmp``) and the lock files with mode 0666, so a run as another user, or
via sudo, is refused as well. A directory that cannot be created or used is an
error naming it (never a silent fallback to a per-user directory, which would
let two runs on one target proceed).

The kernel releases an ``flock`` when the holding process dies, so a crash never
leaves a stale lock; the file keeps a note of the holder (pid, user, host, run
id, runbook, endpoint, start time) for the "locked by ..." message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certpager.config import format_hostport
from certpager.errors import LockDirError as LockDirError
from certpager.errors import RunLockedError

if TYPE_CHECKING:
    from certpager.config import Endpoint, Settings

LOCK_DIR_ENV = "CERTPAGER_LOCK_DIR"
"""Environment variable naming the lock directory (wins over ``settings.lock_dir``)."""

SYSTEM_LOCK_DIRS = (Path("/run/lock"), Path("/var/lock"), Path("/tmp"))
"""Machine-wide parents tried in order; the first that exists holds ``certpager`` locks."""


def default_lock_dir(settings: Settings | None = None) -> Path:
    """``$CERTPAGER_LOCK_DIR``, else ``settings.lock_dir``, else the machine-wide default."""
    explicit = os.environ.get(LOCK_DIR_ENV)
    if explicit:
        return Path(os.path.expanduser(explicit))
    if settings is not None and settings.lock_dir:
        return Path(settings.lock_dir)
    for parent in SYSTEM_LOCK_DIRS:
        if parent.is_dir():
            return parent / ("certpager-locks" if parent == Path("/tmp") else "certpager")
    return Path("/tmp/certpager-locks")


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def target_key(endpoint: Endpoint, ssh_host: str | None = None, ssh_port: int | None = None) -> str:
    """``SSH-HOST:PORT TLS-HOST:PORT`` (``local`` for this machine) naming a run's target.

    Args:
        endpoint: the endpoint (its TLS address, and its ``ssh`` when no SSH host is given).
        ssh_host: the SSH host after ``~/.ssh/config`` (``local`` for this machine).
        ssh_port: its port.
    """
    if ssh_host is None and endpoint.ssh is not None:
        ssh_host, ssh_port = endpoint.ssh.host, endpoint.ssh.port
    if ssh_host is None or ssh_host == "local":
        where = "local"
    else:
        where = format_hostport(_norm_host(ssh_host), ssh_port or 22)
    return f"{where} {format_hostport(_norm_host(endpoint.host), endpoint.port)}"


def _file_name(key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{safe}-{digest}.lock"


def _prepare_dir(path: Path) -> None:
    """Create the shared lock directory (mode 1777) or check that it is safe to use."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LockDirError(
            f"cannot create the run lock directory {path}: {exc.strerror}; set {LOCK_DIR_ENV} or "
            "settings.lock_dir to a directory every operator of this machine can write"
        ) from None
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LockDirError(f"cannot use the run lock directory {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LockDirError(f"the run lock directory {path} is not a directory (a symlink or a file)")
    shared = st.st_mode & 0o022
    if st.st_uid == os.geteuid() and (st.st_mode & 0o7777) != 0o1777:
        # Ours (just created, or created earlier): shared like /tmp, whatever the umask.
        with contextlib.suppress(OSError):
            os.chmod(path, 0o1777)
    elif shared and not st.st_mode & stat.S_ISVTX:
        raise LockDirError(
            f"the run lock directory {path} is writable by others but not sticky (mode "
            f"{st.st_mode & 0o7777:o}): anyone could delete a held lock; its owner should run "
            f"chmod 1777 {path}"
        )


class EndpointLock:
    """The run lock of one target (the endpoint's SSH host and TLS address)."""

    def __init__(
        self,
        endpoint: Endpoint,
        lock_dir: Path | None = None,
        *,
        ssh_host: str | None = None,
        ssh_port: int | None = None,
    ):
        """Args:
        endpoint: the endpoint run on.
        lock_dir: the lock directory (default :func:`default_lock_dir`).
        ssh_host: the SSH host after ``~/.ssh/config`` (default: the endpoint's ``ssh.host``).
        ssh_port: its port.
        """
        self.endpoint = endpoint.name
        """Endpoint name."""
        self.key = target_key(endpoint, ssh_host, ssh_port)
        """The target (``SSH-HOST:PORT TLS-HOST:PORT``)."""
        self.path = (lock_dir or default_lock_dir()) / _file_name(self.key)
        """The lock file."""
        self._fd: int | None = None

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock without waiting; write ``holder`` (plus target and endpoint) into it.

        Raises:
            RunLockedError: another run holds it (the message names the holder).
            LockDirError: the lock directory or file cannot be used.
        """
        _prepare_dir(self.path.parent)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise LockDirError(
                f"cannot open the run lock file {self.path}: {exc.strerror}"
                + (
                    " (created by another user without write access for others)"
                    if exc.errno == errno.EACCES
                    else ""
                )
            ) from None
        try:
            st = os.fstat(fd)
            if st.st_uid == os.geteuid() and st.st_mode & 0o666 != 0o666:
                os.fchmod(fd, 0o666)  # other users (and sudo) must be able to lock it too
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"target {self.key} (endpoint {self.endpoint!r}): another run is active, locked by "
                f"{describe_holder(self.path)}; wait for it to finish (one run per target at a time, "
                f"lock {self.path})"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, json.dumps({**holder, "endpoint": self.endpoint, "target": self.key}, default=str).encode(), 0
        )
        self._fd = fd

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None


def describe_holder(path: Path) -> str:
    """``user alice (pid 1234 on jump1), runbook X on endpoint 'app', run ID, started T``."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info:
        return "a run whose holder is not recorded yet"
    who = f"user {info.get('user', '?')}"
    if info.get("sudo_user"):
        who += f" (sudo from {info['sudo_user']})"
    where = [f"pid {info['pid']}" if info.get("pid") is not None else None]
    if info.get("host"):
        where.append(f"on {info['host']}")
    parts = [who + " (" + " ".join(w for w in where if w) + ")"]
    if info.get("runbook"):
        parts.append(
            f"runbook {info['runbook']}"
            + (f" on endpoint {info['endpoint']!r}" if info.get("endpoint") else "")
        )
    if info.get("run_id"):
        parts.append(f"run {info['run_id']}")
    if info.get("started"):
        parts.append(f"started {info['started']}")
    return ", ".join(parts)


def lock_held(path: str | Path) -> bool:
    """Whether some process holds the lock file ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from ``/proc``; None if unknown."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        start_ticks = int(stat_line.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + start_ticks / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, since: str | None = None) -> bool:
    """Whether process ``pid`` of this machine is alive (and, if known, started before ``since``).

    ``since`` (ISO 8601) rules out a pid reused by a process started after the run began.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if since:
        started = _process_start(pid)
        try:
            began = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return True
        if started is not None and started > began + 2:  # btime has a resolution of 1 s
            return False
    return True


def run_is_active(start: Mapping[str, Any]) -> bool:
    """Whether the run whose ``run_start`` audit record is ``start`` may still be running.

    True while the lock file it recorded is held, or while its process is alive on
    this machine: such a run is never declared "outcome unknown".
    """
    lock = start.get("lock")
    if isinstance(lock, str) and lock_held(lock):
        return True
    pid = start.get("pid")
    operator = start.get("operator")
    host = operator.get("host") if isinstance(operator, Mapping) else None
    if isinstance(pid, int) and host == socket.gethostname():
        ts = start.get("ts")
        return process_alive(pid, ts if isinstance(ts, str) else None)
    return False
