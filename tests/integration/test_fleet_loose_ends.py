"""Nothing dropped silently, nothing malformed read as fine: the loose ends of the
hostile-peer review of the fleet code.

- a chunked answer whose chunk size is ``-1`` (or ``+a``, ``0x10``...) is a malformed response,
  one line, from a misbehaving loopback server (tests/support/hostile_http.py);
- alerts the client leaves out (malformed, duplicate, naming no endpoint) are counted and said
  by ``certpager check``: a table line and an ``alerts_ignored`` JSON field.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.alertmanager import Alertmanager
from tests.support.cli import CliResult, certpager_cli, isolated_env
from tests.support.hostile_http import Act, HostileHttp, response

from certpager.config import AlertmanagerSettings, PrometheusSource
from certpager.errors import AlertmanagerError, PrometheusError
from certpager.fleet.alertmanager import AlertmanagerClient
from certpager.fleet.prometheus import query
from certpager.lab.ports import reserve_port
from certpager.lab.tls import LoopbackServer

Zoo = Callable[[LoopbackServer], LoopbackServer]


def _chunked(*lines: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(line + b"\r\n" for line in lines)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(b"-1", "'-1'"), (b"+2", "'+2'"), (b"0x2", "'0x2'"), (b"2_0", "'2_0'"), (b"\x1b[2J", "'\\x1b[2J'")],
    ids=["negative", "plus", "0x", "underscore", "escape"],
)
def test_a_chunk_size_that_is_not_hex_digits_is_one_line(zoo: Zoo, size: bytes, shown: str) -> None:
    raw = _chunked(b"2", b"[]", size, b"[]", b"0", b"")
    server = zoo(HostileHttp(Act(raw)))
    assert isinstance(server, HostileHttp)
    client = AlertmanagerClient(AlertmanagerSettings(url=server.url, timeout=3))
    with pytest.raises(AlertmanagerError) as am_info:
        asyncio.run(client.alerts())
    with pytest.raises(PrometheusError) as prom_info:
        query(PrometheusSource(url=server.url, timeout=3))
    for message in (str(am_info.value), str(prom_info.value)):
        assert "\n" not in message and server.url in message, message
        assert f"invalid chunk size {shown} (expected hexadecimal digits)" in message, message


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "settings:\n"
        f"  alertmanager: {{url: '{url}', timeout: 3}}\n"
        "  check_http: false\n"
        "endpoints:\n"
        "  - {name: app, host: 127.0.0.1, port: 1, sni: app.test, timeout: 1}\n"
    )
    return path


def _check(tmp_path: Path, config: Path, *extra: str) -> CliResult:
    return certpager_cli(
        ["check", "--config", str(config), "--no-protocols", "--no-aia", *extra],
        isolated_env(tmp_path / "home"),
        timeout=120,
    )


def test_check_says_which_alerts_it_ignored(tmp_path: Path, zoo: Zoo) -> None:
    """Two malformed entries and a duplicate: the table's last line and the JSON say so."""
    good = {"labels": {"alertname": "CertExpiring", "instance": "app.test:1"}, "fingerprint": "f1"}
    entries = [good, good, {"labels": None, "fingerprint": "f2"}, "not an alert"]
    server = zoo(HostileHttp(Act(response(200, entries))))
    assert isinstance(server, HostileHttp)
    config = _config(tmp_path, server.url)
    table = _check(tmp_path, config)
    assert table.stderr == "" and "Traceback" not in table.stdout
    lines = table.stdout.splitlines()
    assert lines[-2] == "1 endpoint(s): 1 error"
    assert lines[-1] == "Alertmanager: 3 alerts ignored (2 malformed, 1 duplicate)"
    assert any(line.startswith("    PAGED    paged by CertExpiring") for line in lines)

    run = _check(tmp_path, config, "--json")
    (report,) = json.loads(run.stdout)
    assert [a["fingerprint"] for a in report["alerts"]] == ["f1"]
    assert report["alerts_ignored"] == {
        "total": 3,
        "malformed": 2,
        "duplicate": 1,
        "over_limit": 0,
        "no_endpoint": 0,
    }
    assert list(report)[-3:] == ["alerts", "alerts_ignored", "alerts_error"]  # next to alerts
    assert report["alerts_error"] is None


def test_real_alertmanager_alert_naming_no_endpoint_is_said(tmp_path: Path, am: Alertmanager) -> None:
    """An alert with no endpoint, target or instance label pages about no row: counted."""
    am.post_alerts(
        [
            {"labels": {"alertname": "CertExpiring", "instance": "app.test:1"}},
            {"labels": {"alertname": "SomethingElse", "job": "node"}},
        ]
    )
    config = _config(tmp_path, am.url)
    table = _check(tmp_path, config)
    assert table.stderr == ""
    assert table.stdout.splitlines()[-1] == "Alertmanager: 1 alert ignored (1 naming no endpoint)"
    (report,) = json.loads(_check(tmp_path, config, "--json").stdout)
    assert len(report["alerts"]) == 1
    assert report["alerts_ignored"]["no_endpoint"] == 1 and report["alerts_ignored"]["total"] == 1


def test_nothing_ignored_adds_no_line_and_zero_counts(tmp_path: Path, am: Alertmanager) -> None:
    am.post_alerts([{"labels": {"alertname": "CertExpiring", "instance": "app.test:1"}}])
    config = _config(tmp_path, am.url)
    table = _check(tmp_path, config)
    assert table.stdout.splitlines()[-1] == "1 endpoint(s): 1 error"
    (report,) = json.loads(_check(tmp_path, config, "--json").stdout)
    assert report["alerts_ignored"]["total"] == 0


def test_alertmanager_down_is_no_alerts_in_the_json_but_an_error(tmp_path: Path) -> None:
    """An empty ``alerts`` list of an Alertmanager nobody could ask is not "nothing pages":
    ``alerts_error`` says why there are none (the same line as on stderr)."""
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        run = _check(tmp_path, _config(tmp_path, url), "--json")
    (line,) = run.stderr.splitlines()
    (report,) = json.loads(run.stdout)
    assert report["alerts"] == [] and report["alerts_ignored"]["total"] == 0
    assert (
        report["alerts_error"] == f"alertmanager {url}: nothing listens on port {port} (connection refused)"
    )
    assert line == f"certpager: {report['alerts_error']} (checking without its alerts)"
