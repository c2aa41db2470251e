"""An HTTP peer that misbehaves on purpose: the Alertmanager or Prometheus a hostile corpus runs.

:class:`HostileHttp` is a :class:`~certpager.lab.tls.LoopbackServer` (loopback, port 0,
threads joined on stop, bounded in connections and in time per connection): it reads the
request head, keeps it in :attr:`HostileHttp.requests`, then acts out one :class:`Act`:

- ``Act(raw)``: send ``raw`` (a whole response) at once;
- ``Act(raw, trickle=1.0)``: send it one byte every second (defeats per-read timeouts);
- ``Act(silent=True)``: never answer, hold the connection until the client leaves;
- ``Act(head, stream=N)``: send ``head`` then ``N`` bytes of filler, 64 KiB at a time, until the
  client hangs up (a 100 MB answer without holding 100 MB).

:func:`response` builds a response (``Content-Length`` unless ``chunked``), :func:`gzip_json`
a gzip-encoded one.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import time
from dataclasses import dataclass

from certpager.lab.http import read_request_head
from certpager.lab.tls import LoopbackServer

#: Upper bound on one connection's life, seconds.
MAX_SECONDS = 20.0


@dataclass(frozen=True)
class Act:
    """What the server does after reading a request head."""

    raw: bytes = b""
    """Bytes sent (a whole response, or the head of a streamed one)."""
    trickle: float | None = None
    """Seconds between two bytes of ``raw`` (None: all at once)."""
    silent: bool = False
    """Send nothing, hold the connection."""
    stream: int = 0
    """Filler bytes sent after ``raw``."""


def response(
    status: int = 200,
    body: bytes | str | object = b"",
    *,
    ctype: str = "application/json",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    reason: str = "X",
) -> bytes:
    """A whole HTTP/1.1 response; a ``body`` that is neither bytes nor str is JSON-encoded."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    fields = {"Content-Type": ctype, "Connection": "close", **(headers or {})}
    if chunked:
        fields["Transfer-Encoding"] = "chunked"
        step = max(1, len(data) // 7 or 1)
        parts = [data[i : i + step] for i in range(0, len(data), step)]
        data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        fields["Content-Length"] = str(len(data))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + data


def gzip_json(doc: object) -> bytes:
    """A 200 answer whose body is ``doc`` as gzip-compressed JSON (``Content-Encoding: gzip``)."""
    return response(200, gzip.compress(json.dumps(doc).encode()), headers={"Content-Encoding": "gzip"})


class HostileHttp(LoopbackServer):
    """Loopback HTTP(S) peer acting out :attr:`act` on every connection."""

    def __init__(
        self,
        act: Act,
        *,
        tls: ssl.SSLContext | None = None,
        max_connections: int = 64,
        max_concurrent: int = 64,
    ) -> None:
        super().__init__("127.0.0.1", max_connections=max_connections, max_concurrent=max_concurrent)
        self.act = act
        """What every connection gets."""
        self.tls = tls
        """Server-side TLS context (None: plain HTTP)."""
        self.requests: list[bytes] = []
        """Request heads received."""
        self.sent = 0
        """Bytes sent over all connections."""

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        if self.tls is None:
            self._act(conn)
            return
        try:
            stream = self.tls.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            return  # the client refused our certificate: that is the point
        try:
            self._act(stream)
        finally:
            stream.close()

    def _act(self, stream: socket.socket) -> None:
        self.requests.append(read_request_head(stream))
        act = self.act
        if act.silent:
            self.hold(stream, MAX_SECONDS)
            return
        if act.trickle is not None:
            self._trickle(stream, act.raw, act.trickle)
            return
        with contextlib.suppress(OSError):
            stream.sendall(act.raw)
            self.sent += len(act.raw)
            self._stream(stream, act.stream)
            stream.settimeout(1.0)
            stream.recv(1)  # let the client read before the FIN

    def _trickle(self, conn: socket.socket, data: bytes, interval: float) -> None:
        end = time.monotonic() + MAX_SECONDS
        for i in range(len(data)):
            if self.stopping.is_set() or time.monotonic() > end:
                return
            try:
                conn.sendall(data[i : i + 1])
            except OSError:
                return
            self.sent += 1
            self.stopping.wait(interval)

    def _stream(self, conn: socket.socket, total: int) -> None:
        chunk = b"[" * 65536
        end = time.monotonic() + MAX_SECONDS
        sent = 0
        while sent < total and not self.stopping.is_set() and time.monotonic() < end:
            conn.sendall(chunk)
            sent += len(chunk)
            self.sent += len(chunk)


__all__ = ["MAX_SECONDS", "Act", "HostileHttp", "gzip_json", "response"]
