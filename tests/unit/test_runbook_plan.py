"""build_plan with an injected target resolver: where each run step goes, as the plan shows it."""

from __future__ import annotations

import textwrap

import pytest

from certpager.config import Endpoint, SSHTarget
from certpager.errors import RunbookError
from certpager.runbook import build_plan, parse_runbook
from certpager.runbook.plan import TargetInfo, local_target

RUNBOOK = textwrap.dedent(
    """\
    name: two-places
    title: Runs on the target and here
    steps:
      - id: remote
        title: On the target
        run: [systemctl, reload, nginx]
        on_failure:
          - id: remote-undo
            title: Undo on the target
            run: [systemctl, restart, nginx]
      - id: here
        title: On this machine
        where: local
        run: ["true"]
    """
)

JUMP = TargetInfo(label="ops@10.0.0.7:2222", host="10.0.0.7", port=2222, user="ops", local=False)


WEB1 = SSHTarget(host="web1", user="root")


def endpoint(ssh: SSHTarget | None = WEB1) -> Endpoint:
    return Endpoint(name="app", host="app.test", ssh=ssh)


class Resolver:
    """Records the endpoints it is asked about and answers with a fixed target."""

    def __init__(self, answer: TargetInfo | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, endpoint: Endpoint, /) -> TargetInfo | None:
        self.asked.append(endpoint.name)
        return self.answer


def test_the_resolver_decides_where_remote_steps_run() -> None:
    resolver = Resolver(JUMP)
    plan = build_plan(parse_runbook(RUNBOOK, file="rb.yaml"), endpoint(), resolver=resolver)
    assert resolver.asked == ["app"]
    assert plan.target == JUMP
    where = {s.id: s.target for s in plan.all_steps()}
    assert where == {"remote": JUMP.label, "remote-undo": JUMP.label, "here": local_target().label}
    text = plan.render_text()
    assert f"Target {JUMP.label}" in text and f"on {JUMP.label}, timeout" in text


def test_a_plain_function_is_a_resolver() -> None:
    plan = build_plan(parse_runbook(RUNBOOK, file="rb.yaml"), endpoint(), resolver=lambda ep: JUMP)
    assert plan.steps[0].target == JUMP.label


def test_a_given_target_or_resolve_target_false_skips_the_resolver() -> None:
    rb = parse_runbook(RUNBOOK, file="rb.yaml")
    resolver = Resolver(JUMP)
    given = TargetInfo(label="root@web1:22", host="web1", port=22, user="root", local=False)
    assert build_plan(rb, endpoint(), target=given, resolver=resolver).steps[0].target == given.label
    unresolved = build_plan(rb, endpoint(), resolve_target=False, resolver=resolver)
    assert unresolved.steps[0].target == "web1" and unresolved.target is None
    assert resolver.asked == []


def test_no_ssh_target_is_one_error_at_the_first_remote_step() -> None:
    with pytest.raises(RunbookError) as caught:
        build_plan(parse_runbook(RUNBOOK, file="rb.yaml"), endpoint(ssh=None), resolver=Resolver(None))
    message = str(caught.value)
    assert "\n" not in message and ":4: steps[0]: " in message
    assert "endpoint 'app' has no ssh target in the config" in message


def test_the_default_resolver_reads_ssh_local() -> None:
    plan = build_plan(parse_runbook(RUNBOOK, file="rb.yaml"), endpoint(ssh=SSHTarget(host="local")))
    assert plan.target == local_target()
    assert plan.steps[0].target == local_target().label
