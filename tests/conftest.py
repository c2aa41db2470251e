"""Shared fixtures: a frozen ``now``, the certificate factory, loopback TLS servers, nginx.

Certificates are generated relative to ``now`` (frozen once per session, UTC,
whole seconds), so a test that judges expiry passes ``now=`` to the probe and
gets exact day counts. Tests that go through the real CLI (which reads the
clock itself) use validity margins of hours, never seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy, hierarchy

from certpager.lab.tls import LoopbackServer, TLSServer


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    """The frozen instant every generated certificate is relative to (UTC, whole seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def pki(now: dt.datetime, tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The session's certificate factory, writing PEM files into a session temp dir."""
    return PKI(now, tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def ca(pki: PKI) -> Hierarchy:
    """The usual root -> intermediate hierarchy (root written to ``ca.root_file``)."""
    return hierarchy(pki, "certpager Test")


@pytest.fixture(scope="session")
def other_ca(pki: PKI) -> Hierarchy:
    """An unrelated hierarchy: its root is *not* the one the probe trusts."""
    return hierarchy(pki, "Unrelated")


@pytest.fixture
def zoo() -> Iterator[Callable[[LoopbackServer], LoopbackServer]]:
    """Start any :class:`LoopbackServer` (the hostile zoo); stopped and joined at teardown."""
    started: list[LoopbackServer] = []

    def start(server: LoopbackServer) -> LoopbackServer:
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def serve(zoo: Callable[[LoopbackServer], LoopbackServer]) -> Callable[..., TLSServer]:
    """Start :class:`TLSServer` instances; all are stopped (threads joined) at teardown.

    ``serve(chain_file, key_file, **kw)`` returns a running server.
    """

    def start(chain_file: Path, key_file: Path, **kw: Any) -> TLSServer:
        server = TLSServer(chain_file, key_file, **kw)
        zoo(server)
        return server

    return start


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[[list[Site]], Nginx]]:
    """Start Debian nginx with the given sites; stopped by PID at teardown."""
    started: list[Nginx] = []

    def start(sites: list[Site]) -> Nginx:
        prefix = tmp_path / f"nginx{len(started)}"
        server = Nginx(prefix=prefix, sites=sites)
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files (tests/integration/golden/) from this run instead of comparing",
    )
