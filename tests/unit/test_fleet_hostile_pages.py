"""Alerts that could page about the wrong endpoint, or silence more than its alerts (pure
logic; the real Alertmanager's side is in tests/integration/test_fleet_hostile_peers.py and
tests/integration/test_alerts_silence.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from certpager.config import Endpoint, Settings
from certpager.fleet.alertmanager import Alert, alert_of, parse_time, silence_labels
from certpager.fleet.pages import map_alerts
from certpager.fleet.prometheus import endpoints_of

SHARED = [
    Endpoint(name="shop", host="10.0.0.5", sni="shop.test"),
    Endpoint(name="blog", host="10.0.0.5", sni="blog.test"),
]


def _alert(fingerprint: str = "f", **labels: str) -> Alert:
    alert = alert_of({"labels": {"alertname": "CertExpiring", **labels}, "fingerprint": fingerprint})
    assert alert is not None
    return alert


def test_an_address_several_names_share_maps_to_none_of_them() -> None:
    """Before: ``instance="10.0.0.5:443"`` paged about ``shop``, the first configured there,
    though blackbox probed the address without SNI (the default certificate)."""
    mapped = map_alerts([_alert(instance="10.0.0.5:443")], SHARED, Settings())
    assert mapped.of("shop") == () and mapped.of("blog") == ()
    assert [e.name for e in mapped.adhoc] == ["10.0.0.5:443"]


def test_a_name_or_an_sni_still_picks_its_endpoint() -> None:
    alerts = [
        _alert("a", instance="blog.test:443"),
        _alert("b", instance="10.0.0.5:443@shop.test"),
        _alert("c", instance="https://blog.test/health"),
    ]
    mapped = map_alerts(alerts, SHARED, Settings())
    assert [p.fingerprint for p in mapped.of("blog")] == ["a", "c"]
    assert [p.fingerprint for p in mapped.of("shop")] == ["b"]
    assert mapped.adhoc == ()


def test_one_endpoint_on_an_address_still_takes_its_alerts() -> None:
    mapped = map_alerts([_alert(instance="10.0.0.5:443")], SHARED[:1], Settings())
    assert [p.endpoint for p in mapped.of("shop")] == ["shop"]


def test_silence_labels_name_the_alert_and_its_target_only() -> None:
    labels = {"alertname": "X", "instance": "10.0.0.5:443@shop.test", "severity": "page", "job": "bb"}
    assert silence_labels(labels) == {"alertname": "X", "instance": "10.0.0.5:443@shop.test"}


def test_start_times_a_server_cannot_make_misleading() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_time("2026-12-03T12:04:00Z", now) is not None  # clock skew
    assert parse_time("2026-12-03T12:06:00Z", now) is None  # the future: unknown
    assert parse_time("0001-01-01T00:00:00+01:00", now) is None  # OverflowError before
    assert parse_time("9999-12-31T23:59:59-01:00", now) is None
    assert parse_time("2026-12-03T11:00:00.123456789Z", now) == now - timedelta(hours=1) + timedelta(
        microseconds=123456
    )


LABEL_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(
        r"(https?|tls|tcp)://\[?[0-9a-f:.%\]\[a-z@]{0,20}(:[0-9x-]{0,6})?(/[^ ]{0,5})?", fullmatch=True
    ),
    st.from_regex(r"[a-z0-9.:\[\]@%-]{0,30}", fullmatch=True),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["instance", "target", "endpoint", "alertname"]), LABEL_TEXT))
def test_no_label_value_makes_mapping_or_import_raise(labels: dict[str, str]) -> None:
    """Any label text (the server's): a page, an ad-hoc endpoint, an unmapped count or a
    skipped series; never an exception (``https://[::1/x`` raised ValueError out of urlsplit
    in map_alerts: a traceback in ``check`` and the TUI)."""
    alert = alert_of({"labels": labels, "fingerprint": "f"})
    assert alert is not None
    mapped = map_alerts([alert], SHARED, Settings())
    assert mapped.unmapped + sum(len(p) for p in mapped.pages.values()) == 1
    endpoints_of([labels], Settings())


def test_urls_that_do_not_parse_are_no_target() -> None:
    for value in ("https://[::1/x", "https://[zz]:443/", "tls://[::1", "https://h:99999/"):
        mapped = map_alerts([_alert(instance=value)], SHARED, Settings())
        assert mapped.unmapped == 1, value
