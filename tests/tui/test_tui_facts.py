"""Which deep-check facts the detail screen shows, and how they read (no app)."""

from __future__ import annotations

from certpager.tui.facts import backend_facts, endpoint_facts


def test_curated_lines_with_tones() -> None:
    extra = {
        "redirect": {
            "state": "no_redirect",
            "port": 80,
            "status": 200,
            "detail": "it answers 200 over plain HTTP",
        },
        "hsts": {"state": "missing", "detail": "no Strict-Transport-Security header"},
        "protocols": {
            "TLSv1": "accepted",
            "TLSv1.1": "refused",
            "TLSv1.3": "accepted",
            "SSLv3": "not_testable",
        },
        "no_sni": {
            "state": "differs",
            "certificate": {"subject": "CN=default", "not_after": "2027-01-01T00:00:00Z"},
        },
        "client_auth": "not_requested",
        "client_ca_names": [],
        "backends_agree": False,
        "spki_pins": [{"role": "leaf"}],
        "certificates_served": [],
        "aia": {"state": "completes_chain", "detail": None},
        "deep_checks_error": "RuntimeError: boom",
        "something_new": {"a": 1, "b": [True, None]},
    }
    facts = [(f.label, f.value, f.tone) for f in endpoint_facts(extra)]
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
    assert ("something new", "a 1 · b yes, —", "muted") in facts
    labels = [label for label, _, _ in facts]
    assert "mTLS" not in labels and "spki pins" not in labels and "certificates served" not in labels


def test_mtls_and_weak_cipher_per_backend() -> None:
    facts = backend_facts(
        {
            "client_auth": "rejected",
            "client_ca_names": ["CN=Client CA"],
            "cipher_check": {
                "negotiated": "AES128-SHA",
                "negotiated_weaknesses": ["no forward secrecy"],
                "static_rsa": "accepted",
            },
            "protocols_error": "timeout",
        }
    )
    assert [(f.label, f.tone) for f in facts] == [
        ("mTLS", "critical"),
        ("cipher", "warning"),
        ("cipher", "warning"),
        ("protocols error", "warning"),
    ]
    assert (
        backend_facts({"client_auth": "not_requested", "cipher_check": {"negotiated_weaknesses": []}}) == []
    )


def test_mtls_is_one_coherent_line_without_dashes() -> None:
    # What the ledger drill's deeper checks report: the server sent one CA name, the
    # configured client certificate was accepted, the HTTPS request with it answered 200.
    extra = {
        "client_auth": "accepted",
        "client_ca_names": ["CN=Client CA"],
        "client_auth_http": {"status": 200, "verdict": None, "detail": None},
    }
    facts = endpoint_facts(extra)
    assert [(f.label, f.value, f.tone) for f in facts] == [
        ("mTLS", "required, and the configured client certificate is accepted (HTTPS answered 200)", "muted")
    ]
    per_backend = backend_facts({"client_auth": "accepted"})
    assert [(f.label, f.value) for f in per_backend] == [
        ("mTLS", "required, and the configured client certificate is accepted")
    ]
    # The accepted CA names live in the client_cert_required finding only: no fact line
    # says "any CA" beside a finding that names the CA, and none is a row of dashes.
    for fact in [*facts, *per_backend]:
        assert "any CA" not in fact.value and "CN=Client CA" not in fact.value and "—" not in fact.value
    refused = endpoint_facts(
        {
            "client_auth": "rejected",
            "client_auth_http": {
                "status": 400,
                "verdict": "rejected",
                "detail": "No required SSL certificate",
            },
        }
    )
    assert [(f.value, f.tone) for f in refused] == [
        (
            "the server refuses the configured client certificate (HTTPS answered 400: No required SSL "
            "certificate)",
            "critical",
        )
    ]
