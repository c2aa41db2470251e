"""Which deep-check facts the detail screen shows, and how they read (no app)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from certpager.probe.aia import AiaResult
from certpager.probe.http import HstsResult, RedirectResult
from certpager.probe.model import (
    BackendFacts,
    BackendsResult,
    CertInfo,
    ClientAuthHttp,
    ClientAuthResult,
    EndpointClientAuth,
    EndpointFacts,
    HttpResult,
    NoSniResult,
    ProtocolsResult,
)
from certpager.probe.protocols import ProtocolReport
from certpager.tui.facts import backend_facts, endpoint_facts

_WHEN = datetime(2027, 1, 1, tzinfo=UTC)
DEFAULT_CERT = CertInfo(
    subject="CN=default",
    issuer="CN=CA",
    serial="01",
    not_before=_WHEN,
    not_after=_WHEN,
    sha256="00" * 32,
    spki_pin="sha256/x",
    key_type="EC",
    key_bits=256,
    key_desc="EC P-256",
    signature_algorithm="ecdsa-with-SHA256",
    signature_hash="sha256",
    sans=("default.test",),
    common_name="default",
    is_ca=False,
    self_issued=False,
    self_signed=False,
    ca_issuers=(),
    der=b"",
)


def test_curated_lines_with_tones() -> None:
    deep = EndpointFacts(
        client_auth=EndpointClientAuth("not_requested"),
        backends=BackendsResult(agree=False, served=()),
        spki_pins=(),
        protocols=ProtocolsResult(
            {"TLSv1": "accepted", "TLSv1.1": "refused", "TLSv1.3": "accepted", "SSLv3": "not_testable"}
        ),
        no_sni=NoSniResult("differs", cert=DEFAULT_CERT),
        http=HttpResult(
            redirect=RedirectResult("no_redirect", 80, status=200, detail="it answers 200 over plain HTTP"),
            hsts=HstsResult("missing", detail="no Strict-Transport-Security header"),
        ),
        aia=AiaResult("completes_chain"),
        error="RuntimeError: boom",
    )
    facts = [(f.label, f.value, f.tone) for f in endpoint_facts(deep)]
    assert ("HTTP", "it answers 200 over plain HTTP", "warning") in facts
    assert ("HSTS", "no Strict-Transport-Security header", "warning") in facts
    assert ("protocols", "accepts TLSv1, TLSv1.3 · refuses TLSv1.1 · cannot test SSLv3", "warning") in facts
    assert (
        "without SNI",
        "another certificate: CN=default, expires 2027-01-01T00:00:00Z",
        "warning",
    ) in facts
    assert ("backends", "serve different certificates (see the chain branches)", "critical") in facts
    assert any(label == "AIA" and "browsers work" in value for label, value, _ in facts)
    assert ("deep checks error", "RuntimeError: boom", "warning") in facts
    labels = [label for label, _, _ in facts]
    assert "mTLS" not in labels and "spki pins" not in labels and "certificates served" not in labels


def test_mtls_and_weak_cipher_per_backend() -> None:
    weak = ProtocolReport(
        versions={},
        negotiated="AES128-SHA",
        negotiated_weaknesses=("no forward secrecy",),
        static_rsa="accepted",
    )
    facts = backend_facts(BackendFacts(client_auth=ClientAuthResult("rejected"), protocols=weak))
    assert [(f.label, f.tone) for f in facts] == [
        ("mTLS", "critical"),
        ("cipher", "warning"),
        ("cipher", "warning"),
    ]
    modern = dataclasses.replace(weak, negotiated_weaknesses=(), static_rsa="refused")
    assert backend_facts(BackendFacts(client_auth=ClientAuthResult("not_requested"), protocols=modern)) == []


def test_mtls_is_one_coherent_line_without_dashes() -> None:
    # What the ledger drill's deeper checks report: the server sent one CA name, the
    # configured client certificate was accepted, the HTTPS request with it answered 200.
    deep = EndpointFacts(
        client_auth=EndpointClientAuth("accepted", ("CN=Client CA",)),
        http=HttpResult(client_auth=ClientAuthHttp(status=200, verdict=None, detail=None)),
    )
    facts = endpoint_facts(deep)
    assert [(f.label, f.value, f.tone) for f in facts] == [
        ("mTLS", "required, and the configured client certificate is accepted (HTTPS answered 200)", "muted")
    ]
    per_backend = backend_facts(BackendFacts(client_auth=ClientAuthResult("accepted")))
    assert [(f.label, f.value) for f in per_backend] == [
        ("mTLS", "required, and the configured client certificate is accepted")
    ]
    # The accepted CA names live in the client_cert_required finding only: no fact line
    # says "any CA" beside a finding that names the CA, and none is a row of dashes.
    for fact in [*facts, *per_backend]:
        assert "any CA" not in fact.value and "CN=Client CA" not in fact.value and "—" not in fact.value
    refused = endpoint_facts(
        EndpointFacts(
            client_auth=EndpointClientAuth("rejected"),
            http=HttpResult(
                client_auth=ClientAuthHttp(
                    status=400, verdict="rejected", detail="No required SSL certificate"
                )
            ),
        )
    )
    assert [(f.value, f.tone) for f in refused] == [
        (
            "the server refuses the configured client certificate (HTTPS answered 400: No required SSL "
            "certificate)",
            "critical",
        )
    ]
