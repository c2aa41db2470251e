"""Render the screenshots (README and docs/) of the TUI into ``screenshots/``.

One command, deterministic: a fixed terminal size, the frozen clock of the TUI
tests (Saturday 2026-03-14 02:13 UTC), the fake network and fixture
certificates of ``tests/tui/tuilab.py``, the real runbook engine driving a fake
SSH host. Nothing touches the network. The scenes are the ones the snapshot
tests check, so the README shows what the app shows. Run from anywhere::

    python scripts/screenshots.py            # every shot into screenshots/
    python scripts/screenshots.py main plan  # some of them
    python scripts/screenshots.py --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "tui"), str(ROOT)]

import tuilab  # noqa: E402

#: name -> (scene, terminal size)
SHOTS: dict[str, tuple[str, tuple[int, int]]] = {
    "main": ("main", (120, 40)),
    "main-80x24": ("main", (80, 24)),
    "detail": ("detail", (120, 40)),
    "plan": ("plan", (120, 40)),
    "confirm": ("confirm", (120, 40)),
    "verified": ("verified", (120, 40)),
}


async def shoot(name: str, out: Path, home: Path) -> Path:
    """Render one shot into ``out/<name>.svg``."""
    scene_name, size = SHOTS[name]
    shot_home = home / name
    shot_home.mkdir()
    os.environ["HOME"] = str(shot_home)  # a fresh audit log and locks for every shot
    scene = tuilab.scene(scene_name, shot_home)
    async with scene.app.run_test(size=size) as pilot:
        await scene.steps(pilot)
        await pilot.wait_for_scheduled_animations()
        svg = scene.app.export_screenshot(title=f"certpager — {name}")
    path = out / f"{name}.svg"
    path.write_text(svg, encoding="utf-8")
    return path


async def run(names: list[str], out: Path, home: Path) -> None:
    with tuilab.frozen_engine_clock():
        for name in names:
            path = await shoot(name, out, home)
            print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Render the screenshots of the TUI (README and docs/).")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="output directory")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"shots (default all: {', '.join(SHOTS)})")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in SHOTS]
    if unknown:
        parser.error(f"unknown shot(s) {', '.join(unknown)}; choose from {', '.join(SHOTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="certpager-shots-") as tmp:
        home = Path(tmp)
        # Paths on screen read ~/..., the same on every machine; no NO_COLOR, UTC.
        os.environ.pop("NO_COLOR", None)
        os.environ["TZ"] = "UTC"
        for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "CERTPAGER_AUDIT_LOG"):
            os.environ.pop(var, None)
        asyncio.run(run(args.names or list(SHOTS), args.out, home))
    return 0


if __name__ == "__main__":
    sys.exit(main())
