"""Hostile corpus, class "secrets": a secret given to a runbook in any of the ways a runbook
can carry one never reaches the bytes of the audit log, whether the run's commands are
answered by FakeRunner or really run on this machine (LocalRunner, `where: local`).

Each case is a runbook step that puts a canary where a secret goes (an option's value, an
``=`` assignment, an environment variable, a header, a URL, a parameter whose name says
secret, a ``secret: true`` parameter on stdin, the command's output). The plan recorded at
run start, the argv and command of ``step_intent``, the output of ``step_result`` and the
messages all go through the one redactor of :meth:`certpager.runbook.audit.RunAudit.write`.
"""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from certpager.config import Endpoint, Thresholds
from certpager.runbook import (
    ConfirmReply,
    ConfirmRequest,
    OutputReceived,
    RunbookRun,
    RunEvent,
    build_plan,
    parse_runbook,
)
from certpager.runbook.audit import REDACTED, AuditLog
from certpager.ssh import FakeResponse, FakeRunner

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAAS{c}\n-----END PRIVATE KEY-----"


@dataclass(frozen=True)
class Case:
    """A step that carries the canary ``{c}``; ``out`` is output the target prints."""

    id: str
    step: str
    params: str = "v: {default: x}"
    value_param: str = "v"
    out: str = ""
    canary: str = ""

    def secret(self) -> str:
        return self.canary or f"Cnry{self.id.replace('-', '')}Z9"


CASES = [
    Case("flag-space", 'run: [echo, --token, "{v}"]'),
    Case("flag-equals", 'run: [echo, "--password={v}"]'),
    Case("flag-quoted-value", 'run: [echo, "--password={v}"]', canary="sp ace'qu\"ote Cnry16"),
    Case("flag-value-with-equals", 'run: [echo, --password, "{v}"]', canary="a=b=Cnry17"),
    Case("client-secret-flag", 'run: [echo, --client-secret, "{v}"]'),
    Case("aws-style-flag", 'run: [echo, --secret-access-key, "{v}"]'),
    Case("env-token", 'run: [echo, deploy]\n    env: {DEPLOY_TOKEN: "{v}"}'),
    Case("env-pgpassword", 'run: [echo, db]\n    env: {PGPASSWORD: "{v}"}'),
    Case("env-assignment-arg", 'run: [echo, "MYSQL_PWD={v}"]'),
    Case("bearer-header", 'run: [echo, -H, "Authorization: Bearer {v}"]'),
    Case("api-key-header", 'run: [echo, -H, "X-Api-Key: {v}"]'),
    Case("url-password", 'run: [echo, "https://bot:{v}@git.example/repo.git"]'),
    Case("url-query-token", 'run: [echo, "https://api.example/x?access_token={v}"]'),
    Case("curl-user", 'run: [echo, --user, "admin:{v}"]'),
    Case("openssl-pass", 'run: [echo, -passin, "pass:{v}"]'),
    Case("keyval-arg", 'run: [echo, "token={v}"]'),
    Case(
        "secret-named-param-positional",
        'run: [echo, login, "{api_token}"]',
        params="api_token: {default: x}",
        value_param="api_token",
    ),
    Case(
        "secret-named-param-in-env",
        'run: [echo, vault]\n    env: {VAULT_X: "{vault_token}"}',
        params="vault_token: {default: x}",
        value_param="vault_token",
    ),
    Case(
        "args-param",
        'run: [echo, "{extra}"]',
        params="extra: {type: args, default: ''}",
        value_param="extra",
    ),
    Case(
        "command-param",
        'run: ["{cmd}"]',
        params="cmd: {type: command, default: 'echo'}",
        value_param="cmd",
    ),
    Case(
        "declared-secret-on-stdin",
        'run: [cat]\n    stdin: "{v}"',
        params="v: {secret: true, default: ''}",
        out="{c}",
    ),
    Case("output-password-line", "run: [echo, hello]", out="db password: {c}", value_param=""),
    Case(
        "output-json-token",
        "run: [echo, hello]",
        out='{{"access_token": "{c}", "expires_in": 3600}}',
        value_param="",
    ),
    Case("output-private-key", "run: [echo, hello]", out=KEY, value_param=""),
    Case("output-export", "run: [echo, hello]", out="export GITHUB_TOKEN='{c} with space'", value_param=""),
    Case(
        "on-failure-step",
        'run: ["false"]\n    on_failure:\n      - id: fix\n        where: local\n        run: [echo, --token, "{v}"]',
    ),
]
VALUES = {
    "args-param": "--token {c}",
    "command-param": "echo --password {c} --verbose",
}


def runbook_text(case: Case, out_file: Path | None) -> str:
    extra = ""
    if out_file is not None:
        extra = f"""
  - id: output
    where: local
    script: 'cat "$1"'
    args: ["{out_file}"]"""
    return textwrap.dedent(
        """\
        name: hostile
        title: t
        params:
          {params}
        steps:
          - id: step
            where: local
            {step}{extra}
        """
    ).format(params=case.params, step=case.step, extra=extra)


async def yes(request: ConfirmRequest) -> ConfirmReply:
    return ConfirmReply.yes()


def echo(command: str, outputs: dict[str, str]) -> FakeResponse:
    """What the command would print on a real target: echo prints its arguments."""
    words = shlex.split(command)
    while (words and "=" in words[0]) or words[:1] == ["env"]:
        words = words[1:]
    if words[:1] == ["echo"]:
        return FakeResponse(stdout=" ".join(words[1:]) + "\n")
    if words[:1] == ["false"]:
        return FakeResponse(exit_status=1)
    if words[:1] in (["sh"], ["cat"]):
        return FakeResponse(stdout=outputs.get("out", ""))
    return FakeResponse()


async def run_case(case: Case, tmp_path: Path, *, real: bool) -> tuple[str, list[str]]:
    secret = case.secret()
    value = VALUES.get(case.id, "{c}").format(c=secret)
    out = case.out.format(c=secret)
    out_file = None
    if out and not case.step.startswith("run: [cat]"):
        out_file = tmp_path / "out.txt"
        out_file.write_text(out + "\n")
    rb = parse_runbook(runbook_text(case, out_file), file=str(tmp_path / "hostile.yaml"))
    ep = Endpoint(name="app", host="app.test", thresholds=Thresholds())
    plan = build_plan(rb, ep, {case.value_param: value} if case.value_param else {})
    events: list[RunEvent] = []
    local = None if real else FakeRunner(lambda command: echo(command, {"out": out}))
    if not real and case.step.startswith("run: [cat]"):
        local = FakeRunner({"cat": FakeResponse(stdout=out + "\n")})
    run = RunbookRun(
        plan,
        confirm=yes,
        on_event=events.append,
        audit=AuditLog(tmp_path / "audit" / "audit.jsonl"),
        local_runner=local,
        lock_dir=tmp_path / "locks",
    )
    result = await run.execute()
    assert result.outcome.value in ("succeeded", "failed"), result.message
    shown = [e.line for e in events if isinstance(e, OutputReceived)]
    return (tmp_path / "audit" / "audit.jsonl").read_text(), shown


def secret_fragments(secret: str) -> list[str]:
    """The secret, and each word of it long enough to be recognisable."""
    return [secret, *(w for w in secret.replace("'", " ").replace('"', " ").split() if len(w) >= 5)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_secret_never_reaches_the_log_fake_runner(case: Case, tmp_path: Path) -> None:
    log, shown = await run_case(case, tmp_path, real=False)
    for fragment in secret_fragments(case.secret()):
        assert fragment not in log, f"{fragment!r} leaked into the audit log"
        assert all(fragment not in line for line in shown), f"{fragment!r} shown on screen"
    assert REDACTED in log or "[REDACTED" in log
    assert '"type":"run_start"' in log and '"type":"run_end"' in log


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_secret_never_reaches_the_log_real_local_run(case: Case, tmp_path: Path) -> None:
    log, shown = await run_case(case, tmp_path, real=True)
    for fragment in secret_fragments(case.secret()):
        assert fragment not in log, f"{fragment!r} leaked into the audit log"
        assert all(fragment not in line for line in shown), f"{fragment!r} shown on screen"
    assert REDACTED in log or "[REDACTED" in log


async def test_what_is_not_secret_stays_readable(tmp_path: Path) -> None:
    """Redaction hides values, not the record: the command, its options and its output stay."""
    case = Case("readable", 'run: [echo, --token, "{v}", --cert-name, app.example]')
    log, shown = await run_case(case, tmp_path, real=True)
    assert "--cert-name app.example" in log and "--token" in log
    assert any("--cert-name app.example" in line for line in shown)


async def test_an_identifier_parameter_named_secret_is_not_hidden(tmp_path: Path) -> None:
    """``secret: {type: k8s_name}`` names a Kubernetes Secret: the audit must say which one."""
    text = """\
    name: rb
    title: t
    params:
      secret: {type: k8s_name, default: shop-tls}
      api_token: {default: x}
    steps:
      - id: step
        where: local
        run: [echo, delete, secret, --, "{secret}", "{api_token}"]
    """
    rb = parse_runbook(textwrap.dedent(text), file=str(tmp_path / "rb.yaml"))
    plan = build_plan(
        rb, Endpoint(name="app", host="app.test", thresholds=Thresholds()), {"api_token": "Cnry-tok-1"}
    )
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    await RunbookRun(plan, confirm=yes, audit=audit, lock_dir=tmp_path / "locks").execute()
    log = audit.path.read_text()
    assert '"secret":{"value":"shop-tls"' in log and "delete secret -- shop-tls" in log
    assert "Cnry-tok-1" not in log
