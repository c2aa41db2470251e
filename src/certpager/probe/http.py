"""The HTTP layer: plain-HTTP redirect and the HSTS header, over raw asyncio streams.

One GET per check, ``Connection: close``, never following redirects. Every
request runs under the endpoint's deadline (a server trickling bytes cannot
stretch it) and reads at most :data:`MAX_HEAD` bytes of status line and
headers (and, for :func:`fetch` with a body, at most ``max_body`` bytes), so a
hostile server can neither hang nor flood the check. No ``requests`` or
``urllib`` client: their timeouts are per read and their buffers unbounded.

Rules (anchors F12, F13): port 80 (or the configured HTTP port) must answer
301 or 308 with a ``Location`` on ``https://`` and the same host; when nothing
listens there, there is nothing to redirect and that is a fact, not a finding
(hstspreload.org's rule). The HTTPS response must carry
``Strict-Transport-Security`` with ``max-age`` of at least the minimum (180
days by default); ``includeSubDomains`` and ``preload`` are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from certpager import __version__
from certpager.errors import FailureKind as FailureKind
from certpager.errors import HttpFailure as HttpFailure
from certpager.formats import format_seconds
from certpager.probe import findings as F
from certpager.probe.model import Finding
from certpager.text import quoted

#: Largest status line + headers read, bytes.
MAX_HEAD = 64 * 1024
#: Longest wait for a TCP connection to the plain-HTTP port: a firewall that
#: drops packets there must not eat the whole deadline.
HTTP_CONNECT_TIMEOUT = 3.0
#: Longest wait for the first bytes of an error body (see :func:`fetch`).
PEEK_WAIT = 1.0
#: What nginx answers, over a completed handshake, when ``ssl_verify_client on``
#: finds no client certificate or a bad one (it never fails the handshake itself).
NGINX_NO_CLIENT_CERT = "No required SSL certificate was sent"
NGINX_BAD_CLIENT_CERT = "The SSL certificate error"
#: One year, hstspreload.org's minimum max-age.
PRELOAD_MIN_AGE = 31_536_000


@dataclass(frozen=True)
class HttpResponse:
    """A parsed HTTP/1.x response head (and body when asked for)."""

    version: str
    """``HTTP/1.1`` or ``HTTP/1.0``."""
    status: int
    """Status code."""
    reason: str
    """Reason phrase."""
    headers: tuple[tuple[str, str], ...]
    """Header fields in order, names as sent."""
    body: bytes = b""
    """The body, when it was read."""

    def header(self, name: str) -> str | None:
        """The first field called ``name`` (case-insensitive)."""
        want = name.lower()
        return next((v for k, v in self.headers if k.lower() == want), None)

    def header_all(self, name: str) -> list[str]:
        """Every field called ``name``."""
        want = name.lower()
        return [v for k, v in self.headers if k.lower() == want]


_STATUS_RE = re.compile(rb"^HTTP/(1\.[01]) ([0-9]{3})(?: (.*))?$")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: A chunk size (RFC 9112, 7.1: hex digits only, no sign, no ``0x``, no ``_``; 15 of them
#: already exceed any body cap).
_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,15}")
#: A Content-Length (RFC 9110, 8.6: ASCII digits only; 18 of them exceed any body cap).
_LENGTH_RE = re.compile(r"[0-9]{1,18}")


def preview(data: bytes, limit: int = 40) -> str:
    """The first bytes of ``data``, printable, for error messages."""
    text = data[:limit].decode("latin-1")
    shown = "".join(ch if 32 <= ord(ch) < 127 else f"\\x{ord(ch):02x}" for ch in text)
    return shown + ("..." if len(data) > limit else "")


def parse_head(head: bytes) -> HttpResponse:
    """Parse a status line and header fields (``head`` ends before the blank line).

    Raises:
        HttpFailure: ``not_http`` when the bytes are not an HTTP/1.x response.
    """
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    match = _STATUS_RE.match(lines[0].rstrip(b"\r"))
    if match is None:
        raise HttpFailure("not_http", f"the server did not answer HTTP (it sent {quoted(preview(head))})")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.match(name):
            continue  # not a header field; a browser ignores it too
        headers.append((name, value.strip(" \t")))
    version, status, reason = match.group(1), match.group(2), match.group(3) or b""
    return HttpResponse(
        version=f"HTTP/{version.decode()}",
        status=int(status),
        reason=reason.decode("latin-1"),
        headers=tuple(headers),
    )


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read until the blank line; returns (head, bytes after it)."""
    buf = bytearray()
    while True:
        end = buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end = buf.find(b"\n\n")
            sep = 2
        if 0 <= end <= MAX_HEAD:
            return bytes(buf[:end]), bytes(buf[end + sep :])
        if len(buf) > MAX_HEAD:
            if not _STATUS_RE.match(bytes(buf.split(b"\n", 1)[0]).rstrip(b"\r")):
                raise HttpFailure(
                    "not_http", f"the server did not answer HTTP (it sent {quoted(preview(bytes(buf)))})"
                )
            raise HttpFailure("too_large", f"the response headers are larger than {MAX_HEAD // 1024} KiB")
        chunk = await reader.read(16384)
        if not chunk:
            if not buf:
                raise HttpFailure("closed", "the server closed the connection without answering")
            if not _STATUS_RE.match(bytes(buf.split(b"\n", 1)[0]).rstrip(b"\r")):
                raise HttpFailure(
                    "not_http", f"the server did not answer HTTP (it sent {quoted(preview(bytes(buf)))})"
                )
            raise HttpFailure("closed", "the server closed the connection in the middle of the headers")
        buf += chunk
        start = bytes(buf[:5])
        if not (start == b"HTTP/" if len(start) == 5 else b"HTTP/".startswith(start)):
            raise HttpFailure(
                "not_http", f"the server did not answer HTTP (it sent {quoted(preview(bytes(buf)))})"
            )


async def _read_body(
    reader: asyncio.StreamReader, response: HttpResponse, rest: bytes, max_body: int
) -> bytes:
    """Read the body by Content-Length, chunked coding, or until close; at most ``max_body``."""
    too_big = HttpFailure("too_large", f"the response body is larger than {max_body // 1024} KiB")
    encoding = (response.header("Transfer-Encoding") or "").lower()
    if "chunked" in encoding:
        return await _read_chunked(reader, rest, max_body, too_big)
    length_text = response.header("Content-Length")
    if length_text is not None:
        length_text = length_text.strip(" \t")
        if not length_text.isascii() or not length_text.isdigit():  # "²" is a digit to isdigit
            raise HttpFailure("not_http", f"invalid Content-Length {quoted(length_text[:40])}")
        if not _LENGTH_RE.fullmatch(length_text) or int(length_text) > max_body:
            raise too_big
        length = int(length_text)
        body = bytearray(rest[:length])
        while len(body) < length:
            chunk = await reader.read(min(65536, length - len(body)))
            if not chunk:
                raise HttpFailure("closed", f"the body ended after {len(body)} of {length} bytes")
            body += chunk
        return bytes(body)
    body = bytearray(rest)
    while True:
        if len(body) > max_body:
            raise too_big
        chunk = await reader.read(65536)
        if not chunk:
            return bytes(body)
        body += chunk


async def _read_chunked(
    reader: asyncio.StreamReader, rest: bytes, max_body: int, too_big: HttpFailure
) -> bytes:
    buf = bytearray(rest)
    body = bytearray()

    async def fill(n: int) -> None:
        while len(buf) < n:
            if len(buf) > max_body + 4096:
                raise too_big
            chunk = await reader.read(65536)
            if not chunk:
                raise HttpFailure("closed", "the chunked body ended early")
            buf.extend(chunk)

    while True:
        while b"\r\n" not in buf:
            if len(buf) > 1024:
                raise HttpFailure("not_http", "invalid chunk size line")
            await fill(len(buf) + 1)
        line, _, tail = bytes(buf).partition(b"\r\n")
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE_RE.fullmatch(size_text):  # int(x, 16) also takes "-1", "+a", "0x1f", "1_0"
            raise HttpFailure(
                "not_http", f"invalid chunk size {quoted(preview(size_text))} (expected hexadecimal digits)"
            )
        size = int(size_text, 16)
        buf[:] = tail
        if size == 0:
            return bytes(body)
        if len(body) + size > max_body:
            raise too_big
        await fill(size + 2)
        body += buf[:size]
        del buf[: size + 2]


def _request(host: str, path: str, method: str = "GET", body: bytes | None = None) -> bytes:
    host_header = f"[{host}]" if ":" in host and not host.startswith("[") else host
    content = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None else ""
    return (
        f"{method} {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        f"User-Agent: certpager/{__version__}\r\n"
        "Accept: */*\r\n"
        f"{content}"
        "Connection: close\r\n\r\n"
    ).encode("ascii", "replace") + (body or b"")


async def fetch(
    address: str,
    port: int,
    *,
    host: str,
    path: str = "/",
    timeout: float,
    connect_timeout: float | None = None,
    tls: ssl.SSLContext | None = None,
    sni: str | None = None,
    max_body: int | None = None,
    peek_error_body: int = 0,
    method: str = "GET",
    body: bytes | None = None,
) -> HttpResponse:
    """One ``GET path`` to ``address:port`` with ``Host: host``; the head, and the
    body when ``max_body`` is given (or, with ``peek_error_body``, the first bytes
    of an error answer's body). Finishes within ``timeout`` seconds. Another
    ``method``, and a JSON ``body``, for API clients (certpager.fleet.alertmanager).

    Raises:
        HttpFailure: for every way the exchange can fail (never anything else).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + max(timeout, 0.001)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout_at(end):
            limit = min(connect_timeout, timeout) if connect_timeout is not None else timeout
            reader, writer = await _open(address, port, end, limit, tls, sni)
            writer.write(_request(host, path, method, body))
            await writer.drain()
            return await _response(reader, end, max_body, peek_error_body)
    except Exception as exc:
        raise _failure(exc, port, timeout, connected=writer is not None) from None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.transport.abort()


async def _open(
    address: str, port: int, end: float, limit: float, tls: ssl.SSLContext | None, sni: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The connection (TLS when ``tls``), opened within ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(max(limit, 0.001)):
            return await asyncio.open_connection(
                address,
                port,
                ssl=tls,
                server_hostname=(sni or "") if tls is not None else None,
                ssl_handshake_timeout=max(end - loop.time(), 0.01) if tls is not None else None,
                limit=MAX_HEAD,
            )
    except TimeoutError:
        if loop.time() >= end:
            raise
        raise HttpFailure(
            "connect_timeout", f"no TCP connection to port {port} within {format_seconds(limit)}"
        ) from None


async def _response(
    reader: asyncio.StreamReader, end: float, max_body: int | None, peek_error_body: int
) -> HttpResponse:
    """The answer's head, with the body (up to ``max_body``) or the first
    ``peek_error_body`` bytes of an error answer's body."""
    head, rest = await _read_head(reader)
    response = parse_head(head)
    if max_body is not None:
        body = await _read_body(reader, response, rest, max_body)
        return HttpResponse(response.version, response.status, response.reason, response.headers, body)
    if not (peek_error_body and response.status >= 400):
        return response
    loop = asyncio.get_running_loop()
    peek = bytearray(rest[:peek_error_body])
    with contextlib.suppress(Exception):  # best effort: the head is the answer
        async with asyncio.timeout(min(PEEK_WAIT, max(end - loop.time(), 0.001))):
            while len(peek) < peek_error_body:
                chunk = await reader.read(peek_error_body - len(peek))
                if not chunk:
                    break
                peek += chunk
    return HttpResponse(response.version, response.status, response.reason, response.headers, bytes(peek))


def _failure(exc: Exception, port: int, timeout: float, *, connected: bool) -> HttpFailure:
    """What went wrong in :func:`fetch`, as the one exception it raises."""
    if isinstance(exc, HttpFailure):
        return exc
    if isinstance(exc, TimeoutError):
        what = "no complete HTTP response" if connected else "no TCP connection"
        return HttpFailure("timeout", f"{what} within {format_seconds(timeout)} (the deadline)")
    if isinstance(exc, ConnectionRefusedError):
        return HttpFailure("refused", f"nothing listens on port {port} (connection refused)")
    if isinstance(exc, ssl.SSLError):
        return HttpFailure("tls", f"TLS failed: {_ssl_words(exc)}")
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return HttpFailure("closed", "the server reset the connection")
    if isinstance(exc, asyncio.IncompleteReadError):
        return HttpFailure("closed", "the server closed the connection early")
    if isinstance(exc, OSError):
        return HttpFailure("connect_failed", f"cannot connect to port {port}: {exc.strerror or exc}")
    # never let a hostile server raise through a probe
    return HttpFailure("not_http", f"unexpected error: {type(exc).__name__}: {exc}")


def _ssl_words(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or str(exc)
    words = {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
        "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate",
        "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate's CA",
        "WRONG_VERSION_NUMBER": "the server did not answer with TLS",
    }
    return words.get(str(reason), str(reason))


_TLS_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def https_context(client_cert: str | None = None, client_key: str | None = None) -> ssl.SSLContext:
    """A client context for the HSTS request: no verification (the chain is judged
    elsewhere), HTTP/1.1 only, old protocols allowed, the endpoint's client certificate.

    Raises:
        HttpFailure: ``tls`` when the client certificate cannot be loaded.
    """
    key = (client_cert, client_key)
    ctx = _TLS_CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings(), contextlib.suppress(ValueError, ssl.SSLError):
        warnings.simplefilter("ignore", DeprecationWarning)  # old servers are what we look for
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.set_alpn_protocols(["http/1.1"])
    if client_cert and client_key:
        try:
            ctx.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise HttpFailure("tls", f"cannot load the client certificate: {exc}") from None
    _TLS_CONTEXTS[key] = ctx
    return ctx


# --- redirect ---------------------------------------------------------------------


def _norm_host(host: str) -> str:
    host = host.strip().rstrip(".").lower().strip("[]")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def judge_redirect(status: int, location: str | None, host: str) -> str | None:
    """Why a plain-HTTP answer is not a proper redirect (None: it is one).

    A proper redirect is 301 or 308 to ``https://`` on the same host (any port).
    """
    if status not in (301, 302, 303, 307, 308):
        return f"it answers {status} over plain HTTP instead of redirecting to HTTPS"
    if not location:
        return f"it answers {status} without a Location header"
    try:
        target = urlsplit(location.strip())
        target_host = target.hostname or ""
    except ValueError:
        return f"it redirects to an invalid Location {quoted(location)}"
    if target.scheme.lower() != "https":
        shown = location if target.scheme else f"{location} (relative, so still http://)"
        return f"it redirects to {shown}, which is not HTTPS"
    if _norm_host(target_host) != _norm_host(host):
        return (
            f"it redirects to {location}, another host: redirect to https://{host}/ first "
            "(browsers only apply this host's HSTS policy when it redirects to itself)"
        )
    if status not in (301, 308):
        return (
            f"it answers {status} (a temporary redirect) to {location}: use 301 or 308 so browsers "
            "and search engines remember it"
        )
    return None


@dataclass(frozen=True)
class RedirectResult:
    """What the plain-HTTP port answered."""

    state: Literal["redirects", "no_redirect", "closed", "failed", "skipped"]
    """``redirects`` (proper), ``no_redirect``, ``closed`` (nothing listens: nothing to
    redirect), ``failed`` (open but no usable answer), ``skipped``."""
    port: int
    """The plain-HTTP port."""
    address: str | None = None
    """Address connected to."""
    status: int | None = None
    """Status code."""
    location: str | None = None
    """Location header."""
    detail: str | None = None
    """Why it is not a proper redirect, or why the check failed, in words."""

    def as_json(self) -> dict[str, object]:
        """The facts, for ``--json``."""
        return {
            "state": self.state,
            "port": self.port,
            "address": self.address,
            "status": self.status,
            "location": self.location,
            "detail": self.detail,
        }


async def check_redirect(address: str, port: int, host: str, path: str, *, timeout: float) -> RedirectResult:
    """GET ``http://host:port/path`` from ``address``; never follows the redirect."""
    try:
        response = await fetch(
            address, port, host=host, path=path, timeout=timeout, connect_timeout=HTTP_CONNECT_TIMEOUT
        )
    except HttpFailure as exc:
        if exc.kind == "refused":
            return RedirectResult("closed", port, address, detail=exc.message)
        if exc.kind in ("connect_timeout", "connect_failed"):
            return RedirectResult("closed", port, address, detail=f"{exc.message}; treated as closed")
        return RedirectResult("failed", port, address, detail=exc.message)
    location = response.header("Location")
    why = judge_redirect(response.status, location, host)
    return RedirectResult(
        "no_redirect" if why else "redirects",
        port,
        address,
        status=response.status,
        location=location,
        detail=why,
    )


# --- HSTS -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hsts:
    """A parsed Strict-Transport-Security value (RFC 6797 §6.1)."""

    max_age: int | None
    """Seconds; None when missing or invalid."""
    include_subdomains: bool
    """``includeSubDomains`` present."""
    preload: bool
    """``preload`` present."""
    problems: tuple[str, ...] = ()
    """Why browsers would ignore the header (empty: valid)."""


def parse_hsts(value: str) -> Hsts:
    """Parse one Strict-Transport-Security header value."""
    seen: dict[str, str | None] = {}
    problems: list[str] = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        val: str | None = raw.strip() if sep else None
        if val is not None and len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        if name in seen:
            problems.append(f"directive {quoted(name)} appears twice")
        seen[name] = val
    max_age: int | None = None
    if "max-age" not in seen:
        problems.append("no max-age directive")
    else:
        text = seen["max-age"]
        # ASCII digits only ("²" is a digit to isdigit, not to int), and no more than int
        # reads (4,300 digits)
        if text is None or not text.isascii() or not text.isdigit() or len(text) > 4000:
            problems.append(f"max-age {quoted(text or '')[:60]} is not a number of seconds")
        else:
            max_age = int(text)
    return Hsts(
        max_age=max_age if not problems else None,
        include_subdomains="includesubdomains" in seen,
        preload="preload" in seen,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class HstsResult:
    """The HSTS header of the HTTPS response."""

    state: Literal["ok", "missing", "invalid", "short", "failed", "skipped"]
    """Verdict."""
    status: int | None = None
    """HTTPS response status."""
    header: str | None = None
    """The first Strict-Transport-Security value, as sent."""
    max_age: int | None = None
    """Seconds."""
    include_subdomains: bool = False
    """``includeSubDomains``."""
    preload: bool = False
    """``preload``."""
    detail: str | None = None
    """Why the check failed or the header is not accepted."""
    extra_headers: int = 0
    """Further Strict-Transport-Security fields (browsers use the first only)."""
    min_days: float = 180.0
    """The minimum max-age applied, days."""
    preload_missing: tuple[str, ...] = field(default_factory=tuple)
    """What hstspreload.org would still require (empty: preload-ready)."""

    def as_json(self) -> dict[str, object]:
        """The facts, for ``--json``."""
        return {
            "state": self.state,
            "status": self.status,
            "header": self.header,
            "max_age": self.max_age,
            "max_age_days": round(self.max_age / 86400, 2) if self.max_age is not None else None,
            "include_subdomains": self.include_subdomains,
            "preload": self.preload,
            "preload_ready": not self.preload_missing if self.state in ("ok", "short") else False,
            "preload_missing": list(self.preload_missing),
            "min_days": self.min_days,
            "detail": self.detail,
        }


def judge_hsts(status: int, values: list[str], min_days: float) -> HstsResult:
    """Verdict on the Strict-Transport-Security fields of one HTTPS response."""
    if not values:
        return HstsResult(
            "missing",
            status,
            min_days=min_days,
            detail=f"the HTTPS response ({status}) has no Strict-Transport-Security header",
        )
    value = values[0]
    parsed = parse_hsts(value)
    base = {
        "status": status,
        "header": value,
        "include_subdomains": parsed.include_subdomains,
        "preload": parsed.preload,
        "extra_headers": len(values) - 1,
        "min_days": min_days,
    }
    if parsed.problems or parsed.max_age is None:
        return HstsResult(
            "invalid",
            detail="the Strict-Transport-Security header is invalid (" + "; ".join(parsed.problems) + ")",
            **base,  # type: ignore[arg-type]
        )
    missing: list[str] = []
    if parsed.max_age < PRELOAD_MIN_AGE:
        missing.append("max-age of at least 31536000 (1 year)")
    if not parsed.include_subdomains:
        missing.append("includeSubDomains")
    if not parsed.preload:
        missing.append("preload")
    if parsed.max_age < min_days * 86400:
        detail = (
            "max-age=0 tells browsers to forget HSTS"
            if parsed.max_age == 0
            else f"max-age is {parsed.max_age} s ({parsed.max_age / 86400:.1f} days), "
            f"below the {min_days:g}-day minimum"
        )
        return HstsResult(
            "short",
            max_age=parsed.max_age,
            detail=detail,
            preload_missing=tuple(missing),
            **base,  # type: ignore[arg-type]
        )
    return HstsResult("ok", max_age=parsed.max_age, preload_missing=tuple(missing), **base)  # type: ignore[arg-type]


async def fetch_https(
    address: str,
    port: int,
    host: str,
    sni: str | None,
    path: str,
    *,
    timeout: float,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> HttpResponse | HttpFailure:
    """GET ``https://host/path`` on a fresh HTTP/1.1-only connection with the
    endpoint's client certificate; the first bytes of an error body are kept (see
    :func:`client_auth_verdict`). Returns the failure instead of raising it."""
    try:
        ctx = https_context(client_cert, client_key)
        return await fetch(
            address, port, host=host, path=path, timeout=timeout, tls=ctx, sni=sni, peek_error_body=4096
        )
    except HttpFailure as exc:
        return exc


def hsts_of(answer: HttpResponse | HttpFailure, min_days: float) -> HstsResult:
    """The HSTS verdict of an HTTPS answer."""
    if isinstance(answer, HttpFailure):
        return HstsResult("failed", detail=answer.message, min_days=min_days)
    return judge_hsts(answer.status, answer.header_all("Strict-Transport-Security"), min_days)


def client_auth_verdict(answer: HttpResponse | HttpFailure) -> tuple[str, str] | None:
    """``("required" | "rejected", words)`` when the HTTP answer says the client
    certificate was missing or refused after a completed handshake (nginx answers
    400 instead of failing the handshake); None when it says nothing about it."""
    if isinstance(answer, HttpFailure):
        return None
    body = answer.body.decode("latin-1", "replace")
    if answer.status == 496 or (answer.status == 400 and NGINX_NO_CLIENT_CERT in body):
        return (
            "required",
            f"the server completed the handshake, then answered HTTP {answer.status}: {NGINX_NO_CLIENT_CERT}",
        )
    if answer.status == 495 or (answer.status == 400 and NGINX_BAD_CLIENT_CERT in body):
        return (
            "rejected",
            f"the server completed the handshake, then answered HTTP {answer.status}: {NGINX_BAD_CLIENT_CERT}",
        )
    return None


async def check_hsts(
    address: str,
    port: int,
    host: str,
    sni: str | None,
    path: str,
    *,
    timeout: float,
    min_days: float,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> HstsResult:
    """GET ``https://host/path`` on a fresh HTTP/1.1 connection and judge its HSTS header."""
    answer = await fetch_https(
        address, port, host, sni, path, timeout=timeout, client_cert=client_cert, client_key=client_key
    )
    return hsts_of(answer, min_days)


def http_findings(
    redirect: RedirectResult | None, hsts: HstsResult | None, host: str, https_port: int
) -> list[Finding]:
    """``no_https_redirect``, ``hsts_missing``, ``hsts_short`` and ``http_check_failed``."""
    out: list[Finding] = []
    if redirect is not None:
        url = f"http://{host}" + ("" if redirect.port == 80 else f":{redirect.port}") + "/"
        if redirect.state == "no_redirect":
            out.append(F.make("no_https_redirect", f"{url}: {redirect.detail}"))
        elif redirect.state == "failed":
            out.append(
                F.make(
                    "http_check_failed",
                    f"{url} accepted a connection but the redirect check failed: {redirect.detail}",
                )
            )
    if hsts is not None:
        if hsts.state in ("missing", "invalid"):
            out.append(F.make("hsts_missing", f"{hsts.detail}: browsers can be downgraded to plain HTTP"))
        elif hsts.state == "short":
            out.append(F.make("hsts_short", f"{hsts.detail}"))
        elif hsts.state == "failed":
            out.append(
                F.make(
                    "http_check_failed",
                    f"the HSTS check (HTTPS request to port {https_port}) failed: {hsts.detail}",
                )
            )
    return out


__all__ = [
    "Hsts",
    "HstsResult",
    "HttpFailure",
    "HttpResponse",
    "RedirectResult",
    "check_hsts",
    "check_redirect",
    "client_auth_verdict",
    "fetch",
    "fetch_https",
    "hsts_of",
    "http_findings",
    "judge_hsts",
    "judge_redirect",
    "parse_head",
    "parse_hsts",
]
