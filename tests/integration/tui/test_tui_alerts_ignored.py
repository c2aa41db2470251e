"""Alerts a fetch leaves out (here: one naming no endpoint, the case a real Alertmanager
produces) are a notice in the TUI, once per distinct count, not at every refresh.

The probes are the TUI suite's fake checker (tests/tui/tuilab.py); the alerts come from
prometheus-alertmanager on loopback.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import tuilab
from tests.integration.tui.test_tui_alerts import _config, _until
from tests.support.alertmanager import Alertmanager

from certpager.config import AlertmanagerSettings
from certpager.fleet.alertmanager import AlertBatch, fetch_alerts
from certpager.tui import alerts


async def test_an_alert_naming_no_endpoint_is_a_notice_once(
    am: Alertmanager, checker, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[AlertBatch] = []

    async def counted(settings: AlertmanagerSettings) -> AlertBatch:
        batch = await fetch_alerts(settings)
        fetches.append(batch)
        return batch

    monkeypatch.setattr(alerts, "fetch_alerts", counted)
    am.post_alerts(
        [
            {"labels": {"alertname": "CertificateExpiringSoon", "endpoint": "mail"}},
            {"labels": {"alertname": "NodeDown", "job": "node"}},  # no endpoint, target, instance
        ]
    )
    config = _config(am.url)
    assert config.settings.alertmanager is not None
    alertmanager = replace(config.settings.alertmanager, interval=1.0)
    app = tuilab.make_app(
        checker, config=replace(config, settings=replace(config.settings, alertmanager=alertmanager))
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: bool(app._notifications), "a notice")
        (notice,) = list(app._notifications)
        assert notice.title == "Alerts ignored" and notice.severity == "warning"
        assert notice.message == (
            "Alertmanager: 1 alert ignored (1 naming no endpoint): they page about no row here."
        )
        assert app.endpoints_screen.pages.of("mail")
        fetched = len(fetches)
        await _until(pilot, lambda: len(fetches) >= fetched + 2, "two more fetches")
        await tuilab.settle(pilot)
        assert len(list(app._notifications)) == 1  # the same count again: no second notice
