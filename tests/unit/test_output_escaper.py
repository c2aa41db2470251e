"""The one escaper (certpager.text.printable) and every terminal sink that uses it: the
check table, the run console and plan, error lines, the TUI's last-line filter. Each
hostile string of the corpus comes out as visible escapes; harmless text is unchanged;
a stream that cannot be written is one OutputError with the reason in words."""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from rich.segment import Segment
from rich.style import Style
from tests.support.hostile_text import BENIGN, CORPUS, unsafe
from textual.color import Color

from certpager.check.report import render_table
from certpager.errors import OutputError
from certpager.probe.model import BackendResult, EndpointReport, Finding, Handshake, Severity, Status
from certpager.text import emit, printable, printable_lines
from certpager.tui import view
from certpager.tui.safe import PrintableFilter

IDS = [case for case, _ in CORPUS]
TEXTS = [text for _, text in CORPUS]


def test_corpus_is_large_and_every_case_is_hostile() -> None:
    assert len(CORPUS) >= 30
    assert all(unsafe(text) for text in TEXTS)


@pytest.mark.parametrize("text", TEXTS, ids=IDS)
def test_every_hostile_character_becomes_a_visible_escape(text: str) -> None:
    shown = printable(text)
    assert unsafe(shown) == []
    for ch in text:
        if not ch.isprintable():
            code = ord(ch)
            escape = (
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
            assert escape in shown
    assert printable(shown) == shown  # escaping twice changes nothing


@pytest.mark.parametrize("text", BENIGN)
def test_harmless_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


def test_named_examples() -> None:
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert printable("\x9b2J") == "\\x9b2J"
    assert printable("a\tb") == "a\\x09b"
    assert printable("a\tb\x1b", tabs=True) == "a\tb\\x1b"
    assert printable("\ud800") == "\\ud800"  # a lone surrogate (undecodable bytes) cannot crash a write
    assert printable_lines("one\ntwo\x1b") == ["one", "two\\x1b"]


def test_the_tui_and_the_runbook_display_use_the_same_escaper() -> None:
    from certpager.runbook.template import printable, sanitize_output  # type: ignore[attr-defined]

    for text in TEXTS:
        assert view.printable(text) == printable(text) == printable(text)
        assert sanitize_output(text) == printable(text, tabs=True)


@pytest.mark.parametrize("text", TEXTS, ids=IDS)
def test_emit_writes_lines_and_escapes_the_rest(text: str) -> None:
    out = io.StringIO()
    emit(out, f"certpager: {text}\nsecond line")
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and lines[-2] == "second line"
    assert all(unsafe(line) == [] for line in lines)


def test_emit_to_a_stream_that_cannot_be_written_is_one_output_error() -> None:
    with pytest.raises(OutputError) as closed:
        emit(None, "x")
    assert "closed" in str(closed.value)
    with open(os.devnull, "w") as fh:
        pass
    with pytest.raises(OutputError):
        emit(fh, "x")
    full = open("/dev/full", "w")  # noqa: SIM115
    try:
        with pytest.raises(OutputError) as info:
            emit(full, "x" * 10, flush=True)
        assert info.value.reason == "No space left on device"
        full.flush()  # the buffer was discarded: nothing fails again at exit
    finally:
        full.close()


def _report(name: str, text: str) -> EndpointReport:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    hs = Handshake(address="127.0.0.1", port=443, sni=text, error=text, error_code="handshake_failed")
    finding = Finding(
        code="handshake_failed",
        severity=Severity.ERROR,
        message=f"the server said {text}",
        hint=f"fix {text}",
        backends=(f"{text}:443",),
    )
    backend = BackendResult(handshake=hs, analysis=None, findings=(finding,))
    return EndpointReport(
        name=name,
        host=text or "h",
        port=443,
        sni=text,
        backends=(backend,),
        findings=(finding,),
        status=Status.ERROR,
        checked_at=now,
        error=text,
    )


@pytest.mark.parametrize("color", [False, True])
def test_check_table_shows_no_raw_control_anywhere(color: bool) -> None:
    reports = [_report(f"ep{i} {text}", text) for i, text in enumerate(TEXTS)]
    table = render_table(reports, color=color)
    for line in table.split("\n"):
        if color:  # certpager's own colour codes are the only escape sequences
            line = line.replace("\x1b[0m", "")
            for code in ("32", "33", "31", "1;31", "35"):
                line = line.replace(f"\x1b[{code}m", "")
        assert unsafe(line) == [], line
    assert "\\x1b[2J" in table and "\\u202e" in table and "\\x9b" in table


def test_tui_filter_drops_what_was_not_escaped_and_keeps_widths() -> None:
    from rich.cells import cell_len

    style = Style(bold=True)
    segments = [Segment(text, style) for text in TEXTS] + [Segment("ok", style)]
    control = Segment("\x1b[?25l", None, [(2,)])  # type: ignore[list-item]  # Textual's own control segments pass untouched
    out = PrintableFilter().apply([*segments, control], Color(0, 0, 0))
    assert out[-1] is control
    for seg in out[:-1]:
        assert unsafe(seg.text) == []
    assert sum(cell_len(s.text) for s in out[:-1]) == sum(cell_len(s.text) for s in segments)
    assert PrintableFilter().apply(segments[-1:], Color(0, 0, 0)) == segments[-1:]
