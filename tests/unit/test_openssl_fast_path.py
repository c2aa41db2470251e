"""The shortcuts through pyOpenSSL's private bindings are in use with the installed
pyOpenSSL: an upgrade that renames what ``certpager.probe._openssl`` reaches would
otherwise fall back silently to the slower public API (same verdicts, lost speed).
pyproject.toml bounds pyOpenSSL to the versions these tests pass with."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from OpenSSL import SSL
from tests.support.pki import Hierarchy
from tests.support.tls_server import TLSServer

from certpager.probe import _openssl, handshake
from certpager.probe.handshake import KEY_EXCHANGE_GROUPS
from certpager.probe.trust import get_trust_store


@pytest.fixture
def undecided(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh contexts, and the chain reader not chosen yet (it is chosen once per process)."""
    monkeypatch.setattr(handshake, "_CHAINS", None)
    handshake._CONTEXTS.clear()
    yield
    handshake._CONTEXTS.clear()


def test_every_private_binding_is_reachable() -> None:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    assert _openssl.available()
    assert _openssl.set_groups(ctx, KEY_EXCHANGE_GROUPS)
    assert _openssl.on_certificate_request(ctx, lambda conn: None)
    assert _openssl.RawChains.create() is not None


async def test_a_loopback_handshake_uses_the_fast_paths(
    ca: Hierarchy, serve: Callable[..., TLSServer], undecided: None
) -> None:
    """A real handshake with a trust store reads its chains from OpenSSL's stacks (chosen
    only after both readers agreed)."""
    assert handshake.fast_paths().raw_chains is None
    server = serve(*ca.serve_files("fast-path", ca.leaf("app.test")))
    trust = get_trust_store(str(ca.root_file))
    hs = await handshake.handshake("127.0.0.1", server.port, "app.test", timeout=5, trust=trust)
    assert hs.ok, hs.error
    assert hs.verified_path is not None and hs.verified_path[1:] == (ca.intermediate.der, ca.root.der)
    assert handshake.fast_paths() == handshake.FastPaths(bindings=True, raw_chains=True)


async def test_the_status_reports_lost_bindings(
    ca: Hierarchy, serve: Callable[..., TLSServer], undecided: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What this test file guards against: bindings that disappear leave every handshake
    working through the public API, and the status says so."""
    monkeypatch.setattr(_openssl, "_bindings", lambda: None)
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    assert not _openssl.set_groups(ctx, KEY_EXCHANGE_GROUPS)
    assert not _openssl.on_certificate_request(ctx, lambda conn: None)
    server = serve(*ca.serve_files("no-fast-path", ca.leaf("app.test")))
    trust = get_trust_store(str(ca.root_file))
    hs = await handshake.handshake("127.0.0.1", server.port, "app.test", timeout=5, trust=trust)
    assert hs.ok, hs.error
    assert hs.verified_path is not None and hs.verified_path[1:] == (ca.intermediate.der, ca.root.der)
    assert handshake.fast_paths() == handshake.FastPaths(bindings=False, raw_chains=False)
