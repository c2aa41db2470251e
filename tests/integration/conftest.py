"""Fixtures of the integration tests (pytest finds them; test files import nothing for them).

- ``sshd``: a real OpenSSH sshd on a random loopback port (its own host key, pinned known_hosts).
- ``web``: nginx serving app.test with a 2-day certificate + sshd (no ACME).
- ``e2e``: the full stack: nginx + pebble + a certbot lineage whose current
  certificate expires in 2 days + sshd.
- ``am``: Debian's prometheus-alertmanager on a random loopback port (no cluster, its own storage).
- ``cli_env``: environment for ``certpager`` subprocesses (private HOME and XDG dirs, run
  locks in the test's own directory).

The helpers that run the real CLI (``certpager_cli``, ``run_in_pty``) are in
``tests/support/cli.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.alertmanager import Alertmanager
from tests.support.cli import isolated_env
from tests.support.e2e_stack import E2EStack
from tests.support.sshd import Sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real sshd for root@127.0.0.1 with key auth."""
    server = Sshd(tmp_path / "ssh").start()
    try:
        yield server
    finally:
        server.stop()


def _stack(tmp_path: Path, *, with_pebble: bool) -> Iterator[E2EStack]:
    stack = E2EStack(tmp_path / "stack", with_pebble=with_pebble)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[E2EStack]:
    """nginx (2-day certificate from a legacy CA) + sshd."""
    yield from _stack(tmp_path, with_pebble=False)


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2EStack]:
    """nginx + pebble + certbot lineage (2 days left) + sshd."""
    yield from _stack(tmp_path, with_pebble=True)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``certpager`` subprocesses: private HOME/XDG dirs, no agent, no colour."""
    return isolated_env(tmp_path / "home", tmp_path / "locks")


@pytest.fixture
def am(tmp_path: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager (config and storage under the test's tmp_path), stopped by PID."""
    with Alertmanager(tmp_path / "am") as server:
        yield server
