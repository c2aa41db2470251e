"""certpager.httpwire: the one place HTTP/1.1 responses are built and request heads are
split, for the exporter and for the lab's servers alike."""

from __future__ import annotations

import pytest

from certpager import httpwire
from certpager.errors import RequestHeadError
from certpager.fleet import exporter
from certpager.httpwire import RequestHead, http_response, parse_request_head
from certpager.lab import http as lab_http


def test_response_bytes() -> None:
    assert http_response(404, [("Content-Type", "text/plain; charset=utf-8")], b"no\n") == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\nno\n"
    )
    assert http_response(200, {"A": "b"}, b"x", head_only=True) == (
        b"HTTP/1.1 200 OK\r\nA: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
    )
    assert http_response(502, reason="Bad Gateway").startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert http_response(599).startswith(b"HTTP/1.1 599 Status\r\n")


@pytest.mark.parametrize(
    ("status", "reason"),
    [(405, "Method Not Allowed"), (408, "Request Timeout"), (431, "Request Header Fields Too Large"),
     (503, "Service Unavailable"), (308, "Permanent Redirect")],
)  # fmt: skip
def test_every_status_either_server_sends_has_its_reason(status: int, reason: str) -> None:
    assert http_response(status).startswith(f"HTTP/1.1 {status} {reason}\r\n".encode())


def test_the_exporter_and_the_lab_use_the_same_functions() -> None:
    used = vars(exporter)
    assert used["http_response"] is httpwire.http_response is lab_http.http_response
    assert used["parse_request_head"] is httpwire.parse_request_head
    assert lab_http.REASONS is httpwire.REASONS
    assert not hasattr(exporter, "_REASONS")


def test_parse_request_head_strict() -> None:
    head = b"GET /probe?target=a HTTP/1.1\r\nHost: x:1\r\nX-A:  b \nhost: y\r\n\r\n"
    assert parse_request_head(head) == RequestHead(
        method="GET", target="/probe?target=a", version="HTTP/1.1", headers={"host": "y", "x-a": "b"}
    )


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"GET /p", "malformed request line"),
        (b"GET /p HTTP/2.0", "malformed request line"),
        (b"G3T /p HTTP/1.1", "malformed request line"),
        (b"GET /p HTTP/1.1\r\nno-colon", "malformed header line"),
        (b"GET /p HTTP/1.1\r\n X: y", "malformed header line"),
        (b"GET /p HTTP/1.1\r\n: y", "malformed header line"),
    ],
)
def test_parse_request_head_strict_refuses(head: bytes, message: str) -> None:
    with pytest.raises(RequestHeadError, match=f"^{message}$"):
        parse_request_head(head)


def test_parse_request_head_lenient_for_the_lab() -> None:
    parts = parse_request_head(b"M-SEARCH * HTTP/2.0\r\nno-colon\r\n Host : a\r\n", strict=False)
    assert parts == RequestHead(method="M-SEARCH", target="*", version="HTTP/2.0", headers={"host": "a"})
    with pytest.raises(RequestHeadError):
        parse_request_head(b"GET /p", strict=False)
    assert lab_http.parse_request(b"GET /p HTTP/1.1\r\nbad\r\nHost: [::1]:1\r\n\r\n") == ("GET", "/p", "::1")
