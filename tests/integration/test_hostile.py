"""The hostile-server zoo (reliability plan §4.C): every probe ends within its deadline + 1 s,
with an error finding, and nothing escapes.

The deadline is 3 s here (the default is 10 s); "within" means wall time of the
whole ``check_endpoint`` call < deadline + 1 s, measured around it. Each case
also runs on ``::1`` where the machine has IPv6 loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.hostile import (
    HTTP_REPLY,
    SSH_BANNER,
    BacklogFull,
    CloseServer,
    DribbleProxy,
    GarbageServer,
    ResetServer,
    SilentServer,
    huge_chain_files,
)
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.config import Backend, Endpoint, Settings
from certpager.probe.engine import check_endpoint, check_endpoints
from certpager.probe.findings import ERROR_CODES
from certpager.probe.model import EndpointReport, Status

DEADLINE = 3.0
BOUND = DEADLINE + 1.0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param(
        "::1",
        marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine"),
    ),
]


async def _timed_probe(host: str, port: int, now: dt.datetime, **kw: object) -> tuple[EndpointReport, float]:
    ep = Endpoint(name="hostile", host=host, port=port, sni="app.test", timeout=DEADLINE, **kw)  # type: ignore[arg-type]
    start = time.monotonic()
    report = await check_endpoint(ep, now=now)
    return report, time.monotonic() - start


def _only_error(report: EndpointReport) -> str:
    assert report.status is Status.ERROR, report.findings
    (finding,) = report.findings
    assert finding.code in ERROR_CODES
    assert finding.message and "\n" not in finding.message
    assert report.error
    return finding.code


@pytest.fixture(scope="module")
def healthy_files(pki: PKI, ca: Hierarchy) -> tuple[Path, Path]:
    return pki.write_chain("zoo-backend", [ca.leaf("app.test"), ca.intermediate])


@pytest.fixture(scope="module")
def huge(pki: PKI) -> tuple[Path, Path, int, int]:
    return huge_chain_files(pki, depth=31, pad_bytes=100_000)


ZOO: dict[str, tuple[Callable[[str], LoopbackServer], set[str], str]] = {
    # name: (factory(host), acceptable codes, words the message must contain)
    "never-speaks": (lambda h: SilentServer(h), {"handshake_timeout"}, "did not complete"),
    "garbage-bytes": (lambda h: GarbageServer(h), {"handshake_failed"}, "TLS"),
    "http-reply": (lambda h: GarbageServer(h, payload=HTTP_REPLY), {"handshake_failed"}, "TLS"),
    "ssh-banner": (
        lambda h: GarbageServer(h, payload=SSH_BANNER, greet_first=True),
        {"handshake_failed"},
        "TLS",
    ),
    "closes-at-once": (lambda h: CloseServer(h), {"handshake_failed"}, "closed"),
    "closes-after-hello": (lambda h: CloseServer(h, after_hello=True), {"handshake_failed"}, "closed"),
    # An RST right on accept can land before the client sees its connect complete: either
    # code is a truthful error.
    "resets-at-once": (lambda h: ResetServer(h), {"handshake_failed", "connect_failed"}, "reset"),
    "resets-after-hello": (lambda h: ResetServer(h, after_hello=True), {"handshake_failed"}, "reset"),
}


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("kind", list(ZOO))
async def test_zoo_ends_within_deadline(
    kind: str, host: str, zoo: Callable[[LoopbackServer], LoopbackServer], now: dt.datetime
) -> None:
    factory, expected, words = ZOO[kind]
    server = zoo(factory(host))
    report, elapsed = await _timed_probe(host, server.port, now)
    assert elapsed < BOUND, f"{kind}: {elapsed:.2f} s"
    code = _only_error(report)
    assert code in expected, report.findings
    if code != "connect_failed":  # (its wording is tested on its own below)
        assert words in report.findings[0].message
    assert server.accepted >= 1  # the zoo member really was what the probe met


@pytest.mark.parametrize("host", HOSTS)
async def test_one_byte_per_second_cannot_stretch_the_deadline(
    host: str,
    healthy_files: tuple[Path, Path],
    serve: Callable[..., TLSServer],
    zoo: Callable[[LoopbackServer], LoopbackServer],
    now: dt.datetime,
) -> None:
    backend = serve(*healthy_files)
    proxy = zoo(DribbleProxy(backend.port, host=host, interval=1.0))
    report, elapsed = await _timed_probe(host, proxy.port, now)
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    assert _only_error(report) == "handshake_timeout"
    # It was a slow drip, not silence: bytes kept arriving (a per-read timeout would never fire).
    assert proxy.bytes_dribbled >= 2  # type: ignore[attr-defined]


async def test_dribble_proxy_relays_a_real_handshake(
    healthy_files: tuple[Path, Path],
    serve: Callable[..., TLSServer],
    zoo: Callable[[LoopbackServer], LoopbackServer],
    now: dt.datetime,
    ca: Hierarchy,
) -> None:
    """Control case: the same proxy at full speed completes the handshake, so the timeout
    above is the drip's doing."""
    backend = serve(*healthy_files)
    proxy = zoo(DribbleProxy(backend.port, interval=0.0005, max_seconds=20))
    report, _ = await _timed_probe("127.0.0.1", proxy.port, now, ca_file=str(ca.root_file))
    assert report.status is Status.OK, report.findings


@pytest.mark.parametrize("host", HOSTS)
async def test_huge_chain_of_several_megabytes(
    host: str, huge: tuple[Path, Path, int, int], serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    chain_file, key_file, count, size = huge
    assert count >= 30 and size >= 2_500_000, (count, size)
    server = serve(chain_file, key_file, host=host)
    report, elapsed = await _timed_probe(host, server.port, now)
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    code = _only_error(report)
    assert code in {"handshake_failed", "handshake_timeout"}
    if code == "handshake_failed":
        assert "too large" in report.findings[0].message or "larger" in report.findings[0].message


async def test_blackhole_connect_timeout(now: dt.datetime) -> None:
    with BacklogFull() as blackhole:
        if not blackhole.connect_blocks():
            pytest.fail("precondition: a full accept queue should hold new connects on Linux loopback")
        report, elapsed = await _timed_probe("127.0.0.1", blackhole.port, now)
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    assert _only_error(report) == "connect_timeout"


async def test_whole_zoo_at_once_does_not_starve(
    healthy_files: tuple[Path, Path],
    huge: tuple[Path, Path, int, int],
    serve: Callable[..., TLSServer],
    zoo: Callable[[LoopbackServer], LoopbackServer],
    now: dt.datetime,
    ca: Hierarchy,
) -> None:
    """Every hostile server plus one healthy one, probed concurrently: all done within one
    deadline + 1 s, the healthy one ok, the others each an error finding."""
    backend = serve(*healthy_files)
    ports = {kind: zoo(factory("127.0.0.1")).port for kind, (factory, _, _) in ZOO.items()}
    ports["dribble"] = zoo(DribbleProxy(backend.port)).port
    ports["huge"] = serve(*huge[:2]).port
    endpoints = [
        Endpoint(name=kind, host="127.0.0.1", port=port, sni="app.test", timeout=DEADLINE)
        for kind, port in ports.items()
    ]
    endpoints.append(
        Endpoint(
            name="healthy",
            host="127.0.0.1",
            port=backend.port,
            sni="app.test",
            timeout=DEADLINE,
            ca_file=str(ca.root_file),
        )
    )
    start = time.monotonic()
    reports = await check_endpoints(endpoints, settings=Settings(), concurrency=100, now=now)
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    by_name = {r.name: r for r in reports}
    assert by_name["healthy"].status is Status.OK
    for kind in ports:
        _only_error(by_name[kind])


@pytest.mark.parametrize("err", [errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH])
async def test_connect_failure_says_why(err: int, now: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact exception asyncio's selector loop raises when SO_ERROR reports a failure."""
    loop = asyncio.get_running_loop()

    async def failing_connect(sock: socket.socket, address: tuple[str, int]) -> None:
        raise OSError(err, f"Connect call failed {address}")

    monkeypatch.setattr(loop, "sock_connect", failing_connect)
    report, _ = await _timed_probe("127.0.0.1", 9, now)
    assert _only_error(report) == "connect_failed"
    assert os.strerror(err) in report.findings[0].message, report.findings[0].message


async def test_concurrency_limit_holds_against_tarpits(
    zoo: Callable[[LoopbackServer], LoopbackServer], now: dt.datetime
) -> None:
    """Six endpoints stuck on a tarpit with ``concurrency=2``: they go two at a time, and each
    endpoint's deadline starts when it gets its slot (not when queued)."""
    silent = zoo(SilentServer(max_connections=32))
    endpoints = [
        Endpoint(name=f"tarpit{i}", host="127.0.0.1", port=silent.port, sni="app.test", timeout=1.0)
        for i in range(6)
    ]
    start = time.monotonic()
    reports = await check_endpoints(endpoints, settings=Settings(), concurrency=2, now=now)
    elapsed = time.monotonic() - start
    assert [_only_error(r) for r in reports] == ["handshake_timeout"] * 6
    assert silent.accepted == 6
    # Three waves of one deadline each: with no limit all six would time out together in ~1 s.
    # (A deadline cannot fire early, so the lower bound is not a race.)
    assert 3 * 1.0 - 0.1 < elapsed < 3 * 1.0 + 1


async def test_mixed_backends_share_one_deadline(
    healthy_files: tuple[Path, Path],
    serve: Callable[..., TLSServer],
    zoo: Callable[[LoopbackServer], LoopbackServer],
    now: dt.datetime,
    ca: Hierarchy,
) -> None:
    """One endpoint whose backends are a tarpit, a drip, a reset and a healthy server: one
    result per backend, the healthy one ok, the whole check within the deadline + 1 s."""
    healthy = serve(*healthy_files)
    hostile = [
        zoo(SilentServer()),
        zoo(DribbleProxy(healthy.port)),
        zoo(ResetServer(after_hello=True)),
    ]
    backends = tuple(Backend("127.0.0.1", s.port) for s in [*hostile, healthy])
    ep = Endpoint(
        name="mixed",
        host="app.test",
        sni="app.test",
        timeout=DEADLINE,
        ca_file=str(ca.root_file),
        backends=backends,
    )
    start = time.monotonic()
    report = await check_endpoint(ep, now=now)
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    by_port = {b.handshake.port: b for b in report.backends}
    assert len(by_port) == 4
    assert by_port[healthy.port].handshake.ok
    assert by_port[hostile[0].port].handshake.error_code == "handshake_timeout"
    assert by_port[hostile[1].port].handshake.error_code == "handshake_timeout"
    assert by_port[hostile[2].port].handshake.error_code == "handshake_failed"
    assert report.status is Status.ERROR
    assert report.primary is not None and report.primary.handshake.port == healthy.port


async def test_probe_leaves_no_socket_open(
    healthy_files: tuple[Path, Path], now: dt.datetime, ca: Hierarchy
) -> None:
    """After the zoo has been probed and stopped, the process holds as many descriptors as before."""

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    await asyncio.sleep(0)
    before = fds()
    for factory, _, _ in ZOO.values():
        with factory("127.0.0.1") as server:
            await _timed_probe("127.0.0.1", server.port, now)
    with TLSServer(*healthy_files) as backend, DribbleProxy(backend.port) as proxy:
        await _timed_probe("127.0.0.1", proxy.port, now)
    assert fds() == before


@pytest.mark.parametrize("kind", ["never-speaks", "garbage-bytes", "resets-at-once"])
def test_cli_survives_hostile_servers(kind: str, zoo: Callable[[LoopbackServer], LoopbackServer]) -> None:
    """The real CLI: exit 2, JSON with the error finding, no traceback, within the bound
    (plus interpreter start-up)."""
    factory, expected, _ = ZOO[kind]
    server = zoo(factory("127.0.0.1"))
    start = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "certpager",
            "check",
            "--json",
            "--timeout",
            str(DEADLINE),
            f"127.0.0.1:{server.port}@app.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - start
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    (report,) = json.loads(run.stdout)
    assert report["status"] == "error"
    assert {f["code"] for f in report["findings"]} <= expected
    assert report["error"]
    assert elapsed < BOUND + 10, f"{elapsed:.2f} s"  # generous: start-up on a noisy 2-core machine
