"""The character escaper behind :mod:`certpager.text` (see there for what it escapes and why).

Kept apart, with no certpager import, so that :mod:`certpager.errors` (the lowest layer)
can show a file name safely in an error message.
"""

from __future__ import annotations


def escape_char(ch: str) -> str:
    """``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN`` for one character."""
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_printable(text: str) -> bool:
    """Whether ``text`` holds nothing :func:`printable` would escape."""
    return text.isprintable()


def printable(text: str, *, tabs: bool = False) -> str:
    """``text`` with every control, bidi, invisible or unusual-space character as a
    visible escape (``\\x1b``, ``\\u202e``); everything else (accents, CJK, emoji) kept.

    ``tabs=True`` keeps TAB as is (remote command output, where columns are aligned
    with tabs); it moves the cursor right and nothing else.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or (tabs and ch == "\t") else escape_char(ch) for ch in text)
