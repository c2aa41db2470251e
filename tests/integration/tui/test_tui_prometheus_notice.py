"""A failed Prometheus import (the config's ``prometheus:`` section) is said inside the app,
not only on stderr, which the app's screen hides as soon as it opens.

A real ``certpager`` process on a pty; the Prometheus URL is a loopback port nothing listens on
(held by :func:`certpager.lab.ports.reserve_port`, so no other test takes it meanwhile).
"""

from __future__ import annotations

from pathlib import Path

import ptyapp
import yaml

from certpager.lab.ports import reserve_port


def test_failed_prometheus_import_is_a_notice_in_the_app(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "endpoints.yaml"
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        doc = {
            "prometheus": {"url": f"http://127.0.0.1:{port}", "timeout": 2},
            "endpoints": [{"name": "mine", "host": "127.0.0.1", "port": 9, "timeout": 1}],
        }
        config.write_text(yaml.safe_dump(doc))
        with ptyapp.running(["--config", str(config)], env=ptyapp.base_env(home), size=(120, 30)) as app:
            app.wait_for("certpager: prometheus import failed")  # stderr, before the app
            app.wait_for("mine")  # the app is up, on the configured endpoint
            app.wait_for("prometheus import failed")  # the notice, drawn by the app
            screen = app.text()
            assert screen.count("prometheus import failed") >= 2
