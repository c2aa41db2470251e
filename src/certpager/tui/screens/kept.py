"""Screens the app builds once and shows again: the endpoint list and the endpoint screen.

When Textual shows a screen again it restyles every node of it and so repaints every
widget. A kept screen's styles are current when it comes back under the theme it was
styled with: Textual restyles a node itself when its classes or pseudo-classes change
(focus, hover, ``-narrow``). At 10,000 endpoints that restyle was a third of what Enter
cost (bench/tui_fleet.py), so a kept screen skips it unless the theme (or the ANSI
colour mode) changed since it was last shown.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.screen import Screen


class KeptScreen(Screen[None]):
    """A screen shown again and again: restyled on return only after a theme change."""

    _styled_for: tuple[str, bool | None] | None = None

    def post_message(self, message: Message) -> bool:
        if isinstance(message, events.ScreenResume):
            styled_for = (self.app.theme, self.app.ansi_color)
            if self.is_mounted and styled_for == self._styled_for:
                message.refresh_styles = False
            self._styled_for = styled_for
        return super().post_message(message)
