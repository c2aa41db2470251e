"""The services the app is given: the default checker (probe + served-vs-stored) and safe_check."""

from __future__ import annotations

import dataclasses

import pytest
import tuilab

from certpager.check import monitor
from certpager.check import stored as stored_module
from certpager.config import Endpoint, Settings, StoredCert
from certpager.probe import EndpointReport, Status
from certpager.tui import services
from certpager.tui.facts import endpoint_facts


def lab(name: str) -> Endpoint:
    return next(e for e in tuilab.endpoints() if e.name == name)


async def test_default_checker_adds_the_stored_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = dataclasses.replace(lab("auth"), stored=StoredCert(kind="file", path="/etc/x/fullchain.pem"))
    served = tuilab.build(endpoint, tuilab.Spec("auth"), tuilab.NOW)
    renewed = tuilab.build(endpoint, tuilab.Spec("auth-renewed"), tuilab.NOW).leaf
    assert renewed is not None

    async def fake_check(ep: Endpoint, **kw: object) -> EndpointReport:
        return served

    async def fake_read(ep: Endpoint, **kw: object) -> object:
        return renewed

    monkeypatch.setattr(monitor, "check_endpoint", fake_check)
    monkeypatch.setattr(stored_module, "read_stored", fake_read)
    report = await services.default_checker(Settings(), tuilab.frozen_clock)(endpoint)
    assert "served_not_stored" in [f.code for f in report.findings]
    assert report.status is Status.CRITICAL
    facts = {f.label: f for f in endpoint_facts(report.deep)}
    assert facts["stored"].tone == "critical"
    assert "differs (renewed but not reloaded)" in facts["stored"].value


async def test_default_checker_skips_the_comparison_without_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = lab("www")
    served = tuilab.build(endpoint, tuilab.scenario()["www"], tuilab.NOW)
    calls: list[str] = []

    async def fake_check(ep: Endpoint, **kw: object) -> EndpointReport:
        return served

    async def fake_read(ep: Endpoint, **kw: object) -> object:
        calls.append(ep.name)
        raise AssertionError("not called")

    monkeypatch.setattr(monitor, "check_endpoint", fake_check)
    monkeypatch.setattr(stored_module, "read_stored", fake_read)
    assert await services.default_checker(Settings())(endpoint) is served
    assert calls == []


async def test_safe_check_turns_a_raise_into_an_error_report() -> None:
    async def broken(ep: Endpoint) -> EndpointReport:
        raise ValueError("bug [/]")

    report = await services.safe_check(broken, lab("mail"), tuilab.frozen_clock)
    assert report.status is Status.ERROR
    assert report.error == "internal error while probing: ValueError: bug [/]"
    assert report.checked_at == tuilab.NOW


async def test_default_checker_never_shows_an_unreadable_stored_certificate_as_ok(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = dataclasses.replace(lab("www"), stored=StoredCert(kind="file", path="/etc/x/fullchain.pem"))
    served = tuilab.build(endpoint, tuilab.scenario()["www"], tuilab.NOW)
    assert served.status is Status.OK

    async def fake_check(ep: Endpoint, **kw: object) -> EndpointReport:
        return served

    async def fake_read(ep: Endpoint, **kw: object) -> object:
        return stored_module.StoredCertError("host key for web1 is not known", kind="host_key_unknown")

    monkeypatch.setattr(monitor, "check_endpoint", fake_check)
    monkeypatch.setattr(stored_module, "read_stored", fake_read)
    report = await services.default_checker(Settings(), tuilab.frozen_clock)(endpoint)
    assert report.status is Status.WARNING
    (finding,) = [f for f in report.findings if f.code == "stored_unreadable"]
    assert "host key for web1 is not known" in finding.message
    facts = {f.label: f for f in endpoint_facts(report.deep)}
    assert facts["stored"].tone == "warning" and "not compared" in facts["stored"].value
