"""Debian's nginx on loopback, as the on-call engineer meets it: through the real
``certpager check`` CLI (a subprocess) and through the probe engine.

nginx runs from its own prefix in a temp dir with ``daemon off`` and is stopped by
PID (see ``tests/support/nginx.py``). A missing nginx fails these tests loudly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support import nginx as nginx_support
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy

from certpager.config import Endpoint
from certpager.lab.ports import free_port
from certpager.probe.engine import check_endpoint
from certpager.probe.model import NO_CHECKS, EndpointReport, Status

pytestmark = pytest.mark.nginx


def certpager(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI."""
    return subprocess.run(
        [sys.executable, "-m", "certpager", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.fixture(scope="module")
def files(pki: PKI, ca: Hierarchy, other_ca: Hierarchy) -> dict[str, tuple[Path, Path]]:
    leaf = ca.leaf("app.test", sans=["app.test", "www.app.test"])
    other = ca.leaf("other.test")
    expired = ca.leaf("expired.test", not_before=-91, not_after=-1)
    unrelated = other_ca.intermediate.leaf("unrelated.test", not_before=-89, not_after=1)
    default = pki.self_signed("default.invalid")
    return {
        "full": pki.write_chain("nginx-full", [leaf, ca.intermediate], key_of=leaf),
        "leaf": pki.write_chain("nginx-leaf", [leaf], key_of=leaf),
        "with_root": pki.write_chain("nginx-root", [leaf, ca.intermediate, ca.root], key_of=leaf),
        "reversed": pki.write_chain("nginx-reversed", [leaf, ca.root, ca.intermediate], key_of=leaf),
        "extra": pki.write_chain("nginx-extra", [leaf, ca.intermediate, unrelated], key_of=leaf),
        "expired": pki.write_chain("nginx-expired", [expired, ca.intermediate], key_of=expired),
        "other": pki.write_chain("nginx-other", [other, ca.intermediate], key_of=other),
        "default": pki.write_chain("nginx-default", [default], key_of=default),
    }


@pytest.fixture(scope="module")
def lab(files: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """One nginx master, one server block per chain variant, each on its own port."""
    sites = [
        Site(name, chain, key, server_name="app.test")
        for name, (chain, key) in files.items()
        if name not in ("other", "default")
    ]
    server = Nginx(prefix=tmp_path_factory.mktemp("nginx-lab"), sites=sites)
    server.start()
    yield server
    server.stop()


def _ep(port: int, root: Path, sni: str = "app.test") -> Endpoint:
    return Endpoint(name="nginx", host="127.0.0.1", port=port, sni=sni, ca_file=str(root), timeout=5)


async def check_endpoint_main(endpoint: Endpoint, **kw: object) -> EndpointReport:
    """Main handshakes and analysis only; the deeper checks are tested on their own."""
    return await check_endpoint(endpoint, checks=NO_CHECKS, **kw)  # type: ignore[arg-type]


def _codes(report: EndpointReport) -> set[str]:
    return {f.code for f in report.findings}


def test_cli_complete_chain_exits_0(lab: Nginx, ca: Hierarchy) -> None:
    run = certpager("check", "--ca-file", str(ca.root_file), f"127.0.0.1:{lab.port('full')}@app.test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("STATUS")
    assert "OK" in run.stdout.splitlines()[1]
    assert "1 endpoint(s): 1 ok" in run.stdout
    assert run.stderr == ""


def test_cli_leaf_only_chain_incomplete_exits_2(lab: Nginx, ca: Hierarchy) -> None:
    run = certpager("check", "--ca-file", str(ca.root_file), f"127.0.0.1:{lab.port('leaf')}@app.test")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "CRITICAL" in run.stdout
    assert "chain_incomplete" in run.stdout
    # in plain words, with the fix
    assert "did not send the intermediate certificate" in run.stdout
    assert "fix: Serve the full chain" in run.stdout
    assert "Traceback" not in run.stderr


def test_cli_json_both(lab: Nginx, ca: Hierarchy) -> None:
    run = certpager(
        "check",
        "--json",
        "--ca-file",
        str(ca.root_file),
        f"127.0.0.1:{lab.port('full')}@app.test",
        f"127.0.0.1:{lab.port('leaf')}@app.test",
    )
    assert run.returncode == 2
    full, leaf_only = json.loads(run.stdout)
    assert full["status"] == "ok"
    # deeper checks may add informational facts (e.g. CBC suites still accepted); nothing worse
    assert all(f["severity"] == "info" for f in full["findings"]), full["findings"]
    assert full["chain_length"] == 2 and leaf_only["chain_length"] == 1
    assert full["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert [f["code"] for f in leaf_only["findings"] if f["severity"] != "info"] == ["chain_incomplete"]


@pytest.mark.parametrize(
    ("site", "shows", "absent"),
    [
        ("full", set(), {"chain_incomplete", "chain_root_sent", "chain_extra_cert", "cert_expired"}),
        ("leaf", {"chain_incomplete"}, {"untrusted_root", "self_signed"}),
        ("with_root", {"chain_root_sent"}, {"chain_wrong_order", "chain_extra_cert"}),
        ("reversed", {"chain_wrong_order", "chain_root_sent"}, set()),
        ("extra", {"chain_extra_cert"}, {"expires_soon", "chain_expires_before_leaf", "chain_cert_expired"}),
        ("expired", {"cert_expired"}, {"expires_soon"}),
    ],
)
async def test_nginx_chain_variants(
    lab: Nginx, ca: Hierarchy, now: dt.datetime, site: str, shows: set[str], absent: set[str]
) -> None:
    report = await check_endpoint_main(_ep(lab.port(site), ca.root_file), now=now)
    got = _codes(report)
    assert shows <= got, report.findings
    assert not (absent & got), report.findings
    if not shows:
        assert report.status is Status.OK
    # nginx sends the file exactly in its order
    chain_file = lab.site(site).chain_file
    assert report.backends[0].handshake.chain_der
    assert len(report.backends[0].handshake.chain_der) == chain_file.read_text().count("BEGIN CERTIFICATE")


async def test_nginx_sni_routing_and_default_server(
    files: dict[str, tuple[Path, Path]],
    nginx_factory: Callable[[list[Site]], Nginx],
    ca: Hierarchy,
    now: dt.datetime,
) -> None:
    """Three server blocks on one port: by SNI app.test, other.test, and the default one."""
    port = free_port()
    server = nginx_factory(
        [
            Site("default", *files["default"], server_name="_", default_server=True, port=port),
            Site("app", *files["full"], server_name="app.test", port=port),
            Site("other", *files["other"], server_name="other.test", port=port),
        ]
    )
    assert server.port("app") == port
    app = await check_endpoint_main(_ep(port, ca.root_file, "app.test"), now=now)
    other = await check_endpoint_main(_ep(port, ca.root_file, "other.test"), now=now)
    unknown = await check_endpoint_main(_ep(port, ca.root_file, "unknown.test"), now=now)
    assert app.status is Status.OK and other.status is Status.OK
    assert app.leaf is not None and other.leaf is not None and app.leaf.sha256 != other.leaf.sha256
    assert {"hostname_mismatch", "self_signed"} <= _codes(unknown)


async def test_nginx_reload_serves_new_certificate(
    pki: PKI, ca: Hierarchy, nginx_factory: Callable[[list[Site]], Nginx], now: dt.datetime
) -> None:
    """Renewed on disk, then reloaded: the probe sees the new certificate (polling, since
    a reload is asynchronous)."""
    old = ca.leaf("app.test", not_before=-88, not_after=2)
    new = ca.leaf("app.test", not_before=0, not_after=90)
    old_chain, old_key = pki.write_chain("reload-old", [old, ca.intermediate])
    new_chain, new_key = pki.write_chain("reload-new", [new, ca.intermediate])
    server = nginx_factory([Site("app", old_chain, old_key, server_name="app.test")])
    ep = _ep(server.port("app"), ca.root_file)
    before = await check_endpoint_main(ep, now=now)
    assert before.leaf is not None and before.leaf.sha256 == old.sha256
    assert "expires_soon" in _codes(before)
    site = server.site("app")
    site.chain_file, site.key_file = new_chain, new_key
    master = server.pid
    server.reload()
    after = before
    for _ in range(100):  # up to ~10 s
        after = await check_endpoint_main(ep, now=now)
        if after.leaf is not None and after.leaf.sha256 == new.sha256:
            break
        await asyncio.sleep(0.1)
    assert after.leaf is not None and after.leaf.sha256 == new.sha256
    assert after.status is Status.OK
    assert server.pid == master  # same master: a reload, not a restart


async def test_nginx_protocol_bounds(
    files: dict[str, tuple[Path, Path]],
    nginx_factory: Callable[[list[Site]], Nginx],
    ca: Hierarchy,
    now: dt.datetime,
) -> None:
    server = nginx_factory([Site("tls12", *files["full"], server_name="app.test", protocols="TLSv1.2")])
    report = await check_endpoint_main(_ep(server.port("tls12"), ca.root_file), now=now)
    assert report.status is Status.OK
    assert report.backends[0].handshake.tls_version == "TLSv1.2"


def test_nginx_stops_by_pid(
    files: dict[str, tuple[Path, Path]], nginx_factory: Callable[[list[Site]], Nginx]
) -> None:
    server = nginx_factory([Site("app", *files["full"], server_name="app.test")])
    proc = server.proc
    assert proc is not None
    assert (server.prefix / "nginx.pid").read_text().strip() == str(proc.pid)
    server.stop()
    assert proc.returncode is not None
    assert server.proc is None


def test_missing_nginx_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        nginx_support.nginx_binary()
