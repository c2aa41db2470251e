"""The hostile-server zoo (reliability plan §4.C): servers that break TLS probes.

Each is a :class:`~certpager.lab.tls.LoopbackServer`: loopback only,
port 0, bounded in time (``max_seconds`` per connection) and in connections,
every thread joined by ``stop()``.

- :class:`SilentServer` accepts and never speaks (T31 tarpit).
- :class:`GarbageServer` answers the ClientHello with bytes that are not TLS (T33).
- :class:`CloseServer` closes at once, with a FIN (T34).
- :class:`ResetServer` resets at once, with an RST via ``SO_LINGER 0`` (T34).
- :class:`DribbleProxy` relays a real TLS server's bytes to the client one byte
  per second (T32: defeats any per-read timeout).
- :func:`huge_chain_files` makes a 30+ certificate chain of several MB (T36),
  served by a plain :class:`~certpager.lab.tls.TLSServer`.
- :class:`BacklogFull` is a listener whose accept queue is full, so SYNs are
  dropped and a connect never completes (T30 without root or netfilter).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from pathlib import Path

from tests.support.pki import PKI, Issued

from certpager.lab.process import Started
from certpager.lab.tls import LoopbackServer

#: Bytes a "garbage" server answers with: not a TLS record (first byte is no content type).
GARBAGE = bytes(range(0x20, 0x7F)) * 40
HTTP_REPLY = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def _read_hello(conn: socket.socket, wait: float = 2.0) -> bytes:
    """Read what the client sends first (its ClientHello), waiting at most ``wait`` s."""
    conn.settimeout(wait)
    try:
        return conn.recv(65536)
    except (TimeoutError, OSError):
        return b""


class SilentServer(LoopbackServer):
    """Accepts, reads and discards, never writes; hangs up when the client does or after ``max_seconds``."""

    def __init__(self, host: str = "127.0.0.1", *, max_seconds: float = 30.0, max_connections: int = 16):
        super().__init__(host, max_connections=max_connections)
        self.max_seconds = max_seconds
        """Upper bound on holding one connection."""

    def handle(self, conn: socket.socket) -> None:
        self.hold(conn, self.max_seconds)


class GarbageServer(LoopbackServer):
    """Waits for the ClientHello, answers ``payload`` (not TLS), then hangs up."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        payload: bytes = GARBAGE,
        greet_first: bool = False,
        max_connections: int = 16,
    ):
        super().__init__(host, max_connections=max_connections)
        self.payload = payload
        """What is sent instead of a ServerHello."""
        self.greet_first = greet_first
        """Send the payload on accept, before reading (SSH/SMTP banner style)."""

    def handle(self, conn: socket.socket) -> None:
        if not self.greet_first:
            _read_hello(conn)
        with contextlib.suppress(OSError):
            conn.sendall(self.payload)
        # Give the client a moment to read it before the FIN.
        conn.settimeout(0.5)
        with contextlib.suppress(OSError):
            conn.recv(65536)


class CloseServer(LoopbackServer):
    """Closes every connection at once with a FIN (optionally after reading the ClientHello)."""

    def __init__(self, host: str = "127.0.0.1", *, after_hello: bool = False, max_connections: int = 16):
        super().__init__(host, max_connections=max_connections)
        self.after_hello = after_hello
        """Read the ClientHello first, then hang up."""

    def handle(self, conn: socket.socket) -> None:
        if self.after_hello:
            _read_hello(conn)
        self.hang_up(conn)

    def hang_up(self, conn: socket.socket) -> None:
        """A FIN."""
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)


class ResetServer(CloseServer):
    """Resets every connection (``SO_LINGER`` on, 0 s: close sends an RST)."""

    def hang_up(self, conn: socket.socket) -> None:
        """An RST."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class DribbleProxy(LoopbackServer):
    """Relays a real TLS server: client bytes go through at once, server bytes
    come back one every ``interval`` seconds.

    Each connection ends when the client leaves, the server stops, or after
    ``max_seconds``.
    """

    def __init__(
        self,
        backend_port: int,
        *,
        backend_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        interval: float = 1.0,
        max_seconds: float = 30.0,
        max_connections: int = 8,
    ):
        super().__init__(host, max_connections=max_connections)
        self.backend = (backend_host, backend_port)
        """The real TLS server relayed."""
        self.interval = interval
        """Seconds between two bytes sent to the client."""
        self.max_seconds = max_seconds
        """Upper bound on one relayed connection."""
        self.bytes_dribbled = 0
        """Bytes sent to clients so far."""

    def handle(self, conn: socket.socket) -> None:
        with socket.create_connection(self.backend, timeout=5.0) as backend:
            pending = bytearray()
            start = time.monotonic()
            next_send = start + self.interval
            backend_open = True
            while not self.stopping.is_set():
                now = time.monotonic()
                if now - start > self.max_seconds:
                    return
                readers = [conn, backend] if backend_open else [conn]
                wait = max(0.0, min(next_send - now, 0.1))
                readable, _, _ = select.select(readers, [], [], wait)
                if conn in readable:
                    data = conn.recv(65536)
                    if not data:
                        return  # the client gave up
                    if backend_open:
                        with contextlib.suppress(OSError):
                            backend.sendall(data)
                if backend in readable:
                    data = backend.recv(65536)
                    if data:
                        pending.extend(data)
                    else:
                        backend_open = False
                if time.monotonic() >= next_send:
                    next_send += self.interval
                    if pending:
                        conn.sendall(pending[:1])
                        del pending[:1]
                        self.bytes_dribbled += 1
                    elif not backend_open:
                        return


class BacklogFull(Started):
    """A loopback listener whose accept queue is full: new SYNs are dropped, so a
    connect hangs until the client gives up (``connect_timeout``).

    Linux drops a SYN when the listener's accept queue is full; the queue of
    ``listen(0)`` holds one connection, and this fills it with never-accepted ones.
    """

    def __init__(self, host: str = "127.0.0.1", fillers: int = 4):
        self.host = host
        self.fillers_wanted = fillers
        self.port = 0
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []

    def running(self) -> bool:
        """Whether the listener is open."""
        return self._listener is not None

    def start(self) -> BacklogFull:
        """Listen and fill the accept queue."""
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.bind((self.host, 0))
        listener.listen(0)
        self._listener = listener
        self.port = listener.getsockname()[1]
        for _ in range(self.fillers_wanted):
            filler = socket.socket(listener.family)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((self.host, self.port))
            self._fillers.append(filler)
        time.sleep(0.2)  # let the handshakes of the fillers land in the queue
        return self

    def connect_blocks(self, wait: float = 0.5) -> bool:
        """Whether a new connect is really held (the precondition of the test)."""
        probe = socket.socket(self._listener.family if self._listener else socket.AF_INET)
        probe.settimeout(wait)
        try:
            probe.connect((self.host, self.port))
        except TimeoutError:
            return True
        except OSError:
            return False
        finally:
            probe.close()
        return False

    def stop(self) -> None:
        """Close the fillers and the listener."""
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def huge_chain(pki: PKI, *, depth: int = 31, pad_bytes: int = 100_000) -> tuple[Issued, list[Issued]]:
    """A root, ``depth - 1`` intermediates in a line and a leaf, each padded to
    about ``pad_bytes``: ``depth`` certificates sent, ``depth * pad_bytes`` bytes.

    Returns:
        ``(root, chain)`` with ``chain`` leaf first, then each issuer in order.
    """
    root = pki.root("Huge Chain Root", key="ec256", pad_bytes=pad_bytes)
    issuer = root
    intermediates: list[Issued] = []
    for i in range(depth - 1):
        issuer = issuer.intermediate(f"Huge Chain Intermediate {i + 1}", key="ec256", pad_bytes=pad_bytes)
        intermediates.append(issuer)
    leaf = issuer.leaf("huge.test", pad_bytes=pad_bytes)
    return root, [leaf, *reversed(intermediates)]


def huge_chain_files(pki: PKI, *, depth: int = 31, pad_bytes: int = 100_000) -> tuple[Path, Path, int, int]:
    """Write the :func:`huge_chain` as a chain file.

    Returns:
        ``(chain_file, key_file, certificates, bytes_of_der)``.
    """
    _root, chain = huge_chain(pki, depth=depth, pad_bytes=pad_bytes)
    chain_file, key_file = pki.write_chain("huge", chain, key_of=chain[0])
    return chain_file, key_file, len(chain), sum(len(c.der) for c in chain)


__all__ = [
    "GARBAGE",
    "HTTP_REPLY",
    "SSH_BANNER",
    "BacklogFull",
    "CloseServer",
    "DribbleProxy",
    "GarbageServer",
    "ResetServer",
    "SilentServer",
    "huge_chain",
    "huge_chain_files",
]
