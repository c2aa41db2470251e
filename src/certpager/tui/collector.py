"""When Python's cyclic garbage collector walks the app's objects.

At 10,000 endpoints the reports, rows and widgets are a few hundred thousand objects
that live long. Left to itself the collector walked all of them about once a second, a
full pass stopping the event loop 100-350 ms (bench/tui_fleet.py, 10,000 endpoints,
1,000 reports a second): the longest stalls between a key and its frame. Here the
objects that survived are moved, every :data:`TICK` seconds, into the permanent generation
(``gc.freeze``), which the collector's automatic passes do not walk; frozen objects
are still freed by reference counting when a new report replaces an old one. A full
pass over everything (which also frees the cycles that died after being frozen) runs
when no key has been pressed for a while (at most every :data:`IDLE_FULL_INTERVAL`
seconds), and at least every :data:`FULL_INTERVAL` seconds, so memory stays bounded in a
session of continuous typing.

The collector's own passes over the oldest generation are turned off while the app runs
(:meth:`Collector.start`): between two freezes that generation holds what survived the
last seconds of a stream of reports (tens of thousands of objects, nearly all alive), and
its automatic passes (one every hundred young collections, which Textual's rendering makes
several times a second) stopped the loop 12-23 ms each, in the middle of a key's frame. The
full passes above cover what they would have freed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

TICK = 2.0
"""Seconds between two :meth:`Collector.tick` calls (the app's interval)."""

IDLE = 2.0
"""No key or click for this many seconds: a full pass does not delay one."""

IDLE_FULL_INTERVAL = 10.0
"""Seconds at least between two full passes while idle (each walks every object)."""

FULL_INTERVAL = 60.0
"""Seconds at most between two full passes, however busy the keyboard."""

OLDEST_OFF = 1_000_000
"""Middle-generation passes before an automatic pass over the oldest: never, in practice."""


class Collector:
    """Paces the collector's full passes by the user's input."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_input = self._last_full = clock()  # no full pass right after the first frame
        self._thresholds: tuple[int, int, int] | None = None
        """The collector's thresholds before :meth:`start` (None: not started)."""

    def start(self) -> None:
        """Turn off the collector's automatic passes over the oldest generation (the full
        passes of :meth:`tick` take their place) until :meth:`stop`."""
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            young, middle, _ = self._thresholds
            gc.set_threshold(young, middle, OLDEST_OFF)

    def input(self) -> None:
        """A key was pressed or the mouse clicked."""
        self._last_input = self._clock()

    def tick(self) -> bool:
        """Collect (young generations, or everything when idle or overdue), then freeze what
        survived; True if it was a full pass."""
        now = self._clock()
        since_full = now - self._last_full
        idle = now - self._last_input >= IDLE
        full = (idle and since_full >= IDLE_FULL_INTERVAL) or since_full >= FULL_INTERVAL
        if full:
            gc.unfreeze()
            gc.collect()
            self._last_full = now
        else:
            gc.collect(1)
        gc.freeze()
        return full

    def stop(self) -> None:
        """Give every frozen object back to the collector and its thresholds back (the app
        has ended)."""
        gc.unfreeze()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
