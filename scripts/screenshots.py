"""Render the README screenshots of the TUI into ``screenshots/``.

One command, deterministic: a fixed terminal size, the frozen clock of the TUI
tests (2026-03-14 02:13 UTC), the fake checker and fixture certificates of
``tests/tui/tuilab.py`` and the in-process fake runbook runner; nothing touches
the network. Run from the repository root::

    python scripts/screenshots.py            # writes screenshots/*.svg
    python scripts/screenshots.py --out DIR  # elsewhere
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "tui"), str(ROOT)]

import tuilab  # noqa: E402
from textual.pilot import Pilot  # noqa: E402

from certpager.tui.app import CertpagerApp  # noqa: E402

SIZE = (120, 36)
"""Terminal size of every screenshot (columns, rows)."""

Steps = Callable[[Pilot[int], CertpagerApp], Awaitable[None]]


async def settle(pilot: Pilot[int]) -> None:
    """Let workers post their results and the screen repaint."""
    await tuilab.settle(pilot)
    await pilot.wait_for_scheduled_animations()


async def main_screen(pilot: Pilot[int], app: CertpagerApp) -> None:
    await settle(pilot)


async def detail_screen(pilot: Pilot[int], app: CertpagerApp) -> None:
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


SHOTS: dict[str, tuple[tuple[int, int], Steps]] = {
    "main": (SIZE, main_screen),
    "main-80x24": ((80, 24), main_screen),
    "detail": (SIZE, detail_screen),
}


async def shoot(name: str, size: tuple[int, int], steps: Steps, out: Path) -> Path:
    app = tuilab.make_app()
    async with app.run_test(size=size) as pilot:
        await steps(pilot, app)
        path = out / f"{name}.svg"
        svg = app.export_screenshot(title=f"certpager — {name}")
    path.write_text(svg, encoding="utf-8")
    return path


async def run(out: Path, only: list[str]) -> None:
    for name, (size, steps) in SHOTS.items():
        if only and name not in only:
            continue
        path = await shoot(name, size, steps, out)
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="output directory")
    parser.add_argument("only", nargs="*", help=f"shots to render (default all: {', '.join(SHOTS)})")
    args = parser.parse_args()
    os.environ.setdefault("TZ", "UTC")
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.out, args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
