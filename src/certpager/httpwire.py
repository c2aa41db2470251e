"""HTTP/1.1 on the wire, the few bytes certpager's own servers need: a response's bytes and
a request head's parts.

Used by ``certpager exporter`` (:mod:`certpager.fleet.exporter`, strangers' requests) and
by the lab's servers (:mod:`certpager.lab.http`: the demo's sites, the tests' HTTP(S)
servers); it sits low in the layers (beside :mod:`certpager.errors` and
:mod:`certpager.text`) so both can use it. No I/O: each caller reads the head its own way
(asyncio streams, blocking sockets), within its own limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from certpager.errors import RequestHeadError

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
"""Reason phrases of the statuses certpager's servers send."""

Headers = Mapping[str, str] | Sequence[tuple[str, str]]
"""Header fields, in order."""


def http_response(
    status: int = 200,
    headers: Headers | None = None,
    body: bytes = b"",
    *,
    reason: str | None = None,
    head_only: bool = False,
) -> bytes:
    """An HTTP/1.1 response: ``headers`` in order, then Content-Length and Connection: close.

    ``reason`` defaults to :data:`REASONS`' phrase (``Status`` for a status not there);
    ``head_only``: leave the body out (the answer to a HEAD request).
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in pairs]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


@dataclass(frozen=True)
class RequestHead:
    """The parts of a request head."""

    method: str
    """As sent (``GET``)."""
    target: str
    """The request target as sent (``/probe?target=x``, or an absolute URL)."""
    version: str
    """``HTTP/1.1``."""
    headers: dict[str, str]
    """Lower-case names, values stripped; the last value of a repeated name wins."""


def parse_request_head(head: bytes, *, strict: bool = True) -> RequestHead:
    """The request line and header fields of ``head`` (CRLF or LF line ends, no body; a
    trailing blank line is allowed).

    ``strict`` (a server facing strangers): HTTP/1.x only, a method of letters, and every
    header line ``NAME: VALUE`` with no space around the name. Not strict (the lab's
    servers, whose client is certpager): any ``HTTP/`` version, any method, and a header
    line without a colon is skipped.

    Raises:
        RequestHeadError: what is wrong, in one line.
    """
    lines = head.decode("iso-8859-1").replace("\r\n", "\n").split("\n")
    if strict and not lines[0].isascii():
        raise RequestHeadError("the request line holds non-ASCII bytes: percent-encode them (%C3%BC)")
    parts = lines[0].split(" ")
    version = parts[2] if len(parts) == 3 else ""
    if not version.startswith("HTTP/1." if strict else "HTTP/") or (strict and not parts[0].isalpha()):
        raise RequestHeadError("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if strict and (not sep or not name or name != name.strip()):
            raise RequestHeadError("malformed header line")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return RequestHead(method=parts[0], target=parts[1], version=version, headers=headers)


__all__ = ["REASONS", "Headers", "RequestHead", "http_response", "parse_request_head"]
