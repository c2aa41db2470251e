"""The garbage collector's pacing: survivors frozen while keys are pressed, everything
(cycles that died frozen included) collected when idle or overdue."""

from __future__ import annotations

import gc
import weakref

from certpager.tui.collector import FULL_INTERVAL, IDLE, IDLE_FULL_INTERVAL, Collector


class Node:
    """An object in a reference cycle (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.me = self


def test_busy_ticks_freeze_survivors_and_an_idle_tick_frees_cycles_that_died_frozen() -> None:
    now = [100.0]
    collector = Collector(clock=lambda: now[0])
    try:
        node = Node()
        ref = weakref.ref(node)
        collector.input()
        assert collector.tick() is False  # a key was just pressed: young generations only
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()  # the collector's passes do not walk frozen objects
        assert ref() is not None
        now[0] += IDLE
        assert collector.tick() is False  # idle, but a full pass is not due yet
        assert ref() is not None
        now[0] += IDLE_FULL_INTERVAL
        assert collector.tick() is True
        assert ref() is None
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0


def test_a_full_pass_comes_at_least_every_full_interval_however_busy_the_keyboard() -> None:
    now = [100.0]
    collector = Collector(clock=lambda: now[0])
    try:
        fulls = []
        for _ in range(int(2 * FULL_INTERVAL)):
            now[0] += 1.0
            collector.input()
            fulls.append(collector.tick())
        assert sum(fulls) == 2
    finally:
        collector.stop()


def test_the_oldest_generation_is_left_to_the_full_passes_until_stop() -> None:
    before = gc.get_threshold()
    collector = Collector()
    collector.start()
    try:
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] >= 1_000_000  # no automatic pass over the oldest
        collector.start()  # twice: still the thresholds from before the first
    finally:
        collector.stop()
    assert gc.get_threshold() == before
    collector.stop()  # not started: nothing to give back
    assert gc.get_threshold() == before


async def test_the_app_turns_the_oldest_passes_off_while_it_runs_and_back_on_after() -> None:
    import tuilab

    before = gc.get_threshold()
    app = tuilab.make_app(tuilab.FakeChecker())
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        assert gc.get_threshold()[2] >= 1_000_000
    assert gc.get_threshold() == before
