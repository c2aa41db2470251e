"""The one escaper for text that reaches a terminal.

Certificate fields, server messages, remote command output, config values and
runbook text come from people who may not mean well. Anything certpager shows on a
terminal (the ``check`` table, the ``run`` console, the plan, the TUI, error lines on
stderr) passes through :func:`printable`, which turns every character that could
drive the terminal or hide what is written into a visible escape:

- C0 controls (ESC, CR, BS, BEL, NUL, TAB, LF...), DEL and C1 controls (U+0080-U+009F,
  among them the one-byte CSI U+009B): ``\\x1b``, ``\\x9b``;
- bidi controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), zero-width and
  other format characters (U+200B-U+200D, U+2060-U+2064, U+FEFF, U+00AD, tag
  characters...): ``\\u202e``;
- line and paragraph separators (U+2028, U+2029), spaces other than U+0020
  (no-break space...), surrogates, private-use and unassigned code points.

That is exactly what :meth:`str.isprintable` rejects, so text without any of them
(nearly all of it) is returned as is, at C speed. Markup (``[bold]``) is not a terminal
matter: the TUI renders text as ``rich.text.Text``, never as markup.

certpager's own multi-line messages are split into lines *before* escaping
(:func:`printable_lines`, :func:`emit`): a newline inside a value is escaped like any
other control character.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import TextIO

from certpager.errors import OutputError
from certpager.escape import escape_char as escape_char
from certpager.escape import is_printable as is_printable
from certpager.escape import printable as printable
from certpager.escape import quoted as quoted


def printable_lines(text: str) -> list[str]:
    """certpager's own multi-line ``text`` as lines (split at ``\\n`` only), each escaped."""
    return [printable(line) for line in text.split("\n")]


def emit(stream: TextIO | None, text: str = "", *, end: str = "\n", flush: bool = False) -> None:
    """Write ``text`` to a terminal stream, line by line through :func:`printable`.

    The sink of every human-readable line the command line writes (stdout and stderr):
    ``text`` may hold several of certpager's own lines (``\\n``); any other control
    character in it is shown escaped. ``end`` is written as is.

    A stream that cannot be written (closed, the reader of the pipe gone, the disk full)
    raises :class:`~certpager.errors.OutputError` with the reason in words, and whatever
    it still buffers is discarded (:func:`discard`), so that no later flush fails again.
    """
    line = "\n".join(printable_lines(text)) + end
    guarded_write(stream, line, flush=flush)


def guarded_write(stream: TextIO | None, data: str, *, flush: bool = False) -> None:
    """``stream.write(data)`` (and a flush), a failure as :class:`OutputError`."""
    if stream is None:
        reason = write_failure(None)
        raise OutputError(f"could not write the output: {reason}", reason=reason)
    try:
        stream.write(data)
        if flush:
            stream.flush()
    except (OSError, ValueError) as exc:
        discard(stream)
        reason = write_failure(exc)
        raise OutputError(f"could not write the output: {reason}", reason=reason) from None


def write_failure(exc: BaseException | None) -> str:
    """Why a write failed, in words: ``the standard output is closed``, ``the reader of
    the pipe went away (broken pipe)``, ``No space left on device``..."""
    if exc is None or isinstance(exc, ValueError):
        return "the output stream is closed"
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE:
        return "the reader of the output went away (broken pipe)"
    if isinstance(exc, OSError) and exc.errno == errno.EBADF:
        return "the output is closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def discard(stream: TextIO | None) -> None:
    """Point ``stream``'s file descriptor at ``/dev/null``: what it still buffers, and
    anything written later, goes nowhere instead of failing again (at exit too)."""
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
