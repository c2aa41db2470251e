"""Hostname matching: subjectAltName only, one label per wildcard, IPs only against IP SANs (F7)."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.support.pki import PKI, Hierarchy

from certpager.config import Thresholds
from certpager.probe.analysis import analyze_chain, match_hostname
from certpager.probe.trust import TrustStore


@pytest.mark.parametrize(
    ("sans", "host", "ok"),
    [
        (["app.example.com"], "app.example.com", True),
        (["app.example.com"], "APP.Example.COM", True),
        (["APP.EXAMPLE.COM"], "app.example.com", True),
        (["app.example.com"], "app.example.com.", True),
        (["app.example.com."], "app.example.com", True),
        (["app.example.com"], "example.com", False),
        (["app.example.com"], "x.app.example.com", False),
        (["app.example.com"], "app.example.co", False),
        ([], "app.example.com", False),
        # wildcards: exactly one whole left-most label
        (["*.example.com"], "a.example.com", True),
        (["*.example.com"], "A.EXAMPLE.com", True),
        (["*.example.com"], "a.b.example.com", False),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], ".example.com", False),
        (["*.com"], "example.com", False),
        (["*.*.example.com"], "a.b.example.com", False),
        (["a.*.example.com"], "a.b.example.com", False),
        (["f*.example.com"], "foo.example.com", False),
        (["*"], "localhost", False),
        (["*.example.com", "example.com"], "example.com", True),
        # several SANs
        (["www.example.com", "api.example.com"], "api.example.com", True),
        # IDNA
        (["xn--bcher-kva.example"], "bücher.example", True),
        (["bücher.example"], "xn--bcher-kva.example", True),
        # an IP target never matches a dNSName, even one spelling the address
        (["127.0.0.1"], "127.0.0.1", False),
        (["app.example.com"], "127.0.0.1", False),
    ],
)
def test_match_hostname(sans: list[str], host: str, ok: bool) -> None:
    assert match_hostname(sans, host) is ok


@pytest.mark.parametrize(
    ("ip_sans", "host", "ok"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["::1"], "::1", True),
        (["::1"], "[::1]", True),
        (["0:0:0:0:0:0:0:1"], "::1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["127.0.0.1"], "localhost", False),
        (["10.0.0.1", "10.0.0.2"], "10.0.0.2", True),
    ],
)
def test_match_ip(ip_sans: list[str], host: str, ok: bool) -> None:
    assert match_hostname([], host, ip_sans) is ok


def _analyze(ca: Hierarchy, now: dt.datetime, host: str, **leaf_kw: object) -> tuple[bool, list[str]]:
    leaf = ca.leaf("app.test", **leaf_kw)  # type: ignore[arg-type]
    trust = TrustStore.from_file(ca.root_file)
    result = analyze_chain([leaf.der, ca.intermediate.der], host, now, trust, Thresholds())
    return result.hostname_ok, [f.message for f in result.findings if f.code == "hostname_mismatch"]


def test_cn_only_certificate_is_a_mismatch(ca: Hierarchy, now: dt.datetime) -> None:
    ok, messages = _analyze(ca, now, "app.test", sans=[])
    assert not ok
    (message,) = messages
    assert "no subjectAltName" in message and "CN=app.test" in message


def test_cn_is_ignored_when_sans_exist(ca: Hierarchy, now: dt.datetime) -> None:
    ok, messages = _analyze(ca, now, "app.test", sans=["other.test"])
    assert not ok
    (message,) = messages
    assert "other.test" in message and "app.test is not in the certificate's names" in message


def test_mismatch_message_caps_long_san_lists(ca: Hierarchy, now: dt.datetime) -> None:
    sans = [f"host{i}.test" for i in range(40)]
    ok, (message,) = _analyze(ca, now, "app.test", sans=sans)
    assert not ok
    assert "(+34 more)" in message and "host39.test" not in message


def test_wildcard_and_ip_sans_in_one_certificate(ca: Hierarchy, now: dt.datetime) -> None:
    sans = ["*.wild.test", "10.9.8.7", "::1"]
    assert _analyze(ca, now, "x.wild.test", sans=sans)[0]
    assert _analyze(ca, now, "10.9.8.7", sans=sans)[0]
    assert _analyze(ca, now, "::1", sans=sans)[0]
    assert not _analyze(ca, now, "a.b.wild.test", sans=sans)[0]


def test_ip_does_not_match_dns_name_spelling_it(pki: PKI, ca: Hierarchy, now: dt.datetime) -> None:
    assert not _analyze(ca, now, "127.0.0.1", sans=["DNS:127.0.0.1"])[0]
