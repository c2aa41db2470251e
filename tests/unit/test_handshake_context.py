"""The client context's callbacks (the handshakes themselves are tested against servers)."""

from __future__ import annotations

from OpenSSL import SSL

from certpager.probe.handshake import _watch_cert_requests


def test_the_certificate_callback_is_what_runs() -> None:
    """The installed pyOpenSSL exposes what the fast path needs (else it would fall back
    silently and every check would pay for the info callback). Both paths are run
    against real mTLS servers in tests/integration/test_deep_mtls.py."""
    assert _watch_cert_requests(SSL.Context(SSL.TLS_CLIENT_METHOD))


def test_the_benchmark_one_share_baseline_offers_what_the_probe_offers() -> None:
    """bench/baseline_loop.py keeps its own copy of the groups list (it imports nothing
    from certpager); its transparency row is only meaningful while the two agree."""
    import importlib.util
    from pathlib import Path

    from certpager.probe.handshake import KEY_EXCHANGE_GROUPS

    path = Path(__file__).resolve().parents[2] / "bench" / "baseline_loop.py"
    spec = importlib.util.spec_from_file_location("baseline_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ONE_SHARE_GROUPS == KEY_EXCHANGE_GROUPS
