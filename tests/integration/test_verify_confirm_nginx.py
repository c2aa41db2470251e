"""The reload race, made deterministic, with real nginx and sshd through the real
``certpager run nginx-reload``: after ``nginx -s reload`` old workers keep accepting new
connections for a moment, so the client sees the new certificate on one connection and the
old one on the next. A verification that trusted its first passing round said VERIFIED
while the next connection still got the old certificate; it must pass only once the old
certificate is no longer served (two passing rounds in a row).

The race: a TCP front (:class:`ReloadRace`) before nginx. Once the runbook's reload has run
(it touches a flag file after ``nginx -s reload``), connections alternate, nginx first,
between nginx (the new workers: the renewed certificate) and an "old worker" (a lab TLS
server still serving the certificate from before the reload), for ``window`` connections;
then nginx only (the old workers have drained). The runbook is the shipped nginx-reload
with ``fixes: [served_not_stored]`` only, so a verification round is one handshake (no
protocol scan or HTTP check through the front): one connection, one round."""

from __future__ import annotations

import selectors
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from tests.support.cli import certpager_cli
from tests.support.e2e_stack import E2EStack, file_leaf, served_leaf

from certpager.lab.tls import IO_TIMEOUT, LoopbackServer, TLSServer
from certpager.runbook.loader import shipped_runbook_dir

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]

PUMP_SECONDS = 15.0
"""Longest one forwarded connection may last."""


class ReloadRace(LoopbackServer):
    """Forward each connection to nginx or to the old worker (see the module docstring)."""

    def __init__(self, nginx_port: int, old_port: int, flag: Path, window: int):
        super().__init__(max_connections=300, max_concurrent=16)
        self.nginx_port, self.old_port, self.flag, self.window = nginx_port, old_port, flag, window
        self.routes: list[str] = []
        """Where each connection after the reload went (``new``: nginx, ``old``)."""
        self._route_lock = threading.Lock()

    def _route(self) -> int:
        with self._route_lock:
            if not self.flag.exists() or len(self.routes) >= self.window:
                return self.nginx_port
            to_old = len(self.routes) % 2 == 1
            self.routes.append("old" if to_old else "new")
            return self.old_port if to_old else self.nginx_port

    def handle(self, conn: socket.socket) -> None:
        with socket.create_connection(("127.0.0.1", self._route()), timeout=IO_TIMEOUT) as upstream:
            self._pump(conn, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until one side closes, the server stops or time is up."""
        peer = {a: b, b: a}
        end = time.monotonic() + PUMP_SECONDS
        with selectors.DefaultSelector() as sel:
            for s in (a, b):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            while not self.stopping.is_set() and time.monotonic() < end:
                for key, _ in sel.select(0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    peer[src].setblocking(True)
                    peer[src].sendall(data)
                    peer[src].setblocking(False)


def only_for_served_not_stored(env: dict[str, str]) -> None:
    """A user nginx-reload (it wins over the shipped one) whose verification is a handshake."""
    shipped = shipped_runbook_dir()
    assert shipped is not None
    text = (shipped / "nginx-reload.yaml").read_text()
    start, end = text.index("fixes:\n"), text.index("params:\n")
    user_dir = Path(env["XDG_CONFIG_HOME"]) / "certpager" / "runbooks"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "nginx-reload.yaml").write_text(text[:start] + "fixes: [served_not_stored]\n" + text[end:])


def test_a_pass_on_a_new_worker_is_not_verified_while_old_workers_serve_the_old_certificate(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ssl_dir = web.nginx_prefix / "ssl"
    live_chain, live_key = ssl_dir / "live.pem", ssl_dir / "live.key"
    shutil.copy(ssl_dir / "old.pem", live_chain)
    shutil.copy(ssl_dir / "old.key", live_key)
    web.point_tls(live_chain, live_key)
    old = file_leaf(live_chain)
    web.reload_nginx(expect_sha256=old.sha256)
    # Renewed on disk (50 days: within the 60-day legacy CA), not yet reloaded.
    new_chain, new_key, _ = web.issue_legacy(50, "renewed")
    shutil.copy(new_chain, live_chain)
    shutil.copy(new_key, live_key)
    stored = file_leaf(live_chain)
    flag = tmp_path / "reloaded"
    reload_script = tmp_path / "reload.sh"
    reload_script.write_text(f"#!/bin/sh\nset -e\n{web.nginx_reload_command()}\ntouch {flag}\n")
    reload_script.chmod(0o755)

    only_for_served_not_stored(cli_env)
    old_worker = TLSServer(ssl_dir / "old.pem", ssl_dir / "old.key", max_connections=100)
    with old_worker, ReloadRace(web.https_port, old_worker.port, flag, window=8) as race:
        assert served_leaf(race.port).sha256 == old.sha256  # before the reload: nginx, old
        config = web.write_config(
            tmp_path / "endpoints.yaml",
            web.endpoint_config(port=race.port, stored={"path": str(live_chain)}),
        )
        result = certpager_cli(
            ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--yes",
             "--param", f"reload_command={reload_script}"],
            cli_env,
        )  # fmt: skip
        out = result.stdout + result.stderr
        routes = list(race.routes)
        after = [served_leaf(race.port).sha256 for _ in range(3)]

    assert result.returncode == 0, out
    assert "Run SUCCEEDED" in out and "held on a second round" in out, out
    # The race happened: the old worker answered during the verification, and its old
    # certificate failed the rounds it answered...
    assert routes[:2] == ["new", "old"], routes
    assert f"served_not_stored remains (serves serial {old.serial}" in out, out
    # ...and VERIFIED came only after the old workers drained (the last connection of the
    # window went to nginx; every round since the window closed is nginx's).
    assert len(routes) == 8, (routes, out)
    assert after == [stored.sha256] * 3
    print(f"\nreload race: rounds after the reload went {routes}, then nginx only")
