"""``certpager exporter`` in process, against real TLS servers on loopback: the series of
a probe, hostile certificate text in labels, the semaphore, the scrape deadline, and the
HTTP server against hostile clients (raw sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from tests.support.cli import certpager_cli, isolated_env
from tests.support.hostile import SilentServer
from tests.support.pki import PKI, Hierarchy
from tests.support.prometheus import CertpagerExporter, http_get

from certpager.config import load_config
from certpager.fleet import exporter as exporter_module
from certpager.fleet.exporter import Exporter, serve
from certpager.lab.ports import free_port, reserve_port

HOSTILE_CN = 'evil"} probe_success 1\n# TYPE x gauge\\x{a="b"} \x1b[2J\u202e'


class Running:
    """An exporter served on 127.0.0.1:port by the test's event loop."""

    def __init__(self, exporter: Exporter, port: int) -> None:
        self.exporter = exporter
        self.port = port

    async def raw(self, data: bytes, *, close: bool = True, timeout: float = 30.0) -> bytes:
        """Send ``data``, read the whole answer (the server closes)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            if close:
                writer.write_eof()
            return await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()

    async def get(self, target: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """(status, body) of GET ``target``."""
        lines = [
            f"GET {target} HTTP/1.1",
            "Host: 127.0.0.1",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        answer = await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode(), close=False)
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body.decode()


def write_config(path: Path, endpoints: list[dict[str, Any]], **settings: Any) -> Path:
    path.write_text(yaml.safe_dump({"settings": settings, "endpoints": endpoints}))
    return path


def served(name: str, port: int, ca: Hierarchy) -> dict[str, Any]:
    """An endpoint of the config: app.test on 127.0.0.1:``port``, trusting the test root."""
    return {"name": name, "host": "127.0.0.1", "port": port, "sni": "app.test", "ca_file": str(ca.root_file)}


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await start(config_path=None, concurrency=4)`` -> :class:`Running`; stopped at teardown."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start_one(config_path: Path | None = None, concurrency: int = 4) -> Running:
        config = load_config(config_path) if config_path else None
        from certpager.config import Settings

        exporter = Exporter(config, config.settings if config else Settings(timeout=5), concurrency)
        stop = asyncio.Event()
        ready = asyncio.Event()
        port = free_port()
        task = asyncio.create_task(
            serve(exporter, "127.0.0.1", port, stop=stop, on_ready=lambda _u: ready.set())
        )
        stops.append((stop, task))
        await asyncio.wait_for(ready.wait(), 10)
        return Running(exporter, port)

    yield start_one
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, 10)


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> list[Any]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


@pytest.fixture(scope="module")
def incomplete(pki: PKI, ca: Hierarchy) -> tuple[Path, Path]:
    leaf = ca.leaf("app.test", sans=["app.test"])
    return pki.write_chain("exporter-incomplete", [leaf], key_of=leaf)


@pytest.fixture(scope="module")
def hostile(pki: PKI, ca: Hierarchy) -> tuple[Path, Path]:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)])
    leaf = ca.intermediate.issue(None, sans=["app.test"], subject=subject, not_after=20)
    return pki.write_chain("exporter-hostile", [leaf, ca.intermediate], key_of=leaf)


async def test_probe_endpoint_series(start, serve, incomplete, ca: Hierarchy, tmp_path: Path) -> None:
    server = serve(*incomplete)
    config = write_config(
        tmp_path / "c.yaml",
        [served("app", server.port, ca)],
        timeout=5,
    )
    running = await start(config)
    status, body = await running.get("/probe?endpoint=app")
    assert status == 200
    fams = families(body)
    assert samples(body, "probe_success")[0].value == 1
    assert samples(body, "certpager_status")[0].value == 2  # critical
    assert [s.labels["status"] for s in samples(body, "certpager_status_info")] == ["critical"]
    codes = {s.labels["code"]: s.labels["severity"] for s in samples(body, "certpager_finding")}
    assert codes["chain_incomplete"] == "critical"
    # No verified path: the earliest expiry is the leaf's.
    leaf = samples(body, "certpager_leaf_not_after_seconds")
    assert leaf[0].labels["backend"] == f"127.0.0.1:{server.port}"
    assert samples(body, "probe_ssl_earliest_cert_expiry")[0].value == leaf[0].value
    assert samples(body, "certpager_chain_not_after_seconds") == []
    assert 0 < samples(body, "probe_duration_seconds")[0].value < 5
    assert "certpager_days_left" in fams


async def test_hostile_subject_is_escaped_and_injects_nothing(
    start, serve, hostile, ca: Hierarchy, tmp_path: Path
) -> None:
    server = serve(*hostile)
    config = write_config(
        tmp_path / "c.yaml",
        [served("evil", server.port, ca)],
    )
    running = await start(config)
    status, body = await running.get("/probe?endpoint=evil")
    assert status == 200
    chain = samples(body, "certpager_chain_not_after_seconds")
    assert [s.labels["position"] for s in chain] == ["0", "1", "2"]
    subject = chain[0].labels["subject"]  # the RFC 4514 DN, round-tripped through the text's escapes
    assert subject.startswith("CN=evil") and "probe_success 1\n# TYPE x gauge" in subject
    assert [s.value for s in samples(body, "probe_success")] == [1]  # nothing injected
    assert "x" not in families(body)
    # Every sample line is one line: the newline in the CN is escaped.
    assert all(line.startswith(("#", "probe_", "certpager_")) for line in body.splitlines() if line)
    # The verified path's earliest expiry is the 20-day leaf's.
    assert samples(body, "probe_ssl_earliest_cert_expiry")[0].value == chain[0].value


async def test_target_uses_config_settings(start, serve, incomplete) -> None:
    server = serve(*incomplete)
    running = await start()
    status, body = await running.get(f"/probe?target=127.0.0.1:{server.port}@app.test")
    assert status == 200
    codes = {s.labels["code"] for s in samples(body, "certpager_finding")}
    assert "untrusted_root" in codes or "chain_incomplete" in codes  # the system store knows no test CA


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "give exactly one of target"),
        ("?target=a&endpoint=b", "give exactly one of target"),
        ("?target=a&target=b", "target given 2 times"),
        ("?endpoint=nope", "no endpoint named 'nope'"),
        ("?target=127.0.0.1:99999", "target"),
        ("?target=127.0.0.1:0", "target"),
        ("?target=%1b%5b2J%0aevil", "target"),
        ("?target=" + "a" * 700, "longer than 600"),
        ("?target=", "target is empty"),
        ("?target=a%00b", "target"),
        ("?target=host@-bad-", "SNI"),
        ("?bogus=1", "unknown parameter 'bogus'"),
    ],
)
async def test_bad_parameters_are_one_line_400(start, query: str, message: str) -> None:
    running = await start()
    status, body = await running.get("/probe" + query)
    assert status == 400
    assert message in body
    assert body.endswith("\n") and body.count("\n") == 1
    assert "\x1b" not in body and "\x00" not in body


async def test_scrape_timeout_header_bounds_the_probe(start) -> None:
    with SilentServer(max_seconds=20) as silent:
        running = await start()
        began = time.monotonic()
        status, body = await running.get(
            f"/probe?target=127.0.0.1:{silent.port}", {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}
        )
        took = time.monotonic() - began
    assert status == 200
    assert samples(body, "probe_success")[0].value == 0
    assert took < 3.0  # 1.5 s less the margin, not the config's 5 s


async def test_bad_scrape_timeout_header(start) -> None:
    running = await start()
    status, body = await running.get(
        "/probe?target=127.0.0.1:1", {"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    )
    assert status == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds" in body


async def test_concurrency_is_bounded(start) -> None:
    """8 probes of a silent server with 2 slots: never more than 2 in flight, the rest wait."""
    with SilentServer(max_seconds=20) as silent:
        running = await start(concurrency=2)
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, int(running.exporter.in_flight._value.get()))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}
        answers = await asyncio.gather(
            *(running.get(f"/probe?target=127.0.0.1:{silent.port}", headers) for _ in range(8))
        )
        watcher.cancel()
    assert all(status == 200 for status, _ in answers)
    assert peak == 2
    _, body = await running.get("/metrics")
    assert samples(body, "certpager_exporter_max_concurrency")[0].value == 2


async def test_own_metrics(start) -> None:
    running = await start()
    await running.get("/probe?target=127.0.0.1:1")
    await running.get("/probe")
    status, body = await running.get("/metrics")
    assert status == 200
    requests = {
        (s.labels["path"], s.labels["code"]): s.value
        for s in samples(body, "certpager_exporter_requests_total")
    }
    assert requests[("/probe", "200")] == 1
    assert requests[("/probe", "400")] == 1
    assert samples(body, "process_resident_memory_bytes")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST /probe HTTP/1.1\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /probe HTTP/2.0\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\n\n", 400),  # a TLS ClientHello
        (b"GET / HTTP/1.1\r\nno-colon-here\r\n\r\n", 400),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n", 400),  # the client stops sending (EOF) mid-head
    ],
)
async def test_hostile_clients(start, data: bytes, status: int) -> None:
    running = await start()
    answer = await running.raw(data)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]
    assert answer.count(b"\n") <= 6  # head + one line


async def test_slow_client_is_cut_off(start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter_module, "READ_TIMEOUT", 0.5)
    running = await start()
    began = time.monotonic()
    answer = await running.raw(b"GET /metrics HTTP/1.1\r\nX-Slow: ", close=False, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - began < 5


async def test_head_and_index(start) -> None:
    running = await start()
    answer = await running.raw(b"HEAD / HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n")
    status, body = await running.get("/")
    assert status == 200 and "/probe?target=" in body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost:9219"], "expected an IP address and a port"),
        (["--listen", "127.0.0.1"], "expected an IP address and a port"),
        (["--listen", "127.0.0.1:70000"], "--listen '127.0.0.1:70000'"),
        (["--listen", "127.0.0.1:x\x1b[2J"], "\\x1b"),
        (["--concurrency", "0"], "concurrency"),
    ],
)
def test_cli_bad_arguments_exit_3(tmp_path: Path, args: list[str], message: str) -> None:
    run = certpager_cli(["exporter", *args], isolated_env(tmp_path))
    assert run.returncode == 3, run
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_cli_listen_port_taken_is_one_line(tmp_path: Path) -> None:
    taken = reserve_port()
    taken.listen()
    try:
        port = taken.getsockname()[1]
        run = certpager_cli(["exporter", "--listen", f"127.0.0.1:{port}"], isolated_env(tmp_path), timeout=30)
    finally:
        taken.close()
    assert run.returncode == 3, run
    assert run.stderr.startswith(f"certpager: --listen 127.0.0.1:{port}: ")
    assert len(run.stderr.strip().splitlines()) == 1


def test_cli_bad_config_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("endpoints:\n  - name: a\n    host: 127.0.0.1\n    prot: 1\n")
    run = certpager_cli(["exporter", "--config", str(config)], isolated_env(tmp_path), timeout=30)
    assert run.returncode == 3
    assert "c.yaml:4" in run.stderr and "prot" in run.stderr


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    with CertpagerExporter(tmp_path / "exporter") as exporter:
        status, body = http_get(exporter.url + "/probe?target=127.0.0.1:1")
        assert status == 200 and b"probe_success 0.0" in body
        assert exporter.proc is not None
        proc = exporter.proc
        proc.terminate()
        assert proc.wait(10) == 0
        assert "listening on http://127.0.0.1:" in exporter.output()


async def test_backends_that_differ_are_labelled(
    start, serve, incomplete, pki: PKI, ca: Hierarchy, tmp_path: Path
) -> None:
    """Two backends, one sending the full chain and one the leaf alone: the finding names the
    backend it was seen on, and the leaf's expiry is reported per backend."""
    leaf = ca.leaf("app.test", sans=["app.test"])
    full = serve(*pki.write_chain("exporter-full", [leaf, ca.intermediate], key_of=leaf))
    partial = serve(*pki.write_chain("exporter-partial", [leaf], key_of=leaf))
    endpoint = {
        "name": "pair",
        "host": "app.test",
        "backends": [f"127.0.0.1:{full.port}", f"127.0.0.1:{partial.port}"],
        "ca_file": str(ca.root_file),
    }
    running = await start(write_config(tmp_path / "c.yaml", [endpoint], check_protocols=False))
    status, body = await running.get("/probe?endpoint=pair")
    assert status == 200
    findings = {(s.labels["code"], s.labels["backend"]) for s in samples(body, "certpager_finding")}
    assert ("chain_incomplete", f"127.0.0.1:{partial.port}") in findings
    assert not {f for f in findings if f[0] == "chain_incomplete" and f[1] != f"127.0.0.1:{partial.port}"}
    leaves = {s.labels["backend"] for s in samples(body, "certpager_leaf_not_after_seconds")}
    assert leaves == {f"127.0.0.1:{full.port}", f"127.0.0.1:{partial.port}"}
    chain = {s.labels["backend"] for s in samples(body, "certpager_chain_not_after_seconds")}
    assert chain == {f"127.0.0.1:{full.port}"}  # only that one has a verified path
