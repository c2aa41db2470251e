"""A value named in an error line is escaped once (certpager.escape.quoted): a carriage
return reads ``\\x0d``, never ``\\\\x0d`` (``printable`` and then ``repr`` escaped twice)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.cli import certpager_cli, isolated_env

from certpager.config import parse_target
from certpager.errors import TargetError
from certpager.text import quoted

SRC = Path(__file__).resolve().parents[2] / "src" / "certpager"


def test_quoted_escapes_once_and_picks_the_quote() -> None:
    assert quoted("a\rb") == "'a\\x0db'"
    assert quoted("C:\\x") == "'C:\\x'"  # a backslash is text, not doubled
    assert quoted("it's") == '"it\'s"'
    assert quoted("'\"") == "''\"'"
    assert quoted("\u202e") == "'\\u202e'"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("a\rb", "target 'a\\x0db': "),
        ("a.test@b\x1bc", "target 'a.test@b\\x1bc': "),
        ("a.test:x\\y", "target 'a.test:x\\y': "),
    ],
)
def test_parse_target_names_the_target_escaped_once(target: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(target)
    assert str(info.value).startswith(message), str(info.value)
    assert "\\\\" not in str(info.value)


def test_check_with_a_control_character_in_the_target_is_one_line(tmp_path: Path) -> None:
    run = certpager_cli(["check", "app.test\r:443"], isolated_env(tmp_path / "home"))
    assert run.returncode == 3 and "Traceback" not in run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith("certpager: target 'app.test\\x0d:443': "), line


def test_no_value_is_escaped_then_repr_escaped_again() -> None:
    """``{printable(x)!r}`` or ``{preview(x)!r}`` anywhere in certpager: use quoted()."""
    pattern = re.compile(r"\{(?:printable|preview|redact_url)\([^{}]*\)!r\}|\{shown!r\}")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "escape.py"  # its docstring names the mistake
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
