"""The Alertmanager client and the alert -> endpoint mapping against a real Alertmanager.

prometheus-alertmanager runs on loopback (tests/support/alertmanager.py); alerts are
posted to it the way Prometheus sends them. The hostile cases use loopback servers
that answer garbage, nothing, or too much: each is one AlertmanagerError line within
the timeout.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.alertmanager import Alertmanager
from tests.support.hostile import GarbageServer, SilentServer

from certpager.config import AlertmanagerSettings, Endpoint, Settings, SSHTarget
from certpager.errors import AlertmanagerError
from certpager.fleet.alertmanager import MAX_RESPONSE, AlertmanagerClient, silence_labels
from certpager.fleet.pages import map_alerts, page_line
from certpager.lab.http import http_response
from certpager.lab.ports import reserve_port


def _client(url: str, *matchers: str, timeout: float = 5.0) -> AlertmanagerClient:
    return AlertmanagerClient(AlertmanagerSettings(url=url, matchers=matchers, timeout=timeout))


def _blackbox(instance: str, **labels: str) -> dict[str, object]:
    return {
        "labels": {"alertname": "CertificateExpiringSoon", "job": "blackbox", "instance": instance, **labels},
        "annotations": {"summary": f"certificate of {instance} expires in less than 7 days"},
    }


def test_firing_alerts_filtered_by_matchers(am: Alertmanager) -> None:
    am.post_alerts(
        [
            _blackbox("https://app.test:8443", team="web", severity="page"),
            _blackbox("db.test:5432", team="db", severity="page"),
        ]
    )
    batch = asyncio.run(_client(am.url, 'team="web"').alerts())
    assert [a.labels["instance"] for a in batch.alerts] == ["https://app.test:8443"]
    alert = batch.alerts[0]
    assert alert.alertname == "CertificateExpiringSoon"
    assert alert.severity == "page"
    assert alert.summary == "certificate of https://app.test:8443 expires in less than 7 days"
    assert alert.starts_at is not None and abs(alert.starts_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert len(alert.fingerprint) == 16
    every = asyncio.run(_client(am.url).alerts())
    assert len(every.alerts) == 2


def test_silenced_alerts_are_not_pages_and_expire_brings_them_back(am: Alertmanager) -> None:
    am.post_alerts([_blackbox("app.test:443")])
    client = _client(am.url)
    alert = asyncio.run(client.alerts()).alerts[0]
    silence_id = asyncio.run(
        client.create_silence(
            silence_labels(alert.labels),
            ends_at=datetime.now(UTC) + timedelta(minutes=10),
            created_by="oncall",
            comment="certbot-force-renew run r1",
        )
    )
    held = asyncio.run(client.silence(silence_id))
    assert held["createdBy"] == "oncall"
    assert {m["name"]: m["value"] for m in held["matchers"]} == {
        "alertname": "CertificateExpiringSoon",
        "instance": "app.test:443",
    }
    deadline = time.monotonic() + 10
    while asyncio.run(client.alerts()).alerts and time.monotonic() < deadline:
        time.sleep(0.2)
    assert asyncio.run(client.alerts()).alerts == ()
    asyncio.run(client.expire_silence(silence_id))
    assert asyncio.run(client.silence(silence_id))["status"]["state"] == "expired"
    deadline = time.monotonic() + 10
    while not asyncio.run(client.alerts()).alerts and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(asyncio.run(client.alerts()).alerts) == 1


def test_mapping_blackbox_and_certpager_alerts_to_endpoints(am: Alertmanager) -> None:
    endpoints = [
        Endpoint(name="app", host="127.0.0.1", port=8443, sni="app.test"),
        Endpoint(name="api", host="api.test", ssh=SSHTarget(host="api.test")),
    ]
    am.post_alerts(
        [
            _blackbox("https://app.test:8443/health"),
            _blackbox("api.test"),  # port 443
            {"labels": {"alertname": "CertpagerEndpointCritical", "endpoint": "app", "code": "expires_soon"}},
            {"labels": {"alertname": "CertificateExpiringSoon", "target": "api.test:9443@other.test"}},
            {"labels": {"alertname": "NoTarget", "job": "x"}},
        ]
    )
    batch = asyncio.run(_client(am.url).alerts())
    mapped = map_alerts(batch.alerts, endpoints, Settings())
    assert sorted(p.alertname for p in mapped.of("app")) == [
        "CertificateExpiringSoon",
        "CertpagerEndpointCritical",
    ]
    assert [p.alertname for p in mapped.of("api")] == ["CertificateExpiringSoon"]
    assert [ep.name for ep in mapped.adhoc] == ["api.test:9443@other.test"]
    adhoc = mapped.adhoc[0]
    assert (adhoc.host, adhoc.port, adhoc.sni) == ("api.test", 9443, "other.test")
    assert adhoc.ssh == SSHTarget(host="api.test")  # the config maps its host
    assert mapped.unmapped == 1
    assert page_line(mapped.of("app")).startswith("paged by CertificateExpiringSoon since ")
    assert page_line(mapped.of("app")).endswith("(2 alerts)")


# --- a down, slow or hostile Alertmanager: one line, within the timeout -------------------


def _json(body: bytes, status: int = 200, reason: str | None = None) -> bytes:
    return http_response(status, [("Content-Type", "application/json")], body, reason=reason)


def _error(url: str, timeout: float = 2.0) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(AlertmanagerError) as info:
        asyncio.run(_client(url, timeout=timeout).alerts())
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"alertmanager {url}: ")
    return message, time.monotonic() - started


def test_down_alertmanager_is_one_line() -> None:
    with reserve_port() as sock:
        message, _ = _error(f"http://127.0.0.1:{sock.getsockname()[1]}")
    assert "connection refused" in message


def test_slow_alertmanager_stops_at_the_timeout(zoo) -> None:
    server = zoo(SilentServer(max_seconds=10))
    message, seconds = _error(f"http://127.0.0.1:{server.port}", timeout=1.0)
    assert "within 1 s" in message or "within 1.0 s" in message, message
    assert seconds < 2.5


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (_json(b"{not json"), "not JSON"),
        (_json(b'{"alerts": []}'), "did not answer a list of alerts"),
        (_json(b"nope", 503, "Service Unavailable"), "answered 503: nope"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "did not answer HTTP"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: " + str(MAX_RESPONSE + 1).encode() + b"\r\n\r\n[",
            "larger than",
        ),
    ],
)
def test_hostile_answers_are_one_line(zoo, payload: bytes, words: str) -> None:
    server = zoo(GarbageServer(payload=payload, greet_first=False))
    message, seconds = _error(f"http://127.0.0.1:{server.port}")
    assert words in message
    assert seconds < 2.5


def test_hostile_labels_are_kept_bounded_and_mapped_safely(am: Alertmanager) -> None:
    evil = "\x1b]0;owned\x07\x1b[2J\u202e"
    am.post_alerts(
        [
            {"labels": {"alertname": f"Cert{evil}", "instance": "app.test:443", "note": "x" * 5000}},
            {"labels": {"alertname": "Bad", "instance": f"app.test{evil}:443"}},
        ]
    )
    batch = asyncio.run(_client(am.url).alerts())
    mapped = map_alerts(batch.alerts, [Endpoint(name="app", host="app.test")], Settings())
    (page,) = mapped.of("app")
    assert len(page.labels["note"]) <= 1024
    assert mapped.unmapped == 1  # a target that is no host name maps to nothing
    from certpager.text import printable

    shown = printable(page_line(mapped.of("app")))
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
