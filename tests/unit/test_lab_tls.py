"""certpager.lab.tls: the one TLS/HTTP server the demo, the tests and the bench share."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from tests.support.pki import Hierarchy

from certpager.lab.http import http_response, parse_request
from certpager.lab.tls import HttpServer, TLSServer, TLSStream, server_context


@contextlib.contextmanager
def _connect(port: int, ca: Hierarchy, sni: str) -> Iterator[ssl.SSLSocket]:
    client = ssl.create_default_context(cafile=str(ca.root_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        yield tls


def _cn(tls: ssl.SSLSocket) -> str:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value)


def _served_cn(port: int, ca: Hierarchy, sni: str) -> str:
    with _connect(port, ca, sni) as tls:
        return _cn(tls)


def test_replacing_the_context_is_a_reload_new_connections_only(ca: Hierarchy) -> None:
    old = ca.serve_files("lab-old", ca.leaf("old.test", ["old.test", "new.test"]))
    new = ca.serve_files("lab-new", ca.leaf("new.test", ["old.test", "new.test"]))
    with TLSServer(*old) as server, _connect(server.port, ca, "old.test") as kept:
        server.context = server_context(*new)
        assert _served_cn(server.port, ca, "new.test") == "new.test"
        assert _cn(kept) == "old.test"
        kept.sendall(b"still here")  # the open connection keeps going
    assert server.handshakes == 2


class _Echo(TLSServer):
    def serve(self, tls: TLSStream) -> None:
        tls.sendall(tls.recv(100).upper())


def test_a_pyopenssl_context_is_served_through_memory_bios(ca: Hierarchy) -> None:
    chain, key = ca.serve_files("lab-openssl", ca.leaf("ossl.test"))
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_chain_file(str(chain))
    ctx.use_privatekey_file(str(key))
    with _Echo(context=ctx) as server, _connect(server.port, ca, "ossl.test") as tls:
        tls.sendall(b"hello")
        assert tls.recv(100) == b"HELLO"
    assert server.handshakes == 1 and server.errors == []


def test_connections_beyond_max_concurrent_are_closed_at_once(ca: Hierarchy) -> None:
    files = ca.serve_files("lab-cap", ca.leaf("cap.test"))
    with TLSServer(*files, max_connections=None, max_concurrent=1) as server:
        with (
            _connect(server.port, ca, "cap.test"),
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as second,
        ):
            assert second.recv(10) == b""  # closed without a handshake
        deadline = time.monotonic() + 10
        while server.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _served_cn(server.port, ca, "cap.test") == "cap.test"  # the slot is free again
    assert server.accepted == 2


def test_http_server_routes_and_head_requests() -> None:
    page = http_response(200, [("Content-Type", "text/plain")], b"body\n")
    with HttpServer(routes={"/x": page}, default=http_response(404), head_without_body=True) as server:

        def ask(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
                conn.sendall(request)
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                return data

        assert ask(b"GET /x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n") == page
        assert ask(b"HEAD /x HTTP/1.1\r\n\r\n") == page.removesuffix(b"body\n")
        assert ask(b"GET /y HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 Not Found\r\n")


def test_parse_request_reads_method_path_and_bare_host() -> None:
    assert parse_request(b"GET /p HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n") == ("GET", "/p", "::1")
    assert parse_request(b"HEAD http://x/ HTTP/1.0\r\nhost: a.test:80\r\n\r\n") == ("HEAD", "/", "a.test")
    assert parse_request(b"GET /p\r\n\r\n") is None
    assert parse_request(b"GET /p HTTP/1.1\r\n") is None  # incomplete head
