"""Run locks: the target key, the lock directory's defaults and safety checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certpager.config import Endpoint, Settings, SSHTarget
from certpager.errors import RunLockedError
from certpager.runbook.lock import EndpointLock, LockDirError, default_lock_dir, lock_held, target_key


def ep(name: str, host: str = "app.example.com", port: int = 443, ssh: str | None = "web1") -> Endpoint:
    return Endpoint(name=name, host=host, port=port, ssh=SSHTarget(host=ssh) if ssh else None)


def test_the_key_is_the_target_not_the_name() -> None:
    assert target_key(ep("a")) == target_key(ep("b")) == "web1:22 app.example.com:443"
    assert target_key(ep("a", host="APP.example.com.")) == target_key(ep("a"))
    assert target_key(ep("a", port=8443)) != target_key(ep("a"))
    assert target_key(ep("a", ssh="web2")) != target_key(ep("a"))
    assert target_key(ep("a", ssh="local")) == target_key(ep("a", ssh=None)) == "local app.example.com:443"
    # The SSH host as ~/.ssh/config resolves it wins over the configured alias.
    assert target_key(ep("a", ssh="alias"), "web1", 22) == target_key(ep("b"))
    assert target_key(ep("a", host="::1")) == "web1:22 [::1]:443"


def test_default_lock_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CERTPAGER_LOCK_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # ignored: the lock is machine-wide
    assert default_lock_dir() == Path("/run/lock/certpager")
    assert default_lock_dir(Settings(lock_dir="/srv/locks")) == Path("/srv/locks")
    monkeypatch.setenv("CERTPAGER_LOCK_DIR", str(tmp_path / "env"))
    assert default_lock_dir(Settings(lock_dir="/srv/locks")) == tmp_path / "env"


def test_two_names_for_one_target_share_the_lock(tmp_path: Path) -> None:
    first = EndpointLock(ep("a"), tmp_path / "locks")
    first.acquire({"pid": os.getpid(), "user": "alice", "host": "jump1", "runbook": "rb", "run_id": "r1"})
    try:
        assert lock_held(first.path)
        with pytest.raises(RunLockedError) as info:
            EndpointLock(ep("b"), tmp_path / "locks").acquire({"pid": 1})
        assert (
            f"locked by user alice (pid {os.getpid()} on jump1), runbook rb on endpoint 'a', run r1"
            in str(info.value)
        )
        EndpointLock(ep("c", port=8443), tmp_path / "locks").acquire({"pid": 1})  # another target
    finally:
        first.release()
    assert not lock_held(first.path)
    assert oct((tmp_path / "locks").stat().st_mode & 0o7777) == oct(0o1777)


def test_a_shared_directory_without_the_sticky_bit_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    shared = tmp_path / "locks"
    shared.mkdir()
    os.chown(shared, 65534, 65534)
    shared.chmod(0o777)
    with pytest.raises(LockDirError, match=r"writable by others but not sticky \(mode 777\).*chmod 1777"):
        EndpointLock(ep("a"), shared).acquire({"pid": 1})
