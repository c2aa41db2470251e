"""The shared counter the workers take endpoint indices from (the workers themselves are
tested through the CLI in tests/integration/test_parallel.py)."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from certpager.check import parallel


def _all(counter: object, total: int) -> list[int]:
    taken = []
    while (index := parallel._take(counter, total)) is not None:  # type: ignore[arg-type]
        taken.append(index)
    return taken


@pytest.mark.parametrize("count", [1, 1000, 20_000], ids=["one", "1000", "20000"])
def test_every_ticket_once_then_none(count: int) -> None:
    counter = multiprocessing.get_context("fork").Value("q", 0)
    assert _all(counter, count) == list(range(count))
    assert parallel._take(counter, count) is None  # type: ignore[arg-type]


def test_two_processes_share_the_tickets_without_loss_or_repeat() -> None:
    counter = multiprocessing.get_context("fork").Value("q", 0)
    back_r, back_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        with os.fdopen(back_w, "w") as out:
            json.dump(_all(counter, 5000), out)
        os._exit(0)
    os.close(back_w)
    mine = _all(counter, 5000)
    with os.fdopen(back_r) as back:
        theirs = json.load(back)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mine == sorted(mine) and theirs == sorted(theirs)
    assert sorted(mine + theirs) == list(range(5000))
