"""Protocol versions and weak suites against Python TLS servers on loopback.

Each finding has a showing and a clean case. TLS 1.0 needs an RSA certificate on
these servers (OpenSSL 3 finds no usable signature algorithm for an EC key
below TLS 1.2 and answers "protocol version"), so these leaves are RSA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.pki import Hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.config import Endpoint
from certpager.lab.tls import TLSStream
from certpager.probe.engine import check_endpoint
from certpager.probe.findings import SPECS
from certpager.probe.model import EndpointReport, Severity, Status
from certpager.probe.protocols import can_offer


@pytest.fixture(scope="module")
def rsa_files(ca: Hierarchy) -> tuple[Path, Path]:
    leaf = ca.leaf("app.test", key="rsa2048")
    return ca.serve_files("deep-rsa", leaf)


def _endpoint(port: int, ca: Hierarchy, **kw: object) -> Endpoint:
    base: dict[str, object] = {"check_no_sni": False, "timeout": 5.0}
    base.update(kw)
    return Endpoint(
        name="proto",
        host="127.0.0.1",
        port=port,
        sni="app.test",
        ca_file=str(ca.root_file),
        **base,  # type: ignore[arg-type]
    )


def _by_code(report: EndpointReport) -> dict[str, list[Severity]]:
    out: dict[str, list[Severity]] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f.severity)
    return out


PROTOCOL_CODES = {"tls1_0_enabled", "tls1_1_enabled", "sslv3_enabled", "no_tls1_3", "weak_cipher"}
# Every code named here is one the catalogue defines (a renamed code fails at collection).
assert SPECS.keys() >= PROTOCOL_CODES, sorted(PROTOCOL_CODES - SPECS.keys())


@pytest.mark.parametrize(
    ("server_kw", "shows", "versions"),
    [
        pytest.param(
            {
                "min_version": "TLSv1",
                "max_version": "TLSv1.2",
                "ciphers": "ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0",
            },
            {
                "tls1_0_enabled": Severity.WARNING,
                "tls1_1_enabled": Severity.WARNING,
                "no_tls1_3": Severity.INFO,
            },
            {"TLSv1": "accepted", "TLSv1.1": "accepted", "TLSv1.2": "accepted", "TLSv1.3": "refused"},
            id="tls1.0-1.2",
        ),
        pytest.param(
            {
                "min_version": "TLSv1.1",
                "max_version": "TLSv1.2",
                "ciphers": "ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0",
            },
            {"tls1_1_enabled": Severity.WARNING, "no_tls1_3": Severity.INFO},
            {"TLSv1": "refused", "TLSv1.1": "accepted", "TLSv1.2": "accepted", "TLSv1.3": "refused"},
            id="tls1.1-only-old",
        ),
        pytest.param(
            {"min_version": "TLSv1", "max_version": "TLSv1", "ciphers": "ECDHE+AES:@SECLEVEL=0"},
            {"tls1_0_enabled": Severity.WARNING, "no_tls1_3": Severity.INFO, "weak_cipher": Severity.WARNING},
            {"TLSv1": "accepted", "TLSv1.1": "refused", "TLSv1.2": "refused", "TLSv1.3": "refused"},
            id="tls1.0-only",
        ),
        pytest.param(
            {"min_version": "TLSv1.2", "max_version": "TLSv1.2", "ciphers": "ECDHE+AESGCM"},
            {"no_tls1_3": Severity.INFO},
            {"TLSv1": "refused", "TLSv1.1": "refused", "TLSv1.2": "accepted", "TLSv1.3": "refused"},
            id="tls1.2-only-clean",
        ),
        pytest.param(
            {"min_version": "TLSv1.2", "ciphers": "ECDHE+AESGCM"},
            {},
            {"TLSv1": "refused", "TLSv1.1": "refused", "TLSv1.3": "accepted"},
            id="modern-clean",
        ),
        pytest.param(
            {"min_version": "TLSv1.3"},
            {},
            {"TLSv1": "refused", "TLSv1.1": "refused", "TLSv1.2": "not_tested", "TLSv1.3": "accepted"},
            id="tls1.3-only",
        ),
        pytest.param(
            {
                "min_version": "TLSv1.2",
                "max_version": "TLSv1.2",
                "ciphers": "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA",
            },
            {"no_tls1_3": Severity.INFO, "weak_cipher": Severity.WARNING},
            {"TLSv1.2": "accepted"},
            id="cbc-only",
        ),
        pytest.param(
            {"min_version": "TLSv1.2", "max_version": "TLSv1.2", "ciphers": "AES128-GCM-SHA256:@SECLEVEL=0"},
            {"no_tls1_3": Severity.INFO, "weak_cipher": Severity.WARNING},
            {"TLSv1.2": "accepted"},
            id="static-rsa-only",
        ),
        pytest.param(
            {
                "min_version": "TLSv1.2",
                "ciphers": "ECDHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384:@SECLEVEL=0",
            },
            {"weak_cipher": Severity.INFO},
            {"TLSv1.2": "accepted", "TLSv1.3": "accepted"},
            id="static-rsa-accepted-beside-ecdhe",
        ),
    ],
)
async def test_protocol_findings(
    server_kw: dict[str, str],
    shows: dict[str, Severity],
    versions: dict[str, str],
    rsa_files: tuple[Path, Path],
    ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    server = serve(*rsa_files, **server_kw)
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    found = _by_code(report)
    got = {code: sevs for code, sevs in found.items() if code in PROTOCOL_CODES}
    detail = "\n".join(f"  {f.code} [{f.severity.label}]: {f.message}" for f in report.findings)
    assert {c: [s] for c, s in shows.items()} == got, detail
    backend = report.backends[0]
    protocols = backend.deep.as_json()["protocols"]
    assert isinstance(protocols, dict)
    for version, state in versions.items():
        assert protocols[version] == state, (version, protocols, backend.deep.as_json().get("protocol_notes"))
    # SSLv3: this OpenSSL cannot offer it, so it is "not testable", never "refused".
    assert not can_offer("SSLv3")
    assert protocols["SSLv3"] == "not_testable"
    assert "cannot offer SSLv3" in str(backend.deep.as_json()["protocol_notes"])
    assert "sslv3_enabled" not in found
    assert report.deep.as_json()["protocols"] == {
        v: s for v, s in protocols.items()
    }  # one backend: the endpoint view is the backend's
    for f in report.findings:
        assert f.hint, f.code


async def test_messages_name_the_version_and_the_suite(
    rsa_files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    server = serve(*rsa_files, min_version="TLSv1", max_version="TLSv1", ciphers="ECDHE+AES:@SECLEVEL=0")
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    words = {f.code: f.message for f in report.findings}
    assert "accepts TLS 1.0" in words["tls1_0_enabled"]
    assert "ECDHE-RSA-AES" in words["tls1_0_enabled"]
    assert "no AEAD (CBC mode)" in words["weak_cipher"]
    assert "chose TLS 1.0" in words["no_tls1_3"]
    assert report.status is Status.WARNING


async def test_probes_are_few_and_switch_off(
    rsa_files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """A modern server costs two extra connections (TLS 1.0-1.1 range, static RSA);
    ``check_protocols: false`` costs none."""
    server = serve(*rsa_files, min_version="TLSv1.2", ciphers="ECDHE+AESGCM")
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    assert report.backends[0].deep.as_json()["protocol_probes"] == 2
    await asyncio.sleep(0.1)
    assert server.accepted == 3

    quiet = serve(*rsa_files, min_version="TLSv1.2", ciphers="ECDHE+AESGCM")
    report = await check_endpoint(_endpoint(quiet.port, ca, check_protocols=False), now=now)
    await asyncio.sleep(0.1)
    assert quiet.accepted == 1
    assert "protocols" not in report.backends[0].deep.as_json()
    assert report.deep.as_json()["protocols"] == "not checked (check_protocols is off)"


class FirstOnlyTLS(TLSServer):
    """Completes the first TLS handshake; every later connection is held silent (a
    server whose probes hang). Bounded by ``max_seconds``."""

    def __init__(self, chain: Path, key: Path, max_seconds: float = 20.0):
        super().__init__(chain, key)
        self.max_seconds = max_seconds

    def handle(self, conn: socket.socket) -> None:
        if self.accepted == 1:
            super().handle(conn)
        else:
            self.hold(conn, self.max_seconds)

    def serve(self, tls: TLSStream) -> None:
        self.hold(tls, self.max_seconds)


async def test_hanging_probes_are_bounded_by_the_deadline(
    rsa_files: tuple[Path, Path],
    ca: Hierarchy,
    zoo: Callable[[LoopbackServer], LoopbackServer],
    now: dt.datetime,
) -> None:
    server = zoo(FirstOnlyTLS(*rsa_files))
    start = time.monotonic()
    report = await check_endpoint(_endpoint(server.port, ca, timeout=2.0, check_no_sni=True), now=now)
    elapsed = time.monotonic() - start
    assert elapsed < 2.0 + 1.0
    assert report.status is Status.OK  # inconclusive probes are facts, not findings
    protocols = report.backends[0].deep.as_json()["protocols"]
    assert isinstance(protocols, dict)
    assert protocols["TLSv1"] == "inconclusive" and protocols["TLSv1.1"] == "inconclusive"
    assert report.deep.as_json()["no_sni"]["state"] == "failed"  # type: ignore[index]
    assert not {f.code for f in report.findings} & PROTOCOL_CODES


async def test_two_backends_each_probed(
    rsa_files: tuple[Path, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """One backend still on TLS 1.0: the finding names it; the endpoint view says accepted."""
    from certpager.config import Backend

    old = serve(*rsa_files, min_version="TLSv1", ciphers="ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0")
    new = serve(*rsa_files, min_version="TLSv1.2", ciphers="ECDHE+AESGCM")
    ep = _endpoint(old.port, ca, backends=(Backend("127.0.0.1", old.port), Backend("127.0.0.1", new.port)))
    report = await check_endpoint(ep, now=now)
    (tls10,) = [f for f in report.findings if f.code == "tls1_0_enabled"]
    assert tls10.backends == (f"127.0.0.1:{old.port}",)
    assert report.deep.as_json()["protocols"]["TLSv1"] == "accepted"  # type: ignore[index]
    assert report.backends[1].deep.as_json()["protocols"]["TLSv1"] == "refused"  # type: ignore[index]


async def test_ec_certificate_skips_the_static_rsa_probe(
    ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """Static RSA needs an RSA certificate: with an EC one, one extra connection only."""
    chain, key = ca.serve_files("deep-ec", ca.leaf("app.test"))
    server = serve(chain, key, min_version="TLSv1.2")
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    extra = report.backends[0].deep.as_json()
    assert extra["protocol_probes"] == 1
    check = extra["cipher_check"]
    assert isinstance(check, dict)
    assert check["static_rsa"] == "not_tested" and "EC key" in str(check["static_rsa_note"])
    await asyncio.sleep(0.1)
    assert server.accepted == 2
