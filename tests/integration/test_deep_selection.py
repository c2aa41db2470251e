"""``check_endpoint(checks=...)``: the deeper checks a caller asks for, against a real TLS
server on loopback. A check left out reports what it reports when the config turns it
off, and opens no connection."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.pki import Hierarchy
from tests.support.tls_server import TLSServer

from certpager.check.report import report_json
from certpager.config import Endpoint
from certpager.probe.engine import check_endpoint
from certpager.probe.model import (
    ALL_CHECKS,
    NO_BACKEND_FACTS,
    NO_CHECKS,
    NO_ENDPOINT_FACTS,
    DeepCheck,
    EndpointReport,
    ProtocolsResult,
)


@pytest.fixture(scope="module")
def files(ca: Hierarchy) -> tuple[Path, Path]:
    return ca.serve_files("deep-selection", ca.leaf("app.test"))


def _endpoint(port: int, ca: Hierarchy, **kw: object) -> Endpoint:
    return Endpoint(
        name="sel",
        host="127.0.0.1",
        port=port,
        sni="app.test",
        ca_file=str(ca.root_file),
        timeout=5.0,
        **kw,  # type: ignore[arg-type]
    )


def _stable(report: EndpointReport) -> dict[str, object]:
    """The JSON object without what changes between two runs (timings)."""
    out = report_json(report)
    out.pop("timings")
    for b in out["backends"]:  # type: ignore[attr-defined]
        b.pop("timings")
    return out


async def _accepted(server: TLSServer) -> int:
    await asyncio.sleep(0.1)
    return server.accepted


async def test_leaving_checks_out_equals_turning_them_off(
    files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    server = serve(*files)
    left_out = ALL_CHECKS - {DeepCheck.PROTOCOLS, DeepCheck.NO_SNI}
    selected = await check_endpoint(_endpoint(server.port, ca), now=now, checks=left_out)
    assert await _accepted(server) == 1  # the main handshake only

    off = serve(*files)
    flags = await check_endpoint(_endpoint(off.port, ca, check_protocols=False, check_no_sni=False), now=now)
    assert await _accepted(off) == 1
    sel_json, flags_json = _stable(selected), _stable(flags)
    for obj in (sel_json, flags_json):
        obj.pop("port")
        for b in obj["backends"]:  # type: ignore[attr-defined]
            b.pop("port")
    assert sel_json == flags_json
    assert selected.deep.protocols == ProtocolsResult(checked=False)
    assert selected.deep.no_sni is None
    assert selected.deep.http is not None and selected.deep.http.off


async def test_no_checks_is_the_main_handshake_alone(
    files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    server = serve(*files)
    report = await check_endpoint(_endpoint(server.port, ca), now=now, checks=NO_CHECKS)
    assert await _accepted(server) == 1
    assert report.deep == NO_ENDPOINT_FACTS and report.backends[0].deep == NO_BACKEND_FACTS
    assert report.deep.as_json() == {} and report.status.value == "ok"


async def test_the_local_checks_alone(
    files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    server = serve(*files)
    report = await check_endpoint(
        _endpoint(server.port, ca), now=now, checks=frozenset({DeepCheck.CLIENT_AUTH, DeepCheck.PINS})
    )
    assert await _accepted(server) == 1
    deep = report.deep
    assert deep.client_auth is not None and deep.client_auth.state == "not_requested"
    assert deep.backends is None  # not asked for
    assert deep.spki_pins is not None and [p.role for p in deep.spki_pins] == ["leaf", "intermediate", "root"]
    backend = report.backends[0].deep
    assert backend.client_auth is not None and backend.protocols is None
    assert list(report.deep.as_json())[:3] == ["client_auth", "client_ca_names", "spki_pins"]
