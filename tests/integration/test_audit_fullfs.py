"""The audit log on a real full filesystem (a 64 KiB tmpfs, mounted for the test and
unmounted after): the record that does not fit is not written, nothing already written is
lost, the log still ends with a whole record, and once space is back appending works."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from certpager.errors import AuditError
from certpager.runbook.audit import AuditLog, RunAudit


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir(mode=0o700)
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("record_size", [100, 3000, 20000, 70000])
def test_disk_full_loses_nothing_and_leaves_whole_records(small_fs: Path, record_size: int) -> None:
    log = AuditLog(small_fs / "certpager" / "audit.jsonl")
    run = RunAudit(log, "run-full")
    written = 0
    message = ""
    for i in range(1000):
        try:
            run.write("step_result", step_id=f"s{i}", stdout="o" * record_size)
        except AuditError as exc:
            message = str(exc)
            break
        written += 1
    assert message, "the filesystem never filled up"
    assert "No space left on device" in message and "\n" not in message and str(log.path) in message
    data = log.path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    read = log.read()
    assert read.torn == [] and len(read.records) == written
    assert [r["seq"] for r in read.records] == list(range(1, written + 1))
    # Space comes back (the operator frees some): the next record follows the last whole one.
    if written:
        keep = b"".join(data.splitlines(keepends=True)[: max(written // 2, 1)])
        with open(log.path, "r+b") as fh:
            fh.truncate(len(keep))
    run.write("run_end", outcome="failed")
    read = log.read()
    assert read.torn == [] and read.records[-1]["type"] == "run_end"


def test_disk_full_with_a_filler_file_then_space_freed(small_fs: Path) -> None:
    log = AuditLog(small_fs / "certpager" / "audit.jsonl")
    for i in range(5):
        log.append({"type": "n", "i": i})
    before = log.path.read_bytes()
    filler = small_fs / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as fh:
        while True:
            fh.write(b"f" * 4096)
            fh.flush()
    with pytest.raises(AuditError, match="No space left on device"):
        log.append({"type": "big", "blob": "b" * 8192})
    assert log.path.read_bytes() == before
    filler.unlink()
    log.append({"type": "after"})
    read = log.read()
    assert read.torn == [] and [r.get("i") for r in read.records[:5]] == list(range(5))
    assert read.records[-1]["type"] == "after"
