"""``GET /probe?endpoint=NAME`` also finds the endpoints a ``prometheus:`` section imports (the
names ``certpager check`` and the TUI show), with the import reused for a bounded time.

Real components: Debian's Prometheus holding blackbox-style series (one scrape of a static
exposition), a loopback TLS server, ``certpager exporter`` as a subprocess. The cache's timing
is tested on :class:`~certpager.fleet.exporter.ImportCache` with a stepped clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.support.pki import PKI, Hierarchy
from tests.support.prometheus import CertpagerExporter, Prometheus, StaticMetrics, http_get
from tests.support.tls_server import TLSServer

from certpager.config import Config, Endpoint, PrometheusSource, Settings
from certpager.fleet.exporter import IMPORT_RETRY, IMPORT_TTL, ImportCache
from certpager.lab.ports import reserve_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_port(pki: PKI, ca: Hierarchy) -> Iterator[int]:
    leaf = ca.leaf("app.test", sans=["app.test"], not_after=40)
    chain, key = pki.write_chain("exporter-import", [leaf, ca.intermediate], key_of=leaf)
    with TLSServer(chain, key) as server:
        yield server.port


def _series(port: int) -> bytes:
    """Two blackbox-style series for the TLS server: ``web-1`` names its target in ``target``;
    ``configured`` is also the name of a configured endpoint (which wins)."""
    return (
        "# TYPE probe_ssl_earliest_cert_expiry gauge\n"
        f'probe_ssl_earliest_cert_expiry{{instance="web-1",target="127.0.0.1:{port}@app.test"}} 2e9\n'
        f'probe_ssl_earliest_cert_expiry{{instance="configured",target="127.0.0.1:{port}"}} 2e9\n'
    ).encode()


@pytest.fixture(scope="module")
def prometheus(tls_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with StaticMetrics(_series(tls_port)) as static:
        server = Prometheus(tmp_path_factory.mktemp("prom-exporter-import"), scrape_configs=[static.job()])
        with server:
            server.wait_for(
                "the series scraped",
                lambda: (
                    (r := server.query("count(probe_ssl_earliest_cert_expiry)")) and r[0]["value"][1] == "2"
                ),
            )
            yield server


def _config(path: Path, url: str) -> Path:
    """A config importing from ``url``; ``configured`` is port 1 (refused)."""
    doc = {
        "settings": {"timeout": 5, "check_protocols": False, "check_http": False},
        "prometheus": {"url": url, "timeout": 3},
        "endpoints": [{"name": "configured", "host": "127.0.0.1", "port": 1, "timeout": 2}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _value(body: bytes, name: str) -> float:
    return next(
        s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples if s.name == name
    )


def test_probe_finds_imported_endpoints_by_name(prometheus: Prometheus, tmp_path: Path) -> None:
    config = _config(tmp_path / "endpoints.yaml", prometheus.url)
    with CertpagerExporter(tmp_path / "exporter", config=config) as exporter:
        status, body = http_get(f"{exporter.url}/probe?endpoint=web-1", timeout=30)
        assert status == 200, body
        assert _value(body, "probe_success") == 1
        assert 39 < _value(body, "certpager_days_left") <= 40
        # The configured endpoint wins over the series of the same name (port 1 refuses).
        status, body = http_get(f"{exporter.url}/probe?endpoint=configured", timeout=30)
        assert status == 200 and _value(body, "probe_success") == 0
        status, body = http_get(f"{exporter.url}/probe?endpoint={quote('web-2')}", timeout=30)
        assert (status, body.decode()) == (
            400,
            "no endpoint named 'web-2' in the config or imported from Prometheus\n",
        )


def test_unknown_name_says_the_import_failed(tmp_path: Path) -> None:
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        config = _config(tmp_path / "endpoints.yaml", f"http://127.0.0.1:{port}")
        with CertpagerExporter(tmp_path / "exporter", config=config) as exporter:
            status, body = http_get(f"{exporter.url}/probe?endpoint=web-1", timeout=30)
            assert status == 400
            assert body.decode().startswith(
                "no endpoint named 'web-1' in the config or imported from Prometheus (the last import failed: "
                f"http://127.0.0.1:{port}: cannot query Prometheus: "
            )
            assert body.count(b"\n") == 1
            status, body = http_get(f"{exporter.url}/probe?endpoint=configured", timeout=30)
            assert status == 200 and _value(body, "probe_success") == 0  # configured ones still answer


async def test_import_reused_for_the_ttl_and_retried_after_a_failure() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    answer = (
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"instance":"web-1","target":"127.0.0.1:443"},"value":[0,"1"]}]}}'
    )
    with StaticMetrics(answer) as api:
        source = PrometheusSource(url=f"http://127.0.0.1:{api.port}", timeout=3)
        config = Config(
            endpoints=(Endpoint(name="mine", host="127.0.0.1", port=4443),),
            settings=Settings(prometheus=source),
        )
        cache = ImportCache(config, clock=clock)
        found = await cache.find("web-1")
        assert found is not None and (found.host, found.port) == ("127.0.0.1", 443)
        assert await cache.find("nope") is None
        now[0] = IMPORT_TTL - 1
        assert await cache.find("web-1") is not None
        assert cache.queries == 1  # one import answered every look-up within the TTL
        now[0] = IMPORT_TTL
        await cache.find("web-1")
        assert cache.queries == 2
    # Prometheus gone: the last import still answers; asked again only after IMPORT_RETRY.
    now[0] = 2 * IMPORT_TTL
    assert await cache.find("web-1") is not None
    assert cache.queries == 3 and cache.error is not None
    now[0] += IMPORT_RETRY - 1
    await cache.find("nope")
    assert cache.queries == 3
    now[0] += 1
    await cache.find("nope")
    assert cache.queries == 4
