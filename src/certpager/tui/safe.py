"""The TUI's terminal sink: nothing unprintable reaches the screen.

Widgets show text from strangers through :func:`certpager.tui.view.printable` (the
core's one escaper), which makes control, bidi and invisible characters visible as
``\\x1b`` / ``\\u202e``. :class:`PrintableFilter` is the last line: Textual runs it
over every line of every widget (built-in ones too: toasts, option lists, the
footer) just before the line is written to the terminal, and it drops any such
character that was not escaped upstream. Controls, bidi and format characters are
zero cells wide, so dropping them never moves anything on the screen (an unusual
space becomes as many plain spaces as it is wide); Textual's own escape sequences
are *control* segments and pass untouched.
"""

from __future__ import annotations

from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from certpager.text import is_printable


@lru_cache(maxsize=1024)
def _clean(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " * cell_len(ch) for ch in text)
    # A joiner can make two characters one cell wide: the line keeps the width it was laid out with.
    return set_cell_size(cleaned, cell_len(text))


class PrintableFilter(LineFilter):
    """Drops control, bidi and invisible characters from the text of every segment."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        """The segments, their text without unprintable characters."""
        if all(seg.control or is_printable(seg.text) for seg in segments):
            return segments
        out: list[Segment] = []
        for seg in segments:
            if seg.control or is_printable(seg.text):
                out.append(seg)
                continue
            text = _clean(seg.text)
            if text:
                out.append(Segment(text, seg.style, seg.control))
        return out
