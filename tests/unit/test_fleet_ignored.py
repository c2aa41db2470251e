"""Nothing left out silently: alerts an Alertmanager answer holds that page about no row
(malformed, duplicate, beyond the cap, naming no endpoint) and Prometheus series the import
leaves unchecked are counted by reason, and said in one line. Pure parts; the real
Alertmanager and ``certpager check`` are in tests/integration/test_fleet_loose_ends.py."""

from __future__ import annotations

from typing import Any

import pytest

from certpager.config import Config, Endpoint, PrometheusSource, Settings
from certpager.fleet import alertmanager
from certpager.fleet import pages as pages_module
from certpager.fleet.alertmanager import batch_of
from certpager.fleet.pages import Ignored, map_batch
from certpager.fleet.prometheus import Imported, endpoints_of, merge_counted, with_imported


def _alert(fingerprint: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": "CertExpiring", **labels}, "fingerprint": fingerprint}


def test_the_batch_counts_each_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alertmanager, "MAX_ALERTS", 6)
    monkeypatch.setattr(pages_module, "MAX_ALERTS", 6)
    entries: list[Any] = [
        _alert("a", instance="app.test:443"),
        _alert("a", instance="app.test:443"),  # duplicate
        _alert("b", instance="app.test:443"),
        "not an alert",  # malformed
        {"labels": {"alertname": 5}, "fingerprint": "c"},  # malformed
        _alert("d", job="no target label"),  # kept by the client, names no endpoint
        _alert("e", instance="app.test:443"),  # beyond the cap of 6
        _alert("f", instance="app.test:443"),  # beyond the cap
    ]
    batch = batch_of(entries)
    assert [a.fingerprint for a in batch.alerts] == ["a", "b", "d"]
    assert (batch.malformed, batch.duplicate, batch.over_limit, batch.dropped) == (2, 1, 2, 5)
    pages = map_batch(batch, [Endpoint(name="app", host="app.test")], Settings())
    assert [p.fingerprint for p in pages.of("app")] == ["a", "b"]
    assert pages.ignored == Ignored(malformed=2, duplicate=1, over_limit=2, no_endpoint=1)
    assert pages.ignored.json() == {
        "total": 6,
        "malformed": 2,
        "duplicate": 1,
        "over_limit": 2,
        "no_endpoint": 1,
    }
    assert pages.ignored.sentence() == (
        "Alertmanager: 6 alerts ignored (2 malformed, 1 duplicate, 2 beyond the first 6, 1 naming no endpoint)"
    )


def test_nothing_ignored_says_nothing() -> None:
    batch = batch_of([_alert("a", instance="app.test:443")])
    pages = map_batch(batch, [Endpoint(name="app", host="app.test")], Settings())
    assert pages.ignored.total == 0 and pages.ignored.sentence() is None
    assert pages.ignored.json()["total"] == 0
    assert Ignored(duplicate=1).sentence() == "Alertmanager: 1 alert ignored (1 duplicate)"


def test_series_named_like_another_target_are_counted() -> None:
    series = [
        {"instance": "web", "target": "a.test:443"},
        {"instance": "web", "target": "a.test:443"},  # the same series twice: nothing lost
        {"instance": "web", "target": "b.test:443"},  # another target under a used name: unchecked
        {"instance": "a-again", "target": "a.test:443"},  # another name for a.test: it is checked
        {"job": "no target"},  # no usable target
    ]
    imported = endpoints_of(series, Settings())
    assert [(e.name, e.host) for e in imported.endpoints] == [("web", "a.test")]
    assert (imported.skipped, imported.name_taken) == (1, 1)
    assert imported.note() == (
        "prometheus import: 2 series left out, not checked "
        "(1 without a usable target label, 1 named like another endpoint with a different target)"
    )
    assert Imported(()).note() is None


def test_merge_counts_imported_endpoints_a_configured_name_hides() -> None:
    configured = [
        Endpoint(name="app", host="a.test", port=443),
        Endpoint(name="b.test:443", host="other.test", port=443),
    ]
    imported = [
        Endpoint(name="a.test:443", host="A.test", port=443),  # covered by "app": checked
        Endpoint(name="b.test:443", host="b.test", port=443),  # same name, another target: unchecked
        Endpoint(name="app", host="a.test", port=443),  # same name, same target: checked
        Endpoint(name="c.test:443", host="c.test", port=443),
    ]
    merged, taken = merge_counted(configured, imported)
    assert [e.name for e in merged] == ["app", "b.test:443", "c.test:443"]
    assert taken == 1


def test_with_imported_without_prometheus_is_the_config_as_it_is() -> None:
    config = Config(endpoints=(Endpoint(name="app", host="a.test"),), settings=Settings())
    assert with_imported(config) == (config, None)
    assert Settings(prometheus=PrometheusSource(url="http://127.0.0.1:9")).prometheus is not None
