"""The catalogue of finding codes: default severity, plain-words title, fix hint, runbook.

One map from code to spec; analysis code builds findings with :func:`make`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from certpager.probe.model import Finding, Severity


@dataclass(frozen=True)
class FindingSpec:
    """What a finding code means."""

    code: str
    """Stable code."""
    severity: Severity
    """Default severity."""
    title: str
    """Short title."""
    hint: str
    """How to fix it, in plain words."""
    runbook: str | None = None
    """Runbook that fixes it, if any."""


_RENEW = "certbot-force-renew"
_RELOAD = "nginx-reload"
RELOAD_RUNBOOK = _RELOAD
"""The runbook that makes the server load what is on disk."""

SPECS: dict[str, FindingSpec] = {
    s.code: s
    for s in [
        FindingSpec(
            "cert_expired",
            Severity.PAGE,
            "certificate expired",
            "Renew the certificate now and reload the server.",
            _RENEW,
        ),
        FindingSpec(
            "cert_not_yet_valid",
            Severity.CRITICAL,
            "certificate not yet valid",
            "Check the server clock and the issuer; re-issue with a valid notBefore.",
        ),
        FindingSpec(
            "expires_soon",
            Severity.WARNING,
            "certificate expires soon",
            "Renew the certificate and reload the server; find out why automation did not.",
            _RENEW,
        ),
        FindingSpec(
            "renewal_overdue",
            Severity.WARNING,
            "renewal overdue",
            "Less than a third of the lifetime is left: certbot/cert-manager should already "
            "have renewed it. Check the renewal timer and run a renewal dry-run.",
            "certbot-dry-run",
        ),
        FindingSpec(
            "chain_expires_before_leaf",
            Severity.WARNING,
            "chain expires before the leaf",
            "Serve a chain whose intermediates outlive the leaf (fetch the current "
            "intermediate from the CA).",
        ),
        FindingSpec(
            "chain_cert_expired",
            Severity.PAGE,
            "certificate in the chain expired",
            "An expired intermediate or root breaks every client: serve the CA's current "
            "intermediate (fullchain.pem) and reload.",
            _RELOAD,
        ),
        FindingSpec(
            "hostname_mismatch",
            Severity.CRITICAL,
            "name not in the certificate",
            "Issue a certificate whose subjectAltName covers this name, or fix the SNI/vhost routing.",
        ),
        FindingSpec(
            "untrusted_root",
            Severity.CRITICAL,
            "chain does not reach a trusted root",
            "Use a certificate from a trusted CA, or set ca_file to your internal CA bundle.",
        ),
        FindingSpec(
            "self_signed",
            Severity.CRITICAL,
            "self-signed certificate",
            "Replace it with a CA-issued certificate, or trust it explicitly with ca_file.",
        ),
        FindingSpec(
            "chain_incomplete",
            Severity.CRITICAL,
            "intermediate certificate missing",
            "Serve the full chain (e.g. ssl_certificate fullchain.pem, not cert.pem) and reload.",
            _RELOAD,
        ),
        FindingSpec(
            "chain_invalid",
            Severity.CRITICAL,
            "chain fails verification",
            "The certificate path is broken (bad signature, not a CA, wrong purpose): "
            "re-issue or serve the correct chain.",
        ),
        FindingSpec(
            "chain_wrong_order",
            Severity.WARNING,
            "chain sent out of order",
            "Order the file leaf first, then each issuer (fullchain.pem order).",
        ),
        FindingSpec(
            "chain_extra_cert",
            Severity.INFO,
            "extra certificates sent",
            "Remove unrelated or duplicate certificates from the chain file.",
        ),
        FindingSpec(
            "chain_root_sent",
            Severity.INFO,
            "root certificate sent",
            "Clients already have the root; leaving it out saves bytes on every handshake.",
        ),
        FindingSpec("weak_key", Severity.WARNING, "weak key", "Re-issue with RSA 2048+ or EC P-256+."),
        FindingSpec(
            "weak_signature",
            Severity.WARNING,
            "weak signature algorithm",
            "Re-issue: SHA-1 and MD5 signatures are rejected by modern clients.",
        ),
        FindingSpec(
            "tls1_0_enabled",
            Severity.WARNING,
            "TLS 1.0 accepted",
            "Disable it: ssl_protocols TLSv1.2 TLSv1.3; then reload.",
            _RELOAD,
        ),
        FindingSpec(
            "tls1_1_enabled",
            Severity.WARNING,
            "TLS 1.1 accepted",
            "Disable it: ssl_protocols TLSv1.2 TLSv1.3; then reload.",
            _RELOAD,
        ),
        FindingSpec(
            "sslv3_enabled",
            Severity.CRITICAL,
            "SSLv3 accepted",
            "Disable SSLv3 now (POODLE): ssl_protocols TLSv1.2 TLSv1.3; then reload.",
            _RELOAD,
        ),
        FindingSpec(
            "no_tls1_3",
            Severity.INFO,
            "TLS 1.3 not offered",
            "Enable TLS 1.3 (ssl_protocols TLSv1.2 TLSv1.3) for faster, safer handshakes.",
        ),
        FindingSpec(
            "weak_cipher",
            Severity.WARNING,
            "weak cipher suite accepted",
            "Allow only ECDHE suites with AES-GCM or ChaCha20-Poly1305 (Mozilla intermediate profile), "
            "e.g. nginx: ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
            "ECDHE-RSA-CHACHA20-POLY1305; then reload.",
        ),
        FindingSpec(
            "no_https_redirect",
            Severity.WARNING,
            "HTTP not redirected to HTTPS",
            "Answer plain HTTP with 301 to https:// on the same host, e.g. nginx: server { listen 80; "
            "return 301 https://$host$request_uri; } then reload.",
        ),
        FindingSpec(
            "hsts_missing",
            Severity.WARNING,
            "no HSTS header",
            "Send HSTS on every HTTPS response, e.g. nginx: add_header Strict-Transport-Security "
            '"max-age=63072000; includeSubDomains" always; then reload.',
        ),
        FindingSpec(
            "hsts_short",
            Severity.WARNING,
            "HSTS max-age too short",
            "Raise Strict-Transport-Security max-age to at least 180 days, e.g. nginx: add_header "
            'Strict-Transport-Security "max-age=63072000; includeSubDomains" always; (2 years).',
        ),
        FindingSpec(
            "http_check_failed",
            Severity.INFO,
            "HTTP check inconclusive",
            "The port accepted a connection but gave no usable HTTP answer: check what listens "
            "there (a non-HTTP service, a proxy that hangs, a client certificate requirement).",
        ),
        FindingSpec(
            "client_cert_required",
            Severity.INFO,
            "server requests a client certificate",
            "This is mTLS: clients must present a certificate from one of the accepted CAs.",
        ),
        FindingSpec(
            "client_cert_rejected",
            Severity.CRITICAL,
            "client certificate rejected",
            "The server refused the configured client certificate: check that it is "
            "issued by an accepted CA and not expired.",
        ),
        FindingSpec(
            "served_not_stored",
            Severity.CRITICAL,
            "renewed but not reloaded",
            "The certificate on disk differs from the one served: reload the server.",
            _RELOAD,
        ),
        FindingSpec(
            "stored_outdated",
            Severity.WARNING,
            "stored certificate is no better than the served one",
            "Do not reload: the server would then serve the stored certificate. Check that "
            "stored.path names the file the server loads (certbot: live/<name>/fullchain.pem) "
            "and where the last renewal wrote its certificate.",
        ),
        FindingSpec(
            "stored_unreadable",
            Severity.WARNING,
            "stored certificate could not be checked",
            "Check the endpoint's ssh settings and stored.path; until the stored certificate can "
            "be read, a renewal that was not reloaded goes unnoticed.",
        ),
        FindingSpec(
            "backends_disagree",
            Severity.CRITICAL,
            "backends serve different certificates",
            "Deploy the same certificate to every backend and reload each one.",
        ),
        FindingSpec(
            "pin_mismatch",
            Severity.CRITICAL,
            "served key matches no pin",
            "Pinned clients will refuse this key: restore the pinned key or roll out the "
            "new pin to clients first.",
        ),
        FindingSpec(
            "pin_rotation_risk",
            Severity.INFO,
            "pin breaks on a key change",
            "The configured pins match only the leaf key: a renewal that makes a new key "
            "(certbot's default) breaks pinned clients. Add a backup pin (the intermediate's key "
            "or a spare key's) to clients first, or renew with --reuse-key.",
        ),
        FindingSpec(
            "no_sni_cert_differs",
            Severity.INFO,
            "different certificate without SNI",
            "Clients that send no SNI see another certificate; set the default server's "
            "certificate if old clients matter.",
        ),
        FindingSpec(
            "dns_error",
            Severity.ERROR,
            "name does not resolve",
            "Check the DNS name and the resolver.",
        ),
        FindingSpec(
            "connect_refused",
            Severity.ERROR,
            "connection refused",
            "Nothing listens on this port: is the server running?",
        ),
        FindingSpec(
            "connect_failed",
            Severity.ERROR,
            "cannot connect",
            "The TCP connection failed before TLS started (reset, or host or network unreachable): "
            "check that the server is up and the network path to it.",
        ),
        FindingSpec(
            "connect_timeout",
            Severity.ERROR,
            "connect timed out",
            "The host does not answer: check it is up and the firewall.",
        ),
        FindingSpec(
            "handshake_timeout",
            Severity.ERROR,
            "TLS handshake timed out",
            "The port accepts connections but does not complete TLS: is it really TLS?",
        ),
        FindingSpec(
            "handshake_failed",
            Severity.ERROR,
            "TLS handshake failed",
            "See the TLS alert: protocol/cipher mismatch, a non-TLS service, or a broken "
            "server configuration.",
        ),
    ]
}

ERROR_CODES = frozenset(
    {
        "dns_error",
        "connect_refused",
        "connect_failed",
        "connect_timeout",
        "handshake_timeout",
        "handshake_failed",
    }
)


INFO_LABEL = "note"
"""What the hint of an info finding is called (it is context, not a fix)."""
FIX_LABEL = "fix"
"""What the hint of a finding worse than info is called."""


def hint_label(finding: Finding) -> str:
    """``fix`` for a finding that needs one, ``note`` for an info finding (nothing to fix)."""
    return INFO_LABEL if finding.severity == Severity.INFO else FIX_LABEL


def readvise(finding: Finding, *, hint: str, runbook: str | None, message: str | None = None) -> Finding:
    """``finding`` with other advice (and, when given, another message); code, severity
    and backends unchanged. Used when a fact outside the finding's own check (the stored
    certificate) changes what fixes it."""
    return replace(
        finding, hint=hint, runbook=runbook, message=finding.message if message is None else message
    )


def make(
    code: str,
    message: str,
    *,
    severity: Severity | None = None,
    hint: str | None = None,
    backends: tuple[str, ...] = (),
) -> Finding:
    """Build a finding of ``code`` with the catalogue's defaults."""
    spec = SPECS[code]
    return Finding(
        code=code,
        severity=spec.severity if severity is None else severity,
        message=message,
        hint=spec.hint if hint is None else hint,
        runbook=spec.runbook,
        backends=backends,
    )
