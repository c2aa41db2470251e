"""Minimal HTTP/1.1 for the lab's servers: read and parse a request head, build a response.

Shared by the demo's sites and AIA server and by the tests' HTTP(S) servers
(:mod:`certpager.lab.tls`); bounded in size and time, never a full HTTP stack. Reading a
head from a blocking socket is the lab's own; the response's bytes and the head's parts
come from :mod:`certpager.httpwire`, which ``certpager exporter`` uses too.
"""

from __future__ import annotations

from typing import Protocol

from certpager.errors import RequestHeadError
from certpager.httpwire import REASONS as REASONS
from certpager.httpwire import Headers as Headers
from certpager.httpwire import http_response as http_response
from certpager.httpwire import parse_request_head

MAX_REQUEST = 64 * 1024
"""Largest request head read (bytes)."""


class Stream(Protocol):
    """What a request is read from: a socket, an ``ssl.SSLSocket`` or a pyOpenSSL stream."""

    def settimeout(self, value: float | None) -> None: ...

    def recv(self, bufsize: int) -> bytes: ...


def read_request_head(conn: Stream, wait: float = 5.0, limit: int = MAX_REQUEST) -> bytes:
    """Read until the blank line ending a request head (or EOF, a timeout, ``limit`` bytes).

    Returns what was read (possibly incomplete; ``b""`` when nothing came).
    """
    conn.settimeout(wait)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        try:
            chunk = conn.recv(4096)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def request_path(request: bytes) -> str:
    """The path of a request line (``/`` when unreadable)."""
    try:
        return request.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
    except IndexError:
        return "/"


def parse_request(head: bytes, limit: int = MAX_REQUEST) -> tuple[str, str, str] | None:
    """``(method, path, host)`` of a complete request head, or None when it is not HTTP/1.x.

    ``host`` is the Host header without port or IPv6 brackets (``""`` when absent).
    """
    if len(head) > limit or b"\r\n\r\n" not in head:
        return None
    try:
        parts = parse_request_head(head.split(b"\r\n\r\n", 1)[0], strict=False)
    except RequestHeadError:
        return None
    path = parts.target if parts.target.startswith("/") else "/"
    return parts.method, path, _bare_host(parts.headers.get("host", ""))


def _bare_host(value: str) -> str:
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    return value.split(":", 1)[0]


__all__ = [
    "MAX_REQUEST",
    "REASONS",
    "Headers",
    "Stream",
    "http_response",
    "parse_request",
    "read_request_head",
    "request_path",
]
