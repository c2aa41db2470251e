"""2,000 endpoints load, sort and filter without blocking input (reliability-plan T67).

No timing assertions: the test checks that keys typed while 2,000 probes are in
flight (and while their reports stream in) are handled and give the right rows.
"""

from __future__ import annotations

import asyncio
import dataclasses

import tuilab

from certpager.config import Config, Endpoint, Settings
from certpager.probe import EndpointReport, Status
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.summary import StatusSummary

N = 2000


def big_config() -> Config:
    ca = str(tuilab.ROOT_PEM)
    tags = ("prod", "staging", "internal", "edge")
    endpoints = tuple(
        Endpoint(
            name=f"ep-{i:04d}", host=f"host{i}.example", port=443 + i % 3, tags=(tags[i % 4],), ca_file=ca
        )
        for i in range(N)
    )
    return Config(endpoints=endpoints, settings=Settings(concurrency=50))


class ManyChecker:
    """Answers from nine real reports, renamed per endpoint; held at a gate until released."""

    def __init__(self) -> None:
        lab = {ep.name: ep for ep in tuilab.endpoints()}
        specs = tuilab.scenario()
        self.templates = [tuilab.build(lab[name], spec, tuilab.NOW) for name, spec in specs.items()]
        self.gate = asyncio.Event()
        self.calls = 0

    async def __call__(self, endpoint: Endpoint) -> EndpointReport:
        self.calls += 1
        await self.gate.wait()
        template = self.templates[int(endpoint.name[3:]) % len(self.templates)]
        return dataclasses.replace(template, name=endpoint.name, host=endpoint.host, port=endpoint.port)


async def test_two_thousand_endpoints_load_and_filter_while_probing() -> None:
    checker = ManyChecker()
    app = tuilab.build_app(big_config(), checker=checker, clock=tuilab.frozen_clock, auto_refresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.endpoints_screen.query_one(EndpointTable)
        await tuilab.wait_for(pilot, lambda: checker.calls == 50, what="the first 50 probes (concurrency)")
        assert len(table.rows) == N and all(r.checking for r in table.rows)
        # Keys work while every probe is pending.
        await pilot.press("G")
        assert table.cursor == N - 1
        await pilot.press("g", "j", "j", "j")
        assert table.cursor == 3
        await pilot.press("slash", *"ep-19")
        await pilot.pause()
        assert {r.name for r in table.rows} == {f"ep-{i:04d}" for i in range(N) if "ep-19" in f"ep-{i:04d}"}
        # Release the network: reports stream in while we keep typing.
        checker.gate.set()
        await pilot.press("9", "9")
        await pilot.pause()
        assert [r.name for r in table.rows] == ["ep-1999"]
        await tuilab.settle(pilot)
        assert [r.name for r in table.rows] == ["ep-1999"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.rows) == N
        # worst first over all 2,000
        assert table.rows[0].status is Status.PAGE and table.rows[-1].status is Status.OK
        summary = app.endpoints_screen.query_one(StatusSummary)
        assert sum(summary.counts.values()) == N and summary.checking == 0
        await pilot.press("slash", *"tag:edge")
        await pilot.pause()
        assert len(table.rows) == N // 4
        assert app.is_running
