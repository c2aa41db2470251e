"""One run per target, across processes, users and environments (real ``certpager run``
subprocesses on the ``local`` SSH target; the lock directory is the config's
``settings.lock_dir``, shared by every process whatever its HOME and XDG dirs).

- a run on a target refuses a second run on it from another HOME/XDG environment, naming
  the holder ("locked by user ... (pid ...)"), also under another endpoint name;
- another user can open and ``flock`` the same lock file (mode 0666 in a 1777 directory);
- a run that is alive is never reported "outcome unknown", even by a process whose own
  lock directory differs; a SIGKILLed run leaves no lock and is reported once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CERTPAGER = [sys.executable, "-m", "certpager"]
SYSTEM_PYTHON = "/usr/bin/python3"

RUNBOOK = """\
name: hold
title: Hold the target until released
applies_to:
  endpoints: [app, app-alias, other]
params:
  started: {type: path, description: file touched when the step starts}
  release: {type: path, description: the step ends when this file exists}
steps:
  - id: hold
    title: Mark started, wait for the release file
    run: [sh, -c, "touch {started}; while [ ! -e {release} ]; do sleep 0.1; done"]
    timeout: 600
"""


@dataclass
class Lab:
    root: Path
    config: Path
    lock_dir: Path
    started: Path
    release: Path

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """A private HOME and XDG dirs named ``name`` (each process its own)."""
        home = self.root / f"home-{name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CERTPAGER_", "SSH_"))}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_DATA_HOME=str(home / "data"),
            XDG_STATE_HOME=str(home / "state"),
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def start(self, endpoint: str, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*CERTPAGER, "--config", str(self.config), "run", "hold", "--endpoint", endpoint, "--yes"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not self.started.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the first run ended early ({proc.returncode}): {out}{err}")
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the first run never started its step")
            time.sleep(0.05)
        return proc

    def run(self, endpoint: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CERTPAGER, "--config", str(self.config), "run", "hold", "--endpoint", endpoint, "--yes"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture
def lab() -> Iterator[Lab]:
    # Outside pytest's 0700 tmp dir, so another user can reach the lock directory.
    root = Path(tempfile.mkdtemp(prefix="certpager-lock-"))
    root.chmod(0o755)
    lock_dir = root / "shared-locks"
    (root / "runbooks").mkdir()
    started, release = root / "started", root / "release"
    (root / "runbooks" / "hold.yaml").write_text(RUNBOOK)
    # 'app' and 'app-alias' are one target; 'other' (another address) never waits.
    endpoints = "\n".join(
        f"  - {{name: {name}, host: {host}, port: 8443, ssh: local, runbooks: [hold], "
        f"params: {{started: {start}, release: {rel}}}}}"
        for name, host, start, rel in (
            ("app", "127.0.0.1", started, release),
            ("app-alias", "127.0.0.1", started, release),
            ("other", "127.0.0.2", root / "other-started", root),
        )
    )
    config = root / "endpoints.yaml"
    config.write_text(
        f"settings:\n  runbook_dirs: [{root / 'runbooks'}]\n  lock_dir: {lock_dir}\nendpoints:\n{endpoints}\n"
    )
    lab = Lab(root, config, lock_dir, started, release)
    try:
        yield lab
    finally:
        release.touch()
        time.sleep(0.3)  # the released loops exit; then the directory goes
        shutil.rmtree(root, ignore_errors=True)


def lock_files(lab: Lab) -> list[Path]:
    return sorted(lab.lock_dir.glob("*.lock"))


def test_a_second_run_on_the_same_target_is_refused_from_another_environment(lab: Lab) -> None:
    first = lab.start("app", lab.env("first"))
    try:
        for name, endpoint in (("second", "app"), ("third", "app-alias")):
            second = lab.run(endpoint, lab.env(name))
            assert second.returncode == 2, second.stdout + second.stderr
            assert f"locked by user root (pid {first.pid} on " in second.stderr
            assert "runbook hold on endpoint 'app'" in second.stderr
            assert "127.0.0.1:8443" in second.stderr and "outcome unknown" not in second.stderr
        # One lock file for the target, shareable by every user like /tmp.
        (lock,) = lock_files(lab)
        assert stat.S_IMODE(lab.lock_dir.stat().st_mode) == 0o1777
        assert stat.S_IMODE(lock.stat().st_mode) == 0o666
        holder = json.loads(lock.read_text())
        assert holder["pid"] == first.pid and holder["endpoint"] == "app" and holder["user"] == "root"
        # A different target is not held up.
        other = lab.run("other", lab.env("fourth"))
        assert "locked by" not in other.stderr
        lab.release.touch()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
    finally:
        lab.release.touch()
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=60)
    # Released: the next run proceeds (its step ends at once: the release file exists).
    again = lab.run("app-alias", lab.env("fifth"))
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root, runuser and the system python to act as another user",
)
def test_another_user_contends_for_the_same_lock_file(lab: Lab) -> None:
    """certpager's own interpreter is not reachable by ``nobody`` here, so the other user
    tries the lock file with the system python: it can open it, and the lock is held."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n"
        "    print('held')\nelse:\n    print('free')\n"
    )

    def as_nobody(path: Path) -> str:
        done = subprocess.run(
            ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = lab.start("app", lab.env("first"))
    try:
        (lock,) = lock_files(lab)
        assert as_nobody(lock) == "held"
        lab.release.touch()
        first.communicate(timeout=120)
        assert as_nobody(lock) == "free"
    finally:
        lab.release.touch()
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=60)


def test_a_live_run_is_never_outcome_unknown_and_a_killed_one_leaves_no_lock(lab: Lab) -> None:
    audit = lab.root / "shared-audit.jsonl"
    first = lab.start("app", lab.env("first", CERTPAGER_AUDIT_LOG=str(audit)))
    try:
        # Same audit log, but its own lock directory: the first run's lock is not in it,
        # yet the first run is alive, so it is not reported.
        elsewhere = lab.env(
            "second", CERTPAGER_AUDIT_LOG=str(audit), CERTPAGER_LOCK_DIR=str(lab.root / "own")
        )
        other = lab.run("other", elsewhere)
        assert other.returncode == 0, other.stdout + other.stderr
        assert "outcome unknown" not in other.stderr
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=60)
    # Killed: no lock is left (the kernel dropped it) and its run is reported once.
    lab.started.unlink()
    lab.release.touch()
    after = lab.run("app-alias", lab.env("third", CERTPAGER_AUDIT_LOG=str(audit)))
    assert after.returncode == 0, after.stdout + after.stderr
    assert "outcome unknown: run " in after.stderr and f"pid {first.pid}" in after.stderr
    again = lab.run("app", lab.env("fourth", CERTPAGER_AUDIT_LOG=str(audit)))
    assert again.returncode == 0 and "outcome unknown" not in again.stderr


def test_an_unusable_lock_directory_is_one_line_and_exit_3(lab: Lab) -> None:
    blocker = lab.root / "a-file"
    blocker.write_text("")
    result = lab.run("app", lab.env("first", CERTPAGER_LOCK_DIR=str(blocker / "locks")))
    assert result.returncode == 3
    assert result.stderr.startswith(f"certpager: cannot create the run lock directory {blocker / 'locks'}: ")
    assert "CERTPAGER_LOCK_DIR" in result.stderr and "Traceback" not in result.stderr
    assert not lab.started.exists()
