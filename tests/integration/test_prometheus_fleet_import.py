"""The fleet imported from a real Prometheus (Debian's): loaded with 10,000 blackbox-style
series by one scrape of a static exposition, then queried by certpager.fleet.prometheus and
by ``certpager check`` with a ``prometheus:`` section in its config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.cli import certpager_cli, isolated_env
from tests.support.pki import PKI, Hierarchy
from tests.support.prometheus import Prometheus, StaticMetrics, blackbox_series

from certpager.config import Config, Endpoint, PrometheusSource, Settings
from certpager.fleet.prometheus import with_imported
from certpager.lab.ports import reserve_port

pytestmark = pytest.mark.slow

N = 10_000


@pytest.fixture(scope="module")
def tls_port(pki: PKI, ca: Hierarchy) -> Iterator[int]:
    from tests.support.tls_server import TLSServer

    leaf = ca.leaf("app.test", sans=["app.test"])
    chain, key = pki.write_chain("import-full", [leaf, ca.intermediate], key_of=leaf)
    with TLSServer(chain, key) as server:
        yield server.port


@pytest.fixture(scope="module")
def prometheus(tls_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus holding N series: hostN.test (never probed) and three for the loopback TLS server."""
    loopback = [
        f"127.0.0.1:{tls_port}@app.test",
        f"127.0.0.1:{tls_port}@www.app.test",
        f"127.0.0.1:{tls_port}",
    ]
    targets = [f"host{i}.test:443" for i in range(N - len(loopback))] + loopback
    with StaticMetrics(blackbox_series(targets)) as static:
        server = Prometheus(tmp_path_factory.mktemp("prom-import"), scrape_configs=[static.job()])
        with server:
            server.wait_for(
                f"{N} series scraped",
                lambda: (
                    (r := server.query("count(probe_ssl_earliest_cert_expiry)"))
                    and r[0]["value"][1] == str(N)
                ),
            )
            yield server


def test_ten_thousand_series_become_endpoints(prometheus: Prometheus) -> None:
    configured = (
        Endpoint(name="mine", host="host5.test", port=443),  # covers host5.test:443
        Endpoint(name="host7.test:443", host="elsewhere.test", port=443),  # same name as a series
    )
    config = Config(endpoints=configured, settings=Settings(prometheus=PrometheusSource(url=prometheus.url)))
    merged, note = with_imported(config)
    # The series host7.test:443 is named like the configured endpoint on elsewhere.test: its
    # target is not checked, and the note says so (host5.test:443 is checked as "mine").
    assert note == (
        "prometheus import: 1 series left out, not checked (1 named like another endpoint with a different target)"
    )
    names = [e.name for e in merged.endpoints]
    assert names[:2] == ["mine", "host7.test:443"]
    assert len(names) == len(set(names)) == N  # N series + 2 configured - 2 they cover
    by_name = {e.name: e for e in merged.endpoints}
    assert "host5.test:443" not in by_name
    assert by_name["host7.test:443"].host == "elsewhere.test"  # the configured one won
    assert (by_name["host9000.test:443"].host, by_name["host9000.test:443"].port) == ("host9000.test", 443)


def _config(tmp_path: Path, url: str, tls_port: int, ca: Hierarchy, query: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    doc = {
        "prometheus": {"url": url, "query": query, "timeout": 5},
        "settings": {"timeout": 5, "check_protocols": False},
        "endpoints": [
            {
                "name": "configured",
                "host": "127.0.0.1",
                "port": tls_port,
                "sni": "app.test",
                "ca_file": str(ca.root_file),
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_uses_imported_endpoints(
    prometheus: Prometheus, tls_port: int, ca: Hierarchy, tmp_path: Path
) -> None:
    # Only the loopback series (the others name hosts that do not exist here).
    query = f'probe_ssl_earliest_cert_expiry{{instance="127.0.0.1:{tls_port}@app.test"}}'
    config = _config(tmp_path, prometheus.url, tls_port, ca, query)
    run = certpager_cli(
        ["check", "--config", str(config), "--json"], isolated_env(tmp_path / "home"), timeout=120
    )
    assert "Traceback" not in run.stderr
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    # The configured endpoint covers the same host, port and SNI: the series is dropped.
    assert list(reports) == ["configured"]
    assert reports["configured"]["status"] == "ok", reports["configured"]["findings"]


def test_check_adds_imported_endpoints(
    prometheus: Prometheus, tls_port: int, ca: Hierarchy, tmp_path: Path
) -> None:
    query = 'probe_ssl_earliest_cert_expiry{instance=~"127[.]0[.]0[.]1:.*"}'
    config = _config(tmp_path, prometheus.url, tls_port, ca, query)
    run = certpager_cli(
        ["check", "--config", str(config), "--json"], isolated_env(tmp_path / "home"), timeout=120
    )
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    assert sorted(reports) == sorted(
        ["configured", f"127.0.0.1:{tls_port}", f"127.0.0.1:{tls_port}@www.app.test"]
    )
    # Imported endpoints are probed with the config's settings (no ca_file: the test CA is unknown).
    assert reports[f"127.0.0.1:{tls_port}@www.app.test"]["sni"] == "www.app.test"


@pytest.mark.parametrize("broken", ["down", "bad query"])
def test_prometheus_errors_are_one_line_and_configured_endpoints_still_checked(
    prometheus: Prometheus, tls_port: int, ca: Hierarchy, tmp_path: Path, broken: str
) -> None:
    with reserve_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}" if broken == "down" else prometheus.url
        config = _config(
            tmp_path, url, tls_port, ca, "probe_ssl_earliest_cert_expiry{" if broken != "down" else "up"
        )
        run = certpager_cli(["check", "--config", str(config)], isolated_env(tmp_path / "home"), timeout=120)
    assert run.returncode == 0, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "certpager: prometheus import failed, checking the configured endpoints only: "
    )
    assert ("HTTP 400" in lines[0]) if broken == "bad query" else ("cannot query Prometheus" in lines[0])
    assert "configured" in run.stdout
