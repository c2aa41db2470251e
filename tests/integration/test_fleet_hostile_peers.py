"""Alertmanager and Prometheus as hostile or broken peers: the client and the import against
misbehaving loopback servers (tests/support/hostile_http.py), and the real Alertmanager where
it can play the part (10,000 alerts).

Each failure is one line naming the URL, within the configured timeout, without reading a
huge body; no password of a URL ever reaches a message; label text reaches the screen escaped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.alertmanager import Alertmanager
from tests.support.cli import certpager_cli
from tests.support.hostile_http import Act, HostileHttp, gzip_json, response
from tests.support.pki import PKI, Hierarchy

from certpager.config import AlertmanagerSettings, Endpoint, PrometheusSource, Settings
from certpager.errors import AlertmanagerError, PrometheusError
from certpager.fleet.alertmanager import MAX_RESPONSE, AlertBatch, AlertmanagerClient, silence_labels
from certpager.fleet.pages import map_alerts, page_line
from certpager.fleet.prometheus import MAX_ANSWER, endpoints_of, query
from certpager.lab.tls import LoopbackServer, server_context
from certpager.text import printable

Zoo = Callable[[LoopbackServer], LoopbackServer]
HUGE = 100 * 1024 * 1024


def _alert(fingerprint: str = "f1", **labels: Any) -> dict[str, Any]:
    return {
        "labels": {"alertname": "CertExpiring", "instance": "app.test:443", **labels},
        "annotations": {"summary": "expires soon"},
        "fingerprint": fingerprint,
        "startsAt": "2026-01-01T00:00:00Z",
    }


def _vector(*metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [0, "1"]} for m in metrics]},
    }


def _am(url: str, timeout: float = 2.0) -> AlertmanagerClient:
    return AlertmanagerClient(AlertmanagerSettings(url=url, timeout=timeout))


def am_outcome(url: str, timeout: float = 2.0) -> tuple[AlertBatch | str, float]:
    """(the batch, or the error line) of GET alerts, and the seconds it took."""
    started = time.monotonic()
    try:
        result: AlertBatch | str = asyncio.run(_am(url, timeout).alerts())
    except AlertmanagerError as exc:
        result = str(exc)
    return result, time.monotonic() - started


def prom_outcome(url: str, timeout: float = 2.0) -> tuple[list[dict[str, str]] | str, float]:
    """(the label sets, or the error line) of the import's query, and the seconds it took."""
    started = time.monotonic()
    try:
        result: list[dict[str, str]] | str = query(PrometheusSource(url=url, timeout=timeout))
    except PrometheusError as exc:
        result = str(exc)
    return result, time.monotonic() - started


def one_line(message: object, url: str) -> str:
    assert isinstance(message, str), message
    assert "\n" not in message and "\x1b" not in message, message
    assert url in message, message
    return message


# -- failures both clients share: one line, within the timeout, nothing huge read -------------

FAILURES = [
    # (name, act, words in the Alertmanager line, words in the Prometheus line)
    (
        "redirect to another host (urllib followed it)",
        Act(response(302, "", headers={"Location": "http://10.1.2.3/api"})),
        "302, a redirect to http://10.1.2.3/api: not followed",
        "302, a redirect to http://10.1.2.3/api: not followed",
    ),
    (
        "redirect to a file: URL",
        Act(response(301, "", headers={"Location": "file:///etc/passwd"})),
        "a redirect to file:///etc/passwd: not followed",
        "a redirect to file:///etc/passwd: not followed",
    ),
    (
        "HTTP 500 with an HTML page",
        Act(response(500, "<html>\n<h1>Oops\x1b[31m</h1>\n" + "x" * 5000, ctype="text/html")),
        "answered 500: <html> <h1>Oops\\x1b[31m</h1>",
        "HTTP 500: <html> <h1>Oops\\x1b[31m</h1>",
    ),
    (
        "gzip body never asked for (was 'not JSON')",
        Act(gzip_json([_alert()])),
        "compressed with 'gzip', which was not asked for",
        "compressed with 'gzip', which was not asked for",
    ),
    ("not JSON", Act(response(200, "{nope", ctype="text/plain")), "not JSON", "not JSON"),
    (
        "accepted and never answered",
        Act(silent=True),
        "no complete HTTP response within 1 s",
        "no complete HTTP response within 1 s",
    ),
    (
        "one byte a second (urllib: 20 s against a 1 s timeout)",
        Act(response(200, [_alert()]), trickle=1.0),
        "no complete HTTP response within 1 s",
        "no complete HTTP response within 1 s",
    ),
    (
        "100 MB announced (urllib read 64 MB first)",
        Act(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE, stream=HUGE),
        "larger than",
        "larger than",
    ),
    (
        "100 MB without a length",
        Act(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", stream=HUGE),
        "larger than",
        "larger than",
    ),
    ("not HTTP", Act(b"SSH-2.0-OpenSSH_9.2\r\n"), "did not answer HTTP", "did not answer HTTP"),
    (
        "JSON nested 100,000 deep (a RecursionError traceback out of the import)",
        Act(response(200, b"[" * 100_000)),
        "nested too deep",
        "nested too deep",
    ),
    (
        "15 MB of empty objects: 5 million dicts, ~700 MB parsed (refused unparsed)",
        Act(response(200, b"[" + b"{}," * 5_000_000 + b"{}]")),
        "more than 1,500,000 JSON values and containers: refused unparsed",
        "more than 1,500,000 JSON values and containers: refused unparsed",
    ),
]


@pytest.mark.parametrize(("name", "act", "am_words", "prom_words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_hostile_answers_are_one_line_within_the_timeout(
    zoo: Zoo, name: str, act: Act, am_words: str, prom_words: str
) -> None:
    server = zoo(HostileHttp(act))
    assert isinstance(server, HostileHttp)
    am, am_seconds = am_outcome(server.url, timeout=1.0)
    assert am_words in one_line(am, server.url)
    prom, prom_seconds = prom_outcome(server.url, timeout=1.0)
    assert prom_words in one_line(prom, server.url)
    assert am_seconds < 2.5 and prom_seconds < 2.5, (am_seconds, prom_seconds)
    if act.stream:  # refused at the bound (16 and 32 MiB, plus socket buffers), never 2 x 100 MB
        assert MAX_RESPONSE + MAX_ANSWER <= 48 * 1024 * 1024
        assert server.sent < HUGE, server.sent
    if act.stream and b"Content-Length" in act.raw:  # announced too large: refused unread
        assert server.sent < 16 * 1024 * 1024, server.sent


def test_chunked_and_wrong_content_type_are_read(zoo: Zoo) -> None:
    for ctype in ("application/json", "text/html"):
        server = zoo(HostileHttp(Act(response(200, [_alert()], ctype=ctype, chunked=True))))
        assert isinstance(server, HostileHttp)
        batch, _ = am_outcome(server.url)
        assert isinstance(batch, AlertBatch) and [a.fingerprint for a in batch.alerts] == ["f1"]
        server = zoo(
            HostileHttp(Act(response(200, _vector({"instance": "a.test:443"}), ctype=ctype, chunked=True)))
        )
        assert isinstance(server, HostileHttp)
        sets, _ = prom_outcome(server.url)
        assert sets == [{"instance": "a.test:443"}]


def test_self_signed_https_fails_verification_in_one_line(zoo: Zoo, pki: PKI) -> None:
    cert = pki.self_signed("localhost", sans=["localhost", "127.0.0.1"])
    chain, key = pki.write_chain("fleet-self-signed", [cert])
    server = zoo(HostileHttp(Act(response(200, [_alert()])), tls=server_context(chain, key)))
    assert isinstance(server, HostileHttp)
    am, _ = am_outcome(server.url)
    assert "certificate is not trusted" in one_line(am, server.url)
    prom, _ = prom_outcome(server.url)
    assert "certificate is not trusted" in one_line(prom, server.url)
    assert server.requests == []  # nothing was sent over the unverified connection


def test_https_with_ca_file_is_verified_against_it(zoo: Zoo, ca: Hierarchy) -> None:
    """``ca_file`` trusts a private CA (instead of the system CAs), and the host name is still
    checked: a certificate of the CA for another name is refused."""
    right = ca.serve_files("fleet-api-ip", ca.leaf("api", sans=["127.0.0.1"]))
    wrong = ca.serve_files("fleet-api-name", ca.leaf("other.test", sans=["other.test"]))
    good = zoo(HostileHttp(Act(response(200, [_alert()])), tls=server_context(*right)))
    bad = zoo(HostileHttp(Act(response(200, [_alert()])), tls=server_context(*wrong)))
    assert isinstance(good, HostileHttp) and isinstance(bad, HostileHttp)
    root = str(ca.root_file)
    batch = asyncio.run(AlertmanagerClient(AlertmanagerSettings(url=good.url, ca_file=root)).alerts())
    assert [a.fingerprint for a in batch.alerts] == ["f1"]
    with pytest.raises(AlertmanagerError) as info:
        asyncio.run(AlertmanagerClient(AlertmanagerSettings(url=good.url)).alerts())
    assert "not trusted by the system CAs (or ca_file)" in str(info.value)
    with pytest.raises(AlertmanagerError) as info:
        asyncio.run(AlertmanagerClient(AlertmanagerSettings(url=bad.url, ca_file=root, timeout=2)).alerts())
    assert "TLS failed" in one_line(str(info.value), bad.url)
    good.act = Act(response(200, _vector({"instance": "a.test:443"})))
    assert query(PrometheusSource(url=good.url, ca_file=root)) == [{"instance": "a.test:443"}]


def test_an_unreadable_ca_file_is_one_line(tmp_path: Path) -> None:
    settings = AlertmanagerSettings(url="https://127.0.0.1:1", ca_file=str(tmp_path / "gone.pem"))
    with pytest.raises(AlertmanagerError) as info:
        asyncio.run(AlertmanagerClient(settings).alerts())
    assert "cannot load ca_file" in one_line(str(info.value), "https://127.0.0.1:1")


# -- Alertmanager: answers of the wrong shape ------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"alerts": []}, "did not answer a list of alerts"),
        (b'"alerts"', "did not answer a list of alerts"),
        (b"12", "did not answer a list of alerts"),
        (None, "did not answer a list of alerts"),
        ([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], None),
    ],
)
def test_wrong_shapes_are_one_line_or_dropped(zoo: Zoo, doc: object, words: str | None) -> None:
    server = zoo(HostileHttp(Act(response(200, doc))))
    assert isinstance(server, HostileHttp)
    result, _ = am_outcome(server.url)
    if words is None:
        assert isinstance(result, AlertBatch) and result.alerts == () and result.dropped == 1
    else:
        assert words in one_line(result, server.url)


def test_malformed_alerts_are_dropped_and_the_rest_kept(zoo: Zoo) -> None:
    now = datetime.now(UTC)
    good = _alert("good")
    entries: list[object] = [
        good,
        _alert("good"),  # a duplicate fingerprint: kept once (was twice, so two pages)
        {**_alert("nolabels"), "labels": None},
        {**_alert("numlabel"), "labels": {"alertname": 5}},
        {**_alert("numname"), "fingerprint": 7},
        {**_alert("x"), "fingerprint": ""},
        {k: v for k, v in _alert("nofp").items() if k != "fingerprint"},
        {**_alert("nullannot"), "annotations": None},  # no annotations: fine
        {**_alert("future"), "startsAt": (now + timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {**_alert("early"), "startsAt": "0001-01-01T00:00:00+01:00"},  # OverflowError traceback before
        {**_alert("late"), "startsAt": "9999-12-31T23:59:59-01:00"},
        {**_alert("garbage"), "startsAt": "yesterday"},
        {**_alert("numtime"), "startsAt": 12},
        "not an alert",
        42,
        None,
    ]
    server = zoo(HostileHttp(Act(response(200, entries))))
    assert isinstance(server, HostileHttp)
    batch, _ = am_outcome(server.url)
    assert isinstance(batch, AlertBatch), batch
    by_fp = {a.fingerprint: a for a in batch.alerts}
    assert sorted(by_fp) == ["early", "future", "garbage", "good", "late", "nullannot", "numtime"]
    assert batch.dropped == len(entries) - len(by_fp)
    assert by_fp["good"].starts_at == datetime(2026, 1, 1, tzinfo=UTC)
    for fp in ("future", "early", "late", "garbage", "numtime"):  # unknown, not "since 2036"
        assert by_fp[fp].starts_at is None, fp
    mapped = map_alerts(batch.alerts, [Endpoint(name="app", host="app.test")], Settings())
    assert len(mapped.of("app")) == len(by_fp)
    assert "since 2026-01-01 00:00 UTC" in page_line(mapped.of("app"))


def test_hostile_label_text_is_bounded_and_shown_escaped(zoo: Zoo) -> None:
    evil = "\x1b]52;c;cGF3bmVk\x07\x1b[2J\u202e[b]bold[/b][link=http://x]"
    entries = [
        _alert("a", alertname=f"Cert{evil}", note="x" * 10_000),
        {**_alert("b"), "annotations": {"summary": f"sum {evil}" + "y" * 10_000}},
        _alert("c", **{f"k{i}": "v" for i in range(500)}),
    ]
    server = zoo(HostileHttp(Act(response(200, entries))))
    assert isinstance(server, HostileHttp)
    batch, _ = am_outcome(server.url)
    assert isinstance(batch, AlertBatch) and len(batch.alerts) == 3
    alerts = {a.fingerprint: a for a in batch.alerts}
    assert len(alerts["a"].labels["note"]) <= 1024
    assert alerts["b"].summary is not None and len(alerts["b"].summary) <= 1024
    assert len(alerts["c"].labels) <= 64
    shown = printable(
        page_line(map_alerts(batch.alerts, [Endpoint(name="app", host="app.test")], Settings()).of("app"))
    )
    for bad in ("\x1b", "\x07", "\u202e"):
        assert bad not in shown
    assert "[b]bold[/b]" in printable(alerts["a"].alertname)  # markup stays text (the TUI appends Text)


def test_ten_thousand_alerts_of_a_real_alertmanager(am: Alertmanager) -> None:
    """10,000 firing alerts (4.3 MB with a summary each: the old 4 MiB cap refused them all) are all read, in
    bounded time; each maps to its endpoint."""
    for batch in range(10):
        am.post_alerts(
            [
                {"labels": {"alertname": "CertExpiring", "instance": f"h{batch * 1000 + i}.test:443"}}
                for i in range(1000)
            ]
        )
    deadline = time.monotonic() + 60
    while len(am.alerts()) < 10_000 and time.monotonic() < deadline:
        time.sleep(0.5)
    started = time.monotonic()
    batch_ = asyncio.run(_am(am.url, timeout=20).alerts())
    took = time.monotonic() - started
    assert len(batch_.alerts) == 10_000 and batch_.dropped == 0
    mapped = map_alerts(batch_.alerts, [Endpoint(name="h1234", host="h1234.test")], Settings())
    assert len(mapped.of("h1234")) == 1 and len(mapped.adhoc) == 9_999
    assert took < 15, took


# -- Prometheus: label sets of the wrong kind ------------------------------------------------


def test_prometheus_hostile_instance_labels(zoo: Zoo) -> None:
    evil = "\x1b[2Japp\u202e"
    doc = _vector(
        {"instance": f"{evil}", "target": "a.test:443"},  # a name that is no text: the target names it
        {"instance": "n" * 10_000, "target": "b.test:443"},  # 10 kB: the target names it
        {"instance": "c.test:443"},
        {"instance": f"d.test{evil}:443"},  # no usable target: skipped
        {"instance": "[b]e.test[/b]"},
        {"instance": "https://user:pw@f.test/"},  # no host of its own: skipped
    )
    server = zoo(HostileHttp(Act(response(200, doc))))
    assert isinstance(server, HostileHttp)
    sets, _ = prom_outcome(server.url)
    assert isinstance(sets, list)
    imported = endpoints_of(sets, Settings())
    assert [e.name for e in imported.endpoints] == ["a.test:443", "b.test:443", "c.test:443"]
    assert imported.skipped == 3


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ([], 'query failed: the answer has no "status": "success"'),
        ({"status": "error", "error": "bad\x1b[2J"}, "query failed: bad\\x1b[2J"),
        ({"status": "success", "data": None}, "expected an instant vector"),
        ({"status": "success", "data": {"resultType": "vector", "result": None}}, "no result list"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": None}]}}, "label set"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"instance": 5}}]}},
            "label set",
        ),
    ],
)
def test_prometheus_wrong_shapes_are_one_line(zoo: Zoo, doc: object, words: str) -> None:
    server = zoo(HostileHttp(Act(response(200, doc))))
    assert isinstance(server, HostileHttp)
    result, _ = prom_outcome(server.url)
    assert words in one_line(result, server.url)


# -- the command line: one line, exit 3 for a bad section, and no password anywhere ----------


def test_cli_refuses_a_password_in_the_url_without_showing_it(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    secret = "hunter2-s3cret"
    for section in (
        f'settings: {{alertmanager: {{url: "http://admin:{secret}@127.0.0.1:9093"}}}}\n',
        f'prometheus: {{url: "http://admin:{secret}@127.0.0.1:9090"}}\n',
    ):
        config = tmp_path / "c.yaml"
        config.write_text(section + "endpoints: [{name: a, host: 127.0.0.1, port: 1}]\n")
        for args in (["check", "--config", str(config), "--json"], ["exporter", "--config", str(config)]):
            result = certpager_cli(args, cli_env, timeout=60)
            assert result.returncode == 3, (args, result.stderr)
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
            assert "url" in result.stderr and "***@127.0.0.1" in result.stderr
            assert secret not in result.stderr + result.stdout
    assert not any(
        secret in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p != config
    )


def test_cli_check_with_a_hostile_alertmanager(zoo: Zoo, tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Three copies of one alert whose startsAt overflowed (a traceback before): one alert,
    started at an unknown time, on the endpoint it names; an alert whose instance is a broken
    URL maps to nothing."""
    alert = {**_alert("x", instance="127.0.0.1:1@app.test"), "startsAt": "0001-01-01T00:00:00+01:00"}
    broken_url = _alert("y", instance="https://[::1/x")  # urlsplit raised: a traceback too
    server = zoo(HostileHttp(Act(response(200, [alert, alert, broken_url, alert]))))
    assert isinstance(server, HostileHttp)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"settings: {{alertmanager: {{url: '{server.url}', timeout: 2}}, timeout: 2}}\n"
        "endpoints: [{name: app, host: 127.0.0.1, port: 1, sni: app.test}]\n"
    )
    result = certpager_cli(["check", "--config", str(config), "--json"], cli_env, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    reports = doc if isinstance(doc, list) else doc.get("endpoints", doc)
    (app,) = [r for r in reports if r["name"] == "app"]
    assert [(a["fingerprint"], a["starts_at"]) for a in app["alerts"]] == [("x", None)]


# -- silences: only the endpoint's alerts, and only a real silence id ------------------------


def test_silences_of_an_endpoint_leave_other_endpoints_paged(am: Alertmanager) -> None:
    """The silences made for the pages of ``app`` (alertname + its target label, exactly) leave
    the same alert about another endpoint, and an alert about app's address without SNI, firing."""
    endpoints = [
        Endpoint(name="app", host="10.0.0.5", sni="app.test"),
        Endpoint(name="shop", host="10.0.0.5", sni="shop.test"),
    ]
    am.post_alerts(
        [
            {"labels": {"alertname": "CertExpiring", "instance": "app.test:443", "job": "bb"}},
            {"labels": {"alertname": "CertChain", "instance": "10.0.0.5:443@app.test", "job": "bb"}},
            {"labels": {"alertname": "CertExpiring", "instance": "shop.test:443", "job": "bb"}},
            {"labels": {"alertname": "CertExpiring", "instance": "10.0.0.5:443", "job": "bb"}},
        ]
    )
    client = _am(am.url, timeout=5)
    deadline = time.monotonic() + 30
    while len(asyncio.run(client.alerts()).alerts) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    mapped = map_alerts(asyncio.run(client.alerts()).alerts, endpoints, Settings())
    assert sorted(p.alertname for p in mapped.of("app")) == ["CertChain", "CertExpiring"]
    assert [e.name for e in mapped.adhoc] == ["10.0.0.5:443"]  # neither app's nor shop's
    until = datetime.now(UTC) + timedelta(minutes=10)
    for page in mapped.of("app"):
        asyncio.run(
            client.create_silence(silence_labels(page.labels), ends_at=until, created_by="t", comment="t")
        )
    deadline = time.monotonic() + 30
    left: list[str] = []
    while time.monotonic() < deadline:
        left = sorted(a.labels["instance"] for a in asyncio.run(client.alerts()).alerts)
        if len(left) == 2:
            break
        time.sleep(0.2)
    assert left == ["10.0.0.5:443", "shop.test:443"]


@pytest.mark.parametrize("answer", [{"silenceID": "\x1b[2J../../x"}, {"silenceID": ""}, {"id": "x"}, ["x"]])
def test_a_hostile_silence_id_is_refused(zoo: Zoo, answer: object) -> None:
    server = zoo(HostileHttp(Act(response(200, answer))))
    assert isinstance(server, HostileHttp)
    with pytest.raises(AlertmanagerError) as info:
        asyncio.run(
            _am(server.url).create_silence(
                {"alertname": "X"},
                ends_at=datetime.now(UTC) + timedelta(minutes=5),
                created_by="t",
                comment="t",
            )
        )
    assert "no silence id" in one_line(str(info.value), server.url)
