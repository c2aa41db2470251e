"""The wait every runner shares (certpager.ssh.base.wait_for_end): a command that ends by
itself is left alone; a timeout, a cancel or the caller's task being cancelled ends it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from certpager.ssh.base import LineSplitter, RemoteState, drain, pump, wait_for_end


class Terminator:
    """Records each call and says the command is gone."""

    def __init__(self, finished: asyncio.Future[None]) -> None:
        self.finished = finished
        self.calls = 0

    async def __call__(self) -> tuple[RemoteState, str]:
        self.calls += 1
        if not self.finished.done():
            self.finished.set_result(None)
        return RemoteState.ENDED, "process group 42 is gone"


async def test_a_command_that_ends_is_not_terminated() -> None:
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, finished.set_result, None)
    terminate = Terminator(finished)
    ending = await wait_for_end(finished, timeout=30, cancel=asyncio.Event(), terminate=terminate)
    assert (ending.timed_out, ending.cancelled, ending.remote_state, ending.note) == (
        False,
        False,
        RemoteState.ENDED,
        "",
    )
    assert terminate.calls == 0


async def test_a_timeout_terminates_and_says_so() -> None:
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    terminate = Terminator(finished)
    ending = await wait_for_end(finished, timeout=0.05, cancel=None, terminate=terminate)
    assert ending.timed_out and not ending.cancelled
    assert ending.note == "process group 42 is gone" and terminate.calls == 1


async def test_cancel_terminates_and_is_not_a_timeout() -> None:
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, cancel.set)
    terminate = Terminator(finished)
    ending = await wait_for_end(finished, timeout=30, cancel=cancel, terminate=terminate)
    assert ending.cancelled and not ending.timed_out and terminate.calls == 1


async def test_the_callers_task_cancelled_still_terminates_then_propagates() -> None:
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    terminate = Terminator(finished)
    task = asyncio.ensure_future(
        wait_for_end(finished, timeout=30, cancel=None, terminate=terminate, terminate_bound=5)
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert terminate.calls == 1


async def test_pump_feeds_lines_and_stops_at_a_listed_error() -> None:
    class Stream:
        def __init__(self) -> None:
            self.chunks = [b"one\ntw", b"o\n", b"three"]

        async def read(self, n: int) -> bytes:
            if not self.chunks:
                raise ConnectionResetError("gone")
            return self.chunks.pop(0)

    lines: list[tuple[str, str]] = []
    out = LineSplitter("stdout", lambda stream, line: lines.append((stream, line)))
    task = asyncio.ensure_future(pump(Stream(), out, errors=(OSError,)))
    await drain([task])
    assert lines == [("stdout", "one"), ("stdout", "two"), ("stdout", "three")]
    assert out.total == len(b"one\ntwo\nthree")


async def test_drain_stops_a_pump_that_never_ends() -> None:
    class Silent:
        async def read(self, n: int) -> bytes:
            await asyncio.sleep(3600)
            return b""

    task = asyncio.ensure_future(pump(Silent(), LineSplitter("stderr", None)))
    await drain([task], bound=0.05)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
