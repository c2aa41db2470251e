"""One full check of an endpoint, as the CLI and the TUI run it: the probe, then,
for an endpoint that says where its certificate is stored, served vs stored.

The probe engine stays network-only; reading the stored certificate needs SSH,
so the two facts are joined here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from certpager.config import Endpoint, Settings
from certpager.probe import EndpointReport, check_endpoint
from certpager.probe.engine import check_endpoints, stream_endpoints, with_findings

if TYPE_CHECKING:
    from certpager.stored import StoredComparison


def stored_facts(comparison: StoredComparison) -> dict[str, object]:
    """The served-vs-stored comparison as plain facts (JSON and the detail screen)."""
    facts: dict[str, object] = {"location": comparison.location}
    if comparison.error is not None:
        facts["state"] = "not compared"
        facts["error"] = comparison.error
        return facts
    stored = comparison.stored
    facts["state"] = "differs (renewed but not reloaded)" if comparison.differing else "same as served"
    if stored is not None:
        facts["serial"] = stored.serial
        facts["sha256"] = stored.sha256
        facts["not_after"] = stored.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    if comparison.differing:
        facts["differing_backends"] = list(comparison.differing)
    return facts


async def check_full(
    endpoint: Endpoint, *, settings: Settings | None = None, now: datetime | None = None
) -> EndpointReport:
    """Probe ``endpoint`` and, when ``stored`` is configured, compare the stored
    certificate with the served one (``served_not_stored``). Never raises."""
    report = await check_endpoint(endpoint, settings=settings, now=now)
    if endpoint.stored is None or not any(b.handshake.ok for b in report.backends):
        return report
    # Imported here: it pulls in asyncssh, which a plain `certpager check` never needs.
    from certpager.stored import compare_stored

    comparison = await compare_stored(endpoint, report)
    return with_findings(
        report, [comparison.finding] if comparison.finding else [], {"stored": stored_facts(comparison)}
    )


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
