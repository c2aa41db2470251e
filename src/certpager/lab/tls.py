"""The one TLS (and plain TCP/HTTP) server the demo, the tests and the benchmark share.

- :class:`LoopbackServer`: an accept thread on a loopback address plus one thread
  per connection, bounded (connections over its life and at once, a timeout on
  every socket) and stopped for good by :meth:`LoopbackServer.stop`, which joins
  every thread it started. Subclasses implement :meth:`LoopbackServer.handle`.
- :class:`TLSServer`: handshakes with :attr:`TLSServer.context` (read per
  connection, so replacing it is a reload: new connections get the new context,
  open ones keep theirs), then :meth:`TLSServer.serve` the decrypted stream
  (default: wait until the client leaves). The context is an :class:`ssl.SSLContext`
  or a pyOpenSSL ``SSL.Context`` (which, unlike :mod:`ssl`, can send the accepted
  client CAs in its CertificateRequest, as nginx's ``ssl_client_certificate`` does).
- :class:`HttpServer`: fixed responses by path over plain HTTP.
- :func:`server_context`: a context serving a chain file in file order (OpenSSL
  builds no chain of its own when the context holds no CA store), at security
  level 0 so it can serve what real broken servers serve (RSA 1024, SHA-1, TLS 1.0).
"""

from __future__ import annotations

import abc
import contextlib
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from OpenSSL import SSL

from certpager.lab.http import http_response, read_request_head, request_path
from certpager.lab.process import Started

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
"""Protocol names (nginx's ``ssl_protocols`` spelling) and their versions."""

IO_TIMEOUT = 5.0
"""Seconds any one socket operation of a server thread may block."""
JOIN_TIMEOUT = 10.0
"""Seconds :meth:`LoopbackServer.stop` waits for its threads."""
MAX_ERRORS = 200
"""Handler exceptions kept in :attr:`LoopbackServer.errors` (the latest)."""


class LoopbackServer(Started):
    """Accept loop on a loopback address; subclasses implement :meth:`handle`.

    Bounded: at most ``max_connections`` connections over the server's life (None:
    no limit, for long-running servers) and ``max_concurrent`` at once; later ones
    are closed at once. Every socket has a timeout; :meth:`stop` shuts every live
    connection down and joins every thread, raising if one is still alive.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int | None = 64,
        max_concurrent: int = 64,
    ):
        self.host = host
        """Loopback address listened on."""
        self.requested_port = port
        self.max_connections = max_connections
        """Connections handled over the server's life (None: unlimited)."""
        self.max_concurrent = max_concurrent
        """Connections handled at the same time."""
        self.port = 0
        """The port the kernel gave (after :meth:`start`)."""
        self.accepted = 0
        """Connections accepted so far."""
        self.errors: list[str] = []
        """Exceptions seen by handler threads (a failed handshake is normal for a probe)."""
        self.active = 0
        """Connections being handled right now."""
        self.max_active = 0
        """Most connections handled at the same time."""
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def stopping(self) -> threading.Event:
        """Set when :meth:`stop` was called; handlers poll it."""
        return self._stop

    def start(self) -> LoopbackServer:
        """Bind, listen and start accepting."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.requested_port))
            listener.listen(64)
            listener.settimeout(0.05)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed by stop()
            thread = self._admit(conn)
            if thread is not None:
                thread.start()

    def _admit(self, conn: socket.socket) -> threading.Thread | None:
        """Register ``conn`` and its handler thread, or close it when over a limit."""
        with self._lock:
            over_life = self.max_connections is not None and self.accepted >= self.max_connections
            if self._stop.is_set() or over_life or len(self._conns) >= self.max_concurrent:
                conn.close()
                return None
            self.accepted += 1
            self._conns.append(conn)
            self._threads = [t for t in self._threads if t.is_alive() or t.ident is None]
            thread = threading.Thread(
                target=self._run_handler, args=(conn,), name=f"{type(self).__name__}-conn", daemon=True
            )
            self._threads.append(thread)
            return thread

    def _run_handler(self, conn: socket.socket) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            conn.settimeout(IO_TIMEOUT)
            self.handle(conn)
        except Exception as exc:  # a probe hanging up mid-handshake is expected
            with self._lock:
                self.errors = [*self.errors[-(MAX_ERRORS - 1) :], f"{type(exc).__name__}: {exc}"]
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self.active -= 1
                if conn in self._conns:
                    self._conns.remove(conn)

    @abc.abstractmethod
    def handle(self, conn: socket.socket) -> None:
        """Serve one accepted connection (runs in its own thread)."""

    def hold(self, conn: socket.socket | TLSStream, max_seconds: float | None = None) -> None:
        """Read and discard until the client leaves, the server stops or ``max_seconds`` pass
        (None: no limit but the server's stop)."""
        end = None if max_seconds is None else time.monotonic() + max_seconds
        conn.settimeout(0.1)
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:  # ssl.SSLError included
                return

    def stop(self) -> None:
        """Stop accepting, unblock and close every connection, join every thread."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        alive = []
        for thread in threads:
            if thread.ident is not None:
                thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                alive.append(thread.name)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        if alive:
            raise RuntimeError(f"{type(self).__name__}: threads still alive after stop: {alive}")

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 bracketed), the form ``certpager check`` takes."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self._listener is not None


def server_context(
    chain_file: str | Path,
    key_file: str | Path,
    *,
    min_version: str | None = None,
    max_version: str | None = None,
    ciphers: str | None = "DEFAULT:@SECLEVEL=0",
) -> ssl.SSLContext:
    """A server context serving ``chain_file`` in file order, at security level 0
    (``ciphers=None``: the system's cipher policy).

    Versions default to the system's OpenSSL policy (Debian: TLS 1.2 and up).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in the ssl module; serving them is the point of some tests.
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None:
            ctx.minimum_version = VERSIONS[min_version]
        if max_version is not None:
            ctx.maximum_version = VERSIONS[max_version]
    ctx.load_cert_chain(str(chain_file), str(key_file))
    return ctx


class OpenSSLStream:
    """The server side of one TLS connection through pyOpenSSL memory BIOs over a socket.

    Offers what :meth:`TLSServer.serve` uses of an ``ssl.SSLSocket``: ``recv``,
    ``sendall``, ``settimeout``; every wait is bounded by the socket's timeout.
    """

    _MAX_FLIGHTS = 1000
    """Bound on the read rounds of one handshake (a handshake is a handful of flights)."""

    def __init__(self, context: SSL.Context, sock: socket.socket):
        self.conn = SSL.Connection(context, None)
        self.conn.set_accept_state()
        self.sock = sock

    def settimeout(self, value: float | None) -> None:
        """Timeout of each read from the socket."""
        self.sock.settimeout(value)

    def _flush(self) -> None:
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
        if out:
            self.sock.sendall(out)

    def _feed(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.conn.bio_write(data)
        return True

    def handshake(self) -> bool:
        """Complete the handshake (False: the client left or failed it; alerts are sent)."""
        for _ in range(self._MAX_FLIGHTS):
            try:
                self.conn.do_handshake()
            except SSL.WantReadError:
                self._flush()
                if not self._feed():
                    return False
                continue
            except SSL.Error:
                with contextlib.suppress(OSError):
                    self._flush()
                return False
            self._flush()
            return True
        return False

    def recv(self, bufsize: int) -> bytes:
        """Application data (``b""``: the client closed or the session failed)."""
        while True:
            try:
                return bytes(self.conn.recv(bufsize))
            except SSL.WantReadError:
                self._flush()
                if not self._feed():
                    return b""
            except SSL.Error:
                return b""

    def sendall(self, data: bytes) -> None:
        """Send application data."""
        self.conn.sendall(data)
        self._flush()

    def close(self) -> None:
        """Send close_notify."""
        with contextlib.suppress(SSL.Error, OSError):
            self.conn.shutdown()
            self._flush()


TLSStream = ssl.SSLSocket | OpenSSLStream
"""A server-side TLS connection after the handshake."""


class TLSServer(LoopbackServer):
    """Handshake with :attr:`context` on each connection, then :meth:`serve` it.

    Built from a chain file + key (:func:`server_context`) or from a ready ``context``.
    """

    def __init__(
        self,
        chain_file: str | Path | None = None,
        key_file: str | Path | None = None,
        *,
        context: ssl.SSLContext | SSL.Context | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        min_version: str | None = None,
        max_version: str | None = None,
        ciphers: str = "DEFAULT:@SECLEVEL=0",
        max_connections: int | None = 64,
        max_concurrent: int = 64,
        handshake_timeout: float = IO_TIMEOUT,
    ):
        super().__init__(host, port, max_connections=max_connections, max_concurrent=max_concurrent)
        self.chain_file = Path(chain_file) if chain_file is not None else None
        """The chain served, in file order (None when built from a context)."""
        if context is None:
            if chain_file is None or key_file is None:
                raise ValueError("TLSServer needs chain_file and key_file, or a context")
            context = server_context(
                chain_file, key_file, min_version=min_version, max_version=max_version, ciphers=ciphers
            )
        self.context: ssl.SSLContext | SSL.Context = context
        """The context new connections handshake with (replace it to reload)."""
        self.handshake_timeout = handshake_timeout
        """Seconds a handshake may take."""
        self.handshakes = 0
        """Handshakes completed."""

    def handle(self, conn: socket.socket) -> None:
        """Handshake with the current context, then :meth:`serve` the connection."""
        self.accept_tls(conn, self.context, self.serve)  # read once: a reload does not touch it

    def accept_tls(
        self,
        conn: socket.socket,
        context: ssl.SSLContext | SSL.Context,
        serve: Callable[[TLSStream], None],
    ) -> None:
        """Handshake on ``conn`` with ``context``; on success run ``serve`` on the TLS stream."""
        conn.settimeout(self.handshake_timeout)
        if isinstance(context, SSL.Context):
            stream = OpenSSLStream(context, conn)
            if not stream.handshake():
                return
            self._count_handshake()
            try:
                serve(stream)
            finally:
                stream.close()
            return
        with context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls:
            tls.do_handshake()
            self._count_handshake()
            tls.settimeout(IO_TIMEOUT)
            serve(tls)

    def _count_handshake(self) -> None:
        with self._lock:
            self.handshakes += 1

    def serve(self, tls: TLSStream) -> None:
        """After the handshake: read until the client closes (or the server stops)."""
        self.hold(tls)


class HttpServer(LoopbackServer):
    """Plain HTTP: ``routes[path]`` (a whole response) or ``default``, then close.

    ``head_without_body``: answer HEAD requests with the response head only.
    """

    def __init__(
        self,
        *,
        routes: Mapping[str, bytes] | None = None,
        default: bytes = b"",
        head_without_body: bool = False,
        host: str = "127.0.0.1",
        max_connections: int | None = 64,
        max_concurrent: int = 64,
    ):
        super().__init__(host, max_connections=max_connections, max_concurrent=max_concurrent)
        self.routes = dict(routes or {})
        """``path -> response`` (the query string is ignored)."""
        self.default = default or http_response(200, body=b"hello\n")
        """Answer to any other path."""
        self.head_without_body = head_without_body
        self.requests: list[bytes] = []
        """Request heads received."""

    def response_for(self, request: bytes) -> bytes:
        """The response to one request head."""
        response = self.routes.get(request_path(request).split("?", 1)[0], self.default)
        if self.head_without_body and request.startswith(b"HEAD "):
            return response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        return response

    def handle(self, conn: socket.socket) -> None:
        request = read_request_head(conn)
        self.requests.append(request)
        conn.sendall(self.response_for(request))


__all__ = [
    "IO_TIMEOUT",
    "JOIN_TIMEOUT",
    "VERSIONS",
    "HttpServer",
    "LoopbackServer",
    "OpenSSLStream",
    "TLSServer",
    "TLSStream",
    "server_context",
]
