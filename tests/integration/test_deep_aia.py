"""Missing intermediates explained through AIA: the leaf names
``http://127.0.0.1:PORT/...`` as its caIssuers URL, a loopback HTTP server serves
the intermediate (DER, PEM, PKCS#7) or misbehaves, and the probe says which case it
is without ever letting the fetched certificate make the verdict better."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from tests.support.aia import TIMEOUT, aia_endpoint, aia_url, chain_incomplete, leaf_only
from tests.support.deep_servers import HttpServer, http_response
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.probe.engine import check_endpoint
from certpager.probe.model import EndpointReport, Severity, Status

BROWSERS_WORK = "browsers will work (they fetch it), curl, Python and Java clients fail"
NO_PATH = "no client can build a path"


@pytest.fixture
def start(zoo: Callable[[LoopbackServer], LoopbackServer]) -> Callable[[Any], Any]:
    return zoo  # type: ignore[return-value]


def _incomplete(report: EndpointReport) -> str:
    finding = chain_incomplete(report)
    assert finding.severity == Severity.CRITICAL
    return finding.message


@pytest.mark.parametrize("fmt", ["der", "pem", "p7c"])
async def test_aia_completes_the_chain(
    fmt: str,
    pki: PKI,
    ca: Hierarchy,
    start: Callable[[Any], Any],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    aia = start(HttpServer())
    body = {
        "der": ca.intermediate.der,
        "pem": ca.intermediate.pem,
        "p7c": pkcs7.serialize_certificates([ca.intermediate.cert], Encoding.DER),
    }[fmt]
    aia.routes[f"/issuer.{fmt}"] = http_response(200, {"Content-Type": "application/pkix-cert"}, body)
    chain, key = leaf_only(pki, ca.intermediate, aia_url(aia.port, f"/issuer.{fmt}"), f"aia-{fmt}")
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    message = _incomplete(report)
    assert BROWSERS_WORK in message
    assert aia_url(aia.port, f"/issuer.{fmt}") in message
    # The verdict is unchanged: still critical, still untrusted as served.
    assert report.status is Status.CRITICAL
    assert report.backends[0].analysis is not None and not report.backends[0].analysis.trusted
    facts = report.deep.as_json()["aia"]
    assert isinstance(facts, dict)
    assert facts["state"] == "completes_chain"
    (fetched,) = facts["fetched"]
    assert fetched["format"] == {"der": "DER", "pem": "PEM", "p7c": "PKCS7"}[fmt]
    assert fetched["sha256"] == ca.intermediate.sha256
    assert len(aia.requests) == 1 and aia.requests[0].startswith(f"GET /issuer.{fmt} HTTP/1.1".encode())


async def test_aia_two_levels(
    pki: PKI, ca: Hierarchy, start: Callable[[Any], Any], serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    """leaf -> issuing CA -> intermediate -> root, the server sends the leaf only:
    the AIA of the leaf and then of the issuing CA complete the path."""
    aia = start(HttpServer())
    issuing = ca.intermediate.intermediate("Issuing CA 2", aia_ca_issuers=aia_url(aia.port, "/i1.der"))
    aia.routes["/i2.der"] = http_response(200, {}, issuing.der)
    aia.routes["/i1.der"] = http_response(200, {}, ca.intermediate.der)
    chain, key = leaf_only(pki, issuing, aia_url(aia.port, "/i2.der"), "aia-two")
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    assert BROWSERS_WORK in _incomplete(report)
    fetched = report.deep.as_json()["aia"]["fetched"]  # type: ignore[index]
    assert [f["sha256"] for f in fetched] == [issuing.sha256, ca.intermediate.sha256]


async def test_aia_cannot_complete_the_path(
    pki: PKI,
    ca: Hierarchy,
    other_ca: Hierarchy,
    start: Callable[[Any], Any],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    """The issuer is fetched but chains to a root the client does not trust."""
    aia = start(HttpServer())
    aia.routes["/other.der"] = http_response(200, {}, other_ca.intermediate.der)
    chain, key = leaf_only(pki, other_ca.intermediate, aia_url(aia.port, "/other.der"), "aia-nopath")
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    message = _incomplete(report)
    assert NO_PATH in message and BROWSERS_WORK not in message
    assert report.deep.as_json()["aia"]["state"] == "no_path"  # type: ignore[index]
    assert report.status is Status.CRITICAL


@pytest.mark.parametrize(
    ("mode", "body", "words"),
    [
        pytest.param("respond", http_response(404), "answered 404", id="404"),
        pytest.param(
            "respond", http_response(200, {}, b"<html>not a cert</html>"), "not a certificate", id="html"
        ),
        pytest.param("silent", b"", "no complete HTTP response within", id="never-answers"),
        pytest.param(
            "trickle", http_response(200, {}, b"x" * 200), "no complete HTTP response", id="trickles"
        ),
        pytest.param("flood_body", b"", "larger than 64 KiB", id="huge"),
        pytest.param("garbage", b"", "did not answer HTTP", id="garbage"),
    ],
)
async def test_aia_fetch_fails_bounded(
    mode: str,
    body: bytes,
    words: str,
    pki: PKI,
    ca: Hierarchy,
    start: Callable[[Any], Any],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    aia = start(HttpServer(mode, default=body or http_response(200), interval=0.3))
    chain, key = leaf_only(pki, ca.intermediate, aia_url(aia.port, "/issuer.der"), f"aia-{mode}")
    server = serve(chain, key)
    began = time.monotonic()
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    assert time.monotonic() - began < TIMEOUT + 1.0
    message = _incomplete(report)
    assert words in message, message
    assert NO_PATH in message
    assert report.deep.as_json()["aia"]["state"] == "fetch_failed"  # type: ignore[index]
    assert report.status is Status.CRITICAL


async def test_no_aia_url_and_switch_off(
    pki: PKI, ca: Hierarchy, start: Callable[[Any], Any], serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    chain, key = leaf_only(pki, ca.intermediate, None, "aia-none")
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    message = _incomplete(report)
    assert "names no AIA issuer URL" in message and "AIA check" not in message
    assert report.deep.as_json()["aia"]["state"] == "no_url"  # type: ignore[index]

    aia = start(HttpServer())
    aia.routes["/issuer.der"] = http_response(200, {}, ca.intermediate.der)
    chain, key = leaf_only(pki, ca.intermediate, aia_url(aia.port, "/issuer.der"), "aia-off")
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file, fetch_aia=False), now=now)
    assert "AIA check" not in _incomplete(report)
    assert "aia" not in report.deep.as_json()
    assert aia.accepted == 0


async def test_complete_chain_fetches_nothing(
    pki: PKI, ca: Hierarchy, start: Callable[[Any], Any], serve: Callable[..., TLSServer], now: dt.datetime
) -> None:
    aia = start(HttpServer())
    leaf = ca.intermediate.leaf("app.test", aia_ca_issuers=aia_url(aia.port, "/issuer.der"))
    chain, key = pki.write_chain("aia-complete", [leaf, ca.intermediate], key_of=leaf)
    server = serve(chain, key)
    report = await check_endpoint(aia_endpoint(server.port, ca.root_file), now=now)
    assert report.status is Status.OK
    assert aia.accepted == 0 and "aia" not in report.deep.as_json()
