"""certpager.check.stored without a network: PEM parsing, the pure comparison, the Kubernetes secret
path through a FakeRunner, and errors that never raise."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from tests.support.pebble import make_ca, make_leaf, pem

from certpager.check.stored import StoredCertError, compare, compare_stored, first_certificate
from certpager.config import Endpoint, SSHTarget, StoredCert
from certpager.probe.analysis import parse_cert
from certpager.probe.model import BackendResult, ChainAnalysis, EndpointReport, Handshake, Status
from certpager.ssh import FakeResponse, FakeRunner

CA = make_ca("Unit CA")


def leaf_pem(days: float) -> bytes:
    cert, _ = make_leaf(CA, ["app.test"], days=days)
    return pem(cert)


def report_serving(*pems: bytes) -> EndpointReport:
    backends = []
    for i, data in enumerate(pems):
        info = first_certificate(data, "served")
        hs = Handshake(address=f"10.0.0.{i + 1}", port=443, sni="app.test", chain_der=(info.der,))
        analysis = ChainAnalysis((info,), True, None, (info,), True, info.not_after, info.not_after, ())
        backends.append(BackendResult(hs, analysis, ()))
    return EndpointReport(
        "app", "app.test", 443, "app.test", Status.OK, (), tuple(backends), dt.datetime.now(dt.UTC)
    )


def endpoint(stored: StoredCert | None) -> Endpoint:
    return Endpoint(name="app", host="app.test", ssh=SSHTarget(host="web1", user="root"), stored=stored)


def test_first_certificate_of_a_chain_pem_and_der() -> None:
    leaf = leaf_pem(30)
    chain = leaf + pem(CA[0])
    assert first_certificate(chain, "x").subject == "CN=app.test"
    der = first_certificate(leaf, "x").der
    assert first_certificate(der, "x").der == der
    with pytest.raises(StoredCertError, match="no PEM certificate"):
        first_certificate(b"hello", "web1:/x.pem")
    key = make_leaf(CA, ["a.test"], days=1)[1].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(StoredCertError, match="no PEM certificate"):
        first_certificate(key, "web1:/key.pem")


def test_compare_flags_only_the_differing_backends() -> None:
    old, new = leaf_pem(2), leaf_pem(90)
    stored = first_certificate(new, "stored")
    result = compare(
        endpoint(StoredCert(kind="file", path="/etc/ssl/app.pem")), report_serving(new, old), stored
    )
    assert result.differing == ("10.0.0.2:443",)
    assert result.finding is not None and result.finding.backends == ("10.0.0.2:443",)
    assert "root@web1:/etc/ssl/app.pem" in result.finding.message and "newer" in result.finding.message
    assert "1 of 2" not in result.finding.message
    same = compare(endpoint(StoredCert(kind="file", path="/x")), report_serving(new, new), stored)
    assert same.finding is None and same.differing == ()


async def test_kubernetes_secret_is_read_with_kubectl_on_the_target() -> None:
    new = leaf_pem(90)
    encoded = base64.b64encode(new + pem(CA[0])).decode()
    runner = FakeRunner({"kubectl get secret": FakeResponse(stdout=encoded + "\n")})
    ep = endpoint(StoredCert(kind="secret", namespace="web", secret="app-tls"))
    result = await compare_stored(ep, report_serving(leaf_pem(2)), runner=runner)
    assert runner.commands == ["kubectl get secret -n web -o 'jsonpath={.data.tls\\.crt}' -- app-tls"]
    assert result.finding is not None and "secret web/app-tls" in result.finding.message
    assert not runner.closed  # a runner passed in is the caller's to close


async def test_errors_are_reported_not_raised() -> None:
    runner = FakeRunner({"kubectl": FakeResponse(exit_status=1, stderr="forbidden")})
    ep = endpoint(StoredCert(kind="secret", namespace="web", secret="app-tls"))
    result = await compare_stored(ep, report_serving(leaf_pem(2)), runner=runner)
    assert result.error is not None and "kubectl get secret failed" in result.error
    assert result.finding is not None and result.finding.code == "stored_unreadable"
    assert result.error_kind == "kubectl" and "kubectl get secret failed" in result.finding.message
    missing = await compare_stored(
        endpoint(StoredCert(kind="file", path="/nope")), report_serving(leaf_pem(2)), runner=FakeRunner()
    )
    assert missing.error is not None and "no such file" in missing.error and missing.error_kind == "path"
    assert missing.finding is not None and "root@web1:/nope" in missing.finding.message
    own = FakeRunner(files={"/x.pem": leaf_pem(2)})
    made = await compare_stored(
        endpoint(StoredCert(kind="file", path="/x.pem")),
        report_serving(leaf_pem(2)),
        runner_factory=lambda t: own,
    )
    assert made.finding is not None and own.closed
    assert parse_cert(made.stored.der).serial == made.stored.serial  # type: ignore[union-attr]
