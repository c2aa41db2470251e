"""``?``: every key, per screen, in one modal."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Static

from certpager.tui.widgets.pane import Pane

LIST_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓  j k", "move"),
    ("g G  Home End", "first / last"),
    ("PgUp PgDn", "page"),
    ("Enter", "details of the endpoint"),
    ("r", "recheck this endpoint now"),
    ("R", "recheck every endpoint now"),
    ("/", "filter by name, host or tag (tag:prod)"),
    ("Esc", "clear the filter"),
    ("b", "bell on/off when an endpoint gets worse"),
    (":  Ctrl+P", "command palette (every action)"),
    ("?", "this help"),
    ("q  Ctrl+Q", "quit"),
)

DETAIL_KEYS: tuple[tuple[str, str], ...] = (
    ("Esc", "back to the list"),
    ("r", "recheck this endpoint now"),
    ("f", "fix the marked (▶) finding: choose a runbook, see its plan, run it"),
    ("n  p", "mark the next / previous finding (what f fixes; the worst one at first)"),
    ("c", "copy the PEM (leaf, or the certificate under the tree cursor)"),
    ("y", "copy the SHA-256 fingerprint"),
    ("Tab", "switch between findings and chain"),
    ("↑ ↓  j k", "scroll; in the chain: move"),
    ("PgUp PgDn", "page; Home End (g G): first / last line"),
    ("Enter  Space", "in the chain: expand/collapse a certificate"),
)

RUNBOOK_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓  j k", "plan, steps, output: scroll (PgUp PgDn, Home End)"),
    ("Tab", "run: switch between steps, output and verification"),
    ("Enter", "plan: run it (each dangerous step still asks)"),
    ("y / n", "confirm / refuse a step"),
    ("typed name", "destructive steps: type the name shown, then Enter"),
    ("Ctrl+C  Esc", "cancel the running step (asks first)"),
    ("Esc", "when finished: back to the endpoint"),
)


def keys_text(readonly: bool) -> Text:
    """The help text: one section per screen; no runbook keys in read-only mode."""
    text = Text()
    sections: list[tuple[str, tuple[tuple[str, str], ...]]] = [
        ("Endpoint list", LIST_KEYS),
        ("Endpoint details", tuple(k for k in DETAIL_KEYS if not (readonly and k[0] == "f"))),
    ]
    if not readonly:
        sections.append(("Runbooks", RUNBOOK_KEYS))
    for i, (title, keys) in enumerate(sections):
        if i:
            text.append("\n")
        text.append(f"{title}\n", "bold")
        for key, what in keys:
            text.append(f"  {key:<15}", "bold")
            text.append(f"{what}\n")
    if readonly:
        text.append("\nRead-only mode: runbook actions are hidden.\n", "italic")
    return text


class HelpScreen(ModalScreen[None]):
    """The keys of every screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, readonly: bool) -> None:
        super().__init__()
        self.readonly = readonly
        """Leave out the runbook keys."""

    def compose(self) -> ComposeResult:
        with Pane(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "Esc closes"
            yield Static(keys_text(self.readonly), id="help-text")

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


class TooSmallScreen(ModalScreen[None]):
    """Shown instead of a broken layout when the terminal is below the minimum size."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", show=False)]

    def __init__(self, minimum: tuple[int, int]) -> None:
        super().__init__()
        self.minimum = minimum
        """Smallest usable (columns, rows)."""

    def compose(self) -> ComposeResult:
        width, height = self.minimum
        yield Static(
            Text(f"Terminal too small.\ncertpager needs at least {width}x{height}.\nMake the window bigger."),
            id="too-small",
        )

    def action_close(self) -> None:
        """Close anyway."""
        self.dismiss(None)
