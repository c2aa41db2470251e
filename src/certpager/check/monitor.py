"""One full check of an endpoint, as the CLI and the TUI run it: the probe, then,
for an endpoint that says where its certificate is stored, served vs stored.

The probe engine stays network-only; reading the stored certificate needs SSH,
so the two facts are joined here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from certpager.config import Endpoint, Settings
from certpager.probe import EndpointReport, check_endpoint
from certpager.probe.engine import check_endpoints, stream_endpoints

if TYPE_CHECKING:
    from certpager.check.stored import StoredComparison
    from certpager.probe.model import StoredFacts


def stored_facts(comparison: StoredComparison) -> StoredFacts:
    """The served-vs-stored comparison as the report's ``stored`` fact (see
    :func:`certpager.check.stored.stored_facts`)."""
    from certpager.check.stored import stored_facts as facts

    return facts(comparison)


async def check_full(
    endpoint: Endpoint, *, settings: Settings | None = None, now: datetime | None = None
) -> EndpointReport:
    """Probe ``endpoint`` and, when ``stored`` is configured, compare the stored
    certificate with the served one. Never raises.

    The stored certificate is read over SSH while the probe runs, within the same
    deadline (``endpoint.timeout``); when it cannot be read the report says so with a
    ``stored_unreadable`` finding. The findings a reload of a newer stored leaf
    clears recommend the reload (:meth:`certpager.check.stored.StoredComparison.apply`).
    """
    if endpoint.stored is None:
        return await check_endpoint(endpoint, settings=settings, now=now)
    # Imported here: it pulls in asyncssh, which a plain `certpager check` never needs.
    from certpager.check.stored import comparison_of, read_stored

    loop = asyncio.get_running_loop()
    read = asyncio.ensure_future(read_stored(endpoint, deadline=loop.time() + endpoint.timeout))
    try:
        report = await check_endpoint(endpoint, settings=settings, now=now)
    except BaseException:
        read.cancel()
        with contextlib.suppress(BaseException):
            await read
        raise
    if not any(b.handshake.ok for b in report.backends):
        read.cancel()
        with contextlib.suppress(BaseException):
            await read
        return report
    return comparison_of(endpoint, report, await read).apply(report)


async def check_full_many(
    endpoints: Sequence[Endpoint],
    *,
    settings: Settings | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
    on_report: Callable[[int, EndpointReport], None] | None = None,
) -> list[EndpointReport]:
    """:func:`check_full` over many endpoints, at most ``concurrency`` at a time, in input order."""
    return await check_endpoints(
        endpoints,
        settings=settings,
        concurrency=concurrency,
        now=now,
        on_report=on_report,
        checker=check_full,
    )


async def stream_full(
    endpoints: Sequence[Endpoint],
    on_report: Callable[[int, EndpointReport], None],
    *,
    settings: Settings | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
) -> None:
    """:func:`check_full` over many endpoints, each report handed to ``on_report(index,
    report)`` as it completes and none kept (see :func:`certpager.probe.engine.stream_endpoints`)."""
    await stream_endpoints(
        endpoints, on_report, settings=settings, concurrency=concurrency, now=now, checker=check_full
    )
