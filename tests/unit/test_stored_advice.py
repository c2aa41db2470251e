"""One incident, one recommendation: what the stored certificate changes in the advice of
every finding about the served leaf, and what certpager could not check.

Pure: reports are built from real certificates and the real analysis
(:func:`certpager.probe.analysis.analyze_chain`'s expiry and name checks) at a chosen
time; the stored leaf is given to :func:`certpager.check.stored.comparison_of` as if read over SSH.
What is asserted is what a user reads: the check table, the JSON and the exit code.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.pebble import make_ca

from certpager.check.cli import exit_code
from certpager.check.report import encode_json, render_table
from certpager.check.stored import StoredCertError, comparison_of
from certpager.config import Endpoint, SSHTarget, StoredCert
from certpager.probe.analysis import expiry_findings, parse_cert
from certpager.probe.engine import build_report
from certpager.probe.model import (
    BackendResult,
    CertInfo,
    ChainAnalysis,
    EndpointReport,
    Handshake,
    Severity,
    Status,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CA = make_ca("Advice CA", days=3650)
HOST = "app.test"
LOCATION = "root@web1:/etc/letsencrypt/live/app.test/fullchain.pem"
RENEWAL_RUNBOOKS = {"certbot-force-renew", "certbot-dry-run"}
EXPIRY_CODES = {"cert_expired", "expires_soon", "renewal_overdue"}


def leaf(not_before: dt.datetime, not_after: dt.datetime, name: str = HOST) -> CertInfo:
    """A leaf for ``name`` valid from ``not_before`` to ``not_after``, issued by CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(CA[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(CA[1], hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return parse_cert(cert.public_bytes(Encoding.DER))


def endpoint() -> Endpoint:
    return Endpoint(
        name="app",
        host=HOST,
        ssh=SSHTarget(host="web1", user="root"),
        stored=StoredCert(kind="file", path="/etc/letsencrypt/live/app.test/fullchain.pem"),
    )


def report_serving(*leaves: CertInfo) -> EndpointReport:
    """The report the probe makes for backends serving ``leaves`` (findings from the real
    expiry analysis; the chain verifies and the name matches)."""
    ep = endpoint()
    backends = []
    for i, cert in enumerate(leaves):
        hs = Handshake(address=f"10.0.0.{i + 1}", port=443, sni=HOST, chain_der=(cert.der,))
        found = tuple(
            f.__class__(f.code, f.severity, f.message, f.hint, f.runbook, (hs.label,))
            for f in expiry_findings(cert, NOW, ep.thresholds)
        )
        analysis = ChainAnalysis((cert,), True, None, (cert,), True, cert.not_after, cert.not_after, found)
        backends.append(BackendResult(hs, analysis, found))
    return build_report(ep, backends, NOW)


def with_stored(report: EndpointReport, stored: CertInfo | StoredCertError) -> EndpointReport:
    return comparison_of(endpoint(), report, stored).apply(report)


def fresh() -> CertInfo:
    """What certbot wrote on disk 20 days ago: a 90-day certificate."""
    return leaf(NOW - 20 * DAY, NOW + 70 * DAY)


# Served leaves of a 90-day lifetime, judged at NOW, and the expiry codes they raise.
SERVED = {
    "expired": (lambda: leaf(NOW - 91 * DAY, NOW - DAY), {"cert_expired"}),
    "page": (lambda: leaf(NOW - 88 * DAY, NOW + 2 * DAY), {"expires_soon", "renewal_overdue"}),
    "warning": (lambda: leaf(NOW - 80 * DAY, NOW + 10 * DAY), {"expires_soon", "renewal_overdue"}),
    "overdue only": (lambda: leaf(NOW - 65 * DAY, NOW + 25 * DAY), {"renewal_overdue"}),
}


@pytest.mark.parametrize("case", sorted(SERVED))
def test_a_newer_stored_certificate_turns_every_expiry_finding_to_the_reload(case: str) -> None:
    make_served, codes = SERVED[case]
    served, stored = make_served(), fresh()
    before = report_serving(served)
    assert {f.code for f in before.findings} == codes
    assert {f.runbook for f in before.findings} <= RENEWAL_RUNBOOKS  # the probe alone says renew

    after = with_stored(before, stored)

    by_code = {f.code: f for f in after.findings}
    assert set(by_code) == codes | {"served_not_stored"}
    for code in codes:
        f = by_code[code]
        assert f.runbook == "nginx-reload", (code, f)
        assert f.hint.startswith("Already renewed on disk") and LOCATION in f.hint
        assert stored.serial[:16] in f.hint and "do not force a renewal" in f.hint
    if "renewal_overdue" in codes:
        message = by_code["renewal_overdue"].message
        assert "did not happen" not in message
        assert "happened on disk" in message and f"{stored.not_before:%Y-%m-%d}" in message
        assert "not reloaded" in message
    # Every place a user reads: the table, the JSON (endpoint and per-backend findings).
    table = render_table([after], now=NOW)
    document = json.loads(encode_json(after))
    runbooks = {f["runbook"] for f in document["findings"]} | {
        f["runbook"] for b in document["backends"] for f in b.get("findings", [])
    }
    for forbidden in RENEWAL_RUNBOOKS:
        assert forbidden not in table
        assert forbidden not in runbooks
    assert "(runbook: nginx-reload)" in table
    assert after.status is Status.CRITICAL or after.status is Status.PAGE


@pytest.mark.parametrize("case", sorted(SERVED))
def test_an_older_or_equal_stored_certificate_leaves_the_renewal_advice(case: str) -> None:
    make_served, codes = SERVED[case]
    served = make_served()
    older = leaf(served.not_before - 30 * DAY, served.not_after - 30 * DAY)
    for stored in (served, older):
        before = report_serving(served)
        after = with_stored(before, stored)
        expiry = [f for f in after.findings if f.code in EXPIRY_CODES]
        assert {f.code for f in expiry} == codes
        assert [(f.code, f.runbook, f.hint, f.message) for f in expiry] == [
            (f.code, f.runbook, f.hint, f.message) for f in before.findings if f.code in EXPIRY_CODES
        ]
        assert "served_not_stored" not in {f.code for f in after.findings}
        assert all(f.runbook != "nginx-reload" for f in after.findings)
    # Older: says so, and that a reload would make it worse.
    outdated = [f for f in with_stored(report_serving(served), older).findings if f.code == "stored_outdated"]
    assert len(outdated) == 1 and "reloading would make things worse" in outdated[0].message
    assert outdated[0].runbook is None and outdated[0].hint.startswith("Do not reload")


def test_a_stored_certificate_that_would_break_the_name_or_is_not_valid_is_not_advised() -> None:
    served = leaf(NOW - 80 * DAY, NOW + 10 * DAY)
    for stored, words in (
        (leaf(NOW - DAY, NOW + 89 * DAY, name="other.test"), "names do not cover app.test"),
        (leaf(NOW + DAY, NOW + 91 * DAY), "not valid until"),
    ):
        after = with_stored(report_serving(served), stored)
        codes = {f.code: f for f in after.findings}
        assert "served_not_stored" not in codes and words in codes["stored_outdated"].message
        assert codes["expires_soon"].runbook == "certbot-force-renew"


def test_stored_that_expires_soon_too_keeps_the_renewal_for_what_the_reload_does_not_fix() -> None:
    served = leaf(NOW - 88 * DAY, NOW + 2 * DAY)
    stored = leaf(NOW - 2 * DAY, NOW + 10 * DAY)  # newer, but 10 days left: still expires soon
    after = {f.code: f for f in with_stored(report_serving(served), stored).findings}
    assert after["served_not_stored"].runbook == "nginx-reload"
    assert after["expires_soon"].runbook == "certbot-force-renew"  # the stored one needs renewing too
    assert after["renewal_overdue"].runbook == "nginx-reload"  # the renewal itself did happen


def test_only_the_backends_serving_the_old_certificate_are_readvised() -> None:
    stored = fresh()
    old = leaf(NOW - 80 * DAY, NOW + 10 * DAY)
    after = with_stored(report_serving(stored, old), stored)
    soon = [f for f in after.findings if f.code == "expires_soon"]
    assert len(soon) == 1 and soon[0].backends == ("10.0.0.2:443",) and soon[0].runbook == "nginx-reload"
    sns = next(f for f in after.findings if f.code == "served_not_stored")
    assert sns.backends == ("10.0.0.2:443",)
    assert after.backends[0].findings == ()  # the new certificate is already served there


@pytest.mark.parametrize(
    ("kind", "severity", "status", "code", "hint"),
    [
        ("host_key_changed", Severity.CRITICAL, Status.CRITICAL, 2, "man-in-the-middle"),
        ("host_key_unknown", Severity.WARNING, Status.WARNING, 1, "ssh-keyscan"),
        ("timeout", Severity.WARNING, Status.WARNING, 1, "did not answer"),
        ("path", Severity.WARNING, Status.WARNING, 1, "stored.path"),
        ("not_certificate", Severity.WARNING, Status.WARNING, 1, "PEM certificate"),
    ],
)
def test_an_unreadable_stored_certificate_is_a_finding_never_ok(
    kind: str, severity: Severity, status: Status, code: int, hint: str
) -> None:
    served = leaf(NOW - 10 * DAY, NOW + 80 * DAY)  # nothing wrong with what is served
    before = report_serving(served)
    assert before.status is Status.OK
    after = with_stored(before, StoredCertError("the reason\nin two lines", kind=kind))
    (finding,) = after.findings
    assert finding.code == "stored_unreadable" and finding.severity is severity
    assert LOCATION in finding.message and "the reason in two lines" in finding.message
    assert hint in finding.hint
    assert after.status is status and exit_code([after.status]) == code
    table = render_table([after], now=NOW)
    assert table.splitlines()[1].startswith(status.value.upper())
    assert "stored_unreadable: could not read the stored certificate" in table
    document = json.loads(encode_json(after))
    assert document["stored"]["state"] == "not compared" and document["stored"]["reason"] == kind
    assert [f["code"] for f in document["findings"]] == ["stored_unreadable"]


def test_the_hint_of_an_info_finding_is_a_note_not_a_fix() -> None:
    from certpager.probe import findings as F

    ep = Endpoint(name="ledger", host=HOST)
    served = leaf(NOW - 10 * DAY, NOW + 80 * DAY)
    hs = Handshake(address="10.0.0.1", port=443, sni=HOST, chain_der=(served.der,))
    info = F.make("client_cert_required", "the server requests a client certificate (mTLS)")
    warn = F.make("hsts_missing", "no Strict-Transport-Security header")
    analysis = ChainAnalysis((served,), True, None, (served,), True, served.not_after, served.not_after, ())
    report = build_report(ep, [BackendResult(hs, analysis, (info, warn))], NOW)
    lines = render_table([report], now=NOW).splitlines()
    after_info = lines[lines.index(next(line for line in lines if "client_cert_required" in line)) + 1]
    after_warn = lines[lines.index(next(line for line in lines if "hsts_missing" in line)) + 1]
    assert after_info.strip().startswith("note: This is mTLS")
    assert after_warn.strip().startswith("fix: Send HSTS")


async def test_the_stored_read_shares_the_deadline_and_caps_the_ssh_connect_timeout() -> None:
    import asyncio

    from certpager.check.stored import read_stored

    targets: list[SSHTarget] = []

    class Silent:
        """An SSH host that never answers."""

        closed = False

        async def read_file(self, path: str, *, max_bytes: int = 0) -> bytes:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def close(self) -> None:
            self.closed = True

    silent = Silent()

    def factory(target: SSHTarget) -> Silent:
        targets.append(target)
        return silent

    ep = endpoint()
    assert ep.ssh is not None and ep.ssh.connect_timeout == 10.0
    loop = asyncio.get_running_loop()
    result = await read_stored(ep, runner_factory=factory, deadline=loop.time() + 0.5)  # type: ignore[arg-type]
    assert isinstance(result, StoredCertError) and result.kind == "timeout"
    assert "timed out" in str(result)
    assert targets[0].connect_timeout <= 0.5 and silent.closed
