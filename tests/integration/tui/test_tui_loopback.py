"""The TUI on the real probe: a loopback TLS server, real handshakes, no fakes."""

from __future__ import annotations

from collections.abc import Callable

import tuilab
from tests.support.pki import Hierarchy
from tests.support.tls_server import TLSServer

from certpager.config import Config, Endpoint, Settings
from certpager.probe import Status
from certpager.tui.app import build_app
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.widgets.endpoint_table import EndpointTable


async def test_real_handshakes_against_loopback_servers(
    ca: Hierarchy, serve: Callable[..., TLSServer]
) -> None:
    good = serve(*ca.serve_files("tui-good", ca.leaf("good.test", not_after=60)))
    soon = serve(*ca.serve_files("tui-soon", ca.leaf("soon.test", not_after=2)))
    partial = serve(*ca.serve_files("tui-partial", ca.leaf("partial.test", not_after=60), order="leaf"))
    root = str(ca.root_file)

    def ep(name: str, server: TLSServer, sni: str) -> Endpoint:
        return Endpoint(
            name=name,
            host="127.0.0.1",
            port=server.port,
            sni=sni,
            ca_file=root,
            check_protocols=False,
            timeout=10,
        )

    config = Config(
        endpoints=(
            ep("good", good, "good.test"),
            ep("soon", soon, "soon.test"),
            ep("partial", partial, "partial.test"),
            Endpoint(name="closed", host="127.0.0.1", port=_closed_port(), ca_file=root, timeout=5),
        ),
        settings=Settings(),
    )
    app = build_app(config, auto_refresh=False, readonly=True)  # the real checker and clock
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.wait_for(
            pilot, lambda: len(app.endpoints_screen.reports) == 4, rounds=20000, what="4 reports"
        )
        await tuilab.settle(pilot)
        rows = {r.name: r for r in app.endpoints_screen.query_one(EndpointTable).rows}
        assert rows["good"].status is Status.OK and rows["good"].tls_version == "TLSv1.3"
        assert rows["soon"].status is Status.PAGE
        assert rows["partial"].status is Status.CRITICAL
        assert rows["closed"].status is Status.ERROR
        assert app.endpoints_screen.query_one(EndpointTable).rows[0].name == "soon"
        app.show_endpoint("partial")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        text = tuilab.screen_text(app)
        assert "chain_incomplete" in text and "partial.test" in text
        assert good.handshakes >= 1 and partial.handshakes >= 1


def _closed_port() -> int:
    from certpager.lab.ports import free_port

    return free_port()
