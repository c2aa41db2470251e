"""The app repaints at certpager.tui.FPS (Textual's TEXTUAL_FPS), unless the user set it."""

from __future__ import annotations

import os
import subprocess
import sys

from certpager.tui import FPS

CODE = "import certpager.tui.app; from textual import constants; print(constants.MAX_FPS)"


def _max_fps(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip())


def test_the_app_repaints_at_its_fps() -> None:
    assert FPS > 60
    assert _max_fps() == FPS


def test_a_users_textual_fps_wins() -> None:
    assert _max_fps(TEXTUAL_FPS="30") == 30
