"""Each planted incident of the fire-drill lab shows its finding through the real
``certpager check --config <lab config> --json`` (a subprocess), and nothing else
turns the healthy ones red."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.demo.support import check_json, running_lab

from certpager.demo.info import LabInfo
from certpager.demo.scenarios import SCENARIOS, Scenario


@pytest.fixture(scope="module")
def lab() -> Iterator[LabInfo]:
    """One lab for the module (read-only tests)."""
    with running_lab() as (_proc, info):
        yield info


@pytest.fixture(scope="module")
def reports(lab: LabInfo) -> dict[str, dict[str, Any]]:
    """The lab checked once through the CLI."""
    return check_json(lab.config)


def _codes(report: dict[str, Any]) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in report["findings"]}


def test_every_scenario_is_in_the_config(reports: dict[str, dict[str, Any]]) -> None:
    assert list(reports) == [s.name for s in SCENARIOS]


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_scenario_shows_its_planted_finding(sc: Scenario, reports: dict[str, dict[str, Any]]) -> None:
    report = reports[sc.name]
    codes = _codes(report)
    missing = [c for c in sc.planted if c not in codes]
    assert not missing, f"{sc.name}: planted {missing} not reported; got {codes}"
    assert report["status"] == sc.status, f"{sc.name}: {report['status']} with {codes}"


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_no_unplanted_problem(sc: Scenario, reports: dict[str, dict[str, Any]]) -> None:
    """Only what is planted (and what it implies) is reported above info level."""
    implied = {
        # A 2-day-old renewal that never ran is also overdue; the stale served
        # certificate in 'auth' is 12 days from expiry.
        "api": {"renewal_overdue"},
        "auth": {"expires_soon", "renewal_overdue"},
        "legacy": {"tls1_1_enabled"},
    }.get(sc.name, set())
    serious = {c for c, sev in _codes(reports[sc.name]).items() if sev != "info"}
    unexpected = serious - set(sc.planted) - implied
    assert not unexpected, f"{sc.name}: unexpected findings {unexpected}"


def test_page_is_the_expiring_one(reports: dict[str, dict[str, Any]]) -> None:
    pages = [name for name, r in reports.items() if r["status"] == "page"]
    assert pages == ["api"]
    api = reports["api"]
    assert 1.5 < api["days_left"] < 2.5
    lifetime = api["chain"][0]
    assert (
        lifetime["issuer"].endswith("certpager Drill Intermediate CA R1")
        or "Drill Intermediate" in lifetime["issuer"]
    )


def test_missing_intermediate_is_explained(reports: dict[str, dict[str, Any]]) -> None:
    partners = reports["partners"]
    assert len(partners["chain"]) == 1
    finding = next(f for f in partners["findings"] if f["code"] == "chain_incomplete")
    assert "intermediate" in finding["message"]


def test_tls10_really_negotiates(lab: LabInfo) -> None:
    """The legacy site accepts a TLS 1.0 handshake for real (not just claims to)."""
    import socket
    import ssl
    import warnings

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    port = lab.endpoint_ports["legacy"]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="legacy.drill.test") as tls,
    ):
        assert tls.version() == "TLSv1"
    shop = lab.endpoint_ports["shop"]
    with socket.create_connection(("127.0.0.1", shop), timeout=10) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="shop.drill.test").close()


def test_mtls_client_cert_is_accepted(reports: dict[str, dict[str, Any]]) -> None:
    codes = _codes(reports["ledger"])
    assert codes.get("client_cert_required") == "info"
    assert "client_cert_rejected" not in codes
    # Like nginx's ssl_client_certificate, the server names the client CAs it accepts.
    message = next(f["message"] for f in reports["ledger"]["findings"] if f["code"] == "client_cert_required")
    assert "certpager Drill Client CA" in message


def test_mtls_without_a_client_certificate_is_refused(lab: LabInfo) -> None:
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(Path(lab.dir) / "ca" / "drill-root.pem"))
    with (
        socket.create_connection(("127.0.0.1", lab.endpoint_ports["ledger"]), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="ledger.drill.test") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: ledger.drill.test\r\n\r\n")
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            tls.recv(1024)


def test_check_exit_code_is_nagios_critical(lab: LabInfo) -> None:
    from tests.integration.demo.support import certpager

    done = certpager("check", "--config", lab.config)
    assert done.returncode == 2
    assert "api" in done.stdout
