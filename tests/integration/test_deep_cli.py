"""``certpager check --json`` (the real CLI, a subprocess) carries every deeper
finding and fact, from a config file and from command-line targets; bad input to the
new switches is one line and exit 3."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.support.deep_servers import HttpServer, HttpsServer, http_response
from tests.support.pki import PKI, Hierarchy, Issued
from tests.support.tls_server import LoopbackServer, TLSServer


def certpager(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certpager", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )


def pin_of(cert: Issued) -> str:
    spki = cert.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def start(zoo: Callable[[LoopbackServer], LoopbackServer]) -> Callable[[Any], Any]:
    return zoo  # type: ignore[return-value]


def test_config_json_carries_every_fact(
    tmp_path: Path,
    pki: PKI,
    ca: Hierarchy,
    start: Callable[[Any], Any],
    serve: Callable[..., TLSServer],
) -> None:
    aia = start(HttpServer())
    aia.routes["/ca.der"] = http_response(200, {}, ca.intermediate.der)
    web_leaf = ca.leaf("app.test")
    web_chain, web_key = ca.serve_files("cli-web", web_leaf)
    web = start(
        HttpsServer(
            web_chain, web_key, default=http_response(200, {"Strict-Transport-Security": "max-age=600"})
        )
    )
    plain = start(HttpServer(default=http_response(302, {"Location": "https://app.test/"})))
    old = ca.leaf("app.test", not_before=-70)
    old_chain, old_key = ca.serve_files("cli-old", old)
    b1 = serve(web_chain, web_key)
    b2 = serve(old_chain, old_key)
    lonely = ca.intermediate.leaf("lonely.test", aia_ca_issuers=f"http://127.0.0.1:{aia.port}/ca.der")
    lonely_chain, lonely_key = pki.write_chain("cli-lonely", [lonely], key_of=lonely)
    incomplete = serve(lonely_chain, lonely_key)
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        f"""settings:
  timeout: 4
endpoints:
  - name: web
    host: 127.0.0.1
    port: {web.port}
    sni: app.test
    ca_file: {ca.root_file}
    http: {{port: {plain.port}}}
    pins: ["{pin_of(ca.root)}"]
  - name: pair
    host: 127.0.0.1
    sni: app.test
    ca_file: {ca.root_file}
    backends: ["127.0.0.1:{b1.port}", "127.0.0.1:{b2.port}"]
    pins: ["{pin_of(pki.root("Nobody"))}"]
  - name: lonely
    host: 127.0.0.1
    port: {incomplete.port}
    sni: lonely.test
    ca_file: {ca.root_file}
"""
    )
    run = certpager("--config", str(config), "--json")
    assert "Traceback" not in run.stderr and run.returncode == 2, run.stderr
    reports = {r["name"]: r for r in json.loads(run.stdout)}

    web_r = reports["web"]
    codes = {f["code"]: f["severity"] for f in web_r["findings"]}
    assert codes == {"no_https_redirect": "warning", "hsts_short": "warning"}, web_r["findings"]
    assert web_r["redirect"]["status"] == 302 and web_r["hsts"]["max_age"] == 600
    assert web_r["protocols"]["TLSv1.3"] == "accepted" and web_r["protocols"]["SSLv3"] == "not_testable"
    assert web_r["no_sni"]["state"] == "same"
    assert [p["role"] for p in web_r["spki_pins"]] == ["leaf", "intermediate", "root"]
    assert web_r["backends"][0]["pins"]["state"] == "match"
    assert web_r["backends"][0]["client_auth"] == "not_requested"
    assert web_r["backends"][0]["cipher_check"]["negotiated"].startswith("TLS_")

    pair = reports["pair"]
    codes = {f["code"]: f["severity"] for f in pair["findings"]}
    assert codes["backends_disagree"] == "critical" and codes["pin_mismatch"] == "critical"
    assert pair["backends_agree"] is False and len(pair["certificates_served"]) == 2
    assert [b["port"] for b in pair["backends"]] == [b1.port, b2.port]
    assert {b["leaf_sha256"] for b in pair["backends"]} == {web_leaf.sha256, old.sha256}

    lonely_r = reports["lonely"]
    (finding,) = [f for f in lonely_r["findings"] if f["code"] == "chain_incomplete"]
    assert "browsers will work (they fetch it)" in finding["message"]
    assert lonely_r["aia"]["state"] == "completes_chain"
    assert lonely_r["aia"]["fetched"][0]["sha256"] == ca.intermediate.sha256


def test_target_flags(pki: PKI, ca: Hierarchy, start: Callable[[Any], Any]) -> None:
    chain, key = ca.serve_files("cli-flags", ca.leaf("app.test"))
    web = start(
        HttpsServer(chain, key, default=http_response(200, {"Strict-Transport-Security": "max-age=63072000"}))
    )
    plain = start(HttpServer(default=http_response(301, {"Location": "https://app.test/"})))
    target = f"127.0.0.1:{web.port}@app.test"
    run = certpager(target, "--ca-file", str(ca.root_file), "--http-port", str(plain.port), "--json")
    (report,) = json.loads(run.stdout)
    assert run.returncode == 0, report["findings"]
    assert report["redirect"]["state"] == "redirects" and report["hsts"]["state"] == "ok"
    # Without --http-port a non-443 target has no HTTP checks.
    (report,) = json.loads(certpager(target, "--ca-file", str(ca.root_file), "--json").stdout)
    assert report["http"]["state"] == "skipped" and "redirect" not in report


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--config", "{config}", "--http-port", "8080"],
            "--http-port applies to targets given on the command line",
        ),
        (["127.0.0.1:1", "--client-key", "{key}"], "--client-cert and --client-key go together"),
        (["127.0.0.1:1", "--http-port", "99999"], "is not a port number"),
    ],
)
def test_bad_switches(tmp_path: Path, args: list[str], words: str, pki: PKI, ca: Hierarchy) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text("endpoints:\n  - {name: a, host: 127.0.0.1, port: 1}\n")
    leaf = ca.leaf("client", server_auth=False)
    _chain, key = pki.write_chain("cli-bad", [leaf], key_of=leaf)
    run = certpager(*[a.format(config=config, key=key) for a in args])
    assert run.returncode == 3
    assert words in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
