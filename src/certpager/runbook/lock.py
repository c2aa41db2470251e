"""One run per endpoint at a time, across processes: an ``flock`` on a per-endpoint file.

The lock lives in ``$XDG_STATE_HOME/certpager/locks`` (default
``~/.local/state/certpager/locks``). The kernel releases it when the holding
process dies, so a crash never leaves a stale lock; the file keeps a note of
the holder (pid, user, runbook, start time) for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from certpager.errors import RunLockedError


def default_lock_dir() -> Path:
    """``$XDG_STATE_HOME/certpager/locks``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "certpager" / "locks"


def _file_name(endpoint: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", endpoint)[:80]
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:12]
    return f"{safe}-{digest}.lock"


class EndpointLock:
    """The run lock of one endpoint."""

    def __init__(self, endpoint: str, lock_dir: Path | None = None):
        self.endpoint = endpoint
        """Endpoint name."""
        self.path = (lock_dir or default_lock_dir()) / _file_name(endpoint)
        """The lock file."""
        self._fd: int | None = None

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock without waiting.

        Raises:
            RunLockedError: another run holds it (the message names the holder).
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"endpoint {self.endpoint!r}: another run is active ({self._describe_holder()}); "
                "wait for it to finish (one run per endpoint at a time)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder, default=str).encode())
        self._fd = fd

    def _describe_holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "holder unknown"
        parts = []
        for key, label in (("runbook", "runbook"), ("user", "user"), ("pid", "pid"), ("started", "started")):
            if info.get(key) is not None:
                parts.append(f"{label} {info[key]}")
        return ", ".join(parts) or "holder unknown"

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


def is_locked(endpoint: str, lock_dir: Path | None = None) -> bool:
    """Whether a run on ``endpoint`` is active in some process right now."""
    path = (lock_dir or default_lock_dir()) / _file_name(endpoint)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
