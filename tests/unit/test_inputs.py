"""The input-validation mechanisms themselves (certpager.inputs), the YAML boundary and the
allow-list flag policy. The hostile corpus through the real CLI is in
tests/integration/test_hostile_inputs.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from certpager.errors import RunbookError
from certpager.inputs import (  # type: ignore[attr-defined]
    InputFileError,
    InputValueError,
    bad_char,
    check_number,
    check_text,
    decode_text,
    parse_int,
    parse_number,
    parse_port,
    printable,
    read_input_file,
)
from certpager.runbook.loader import parse_runbook
from certpager.runbook.model import FlagRule, Param, ParamType
from certpager.runbook.template import validate_builtin, validate_value
from certpager.yamlfile import parse_yaml

# ------------------------------------------------------------------------ files


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_input_file(fifo)
        except InputFileError as exc:
            result.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(30)  # a hang guard only: a blocking open would never return
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert "not a regular file (a FIFO)" in str(result[0])


def test_devices_and_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="character device"):
        read_input_file("/dev/zero")
    with pytest.raises(InputFileError, match="is a directory"):
        read_input_file(tmp_path)
    with pytest.raises(InputFileError, match="file not found"):
        read_input_file(tmp_path / "nope")


def test_size_cap_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"a" * 100)
    assert read_input_file(path, cap=100) == b"a" * 100
    with pytest.raises(InputFileError, match="the limit is 99 bytes"):
        read_input_file(path, cap=99)


def test_decode_text_names_the_line() -> None:
    with pytest.raises(InputFileError, match=r"f:3: not UTF-8"):
        decode_text(b"a\nb\n\xff", "f")
    with pytest.raises(InputFileError, match=r"f:2: contains a NUL byte"):
        decode_text(b"a\n\x00", "f")
    assert decode_text(b"\xef\xbb\xbfa: 1", "f") == "a: 1"


# ---------------------------------------------------------------------- numbers


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(InputValueError, match="finite"):
        check_number(value, lo=0, hi=10)


@pytest.mark.parametrize("text", ["nan", "inf", "1e3", "\uff15", "\u0665", "+1", " 1", "1_0", "", "."])
def test_parse_number_is_ascii_decimal(text: str) -> None:
    with pytest.raises(InputValueError):
        parse_number(text)


@pytest.mark.parametrize("text", ["\uff11\uff12", "\u00b2", "\u0967", "+1", "-1", "1 ", "0x10", "1" * 13])
def test_parse_int_and_port_are_ascii_digits(text: str) -> None:
    with pytest.raises(InputValueError):
        parse_int(text)
    with pytest.raises(InputValueError):
        parse_port(text)


def test_numbers_positive() -> None:
    assert parse_number("2.5", lo=0.1, hi=300) == 2.5
    assert parse_int("10", lo=1) == 10
    assert parse_port("443") == 443


# ---------------------------------------------------------------------- strings


@pytest.mark.parametrize(
    "ch",
    ["\x1b", "\n", "\r", "\t", "\x00", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u200b", "\ufeff", "\u2028",
     "\u2029", "\u00a0", "\u00ad", "\U000e0001", "\ue000"],
)  # fmt: skip
def test_bad_char_refuses_every_invisible_class(ch: str) -> None:
    assert bad_char(f"a{ch}b") is not None
    with pytest.raises(InputValueError):
        check_text(f"a{ch}b")
    assert ch not in printable(f"a{ch}b")


def test_multiline_text_allows_only_newline_and_tab() -> None:
    assert bad_char("a\nb\tc", multiline=True) is None
    assert bad_char("a\n\x1b", multiline=True) is not None
    assert bad_char("caf\u00e9 \u4e2d", multiline=False) is None


# ------------------------------------------------------------------------- YAML


def _err(*args: object, **kw: object) -> RunbookError:
    return RunbookError(str(args[0]), file=str(kw["file"]), line=kw.get("line"), key=kw.get("key"))  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [65, 500, 5000])
def test_yaml_depth_is_bounded(depth: int) -> None:
    with pytest.raises(RunbookError, match="nested more than 64 levels deep"):
        parse_yaml("a: " + "[" * depth + "]" * depth, "f", _err)


def test_yaml_depth_64_is_fine() -> None:
    node = parse_yaml("a: " + "[" * 63 + "]" * 63, "f", _err)
    assert isinstance(node.value, dict)


@pytest.mark.parametrize("text", ["a: .nan", "a: [-.inf]", "a: {b: !!float inf}"])
def test_yaml_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(RunbookError, match="finite"):
        parse_yaml(text, "f", _err)


# ------------------------------------------------------------------ flag policy

ARGS = Param(
    name="certbot_args",
    type=ParamType.ARGS,
    default=("",),
    allow_flags=(FlagRule("--config-dir", ParamType.PATH), FlagRule("--quiet", None)),
)


@pytest.mark.parametrize(
    "value",
    ["--serv=x", "--se x", "--server x", "--quiet=1", "--config-dir", "--config-dir=-x", "--config-dir rel",
     "x", "--", "-q", "--config-dir /a/../b", "--CONFIG-DIR /a"],
)  # fmt: skip
def test_allow_flags_refuses_everything_else(value: str) -> None:
    with pytest.raises(ValueError):
        validate_value(ARGS, value)


def test_allow_flags_accepts_its_options() -> None:
    words = validate_value(ARGS, "--config-dir /etc/le --quiet --config-dir=/x")
    assert words == ("--config-dir", "/etc/le", "--quiet", "--config-dir=/x")


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("{--x: nope}", "switch"),
        ("{-xy: switch}", "is not an option"),
        ("{'--x=1': path}", "is not an option"),
        ("{}", "at least one option"),
    ],
)
def test_allow_flags_schema(policy: str, words: str) -> None:
    text = f"name: t\ntitle: t\nparams:\n  a: {{type: args, default: '', allow_flags: {policy}}}\nsteps:\n  - {{id: a, run: [x, '{{a}}']}}\n"
    with pytest.raises(RunbookError, match=words):
        parse_runbook(text, file="t.yaml")


def test_allow_flags_only_on_args() -> None:
    text = "name: t\ntitle: t\nparams:\n  a: {type: string, allow_flags: {--x: path}}\nsteps:\n  - {id: a, run: [x, '{a}']}\n"
    with pytest.raises(RunbookError, match="only args parameters have allow_flags"):
        parse_runbook(text, file="t.yaml")


# --------------------------------------------------------------------- builtins


@pytest.mark.parametrize(
    ("name", "value"),
    [("stored_path", "etc/x"), ("stored_path", "/a/../b"), ("secret_namespace", "NS"), ("secret_name", "--all"),
     ("host", "a_b.test"), ("sni", "x\n"), ("port", "\uff14\uff14\uff13"), ("ssh_user", "-oProxyCommand=x")],
)  # fmt: skip
def test_builtin_values_are_validated_like_parameters(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        validate_builtin(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("host", "::1"), ("host", "fe80::1%eth0"), ("ssh_host", "local"), ("stored_path", "/etc/x")],
)
def test_builtin_values_positive(name: str, value: str) -> None:
    validate_builtin(name, value)
