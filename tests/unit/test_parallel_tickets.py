"""The ticket pipe the workers take endpoints from (the workers themselves are tested
through the CLI in tests/integration/test_parallel.py)."""

from __future__ import annotations

import json
import os

import pytest

from certpager.check import parallel


def _all(fd: int) -> list[int]:
    taken = []
    while (index := parallel._take(fd)) is not None:
        taken.append(index)
    return taken


@pytest.mark.parametrize("count", [1, 1000, 20_000], ids=["one", "1000", "beyond-64KiB"])
def test_every_ticket_once_then_end_of_file(count: int) -> None:
    fd = parallel._ticket_pipe(count)
    assert fd is not None
    try:
        assert _all(fd) == list(range(count))
        assert parallel._take(fd) is None
    finally:
        os.close(fd)


def test_two_readers_share_the_tickets_without_loss_or_repeat() -> None:
    fd = parallel._ticket_pipe(5000)
    assert fd is not None
    back_r, back_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        with os.fdopen(back_w, "w") as out:
            json.dump(_all(fd), out)
        os._exit(0)
    os.close(back_w)
    mine = _all(fd)
    with os.fdopen(back_r) as back:
        theirs = json.load(back)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mine == sorted(mine) and theirs == sorted(theirs)
    assert sorted(mine + theirs) == list(range(5000))


def test_too_many_tickets_fall_back_to_fixed_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MAX_TICKETS", 10)
    assert parallel._ticket_pipe(11) is None
    fd = parallel._ticket_pipe(10)
    assert fd is not None
    os.close(fd)
