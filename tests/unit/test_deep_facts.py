"""The typed deeper-check results: their JSON keys in the order the output has always
had them, the ``--no-*`` switches as a set of checks, and :func:`restricted`. No network."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from certpager import commands
from certpager.check import cli as cli_check
from certpager.config import Endpoint, HttpCheck, load_config
from certpager.probe.aia import AiaResult
from certpager.probe.deep import restricted
from certpager.probe.http import HstsResult, RedirectResult
from certpager.probe.model import (
    ALL_CHECKS,
    BackendsResult,
    CheckFailed,
    ClientAuthHttp,
    DeepCheck,
    EndpointClientAuth,
    EndpointFacts,
    HttpResult,
    NoSniResult,
    ProtocolsResult,
    StoredFacts,
)

LOCAL = EndpointFacts(
    client_auth=EndpointClientAuth("not_requested"),
    backends=BackendsResult(agree=True),
    spki_pins=(),
    protocols=ProtocolsResult({"TLSv1.3": "accepted"}),
    no_sni=NoSniResult("same"),
)
HEAD = ["client_auth", "client_ca_names", "backends_agree", "spki_pins"]


def _keys(facts: EndpointFacts) -> list[str]:
    return list(facts.as_json())


def test_keys_in_the_order_of_the_checks() -> None:
    http = HttpResult(redirect=RedirectResult("redirects", 80), hsts=HstsResult("ok", max_age=86400))
    facts = dataclasses.replace(
        LOCAL,
        http=http,
        aia=AiaResult("no_url"),
        error="RuntimeError: boom",
        stored=StoredFacts("h:/p", "same as served"),
    )
    assert _keys(facts) == [
        *HEAD,
        "protocols",
        "protocols_accepted",
        "protocol_notes",
        "no_sni",
        "redirect",
        "hsts",
        "aia",
        "deep_checks_error",
        "stored",
    ]


def test_facts_decided_before_any_connection_come_before_the_protocols() -> None:
    off = dataclasses.replace(LOCAL, http=HttpResult(off=True))
    assert _keys(off)[4:6] == ["http", "protocols"]
    assert off.as_json()["http"] == {"state": "skipped", "detail": "HTTP checks are off for this endpoint"}
    early = dataclasses.replace(
        LOCAL,
        http=HttpResult(
            redirect=CheckFailed("failed", "refused"),
            hsts=HstsResult("skipped", detail="not checked"),
            hsts_before_connections=True,
        ),
    )
    assert _keys(early)[4:] == [
        "hsts",
        "protocols",
        "protocols_accepted",
        "protocol_notes",
        "no_sni",
        "redirect",
    ]
    assert early.as_json()["redirect"] == {"state": "failed", "detail": "refused"}


def test_hsts_skipped_on_the_https_answer_comes_before_the_redirect() -> None:
    verdict = ClientAuthHttp(status=400, verdict="rejected", detail="No required SSL certificate")
    facts = dataclasses.replace(
        LOCAL,
        http=HttpResult(
            redirect=RedirectResult("redirects", 80), hsts=HstsResult("skipped"), client_auth=verdict
        ),
    )
    assert _keys(facts)[-4:] == ["no_sni", "client_auth_http", "hsts", "redirect"]
    assert facts.http is not None
    answered = dataclasses.replace(facts, http=dataclasses.replace(facts.http, hsts=HstsResult("ok")))
    assert _keys(answered)[-4:] == ["no_sni", "client_auth_http", "redirect", "hsts"]


def test_protocols_not_checked_and_stored_not_compared() -> None:
    facts = EndpointFacts(
        protocols=ProtocolsResult(checked=False),
        stored=StoredFacts("h:/p", "not compared", error="no route", reason=None),
    )
    assert facts.as_json() == {
        "protocols": "not checked (check_protocols is off)",
        "stored": {"location": "h:/p", "state": "not compared", "error": "no route", "reason": None},
    }


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.set_defaults(config=None)
    commands.configure_check(parser)
    return parser.parse_args(["a.test", *argv])


def test_switches_are_one_set_of_checks() -> None:
    assert cli_check.selected_checks(_args()) == ALL_CHECKS
    chosen = cli_check.selected_checks(_args("--no-http", "--no-aia"))
    assert chosen == ALL_CHECKS - {DeepCheck.HTTP, DeepCheck.AIA}


def test_switches_turn_config_endpoints_off(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text("endpoints:\n  - name: web\n    host: web.test\n    http: {}\n")
    args = _args("--no-http", "--no-protocols")
    args.config = str(path)
    args.targets = []
    endpoints, _settings = cli_check.gather_endpoints(args)
    by_name = {ep.name: ep for ep in endpoints}
    assert load_config(path).endpoints[0].http is not None
    assert by_name["web"].http is None and not by_name["web"].check_protocols
    assert by_name["web"].check_no_sni and by_name["web"].fetch_aia


@pytest.mark.parametrize("checks", [ALL_CHECKS, ALL_CHECKS - {DeepCheck.PINS}])
def test_restricted_keeps_the_endpoint_when_nothing_is_left_out(checks: frozenset[DeepCheck]) -> None:
    endpoint = Endpoint(name="e", host="e.test", http=HttpCheck())
    assert restricted(endpoint, checks) is endpoint


def test_restricted_turns_off_what_is_left_out() -> None:
    endpoint = Endpoint(name="e", host="e.test", http=HttpCheck())
    lean = restricted(endpoint, frozenset({DeepCheck.NO_SNI}))
    assert (lean.http, lean.check_protocols, lean.check_no_sni, lean.fetch_aia) == (None, False, True, False)
    off = restricted(lean, frozenset({DeepCheck.NO_SNI}))
    assert off is lean  # already off: no copy
