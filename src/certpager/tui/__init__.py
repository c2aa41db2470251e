"""The Textual app: endpoint list, detail, runbook flow.

Uses the core (``certpager.probe``, ``certpager.runbook``) unchanged; the core
never imports this package.

Importing it sets ``TEXTUAL_FPS`` (unless set already): Textual repaints a screen at
most that many times a second, and what a key does waits for the next repaint. At
Textual's default of 60, with 10,000 endpoints and reports streaming in, a cursor key
waited up to ~50 ms for its frame and the p95 of every key (bench/tui_fleet.py) was
51-59 ms; at :data:`FPS` it was 31-43 ms, with the same or less CPU (repaints follow
changes, a batch of reports at most every 50 ms, not the rate). Textual reads the
variable when it is first imported, so this package is imported before it.
"""

from __future__ import annotations

import os

FPS = 240
"""Repaints a second at most (Textual's ``TEXTUAL_FPS``); a user's own setting wins."""

os.environ.setdefault("TEXTUAL_FPS", str(FPS))
