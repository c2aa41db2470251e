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


def quoted(text: str) -> str:
    r"""``text`` escaped by :func:`printable` between single quotes (double quotes when it
    holds a single one and no double one): how an error line names a value.

    Not ``f"{printable(text)!r}"``: ``repr`` escapes the escapes again, so a carriage
    return would read ``\\x0d`` instead of ``\x0d``. Nor ``f"{text!r}"``: its ``\r``
    differs from the ``\x0d`` every other line shows.
    """
    shown = printable(text)
    mark = '"' if "'" in shown and '"' not in shown else "'"
    return f"{mark}{shown}{mark}"
