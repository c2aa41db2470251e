"""TUI tests that start real servers or a real process: the shared TUI fixtures
(``tests/tui/tui_fixtures.py``), as for the TUI tests on fakes."""

from __future__ import annotations

from tui_fixtures import (  # noqa: F401  (fixtures: pytest finds them by name)
    _frozen_engine_clock,
    _isolated_state,
    _no_cursor_blink,
    audit_path,
    checker,
    home,
    host,
    state_dir,
)
