"""Fixtures of the TUI tests: the frozen incident, its fake network and fake SSH host.

Every test gets its own state directory (audit log, run locks, XDG dirs), the
clock frozen at ``tuilab.NOW`` for the app and for the runbook engine's
verification, and no cursor blink (snapshots stay stable).

Both ``tests/tui/conftest.py`` (TUI tests on fakes) and
``tests/integration/tui/conftest.py`` (TUI tests that start real servers or a real
process) import these fixtures by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tuilab
from textual.widgets import Input


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Audit log, locks and config dirs under the test's tmp dir; UTC; no NO_COLOR leak."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(state / "xdg-state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(state / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(state / "xdg-config"))
    monkeypatch.setenv("CERTPAGER_AUDIT_LOG", str(state / "audit.jsonl"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return state


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor would make snapshots depend on timing."""
    original = Input._on_mount

    def on_mount(self: Input, event: object) -> None:
        self.set_reactive(Input.cursor_blink, False)
        original(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(Input, "_on_mount", on_mount)


@pytest.fixture(autouse=True)
def _frozen_engine_clock() -> Iterator[None]:
    """The runbook engine judges days-left at the frozen instant too."""
    with tuilab.frozen_engine_clock():
        yield


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of its own, so paths on screen read ``~/...`` on every machine."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture
def checker() -> tuilab.FakeChecker:
    """The fake network of the incident."""
    return tuilab.FakeChecker()


@pytest.fixture
def host(checker: tuilab.FakeChecker) -> tuilab.FakeHost:
    """The fake SSH host: certbot renews, nginx reloads, the fake network follows."""
    return tuilab.FakeHost(checker)


@pytest.fixture
def state_dir(_isolated_state: Path) -> Path:
    """Where the audit log and the run locks of the test live."""
    return _isolated_state


@pytest.fixture
def audit_path(state_dir: Path) -> Path:
    """The audit log the runbook service writes."""
    return state_dir / "audit.jsonl"
