"""The serial, duration and message-line formatters."""

from __future__ import annotations

from certpager.formats import format_seconds, format_serial, has_duration, message_lines, with_elapsed


def test_format_serial_keeps_whole_bytes() -> None:
    assert format_serial(0xABC) == "0ABC"
    assert format_serial(0x0A1B) == "0A1B"
    assert format_serial(0) == "00"
    assert format_serial(-0x1) == "-01"


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (60, 60.0, 12.5, 0.44, 125.4)] == [
        "60 s",
        "60 s",
        "12.5 s",
        "0.4 s",
        "125 s",
    ]


def test_one_duration_per_message() -> None:
    assert with_elapsed("Run FAILED: step x exit 1", 3.21) == "Run FAILED: step x exit 1 (3.2 s)"
    timed_out = "TIMEOUT: timed out after 60 s; killed by signal TERM"
    assert with_elapsed(timed_out, 65.3, "{message} in {elapsed}") == timed_out
    assert has_duration("no TCP connection within 10.0 s") and not has_duration("1 of 2 backend(s) fail")
    assert not has_duration("host key SHA256:ab/9s/cd") and with_elapsed("x", None) == "x"


def test_message_lines() -> None:
    assert message_lines("a\nb\r\nc\rd") == ["a", "b", "c", "d"]
