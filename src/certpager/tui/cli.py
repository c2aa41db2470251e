"""``certpager`` with no subcommand: load the config, then run the TUI.

Bad input is reported before the app starts (one line, exit 3, via
:class:`certpager.errors.UserError`), so a broken config never leaves the
terminal in the app's mode.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certpager.config import default_config_path, load_config
from certpager.errors import ConfigError
from certpager.fleet.prometheus import with_imported
from certpager.text import emit


def main(args: argparse.Namespace) -> int:
    """Entry point used by ``certpager`` without a subcommand."""
    config = getattr(args, "config", None)
    path = Path(config) if config else default_config_path()
    return run_tui(path, readonly=bool(getattr(args, "readonly", False)))


def run_tui(config_path: Path, *, readonly: bool = False) -> int:
    """Load ``config_path`` and run the app until the user quits; return the exit code.

    Raises:
        ConfigError: the file is missing or invalid (raised before the app starts).
    """
    if not config_path.exists() and not config_path.is_symlink():  # a FIFO or device: load_config says so
        raise ConfigError(
            'no endpoint config here; create it (README: "Configuring real endpoints") or try `certpager demo`',
            file=str(config_path),
        )
    config, note = with_imported(load_config(config_path))
    if note:  # on stderr (still there after the app quits) and inside the app (it hides stderr)
        emit(sys.stderr, f"certpager: {note}", flush=True)

    from certpager.tui.app import build_app

    app = build_app(config, readonly=readonly)
    app.startup_notice = note
    app.run()
    return app.return_code or 0
