"""The JSON of ``certpager check --json`` pinned by a golden file.

One run of the real CLI (a subprocess) against a fixed set of loopback servers,
one endpoint per scenario: a healthy site with an HTTP redirect and HSTS, a site
that sends only its leaf (the AIA URL completes the chain), a certificate that
expires soon, a server that still accepts TLS 1.0, a server that asks for a client
certificate, and a port where nothing listens. The output is compared, keys in
order, with ``tests/integration/golden/check.json``.

Certificates, ports, addresses and timings differ on every run, so
:func:`normalise` replaces those *values* by placeholders (``<port>``,
``<sha256>``, ``<time>``, ...). It never drops a key nor reorders anything: a
key that appears, disappears or moves, a finding code or message that changes,
a fact that moves to another level of nesting, all fail the comparison.

To rewrite the golden file after an intended change of the JSON, run::

    pytest tests/integration/test_golden_json.py --update-golden

(or set ``CERTPAGER_UPDATE_GOLDEN=1``), then review the diff of the golden file
before committing it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.deep_servers import HttpServer, HttpsServer, http_response, mtls_server
from tests.support.pki import PKI, Hierarchy, hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.lab.ports import free_port

GOLDEN = Path(__file__).parent / "golden" / "check.json"

# Values of these keys change with every run (fresh keys and serials, the clock, the
# machine's speed): their values become the placeholder, whatever their type.
VOLATILE_KEYS = {
    "checked_at": "<time>",
    "elapsed_ms": "<ms>",
    "duration_ms": "<ms>",
    "handshake_ms": "<ms>",
    "connect_ms": "<ms>",
    "ms": "<ms>",
    "seconds": "<seconds>",
    "days_left": "<days>",
    "not_before": "<time>",
    "not_after": "<time>",
    "serial": "<serial>",
    "serial_number": "<serial>",
    "port": "<port>",
    "ip": "<address>",
    "address": "<address>",
    "peer": "<address>",
}

# Patterns inside any string (and the same placeholders when a whole value matches).
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d(?: \d\d:\d\d(?::\d\d)?)?"), "<date>"),
    (re.compile(r"sha256/[A-Za-z0-9+/]{43}="), "sha256/<pin>"),
    (re.compile(r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,}\b"), "<fingerprint>"),
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "<sha256>"),
    (re.compile(r"\b[0-9a-fA-F]{40}\b"), "<sha1>"),
    (re.compile(r"\b[0-9a-fA-F]{16,39}\b"), "<hex>"),
    (re.compile(r"(127\.0\.0\.1|localhost|\[::1\]):\d+"), r"\1:<port>"),
    (re.compile(r"\bport \d+"), "port <port>"),
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b"), "<duration>"),
    (re.compile(r"\b\d+(?:\.\d+)? days?\b"), "<n> days"),
    (re.compile(r"\b\d+(?:\.\d+)? hours?\b"), "<n> hours"),
]


def _scrub(text: str, tmp: str) -> str:
    text = text.replace(tmp, "<tmp>")
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def normalise(value: Any, tmp: str, key: str | None = None) -> Any:
    """``value`` with volatile values replaced by placeholders; keys, order and nesting kept."""
    if key is not None and key.endswith("_ms") and isinstance(value, int | float):
        return "<ms>"
    if key in VOLATILE_KEYS and not isinstance(value, dict | list) and value is not None:
        return VOLATILE_KEYS[key]
    if isinstance(value, dict):
        return {k: normalise(v, tmp, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, tmp, key) for v in value]
    if isinstance(value, str):
        return _scrub(value, tmp)
    return value


def _update_requested(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden")) or os.environ.get(
        "CERTPAGER_UPDATE_GOLDEN", ""
    ) not in ("", "0")


def certpager_check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certpager", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", "TZ": "UTC"},
        cwd=cwd,
    )


def test_check_json_matches_the_golden_file(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pki: PKI,
    ca: Hierarchy,
    zoo: Callable[[LoopbackServer], LoopbackServer],
    serve: Callable[..., TLSServer],
) -> None:
    # healthy: full chain, HSTS for two years, port 80 stand-in redirects to https.
    chain, key = ca.serve_files("golden-healthy", ca.leaf("healthy.test"))
    healthy = zoo(
        HttpsServer(chain, key, default=http_response(200, {"Strict-Transport-Security": "max-age=63072000"}))
    )
    redirect = zoo(HttpServer(default=http_response(301, {"Location": "https://healthy.test/"})))
    # leaf only: the intermediate is missing, the AIA caIssuers URL serves it.
    aia = zoo(HttpServer())
    aia.routes["/ca.der"] = http_response(200, {}, ca.intermediate.der)  # type: ignore[attr-defined]
    lonely = ca.intermediate.leaf("lonely.test", aia_ca_issuers=f"http://127.0.0.1:{aia.port}/ca.der")
    lonely_chain, lonely_key = pki.write_chain("golden-lonely", [lonely], key_of=lonely)
    leaf_only = serve(lonely_chain, lonely_key)
    # expiring: five days left.
    expiring = serve(*ca.serve_files("golden-expiring", ca.leaf("expiring.test", not_after=5)))
    # legacy: TLS 1.0 and 1.1 still accepted, no TLS 1.3.
    legacy = serve(
        *ca.serve_files("golden-legacy", ca.leaf("legacy.test")), min_version="TLSv1", max_version="TLSv1.2"
    )
    # mTLS: a client certificate from another CA is required.
    client_ca = hierarchy(pki, "Golden Clients")
    mtls = zoo(mtls_server(*ca.serve_files("golden-mtls", ca.leaf("mtls.test")), client_ca.root_file))
    refused = free_port()

    config = tmp_path / "endpoints.yaml"
    config.write_text(
        f"""settings:
  timeout: 5
endpoints:
  - name: healthy
    host: 127.0.0.1
    port: {healthy.port}
    sni: healthy.test
    ca_file: {ca.root_file}
    http: {{port: {redirect.port}}}
  - name: leaf-only
    host: 127.0.0.1
    port: {leaf_only.port}
    sni: lonely.test
    ca_file: {ca.root_file}
  - name: expiring
    host: 127.0.0.1
    port: {expiring.port}
    sni: expiring.test
    ca_file: {ca.root_file}
  - name: legacy
    host: 127.0.0.1
    port: {legacy.port}
    sni: legacy.test
    ca_file: {ca.root_file}
  - name: mtls
    host: 127.0.0.1
    port: {mtls.port}
    sni: mtls.test
    ca_file: {ca.root_file}
  - name: refused
    host: 127.0.0.1
    port: {refused}
    sni: refused.test
    ca_file: {ca.root_file}
"""
    )
    run = certpager_check("--config", str(config), "--json", cwd=tmp_path)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, (run.returncode, run.stderr)
    got = {
        "exit_status": run.returncode,
        "reports": normalise(json.loads(run.stdout), str(tmp_path_factory.getbasetemp())),
    }
    text = json.dumps(got, indent=2, ensure_ascii=False) + "\n"
    if _update_requested(request):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
        pytest.skip(f"golden file rewritten: {GOLDEN}")
    assert GOLDEN.exists(), f"no golden file {GOLDEN}: run with --update-golden to create it"
    want = GOLDEN.read_text(encoding="utf-8")
    # Compare parsed (key order included: dicts are compared as item lists) for a readable diff.
    assert json.loads(text, object_pairs_hook=list) == json.loads(want, object_pairs_hook=list)


def test_normalise_replaces_values_and_keeps_every_key() -> None:
    raw = {
        "port": 443,
        "days_left": None,
        "timings": {"total_ms": 12.5},
        "findings": [{"code": "expires_soon", "message": "expires in 5.0 days, on 2030-01-02 03:04 UTC"}],
        "leaf_sha256": "ab" * 32,
        "error": "connection refused by 127.0.0.1:8443 (/tmp/x/pki0/root.pem)",
    }
    assert normalise(raw, "/tmp/x") == {
        "port": "<port>",
        "days_left": None,
        "timings": {"total_ms": "<ms>"},
        "findings": [{"code": "expires_soon", "message": "expires in <n> days, on <date> UTC"}],
        "leaf_sha256": "<sha256>",
        "error": "connection refused by 127.0.0.1:<port> (<tmp>/pki0/root.pem)",
    }
    # A changed code, an added key or a moved fact still shows after normalising.
    assert normalise({**raw, "extra": 1}, "/tmp/x") != normalise(raw, "/tmp/x")
    assert normalise({**raw, "findings": [{"code": "expires_later"}]}, "/tmp/x") != normalise(raw, "/tmp/x")
