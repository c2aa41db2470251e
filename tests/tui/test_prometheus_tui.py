"""The TUI opens on the configured endpoints plus those imported from Prometheus (the
``prometheus:`` section), and on the configured ones alone, with one line on stderr, when
Prometheus cannot be queried. The app itself is replaced by a recorder: what is checked is
the config ``run_tui`` hands to it. (The import against a real Prometheus is in
tests/integration/test_prometheus_fleet_import.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.prometheus import StaticMetrics

from certpager.config import Config
from certpager.lab.ports import reserve_port
from certpager.tui import app as tui_app
from certpager.tui.cli import run_tui


class Recorder:
    return_code = 0

    def __init__(self, config: Config) -> None:
        self.config = config

    def run(self) -> None:
        pass


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    seen: list[Config] = []

    def build_app(config: Config, **_: Any) -> Recorder:
        seen.append(config)
        return Recorder(config)

    monkeypatch.setattr(tui_app, "build_app", build_app)
    return seen


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    doc = {
        "prometheus": {"url": url, "timeout": 5},
        "endpoints": [{"name": "mine", "host": "127.0.0.1", "port": 4443}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tui_gets_the_imported_endpoints(tmp_path: Path, opened: list[Config]) -> None:
    answer = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"instance": "127.0.0.1:4443"}, "value": [0, "1"]},  # covered by "mine"
                {"metric": {"instance": "127.0.0.2:443@app.test"}, "value": [0, "1"]},
            ],
        },
    }
    with StaticMetrics(json.dumps(answer).encode()) as api:
        assert run_tui(_config(tmp_path, f"http://127.0.0.1:{api.port}")) == 0
    assert [e.name for e in opened[0].endpoints] == ["mine", "127.0.0.2:443@app.test"]


def test_tui_with_prometheus_down(
    tmp_path: Path, opened: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    with reserve_port() as sock:
        assert run_tui(_config(tmp_path, f"http://127.0.0.1:{sock.getsockname()[1]}")) == 0
    assert [e.name for e in opened[0].endpoints] == ["mine"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certpager: prometheus import failed")
