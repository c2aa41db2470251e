"""Issue 3's "done when", tried as a new user would: Debian's nginx configured in the
test, the real ``certpager check`` CLI as a subprocess, the config corrected and
reloaded, checked again. Plus the same CLI against nginx mTLS.

What Debian's OpenSSL 3 really does matters here: ``ssl_protocols TLSv1 TLSv1.1
TLSv1.2`` alone does *not* make nginx accept TLS 1.0 - at the default security level
OpenSSL 3 refuses TLS 1.0/1.1 on the server side too, so certpager must not report
it (and ``openssl s_client -tls1`` agrees). nginx accepts TLS 1.0 only with a
cipher string that lowers the security level (``...:@SECLEVEL=0``).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy, hierarchy

from certpager.lab.ports import free_port

pytestmark = pytest.mark.nginx

#: The broken config's ciphers: ECDHE only (no static RSA), security level 0 so
#: that OpenSSL 3 really serves TLS 1.0/1.1.
OLD_CIPHERS = "ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0"
#: The source document's nginx example.
SEED_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
SEED_HSTS = 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'


def certpager(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI."""
    return subprocess.run(
        [sys.executable, "-m", "certpager", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )


def check_json(*args: str) -> tuple[int, dict[str, Any]]:
    run = certpager("--json", *args)
    assert run.returncode in (0, 1, 2), run.stderr
    assert "Traceback" not in run.stderr
    (report,) = json.loads(run.stdout)
    return run.returncode, report


def s_client(port: int, *flags: str) -> bool:
    """Whether ``openssl s_client`` completes a handshake with these flags."""
    run = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "app.test", *flags],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    return run.returncode == 0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """nginx reloads asynchronously: poll until the new config answers."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"nginx never showed {what} after the reload")


def tls13_works(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            ctx.wrap_socket(sock, server_hostname="app.test"),
        ):
            return True
    except OSError:
        return False


def http_status(port: int) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            head = sock.recv(4096)
    except OSError:
        return None
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


@pytest.fixture(scope="module")
def rsa_chain(pki: PKI, ca: Hierarchy) -> tuple[Path, Path]:
    leaf = ca.leaf("app.test", key="rsa2048")
    return ca.serve_files("deep-nginx", leaf)


def _codes(report: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(problems: warning and worse, infos)."""
    problems = {f["code"] for f in report["findings"] if f["severity"] != "info"}
    infos = {f["code"] for f in report["findings"] if f["severity"] == "info"}
    return problems, infos


def test_done_when_broken_then_fixed(
    rsa_chain: tuple[Path, Path], ca: Hierarchy, nginx_factory: Callable[[list[Site]], Nginx]
) -> None:
    https_port, http_port = free_port(), free_port()
    site = Site(
        "app",
        *rsa_chain,
        server_name="app.test",
        port=https_port,
        protocols="TLSv1 TLSv1.1 TLSv1.2",
        # Port 80's stand-in serves the site over plain HTTP: no redirect; no HSTS header.
        extra=f"listen 127.0.0.1:{http_port};\n        ssl_ciphers {OLD_CIPHERS};",
    )
    nginx = nginx_factory([site])
    target = f"127.0.0.1:{https_port}@app.test"
    args = (target, "--ca-file", str(ca.root_file), "--http-port", str(http_port))

    # What a TLS 1.0 client really gets (not what the config says).
    assert s_client(https_port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert s_client(https_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")

    code, report = check_json(*args)
    problems, infos = _codes(report)
    assert problems == {"tls1_0_enabled", "tls1_1_enabled", "no_https_redirect", "hsts_missing"}, report[
        "findings"
    ]
    # TLS 1.3 is not offered by "TLSv1 TLSv1.1 TLSv1.2": an info, not a problem (the
    # status and exit code ignore it); the fix below enables it.
    assert infos == {"no_tls1_3"}
    assert code == 1 and report["status"] == "warning"
    assert report["protocols"]["TLSv1"] == "accepted" and report["protocols"]["TLSv1.1"] == "accepted"
    assert report["protocols_accepted"] == ["TLSv1", "TLSv1.1", "TLSv1.2"]
    assert report["redirect"]["state"] == "no_redirect" and report["redirect"]["status"] == 200
    assert report["hsts"]["state"] == "missing"
    for finding in report["findings"]:
        assert finding["hint"], finding

    # The readable table says the same, each problem with its fix.
    run = certpager(*args)
    assert run.returncode == 1
    for code_name, fix in (
        ("tls1_0_enabled", "ssl_protocols TLSv1.2 TLSv1.3"),
        ("tls1_1_enabled", "ssl_protocols TLSv1.2 TLSv1.3"),
        ("no_https_redirect", "return 301 https://$host$request_uri"),
        ("hsts_missing", "add_header Strict-Transport-Security"),
    ):
        assert code_name in run.stdout and fix in run.stdout, run.stdout

    # The fix, as the source document writes it; reload; wait until it is served.
    site.protocols = "TLSv1.2 TLSv1.3"
    site.extra = (
        f"listen 127.0.0.1:{http_port};\n"
        f"        if ($scheme = http) {{ return 301 https://$host:{https_port}$request_uri; }}\n"
        f"        ssl_ciphers {SEED_CIPHERS};\n"
        f"        {SEED_HSTS}"
    )
    nginx.reload()
    wait_for(lambda: tls13_works(https_port) and http_status(http_port) == 301, "TLS 1.3 and the redirect")
    assert not s_client(https_port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")

    code, report = check_json(*args)
    assert report["findings"] == [], report["findings"]
    assert code == 0 and report["status"] == "ok"
    assert report["redirect"]["state"] == "redirects" and report["redirect"]["status"] == 301
    assert report["hsts"]["max_age"] == 63072000 and report["hsts"]["include_subdomains"] is True
    assert report["protocols"]["TLSv1"] == "refused" and report["protocols"]["TLSv1.3"] == "accepted"
    run = certpager(*args)
    assert run.returncode == 0 and "1 endpoint(s): 1 ok" in run.stdout


def test_tls1_in_config_but_refused_by_openssl3(
    rsa_chain: tuple[Path, Path], ca: Hierarchy, nginx_factory: Callable[[list[Site]], Nginx]
) -> None:
    """``ssl_protocols TLSv1 TLSv1.1 TLSv1.2`` with nginx's default ciphers: Debian's
    OpenSSL 3 still refuses TLS 1.0/1.1, so certpager truthfully reports neither."""
    nginx = nginx_factory(
        [Site("app", *rsa_chain, server_name="app.test", protocols="TLSv1 TLSv1.1 TLSv1.2")]
    )
    port = nginx.port("app")
    assert not s_client(port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert not s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    code, report = check_json(f"127.0.0.1:{port}@app.test", "--ca-file", str(ca.root_file))
    problems, infos = _codes(report)
    assert not {"tls1_0_enabled", "tls1_1_enabled"} & problems
    assert report["protocols"]["TLSv1"] == "refused"
    # nginx's default ciphers (HIGH:!aNULL:!MD5) include static RSA suites: an info.
    assert infos == {"no_tls1_3", "weak_cipher"}
    assert code == 0


def test_seclevel0_default_ciphers_also_accept_static_rsa(
    rsa_chain: tuple[Path, Path], ca: Hierarchy, nginx_factory: Callable[[list[Site]], Nginx]
) -> None:
    nginx = nginx_factory(
        [
            Site(
                "app",
                *rsa_chain,
                server_name="app.test",
                protocols="TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
                extra="ssl_ciphers DEFAULT:@SECLEVEL=0;",
            )
        ]
    )
    code, report = check_json(f"127.0.0.1:{nginx.port('app')}@app.test", "--ca-file", str(ca.root_file))
    problems, infos = _codes(report)
    assert problems == {"tls1_0_enabled", "tls1_1_enabled"}
    assert infos == {"weak_cipher"}
    (weak,) = [f for f in report["findings"] if f["code"] == "weak_cipher"]
    assert "no forward secrecy" in weak["message"]
    assert report["backends"][0]["cipher_check"]["static_rsa"] == "accepted"
    assert code == 1


def test_no_protocols_switch(
    rsa_chain: tuple[Path, Path], ca: Hierarchy, nginx_factory: Callable[[list[Site]], Nginx]
) -> None:
    nginx = nginx_factory(
        [
            Site(
                "app",
                *rsa_chain,
                server_name="app.test",
                protocols="TLSv1 TLSv1.1 TLSv1.2",
                extra=f"ssl_ciphers {OLD_CIPHERS};",
            )
        ]
    )
    code, report = check_json(
        f"127.0.0.1:{nginx.port('app')}@app.test", "--ca-file", str(ca.root_file), "--no-protocols"
    )
    assert report["findings"] == [] and code == 0
    assert report["protocols"] == "not checked (check_protocols is off)"


# --- mTLS on nginx ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_files(pki: PKI) -> dict[str, Path]:
    client_ca = hierarchy(pki, "Nginx Client")
    good = client_ca.intermediate.leaf("svc-a", sans=["svc-a.internal"], server_auth=False)
    good_chain, good_key = pki.write_chain("nginx-client-good", [good, client_ca.intermediate], key_of=good)
    stranger = hierarchy(pki, "Stranger")
    bad = stranger.intermediate.leaf("svc-x", sans=["svc-x.internal"], server_auth=False)
    bad_chain, bad_key = pki.write_chain("nginx-client-bad", [bad, stranger.intermediate], key_of=bad)
    return {
        "ca": client_ca.root_file,
        "good_chain": good_chain,
        "good_key": good_key,
        "bad_chain": bad_chain,
        "bad_key": bad_key,
    }


@pytest.mark.parametrize("protocols", ["TLSv1.2", "TLSv1.3"])
def test_nginx_mtls(
    protocols: str,
    rsa_chain: tuple[Path, Path],
    ca: Hierarchy,
    client_files: dict[str, Path],
    nginx_factory: Callable[[list[Site]], Nginx],
) -> None:
    """nginx's ``ssl_verify_client on`` finishes the handshake and answers HTTP 400;
    certpager reads that answer to tell required / accepted / rejected."""
    nginx = nginx_factory(
        [
            Site(
                "mtls",
                *rsa_chain,
                server_name="app.test",
                protocols=protocols,
                extra=f"ssl_client_certificate {client_files['ca']};\n        ssl_verify_client on;\n"
                "        ssl_verify_depth 2;",
            )
        ]
    )
    base = (f"127.0.0.1:{nginx.port('mtls')}@app.test", "--ca-file", str(ca.root_file))

    code, report = check_json(*base)
    assert report["client_auth"] == "required", report
    assert "CN=Nginx Client Root CA" in " ".join(report["client_ca_names"])
    (required,) = [f for f in report["findings"] if f["code"] == "client_cert_required"]
    assert required["severity"] == "info" and "requires a client certificate" in required["message"]
    assert "CN=Nginx Client Root CA" in required["message"]
    assert code == 0

    code, report = check_json(
        *base, "--client-cert", str(client_files["good_chain"]), "--client-key", str(client_files["good_key"])
    )
    assert report["client_auth"] == "accepted", report
    assert "client_cert_rejected" not in {f["code"] for f in report["findings"]}
    assert code == 0

    code, report = check_json(
        *base, "--client-cert", str(client_files["bad_chain"]), "--client-key", str(client_files["bad_key"])
    )
    assert report["client_auth"] == "rejected", report
    (rejected,) = [f for f in report["findings"] if f["code"] == "client_cert_rejected"]
    assert rejected["severity"] == "critical" and "SSL certificate error" in rejected["message"]
    assert code == 2 and report["status"] == "critical"
