"""Input validation at the boundary: files, numbers, strings, ports. Standard library only.

One mechanism per class of input, used by the config, targets and runbook loaders,
the trust-bundle loader and the command-line arguments:

- **Files** (:func:`read_input_file`, :func:`check_input_file`): opened without
  blocking (a FIFO never hangs), must be a regular file (``/dev/zero`` is refused),
  and at most a size cap is read (:data:`YAML_MAX_BYTES`, :data:`PEM_MAX_BYTES`).
- **Numbers** (:func:`check_number`, :func:`parse_number`, :func:`parse_int`):
  finite and within documented bounds; integers are ASCII digits only.
- **Strings** (:func:`bad_char`, :func:`check_text`): no control, format (bidi
  overrides, zero-width), separator or unassigned characters; one line unless the
  value is multi-line text (then only line feed and tab are allowed).
- **Display** (:func:`printable`): whatever still reaches a terminal in an error
  message has its invisible characters made visible.
"""

from __future__ import annotations

import math
import os
import re
import stat
import unicodedata
from pathlib import Path

from certpager.errors import InputFileError as InputFileError
from certpager.errors import InputValueError as InputValueError
from certpager.text import escape_char, quoted
from certpager.text import printable as printable  # tests and callers import it from here

YAML_MAX_BYTES = 4 * 1024 * 1024
"""Largest config, runbook or targets file read (4 MiB)."""
PEM_MAX_BYTES = 16 * 1024 * 1024
"""Largest CA bundle, client certificate or key file read (16 MiB)."""
YAML_MAX_DEPTH = 64
"""Deepest nesting of YAML mappings and lists accepted."""
MAX_TEXT_CHARS = 65536
"""Longest string accepted in a config or runbook value."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file"


def _open(path: str | os.PathLike[str]) -> int:
    """Open for reading without blocking (a FIFO with no writer returns at once)."""
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(name, flags)
    except FileNotFoundError:
        raise InputFileError(str(name), "file not found") from None
    except PermissionError:
        raise InputFileError(str(name), "permission denied") from None
    except IsADirectoryError:
        raise InputFileError(str(name), "is a directory, not a regular file") from None
    except OSError as exc:
        try:  # a socket cannot be opened at all: say what it is
            mode = os.stat(name).st_mode
        except (OSError, ValueError):
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise InputFileError(str(name), f"not a regular file ({_kind(mode)})") from None
        raise InputFileError(str(name), f"cannot open: {exc.strerror or exc}") from None
    except ValueError:  # an embedded NUL in the path
        raise InputFileError(repr(name), "not a valid file name") from None


def _regular(fd: int, name: str, cap: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(name, "is a directory, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(name, f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size > cap:
        raise InputFileError(name, f"is {st.st_size} bytes; the limit is {cap} bytes ({cap // 1048576} MiB)")
    return st.st_size


def check_input_file(path: str | os.PathLike[str], *, cap: int = PEM_MAX_BYTES) -> None:
    """Check ``path`` is a readable regular file of at most ``cap`` bytes (read nothing).

    Raises:
        InputFileError: missing, unreadable, not a regular file, or too large.
    """
    fd = _open(path)
    try:
        _regular(fd, os.fspath(path), cap)
    finally:
        os.close(fd)


def read_input_file(path: str | os.PathLike[str], *, cap: int = YAML_MAX_BYTES) -> bytes:
    """The bytes of ``path``: a regular file of at most ``cap`` bytes.

    Never blocks on a FIFO, never reads more than ``cap + 1`` bytes (a file that grows
    while being read is refused too).

    Raises:
        InputFileError: missing, unreadable, not a regular file, or too large.
    """
    name = os.fspath(path)
    fd = _open(path)
    try:
        _regular(fd, name, cap)
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            try:
                chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            except OSError as exc:
                raise InputFileError(name, f"cannot read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:
            raise InputFileError(name, f"is larger than the limit of {cap} bytes ({cap // 1048576} MiB)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of a file (a leading byte-order mark is dropped).

    Raises:
        InputFileError: not UTF-8, or it holds NUL bytes; the message names the line.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"{name}:{line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise InputFileError(f"{name}:{text.count(chr(10), 0, nul) + 1}", "contains a NUL byte")
    return text


def resolve_under(value: str, base_dir: Path) -> Path:
    """``value`` with ``~`` expanded, relative to ``base_dir`` unless absolute."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base_dir / path


# ------------------------------------------------------------------- numbers


def check_number(value: float, *, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` if it is finite and within ``[lo, hi]``.

    Raises:
        InputValueError: NaN, infinite or out of range.
    """
    if isinstance(value, bool):
        raise InputValueError("expected a number, got true/false")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputValueError(f"must be a finite number, got {value!r}")
    if lo is not None and value < lo:
        raise InputValueError(f"must be at least {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise InputValueError(f"must be at most {hi:g}, got {value:g}")
    return value


_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_DIGITS = re.compile(r"[0-9]{1,12}")


def parse_number(text: str, *, lo: float | None = None, hi: float | None = None) -> float:
    """A decimal number written in ASCII (``10``, ``2.5``), finite, within ``[lo, hi]``.

    Raises:
        InputValueError: anything else (``nan``, ``inf``, ``1e9``, fullwidth digits...).
    """
    if not _DECIMAL.fullmatch(text):
        raise InputValueError(f"{quoted(text)} is not a number (write digits, e.g. 10 or 2.5)")
    return check_number(float(text), lo=lo, hi=hi)


def parse_int(text: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number written in ASCII digits, within ``[lo, hi]``.

    ``int()`` alone accepts fullwidth and other Unicode digits, signs, spaces and ``_``.

    Raises:
        InputValueError: anything else.
    """
    if not _DIGITS.fullmatch(text):
        raise InputValueError(f"{quoted(text)} is not a whole number (ASCII digits)")
    value = int(text)
    check_number(value, lo=lo, hi=hi)
    return value


def parse_port(text: str) -> int:
    """A TCP port 1-65535 written in ASCII digits.

    Raises:
        InputValueError: anything else.
    """
    if not _DIGITS.fullmatch(text):
        raise InputValueError(f"port {quoted(text)} is not a number (ASCII digits 1-65535)")
    if not 1 <= int(text) <= 65535:
        raise InputValueError(f"port {int(text)} is out of range 1-65535")
    return int(text)


# ------------------------------------------------------------ Kubernetes names

K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A DNS-1123 label (a namespace), applied with ``fullmatch``."""
K8S_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A DNS-1123 subdomain (an object name; at most 253 characters), applied with ``fullmatch``."""


# ------------------------------------------------------------------- strings


_CONTROL_NAMES = {
    "\x00": "NULL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\x1b": "ESCAPE",
    "\x7f": "DELETE", "\x08": "BACKSPACE", "\x07": "BELL", "\x85": "NEXT LINE",
}  # fmt: skip


def bad_char(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be used, or None.

    Refused: control characters (C0, DEL, C1), format characters (bidi overrides
    U+202A-U+202E and U+2066-U+2069, zero-width U+200B-U+200F, U+FEFF...), line and
    paragraph separators, surrogates, private-use and unassigned code points, and
    spaces other than U+0020. ``multiline`` text may also hold line feeds and tabs.
    """
    if value.isprintable() and value.isascii():
        return None
    for index, ch in enumerate(value):
        if multiline and ch in "\n\t":
            continue
        if not ch.isprintable():
            name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "control character")
            return f"contains {escape_char(ch)} ({name}) at position {index + 1}"
    return None


def check_text(value: str, *, multiline: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` if it is printable text (see :func:`bad_char`) of at most ``limit`` characters.

    Raises:
        InputValueError: the reason.
    """
    if len(value) > limit:
        raise InputValueError(f"is {len(value)} characters long; the limit is {limit}")
    bad = bad_char(value, multiline=multiline)
    if bad:
        raise InputValueError(bad)
    return value
