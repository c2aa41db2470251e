"""The detail screen's lines about Alertmanager's pages (hidden when there is nothing to say).

Plain strings from :func:`certpager.tui.view.page_texts` (already escaped) as
``rich.text.Text``: label values from Alertmanager are never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class PagesView(Widget):
    """``Paged by ALERT since TIME (N alerts)``, summaries, blackbox's expiry, ad-hoc notes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "pages-view--page",
        "pages-view--muted",
        "pages-view--ok",
        "pages-view--critical",
    }

    lines: reactive[tuple[tuple[str, str], ...]] = reactive((), layout=True)
    """``(tone, text)`` pairs; none: the view is hidden."""

    def watch_lines(self, lines: tuple[tuple[str, str], ...]) -> None:
        self.display = bool(lines)

    def on_mount(self) -> None:
        self.display = bool(self.lines)

    def render(self) -> Text:
        text = Text(overflow="fold")
        for index, (tone, line) in enumerate(self.lines):
            if index:
                text.append("\n")
            text.append(line, self.get_component_rich_style(f"pages-view--{tone}"))
        return text
