"""Servers for the deeper checks' tests: plain HTTP (redirects, AIA files, hostile
variants), HTTPS answering with chosen headers, mTLS, and a TLS server that asks
for a client certificate and then hangs up.

All are thin variants of the lab's servers (:mod:`certpager.lab.tls`): loopback
only, port 0, every socket with a timeout, every thread joined by ``stop()``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from certpager.lab.http import http_response, read_request_head, request_path
from certpager.lab.tls import HttpServer as LabHttpServer
from certpager.lab.tls import LoopbackServer, TLSServer, TLSStream, server_context

__all__ = [
    "MODES",
    "CertRequestThenClose",
    "HttpServer",
    "HttpsServer",
    "http_response",
    "mtls_server",
    "request_path",
]

#: Modes of :class:`HttpServer`.
MODES = ("respond", "silent", "trickle", "flood_headers", "flood_body", "garbage", "close")


class _Modes:
    """The hostile HTTP behaviours shared by the plain and the TLS server."""

    def __init__(self, mode: str, interval: float, max_seconds: float, flood_bytes: int) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.interval = interval
        self.max_seconds = max_seconds
        self.flood_bytes = flood_bytes

    def serve(self, conn: socket.socket | TLSStream, response: bytes, stop: threading.Event) -> None:
        """Answer one request (whose ``response`` is given) the way ``mode`` says."""
        end = time.monotonic() + self.max_seconds

        def going() -> bool:
            return not stop.is_set() and time.monotonic() < end

        if self.mode == "respond":
            conn.sendall(response)
        elif self.mode == "garbage":
            conn.sendall(bytes(range(1, 32)) * 64)
        elif self.mode == "silent":
            while going():
                time.sleep(0.05)
        elif self.mode == "trickle":
            for i in range(len(response)):
                if not going():
                    return
                conn.sendall(response[i : i + 1])
                time.sleep(self.interval)
        elif self.mode == "flood_headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            self._flood(conn, b"X-Padding: " + b"a" * 1000 + b"\r\n", 16, going)
        elif self.mode == "flood_body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\n\r\n")
            self._flood(conn, b"\x30" * 16384, 1, going)

    def _flood(
        self, conn: socket.socket | TLSStream, unit: bytes, per_send: int, going: Callable[[], bool]
    ) -> None:
        sent = 0
        while sent < self.flood_bytes and going():
            conn.sendall(unit * per_send)
            sent += len(unit) * per_send


class HttpServer(LabHttpServer):
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
        super().__init__(routes=routes, default=default, host=host, max_connections=max_connections)
        self.modes = _Modes(mode, interval, max_seconds, flood_bytes)

    def handle(self, conn: socket.socket) -> None:
        self.answer(conn, self.stopping)

    def answer(self, conn: socket.socket | TLSStream, stop: threading.Event) -> None:
        """Read one request on ``conn`` and answer it the way ``mode`` says (until ``stop``)."""
        request = read_request_head(conn)
        self.requests.append(request)
        if self.modes.mode != "close":
            self.modes.serve(conn, self.response_for(request), stop)


class HttpsServer(TLSServer):
    """TLS, then the :class:`HttpServer` behaviour on the decrypted stream (HSTS tests).

    ``min_version``/``max_version`` go to the TLS side, every other option to the
    :class:`HttpServer` (never started itself) that answers.
    """

    def __init__(
        self,
        chain_file: str | Path,
        key_file: str | Path,
        mode: str = "respond",
        *,
        min_version: str | None = None,
        max_version: str | None = None,
        **http: Any,
    ):
        super().__init__(chain_file, key_file, min_version=min_version, max_version=max_version)
        self.http = HttpServer(mode, **http)
        """What answers on the decrypted stream."""
        self.routes = self.http.routes
        """``path -> response``."""
        self.requests = self.http.requests
        """Request heads received."""

    def serve(self, tls: TLSStream) -> None:
        self.http.answer(tls, self.stopping)


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
    context = server_context(chain_file, key_file, min_version=min_version, max_version=max_version)
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    context.load_verify_locations(str(client_ca))
    return TLSServer(chain_file, key_file, context=context)


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
            self.hold(conn, self.max_seconds)
