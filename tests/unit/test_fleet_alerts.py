"""The pure side of the Alertmanager work: the config section and its one-line errors,
which endpoint an alert's labels name, the list order and badge of paged rows, the detail
lines, blackbox's expiry against the verified path, and a silence's duration."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certpager.config import AlertmanagerSettings, Endpoint, Settings, load_config, parse_matcher
from certpager.errors import ConfigError
from certpager.fleet.alertmanager import Alert, alert_of, silence_labels
from certpager.fleet.pages import Page, map_alerts, page_line, target_text
from certpager.probe.model import Status
from certpager.tui import view

NOW = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def _write(tmp_path: Path, settings: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(f"settings:\n{settings}endpoints: [{{name: a, host: 127.0.0.1}}]\n")
    return path


def test_alertmanager_section_loads(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            "  alertmanager:\n    url: https://am.example:9443/am/\n    matchers: [team=web, 'sev=~\"p|c\"']\n",
        )
    )
    assert config.settings.alertmanager == AlertmanagerSettings(
        url="https://am.example:9443/am", matchers=("team=web", 'sev=~"p|c"'), interval=30.0, timeout=5.0
    )
    assert load_config(_write(tmp_path, "  interval: 60\n")).settings.alertmanager is None


@pytest.mark.parametrize(
    ("settings", "where", "words"),
    [
        ("  alertmanager: {matchers: []}\n", ":2: settings.alertmanager.url:", "is required"),
        (
            "  alertmanager: {url: 'ftp://x'}\n",
            ":2: settings.alertmanager.url:",
            "is not an http:// or https:// URL",
        ),
        (
            "  alertmanager: {url: 'http://u:p@x'}\n",
            ":2: settings.alertmanager.url:",
            "no user, query or fragment",
        ),
        ("  alertmanager: {url: 'http://x:99999'}\n", ":2: settings.alertmanager.url:", "out of range"),
        (
            "  alertmanager:\n    url: http://x\n    matchers:\n      - a=b\n      - 'a=~\"(\"'\n",
            ":6: settings.alertmanager.matchers[1]:",
            "the regex does not compile",
        ),
        (
            "  alertmanager: {url: 'http://x', interval: 0}\n",
            ":2: settings.alertmanager.interval:",
            "at least 1",
        ),
        (
            "  alertmanager: {url: 'http://x', timout: 3}\n",
            ":2: settings.alertmanager",
            "did you mean 'timeout'",
        ),
    ],
)
def test_bad_alertmanager_section_is_one_located_line(
    tmp_path: Path, settings: str, where: str, words: str
) -> None:
    path = _write(tmp_path, settings)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}"), message
    assert words in message and "\n" not in message


def test_matcher_syntax() -> None:
    assert parse_matcher('team="web"') == ("team", "=", "web")
    assert parse_matcher(' sev !~ "p|c" ') == ("sev", "!~", "p|c")
    assert parse_matcher('a="say \\"hi\\""') == ("a", "=", 'say "hi"')
    assert parse_matcher("a!=") == ("a", "!=", "")
    for bad in ("team", "=web", "1a=b", 'a="unclosed', "a==b", "a=b,c=d"):
        with pytest.raises(ValueError):
            parse_matcher(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("https://app.example.com/health", "app.example.com:443"),
        ("http://app.example.com", "app.example.com:80"),
        ("https://[2001:db8::1]:8443/", "[2001:db8::1]:8443"),
        ("app.example.com:8443@sni.example", "app.example.com:8443@sni.example"),
        ("https://user@app.example.com", None),
        ("https://app.example.com:99999999", None),
        ("", None),
    ],
)
def test_target_text(value: str, text: str | None) -> None:
    assert target_text(value) == text


def _alert(fingerprint: str = "f1", minutes: int = 0, **labels: str) -> Alert:
    return Alert(
        alertname=labels.get("alertname", "CertificateExpiringSoon"),
        severity=labels.get("severity"),
        starts_at=NOW - timedelta(minutes=minutes),
        labels={"alertname": "CertificateExpiringSoon", **labels},
        fingerprint=fingerprint,
    )


def test_mapping_prefers_the_endpoint_label_and_matches_by_sni_and_port() -> None:
    endpoints = [
        Endpoint(name="web", host="10.0.0.1", sni="www.example"),
        Endpoint(name="web-8443", host="www.example", port=8443),
    ]
    mapped = map_alerts(
        [
            _alert("a", minutes=5, instance="www.example"),
            _alert("b", minutes=50, endpoint="web", instance="ignored.example"),
            _alert("c", instance="www.example:8443"),
            _alert("d", instance="www.example:443@other.example"),
            _alert("e", endpoint="nope"),
        ],
        endpoints,
        Settings(),
    )
    assert [p.fingerprint for p in mapped.of("web")] == ["b", "a"]  # earliest first
    assert [p.fingerprint for p in mapped.of("web-8443")] == ["c"]
    assert [ep.name for ep in mapped.adhoc] == ["www.example:443@other.example"]
    assert mapped.unmapped == 1
    assert (
        page_line(mapped.of("web"))
        == "paged by CertificateExpiringSoon since 2026-12-03 15:10 UTC (2 alerts)"
    )


def test_alert_of_refuses_malformed_entries_and_bounds_values() -> None:
    assert alert_of({"labels": {"a": 1}, "fingerprint": "x"}) is None
    assert alert_of({"labels": {}, "fingerprint": 5}) is None
    assert alert_of([]) is None
    alert = alert_of({"labels": {"alertname": "X", "v": "y" * 5000}, "fingerprint": "x", "startsAt": "nope"})
    assert alert is not None and alert.starts_at is None and len(alert.labels["v"]) == 1024


def test_silence_matches_alertname_and_the_target_labels_only() -> None:
    labels = {"alertname": "X", "instance": "a:443", "job": "bb", "severity": "page", "endpoint": "app"}
    assert silence_labels(labels) == {"alertname": "X", "instance": "a:443", "endpoint": "app"}


def test_paged_rows_first_with_a_paged_badge() -> None:
    page = Page("X", "page", NOW, {"alertname": "X"}, "f", "ok-one")
    rows = [
        view.make_row(Endpoint(name="bad", host="b.example"), None, False, NOW),
        view.make_row(Endpoint(name="ok-one", host="o.example"), None, False, NOW, [page]),
    ]
    rows = [replace(rows[0], status=Status.PAGE), rows[1]]
    ordered = view.sort_rows(rows)
    assert [r.name for r in ordered] == ["ok-one", "bad"]
    assert ordered[0].badge == "⚑ PAGED" and ordered[1].badge == "‼ PAGE"


def test_detail_lines_for_an_adhoc_endpoint_escape_the_summary() -> None:
    page = Page("X\x1b[2J", None, NOW, {}, "f", "t", summary="bad\u202etext")
    lines = view.page_texts([page], None, configured=False, can_run=False)
    assert lines[0] == ("page", "Paged by X\\x1b[2J since 2026-12-03 16:00 UTC")
    assert lines[1] == ("muted", "X\\x1b[2J: bad\\u202etext")
    assert "no runbook can run for it" in lines[2][1]


def test_an_instance_or_target_naming_an_endpoint_maps_by_name_before_parsing() -> None:
    # certpager's own endpoint scrape job keeps the endpoint's name in `instance`; a name that
    # is no valid target (a space) or that parses as another host must still map by name.
    endpoints = [
        Endpoint(name="shop front", host="10.0.0.1"),
        Endpoint(name="api.example", host="10.0.0.2"),
        Endpoint(name="api-real", host="api.example"),
    ]
    mapped = map_alerts(
        [
            _alert("a", instance="shop front"),
            _alert("b", target="api.example"),
            _alert("c", instance="api.example:443"),
        ],
        endpoints,
        Settings(),
    )
    assert [p.fingerprint for p in mapped.of("shop front")] == ["a"]
    assert [p.fingerprint for p in mapped.of("api.example")] == ["b"]
    assert [p.fingerprint for p in mapped.of("api-real")] == ["c"]
    assert mapped.unmapped == 0 and not mapped.adhoc
