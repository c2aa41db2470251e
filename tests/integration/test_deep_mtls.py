"""mTLS against Python servers, TLS 1.2 and TLS 1.3: a server that asks for a client
certificate (optional or required), with the configured certificate accepted or
rejected, and one that asks and then hangs up or goes silent (sslyze#612): bounded
by the deadline, never a hang."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.deep_servers import CertRequestThenClose, mtls_server
from tests.support.pki import PKI, Hierarchy, hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.config import Endpoint
from certpager.probe.engine import check_endpoint
from certpager.probe.model import EndpointReport, Severity, Status

VERSIONS = [pytest.param("TLSv1.2", id="tls1.2"), pytest.param("TLSv1.3", id="tls1.3")]
TIMEOUT = 3.0


@pytest.fixture(autouse=True, params=["cert-callback", "info-callback"])
def request_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test twice: with OpenSSL's certificate callback noting a CertificateRequest
    (the default), and with the public info callback it falls back to."""
    from certpager.probe import handshake

    if request.param == "info-callback":
        monkeypatch.setattr(handshake, "_watch_cert_requests", lambda ctx: False)
    handshake._CONTEXTS.clear()  # contexts are cached with their callbacks
    yield request.param
    handshake._CONTEXTS.clear()


@pytest.fixture(scope="module")
def client_ca(pki: PKI) -> Hierarchy:
    return hierarchy(pki, "Client Auth")


@pytest.fixture(scope="module")
def files(pki: PKI, ca: Hierarchy, client_ca: Hierarchy, other_ca: Hierarchy) -> dict[str, Path]:
    server_chain, server_key = ca.serve_files("mtls-server", ca.leaf("app.test"))
    good = client_ca.intermediate.leaf("svc-a", sans=["svc-a.internal"], server_auth=False)
    good_chain, good_key = pki.write_chain("mtls-client-good", [good, client_ca.intermediate], key_of=good)
    bad = other_ca.intermediate.leaf("intruder", sans=["intruder.internal"], server_auth=False)
    bad_chain, bad_key = pki.write_chain("mtls-client-bad", [bad, other_ca.intermediate], key_of=bad)
    return {
        "server_chain": server_chain,
        "server_key": server_key,
        "good_chain": good_chain,
        "good_key": good_key,
        "bad_chain": bad_chain,
        "bad_key": bad_key,
    }


@pytest.fixture
def start(zoo: Callable[[LoopbackServer], LoopbackServer]) -> Callable[[Any], Any]:
    return zoo  # type: ignore[return-value]


def _endpoint(port: int, ca: Hierarchy, cert: Path | None = None, key: Path | None = None) -> Endpoint:
    return Endpoint(
        name="mtls",
        host="127.0.0.1",
        port=port,
        sni="app.test",
        ca_file=str(ca.root_file),
        client_cert=str(cert) if cert else None,
        client_key=str(key) if key else None,
        check_protocols=False,
        check_no_sni=False,
        timeout=TIMEOUT,
    )


def _codes(report: EndpointReport) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


def _server(files: dict[str, Path], client_ca: Hierarchy, version: str, *, required: bool) -> TLSServer:
    return mtls_server(
        files["server_chain"],
        files["server_key"],
        client_ca.root_file,
        required=required,
        min_version=version,
        max_version=version,
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_required_without_a_certificate(
    version: str,
    files: dict[str, Path],
    ca: Hierarchy,
    client_ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    server = start(_server(files, client_ca, version, required=True))
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    codes = _codes(report)
    assert codes == {"client_cert_required": Severity.INFO}, report.findings
    (finding,) = report.findings
    assert "requires a client certificate" in finding.message
    assert report.backends[0].deep.as_json()["client_auth"] == "required"
    assert report.deep.as_json()["client_auth"] == "required"
    assert report.status is Status.OK  # the server chain is fine; mTLS is a fact about it
    assert report.backends[0].handshake.tls_version == version


@pytest.mark.parametrize("version", VERSIONS)
async def test_optional(
    version: str,
    files: dict[str, Path],
    ca: Hierarchy,
    client_ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    server = start(_server(files, client_ca, version, required=False))
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    assert _codes(report) == {"client_cert_required": Severity.INFO}
    assert "optional mTLS" in report.findings[0].message
    assert report.deep.as_json()["client_auth"] == "optional"


@pytest.mark.parametrize("version", VERSIONS)
async def test_configured_certificate_accepted(
    version: str,
    files: dict[str, Path],
    ca: Hierarchy,
    client_ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    server = start(_server(files, client_ca, version, required=True))
    report = await check_endpoint(_endpoint(server.port, ca, files["good_chain"], files["good_key"]), now=now)
    codes = _codes(report)
    assert "client_cert_rejected" not in codes
    assert codes == {"client_cert_required": Severity.INFO}
    assert "accepted" in report.findings[0].message
    assert report.deep.as_json()["client_auth"] == "accepted"
    assert report.status is Status.OK
    assert server.handshakes >= 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_wrong_certificate_rejected(
    version: str,
    files: dict[str, Path],
    ca: Hierarchy,
    client_ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    server = start(_server(files, client_ca, version, required=True))
    report = await check_endpoint(_endpoint(server.port, ca, files["bad_chain"], files["bad_key"]), now=now)
    codes = _codes(report)
    assert codes.get("client_cert_rejected") == Severity.CRITICAL, report.findings
    assert report.status is Status.CRITICAL
    assert report.deep.as_json()["client_auth"] == "rejected"
    (rejected,) = [f for f in report.findings if f.code == "client_cert_rejected"]
    assert str(files["bad_chain"]) in rejected.message
    # The server's own chain was still judged.
    assert report.backends[0].analysis is not None and report.backends[0].analysis.trusted


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("hang", [False, True], ids=["closes", "goes-silent"])
async def test_request_then_close_never_hangs(
    version: str,
    hang: bool,
    files: dict[str, Path],
    ca: Hierarchy,
    start: Callable[[Any], Any],
    now: dt.datetime,
) -> None:
    server = start(
        CertRequestThenClose(files["server_chain"], files["server_key"], max_version=version, hang=hang)
    )
    for cert, key in ((None, None), (files["good_chain"], files["good_key"])):
        began = time.monotonic()
        report = await check_endpoint(_endpoint(server.port, ca, cert, key), now=now)
        elapsed = time.monotonic() - began
        assert elapsed < TIMEOUT + 1.0, elapsed
        codes = _codes(report)
        hs = report.backends[0].handshake
        if hang and version == "TLSv1.2":
            # The server never finishes: no handshake, an error finding within the deadline.
            assert hs.error_code == "handshake_timeout", hs
            continue
        assert hs.client_cert_requested, hs
        assert "client_cert_required" in codes, report.findings
        if cert is not None and not hang:
            assert codes.get("client_cert_rejected") == Severity.CRITICAL, report.findings
        # A TLS 1.3 server that stays silent after its flight gives no verdict on the
        # client certificate: the client's side of the handshake is complete, so the
        # probe reports what it saw (requested) and does not invent a refusal.


async def test_configured_certificate_not_asked_for(
    files: dict[str, Path], ca: Hierarchy, serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    server = serve(files["server_chain"], files["server_key"])
    report = await check_endpoint(_endpoint(server.port, ca, files["good_chain"], files["good_key"]), now=now)
    assert "client_cert_required" not in _codes(report)
    assert report.backends[0].deep.as_json()["client_auth"] == "not_requested"
    assert "did not ask" in str(report.backends[0].deep.as_json()["client_auth_note"])
    assert report.status is Status.OK
