"""Verification's judgement (pure) and the ``fixes:`` contract: a run is for findings; it is
verified when they are proven gone on every backend and nothing got worse; a renewal also
needs the stored certificate served. Real nginx + sshd: tests/integration/test_runbook_verify.py."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_runbook_engine import (
    Answers,
    Probe,
    audit_records,
    cert,
    endpoint,
    make_run,
    no_confirm_wait,  # noqa: F401 (autouse: verification rounds confirm at once)
    report,
)

from certpager.config import Endpoint
from certpager.errors import RunbookError
from certpager.probe.findings import SPECS, make
from certpager.probe.http import HstsResult
from certpager.probe.model import BackendFacts, EndpointFacts, EndpointReport, HttpResult
from certpager.probe.protocols import ProtocolReport, VersionState
from certpager.runbook import (
    ConfirmReply,
    RunbookRun,
    RunEvent,
    RunOutcome,
    build_plan,
    find_runbook,
    parse_runbook,
)
from certpager.runbook.audit import AuditLog
from certpager.runbook.events import BaselineCaptured, VerificationFinished
from certpager.runbook.loader import list_runbooks, shipped_runbook_dir
from certpager.runbook.model import VerifyExpect, VerifySpec
from certpager.runbook.plan import TargetInfo
from certpager.runbook.verify import (  # type: ignore[attr-defined]
    CHECK_OF,
    ServedCert,
    default_targets,
    judge,
    next_wait,
    observe,
    probe_view,
    served_certs,
)
from certpager.ssh import FakeRunner

FINDINGS = VerifySpec(deadline=1, interval=0.2, expect=VerifyExpect.FINDINGS)
RENEWAL = VerifySpec(deadline=1, interval=0.2, expect=VerifyExpect.CHANGED_OR_STORED)


def with_findings(
    r: EndpointReport, *codes: str, protocols: dict[str, VersionState] | None = None
) -> EndpointReport:
    """``r`` with ``codes`` found on every backend (and, given ``protocols``, the scan's result)."""
    facts = BackendFacts(protocols=ProtocolReport(versions=protocols)) if protocols is not None else None
    backends = tuple(
        replace(
            b,
            findings=tuple(make(c, f"{c} here") for c in codes),
            deep=facts or b.deep,
        )
        for b in r.backends
    )
    return replace(r, backends=backends, findings=tuple(make(c, f"{c} here") for c in codes))


REFUSED: dict[str, VersionState] = {"SSLv3": "not_testable", "TLSv1": "refused", "TLSv1.1": "refused"}


def verdict_of(
    after: EndpointReport,
    before: EndpointReport,
    targets: tuple[str, ...],
    spec: VerifySpec = FINDINGS,
    stored: ServedCert | None = None,
) -> Any:
    (v,) = judge(
        after,
        endpoint(),
        spec,
        served_certs(before),
        stored,
        targets=targets,
        before_findings=observe(before, stored),
    )
    return v


# ------------------------------------------------------------------ judge (pure)


def test_a_config_fix_that_keeps_the_certificate_passes_when_its_finding_is_gone() -> None:
    leaf = cert("0A", days=20)  # fewer days than a renewal would need: irrelevant to a config fix
    before = with_findings(report(leaf), "chain_incomplete")
    v = verdict_of(report(leaf), before, ("chain_incomplete",))
    assert v.passed, v.reasons
    assert v.findings_before == ("chain_incomplete",) and v.findings_after == ()


def test_a_remaining_target_fails_and_is_named() -> None:
    before = with_findings(report(cert("0A")), "chain_incomplete")
    v = verdict_of(before, before, ("chain_incomplete",))
    assert not v.passed and v.remaining == ("chain_incomplete",)
    assert v.reasons == ("chain_incomplete remains (chain_incomplete here)",)


def test_a_protocol_finding_is_gone_only_when_the_scan_says_refused() -> None:
    before = with_findings(report(cert("0A")), "tls1_0_enabled", protocols={"TLSv1": "accepted"})
    # Absent because the scan did not run (or timed out): not proof.
    v = verdict_of(report(cert("0A")), before, ("tls1_0_enabled",))
    assert not v.passed and "tls1_0_enabled not proven gone: the protocol scan did not run" in v.reasons
    inconclusive = with_findings(report(cert("0A")), protocols={"TLSv1": "inconclusive"})
    v = verdict_of(inconclusive, before, ("tls1_0_enabled",))
    assert not v.passed and "TLSv1 is inconclusive, not refused" in v.reasons[0]
    v = verdict_of(with_findings(report(cert("0A")), protocols=REFUSED), before, ("tls1_0_enabled",))
    assert v.passed, v.reasons


def test_hsts_is_gone_only_when_the_http_check_saw_it() -> None:
    before = with_findings(report(cert("0A")), "hsts_missing")
    ok = replace(report(cert("0A")), deep=EndpointFacts(http=HttpResult(hsts=HstsResult("ok"))))
    failed = replace(report(cert("0A")), deep=EndpointFacts(http=HttpResult(hsts=HstsResult("failed"))))
    assert verdict_of(ok, before, ("hsts_missing",)).passed
    v = verdict_of(failed, before, ("hsts_missing",))
    assert not v.passed and "the hsts check says failed" in v.reasons[0]


def test_something_new_at_warning_or_above_is_worse() -> None:
    before = with_findings(report(cert("0A")), "chain_incomplete", "no_tls1_3")
    after = with_findings(report(cert("0A")), "hsts_missing", "chain_root_sent")  # warning, info
    v = verdict_of(after, before, ("chain_incomplete",))
    assert not v.passed and v.new == ("hsts_missing",)
    assert any(r.startswith("got worse: hsts_missing is new") for r in v.reasons)
    # Findings that were there before and are not this run's stay and do not fail it.
    v = verdict_of(with_findings(report(cert("0A")), "no_tls1_3"), before, ("chain_incomplete",))
    assert v.passed, v.reasons


def test_served_not_stored_is_decided_by_served_equals_stored() -> None:
    old, new = cert("0A"), cert("0B")
    stored = ServedCert.from_info("stored", new)
    before = report(old)
    v = verdict_of(report(old), before, ("served_not_stored",), stored=stored)
    assert not v.passed and v.remaining == ("served_not_stored",)
    assert "serves serial 0A, the stored certificate is serial 0B" in v.reasons[0]
    assert verdict_of(report(new), before, ("served_not_stored",), stored=stored).passed
    v = verdict_of(report(new), before, ("served_not_stored",), stored=None)
    assert not v.passed and "the stored certificate could not be read" in v.reasons[0]


def test_a_renewal_needs_the_new_certificate_and_its_findings_gone() -> None:
    old = cert("0A", days=2)
    before = with_findings(report(old), "expires_soon")
    v = verdict_of(before, before, ("expires_soon",), spec=RENEWAL)
    assert not v.passed
    assert "expires_soon remains (expires_soon here)" in v.reasons
    assert any("still serves the certificate from before the run" in r for r in v.reasons)
    (v,) = judge(
        report(cert("0B")),
        endpoint(),
        RENEWAL,
        {"127.0.0.1:443": ServedCert.from_info("127.0.0.1:443", old)},
        None,
        targets=("expires_soon",),
        before_findings=observe(before, None),
    )
    assert v.passed, v.reasons


def test_every_backend_must_pass() -> None:
    before = with_findings(report(cert("0A"), cert("0A")), "chain_incomplete")
    fixed_one = replace(
        before, backends=(replace(before.backends[0], findings=()), before.backends[1]), findings=()
    )
    verdicts = judge(
        fixed_one,
        endpoint(),
        FINDINGS,
        {},
        None,
        targets=("chain_incomplete",),
        before_findings=observe(before, None),
    )
    assert [v.passed for v in verdicts] == [True, False]


def test_default_targets_are_the_most_severe_findings_the_runbook_fixes() -> None:
    before = observe(with_findings(report(cert("0A")), "hsts_missing", "chain_incomplete", "no_tls1_3"), None)
    fixes = ("chain_incomplete", "tls1_0_enabled", "hsts_missing", "no_tls1_3")
    assert default_targets(fixes, before) == ("chain_incomplete",)
    legacy = observe(with_findings(report(cert("0A")), "tls1_1_enabled", "tls1_0_enabled"), None)
    assert default_targets((*fixes, "tls1_1_enabled"), legacy) == ("tls1_0_enabled", "tls1_1_enabled")
    assert default_targets(("served_not_stored",), before) == ()


def test_polls_quickly_at_first_then_at_the_interval() -> None:
    assert [next_wait(n, 2.0) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert next_wait(1, 0.05) == 0.05


def test_the_probe_runs_the_checks_the_findings_need() -> None:
    ep = endpoint(check_protocols=False, check_no_sni=True, http=None)
    view = probe_view(ep, {"protocols", "http"})
    assert view.check_protocols and view.http is not None and not view.check_no_sni and not view.fetch_aia
    lean = probe_view(endpoint(), set())
    assert not lean.check_protocols and lean.http is None


# ------------------------------------------------------------------ engine (fake probe)


def reload_run(
    tmp_path: Path, probe: Probe, events: list[RunEvent], targets: tuple[str, ...] = ()
) -> RunbookRun:
    rb = find_runbook("nginx-reload", [shipped_runbook_dir() or Path("runbooks")])
    plan = build_plan(
        rb, endpoint(), target=TargetInfo("root@fake:22", "fake", 22, "root", False), targets=targets
    )
    return RunbookRun(
        plan,
        confirm=Answers(ConfirmReply.yes()),
        on_event=events.append,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        runner_factory=lambda target: FakeRunner(),
        probe=probe,
        lock_dir=tmp_path / "locks",
    )


async def test_nginx_reload_after_a_config_fix_is_verified_with_the_same_certificate(tmp_path: Path) -> None:
    leaf = cert("0A")
    broken = with_findings(report(leaf), "chain_incomplete", "hsts_missing")
    fixed = with_findings(report(leaf), "hsts_missing")
    probe = Probe(broken, broken, fixed)  # the reload applies after one more round
    events: list[RunEvent] = []
    result = await reload_run(tmp_path, probe, events).execute()
    assert result.outcome is RunOutcome.SUCCEEDED, result.message
    baseline = next(e for e in events if isinstance(e, BaselineCaptured))
    assert baseline.targets == ("chain_incomplete",) and not baseline.chosen
    done = next(e for e in events if isinstance(e, VerificationFinished)).result
    assert done.gone == ("chain_incomplete",) and done.remaining == () and done.other == ("hsts_missing",)
    assert "chain_incomplete gone on every backend (1); nothing got worse" in result.message
    recs = audit_records(tmp_path)
    assert recs[0]["plan"]["fixes"][0] == "served_not_stored"
    base = next(r for r in recs if r["type"] == "baseline")
    assert base["targets"] == ["chain_incomplete"]
    verification = next(r for r in recs if r["type"] == "verification")
    assert verification["gone"] == ["chain_incomplete"] and verification["targets"] == ["chain_incomplete"]


async def test_a_chosen_target_that_remains_fails_at_the_deadline(tmp_path: Path) -> None:
    before = with_findings(
        report(cert("0A")), "tls1_0_enabled", "chain_incomplete", protocols={"TLSv1": "accepted"}
    )
    after = with_findings(report(cert("0A")), "tls1_0_enabled", protocols={"TLSv1": "accepted"})
    seen: list[Endpoint] = []

    class Recording(Probe):
        async def __call__(self, endpoint: Endpoint) -> EndpointReport:
            seen.append(endpoint)
            return await super().__call__(endpoint)

    events: list[RunEvent] = []
    run = reload_run(tmp_path, Recording(before, after), events, targets=("tls1_0_enabled",))
    # The shipped deadline is 60 s; shorten it for the test (same runbook otherwise).
    step = run.plan.steps[-1]
    assert step.verify is not None
    short = replace(step, verify=replace(step.verify, deadline=0.5))
    run.plan = replace(run.plan, steps=(*run.plan.steps[:-1], short))
    result = await run.execute()
    assert result.outcome is RunOutcome.FAILED
    assert "tls1_0_enabled remains" in result.message
    done = next(e for e in events if isinstance(e, VerificationFinished)).result
    assert done.targets == ("tls1_0_enabled",) and done.remaining == ("tls1_0_enabled",) and done.gone == ()
    assert done.attempts > 2
    assert all(ep.check_protocols and ep.http is not None for ep in seen)  # the deeper checks ran


async def test_a_runbook_without_fixes_keeps_the_new_certificate_proof(tmp_path: Path) -> None:
    text = """
    name: rb
    title: t
    steps:
      - id: verify
        verify: {deadline: 1, interval: 0.2}
    """
    result = await make_run(tmp_path, FakeRunner(), Answers(), Probe(report(cert("0A"))), text=text).execute()
    assert (
        result.outcome is RunOutcome.FAILED
        and "still serves the certificate from before the run" in result.message
    )


# ------------------------------------------------------------------ fixes: in the loader


def load(text: str) -> Any:
    return parse_runbook(textwrap.dedent(text), file="rb.yaml")


BASE = """
name: rb
title: t
{fixes}
steps:
  - id: verify
    verify: true
"""


def test_fixes_is_read_and_sets_how_verification_proves() -> None:
    rb = load(BASE.format(fixes="fixes: [chain_incomplete, tls1_0_enabled]"))
    assert rb.fixes == ("chain_incomplete", "tls1_0_enabled") and not rb.renews
    assert rb.steps[0].verify.expect is VerifyExpect.FINDINGS
    rb = load(BASE.format(fixes="fixes: [expires_soon, served_not_stored]"))
    assert rb.renews and rb.steps[0].verify.expect is VerifyExpect.CHANGED_OR_STORED
    assert load(BASE.format(fixes="")).steps[0].verify.expect is VerifyExpect.CHANGED_OR_STORED


@pytest.mark.parametrize(
    ("fixes", "message"),
    [
        (
            "fixes:\n  - chain_incomplete\n  - chain_incomplet",
            "rb.yaml:6: fixes[1]: unknown finding code 'chain_incomplet' (did you mean 'chain_incomplete'?)",
        ),
        (
            "fixes: [chain_incomplete, chain_incomplete]",
            "rb.yaml:4: fixes[1]: 'chain_incomplete' is listed twice",
        ),
        ("fixes: chain_incomplete", "rb.yaml:4: fixes: expected a list of finding codes, got a string"),
        ("fixes: [42]", "rb.yaml:4: fixes[0]: expected a finding code, got"),
    ],
)
def test_bad_fixes_name_file_line_and_key(fixes: str, message: str) -> None:
    with pytest.raises(RunbookError) as err:
        load(BASE.format(fixes=fixes))
    assert str(err.value).startswith(message), str(err.value)


def test_fixes_without_a_verify_step_is_refused() -> None:
    with pytest.raises(RunbookError, match="needs a verify step to prove them gone"):
        load('name: rb\ntitle: t\nfixes: [chain_incomplete]\nsteps:\n  - id: a\n    run: ["true"]\n')


def test_for_is_checked_against_the_catalogue_and_the_runbook() -> None:
    rb = find_runbook("nginx-reload", [shipped_runbook_dir() or Path("runbooks")])
    ep = endpoint()
    plan = build_plan(rb, ep, target=None, resolve_target=False, targets=["chain_incomplete"])
    assert plan.targets == ("chain_incomplete",)
    assert "This run is for: chain_incomplete (intermediate certificate missing)" in plan.render_text()
    with pytest.raises(RunbookError, match="runbook nginx-reload does not fix cert_expired"):
        build_plan(rb, ep, resolve_target=False, targets=["cert_expired"])
    with pytest.raises(RunbookError, match="'nope' is not a finding code"):
        build_plan(rb, ep, resolve_target=False, targets=["nope"])


# ------------------------------------------------------------------ shipped runbooks vs the catalogue


def shipped() -> dict[str, Any]:
    d = shipped_runbook_dir()
    assert d is not None
    entries = list_runbooks([d])
    assert all(e.runbook is not None for e in entries), [str(e.error) for e in entries]
    return {e.runbook.name: e.runbook for e in entries if e.runbook is not None}


def test_every_catalogue_runbook_is_shipped_and_fixes_its_code_or_is_a_diagnostic() -> None:
    books = shipped()
    for code, spec in SPECS.items():
        if spec.runbook is None:
            continue
        assert spec.runbook in books, f"{code}: runbook {spec.runbook} is not shipped"
        rb = books[spec.runbook]
        diagnostic = not rb.fixes and not any(s.verify for s in rb.steps)
        assert code in rb.fixes or diagnostic, f"{code} names {rb.name}, whose fixes: does not name it"
    # And the other way round: a code a shipped runbook fixes points somewhere that fixes it.
    for rb in books.values():
        for code in rb.fixes:
            named = SPECS[code].runbook
            if named is not None:
                assert code in books[named].fixes or not books[named].fixes


def test_shipped_fixes_are_codes_verification_can_prove() -> None:
    books = shipped()
    assert books["certbot-dry-run"].fixes == ()  # a rehearsal changes nothing a handshake sees
    assert set(books["nginx-reload"].fixes) >= {"served_not_stored", "chain_incomplete", "tls1_0_enabled"}
    assert set(books["certbot-force-renew"].fixes) >= {"cert_expired", "expires_soon"}
    # Renewed but not reloaded is fixed by a reload, never by a forced renewal (CA rate limit).
    assert "served_not_stored" not in books["certbot-force-renew"].fixes
    for rb in books.values():
        if rb.fixes:
            assert any(s.verify for s in rb.steps), rb.name
        for code in rb.fixes:
            # No handshake at all, facts about the client side: nothing a reload/renewal proves.
            assert SPECS[code].severity.name != "ERROR", (rb.name, code)
            assert code not in ("client_cert_required", "pin_rotation_risk", "no_sni_cert_differs"), (
                rb.name,
                code,
            )
        # Every code whose proof needs a deeper check has one (CHECK_OF) or comes from the handshake.
        assert all(code in SPECS for code in rb.fixes)
    assert set(CHECK_OF) <= set(SPECS)
