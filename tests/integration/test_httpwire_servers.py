"""The exporter and the lab's servers answer with the same bytes for the same response
(certpager.httpwire builds both): a real exporter and a real lab HTTP server on loopback,
asked over raw sockets."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from tests.integration.test_exporter import start  # noqa: F401  (the fixture)

from certpager.httpwire import http_response
from certpager.lab.tls import HttpServer

TEXT = [("Content-Type", "text/plain; charset=utf-8")]


async def test_exporter_answers_byte_for_byte(start: Callable[..., Any]) -> None:  # noqa: F811
    running = await start()
    message = b"not found: try /probe?target=HOST[:PORT][@SNI] or /metrics\n"
    assert await running.raw(b"GET /nope HTTP/1.1\r\n\r\n") == http_response(404, TEXT, message)
    assert await running.raw(b"GET / HTTP/1.1\r\nbad header\r\n\r\n") == http_response(
        400, TEXT, b"malformed header line\n"
    )
    assert await running.raw(b"PUT / HTTP/1.1\r\n\r\n") == http_response(
        405, TEXT, b"method PUT not allowed: use GET\n"
    )
    answer = await running.raw(b"HEAD / HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n")
    assert answer.endswith(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_lab_server_answers_the_same_bytes() -> None:
    message = b"not found: try /probe?target=HOST[:PORT][@SNI] or /metrics\n"
    with (
        HttpServer(default=http_response(404, TEXT, message)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn,
    ):
        conn.sendall(b"GET /nope HTTP/1.1\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    assert data == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(message)).encode() + b"\r\nConnection: close\r\n\r\n" + message
    )
