"""How certpager writes serial numbers, durations and its own multi-line messages.

One formatter each, used wherever the value is printed:

- :func:`format_serial`: a certificate serial the way ``openssl x509 -serial``
  prints it (upper-case hex, whole bytes, leading zeros kept: ``0A1B...``), so it
  can be grepped against openssl output;
- :func:`format_seconds`: ``60 s`` / ``0.4 s`` / ``12.5 s``; :func:`with_elapsed`
  appends the elapsed time to a message unless the message already states a
  duration (one duration per message);
- :func:`message_lines`: certpager's own multi-line message as lines, each to be
  escaped on its own for the terminal (untrusted text is still escaped; only the
  line breaks certpager wrote itself become real line breaks).
"""

from __future__ import annotations

import re


def format_serial(serial: int) -> str:
    """``0A1B2C``: upper-case hex of whole bytes, as ``openssl x509 -serial`` prints it.

    Negative serials (malformed but seen in the wild) are written ``-0A...`` like openssl.
    """
    if serial < 0:
        return "-" + format_serial(-serial)
    text = format(serial, "X")
    return "0" + text if len(text) % 2 else text


def format_seconds(seconds: float) -> str:
    """``60 s``, ``12.5 s``, ``0.4 s``: at most one decimal, none for whole seconds."""
    if seconds >= 100 or float(seconds).is_integer():
        return f"{seconds:.0f} s"
    text = f"{seconds:.1f}"
    return f"{text.removesuffix('.0')} s"


_DURATION_RE = re.compile(r"\b\d+(?:\.\d+)? (?:s|ms|seconds?)\b")


def has_duration(message: str) -> bool:
    """Whether ``message`` already states a duration (``after 60 s``, ``within 10.0 s``)."""
    return _DURATION_RE.search(message) is not None


def with_elapsed(message: str, seconds: float | None, template: str = "{message} ({elapsed})") -> str:
    """``message`` with the elapsed time added through ``template``, unless it already
    states a duration or ``seconds`` is unknown: one duration per message."""
    if seconds is None or has_duration(message):
        return message
    return template.format(message=message, elapsed=format_seconds(seconds))


def message_lines(text: str) -> list[str]:
    """certpager's own message ``text`` as its lines (``\\r\\n``, ``\\r`` and ``\\n`` end a
    line); escape each for the terminal separately, never the line breaks themselves."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
