"""The TUI tests on fakes: the shared TUI fixtures (``tui_fixtures.py``)."""

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
