"""Servers for the deeper checks' tests: plain HTTP (redirects, AIA files, hostile
variants), HTTPS answering with chosen headers, mTLS, and a TLS server that asks
for a client certificate and then hangs up.

All are :class:`~tests.support.tls_server.LoopbackServer` subclasses: loopback
only, port 0, every socket with a timeout, every thread joined by ``stop()``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.tls_server import LoopbackServer, TLSServer, server_context

#: Modes of :class:`HttpServer`.
MODES = ("respond", "silent", "trickle", "flood_headers", "flood_body", "garbage", "close")


def http_response(
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    reason: str | None = None,
) -> bytes:
    """An HTTP/1.1 response with Content-Length and Connection: close."""
    reasons = {
        200: "OK",
        301: "Moved Permanently",
        302: "Found",
        307: "Temporary Redirect",
        308: "Permanent Redirect",
        404: "Not Found",
    }
    lines = [f"HTTP/1.1 {status} {reason or reasons.get(status, 'Status')}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _read_request(conn: socket.socket | ssl.SSLSocket, wait: float = 5.0) -> bytes:
    """Read a request head (until the blank line), at most 64 KiB."""
    conn.settimeout(wait)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
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


class _Responder:
    """The HTTP behaviour shared by the plain and the TLS server."""

    mode: str
    routes: dict[str, bytes]
    default: bytes
    interval: float
    max_seconds: float
    flood_bytes: int
    requests: list[bytes]
    stopping: object

    def _serve(self, conn: socket.socket | ssl.SSLSocket) -> None:
        request = _read_request(conn)
        self.requests.append(request)
        if self.mode == "close":
            return
        response = self.routes.get(request_path(request), self.default)
        end = time.monotonic() + self.max_seconds
        stop = self.stopping  # threading.Event of the server
        if self.mode == "respond":
            conn.sendall(response)
            return
        if self.mode == "garbage":
            conn.sendall(bytes(range(1, 32)) * 64)
            return
        if self.mode == "silent":
            while not stop.is_set() and time.monotonic() < end:  # type: ignore[attr-defined]
                time.sleep(0.05)
            return
        if self.mode == "trickle":
            for i in range(len(response)):
                if stop.is_set() or time.monotonic() >= end:  # type: ignore[attr-defined]
                    return
                conn.sendall(response[i : i + 1])
                time.sleep(self.interval)
            return
        if self.mode == "flood_headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
            sent = 0
            while sent < self.flood_bytes and not stop.is_set() and time.monotonic() < end:  # type: ignore[attr-defined]
                conn.sendall(line * 16)
                sent += len(line) * 16
            return
        if self.mode == "flood_body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\n\r\n")
            block = b"\x30" * 16384
            sent = 0
            while sent < self.flood_bytes and not stop.is_set() and time.monotonic() < end:  # type: ignore[attr-defined]
                conn.sendall(block)
                sent += len(block)
            return
        raise ValueError(f"unknown mode {self.mode!r}")


class HttpServer(_Responder, LoopbackServer):  # type: ignore[misc]
    """Plain HTTP on loopback.

    ``mode``: ``respond`` (``routes[path]`` or ``default``, then close), ``silent``
    (read the request, never answer), ``trickle`` (the response one byte every
    ``interval`` s), ``flood_headers`` (a status line, then endless header lines
    up to ``flood_bytes``), ``flood_body`` (200 without length, then endless
    body), ``garbage`` (bytes that are not HTTP), ``close`` (hang up at once).
    """

    def __init__(
        self,
        mode: str = "respond",
        *,
        default: bytes = b"",
        routes: Mapping[str, bytes] | None = None,
        interval: float = 0.5,
        max_seconds: float = 30.0,
        flood_bytes: int = 50 * 1024 * 1024,
        host: str = "127.0.0.1",
        max_connections: int = 64,
    ):
        super().__init__(host, max_connections=max_connections)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.default = default or http_response(200, body=b"hello\n")
        self.routes = dict(routes or {})
        self.interval = interval
        self.max_seconds = max_seconds
        self.flood_bytes = flood_bytes
        self.requests = []
        """Request heads received."""

    def handle(self, conn: socket.socket) -> None:
        self._serve(conn)


class HttpsServer(_Responder, TLSServer):  # type: ignore[misc]
    """TLS, then the :class:`HttpServer` behaviour on the decrypted stream (HSTS tests)."""

    def __init__(
        self,
        chain_file: str | Path,
        key_file: str | Path,
        mode: str = "respond",
        *,
        default: bytes = b"",
        routes: Mapping[str, bytes] | None = None,
        interval: float = 0.5,
        max_seconds: float = 30.0,
        flood_bytes: int = 50 * 1024 * 1024,
        **kw: object,
    ):
        TLSServer.__init__(self, chain_file, key_file, **kw)  # type: ignore[arg-type]
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.default = default or http_response(200, body=b"hello\n")
        self.routes = dict(routes or {})
        self.interval = interval
        self.max_seconds = max_seconds
        self.flood_bytes = flood_bytes
        self.requests = []

    def handle(self, conn: socket.socket) -> None:
        with self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls:
            tls.do_handshake()
            with self._lock:
                self.handshakes += 1
            self._serve(tls)


def mtls_server(
    chain_file: str | Path,
    key_file: str | Path,
    client_ca: str | Path,
    *,
    required: bool = True,
    max_version: str | None = None,
    min_version: str | None = None,
) -> TLSServer:
    """A :class:`TLSServer` that asks for a client certificate issued by ``client_ca``
    (required or optional); not started."""
    server = TLSServer(chain_file, key_file, min_version=min_version, max_version=max_version)
    server.context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    server.context.load_verify_locations(str(client_ca))
    return server


class CertRequestThenClose(LoopbackServer):
    """Answers the ClientHello with a server flight that requests a client
    certificate, then closes the connection without reading what the client sends
    (sslyze#612). ``hang=True`` keeps the connection open, silent, instead."""

    def __init__(
        self,
        chain_file: str | Path,
        key_file: str | Path,
        *,
        max_version: str | None = None,
        hang: bool = False,
        max_seconds: float = 30.0,
    ):
        super().__init__()
        self.context = server_context(chain_file, key_file, max_version=max_version)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(str(chain_file))
        self.hang = hang
        self.max_seconds = max_seconds

    def handle(self, conn: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        conn.settimeout(5.0)
        hello = conn.recv(65536)
        if not hello:
            return
        incoming.write(hello)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        conn.sendall(outgoing.read())
        if self.hang:
            end = time.monotonic() + self.max_seconds
            conn.settimeout(0.1)
            while not self.stopping.is_set() and time.monotonic() < end:
                try:
                    if not conn.recv(65536):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return
