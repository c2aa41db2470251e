"""``certpager exporter`` against hostile clients: odd targets and parameters, odd methods and
protocol versions, scrape-timeout headers, slowloris, idle connections, and clients that leave
mid-probe. The exporter runs in the test's event loop (the ``start`` fixture of
tests/integration/test_exporter.py); every target is loopback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration import test_exporter
from tests.integration.test_exporter import Running, samples
from tests.support.hostile import SilentServer
from tests.support.hostile_http import Act, HostileHttp, response

from certpager.fleet import exporter as exporter_module
from certpager.lab.ports import reserve_port

Start = Callable[..., Any]
start = test_exporter.start
"""The exporter served in the test's event loop (the fixture of test_exporter.py)."""


@pytest.fixture
def closed_port() -> Any:
    """A loopback port where nothing listens (connections are refused at once)."""
    with reserve_port() as sock:
        yield sock.getsockname()[1]


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        # raw UTF-8 in the request line: was decoded as Latin-1 (mojibake in the error)
        ("/probe?target=b\u00fccher.test".encode(), "non-ASCII bytes: percent-encode them"),
        (b"/probe?target=b%C3%BCcher.test", "'b\u00fccher.test' is not a valid host name"),
        (b"/probe?target=%FF%FE:1", "is not a valid host name"),
        (b"/probe?target=127.0.0.1%0d%0aX-Evil:%201", "CARRIAGE RETURN"),
        (b"/probe?target=127.0.0.1%0a", "LINE FEED"),
        (b"/probe?target=127.0.0.1%00:1", "NULL"),
        (b"/probe?target=[::1", "unclosed '['"),
        (b"/probe?target=[::1]x", "unexpected 'x' after ']'"),
        (b"/probe?target=::1::2:3", "not a valid IPv6 address"),
        (b"/probe?target=127.0.0.1:0", "port 0 is out of range"),
        (b"/probe?target=127.0.0.1:65536", "port 65536 is out of range"),
        (b"/probe?target=127.0.0.1:-1", "port"),
        (b"/probe?target=127.0.0.1:abc", "'abc' is not a number"),
        (b"/probe?target=127.0.0.1:%EF%BC%91", "is not a number"),  # a fullwidth digit
        (b"/probe?target=127.0.0.1:443@a%20b", "SNI 'a b' is not a valid DNS name"),
        (b"/probe?target=127.0.0.1:443@", "SNI '' is not a valid DNS name"),
        (b"/probe?target=127.0.0.1:443@10.0.0.1", "is not a valid DNS name"),
        (b"/probe?target=127.0.0.1&target=127.0.0.2", "target given 2 times"),
        (b"/probe?target=127.0.0.1&endpoint=x", "give exactly one of"),
        (b"/probe?" + b"&".join([b"module=m"] * 20) + b"&target=127.0.0.1", "Max number of fields"),
        (b"/probe?endpoint=%1b%5b2J%07", "no endpoint named '\\x1b[2J\\x07'"),  # escaped once
        (b"/probe?target=a%0db", "target 'a\\x0db': "),  # was 'a\\\\x0db' (printable, then repr)
        (b"/probe?target=" + b"a" * 7000, "longer than 600 characters"),
    ],
)
async def test_bad_targets_are_one_line_400(start: Start, target: bytes, words: str) -> None:
    running: Running = await start()
    answer = await running.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", close=False)
    body = body_of(answer)
    assert status_of(answer) == 400, answer[:200]
    assert words in body, body
    assert body.count("\n") == 1 and "\x1b" not in body and "\x00" not in body and "\r" not in body


async def test_huge_request_lines_and_header_floods_are_431(start: Start) -> None:
    running: Running = await start()
    cases = [
        b"GET /probe?target=" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET /probe HTTP/1.1\r\n" + b"X-Flood: y\r\n" * 500 + b"\r\n",
        b"GET /probe HTTP/1.1\r\n" + (b"X-Big: " + b"z" * 8000 + b"\r\n") * 6 + b"\r\n",
    ]
    for data in cases:
        answer = await running.raw(data, close=False)
        assert status_of(answer) == 431, answer[:200]


@pytest.mark.parametrize(
    "target",
    [
        "/probe?target=%31%32%37.0.0.1:{port}",  # percent-encoded
        "/probe?target=[::1]:{port}",
        "/probe?target=127.0.0.1:{port}&module=tls&module=other",  # blackbox's module: ignored
        "/probe?target=127.0.0.1:{port}#fragment",
        "/probe?target=127.0.0.1:{port}@app.test",
    ],
)
async def test_odd_but_valid_targets_are_probed(start: Start, closed_port: int, target: str) -> None:
    running: Running = await start()
    status, body = await running.get(target.format(port=closed_port))
    assert status == 200, body
    assert samples(body, "probe_success")[0].value == 0  # nothing listens there


async def test_ipv6_without_brackets_is_the_address_on_port_443(start: Start) -> None:
    """``::1`` is the address (port 443); ``::1:8443`` is the address ``::1:8443``, not a port:
    brackets say which (docs/fleet.md). Both are answered, neither misread."""
    running: Running = await start()
    for target in ("::1", "[::1]"):
        resolved = await running.exporter.resolve({"target": [target]})
        assert (resolved.host, resolved.port) == ("::1", 443)


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (b"HEAD /probe?target=127.0.0.1:{port} HTTP/1.1\r\n\r\n", 200),
        (b"POST /probe?target=127.0.0.1:{port} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405),
        (b"PUT /probe HTTP/1.1\r\n\r\n", 405),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", 405),
        (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n", 405),
        (b"TRACE / HTTP/1.1\r\n\r\n", 405),
        (b"G\xc3\x89T / HTTP/1.1\r\n\r\n", 400),
        (b"GET /probe?target=127.0.0.1:{port} HTTP/1.0\r\n\r\n", 200),
        (b"GET /probe?target=127.0.0.1:{port} HTTP/0.9\r\n\r\n", 400),
        (b"GET /probe?target=127.0.0.1:{port}\r\n\r\n", 400),
    ],
)
async def test_methods_and_versions(start: Start, closed_port: int, request_: bytes, status: int) -> None:
    running: Running = await start()
    answer = await running.raw(request_.replace(b"{port}", str(closed_port).encode()), close=False)
    assert status_of(answer) == status, answer[:200]
    assert answer.startswith(b"HTTP/1.1 ") and b"\r\nConnection: close\r\n" in answer
    if request_.startswith(b"HEAD"):
        assert answer.endswith(b"\r\n\r\n")  # no body


async def test_keep_alive_gets_one_answer_and_close(start: Start, closed_port: int) -> None:
    """Two pipelined requests on a keep-alive connection: one answer, then the connection closes."""
    running: Running = await start()
    one = f"GET /probe?target=127.0.0.1:{closed_port} HTTP/1.1\r\nConnection: keep-alive\r\n\r\n".encode()
    answer = await running.raw(one + b"GET /metrics HTTP/1.1\r\n\r\n", close=False)
    assert answer.count(b"HTTP/1.1 ") == 1 and status_of(answer) == 200
    assert b"probe_success" in answer


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("0", 200),  # the shortest deadline
        ("0.0001", 200),
        ("100000", 200),  # capped (was a 400 saying '100000' is not a number)
        ("-1", 400),
        ("NaN", 400),
        ("inf", 400),
        ("1e308", 400),
        ("", 400),
        ("\u0661", 400),  # an Arabic-Indic digit
    ],
)
async def test_scrape_timeout_header_values(start: Start, closed_port: int, value: str, status: int) -> None:
    running: Running = await start()
    began = time.monotonic()
    got, body = await running.get(
        f"/probe?target=127.0.0.1:{closed_port}", {"X-Prometheus-Scrape-Timeout-Seconds": value}
    )
    assert got == status, body
    assert time.monotonic() - began < 5
    if status == 400:
        assert "X-Prometheus-Scrape-Timeout-Seconds" in body and body.count("\n") == 1


def test_scrape_deadline_bounds() -> None:
    deadline = exporter_module.scrape_deadline
    assert deadline({"x-prometheus-scrape-timeout-seconds": "0"}, 5) == exporter_module.MIN_DEADLINE
    assert deadline({"x-prometheus-scrape-timeout-seconds": "99999999"}, 5) == exporter_module.MAX_DEADLINE
    assert deadline({"x-prometheus-scrape-timeout-seconds": "10"}, 5) == 9.5
    assert deadline({}, 5) == 5


async def test_slowloris_one_header_byte_a_second_is_cut_off(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter_module, "READ_TIMEOUT", 1.5)
    running: Running = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    began = time.monotonic()
    sent, answer = 0, b""
    for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        sent += 1
        try:  # one byte every half second, reading whatever the exporter answers meanwhile
            answer = await asyncio.wait_for(reader.read(4096), 0.5)
        except TimeoutError:
            continue
        break
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - began < 5 and sent < 12


async def test_idle_connections_are_bounded(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections that never send a byte: at most MAX_CONNECTIONS held; the next is answered
    503 at once; once they go, the exporter serves again and holds nothing."""
    monkeypatch.setattr(exporter_module, "MAX_CONNECTIONS", 8)
    running: Running = await start()
    idle = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(8)]
    await asyncio.sleep(0.2)
    assert running.exporter.connections == 8
    began = time.monotonic()
    answer = await running.raw(b"GET /metrics HTTP/1.1\r\n\r\n", close=False, timeout=5)
    assert answer.startswith(b"HTTP/1.1 503 ") and time.monotonic() - began < 2
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(0.3)
    assert running.exporter.connections == 0
    status, _ = await running.get("/metrics")
    assert status == 200


async def _leave_mid_probe(running: Running, port: int, *, reset: bool) -> None:
    """Ask for a 10 s probe of a silent server, then hang up (FIN, or RST) after 0.5 s."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(
        f"GET /probe?target=127.0.0.1:{port} HTTP/1.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    if reset:
        writer.transport.abort()
    else:
        writer.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_a_client_leaving_mid_probe_frees_its_slot_at_once(
    start: Start, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], reset: bool
) -> None:
    """Before: the probe ran to its 10 s deadline holding the only slot (and Python 3.11's
    wait_for could swallow the cancellation); now it is cancelled when the client goes."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with SilentServer(max_seconds=20) as silent:
        running: Running = await start(concurrency=1)
        await _leave_mid_probe(running, silent.port, reset=reset)
        began = time.monotonic()
        for _ in range(60):  # polled: the exporter's handler ends on its own
            if not running.exporter.connections:
                break
            await asyncio.sleep(0.05)
        assert running.exporter.connections == 0
        assert running.exporter.in_flight._value.get() == 0
        # the only slot is free: the next probe is not queued behind the abandoned one
        status, _ = await running.get(
            f"/probe?target=127.0.0.1:{silent.port}", {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}
        )
        assert status == 200 and time.monotonic() - began < 3
    _, metrics = await running.get("/metrics")
    codes = {s.labels["code"]: s.value for s in samples(metrics, "certpager_exporter_requests_total")}
    assert codes.get("499") == 1, codes
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    assert "Traceback" not in capsys.readouterr().err


async def test_an_unexpected_error_is_a_500_line_not_a_traceback(
    start: Start,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("boom\x1b[2J")

    monkeypatch.setattr(exporter_module, "check_full", broken)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    running: Running = await start()
    status, body = await running.get("/probe?target=127.0.0.1:1")
    assert status == 500 and body.count("\n") == 1
    err = capsys.readouterr().err
    assert "internal error on /probe: RuntimeError: boom\\x1b[2J" in err and "Traceback" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    status, _ = await running.get("/metrics")  # still serving
    assert status == 200


async def test_endpoint_names_with_a_trickling_prometheus_are_bounded(
    start: Start, zoo: Any, tmp_path: Path
) -> None:
    """``endpoint=NAME`` of an exporter whose Prometheus trickles a byte every half second: the import
    gives up at its timeout (urllib's per-read timeout let it run on for as long as bytes came)
    and the answer says why the name is unknown."""
    server = zoo(HostileHttp(Act(response(200, {"status": "success"}), trickle=0.5)))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"prometheus: {{url: '{server.url}', timeout: 1}}\nendpoints: [{{name: a, host: 127.0.0.1, port: 1}}]\n"
    )
    running: Running = await start(config)
    began = time.monotonic()
    status, body = await running.get("/probe?endpoint=imported.test")
    assert status == 400 and time.monotonic() - began < 3
    assert "the last import failed" in body and "within 1 s" in body and body.count("\n") == 1


async def test_a_slow_import_is_waited_for_within_the_scrape_deadline_only(
    start: Start, zoo: Any, tmp_path: Path
) -> None:
    """A Prometheus that never answers, with a 10 s import timeout, and scrapes of 1.5 s: each
    scrape answers 503 at its own deadline (before: it waited the import's 10 s), and the
    waiting scrapes share one import instead of starting one each."""
    server = zoo(HostileHttp(Act(silent=True)))
    config = tmp_path / "c.yaml"
    config.write_text(f"prometheus: {{url: '{server.url}', timeout: 10}}\nendpoints: []\n")
    running: Running = await start(config)
    began = time.monotonic()
    answers = await asyncio.gather(
        *(
            running.get(f"/probe?endpoint=web-{i}", {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
            for i in range(3)
        )
    )
    assert time.monotonic() - began < 3.5
    for status, body in answers:
        assert status == 503 and "did not finish within 1 s" in body and body.count("\n") == 1, body
    assert running.exporter.imports is not None and running.exporter.imports.queries == 1
