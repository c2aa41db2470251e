"""Debian's prometheus-alertmanager on loopback, for the fleet tests.

One Alertmanager per test: no cluster (``--cluster.listen-address=`` empty), its
storage and config in the test's tmp_path, the API on a free loopback port, ready
when ``/-/ready`` answers 200 (bounded wait), stopped by PID. :meth:`Alertmanager.post_alerts`
sends alerts the way Prometheus does (POST /api/v2/alerts, a list of
``{labels, annotations, startsAt, endsAt, generatorURL}``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certpager.lab import process
from certpager.lab.ports import free_port

BINARY = "prometheus-alertmanager"
INSTALL_HINT = "apt-get install -y prometheus-alertmanager"
READY_TIMEOUT = 30.0

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


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def _ready(url: str) -> bool:
    try:
        _get(url + "/-/ready", timeout=1.0)
    except OSError:
        return False
    return True


@dataclass
class Alertmanager:
    """A running Alertmanager; :attr:`url` is its base URL (``http://127.0.0.1:PORT``)."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

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

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts as Alertmanager holds them (every state)."""
        data: list[dict[str, Any]] = json.loads(_get(self.url + "/api/v2/alerts"))
        return data

    def silences(self) -> list[dict[str, Any]]:
        """GET /api/v2/silences (every state)."""
        data: list[dict[str, Any]] = json.loads(_get(self.url + "/api/v2/silences"))
        return data

    def stop(self) -> None:
        """Stop the process by PID."""
        process.stop(self.proc)


def start_alertmanager(workdir: Path) -> Alertmanager:
    """Start Alertmanager with its config and storage under ``workdir``; skip when not installed."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.skip(f"{BINARY} is not installed ({INSTALL_HINT})")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG)
    (workdir / "data").mkdir(exist_ok=True)
    log = workdir / "alertmanager.log"
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = process.spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            log=log,
        )
        if process.wait_ready(proc, functools.partial(_ready, url), READY_TIMEOUT):
            return Alertmanager(proc=proc, url=url, log=log)
        process.stop(proc)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"alertmanager did not become ready: {tail}")


__all__ = ["Alertmanager", "start_alertmanager"]
