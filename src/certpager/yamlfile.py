"""YAML loading that remembers line numbers, and a strict mapping reader.

Config and runbooks are validated once, at the boundary, by walking the
composed YAML node tree. Every value keeps the line it came from so a mistake
is reported as ``file:line: key: message``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from certpager.errors import LocatedError
from certpager.errors import _TooDeepError as _TooDeepError
from certpager.inputs import (
    YAML_MAX_BYTES,
    YAML_MAX_DEPTH,
    InputFileError,
    InputValueError,
    bad_char,
    check_number,
    check_text,
    decode_text,
    read_input_file,
)
from certpager.text import escape_char, printable, quoted

T = TypeVar("T")

ErrorFactory = Callable[..., LocatedError]


@dataclass(frozen=True)
class Node:
    """A YAML value with where it came from."""

    value: Any
    """Plain Python value: str, int, float, bool, None, list[Node] or dict[str, Node]."""
    line: int
    """1-based line of the value."""
    key_lines: dict[str, int] | None = None
    """For mappings: the line of each key."""
    text: str | None = None
    """For integers: the text as written (``0x1bb``, ``1_000`` and ``1:20`` are integers to YAML)."""


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader whose composer refuses nesting deeper than :data:`YAML_MAX_DEPTH`
    (composing is recursive: a few hundred ``[`` would end in a RecursionError)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > YAML_MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeepError(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Converter:
    """Turns a composed YAML node tree into :class:`Node` values.

    Refuses anchors/aliases on mappings and lists (a few nested aliases expand
    into billions of nodes: "billion laughs"), tags other than the plain ones,
    keys with control or invisible characters, and numbers that are not finite.
    """

    def __init__(self, file: str, error: ErrorFactory):
        self.file = file
        self.error = error
        self.seen: set[int] = set()
        self.loader = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: str = "") -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.seen:
                raise self.error(
                    "YAML aliases (*name) are not supported here: write the value out",
                    file=self.file,
                    line=line,
                    key=path or None,
                )
            self.seen.add(id(node))
            if node.tag not in _PLAIN_TAGS:
                raise self.error(
                    f"YAML tag {quoted(node.tag)} is not supported",
                    file=self.file,
                    line=line,
                    key=path or None,
                )
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Node] = {}
            key_lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.error("YAML merge keys (<<) are not supported", file=self.file, line=key_line)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error("mapping keys must be plain strings", file=self.file, line=key_line)
                key = str(key_node.value)
                bad = bad_char(key) if len(key) <= 256 else "is longer than 256 characters"
                if bad:
                    raise self.error(f"the key {quoted(key[:64])} {bad}", file=self.file, line=key_line)
                key_path = f"{path}.{key}" if path else key
                if key in out:
                    raise self.error("duplicate key", file=self.file, line=key_line, key=key_path)
                out[key] = self.convert(value_node, key_path)
                key_lines[key] = key_line
            return Node(out, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            return Node([self.convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)], line)
        try:
            value = self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            reason = (
                f"the number has {len(str(node.value))} characters, too many to be a number"
                if node.tag.endswith(":int")
                else f"invalid value: {_one_line(str(exc))[:200]}"
            )
            raise self.error(reason, file=self.file, line=line, key=path or None) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(
                f"must be a finite number, got {node.value!r}", file=self.file, line=line, key=path or None
            )
        if isinstance(value, int) and not isinstance(value, bool):
            return Node(value, line, text=str(node.value))
        return Node(value, line)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def _convert(node: yaml.Node, file: str, error: ErrorFactory, path: str = "") -> Node:
    converter = _Converter(file, error)
    try:
        return converter.convert(node, path)
    finally:
        converter.loader.dispose()


def load_yaml(path: Path, error: ErrorFactory) -> Node:
    """Parse ``path`` into a :class:`Node` tree, raising ``error(...)`` on any problem.

    The file must be a regular file of at most :data:`YAML_MAX_BYTES` (a FIFO or a
    device is refused without reading it), UTF-8 text without NUL bytes.
    """
    file = str(path)
    try:
        text = decode_text(read_input_file(path, cap=YAML_MAX_BYTES), file)
    except InputFileError as exc:
        raise error(exc.reason, file=exc.path) from None
    return parse_yaml(text, file, error)


def parse_yaml(text: str, file: str, error: ErrorFactory) -> Node:
    """Parse YAML text into a :class:`Node` tree (nesting at most :data:`YAML_MAX_DEPTH` deep)."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # checks every character at once (ReaderError)
        root = loader.get_single_node()
    except _TooDeepError as exc:
        raise error(f"nested more than {YAML_MAX_DEPTH} levels deep", file=file, line=exc.line) from None
    except yaml.reader.ReaderError as exc:
        where = text.count("\n", 0, exc.position) + 1
        raise error(
            f"invalid YAML: character {escape_char(chr(exc.character)) if isinstance(exc.character, int) else ''} "
            "is not allowed",
            file=file,
            line=where,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(
            f"invalid YAML: {_one_line(exc.problem or exc.context or 'syntax error')}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {_one_line(str(exc))}", file=file) from None
    except RecursionError:  # pragma: no cover - the depth bound comes first
        raise error(f"nested more than {YAML_MAX_DEPTH} levels deep", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return Node({}, 1, {})
    try:
        return _convert(root, file, error)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(
            f"invalid YAML value: {_one_line(exc.problem or str(exc))}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML value: {_one_line(str(exc))}", file=file) from None


_DECIMAL_INT = re.compile(r"[-+]?[0-9]+")
_EXPONENT = re.compile(r"([-+]?)([0-9]+)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)")
_RESOLVER = yaml.resolver.Resolver()
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def number_spelling(text: str, *, integer: bool = False) -> str | None:
    """How to write ``text``, a string to YAML that is a finite number to Python, so
    that YAML (1.1, PyYAML) reads a number: ``1e308`` -> ``1.0e+308``, ``1E5`` ->
    ``1.0e+5``, ``"5"`` (quoted) -> ``5``; with ``integer``, ``"443"`` -> ``443``.
    None when ``text`` is no number (``abc``, ``inf``, ``1_0``)."""
    stripped = text.strip()
    if not stripped.isascii() or "_" in stripped:
        return None
    try:
        value = float(stripped)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if integer:
        if _DECIMAL_INT.fullmatch(stripped):
            return stripped
        return str(int(value)) if value.is_integer() and abs(value) < 1e18 else None
    tag = _RESOLVER.resolve(yaml.ScalarNode, stripped, (True, False))  # type: ignore[no-untyped-call]
    if tag in (_INT_TAG, _FLOAT_TAG):
        return stripped  # quoted: the same without quotes
    written = stripped if _EXPONENT.fullmatch(stripped) else repr(value)  # repr(1e16) is "1e+16"
    match = _EXPONENT.fullmatch(written)
    if match is None:
        return written
    sign, whole, fraction, exp_sign, exponent = match.groups()
    return f"{sign}{whole}.{fraction or '0'}e{exp_sign or '+'}{exponent}"


_Str = str
_Int = int
_Bool = bool
_List = list


class Reader:
    """Strict reader of one YAML mapping: typed getters, then :meth:`finish` rejects the rest."""

    def __init__(self, node: Node, *, file: _Str, path: _Str, error: ErrorFactory):
        if not isinstance(node.value, dict):
            raise error(
                f"expected a mapping, got {type_name(node.value)}",
                file=file,
                line=node.line,
                key=path or None,
            )
        self.node = node
        self.file = file
        self.path = path
        self.error = error
        self.items: dict[str, Node] = node.value
        self.seen: set[str] = set()

    def key_path(self, key: _Str) -> _Str:
        """Dotted path of ``key`` under this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: _Str) -> _Int:
        """Line of ``key``, or of the mapping when the key is absent."""
        assert self.node.key_lines is not None
        return self.node.key_lines.get(key, self.node.line)

    def fail(self, key: _Str, message: _Str) -> NoReturn:
        """Raise a located error for ``key``."""
        raise self.error(message, file=self.file, line=self.line_of(key), key=self.key_path(key))

    def has(self, key: _Str) -> _Bool:
        """Whether ``key`` is present (and marks it as known)."""
        self.seen.add(key)
        return key in self.items

    def raw(self, key: _Str) -> Node | None:
        """The node under ``key``, or None."""
        self.seen.add(key)
        return self.items.get(key)

    def get(
        self,
        key: _Str,
        kind: type[T] | tuple[type, ...],
        default: T | None = None,
        *,
        required: _Bool = False,
    ) -> T | None:
        """Read ``key`` as ``kind`` (bool is never accepted as int)."""
        node = self.raw(key)
        if node is None or node.value is None:
            if required:
                self.fail(key, "is required")
            return default
        value = node.value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, _Bool) and bool not in kinds:
            self.fail(key, f"expected {_kind_names(kinds)}, got a boolean")
        if float in kinds and isinstance(value, _Int) and not isinstance(value, _Bool):
            value = float(value)
        if isinstance(value, _Str) and _Str not in kinds and (float in kinds or _Int in kinds):
            self._not_a_yaml_number(key, value, integer=float not in kinds)
        if not isinstance(value, kinds):
            self.fail(key, f"expected {_kind_names(kinds)}, got {type_name(value)}")
        return value  # type: ignore[return-value]

    def _not_a_yaml_number(self, key: _Str, text: _Str, *, integer: _Bool) -> None:
        """Fail on a number YAML reads as text (``1e308``, ``"5"``), saying how to write it."""
        spelled = number_spelling(text, integer=integer)
        if spelled is None:
            return  # no number at all: "expected a number, got a string"
        if spelled == text.strip():
            why = "it is quoted"
        elif integer:
            why = "an integer is written in decimal digits"
        else:
            why = "YAML 1.1 needs a dot in the mantissa and a sign in the exponent"
        self.fail(key, f"{quoted(text)} is not a number YAML reads ({why}): write {spelled}")

    def str(
        self,
        key: _Str,
        default: _Str | None = None,
        *,
        required: _Bool = False,
        multiline: _Bool = False,
    ) -> _Str | None:
        """Read a non-empty string (numbers are accepted and turned into text).

        The text must be printable (:func:`certpager.inputs.check_text`): no control,
        bidi or zero-width characters, one line unless ``multiline`` (then line feeds
        and tabs are allowed).
        """
        node = self.raw(key)
        if node is not None and isinstance(node.value, _Int | float) and not isinstance(node.value, _Bool):
            return str(node.value)
        value = self.get(key, _Str, default, required=required)
        if value is not None and required and not value.strip():
            self.fail(key, "must not be empty")
        if value is not None and node is not None:
            self.check_text(key, value, multiline=multiline)
        return value

    def check_text(
        self, key: _Str, value: _Str, *, multiline: _Bool = False, line: _Int | None = None
    ) -> None:
        """Fail on ``key`` unless ``value`` is printable text (see :meth:`str`)."""
        try:
            check_text(value, multiline=multiline)
        except InputValueError as exc:
            if line is not None:
                raise self.error(str(exc), file=self.file, line=line, key=self.key_path(key)) from None
            self.fail(key, str(exc))

    def int(
        self,
        key: _Str,
        default: _Int | None = None,
        *,
        lo: _Int | None = None,
        hi: _Int | None = None,
        required: _Bool = False,
    ) -> _Int | None:
        """Read an integer written in decimal digits, within ``[lo, hi]``."""
        value = self.get(key, _Int, default, required=required)
        node = self.items.get(key)
        if node is not None and node.text is not None and not _DECIMAL_INT.fullmatch(node.text):
            self.fail(key, f"write the number in decimal digits (got {quoted(node.text)})")
        if value is not None:
            if lo is not None and value < lo:
                self.fail(key, f"must be at least {lo}, got {value}")
            if hi is not None and value > hi:
                self.fail(key, f"must be at most {hi}, got {value}")
        return value

    def number(
        self,
        key: _Str,
        default: float | None = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
    ) -> float | None:
        """Read a finite number (int or float) within ``[lo, hi]``."""
        value = self.get(key, float, default)
        if value is not None:
            try:
                check_number(value, lo=lo, hi=hi)
            except InputValueError as exc:
                self.fail(key, str(exc))
        return value

    def bool(self, key: _Str, default: _Bool) -> _Bool:
        """Read a boolean."""
        value = self.get(key, _Bool, default)
        assert value is not None
        return value

    def str_list(self, key: _Str) -> _List[_Str]:
        """Read a list of strings (a single string is accepted as a one-item list)."""
        node = self.raw(key)
        if node is None or node.value is None:
            return []
        if isinstance(node.value, _Str):
            self.check_text(key, node.value)
            return [node.value]
        if not isinstance(node.value, list):
            self.fail(key, f"expected a list of strings, got {type_name(node.value)}")
        out: list[str] = []
        for i, item in enumerate(node.value):
            if isinstance(item.value, _Bool) or not isinstance(item.value, _Str | _Int | float):
                raise self.error(
                    f"expected a string, got {type_name(item.value)}",
                    file=self.file,
                    line=item.line,
                    key=f"{self.key_path(key)}[{i}]",
                )
            text = str(item.value)
            try:
                check_text(text)
            except InputValueError as exc:
                raise self.error(
                    str(exc), file=self.file, line=item.line, key=f"{self.key_path(key)}[{i}]"
                ) from None
            out.append(text)
        return out

    def list(self, key: _Str) -> Iterator[tuple[_Str, Node]]:
        """Iterate ``(path, node)`` over a list value."""
        node = self.raw(key)
        if node is None or node.value is None:
            return
        if not isinstance(node.value, list):
            self.fail(key, f"expected a list, got {type_name(node.value)}")
        for i, item in enumerate(node.value):
            yield f"{self.key_path(key)}[{i}]", item

    def sub(self, key: _Str) -> Reader | None:
        """A reader for a nested mapping, or None when absent."""
        node = self.raw(key)
        if node is None or node.value is None:
            return None
        return Reader(node, file=self.file, path=self.key_path(key), error=self.error)

    def finish(self, allowed_extra: tuple[_Str, ...] = ()) -> None:
        """Reject keys that no getter asked for, suggesting the closest known key."""
        known = self.seen | set(allowed_extra)
        for key in self.items:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                valid = ", ".join(sorted(known))
                self.fail(key, f"unknown key{hint}; valid keys here: {valid}")


def _kind_names(kinds: tuple[type, ...]) -> str:
    return " or ".join(type_name_of(k) for k in kinds)


def type_name_of(kind: type) -> str:
    """Plain-words name of a Python type as YAML users know it."""
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "a mapping",
    }.get(kind, kind.__name__)


def type_name(value: Any) -> str:
    """Plain-words name of a YAML value's type."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    return type_name_of(type(value))
