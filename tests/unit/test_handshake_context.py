"""The client context's callbacks (the handshakes themselves are tested against servers)."""

from __future__ import annotations

from OpenSSL import SSL

from certpager.probe.handshake import _watch_cert_requests


def test_the_certificate_callback_is_what_runs() -> None:
    """The installed pyOpenSSL exposes what the fast path needs (else it would fall back
    silently and every check would pay for the info callback). Both paths are run
    against real mTLS servers in tests/integration/test_deep_mtls.py."""
    assert _watch_cert_requests(SSL.Context(SSL.TLS_CLIENT_METHOD))
