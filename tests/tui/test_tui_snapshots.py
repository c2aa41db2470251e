"""Snapshots at 80x24 and 120x40, clock frozen (review the SVGs like code).

Regenerate with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` on the
pinned Python and Textual, look at the report, and commit the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import tuilab
from textual.pilot import Pilot

SnapCompare = Callable[..., bool]


def check(snap_compare: SnapCompare, name: str, home: Path, size: tuple[int, int]) -> None:
    scene = tuilab.scene(name, home)

    async def run_before(pilot: Pilot[int]) -> None:
        await scene.steps(pilot)

    assert snap_compare(scene.app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("name", ["main", "detail", "help", "filter"])
def test_snapshot_80x24(snap_compare: SnapCompare, home: Path, name: str) -> None:
    check(snap_compare, name, home, (80, 24))


@pytest.mark.parametrize("name", ["main", "detail", "plan", "confirm", "verified"])
def test_snapshot_120x40(snap_compare: SnapCompare, home: Path, name: str) -> None:
    check(snap_compare, name, home, (120, 40))


def test_snapshot_no_color(snap_compare: SnapCompare, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    check(snap_compare, "main", home, (80, 24))
