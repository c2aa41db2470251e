"""Debian's prometheus-alertmanager on loopback, for the fleet tests.

One Alertmanager per test: no cluster (``--cluster.listen-address=`` empty), its
storage and config in the test's tmp_path, the API on a free loopback port, ready
when ``/-/ready`` answers 200 (bounded wait), stopped by PID: a
:class:`tests.support.prometheus.Server` like Prometheus and the blackbox exporter.
:meth:`Alertmanager.post_alerts` sends alerts the way Prometheus does (POST
/api/v2/alerts, a list of ``{labels, annotations, startsAt, endsAt, generatorURL}``).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.prometheus import Server, binary, http_get

#: A minimal routing tree: everything to a receiver that sends nowhere.
CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


@dataclass
class Alertmanager(Server):
    """Debian's Alertmanager; :attr:`url` is its base URL (``http://127.0.0.1:PORT``)."""

    def argv(self) -> list[str]:
        config = self.directory / "alertmanager.yml"
        config.write_text(CONFIG)
        (self.directory / "data").mkdir(exist_ok=True)
        return [
            binary("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def post_alerts(self, alerts: Sequence[Mapping[str, object]]) -> None:
        """POST ``alerts`` to /api/v2/alerts (each ``{labels, annotations?, startsAt?, endsAt?}``);
        ``startsAt`` defaults to now, ``generatorURL`` to a Prometheus-like URL."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        body = [
            {
                "startsAt": now,
                "generatorURL": "http://127.0.0.1:9090/graph",
                "annotations": {},
                **dict(alert),
            }
            for alert in alerts
        ]
        req = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            resp.read()

    def _get_json(self, path: str) -> list[dict[str, Any]]:
        status, body = http_get(self.url + path)
        assert status == 200, (path, status, body[:500])
        data: list[dict[str, Any]] = json.loads(body)
        return data

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts as Alertmanager holds them (every state)."""
        return self._get_json("/api/v2/alerts")

    def silences(self) -> list[dict[str, Any]]:
        """GET /api/v2/silences (every state)."""
        return self._get_json("/api/v2/silences")


def start_alertmanager(workdir: Path) -> Alertmanager:
    """Start Alertmanager with its config and storage under ``workdir`` (fails the test when
    it is not installed or does not get ready)."""
    server = Alertmanager(workdir)
    server.start()
    return server


__all__ = ["Alertmanager", "start_alertmanager"]
