"""Backends that disagree, SPKI pins, and the certificate served without SNI."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy, Issued
from tests.support.tls_server import TLSServer

from certpager.config import Backend, Endpoint
from certpager.formats import format_serial
from certpager.lab.ports import free_port
from certpager.probe.engine import check_endpoint
from certpager.probe.model import EndpointReport, Severity, Status


def pin_of(cert: Issued) -> str:
    """HPKP-style pin, computed here independently of certpager."""
    spki = cert.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def openssl_pin(pem: bytes) -> str:
    """``openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256 | base64``."""
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True, check=True)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub.stdout, capture_output=True, check=True
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(der.stdout).digest()).decode()


def _endpoint(port: int, ca: Hierarchy, **kw: object) -> Endpoint:
    kw.setdefault("check_protocols", False)
    kw.setdefault("check_no_sni", False)
    return Endpoint(
        name="ep",
        host="127.0.0.1",
        port=port,
        sni="app.test",
        ca_file=str(ca.root_file),
        timeout=5.0,
        **kw,  # type: ignore[arg-type]
    )


def _codes(report: EndpointReport) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


@pytest.fixture(scope="module")
def leaves(pki: PKI, ca: Hierarchy) -> dict[str, tuple[Issued, Path, Path]]:
    old = ca.leaf("app.test", not_before=-60, not_after=30)
    new = ca.leaf("app.test", not_before=-1, not_after=89)
    out = {}
    for name, leaf in (("old", old), ("new", new)):
        chain, key = pki.write_chain(f"backends-{name}", [leaf, ca.intermediate], key_of=leaf)
        out[name] = (leaf, chain, key)
    return out


# --- backends ---------------------------------------------------------------------------------


async def test_backends_disagree(
    leaves: dict[str, tuple[Issued, Path, Path]],
    ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    stale = serve(*leaves["old"][1:])
    fresh = serve(*leaves["new"][1:])
    ep = _endpoint(
        stale.port, ca, backends=(Backend("127.0.0.1", fresh.port), Backend("127.0.0.1", stale.port))
    )
    report = await check_endpoint(ep, now=now)
    assert _codes(report)["backends_disagree"] == Severity.CRITICAL
    assert report.status is Status.CRITICAL
    (finding,) = [f for f in report.findings if f.code == "backends_disagree"]
    assert finding.backends == (f"127.0.0.1:{stale.port}",)
    assert "still serves the oldest one" in finding.message
    assert format_serial(leaves["old"][0].cert.serial_number) in finding.message
    assert report.deep.as_json()["backends_agree"] is False
    served = report.deep.as_json()["certificates_served"]
    assert isinstance(served, list) and len(served) == 2
    assert {s["sha256"] for s in served} == {leaves["old"][0].sha256, leaves["new"][0].sha256}
    # Every backend is shown with its own leaf.
    assert [b.analysis.leaf.sha256 for b in report.backends if b.analysis and b.analysis.leaf] == [
        leaves["new"][0].sha256,
        leaves["old"][0].sha256,
    ]


async def test_backends_agree(
    leaves: dict[str, tuple[Issued, Path, Path]],
    ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    a = serve(*leaves["new"][1:])
    b = serve(*leaves["new"][1:])
    ep = _endpoint(a.port, ca, backends=(Backend("127.0.0.1", a.port), Backend("127.0.0.1", b.port)))
    report = await check_endpoint(ep, now=now)
    assert "backends_disagree" not in _codes(report)
    assert report.deep.as_json()["backends_agree"] is True
    assert report.status is Status.OK


# --- pins -------------------------------------------------------------------------------------


async def test_pins(
    leaves: dict[str, tuple[Issued, Path, Path]],
    ca: Hierarchy,
    other_ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    leaf, chain, key = leaves["new"]
    server = serve(chain, key)

    # Pinning the intermediate's key: matches, survives a leaf key change.
    report = await check_endpoint(_endpoint(server.port, ca, pins=(pin_of(ca.intermediate),)), now=now)
    assert not {"pin_mismatch", "pin_rotation_risk"} & set(_codes(report))
    assert report.status is Status.OK
    facts = report.backends[0].deep.as_json()["pins"]
    assert isinstance(facts, dict) and facts["state"] == "match"
    assert facts["matched"][0]["role"] == "intermediate"

    # Pinning only the leaf: matches, but a renewal with a new key breaks it.
    report = await check_endpoint(_endpoint(server.port, ca, pins=(pin_of(leaf),)), now=now)
    codes = _codes(report)
    assert codes == {"pin_rotation_risk": Severity.INFO}
    assert pin_of(ca.intermediate) in report.findings[0].message  # the backup pin to add

    # Pinning keys the server does not use: critical.
    report = await check_endpoint(
        _endpoint(server.port, ca, pins=(pin_of(other_ca.intermediate), pin_of(other_ca.root))), now=now
    )
    assert _codes(report)["pin_mismatch"] == Severity.CRITICAL
    assert report.status is Status.CRITICAL
    assert pin_of(leaf) in report.findings[0].message

    # The root from the trust store counts too (HPKP: any key of the validated path).
    report = await check_endpoint(_endpoint(server.port, ca, pins=(pin_of(ca.root),)), now=now)
    assert "pin_mismatch" not in _codes(report)


async def test_spki_pin_of_every_certificate_in_json(
    leaves: dict[str, tuple[Issued, Path, Path]],
    ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    leaf, chain, key = leaves["new"]
    server = serve(chain, key)
    report = await check_endpoint(_endpoint(server.port, ca), now=now)
    pins = report.deep.as_json()["spki_pins"]
    assert isinstance(pins, list)
    assert [(p["role"], p["spki_pin"], p["sent"]) for p in pins] == [
        ("leaf", pin_of(leaf), True),
        ("intermediate", pin_of(ca.intermediate), True),
        ("root", pin_of(ca.root), False),
    ]
    # Cross-check one pin with the openssl recipe users copy from HPKP guides.
    assert pins[0]["spki_pin"] == openssl_pin(leaf.pem)


# --- no SNI -----------------------------------------------------------------------------------


async def test_no_sni_same_certificate(
    leaves: dict[str, tuple[Issued, Path, Path]],
    ca: Hierarchy,
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    server = serve(*leaves["new"][1:])
    report = await check_endpoint(_endpoint(server.port, ca, check_no_sni=True), now=now)
    assert "no_sni_cert_differs" not in _codes(report)
    facts = report.deep.as_json()["no_sni"]
    assert isinstance(facts, dict) and facts["state"] == "same"
    assert facts["certificate"]["sha256"] == leaves["new"][0].sha256


@pytest.mark.nginx
async def test_no_sni_differs_on_nginx(
    pki: PKI,
    ca: Hierarchy,
    leaves: dict[str, tuple[Issued, Path, Path]],
    nginx_factory: Callable[[list[Site]], Nginx],
    now: dt.datetime,
) -> None:
    """nginx with a default server (an old catch-all certificate) and the named vhost
    on one port: clients without SNI get the default one."""
    default = pki.self_signed("default.invalid", not_after=5)
    d_chain, d_key = pki.write_chain("nginx-nosni-default", [default], key_of=default)
    port = free_port()
    _leaf, chain, key = leaves["new"]
    server = nginx_factory(
        [
            Site("catchall", d_chain, d_key, server_name="_", default_server=True, port=port),
            Site("app", chain, key, server_name="app.test", port=port),
            Site("solo", chain, key, server_name="app.test"),
        ]
    )
    report = await check_endpoint(_endpoint(port, ca, check_no_sni=True), now=now)
    assert report.status is Status.OK
    assert _codes(report) == {"no_sni_cert_differs": Severity.INFO}
    message = report.findings[0].message
    assert "default.invalid" in message and "does not cover app.test" in message
    facts = report.deep.as_json()["no_sni"]
    assert isinstance(facts, dict) and facts["state"] == "differs"
    assert facts["certificate"]["sha256"] == default.sha256

    # The same nginx, a port whose only server is the named one: nothing to report.
    report = await check_endpoint(_endpoint(server.port("solo"), ca, check_no_sni=True), now=now)
    assert "no_sni_cert_differs" not in _codes(report)
    assert report.deep.as_json()["no_sni"]["state"] == "same"  # type: ignore[index]


@pytest.mark.nginx
async def test_no_sni_refused_is_a_fact(
    ca: Hierarchy,
    leaves: dict[str, tuple[Issued, Path, Path]],
    nginx_factory: Callable[[list[Site]], Nginx],
    now: dt.datetime,
) -> None:
    """``ssl_reject_handshake on`` in the default server: no certificate without SNI (good)."""
    port = free_port()
    _leaf, chain, key = leaves["new"]
    nginx_factory(
        [
            Site(
                "reject",
                chain,
                key,
                server_name="_",
                default_server=True,
                port=port,
                extra="ssl_reject_handshake on;",
            ),
            Site("app", chain, key, server_name="app.test", port=port),
        ]
    )
    report = await check_endpoint(_endpoint(port, ca, check_no_sni=True), now=now)
    assert report.status is Status.OK and "no_sni_cert_differs" not in _codes(report)
    assert report.deep.as_json()["no_sni"]["state"] == "refused"  # type: ignore[index]
