"""The HTTP layer against Python servers on loopback: the plain-HTTP redirect, the
HSTS header of the HTTPS answer, and the hostile variants of both (never answers,
trickles, floods headers, sends garbage, hangs up), each bounded by the deadline."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.deep_servers import HttpServer, HttpsServer, http_response
from tests.support.pki import Hierarchy
from tests.support.tls_server import LoopbackServer

from certpager.config import Endpoint, HttpCheck
from certpager.lab.ports import free_port
from certpager.probe.engine import check_endpoint
from certpager.probe.model import EndpointReport, Severity, Status

HSTS_GOOD = "max-age=63072000; includeSubDomains; preload"
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def tls_files(ca: Hierarchy) -> tuple[Path, Path]:
    return ca.serve_files("deep-http", ca.leaf("app.test"))


@pytest.fixture
def start(zoo: Callable[[LoopbackServer], LoopbackServer]) -> Callable[[Any], Any]:
    return zoo  # type: ignore[return-value]


def _https(tls_files: tuple[Path, Path], hsts: str | None = HSTS_GOOD, **kw: Any) -> HttpsServer:
    headers = {"Strict-Transport-Security": hsts} if hsts is not None else {}
    kw.setdefault("default", http_response(200, headers, b"app\n"))
    return HttpsServer(*tls_files, min_version="TLSv1.2", **kw)


def _endpoint(https_port: int, http_port: int, ca: Hierarchy, **kw: Any) -> Endpoint:
    http = kw.pop("http", HttpCheck(port=http_port))
    return Endpoint(
        name="web",
        host="127.0.0.1",
        port=https_port,
        sni="app.test",
        ca_file=str(ca.root_file),
        http=http,
        check_protocols=False,
        check_no_sni=False,
        timeout=kw.pop("timeout", TIMEOUT),
        **kw,
    )


def _codes(report: EndpointReport) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


def _words(report: EndpointReport, code: str) -> str:
    return " | ".join(f.message for f in report.findings if f.code == code)


# --- redirect ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "location", "finding"),
    [
        pytest.param(301, "https://app.test/", None, id="301-same-host"),
        pytest.param(308, "https://app.test:8443/x", None, id="308-same-host-other-port"),
        pytest.param(302, "https://app.test/", "temporary redirect", id="302"),
        pytest.param(301, "https://www.app.test/", "another host", id="other-host"),
        pytest.param(301, "http://app.test/", "not HTTPS", id="to-http"),
        pytest.param(200, None, "answers 200 over plain HTTP", id="200"),
    ],
)
async def test_redirect(
    status: int,
    location: str | None,
    finding: str | None,
    tls_files: tuple[Path, Path],
    ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    https = start(_https(tls_files))
    headers = {"Location": location} if location else {}
    plain = start(HttpServer(default=http_response(status, headers)))
    report = await check_endpoint(_endpoint(https.port, plain.port, ca), now=now)
    codes = _codes(report)
    facts = report.deep.as_json()["redirect"]
    assert isinstance(facts, dict)
    assert facts["status"] == status and facts["location"] == location and facts["port"] == plain.port
    if finding is None:
        assert "no_https_redirect" not in codes
        assert facts["state"] == "redirects"
        assert report.status is Status.OK
    else:
        assert codes["no_https_redirect"] == Severity.WARNING
        assert finding in _words(report, "no_https_redirect")
        assert f"http://app.test:{plain.port}/" in _words(report, "no_https_redirect")
        assert facts["state"] == "no_redirect"
    # One plain GET for the endpoint's name, never following the redirect.
    assert len(plain.requests) == 1
    assert plain.requests[0].startswith(b"GET / HTTP/1.1\r\nHost: app.test\r\n")


async def test_closed_http_port_is_a_fact_not_a_finding(
    tls_files: tuple[Path, Path], ca: Hierarchy, start: Callable[[Any], Any], now: dt.datetime
) -> None:
    https = start(_https(tls_files))
    report = await check_endpoint(_endpoint(https.port, free_port(), ca), now=now)
    assert "no_https_redirect" not in _codes(report)
    assert report.deep.as_json()["redirect"]["state"] == "closed"  # type: ignore[index]
    assert "refused" in report.deep.as_json()["redirect"]["detail"]  # type: ignore[index]
    # hstspreload: with port 80 closed, nothing else stands between this and preload.
    assert report.deep.as_json()["hsts"]["preload_ready"] is True  # type: ignore[index]
    assert report.status is Status.OK


# --- HSTS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "code", "words"),
    [
        pytest.param(HSTS_GOOD, None, None, id="two-years-preload"),
        pytest.param("max-age=15552000", None, None, id="exactly-180-days"),
        pytest.param(None, "hsts_missing", "no Strict-Transport-Security header", id="missing"),
        pytest.param(
            "max-age=86400; includeSubDomains", "hsts_short", "below the 180-day minimum", id="one-day"
        ),
        pytest.param("max-age=0", "hsts_short", "forget HSTS", id="zero"),
        pytest.param("includeSubDomains", "hsts_missing", "invalid (no max-age", id="no-max-age"),
    ],
)
async def test_hsts(
    header: str | None,
    code: str | None,
    words: str | None,
    tls_files: tuple[Path, Path],
    ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    https = start(_https(tls_files, hsts=header))
    plain = start(HttpServer(default=http_response(301, {"Location": "https://app.test/"})))
    report = await check_endpoint(_endpoint(https.port, plain.port, ca), now=now)
    codes = _codes(report)
    facts = report.deep.as_json()["hsts"]
    assert isinstance(facts, dict)
    assert facts["header"] == header and facts["status"] == 200
    if code is None:
        assert not {"hsts_missing", "hsts_short"} & set(codes)
        assert report.status is Status.OK
    else:
        assert codes[code] == Severity.WARNING
        assert words is not None and words in _words(report, code)
        assert report.status is Status.WARNING
    if header == HSTS_GOOD:
        assert facts["max_age"] == 63072000 and facts["max_age_days"] == 730.0
        assert facts["include_subdomains"] is True and facts["preload"] is True
        assert facts["preload_ready"] is True and facts["preload_missing"] == []
    if header == "max-age=15552000":
        assert facts["preload_ready"] is False
        assert "includeSubDomains" in facts["preload_missing"]
    # The HSTS request went over its own HTTPS connection, for the endpoint's name.
    assert any(r.startswith(b"GET / HTTP/1.1\r\nHost: app.test\r\n") for r in https.requests)


async def test_hsts_minimum_is_configurable(
    tls_files: tuple[Path, Path], ca: Hierarchy, start: Callable[[Any], Any], now: dt.datetime
) -> None:
    https = start(_https(tls_files, hsts="max-age=86400"))
    plain = start(HttpServer(default=http_response(308, {"Location": "https://app.test/"})))
    ep = _endpoint(https.port, plain.port, ca, http=HttpCheck(port=plain.port, hsts_min_days=1))
    report = await check_endpoint(ep, now=now)
    assert not {"hsts_short", "hsts_missing", "no_https_redirect"} & set(_codes(report))


async def test_http_checks_off_touch_nothing(
    tls_files: tuple[Path, Path], ca: Hierarchy, start: Callable[[Any], Any], now: dt.datetime
) -> None:
    https = start(_https(tls_files, hsts=None))
    plain = start(HttpServer(default=http_response(200)))
    report = await check_endpoint(_endpoint(https.port, plain.port, ca, http=None), now=now)
    assert report.status is Status.OK
    assert report.deep.as_json()["http"] == {
        "state": "skipped",
        "detail": "HTTP checks are off for this endpoint",
    }
    assert plain.accepted == 0
    assert https.accepted == 1  # the main handshake only


# --- hostile servers ----------------------------------------------------------------------------

HOSTILE = [
    pytest.param("silent", "no complete HTTP response within", id="never-answers"),
    pytest.param("trickle", "no complete HTTP response within", id="trickles"),
    pytest.param("flood_headers", "larger than 64 KiB", id="huge-headers"),
    pytest.param("garbage", "did not answer HTTP", id="garbage"),
    pytest.param("close", "closed the connection without answering", id="hangs-up"),
]


@pytest.mark.parametrize(("mode", "words"), HOSTILE)
async def test_hostile_plain_http(
    mode: str,
    words: str,
    tls_files: tuple[Path, Path],
    ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    https = start(_https(tls_files))
    plain = start(
        HttpServer(mode, default=http_response(301, {"Location": "https://app.test/"}), interval=0.3)
    )
    began = time.monotonic()
    report = await check_endpoint(_endpoint(https.port, plain.port, ca), now=now)
    assert time.monotonic() - began < TIMEOUT + 1.0
    codes = _codes(report)
    assert codes.get("http_check_failed") == Severity.INFO
    assert "no_https_redirect" not in codes
    assert words in _words(report, "http_check_failed")
    assert report.deep.as_json()["redirect"]["state"] == "failed"  # type: ignore[index]
    assert report.status is Status.OK  # inconclusive is not a problem; HSTS was fine


@pytest.mark.parametrize(("mode", "words"), HOSTILE)
async def test_hostile_https_answer(
    mode: str,
    words: str,
    tls_files: tuple[Path, Path],
    ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    https = start(_https(tls_files, mode=mode, interval=0.3))
    plain = start(HttpServer(default=http_response(301, {"Location": "https://app.test/"})))
    began = time.monotonic()
    report = await check_endpoint(_endpoint(https.port, plain.port, ca), now=now)
    assert time.monotonic() - began < TIMEOUT + 1.0
    codes = _codes(report)
    assert report.backends[0].handshake.ok
    assert codes.get("http_check_failed") == Severity.INFO, report.findings
    assert not {"hsts_missing", "hsts_short"} & set(codes)
    assert words in _words(report, "http_check_failed")
    assert report.deep.as_json()["hsts"]["state"] == "failed"  # type: ignore[index]
