"""LocalRunner (an SSH target of ``local``): exit/signal matrix, stdin at EOF, timeout and
cancel end the whole process group, proven gone."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from certpager.ssh import LocalRunner, RemoteState


def alive(token: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines() if token in line]


@pytest.mark.parametrize(
    ("command", "status", "signal_name"),
    [
        ("exit 0", 0, None),
        ("exit 1", 1, None),
        ("exit 2", 2, None),
        ("no-such-command-xyz", 127, None),
        ("exit 255", 255, None),
        ("kill -TERM $$", None, "TERM"),
        ("kill -KILL $$", None, "KILL"),
        ("kill -SEGV $$", None, "SEGV"),
    ],
)
async def test_exit_status_and_signal_matrix(
    command: str, status: int | None, signal_name: str | None
) -> None:
    result = await LocalRunner().run(command, timeout=30)
    assert (result.exit_status, result.exit_signal) == (status, signal_name)
    assert result.remote_state is RemoteState.ENDED


async def test_output_lines_and_no_final_newline() -> None:
    lines: list[tuple[str, str]] = []
    result = await LocalRunner().run(
        "printf 'a\\nb'; printf 'err' >&2",
        timeout=30,
        on_output=lambda stream, line: lines.append((stream, line)),
    )
    assert result.ok and sorted(lines) == [("stderr", "err"), ("stdout", "a"), ("stdout", "b")]
    assert (result.stdout_bytes, result.stderr_bytes) == (3, 3)


async def test_stdin_is_at_eof_so_prompts_fail_fast() -> None:
    started = time.monotonic()
    result = await LocalRunner().run("read answer", timeout=30)
    assert result.exit_status == 1 and time.monotonic() - started < 10


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_timeout_kills_the_whole_group(tmp_path: Path, ignore_term: bool) -> None:
    token = f"certpager-local-{secrets.token_hex(4)}"
    marker = tmp_path / "marker"
    trap = "trap '' TERM; " if ignore_term else ""
    command = f"{trap}sh -c 'sleep 300; touch {marker}' {token} & sh -c 'sleep 301; :' {token}; wait"
    started = time.monotonic()
    result = await LocalRunner().run(command, timeout=1)
    elapsed = time.monotonic() - started
    assert result.timed_out and not result.ok
    assert result.remote_state is RemoteState.ENDED, result.remote_note
    assert elapsed < 30
    assert alive(token) == []
    assert not marker.exists()


async def test_cancel_ends_the_command() -> None:
    token = f"certpager-local-{secrets.token_hex(4)}"
    cancel = asyncio.Event()
    lines: list[str] = []

    def on_output(stream: str, line: str) -> None:
        lines.append(line)
        cancel.set()

    result = await LocalRunner().run(
        f"echo started; exec sh -c 'sleep 300; :' {token}", timeout=60, on_output=on_output, cancel=cancel
    )
    assert result.cancelled and lines == ["started"]
    assert result.remote_state is RemoteState.ENDED
    assert alive(token) == []


async def test_read_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    assert await LocalRunner().read_file(str(tmp_path / "f")) == b"data"
    from certpager.errors import SSHError

    with pytest.raises(SSHError, match="no such file"):
        await LocalRunner().read_file(str(tmp_path / "missing"))
    assert os.getpid() > 0
