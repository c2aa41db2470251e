"""Nothing dropped silently, nothing malformed read as fine: the loose ends of the
hostile-peer review of the fleet code.

- a chunked answer whose chunk size is ``-1`` (or ``+a``, ``0x10``...) is a malformed response,
  one line, from a misbehaving loopback server (tests/support/hostile_http.py);
- alerts the client leaves out (malformed, duplicate, naming no endpoint) are counted and said
  by ``certpager check``: a table line and an ``alerts_ignored`` JSON field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.support.hostile_http import Act, HostileHttp

from certpager.config import AlertmanagerSettings, PrometheusSource
from certpager.errors import AlertmanagerError, PrometheusError
from certpager.fleet.alertmanager import AlertmanagerClient
from certpager.fleet.prometheus import query
from certpager.lab.tls import LoopbackServer

Zoo = Callable[[LoopbackServer], LoopbackServer]


def _chunked(*lines: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(line + b"\r\n" for line in lines)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(b"-1", "'-1'"), (b"+2", "'+2'"), (b"0x2", "'0x2'"), (b"2_0", "'2_0'"), (b"\x1b[2J", "'\\x1b[2J'")],
    ids=["negative", "plus", "0x", "underscore", "escape"],
)
def test_a_chunk_size_that_is_not_hex_digits_is_one_line(zoo: Zoo, size: bytes, shown: str) -> None:
    raw = _chunked(b"2", b"[]", size, b"[]", b"0", b"")
    server = zoo(HostileHttp(Act(raw)))
    assert isinstance(server, HostileHttp)
    client = AlertmanagerClient(AlertmanagerSettings(url=server.url, timeout=3))
    with pytest.raises(AlertmanagerError) as am_info:
        asyncio.run(client.alerts())
    with pytest.raises(PrometheusError) as prom_info:
        query(PrometheusSource(url=server.url, timeout=3))
    for message in (str(am_info.value), str(prom_info.value)):
        assert "\n" not in message and server.url in message, message
        assert f"invalid chunk size {shown} (expected hexadecimal digits)" in message, message
