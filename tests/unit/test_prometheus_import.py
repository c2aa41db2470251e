"""Importing endpoints from Prometheus series (certpager.fleet.prometheus) and the
config's ``prometheus:`` section: pure parts, no server (the real Prometheus is in
tests/integration/test_prometheus_fleet_import.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certpager.config import Endpoint, PrometheusSource, Settings, load_config
from certpager.errors import ConfigError, PrometheusError
from certpager.fleet.prometheus import endpoints_of, label_sets, merge, query, target_text


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        ({"instance": "app.test:443"}, "app.test:443"),
        ({"instance": "app.test"}, "app.test"),
        ({"instance": "https://app.test/health"}, "app.test:443"),
        ({"instance": "https://app.test:8443/x?y=1"}, "app.test:8443"),
        ({"instance": "https://[::1]/"}, "[::1]:443"),
        ({"instance": "10.0.0.1:993@mail.test"}, "10.0.0.1:993@mail.test"),
        ({"instance": "exporter:9115", "target": "app.test:443"}, "app.test:443"),
        ({"instance": "http://app.test/"}, None),  # plain HTTP: no certificate to check
        ({"job": "x"}, None),
    ],
)
def test_target_text(labels: dict[str, str], text: str | None) -> None:
    assert target_text(labels) == text


def test_endpoints_of_names_dedupes_and_skips() -> None:
    series = [
        {"instance": "a.test:443"},
        {"instance": "a.test:443", "job": "other"},  # same name
        {"instance": "https://a.test/"},  # same place (host, port, SNI)
        {"instance": "b.test:8443@sni.test"},
        {"instance": "bad host:443"},
        {"instance": "c.test:99999"},
        {"job": "no target"},
    ]
    imported = endpoints_of(series, Settings(timeout=3))
    assert [(e.name, e.host, e.port, e.sni) for e in imported.endpoints] == [
        ("a.test:443", "a.test", 443, None),
        ("b.test:8443@sni.test", "b.test", 8443, "sni.test"),
    ]
    assert imported.skipped == 3
    assert imported.endpoints[0].timeout == 3  # the config's settings


def test_merge_configured_win() -> None:
    configured = [
        Endpoint(name="app", host="a.test", port=443),
        Endpoint(name="b.test:443", host="other.test", port=443),
    ]
    imported = [
        Endpoint(name="a.test:443", host="A.test", port=443),  # same place as "app"
        Endpoint(name="b.test:443", host="b.test", port=443),  # same name
        Endpoint(name="c.test:443", host="c.test", port=443),
    ]
    assert [e.name for e in merge(configured, imported)] == ["app", "b.test:443", "c.test:443"]


def _answer(result: object, status: str = "success", kind: str = "vector") -> bytes:
    return json.dumps({"status": status, "data": {"resultType": kind, "result": result}}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b"[]", "query failed"),
        (json.dumps({"status": "error", "error": "parse error\x1b[2J"}).encode(), "parse error\\x1b[2J"),
        (_answer([], kind="matrix"), "expected an instant vector, got matrix"),
        (_answer({}), "no result list"),
        (_answer([{"metric": {"instance": 1}}]), "without a label set"),
        (_answer(["x"]), "without a label set"),
    ],
)
def test_bad_answers_are_one_line(body: bytes, message: str) -> None:
    with pytest.raises(PrometheusError) as info:
        label_sets(body, "http://127.0.0.1:9")
    assert message in str(info.value)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_unreachable_prometheus_is_one_line() -> None:
    from certpager.lab.ports import reserve_port

    with reserve_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(PrometheusError) as info:
            query(PrometheusSource(url=f"http://127.0.0.1:{port}", timeout=2))
    assert str(info.value).startswith(f"http://127.0.0.1:{port}: cannot query Prometheus: ")


def test_ten_thousand_series_load_correctly() -> None:
    """10,000 series: every one an endpoint with its own name and place. The time is
    measured by bench/prometheus_import.py against a real Prometheus (a time bound here
    would fail on a busy machine, not on a mistake)."""
    result = [
        {
            "metric": {
                "__name__": "probe_ssl_earliest_cert_expiry",
                "instance": f"host{i}.test:{443 + i % 7}",
                "job": "bb",
            },
            "value": [0, "1"],
        }
        for i in range(10_000)
    ]
    body = _answer(result)
    imported = endpoints_of(label_sets(body, "x"), Settings())
    assert len(imported.endpoints) == 10_000 and imported.skipped == 0
    assert imported.endpoints[1234].name == "host1234.test:445"
    assert (imported.endpoints[1234].host, imported.endpoints[1234].port) == ("host1234.test", 445)
    assert len({(e.host, e.port) for e in imported.endpoints}) == 10_000


def test_config_prometheus_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prometheus:\n  url: http://127.0.0.1:9090/\n")
    config = load_config(path)
    assert config.endpoints == ()  # endpoints are optional with a prometheus section
    assert config.settings.prometheus == PrometheusSource(url="http://127.0.0.1:9090")
    path.write_text(
        "prometheus: {url: 'https://prom.example:9090/sub', query: 'up{job=\"bb\"}', timeout: 3}\nendpoints: []\n"
    )
    assert load_config(path).settings.prometheus == PrometheusSource(
        url="https://prom.example:9090/sub", query='up{job="bb"}', timeout=3
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("prometheus:\n  query: up\n", 2, "url: is required"),
        ("prometheus:\n  url: ftp://x\n", 2, "is not an http:// or https:// URL"),
        ("prometheus:\n  url: http://user:pw@x:9090\n", 2, "no user, query or fragment"),
        ("prometheus:\n  url: 'http://x:99999'\n", 2, "port"),
        ("prometheus:\n  url: http://x\n  timeout: 0\n", 3, "timeout"),
        ("prometheus:\n  url: http://x\n  qurey: up\n", 3, "did you mean 'query'"),
        ('prometheus:\n  url: "http://x\\e[2J"\n', 2, "url"),
    ],
)
def test_config_prometheus_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"c.yaml:{line}" in str(info.value)
    assert message in str(info.value)
