"""The audit log as one consumer of a run's events (certpager.runbook.audit_records): every
event type has its own mapping, the log of a run is exactly the records of the events the
engine emitted, in order, and the front end gets the same stream less the record-only facts.
Both front ends (the CLI console and the TUI run screen) have a handler for every event they
can be given. The records' contents are held by test_audit*.py and test_runbook_engine.py."""

from __future__ import annotations

import dataclasses
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from certpager.config import Endpoint, SSHTarget
from certpager.probe.model import EndpointReport
from certpager.runbook import ConfirmReply, ConfirmRequest, RunbookRun, RunOutcome, build_plan, parse_runbook
from certpager.runbook import events as events_module
from certpager.runbook.audit import AuditLog
from certpager.runbook.audit_records import RunRecorder, record_of
from certpager.runbook.cli import _Console
from certpager.runbook.events import (
    CommandSent,
    ConfirmationAnswered,
    Notice,
    RecordOnly,
    RunEvent,
    StepNotDue,
    StepSkipped,
)
from certpager.runbook.plan import TargetInfo
from certpager.ssh import FakeResponse, FakeRunner
from certpager.tui.screens.runbook import RunScreen

TARGET = TargetInfo(label="root@fake.example:22", host="fake.example", port=22, user="root", local=False)

RUNBOOK = """
name: rb
title: t
steps:
  - id: ask
    confirm: true
    message: go ahead?
  - id: first
    run: [first, --token, CANARY-TOKEN-1]
    on_failure:
      - id: fix-a
        run: [fix-a]
  - id: second
    run: [second]
    continue_on_error: true
    on_failure:
      - id: fix-b
        run: [fix-b]
      - id: fix-c
        run: [fix-c]
  - id: third
    run: [third]
"""


def event_types() -> list[type[RunEvent]]:
    """Every concrete event class of certpager.runbook.events."""
    return [
        cls
        for cls in vars(events_module).values()
        if inspect.isclass(cls)
        and issubclass(cls, RunEvent)
        and cls not in (RunEvent, RecordOnly)
        and dataclasses.is_dataclass(cls)
    ]


class Spy(RunRecorder):
    """The run's recorder, keeping every event it is handed."""

    def __init__(self, recorder: RunRecorder):
        super().__init__(recorder.audit)
        self.seen: list[RunEvent] = []

    def __call__(self, event: RunEvent) -> None:
        self.seen.append(event)
        super().__call__(event)


async def no_probe(endpoint: Endpoint) -> EndpointReport:
    raise AssertionError("this runbook does not verify")


def make_run(
    tmp_path: Path, runner: FakeRunner, confirm: Any, shown: list[RunEvent]
) -> tuple[RunbookRun, Spy]:
    endpoint = Endpoint(name="app", host="app.test", ssh=SSHTarget(host="fake.example", user="root"))
    plan = build_plan(parse_runbook(textwrap.dedent(RUNBOOK), file="rb.yaml"), endpoint, target=TARGET)
    run = RunbookRun(
        plan,
        confirm=confirm,
        on_event=shown.append,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        runner_factory=lambda target: runner,
        probe=no_probe,
        lock_dir=tmp_path / "locks",
    )
    spy = Spy(run._recorder)
    run._recorder = spy
    return run, spy


def records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


async def yes(request: ConfirmRequest) -> ConfirmReply:
    return ConfirmReply.yes()


def test_every_event_type_has_its_own_mapping() -> None:
    types = event_types()
    assert len(types) >= 19
    default = record_of.registry[object]
    missing = [cls.__name__ for cls in types if record_of.dispatch(cls) is default]
    assert missing == []


def test_both_front_ends_handle_every_event_they_are_given() -> None:
    shown = [cls for cls in event_types() if not issubclass(cls, RecordOnly)]
    for front_end in (_Console.__dict__["on_event"], RunScreen.__dict__["show_event"]):
        dispatcher = front_end.dispatcher
        default = dispatcher.registry[object]
        assert [cls.__name__ for cls in shown if dispatcher.dispatch(cls) is default] == []


async def test_the_log_is_the_records_of_the_events_and_the_front_end_sees_the_same_stream(
    tmp_path: Path,
) -> None:
    runner = FakeRunner({"second": FakeResponse(stdout="token=CANARY-TOKEN-2\n", exit_status=1)})
    shown: list[RunEvent] = []
    run, spy = make_run(tmp_path, runner, yes, shown)
    result = await run.execute()
    assert result.outcome is RunOutcome.FAILED and "second" in result.message
    assert runner.commands[:3] == ["first --token CANARY-TOKEN-1", "second", "fix-b"]
    # The log holds, in order, exactly the record of each event that has one.
    expected = [record_of(e, spy.audit) for e in spy.seen]
    written = records(tmp_path)
    assert [r["type"] for r in written] == [rec[0] for rec in expected if rec is not None]
    assert [r["seq"] for r in written] == list(range(1, len(written) + 1))
    assert "CANARY-TOKEN" not in (tmp_path / "audit.jsonl").read_text()
    # The front end got the same stream, less the record-only facts.
    assert shown == [e for e in spy.seen if not isinstance(e, RecordOnly)]
    # fix-a was never due (its step succeeded): recorded as skipped, not shown.
    assert any(isinstance(e, StepNotDue) and e.step_id == "fix-a" for e in spy.seen)
    assert ("step_skipped", "fix-a") in [(r["type"], r.get("step_id")) for r in written]
    assert "fix-a" not in [e.step_id for e in shown if isinstance(e, StepSkipped)]


async def test_a_command_whose_intent_cannot_be_recorded_is_never_shown_as_sent(tmp_path: Path) -> None:
    def breaks_log(command: str) -> FakeResponse:
        (tmp_path / "audit.jsonl").chmod(0o666)  # group/other-writable: refused from now on
        return FakeResponse()

    runner = FakeRunner(breaks_log)
    shown: list[RunEvent] = []
    run, _ = make_run(tmp_path, runner, yes, shown)
    result = await run.execute()
    assert result.outcome is RunOutcome.FAILED and "audit log" in result.message
    assert runner.commands == ["first --token CANARY-TOKEN-1"]
    assert [e.step_id for e in shown if isinstance(e, CommandSent)] == ["first"]
    notices = [e.message for e in shown if isinstance(e, Notice)]
    assert any(n.startswith("audit log: ") and n.endswith("; stopping before the next step") for n in notices)


async def test_a_confirmation_that_cannot_be_recorded_is_shown_as_not_given(tmp_path: Path) -> None:
    async def yes_then_break(request: ConfirmRequest) -> ConfirmReply:
        (tmp_path / "audit.jsonl").chmod(0o666)
        return ConfirmReply.yes()

    runner = FakeRunner()
    shown: list[RunEvent] = []
    run, _ = make_run(tmp_path, runner, yes_then_break, shown)
    result = await run.execute()
    assert result.outcome is RunOutcome.DECLINED and runner.commands == []
    (answered,) = [e for e in shown if isinstance(e, ConfirmationAnswered)]
    assert not answered.accepted
    assert answered.detail == "yes; the audit log cannot be written, so the step is not run"
    assert "confirmation" not in [r["type"] for r in records(tmp_path)]
