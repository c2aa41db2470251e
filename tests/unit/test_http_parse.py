"""The HTTP layer's pure parts: response heads, bodies under caps, redirects, HSTS."""

from __future__ import annotations

import asyncio

import pytest

from certpager.probe import http as H
from certpager.probe.http import (
    HttpFailure,
    judge_hsts,
    judge_redirect,
    parse_head,
    parse_hsts,
)

# --- response heads ----------------------------------------------------------------


def test_parse_head_status_and_headers() -> None:
    r = parse_head(
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://app.test/\r\n"
        b"Strict-Transport-Security: max-age=1\r\nX-Folded: a\r\n  b\r\nnot a header\r\n"
    )
    assert (r.version, r.status, r.reason) == ("HTTP/1.1", 301, "Moved Permanently")
    assert r.header("location") == "https://app.test/"
    assert r.header("x-folded") == "a b"
    assert r.header("missing") is None
    assert len(r.headers) == 3


def test_parse_head_keeps_every_field_in_order() -> None:
    r = parse_head(
        b"HTTP/1.0 200 OK\nStrict-Transport-Security: max-age=10\nStrict-Transport-Security: max-age=99"
    )
    assert r.header_all("strict-transport-security") == ["max-age=10", "max-age=99"]
    assert r.header("Strict-Transport-Security") == "max-age=10"


@pytest.mark.parametrize(
    "head",
    [b"SSH-2.0-OpenSSH_9.2", b"\x16\x03\x01\x00\x05hello", b"HTTP/2 200", b"HTTP/1.1 20 OK", b""],
    ids=["ssh", "tls", "http2", "bad-status", "empty"],
)
def test_parse_head_rejects_what_is_not_http(head: bytes) -> None:
    with pytest.raises(HttpFailure) as info:
        parse_head(head)
    assert info.value.kind == "not_http"
    assert "did not answer HTTP" in info.value.message


def test_preview_escapes_control_bytes() -> None:
    assert H.preview(b"\x1b[2Jab\x00") == "\\x1b[2Jab\\x00"
    assert H.preview(b"x" * 100, limit=5) == "xxxxx..."


# --- reading under caps --------------------------------------------------------------


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_head_splits_head_and_rest() -> None:
    head, rest = await H._read_head(_reader(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"))
    assert head == b"HTTP/1.1 200 OK\r\nA: b"
    assert rest == b"body"


async def test_read_head_caps_header_size() -> None:
    data = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * (H.MAX_HEAD + 10) + b"\r\n\r\n"
    with pytest.raises(HttpFailure) as info:
        await H._read_head(_reader(data))
    assert info.value.kind == "too_large"


async def test_read_head_stops_at_first_non_http_bytes() -> None:
    with pytest.raises(HttpFailure) as info:
        await H._read_head(_reader(b"\x00\x01garbage" * 10000))
    assert info.value.kind == "not_http"


async def test_read_head_closed_without_answer() -> None:
    with pytest.raises(HttpFailure) as info:
        await H._read_head(_reader(b""))
    assert info.value.kind == "closed"


async def test_body_by_content_length_chunked_and_close() -> None:
    r = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5")
    assert await H._read_body(_reader(b"lo"), r, b"hel", 100) == b"hello"
    r = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    assert await H._read_body(_reader(b"3\r\nlo!\r\n0\r\n\r\n"), r, b"2;ext=1\r\nhe\r\n", 100) == b"helo!"
    r = parse_head(b"HTTP/1.1 200 OK")
    assert await H._read_body(_reader(b"until close"), r, b"", 100) == b"until close"


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000", b""),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"20000\r\n" + b"a" * 70000),
        (b"HTTP/1.1 200 OK", b"a" * 70000),
    ],
    ids=["content-length", "chunked", "until-close"],
)
async def test_body_caps(head: bytes, body: bytes) -> None:
    with pytest.raises(HttpFailure) as info:
        await H._read_body(_reader(body), parse_head(head), b"", 65536)
    assert info.value.kind == "too_large"


async def test_body_short_content_length_is_closed() -> None:
    with pytest.raises(HttpFailure) as info:
        await H._read_body(_reader(b"ab"), parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10"), b"", 100)
    assert info.value.kind == "closed"


@pytest.mark.parametrize("size", [b"-1", b"+5", b"0x5", b"5_0", b"", b" ", b"g", b"\xb2", b"1" * 16])
async def test_chunk_size_must_be_hex_digits(size: bytes) -> None:
    """int(x, 16) reads "-1", "+5", "0x5" and "5_0": each is a malformed response, one line,
    the size quoted as sent (escaped once: a byte 0xb2 reads \\xb2, not \\\\xb2)."""
    head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    with pytest.raises(HttpFailure) as info:
        await H._read_body(_reader(size + b"\r\nhello\r\n0\r\n\r\n"), head, b"", 100)
    assert info.value.kind == "not_http"
    shown = H.preview(size.strip(b" "))
    assert info.value.message == f"invalid chunk size '{shown}' (expected hexadecimal digits)"
    assert "\\\\" not in info.value.message and "\n" not in info.value.message


async def test_chunk_size_with_extension_and_blanks_is_read() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
    body = b"5 ;name=value\r\nhello\r\nA\t\r\n0123456789\r\n0\r\n\r\n"
    assert await H._read_body(_reader(body), head, b"", 100) == b"hello0123456789"


@pytest.mark.parametrize(
    ("length", "kind", "words"),
    [
        ("-1", "not_http", "invalid Content-Length '-1'"),
        ("\u00b2", "not_http", "invalid Content-Length '\u00b2'"),  # a digit to str.isdigit, not to int
        ("5 5", "not_http", "invalid Content-Length '5 5'"),
        ("9" * 5000, "too_large", "larger than"),  # int() of 5000 digits raises ValueError
        ("9" * 19, "too_large", "larger than"),
    ],
    ids=["negative", "superscript-two", "two-numbers", "5000-digits", "19-digits"],
)
async def test_content_length_must_be_ascii_digits(length: str, kind: str, words: str) -> None:
    head = parse_head(f"HTTP/1.1 200 OK\r\nContent-Length: {length}".encode("latin-1"))
    with pytest.raises(HttpFailure) as info:
        await H._read_body(_reader(b"hello"), head, b"", 100)
    assert info.value.kind == kind and words in info.value.message


# --- redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "location"),
    [
        (301, "https://app.test/"),
        (308, "https://APP.test.:8443/path?q=1"),
        (301, "https://app.test"),
    ],
)
def test_redirect_ok(status: int, location: str) -> None:
    assert judge_redirect(status, location, "app.test") is None


@pytest.mark.parametrize(
    ("status", "location", "words"),
    [
        (200, None, "answers 200 over plain HTTP"),
        (404, None, "answers 404"),
        (301, None, "without a Location"),
        (301, "http://app.test/", "not HTTPS"),
        (301, "/login", "relative"),
        (301, "https://www.app.test/", "another host"),
        (302, "https://app.test/", "temporary redirect"),
        (307, "https://app.test/", "use 301 or 308"),
    ],
)
def test_redirect_not_ok(status: int, location: str | None, words: str) -> None:
    why = judge_redirect(status, location, "app.test")
    assert why is not None and words in why


# --- HSTS -------------------------------------------------------------------------------


def test_parse_hsts_directives() -> None:
    h = parse_hsts('max-age="63072000"; includeSubDomains; PRELOAD')
    assert (h.max_age, h.include_subdomains, h.preload, h.problems) == (63072000, True, True, ())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("includeSubDomains", "no max-age"),
        ("max-age=abc", "not a number"),
        ("max-age=-1", "not a number"),
        ("max-age=10; max-age=20", "appears twice"),
        ("max-age=\u00b2", "max-age '\u00b2' is not a number"),  # a digit to isdigit, not to int
        ("max-age=" + "9" * 5000, "is not a number"),  # more digits than int() reads
        ("max-age", "max-age '' is not a number"),
    ],
)
def test_parse_hsts_invalid(value: str, problem: str) -> None:
    h = parse_hsts(value)
    assert h.max_age is None
    assert any(problem in p for p in h.problems)


def test_judge_hsts_states() -> None:
    assert judge_hsts(200, [], 180).state == "missing"
    assert judge_hsts(200, ["preload"], 180).state == "invalid"
    short = judge_hsts(200, ["max-age=86400"], 180)
    assert short.state == "short" and "1.0 days" in (short.detail or "")
    zero = judge_hsts(200, ["max-age=0"], 180)
    assert zero.state == "short" and "forget" in (zero.detail or "")
    ok = judge_hsts(200, ["max-age=15552000"], 180)
    assert ok.state == "ok" and ok.max_age == 15552000
    assert set(ok.preload_missing) == {
        "max-age of at least 31536000 (1 year)",
        "includeSubDomains",
        "preload",
    }
    ready = judge_hsts(200, ["max-age=63072000; includeSubDomains; preload", "max-age=1"], 180)
    assert ready.state == "ok" and ready.preload_missing == () and ready.extra_headers == 1
    assert ready.as_json()["preload_ready"] is True
    assert ready.as_json()["max_age_days"] == 730.0
    # A lower minimum accepts a shorter max-age.
    assert judge_hsts(200, ["max-age=86400"], 1).state == "ok"


def test_http_findings_words_and_codes() -> None:
    no = H.RedirectResult("no_redirect", 8080, "127.0.0.1", status=200, detail="it answers 200")
    closed = H.RedirectResult("closed", 80, "127.0.0.1", detail="refused")
    failed = H.RedirectResult("failed", 80, "127.0.0.1", detail="no complete HTTP response")
    missing = judge_hsts(200, [], 180)
    found = H.http_findings(no, missing, "app.test", 443)
    assert [f.code for f in found] == ["no_https_redirect", "hsts_missing"]
    assert found[0].message.startswith("http://app.test:8080/: it answers 200")
    assert H.http_findings(closed, None, "app.test", 443) == []
    (inconclusive,) = H.http_findings(failed, None, "app.test", 443)
    assert inconclusive.code == "http_check_failed" and inconclusive.severity.label == "info"
