"""What the app is given instead of reaching for globals: a checker, a clock, a schedule.

Tests and the screenshot script inject fakes here (a checker returning canned
reports, a frozen clock); the real app uses :func:`certpager.probe.check_endpoint`
and the wall clock. No Textual in this module.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from certpager.check.monitor import check_full
from certpager.config import Endpoint, Settings
from certpager.probe import EndpointReport
from certpager.probe.engine import internal_error_report

Checker = Callable[[Endpoint], Awaitable[EndpointReport]]
"""Probe one endpoint; should never raise (a raise is turned into an error report)."""

Clock = Callable[[], datetime]
"""The current time, timezone-aware UTC."""

JITTER = 0.1
"""Re-probe intervals vary by up to this fraction, so endpoints do not probe in lockstep."""


def system_clock() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)


def default_checker(settings: Settings, clock: Clock = system_clock) -> Checker:
    """The real probe: :func:`certpager.check.monitor.check_full` (the probe, then, for an
    endpoint that says where its certificate is stored, served vs stored)."""

    async def check(endpoint: Endpoint) -> EndpointReport:
        return await check_full(endpoint, settings=settings, now=clock())

    return check


async def safe_check(checker: Checker, endpoint: Endpoint, clock: Clock) -> EndpointReport:
    """Run ``checker``; if it raises (a bug), return an error report saying so instead."""
    try:
        return await checker(endpoint)
    except Exception as exc:
        return internal_error_report(endpoint, exc, clock())


@dataclass
class Schedule:
    """When each endpoint is next due for a re-probe (monotonic seconds), with jitter."""

    interval: float
    """Seconds between probes of one endpoint (before jitter)."""
    rng: random.Random = field(default_factory=random.Random)
    """Source of jitter (seeded in tests)."""
    due: dict[str, float] = field(default_factory=dict)
    """Endpoint name -> monotonic time it is next due."""

    def probed(self, name: str, at: float) -> None:
        """``name`` was just probed at monotonic time ``at``: plan the next one."""
        self.due[name] = at + self.interval * (1 + self.rng.uniform(-JITTER, JITTER))

    def pop_due(self, at: float, names: Iterable[str]) -> list[str]:
        """Names among ``names`` due at ``at`` (not yet scheduled counts as due)."""
        out = [n for n in names if self.due.get(n, 0.0) <= at]
        for n in out:
            self.due[n] = float("inf")  # until the probe reports back
        return out
