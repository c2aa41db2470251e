"""A corpus of hostile strings: what a certificate field, a config value, a server's
message or a remote command's output may hold to drive the terminal it is shown on,
hide text, or reorder it. Every case must reach a terminal as visible escapes."""

from __future__ import annotations

#: (id, text). Each holds at least one character no terminal sink may pass raw.
CORPUS: list[tuple[str, str]] = [
    ("clear-screen", "a\x1b[2Jb"),
    ("cursor-home", "\x1b[Hpwned"),
    ("sgr-red", "\x1b[31mred\x1b[0m"),
    ("osc-title-bel", "\x1b]0;title\x07"),
    ("osc-title-st", "\x1b]2;title\x1b\\"),
    ("osc8-link", "\x1b]8;;https://evil.test/\x1b\\click\x1b]8;;\x1b\\"),
    ("osc52-clipboard", "\x1b]52;c;cm0gLXJmIC8K\x07"),
    ("dcs", "\x1bP1$r\x1b\\"),
    ("erase-line", "ok\x1b[2K"),
    ("cr-overwrite", "CRITICAL\rOK      "),
    ("backspace", "PAGE\b\b\b\bOK  "),
    ("bell", "ding\x07"),
    ("nul", "a\x00b"),
    ("vertical-tab", "a\x0bb"),
    ("form-feed", "a\x0cb"),
    ("newline-forge", "name\nOK        forged line"),
    ("tab", "a\tb"),
    ("delete", "a\x7fb"),
    ("c1-csi", "\x9b2J"),
    ("c1-osc", "\x9d0;t\x9c"),
    ("c1-nel", "a\x85b"),
    ("bidi-rlo", "evil\u202egpj.exe"),
    ("bidi-lro", "\u202dabc\u202c"),
    ("bidi-rle", "\u202bx\u202c"),
    ("bidi-isolate-rli", "\u2067abc\u2069"),
    ("bidi-isolate-lri", "\u2066abc\u2069"),
    ("bidi-fsi", "\u2068abc\u2069"),
    ("bidi-marks", "a\u200eb\u200fc"),
    ("arabic-letter-mark", "a\u061cb"),
    ("zero-width-space", "pay\u200bpal"),
    ("zwnj-zwj", "a\u200cb\u200dc"),
    ("word-joiner", "a\u2060b"),
    ("invisible-times", "a\u2062b"),
    ("bom", "\ufeffhost"),
    ("soft-hyphen", "ex\u00adample"),
    ("line-separator", "a\u2028b"),
    ("paragraph-separator", "a\u2029b"),
    ("tag-characters", "a\U000e0041\U000e0042b"),
    ("markup-and-esc", "[bold red]x[/] \x1b[5m"),
    ("mixed", "\u202e\x1b[2J\u200b[link=https://evil.test]x[/link]\x9b"),
]

#: Strings that are harmless and must come out unchanged.
BENIGN: list[str] = [
    "plain",
    "café résumé",
    "日本語のCA",
    "emoji 🔒✅",
    "[bold]markup is text[/bold]",
    "back\\slash",
    "space inside",
]


def unsafe(text: str) -> list[str]:
    """The characters of ``text`` that must never reach a terminal raw (as escapes)."""
    return [f"U+{ord(ch):04X}" for ch in text if not ch.isprintable()]


def unsafe_bytes(data: bytes) -> list[str]:
    """:func:`unsafe` for terminal bytes, allowing the line breaks between lines."""
    return unsafe(data.decode("utf-8", "replace").replace("\n", ""))
