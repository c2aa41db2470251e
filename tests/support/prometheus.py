"""Debian's Prometheus and blackbox exporter, and ``certpager exporter``, as test fixtures.

Each runs on 127.0.0.1 on a free port (:mod:`certpager.lab.ports`), is started with
:func:`certpager.lab.process.spawn` with its log and data in a temp dir, waited for with a
bounded poll of its readiness endpoint, and stopped by PID (:func:`certpager.lab.process.stop`).
A missing binary fails the test loudly: a broken setup, not a reason to skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from tests.support.cli import isolated_env

from certpager.lab import process
from certpager.lab.http import http_response
from certpager.lab.ports import free_port
from certpager.lab.process import Started
from certpager.lab.tls import HttpServer


def binary(name: str, package: str | None = None) -> str:
    """Path of ``name``, or fail the test saying how to install it (from ``package``,
    by default the package of that name)."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        install = f"apt-get install -y {package or name} (scripts/test.sh installs it)"
        pytest.fail(f"{name} is not installed: {install}", pytrace=False)
    return found


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of GET ``url`` (loopback only); status 0 when nothing answered."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _ready(url: str) -> bool:
    return http_get(url, timeout=1.0)[0] == 200


@dataclass
class Server(Started):
    """A process listening on 127.0.0.1:``port``, started and stopped by the test
    (``with server:`` starts it unless it runs, always stops it)."""

    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    ready_path: str = "/-/ready"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """Where its output goes."""
        return self.directory / "output.log"

    def argv(self) -> list[str]:
        """The command line (the port is chosen)."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """Its environment (None: inherited)."""
        return None

    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self.proc is not None

    def start(self, timeout: float = 30.0) -> Server:
        """Start it and wait (bounded) until its readiness endpoint answers 200."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            self.proc = process.spawn(self.argv(), log=self.log, env=self.environment())
            if process.wait_ready(self.proc, lambda: _ready(self.url + self.ready_path), timeout):
                return self
            self.stop()  # most likely a port taken between picking and binding: retry
        pytest.fail(f"{self.argv()[0]} did not start:\n{self.output()}", pytrace=False)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period, reap (by PID)."""
        proc, self.proc = self.proc, None
        process.stop(proc)

    def output(self) -> str:
        """Its log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@dataclass
class Prometheus(Server):
    """Debian's Prometheus with a generated ``prometheus.yml`` and its TSDB in the temp dir."""

    scrape_configs: list[dict[str, Any]] = field(default_factory=list)
    rule_files: list[Path] = field(default_factory=list)
    interval: str = "1s"
    extra_args: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": self.scrape_configs,
        }
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return [
            binary("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a Prometheus HTTP API answer (fails the test on an error)."""
        status, body = http_get(f"{self.url}{path}?{urlencode(params)}", timeout=10)
        assert status == 200, (status, body[:500])
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        data = self.api("/api/v1/query", query=expr)
        return list(data["result"])

    def wait_for(
        self, what: str, predicate: Any, timeout: float = 60.0, message: Callable[[], str] | None = None
    ) -> Any:
        """Poll ``predicate()`` (bounded) until it returns something truthy; fail with ``what``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.5)
        said = message() if message is not None else f"last: {last!r}"
        pytest.fail(f"{what} not seen within {timeout:g} s ({said})\n{self.output()}", pytrace=False)


@dataclass
class Blackbox(Server):
    """Debian's prometheus-blackbox-exporter with the given modules."""

    modules: dict[str, Any] = field(default_factory=dict)
    ready_path: str = "/-/healthy"

    def argv(self) -> list[str]:
        path = self.directory / "blackbox.yml"
        path.write_text(yaml.safe_dump({"modules": self.modules}))
        return [
            binary("prometheus-blackbox-exporter"),
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]


@dataclass
class CertpagerExporter(Server):
    """``certpager exporter`` (this checkout's, as a subprocess) on loopback."""

    config: Path | None = None
    concurrency: int | None = None
    ready_path: str = "/metrics"

    def environment(self) -> dict[str, str] | None:
        return isolated_env(self.directory / "home")

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "certpager",
            "exporter",
            "--listen",
            f"127.0.0.1:{self.port}",
            *(["--config", str(self.config)] if self.config else []),
            *(["--concurrency", str(self.concurrency)] if self.concurrency else []),
        ]


class StaticMetrics(HttpServer):
    """A loopback HTTP server answering every GET (``/metrics`` included) with a fixed
    exposition text, for loading a Prometheus with many series by one scrape
    (:class:`certpager.lab.tls.HttpServer`: threads joined on stop; no limit on the
    connections over its life, as Prometheus scrapes it again every interval)."""

    def __init__(self, body: bytes) -> None:
        super().__init__(
            default=http_response(200, [("Content-Type", "text/plain; version=0.0.4")], body),
            max_connections=None,
        )

    def job(self, name: str = "static") -> dict[str, Any]:
        """A scrape job that keeps the series' own ``instance`` labels."""
        return {
            "job_name": name,
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}],
        }


def blackbox_series(targets: list[str], expiry: float = 2e9) -> bytes:
    """An exposition with one ``probe_ssl_earliest_cert_expiry{instance=T}`` per target, as
    Prometheus stores the blackbox exporter's series."""
    lines = ["# TYPE probe_ssl_earliest_cert_expiry gauge"]
    lines += [f'probe_ssl_earliest_cert_expiry{{instance="{t}"}} {expiry:.0f}' for t in targets]
    return ("\n".join(lines) + "\n").encode()


def multi_target_job(
    name: str, exporter_port: int, targets: list[str], *, param: str = "target"
) -> dict[str, Any]:
    """A scrape job in the blackbox multi-target pattern (as deploy/prometheus/scrape.yml)."""
    return {
        "job_name": name,
        "metrics_path": "/probe",
        "scrape_timeout": "1s",
        "static_configs": [{"targets": targets}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": f"__param_{param}"},
            {"source_labels": [f"__param_{param}"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": f"127.0.0.1:{exporter_port}"},
        ],
    }


__all__ = [
    "Blackbox",
    "CertpagerExporter",
    "Prometheus",
    "Server",
    "StaticMetrics",
    "binary",
    "blackbox_series",
    "http_get",
    "multi_target_job",
]
