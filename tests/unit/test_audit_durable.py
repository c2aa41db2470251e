"""Hostile corpus for the audit log's other classes: torn writes (failed and short writes,
fsync errors, a writer killed mid-line), permissions (directory and file), size (a run
start reads only the tail), and ``seq`` on every record. Real files, directories and
modes; failures are injected by replacing ``os.write``/``os.fsync``/``os.ftruncate`` for
one append. The real full filesystem is in tests/integration/test_audit_fullfs.py."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from certpager.errors import AuditError, UserError
from certpager.runbook.audit import TAIL_WINDOW, AuditLocationError, AuditLog, RunAudit

# ------------------------------------------------------------------ torn writes


def filled(tmp_path: Path, count: int = 20) -> tuple[AuditLog, bytes]:
    log = AuditLog(tmp_path / "log" / "audit.jsonl")
    for i in range(count):
        log.append({"type": "n", "i": i, "pad": "x" * (i * 7)})
    return log, log.path.read_bytes()


def short_write(keep: Callable[[int], int]) -> Callable[[int, Any], int]:
    """The first write() stores only ``keep(n)`` bytes; the next one finds the disk full."""
    real = os.write
    calls = [0]

    def write(fd: int, data: Any) -> int:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = keep(len(data))
        return real(fd, bytes(data)[:n]) if n else 0

    return write


def raising(code: int) -> Callable[..., Any]:
    def fail(*args: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


WRITE_FAILURES: list[tuple[str, str, Callable[..., Any]]] = [
    ("enospc", "write", raising(errno.ENOSPC)),
    ("eio", "write", raising(errno.EIO)),
    ("edquot", "write", raising(errno.EDQUOT)),
    ("efbig", "write", raising(errno.EFBIG)),
    ("short-zero", "write", short_write(lambda n: 0)),
    ("short-one-byte", "write", short_write(lambda n: 1)),
    ("short-half", "write", short_write(lambda n: n // 2)),
    ("short-all-but-newline", "write", short_write(lambda n: n - 1)),
    ("fsync-eio", "fsync", raising(errno.EIO)),
]


def test_a_write_cut_short_by_a_signal_is_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = filled(tmp_path)
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data)[: max(1, len(data) // 3)]))
    log.append({"type": "whole", "text": "w" * 3000})
    monkeypatch.undo()
    read = log.read()
    assert read.torn == [] and read.records[-1]["text"] == "w" * 3000


@pytest.mark.parametrize(("case", "name", "fake"), WRITE_FAILURES, ids=[c for c, _, _ in WRITE_FAILURES])
def test_a_failed_write_leaves_the_log_at_its_last_whole_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, name: str, fake: Callable[..., Any]
) -> None:
    log, before = filled(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(os, name, fake)
        with pytest.raises(AuditError) as failure:
            log.append({"type": "lost", "text": "y" * 5000})
    message = str(failure.value)
    assert "\n" not in message and str(log.path) in message and "was not written" in message
    assert "last whole record" in message
    assert log.path.read_bytes() == before  # nothing lost, nothing half-written
    log.append({"type": "after"})
    read = log.read()
    assert read.torn == [] and [r["type"] for r in read.records][-2:] == ["n", "after"]
    assert len(read.records) == 21


@pytest.mark.parametrize("cut", [1, 2, 17, 60])
def test_when_the_partial_line_cannot_be_removed_the_next_record_starts_a_new_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    log, before = filled(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", short_write(lambda n: cut))
        patch.setattr(os, "ftruncate", raising(errno.EIO))
        with pytest.raises(AuditError, match="the next record starts on a new line"):
            log.append({"type": "lost", "text": "z" * 200})
    assert log.path.read_bytes().startswith(before)
    log.append({"type": "after"})
    read = log.read()
    assert [r["i"] for r in read.records if r["type"] == "n"] == list(range(20))
    assert read.records[-1]["type"] == "after" and len(read.torn) == 1


@pytest.mark.parametrize(
    "tail", [b"{", b'{"v":1,"ts":"2026', b'{"type":"step_intent","run_id":"r",', b"\xff\xfe"]
)
def test_a_writer_killed_mid_line_costs_only_its_own_record(tmp_path: Path, tail: bytes) -> None:
    log, before = filled(tmp_path)
    with log.path.open("ab") as fh:
        fh.write(tail)
    log.append({"type": "after"})
    read = log.read()
    assert len(read.records) == 21 and read.records[-1]["type"] == "after" and len(read.torn) == 1
    assert log.path.read_bytes().startswith(before + tail + b"\n")


async def test_engine_stops_when_the_about_to_run_record_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from certpager.config import Endpoint, Thresholds
    from certpager.runbook import (
        ConfirmReply,
        ConfirmRequest,
        RunbookRun,
        RunOutcome,
        build_plan,
        parse_runbook,
    )
    from certpager.ssh import FakeRunner

    text = """
    name: rb
    title: t
    steps:
      - {id: one, where: local, run: [echo, one]}
      - {id: two, where: local, run: [echo, two]}
    """
    plan = build_plan(
        parse_runbook(textwrap.dedent(text), file="rb.yaml"),
        Endpoint("app", "app.test", thresholds=Thresholds()),
    )
    runner = FakeRunner()
    real_write = os.write
    log_path = tmp_path / "log" / "audit.jsonl"
    state = {"armed": False}

    def write(fd: int, data: Any) -> int:
        if state["armed"] and b'"step_intent"' in bytes(data) and b'"two"' in bytes(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    async def yes(request: ConfirmRequest) -> ConfirmReply:
        return ConfirmReply.yes()

    state["armed"] = True
    monkeypatch.setattr(os, "write", write)
    result = await RunbookRun(
        plan, confirm=yes, audit=AuditLog(log_path), local_runner=runner, lock_dir=tmp_path / "locks"
    ).execute()
    monkeypatch.undo()
    assert runner.commands == ["echo one"]  # step two never ran blind
    assert result.outcome is RunOutcome.FAILED and "No space left on device" in result.message
    records = AuditLog(log_path).read()
    assert records.torn == []
    assert [r["seq"] for r in records.records] == list(range(1, len(records.records) + 1))
    assert records.records[-1]["type"] == "run_end"


# ------------------------------------------------------------------ permissions

REFUSED_DIR_MODES = [0o770, 0o775, 0o777, 0o720, 0o702, 0o730, 0o1777, 0o1770]
ACCEPTED_DIR_MODES = [0o700, 0o755, 0o750, 0o711]


@pytest.mark.parametrize("mode", REFUSED_DIR_MODES, ids=[f"{m:o}" for m in REFUSED_DIR_MODES])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    folder.chmod(mode)
    log = AuditLog(folder / "audit.jsonl")
    for action in (log.check, lambda: log.append({"type": "x"})):
        with pytest.raises(AuditLocationError) as refused:
            action()
        message = str(refused.value)
        assert str(folder) in message and "\n" not in message
        assert (f"chmod 700 {folder}" in message) or ("directory of your own" in message)
    assert not (folder / "audit.jsonl").exists()
    assert isinstance(refused.value, UserError)  # exit 3 in the CLI


@pytest.mark.parametrize("mode", ACCEPTED_DIR_MODES, ids=[f"{m:o}" for m in ACCEPTED_DIR_MODES])
def test_a_private_directory_is_accepted(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    folder.chmod(mode)
    AuditLog(folder / "audit.jsonl").append({"type": "x"})
    assert stat.S_IMODE(os.stat(folder / "audit.jsonl").st_mode) == 0o600


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    os.chown(folder, 65534, 65534)
    with pytest.raises(AuditLocationError, match="owned by uid 65534"):
        AuditLog(folder / "audit.jsonl").check()


REFUSED_FILE_MODES = [0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o620, 0o602, 0o700 | 0o044]


@pytest.mark.parametrize("mode", REFUSED_FILE_MODES, ids=[f"{m:o}" for m in REFUSED_FILE_MODES])
def test_a_log_others_can_read_or_write_is_refused_untouched(tmp_path: Path, mode: int) -> None:
    log, before = filled(tmp_path, 3)
    log.path.chmod(mode)
    for action in (log.check, lambda: log.append({"type": "x"}), lambda: log.unfinished()):
        with pytest.raises(AuditLocationError, match=f"chmod 600 {log.path}"):
            action()
    assert log.path.read_bytes() == before
    assert stat.S_IMODE(os.stat(log.path).st_mode) == mode  # refused, not silently changed


def make_special(kind: str, path: Path, tmp_path: Path) -> None:
    if kind == "symlink":
        (tmp_path / "target").write_text("")
        path.symlink_to(tmp_path / "target")
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "parent-is-a-file":
        pass


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "fifo", "directory", "parent-is-a-file"])
def test_a_log_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o700)
    path = folder / "audit.jsonl"
    if kind == "parent-is-a-file":
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "audit.jsonl"
    make_special(kind, path, tmp_path)
    log = AuditLog(path)
    for action in (log.check, lambda: log.append({"type": "x"}), lambda: log.unfinished()):
        with pytest.raises(AuditError) as refused:
            action()
        assert "\n" not in str(refused.value) and str(
            path.parent if kind == "parent-is-a-file" else path
        ) in str(refused.value)
    if kind == "symlink":
        assert (tmp_path / "target").read_text() == ""
    if kind == "dangling-symlink":
        assert not (tmp_path / "nowhere").exists()


CONFIG = {"endpoints": [{"name": "bare", "host": "127.0.0.1", "port": 9}]}
RUNBOOK = """\
name: local-echo
title: echo on this machine
steps:
  - id: hello
    where: local
    run: [echo, hello]
"""


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    for name in ("config", "data", "state"):
        (tmp_path / name).mkdir()
    (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "local-echo.yaml").write_text(RUNBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERTPAGER_", "XDG_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    return env


def cli(tmp_path: Path, env: dict[str, str], audit: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "certpager", "--config", str(tmp_path / "endpoints.yaml"), "run"]
    argv += [str(tmp_path / "local-echo.yaml"), "--endpoint", "bare", "--audit-log", str(audit)]
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


@pytest.mark.parametrize("problem", ["group-writable-dir", "world-readable-log", "symlink-log", "fifo-log"])
def test_cli_refuses_an_unsafe_log_with_one_line_and_exit_3(
    tmp_path: Path, cli_env: dict[str, str], problem: str
) -> None:
    folder = tmp_path / "audit"
    folder.mkdir(mode=0o700)
    audit = folder / "audit.jsonl"
    if problem == "group-writable-dir":
        folder.chmod(0o770)
    elif problem == "world-readable-log":
        audit.write_text("")
        audit.chmod(0o644)
    elif problem == "symlink-log":
        audit.symlink_to(tmp_path / "elsewhere")
    else:
        os.mkfifo(audit, 0o600)
    done = cli(tmp_path, cli_env, audit)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certpager: ") and "Traceback" not in done.stderr
    assert "hello" not in done.stdout  # nothing ran


def test_cli_run_writes_a_private_log(tmp_path: Path, cli_env: dict[str, str]) -> None:
    audit = tmp_path / "audit" / "audit.jsonl"
    done = cli(tmp_path, cli_env, audit)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(audit.parent).st_mode) == 0o700


# ------------------------------------------------------------------ size


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Bytes read from files through os.pread/os.read, and Path.read_bytes forbidden."""
    sizes: list[int] = []
    real_pread, real_read = os.pread, os.read

    def pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        sizes.append(len(data))
        return data

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        sizes.append(len(data))
        return data

    def whole(self: AuditLog) -> Any:
        raise AssertionError("a run start read the whole log")

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(AuditLog, "read", whole)
    yield sizes


def huge_log(tmp_path: Path, size: int) -> AuditLog:
    """A log of ``size`` bytes: a hole (as if filled by old runs), then real records."""
    log = AuditLog(tmp_path / "log" / "audit.jsonl")
    log.append({"type": "first"})
    os.truncate(log.path, size)
    with log.path.open("ab") as fh:
        fh.write(b"\n")
    return log


@pytest.mark.parametrize("size", [TAIL_WINDOW + 1, 64 << 20, 300 << 20])
def test_run_start_reads_only_the_tail(tmp_path: Path, counted_reads: list[int], size: int) -> None:
    log = huge_log(tmp_path, size)
    done = RunAudit(log, "run-done")
    done.write("run_start", endpoint="a", runbook="r", pid=1)
    done.write("run_end", outcome="succeeded")
    crashed = RunAudit(log, "run-crashed")
    crashed.write("run_start", endpoint="b", runbook="certbot-force-renew", pid=4242)
    crashed.write("step_intent", step_id="renew", command="certbot renew")
    counted_reads.clear()
    log.check()
    (found,) = log.unfinished(is_active=lambda endpoint: False)
    log.acknowledge(found)
    assert found.run_id == "run-crashed" and found.open_steps == ("renew",)
    assert sum(counted_reads) <= TAIL_WINDOW + 4096
    assert log.unfinished() == []


def test_a_huge_single_line_does_not_break_the_tail_scan(tmp_path: Path, counted_reads: list[int]) -> None:
    log = AuditLog(tmp_path / "log" / "audit.jsonl")
    crashed = RunAudit(log, "run-old")
    crashed.write("run_start", endpoint="b", runbook="r", pid=1)
    with log.path.open("ab") as fh:
        fh.write(b'{"type":"junk","blob":"' + b"a" * (TAIL_WINDOW + 10) + b'"}\n')
    late = RunAudit(log, "run-late")
    late.write("run_start", endpoint="c", runbook="r", pid=2)
    counted_reads.clear()
    assert [u.run_id for u in log.unfinished()] == ["run-late"]  # run-old is past the window
    assert sum(counted_reads) <= TAIL_WINDOW + 4096


# ------------------------------------------------------------------ seq


def test_outcome_unknown_continues_the_runs_seq(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "log" / "audit.jsonl")
    crashed = RunAudit(log, "run-crashed")
    for kind in ("run_start", "connected", "step_intent"):
        crashed.write(kind, endpoint="b", step_id="s", command="c")
    other = RunAudit(log, "run-other")
    other.write("run_start", endpoint="c")
    other.write("run_end")
    found = [u for u in log.unfinished() if u.run_id == "run-crashed"]
    log.acknowledge(found[0])
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    mine = [r for r in records if r["run_id"] == "run-crashed"]
    assert [r["seq"] for r in mine] == [1, 2, 3, 4] and mine[-1]["type"] == "outcome_unknown"
    assert all("seq" in r for r in records)


def test_a_record_that_failed_takes_no_seq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "log" / "audit.jsonl")
    run = RunAudit(log, "r")
    run.write("run_start")
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", raising(errno.ENOSPC))
        with pytest.raises(AuditError):
            run.write("step_intent")
    run.write("run_end")
    assert [json.loads(line)["seq"] for line in log.path.read_text().splitlines()] == [1, 2]
