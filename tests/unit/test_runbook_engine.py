"""The engine's logic with FakeRunner and a fake probe (the real components are in
tests/integration/test_runbook_*.py): order of events, confirmations, stop on failure,
on_failure, cancel, lock, audit write-ahead and fail-closed, verification, redaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from certpager.config import Endpoint, SSHTarget, StoredCert, Thresholds
from certpager.errors import HostKeyError, RunLockedError
from certpager.probe.model import BackendResult, CertInfo, ChainAnalysis, EndpointReport, Handshake, Status
from certpager.runbook import (
    ConfirmReply,
    ConfirmRequest,
    OutputReceived,
    RunbookRun,
    RunEvent,
    RunOutcome,
    StepOutcome,
    build_plan,
    find_runbook,
    parse_runbook,
    runbook_dirs,
)
from certpager.runbook.audit import AuditLog
from certpager.runbook.events import (
    BaselineCaptured,
    CommandSent,
    ConfirmationAnswered,
    Connected,
    Notice,
    RunFinished,
    RunStarted,
    StepFinished,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
)
from certpager.runbook.plan import TargetInfo
from certpager.ssh import FakeResponse, FakeRunner

NOW = dt.datetime.now(dt.UTC)
TARGET = TargetInfo(label="root@fake.example:22", host="fake.example", port=22, user="root", local=False)


def cert(serial: str, days: float = 90.0, sha: str | None = None) -> CertInfo:
    return CertInfo(
        subject="CN=app.test",
        issuer="CN=Test CA",
        serial=serial,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=days),
        sha256=sha or (serial.lower() * 64)[:64],
        spki_pin="sha256/x",
        key_type="EC",
        key_bits=256,
        key_desc="EC P-256",
        signature_algorithm="ecdsa-with-SHA256",
        signature_hash="sha256",
        sans=("app.test",),
        common_name="app.test",
        is_ca=False,
        self_issued=False,
        self_signed=False,
        ca_issuers=(),
        der=b"",
    )


def report(*leaves: CertInfo | None, trusted: bool = True, hostname_ok: bool = True) -> EndpointReport:
    backends = []
    for i, leaf in enumerate(leaves):
        hs = Handshake(address=f"127.0.0.{i + 1}", port=443, sni="app.test")
        if leaf is None:
            hs = Handshake(
                address=f"127.0.0.{i + 1}",
                port=443,
                sni="app.test",
                error_code="connect_refused",
                error="refused",
            )
            backends.append(BackendResult(hs, None, ()))
            continue
        analysis = ChainAnalysis(
            (leaf,),
            trusted,
            None if trusted else "unable to get local issuer",
            (),
            hostname_ok,
            leaf.not_after,
            leaf.not_after,
            (),
        )
        backends.append(BackendResult(hs, analysis, ()))
    return EndpointReport("app", "app.test", 443, "app.test", Status.OK, (), tuple(backends), NOW)


@pytest.fixture(autouse=True)
def no_confirm_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runbooks parsed here confirm a passing verification round at once (not 0.5 s later):
    fake probes have no reload race, and the tests stay fast. The wait itself:
    tests/unit/test_verify_confirm.py."""
    import certpager.runbook.loader as loader

    monkeypatch.setattr(loader, "CONFIRM_WAIT", 0.0)


class Probe:
    """Returns the queued reports in order, repeating the last one."""

    def __init__(self, *reports: EndpointReport):
        self.reports = list(reports)
        self.calls = 0

    async def __call__(self, endpoint: Endpoint) -> EndpointReport:
        self.calls += 1
        if len(self.reports) > 1:
            return self.reports.pop(0)
        return self.reports[0]


def endpoint(**changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "name": "app",
        "host": "app.test",
        "tags": ("certbot", "nginx"),
        "ssh": SSHTarget(host="fake.example", user="root"),
        "thresholds": Thresholds(),
        "params": {"reload_command": "nginx -s reload"},
    }
    values.update(changes)
    return Endpoint(**values)


class Answers:
    """A scripted confirmer that records requests."""

    def __init__(self, *replies: ConfirmReply | Callable[[ConfirmRequest], Any]):
        self.replies = list(replies)
        self.requests: list[ConfirmRequest] = []

    async def __call__(self, request: ConfirmRequest) -> ConfirmReply:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else ConfirmReply.no()
        if callable(reply) and not isinstance(reply, ConfirmReply):
            result = reply(request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[no-any-return]
        return reply


def make_run(
    tmp_path: Path,
    runner: FakeRunner,
    confirm: Answers,
    probe: Probe,
    *,
    runbook: str = "certbot-force-renew",
    ep: Endpoint | None = None,
    overrides: dict[str, str] | None = None,
    events: list[RunEvent] | None = None,
    text: str | None = None,
) -> RunbookRun:
    rb = (
        parse_runbook(textwrap.dedent(text), file="rb.yaml")
        if text
        else find_runbook(runbook, runbook_dirs())
    )
    plan = build_plan(rb, ep or endpoint(), overrides, target=TARGET)
    sink = events.append if events is not None else None
    return RunbookRun(
        plan,
        confirm=confirm,
        on_event=sink,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        runner_factory=lambda target: runner,
        probe=probe,
        lock_dir=tmp_path / "locks",
    )


def audit_records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


async def test_happy_path_events_commands_and_audit(tmp_path: Path) -> None:
    runner = FakeRunner({"certbot": FakeResponse(stdout="Congratulations, all renewals succeeded\n")})
    probe = Probe(report(cert("0A", days=2)), report(cert("0B")))
    events: list[RunEvent] = []
    answers = Answers(ConfirmReply.with_text("app"), ConfirmReply.yes())
    run = make_run(tmp_path, runner, answers, probe, events=events)
    result = await run.execute()
    assert result.outcome is RunOutcome.SUCCEEDED, result.message
    assert [c.split()[0] for c in runner.commands] == ["certbot", "nginx", "nginx"]
    assert runner.commands[2] == "nginx -s reload"
    assert runner.closed
    kinds = [type(e) for e in events]
    assert kinds[:3] == [RunStarted, Connected, BaselineCaptured]
    assert kinds[-1] is RunFinished
    assert StepSkipped not in kinds
    assert [e.step.id for e in events if isinstance(e, StepStarted)] == [
        "renew",
        "nginx-test",
        "reload",
        "verify",
    ]
    assert any(isinstance(e, OutputReceived) and "Congratulations" in e.line for e in events)
    # Confirmations carry what the operator must see.
    typed, plain = answers.requests
    assert typed.expected == "app" and typed.host_key_fingerprint and "certbot renew" in typed.text
    assert plain.expected is None and "nginx -s reload" in plain.text
    verification = result.verification
    assert verification is not None and verification.passed
    (backend,) = verification.backends
    assert backend.before is not None and backend.before.serial == "0A"
    assert backend.after is not None and backend.after.serial == "0B"
    records = audit_records(tmp_path)
    types = [r["type"] for r in records]
    assert types[0] == "run_start" and types[-1] == "run_end"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    # Every command has its intent record *before* its result, with the host key seen.
    for step in ("renew", "nginx-test", "reload"):
        intent = types.index("step_intent", [r.get("step_id") for r in records].index(step))
        assert records[intent]["step_id"] == step and records[intent]["host_key_fingerprint"]
        result_index = next(
            i for i, r in enumerate(records) if r["type"] == "step_result" and r["step_id"] == step
        )
        assert intent < result_index
    confirmations = [r for r in records if r["type"] == "confirmation"]
    assert [c["answer"] for c in confirmations] == ["yes", "yes"]
    assert all(len(c["shown_sha256"]) == 64 for c in confirmations)
    assert any(r["type"] == "verification" and r["passed"] for r in records)


async def test_failing_nginx_test_stops_before_reload(tmp_path: Path) -> None:
    runner = FakeRunner(
        {"nginx -t": FakeResponse(stderr="nginx: [emerg] unexpected end of file", exit_status=1)}
    )
    answers = Answers(ConfirmReply.with_text("app"), ConfirmReply.yes())
    events: list[RunEvent] = []
    run = make_run(tmp_path, runner, answers, Probe(report(cert("0A"))), events=events)
    result = await run.execute()
    assert result.outcome is RunOutcome.FAILED
    assert "nginx-test" in result.message and "exit 1" in result.message
    assert not any("reload" in c for c in runner.commands)
    assert len(answers.requests) == 1  # the reload confirmation is never even asked
    outcomes = {r.step_id: r.outcome for r in result.steps}
    assert outcomes == {
        "renew": StepOutcome.OK,
        "nginx-test": StepOutcome.FAILED,
        "reload": StepOutcome.SKIPPED,
        "verify": StepOutcome.SKIPPED,
    }
    assert [e.step_id for e in events if isinstance(e, StepSkipped)] == ["reload", "verify"]
    types = [(r["type"], r.get("step_id")) for r in audit_records(tmp_path)]
    assert ("step_skipped", "reload") in types and ("step_intent", "reload") not in types


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (ConfirmReply.no(), "no"),
        (ConfirmReply.with_text("ap"), "typed 'ap' (expected 'app')"),
        (ConfirmReply.with_text(" app "), None),
    ],
)
async def test_typed_confirmation_must_match(tmp_path: Path, reply: ConfirmReply, detail: str | None) -> None:
    runner = FakeRunner()
    run = make_run(
        tmp_path, runner, Answers(reply, ConfirmReply.yes()), Probe(report(cert("0A")), report(cert("0B")))
    )
    result = await run.execute()
    if detail is None:
        assert result.outcome is RunOutcome.SUCCEEDED  # surrounding spaces are forgiven
        return
    assert result.outcome is RunOutcome.DECLINED
    assert runner.commands == []
    assert result.steps[0].outcome is StepOutcome.DECLINED and detail in result.steps[0].message
    record = next(r for r in audit_records(tmp_path) if r["type"] == "confirmation")
    assert record["answer"] == "no"


async def test_broken_confirmer_counts_as_no(tmp_path: Path) -> None:
    def boom(request: ConfirmRequest) -> ConfirmReply:
        raise RuntimeError("modal crashed")

    runner = FakeRunner()
    events: list[RunEvent] = []
    result = await make_run(
        tmp_path, runner, Answers(boom), Probe(report(cert("0A"))), events=events
    ).execute()
    assert result.outcome is RunOutcome.DECLINED and runner.commands == []
    assert any(isinstance(e, Notice) and "modal crashed" in e.message for e in events)


RB_ON_FAILURE = """
name: rb
title: t
params:
  secret_value: {secret: true, default: ""}
steps:
  - id: first
    run: [first]
    on_failure:
      - id: fix-a
        run: [fix-a]
      - id: fix-b
        run: [fix-b]
  - id: second
    run: [second]
  - id: third
    run: [third]
    continue_on_error: true
  - id: fourth
    run: [fourth]
"""


async def test_on_failure_then_stop(tmp_path: Path) -> None:
    runner = FakeRunner({"first": FakeResponse(exit_status=2), "fix-a": FakeResponse(exit_status=1)})
    result = await make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE).execute()
    assert runner.commands == ["first", "fix-a"]  # fix-b skipped after fix-a failed; the run stops
    assert result.outcome is RunOutcome.FAILED
    outcomes = [(r.step_id, r.outcome.value, r.parent) for r in result.steps]
    assert outcomes == [
        ("first", "failed", None),
        ("fix-a", "failed", "first"),
        ("fix-b", "skipped", "first"),
        ("second", "skipped", None),
        ("third", "skipped", None),
        ("fourth", "skipped", None),
    ]


async def test_continue_on_error(tmp_path: Path) -> None:
    runner = FakeRunner({"third": FakeResponse(exit_status=1)})
    result = await make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE).execute()
    assert runner.commands == ["first", "second", "third", "fourth"]
    assert result.outcome is RunOutcome.FAILED and "third" in result.message


async def test_command_not_found_hint(tmp_path: Path) -> None:
    runner = FakeRunner({"first": FakeResponse(exit_status=127, stderr="sh: first: not found")})
    result = await make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE).execute()
    assert "command not found on the target" in result.steps[0].message


async def test_cancel_mid_step_ends_it_and_skips_the_rest(tmp_path: Path) -> None:
    runner = FakeRunner({"second": FakeResponse(stdout="working\n", hang=True)})
    events: list[RunEvent] = []
    run = make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE, events=events)

    def sink(event: RunEvent) -> None:
        events.append(event)
        if isinstance(event, OutputReceived) and event.line == "working":
            run.cancel("operator pressed Ctrl-C")

    run._on_event = sink
    result = await asyncio.wait_for(run.execute(), 30)
    assert result.outcome is RunOutcome.CANCELLED
    assert runner.commands == ["first", "second"]
    assert {r.step_id: r.outcome for r in result.steps}["second"] is StepOutcome.CANCELLED
    records = audit_records(tmp_path)
    assert any(
        r["type"] == "step_result" and r["step_id"] == "second" and r["outcome"] == "cancelled"
        for r in records
    )
    assert records[-1]["type"] == "run_end" and records[-1]["outcome"] == "cancelled"


async def test_cancel_while_waiting_for_confirmation(tmp_path: Path) -> None:
    runner = FakeRunner()
    hold = asyncio.Event()

    async def never(request: ConfirmRequest) -> ConfirmReply:
        await hold.wait()
        return ConfirmReply.yes()

    run = make_run(tmp_path, runner, Answers(never), Probe(report(cert("0A"))))
    task = asyncio.ensure_future(run.execute())
    await asyncio.sleep(0.2)
    run.cancel()
    result = await asyncio.wait_for(task, 30)
    assert result.outcome is RunOutcome.CANCELLED and runner.commands == []


async def test_task_cancellation_still_closes_the_record(tmp_path: Path) -> None:
    runner = FakeRunner({"second": FakeResponse(hang=True)})
    run = make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE)
    task = asyncio.ensure_future(run.execute())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if runner.commands[-1:] == ["second"]:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    records = audit_records(tmp_path)
    assert records[-1]["type"] == "run_end" and records[-1]["outcome"] == "cancelled"
    assert AuditLog(tmp_path / "audit.jsonl").unfinished() == []


async def test_second_run_on_the_same_endpoint_is_refused(tmp_path: Path) -> None:
    runner = FakeRunner({"second": FakeResponse(hang=True)})
    first = make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE)
    task = asyncio.ensure_future(first.execute())
    await asyncio.sleep(0.2)
    second = make_run(tmp_path, FakeRunner(), Answers(), Probe(report()), text=RB_ON_FAILURE)
    with pytest.raises(
        RunLockedError,
        match=r"\(endpoint 'app'\): another run is active, locked by user \S+ \(pid \d+ on .*runbook rb",
    ):
        await second.execute()
    first.cancel()
    await asyncio.wait_for(task, 30)
    third = make_run(tmp_path, FakeRunner(), Answers(), Probe(report()), text=RB_ON_FAILURE)
    assert (await third.execute()).outcome is RunOutcome.SUCCEEDED


async def test_host_key_refusal_runs_nothing(tmp_path: Path) -> None:
    error = HostKeyError(
        "host key for fake.example:22 is not known", host="fake.example", port=22, fingerprint="SHA256:abc"
    )
    runner = FakeRunner(connect_error=error)
    answers = Answers()
    result = await make_run(tmp_path, runner, answers, Probe(report())).execute()
    assert result.outcome is RunOutcome.FAILED and result.error is error
    assert runner.commands == [] and answers.requests == []
    record = next(r for r in audit_records(tmp_path) if r["type"] == "connect_failed")
    assert record["host_key_fingerprint"] == "SHA256:abc"


async def test_audit_log_that_cannot_be_written_stops_everything(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").mkdir()  # not a file: cannot be appended to
    runner = FakeRunner()
    result = await make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE).execute()
    assert result.outcome is RunOutcome.FAILED and "nothing was run" in result.message
    assert runner.commands == []


async def test_audit_failure_mid_run_stops_before_the_next_step(tmp_path: Path) -> None:
    def breaks_log(command: str) -> FakeResponse:
        (tmp_path / "audit.jsonl").chmod(0o666)  # group/other-writable: refused from now on
        return FakeResponse()

    runner = FakeRunner(breaks_log)
    events: list[RunEvent] = []
    result = await make_run(
        tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE, events=events
    ).execute()
    assert runner.commands == ["first"]
    assert result.outcome is RunOutcome.FAILED and "audit log" in result.message


async def test_verification_retries_until_the_new_certificate_appears(tmp_path: Path) -> None:
    old = cert("0A", days=2)
    probe = Probe(report(old), report(old), report(old), report(cert("0B")))
    events: list[RunEvent] = []
    text = """
    name: rb
    title: t
    steps:
      - id: verify
        verify: {deadline: 30, interval: 0.2}
    """
    result = await make_run(tmp_path, FakeRunner(), Answers(), probe, text=text, events=events).execute()
    assert result.outcome is RunOutcome.SUCCEEDED
    attempts = [e for e in events if isinstance(e, VerificationAttempted)]
    assert [a.passed for a in attempts] == [False, False, True, True]
    assert any(
        "still serves the certificate from before the run" in r for r in attempts[0].backends[0].reasons
    )


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        (report(cert("0A")), "still serves the certificate from before the run"),
        (report(cert("0B", days=5)), "only 5.0 days left"),
        (report(cert("0B"), trusted=False), "chain does not verify"),
        (report(cert("0B"), hostname_ok=False), "does not match app.test"),
        (report(None), "no handshake"),
        (report(cert("0B"), cert("0A")), "127.0.0.2:443: still serves"),
    ],
)
async def test_verification_failures_say_why_per_backend(
    tmp_path: Path, after: EndpointReport, reason: str
) -> None:
    text = """
    name: rb
    title: t
    steps:
      - id: verify
        verify: {deadline: 1, interval: 0.5}
    """
    before = report(cert("0A"), cert("0A"))
    result = await make_run(tmp_path, FakeRunner(), Answers(), Probe(before, after), text=text).execute()
    assert result.outcome is RunOutcome.FAILED
    assert result.verification is not None and not result.verification.passed
    assert reason in result.message, result.message


async def test_verification_against_the_stored_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = cert("0C")
    import certpager.check.stored as stored_module

    async def fake_read(endpoint: Endpoint, runner: object, **kw: object) -> CertInfo:
        return stored

    monkeypatch.setattr(stored_module, "read_stored_cert", fake_read)
    text = """
    name: rb
    title: t
    steps:
      - id: verify
        verify: {deadline: 1, interval: 0.5}
    """
    ep = endpoint(stored=StoredCert(kind="file", path="/etc/ssl/app.pem"))
    # Changed, but not to the stored one: not proof.
    result = await make_run(
        tmp_path, FakeRunner(), Answers(), Probe(report(cert("0A")), report(cert("0B"))), text=text, ep=ep
    ).execute()
    assert result.outcome is RunOutcome.FAILED and "not the stored one (serial 0C)" in result.message
    # Unchanged but equal to the stored one (already reloaded): passes.
    result = await make_run(
        tmp_path, FakeRunner(), Answers(), Probe(report(stored)), text=text, ep=ep
    ).execute()
    assert result.outcome is RunOutcome.SUCCEEDED
    assert result.verification is not None and result.verification.stored is not None


async def test_secrets_and_keys_are_redacted_from_events_and_audit(tmp_path: Path) -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    output = f"token=CANARY-TOKEN-123\n{key}Authorization: Bearer CANARY-BEARER\nsecret-CANARY-PARAM\nok\n"
    runner = FakeRunner({"first": FakeResponse(stdout=output)})
    events: list[RunEvent] = []
    text = RB_ON_FAILURE.replace("run: [first]", 'run: [first]\n    stdin: "{secret_value}"')
    run = make_run(
        tmp_path,
        runner,
        Answers(),
        Probe(report()),
        text=text,
        events=events,
        overrides={"secret_value": "secret-CANARY-PARAM"},
    )
    result = await run.execute()
    assert result.outcome is RunOutcome.SUCCEEDED
    assert runner.stdin[0] == b"secret-CANARY-PARAM"  # the secret goes on stdin only
    lines = [e.line for e in events if isinstance(e, OutputReceived)]
    assert "ok" in lines
    blob = "\n".join(lines) + (tmp_path / "audit.jsonl").read_text()
    for canary in ("CANARY-TOKEN-123", "MIIEvQIBADAN", "CANARY-BEARER", "secret-CANARY-PARAM"):
        assert canary not in blob, canary
    assert "[REDACTED" in blob


async def test_event_sink_errors_do_not_break_the_run(tmp_path: Path) -> None:
    def sink(event: RunEvent) -> None:
        raise RuntimeError("widget gone")

    run = make_run(tmp_path, FakeRunner(), Answers(), Probe(report()), text=RB_ON_FAILURE)
    run._on_event = sink
    assert (await run.execute()).outcome is RunOutcome.SUCCEEDED


async def test_hostile_output_is_escaped_and_bounded(tmp_path: Path) -> None:
    hostile = "\x1b]52;c;ZXZpbA==\x07\x1b[2J[/][link=x]red\r" + "A" * 100_000 + "\n"
    runner = FakeRunner({"first": FakeResponse(stdout=hostile)})
    events: list[RunEvent] = []
    await make_run(tmp_path, runner, Answers(), Probe(report()), text=RB_ON_FAILURE, events=events).execute()
    (line,) = [e.line for e in events if isinstance(e, OutputReceived)]
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]52" in line
    assert len(line) <= 20_000 and "line truncated" in line


async def test_sent_event_and_plan_command_agree(tmp_path: Path) -> None:
    runner = FakeRunner()
    events: list[RunEvent] = []
    run = make_run(
        tmp_path,
        runner,
        Answers(ConfirmReply.with_text("app"), ConfirmReply.yes()),
        Probe(report(cert("0A")), report(cert("0B"))),
        events=events,
    )
    await run.execute()
    sent = [e.command for e in events if isinstance(e, CommandSent)]
    assert sent == [s.command for s in run.plan.steps if s.command] == runner.commands
    answered = [e.detail for e in events if isinstance(e, ConfirmationAnswered)]
    assert answered == ["typed 'app'", "yes"]
    assert any(isinstance(e, StepFinished) for e in events) and any(
        isinstance(e, VerificationFinished) for e in events
    )


@pytest.mark.parametrize("delete", [False, True], ids=["delete-declined", "delete-typed"])
async def test_cert_manager_reissue_prefers_cmctl_and_gates_the_delete(tmp_path: Path, delete: bool) -> None:
    """T17: cmctl renew first; deleting the Secret only after it failed, behind a typed
    confirmation with the ingress warning; --context and -n on every cluster command."""
    ep = endpoint(
        tags=("cert-manager",),
        stored=None,
        params={"context": "prod-eu", "certificate": "shop", "namespace": "web", "secret": "shop-tls"},
    )
    waits = iter([FakeResponse(exit_status=1, stderr="timed out waiting for the condition"), FakeResponse()])
    runner = FakeRunner(lambda command: next(waits) if " wait " in command else FakeResponse())
    answers = Answers(ConfirmReply.yes(), ConfirmReply.with_text("app" if delete else "no"))
    probe = Probe(report(cert("0A")), report(cert("0B")))
    result = await make_run(tmp_path, runner, answers, probe, runbook="cert-manager-reissue", ep=ep).execute()
    assert runner.commands[0].startswith("cmctl renew --context prod-eu -n web shop")
    for command in runner.commands:
        assert "--context prod-eu" in command and "-n web" in command, command
    deletes = [c for c in runner.commands if " delete secret " in c]
    typed = answers.requests[1]
    assert typed.expected == "app" and "default certificate" in typed.text and "ingress" in typed.text
    if delete:
        assert deletes == ["kubectl --context prod-eu -n web delete secret -- shop-tls"]
        assert result.outcome is RunOutcome.SUCCEEDED, result.message
    else:
        assert deletes == []
        outcomes = {r.step_id: r.outcome for r in result.steps}
        assert outcomes["delete-secret"] is StepOutcome.DECLINED
        assert outcomes["wait-reissued"] is StepOutcome.SKIPPED


async def test_a_probe_that_raises_during_verification_fails_the_attempt_not_the_run(tmp_path: Path) -> None:
    """A verification probe that raises (a custom probe, or a bug) is an attempt that
    failed with the reason in plain words; the run ends NOT VERIFIED, it does not crash."""

    class Raising(Probe):
        async def __call__(self, endpoint: Endpoint) -> EndpointReport:
            self.calls += 1
            if self.calls == 1:
                return self.reports[0]
            raise RuntimeError("resolver exploded")

    runner = FakeRunner({"certbot": FakeResponse(stdout="ok\n")})
    probe = Raising(report(cert("0A", days=2)))
    answers = Answers(ConfirmReply.with_text("app"), ConfirmReply.yes())
    text = """
        name: quick
        title: Quick reload
        description: reload then verify quickly
        fixes: [expires_soon]
        steps:
          - id: reload
            title: Reload
            run: nginx -s reload
          - id: verify
            title: Verify
            verify: {deadline: 1, interval: 0.5}
    """
    run = make_run(tmp_path, runner, answers, probe, text=text)
    result = await run.execute()
    assert result.verification is not None and not result.verification.passed
    assert "internal error while probing: RuntimeError: resolver exploded" in result.verification.message
    assert probe.calls >= 2
