"""The key exchange groups the probe offers: every group OpenSSL offers by default,
one key share (X25519), and a server that wants another group still gets it.

The servers run OpenSSL from the cryptography wheel (pyOpenSSL), which knows the
post-quantum hybrids; Debian's OpenSSL 3.0 behind the stdlib ``ssl`` does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from pathlib import Path

import pytest
from OpenSSL import SSL
from OpenSSL._util import lib
from tests.support.pki import Hierarchy
from tests.support.tls_server import LoopbackServer

from certpager.probe.handshake import ClientOptions, handshake

X25519 = 0x001D
X25519MLKEM768 = 0x11EC
SECP256R1 = 0x0017


def _default_client_hello() -> bytes:
    """The ClientHello of a default pyOpenSSL client context."""
    conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    conn.set_connect_state()
    conn.set_tlsext_host_name(b"app.test")
    with contextlib.suppress(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


def _groups_and_shares(record: bytes) -> tuple[list[int], list[int]]:
    """(supported_groups, key_share groups) of a ClientHello record."""
    assert record[0] == 22 and record[5] == 1, "not a ClientHello"
    body = record[9:]
    at = 2 + 32
    at += 1 + body[at]  # session id
    at += 2 + struct.unpack(">H", body[at : at + 2])[0]  # cipher suites
    at += 1 + body[at]  # compression
    end = at + 2 + struct.unpack(">H", body[at : at + 2])[0]
    at += 2
    extensions: dict[int, bytes] = {}
    while at < end:
        kind, size = struct.unpack(">HH", body[at : at + 4])
        extensions[kind] = body[at + 4 : at + 4 + size]
        at += 4 + size
    raw = extensions[10][2:]
    groups = [struct.unpack(">H", raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
    shares_raw, shares, i = extensions[51], [], 2
    while i < len(shares_raw):
        group, size = struct.unpack(">HH", shares_raw[i : i + 4])
        shares.append(group)
        i += 4 + size
    return groups, shares


class _Capture(LoopbackServer):
    """Keeps the first bytes of each connection (the ClientHello), then closes."""

    def __init__(self) -> None:
        super().__init__()
        self.hellos: list[bytes] = []

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while len(data) < 5 or len(data) < 5 + struct.unpack(">H", data[3:5])[0]:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        self.hellos.append(data)


class _GroupServer(LoopbackServer):
    """A pyOpenSSL TLS 1.3 server that accepts only the given key exchange groups."""

    def __init__(self, chain: Path, key: Path, groups: str) -> None:
        super().__init__()
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.use_certificate_chain_file(str(chain))
        ctx.use_privatekey_file(str(key))
        assert lib.SSL_CTX_set1_curves_list(ctx._context, groups.encode()) == 1
        self.context = ctx
        self.handshakes = 0

    def handle(self, conn: socket.socket) -> None:
        conn.setblocking(True)  # pyOpenSSL over a socket with a timeout would see EAGAIN
        tls = SSL.Connection(self.context, conn)
        tls.set_accept_state()
        try:
            tls.do_handshake()
            with self._lock:
                self.handshakes += 1
            tls.recv(1)
        except (SSL.Error, OSError):
            pass


def test_the_probe_offers_every_default_group_with_one_key_share() -> None:
    default_groups, default_shares = _groups_and_shares(_default_client_hello())
    with _Capture() as server:
        asyncio.run(handshake(server.host, server.port, "app.test", timeout=5))
    (hello,) = server.hellos  # type: ignore[attr-defined]
    groups, shares = _groups_and_shares(hello)
    assert shares == [X25519]
    assert X25519MLKEM768 in default_shares, "this OpenSSL no longer sends the hybrid share"
    # The same groups as the library's default, in its order (unknown ones aside).
    assert groups == [g for g in default_groups if g in groups]
    assert {X25519MLKEM768, X25519, SECP256R1} <= set(groups)
    assert len(groups) >= len(default_groups) - 1


@pytest.mark.parametrize(
    "groups", ["X25519MLKEM768", "secp256r1", "X25519"], ids=["hybrid-only", "p256-only", "x25519-only"]
)
def test_a_server_that_wants_another_group_still_completes(
    ca: Hierarchy, tmp_path: Path, groups: str
) -> None:
    """A server without X25519 answers with a HelloRetryRequest for its group: the
    handshake completes, one round trip longer."""
    chain, key = ca.serve_files(f"groups-{groups}", ca.leaf("app.test"))
    with _GroupServer(chain, key, groups) as server:
        hs = asyncio.run(handshake(server.host, server.port, "app.test", timeout=5, options=ClientOptions()))
        assert hs.ok, hs.error
        assert hs.tls_version == "TLSv1.3"
        deadline = time.monotonic() + 5  # the server finishes after the client
        while server.handshakes < 1 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        assert server.handshakes == 1  # type: ignore[attr-defined]
