"""Python TLS servers on loopback for the probe tests.

A :class:`TLSServer` serves one chain file + key exactly as the file orders them
(OpenSSL sends the certificates of ``use_certificate_chain_file`` as they are
and builds no chain of its own when the server context holds no CA store).
It binds ``127.0.0.1`` (or ``::1``, or any loopback address) on port 0, runs an
accept thread plus one thread per connection, and as a context manager stops
and joins every thread it started. Every socket operation has a timeout, so a
misbehaving client cannot keep a thread alive past :meth:`TLSServer.stop`.

Security level 0 lets it serve what real broken servers serve (RSA 1024, SHA-1
signed chains, TLS 1.0).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from pathlib import Path
from types import TracebackType

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

#: Seconds any one socket operation of a server thread may block.
IO_TIMEOUT = 5.0
#: Seconds :meth:`LoopbackServer.stop` waits for its threads.
JOIN_TIMEOUT = 10.0


class LoopbackServer:
    """Accept loop on a loopback address; subclasses implement :meth:`handle`.

    Bounded: at most ``max_connections`` handler threads over the server's life,
    each socket with a timeout; :meth:`stop` shuts every live connection down and
    joins every thread, raising if one is still alive.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = 64):
        self.host = host
        """Loopback address listened on."""
        self.requested_port = port
        self.max_connections = max_connections
        """Connections handled over the server's life; later ones are closed at once."""
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
            with self._lock:
                if self._stop.is_set() or self.accepted >= self.max_connections:
                    conn.close()
                    continue
                self.accepted += 1
                self._conns.append(conn)
                thread = threading.Thread(
                    target=self._run_handler, args=(conn,), name=f"{type(self).__name__}-conn", daemon=True
                )
                self._threads.append(thread)
            thread.start()

    def _run_handler(self, conn: socket.socket) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            conn.settimeout(IO_TIMEOUT)
            self.handle(conn)
        except Exception as exc:  # a probe hanging up mid-handshake is expected
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self.active -= 1

    def handle(self, conn: socket.socket) -> None:
        """Serve one accepted connection (runs in its own thread)."""
        raise NotImplementedError

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

    def __enter__(self) -> LoopbackServer:
        if self._listener is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def server_context(
    chain_file: str | Path,
    key_file: str | Path,
    *,
    min_version: str | None = None,
    max_version: str | None = None,
    ciphers: str = "DEFAULT:@SECLEVEL=0",
) -> ssl.SSLContext:
    """A server context serving ``chain_file`` in file order, at security level 0.

    Versions default to the system's OpenSSL policy (Debian: TLS 1.2 and up).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in the ssl module; serving them is the point of some tests.
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None:
            ctx.minimum_version = _VERSIONS[min_version]
        if max_version is not None:
            ctx.maximum_version = _VERSIONS[max_version]
    ctx.load_cert_chain(str(chain_file), str(key_file))
    return ctx


class TLSServer(LoopbackServer):
    """Serves a chain file + key; each connection: handshake, then wait for the client to leave."""

    def __init__(
        self,
        chain_file: str | Path,
        key_file: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        min_version: str | None = None,
        max_version: str | None = None,
        ciphers: str = "DEFAULT:@SECLEVEL=0",
        max_connections: int = 64,
    ):
        super().__init__(host, port, max_connections=max_connections)
        self.chain_file = Path(chain_file)
        """The chain served, in file order."""
        self.context = server_context(
            chain_file, key_file, min_version=min_version, max_version=max_version, ciphers=ciphers
        )
        """The server's SSL context."""
        self.handshakes = 0
        """Handshakes completed."""

    def handle(self, conn: socket.socket) -> None:
        """Handshake, then read until the client closes (or the server stops)."""
        with self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls:
            tls.do_handshake()
            with self._lock:
                self.handshakes += 1
            tls.settimeout(0.2)
            while not self.stopping.is_set():
                try:
                    if not tls.recv(4096):
                        return
                except TimeoutError:
                    continue
                except (ssl.SSLError, OSError):
                    return

    def __enter__(self) -> TLSServer:
        super().__enter__()
        return self
