"""Minimal HTTP/1.1 for the lab's servers: read and parse a request head, build a response.

Shared by the demo's sites and AIA server and by the tests' HTTP(S) servers
(:mod:`certpager.lab.tls`); bounded in size and time, never a full HTTP stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

MAX_REQUEST = 64 * 1024
"""Largest request head read (bytes)."""

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
}
"""Reason phrases of the statuses the lab sends."""

Headers = Mapping[str, str] | Sequence[tuple[str, str]]
"""Header fields, in order."""


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
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, path = parts[0], parts[1]
    if not path.startswith("/"):
        path = "/"
    host = ""
    for line in lines[1:]:
        field, _, value = line.partition(":")
        if field.strip().lower() == "host":
            host = _bare_host(value.strip())
    return method, path, host


def _bare_host(value: str) -> str:
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    return value.split(":", 1)[0]


def http_response(
    status: int = 200,
    headers: Headers | None = None,
    body: bytes = b"",
    *,
    reason: str | None = None,
    head_only: bool = False,
) -> bytes:
    """An HTTP/1.1 response: ``headers`` in order, then Content-Length and Connection: close.

    ``head_only``: leave the body out (the answer to a HEAD request).
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in pairs]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


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
