"""Render a runbook for one endpoint into a :class:`Plan`: every command, host and user, run nothing.

Parameter precedence: runbook default < endpoint ``params`` in the config <
``--param name=value`` on the command line. Every value is validated by its
type here, so a bad value stops the run before any step starts.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from certpager.config import Endpoint
from certpager.errors import RunbookError, SSHError
from certpager.formats import format_seconds
from certpager.probe.findings import SPECS
from certpager.runbook.model import (
    ConfirmKind,
    Param,
    Runbook,
    Step,
    StepKind,
    Template,
    VerifyExpect,
    VerifySpec,
)
from certpager.runbook.template import (
    BUILTINS,
    refs,
    render_argv,
    render_text,
    template_source,
    validate_builtin,
    validate_value,
)
from certpager.ssh.base import KILL_GRACE, REMOTE_TIMEOUT_MARGIN
from certpager.text import printable, quoted


@dataclass(frozen=True)
class PlanValue:
    """A parameter's value for this run and where it came from."""

    name: str
    """Parameter name."""
    value: str
    """The value (``********`` for secrets)."""
    source: str
    """``default``, ``endpoint params`` or ``--param``."""
    secret: bool = False
    """Whether the real value is hidden."""


@dataclass(frozen=True)
class TargetInfo:
    """Where run steps execute, as known before connecting."""

    label: str
    """``user@host:port`` or ``local (user)``."""
    host: str
    """Host name after ``~/.ssh/config`` (``local`` for this machine)."""
    port: int
    """SSH port (0 for local)."""
    user: str
    """Login user."""
    local: bool
    """Runs on this machine."""
    known_hosts: tuple[str, ...] = ()
    """known_hosts files the host key is checked against."""


@dataclass(frozen=True)
class PlannedStep:
    """One step rendered for one endpoint."""

    id: str
    """Step id."""
    title: str
    """One line."""
    kind: StepKind
    """What it does."""
    key: str
    """Where it is written, e.g. ``steps[1].on_failure[0]``."""
    argv: tuple[str, ...] = ()
    """The rendered argv (RUN)."""
    command: str = ""
    """``shlex.join(argv)``: the command line, every value shell-quoted."""
    local: bool = False
    """Runs on this machine."""
    target: str = ""
    """``user@host:port`` or ``local (user)`` it runs on."""
    timeout: float = 0.0
    """Seconds before it is ended."""
    confirm: ConfirmKind = ConfirmKind.NONE
    """Confirmation required first."""
    confirm_token: str | None = None
    """What must be typed for a typed confirmation."""
    message: str = ""
    """Text shown with the confirmation."""
    continue_on_error: bool = False
    """A failure does not stop the run."""
    on_failure: tuple[PlannedStep, ...] = ()
    """Steps run when this one fails."""
    parent: str | None = None
    """Id of the step whose ``on_failure`` this is."""
    verify: VerifySpec | None = None
    """Verification parameters (VERIFY)."""
    stdin: bytes | None = field(default=None, repr=False, compare=False)
    """Bytes written to stdin (may hold a secret: never shown or logged)."""

    @property
    def display_command(self) -> str:
        """The command with invisible and control characters made visible."""
        return printable(self.command)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the audit log)."""
        out: dict[str, Any] = {"id": self.id, "title": self.title, "kind": self.kind.value}
        if self.kind is StepKind.RUN:
            out.update(argv=list(self.argv), command=self.command, target=self.target, timeout=self.timeout)
            if self.stdin is not None:
                out["stdin"] = "(given, not logged)"
        if self.confirm is not ConfirmKind.NONE:
            out["confirm"] = self.confirm.value
        if self.verify is not None:
            out["verify"] = {
                "deadline": self.verify.deadline,
                "expect": self.verify.expect.value,
                "min_days_left": self.verify.min_days_left,
            }
        if self.on_failure:
            out["on_failure"] = [s.to_dict() for s in self.on_failure]
        if self.continue_on_error:
            out["continue_on_error"] = True
        return out


@dataclass(frozen=True)
class Plan:
    """A runbook rendered for one endpoint: what will run, where, with which values."""

    runbook: Runbook
    """The runbook."""
    endpoint: Endpoint
    """The endpoint."""
    values: tuple[PlanValue, ...]
    """Parameter values and their sources."""
    target: TargetInfo | None
    """Where run steps execute (None when no step needs the SSH target)."""
    steps: tuple[PlannedStep, ...]
    """Steps in order (each carries its ``on_failure`` steps)."""
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """Secret values, for redaction."""
    targets: tuple[str, ...] = ()
    """Finding codes the run is for, as chosen (``--for``, the TUI's selected finding);
    empty: the endpoint's current findings that the runbook's ``fixes:`` names, found
    by the fresh check the run makes before its first step."""

    @property
    def for_text(self) -> str:
        """``This run is for: ...`` in plain words."""
        rb = self.runbook
        if self.targets:
            return "This run is for: " + ", ".join(f"{c} ({_title(c)})" for c in self.targets)
        if rb.fixes:
            return (
                "This run is for: the most severe of the findings it fixes that a fresh check before "
                f"the first step finds (it fixes: {', '.join(rb.fixes)})"
            )
        return f"This run is for: no finding ({rb.name} names none it fixes)"

    def all_steps(self) -> list[PlannedStep]:
        """Steps in order, each followed by its ``on_failure`` steps."""
        out: list[PlannedStep] = []
        for step in self.steps:
            out.append(step)
            out.extend(step.on_failure)
        return out

    def confirmations(self) -> list[PlannedStep]:
        """Every step that asks for a confirmation (``on_failure`` steps included)."""
        return [s for s in self.all_steps() if s.confirm is not ConfirmKind.NONE]

    @property
    def has_verify(self) -> bool:
        """Whether a verification step is part of the plan."""
        return any(s.kind is StepKind.VERIFY for s in self.all_steps())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the audit log)."""
        return {
            "runbook": self.runbook.name,
            "runbook_path": self.runbook.file,
            "runbook_sha256": self.runbook.sha256,
            "endpoint": self.endpoint.name,
            "target": self.target.label if self.target else None,
            "params": {v.name: {"value": v.value, "source": v.source} for v in self.values},
            "fixes": list(self.runbook.fixes),
            "for": list(self.targets) if self.targets else "the most severe current findings it fixes",
            "steps": [s.to_dict() for s in self.steps],
        }

    def render_text(self) -> str:
        """The plan as plain text (``certpager run --plan``)."""
        ep = self.endpoint
        rb = self.runbook
        lines = [f"Runbook {rb.name}: {rb.title}"]
        lines.append(f"  file {rb.file}" + (f" (sha256 {rb.sha256[:16]}…)" if rb.sha256 else ""))
        sni = f", SNI {ep.verify_name}" if ep.verify_name != ep.host else ""
        lines.append(f"Endpoint {ep.name}: {ep.address}{sni}")
        lines.append(self.for_text)
        if self.target is not None:
            kh = (
                f" (host key checked against {', '.join(self.target.known_hosts)})"
                if self.target.known_hosts
                else ""
            )
            lines.append(f"Target {self.target.label}{kh}")
        if self.values:
            lines.append("Parameters:")
            width = max(len(v.name) for v in self.values)
            for v in self.values:
                shown = printable(v.value) if v.value else "(empty)"
                lines.append(f"  {v.name.ljust(width)} = {shown}  ({v.source})")
        lines.append("Steps (this is the plan: nothing has run):")
        for number, step in enumerate(self.steps, 1):
            lines.extend(_step_lines(step, str(number), ep, targets=self.targets, fixes=rb.fixes))
            for sub_number, sub in enumerate(step.on_failure, 1):
                lines.extend(
                    _step_lines(
                        sub,
                        f"{number}.{sub_number}",
                        ep,
                        indent="       ",
                        targets=self.targets,
                        fixes=rb.fixes,
                    )
                )
        remote = self.target is not None and not self.target.local
        if remote and any(s.kind is StepKind.RUN and not s.local for s in self.all_steps()):
            lines.append(
                f"Each remote command runs under `timeout --kill-after={int(KILL_GRACE)}s "
                f"<step timeout + {int(REMOTE_TIMEOUT_MARGIN)}s>` on the target, so it ends even "
                "if the connection drops; stdin is closed and no terminal is allocated."
            )
        return "\n".join(lines)


def _step_lines(
    step: PlannedStep,
    number: str,
    ep: Endpoint,
    indent: str = "  ",
    targets: Sequence[str] = (),
    fixes: Sequence[str] = (),
) -> list[str]:
    head = f"{indent}{number}. [{step.id}] {step.title}"
    if step.parent:
        head = f"{indent}{number}. if '{step.parent}' fails: [{step.id}] {step.title}"
    lines = [head]
    pad = indent + " " * (len(number) + 2)
    if step.confirm is ConfirmKind.PLAIN:
        lines.append(f"{pad}asks for confirmation (yes/no) first")
    elif step.confirm is ConfirmKind.TYPED:
        lines.append(f"{pad}asks you to type {step.confirm_token!r} first")
    if step.message:
        for text in step.message.splitlines():
            lines.append(f"{pad}! {printable(text)}")
    if step.kind is StepKind.RUN:
        lines.append(f"{pad}on {step.target}, timeout {format_seconds(step.timeout)}")
        lines.append(f"{pad}$ {step.display_command}")
        if step.stdin is not None:
            lines.append(f"{pad}(with input on stdin, not shown)")
    elif step.kind is StepKind.VERIFY and step.verify is not None:
        lines.append(f"{pad}{describe_verify(step.verify, ep, targets, fixes)}")
    if step.continue_on_error:
        lines.append(f"{pad}(a failure does not stop the run)")
    return lines


def _title(code: str) -> str:
    spec = SPECS.get(code)
    return spec.title if spec is not None else code


def check_targets(runbook: Runbook, codes: Sequence[str]) -> tuple[str, ...]:
    """Validate ``--for`` codes: known to the catalogue and named by the runbook's ``fixes:``.

    Raises:
        RunbookError: one line naming the code and what the runbook fixes.
    """
    out: list[str] = []
    for code in codes:
        code = code.strip()
        if code not in SPECS:
            close = difflib.get_close_matches(code, list(SPECS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RunbookError(
                f"{code!r} is not a finding code{hint}; `certpager check` reports: {', '.join(sorted(SPECS))}",
                file="<command line>",
                key="--for",
            )
        if code not in runbook.fixes:
            fixes = ", ".join(runbook.fixes) or "nothing it can verify"
            raise RunbookError(
                f"runbook {runbook.name} does not fix {code} (its fixes: {fixes})",
                file="<command line>",
                key="--for",
            )
        if code not in out:
            out.append(code)
    return tuple(out)


def describe_verify(
    spec: VerifySpec, ep: Endpoint, targets: Sequence[str] = (), fixes: Sequence[str] = ()
) -> str:
    """What a verification step checks, in plain words."""
    min_days = spec.min_days_left if spec.min_days_left is not None else ep.thresholds.warning_days
    backends = ", ".join(f"{b.host}:{b.port}" for b in ep.backends) or f"every address of {ep.address}"
    codes = (
        ", ".join(targets) if targets else ("the most severe it fixes, seen before the run" if fixes else "")
    )
    gone = f"the findings the run is for ({codes}) are gone, " if codes else ""
    if spec.expect is VerifyExpect.FINDINGS:
        return (
            f"fresh TLS handshakes (with the checks those findings need) to {backends} "
            f"(SNI {ep.verify_name}), polled quickly at first, for up to {spec.deadline:g} s; passes "
            f"when on every backend {gone or 'the handshake completes, '}and nothing got worse "
            "(no new finding at warning or above)"
        )
    proof = {
        VerifyExpect.CHANGED: "the served certificate differs from the one served before the run",
        VerifyExpect.STORED: "the served certificate equals the stored one",
        VerifyExpect.CHANGED_OR_STORED: (
            "the served certificate equals the stored one"
            if ep.stored is not None
            else "the served certificate differs from the one served before the run"
        ),
    }[spec.expect]
    return (
        f"fresh TLS handshakes to {backends} (SNI {ep.verify_name}), polled quickly at first, for up to "
        f"{format_seconds(spec.deadline)}; passes when on every backend {gone}{proof}, the chain verifies, the "
        f"name matches, more than {min_days:g} days are left and nothing got worse"
    )


# ------------------------------------------------------------------- building


class TargetResolver(Protocol):
    """Where run steps go for an endpoint, as known before connecting (no network).

    :func:`describe_target` is the default; tests and the TUI pass their own
    (a plain function ``Endpoint -> TargetInfo | None`` fits).
    """

    def __call__(self, endpoint: Endpoint, /) -> TargetInfo | None:
        """The target of ``endpoint``'s run steps; None when it has no ``ssh:``."""
        ...


def builtin_values(endpoint: Endpoint) -> dict[str, str]:
    """Values of the built-in variables for ``endpoint`` (all from the config)."""
    ssh = endpoint.ssh
    stored = endpoint.stored
    return {
        "endpoint": endpoint.name,
        "host": endpoint.host,
        "port": str(endpoint.port),
        "sni": endpoint.verify_name,
        "ssh_host": ssh.host if ssh else "",
        "ssh_user": (ssh.user or "") if ssh else "",
        "ssh_port": str(ssh.port) if ssh and ssh.port else "",
        "stored_path": (stored.path or "") if stored and stored.kind == "file" else "",
        "secret_namespace": (stored.namespace or "") if stored and stored.kind == "secret" else "",
        "secret_name": (stored.secret or "") if stored and stored.kind == "secret" else "",
    }


def local_target() -> TargetInfo:
    """This machine, as the target of ``ssh: local`` endpoints and ``local: true`` steps."""
    from certpager.ssh.local import LocalRunner

    user = LocalRunner().user
    return TargetInfo(label=f"local ({user})", host="local", port=0, user=user, local=True)


def describe_target(endpoint: Endpoint) -> TargetInfo | None:
    """Where run steps go for ``endpoint``, resolved through ``~/.ssh/config`` (no network).

    The default :class:`TargetResolver`.
    """
    ssh = endpoint.ssh
    if ssh is None:
        return None
    if ssh.is_local:
        return local_target()
    from certpager.ssh.asyncssh_runner import AsyncsshRunner

    runner = AsyncsshRunner(ssh)
    try:
        host, port, user = runner.resolve()
        files = tuple(runner.known_hosts_files())
    except SSHError:
        host, port, user = ssh.host, ssh.port or 22, ssh.user or "?"
        files = ()
    return TargetInfo(label=runner.label, host=host, port=port, user=user, local=False, known_hosts=files)


@dataclass
class _Values:
    """Parameter values for one plan: for rendering, for showing, and the secrets among them."""

    scalars: dict[str, str] = field(default_factory=dict)
    """Every parameter's (validated) text and the built-ins, for ``{name}``."""
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Multi-word parameters split into argv words."""
    shown: list[PlanValue] = field(default_factory=list)
    """What the plan shows (secrets masked)."""
    secrets: list[str] = field(default_factory=list)
    """Secret values, for redaction."""


@dataclass(frozen=True)
class _Render:
    """What rendering one step needs: the runbook, endpoint, values and where steps run."""

    runbook: Runbook
    endpoint: Endpoint
    values: _Values
    builtins: dict[str, str]
    target: TargetInfo | None
    """Where remote run steps go (None: not resolved)."""
    local_label: str | None
    """``local (user)`` when a step runs on this machine."""

    def where(self, step: Step) -> str:
        """The label of the machine a run step executes on (empty for other kinds)."""
        if step.kind is not StepKind.RUN:
            return ""
        if step.local:
            return self.local_label or "local"
        if self.target is not None:
            return self.target.label
        ssh = self.endpoint.ssh
        return ssh.host if ssh else "?"

    def error(self, message: str, step: Step) -> RunbookError:
        """A one-line error at ``step``'s line in the runbook."""
        return RunbookError(message, file=self.runbook.file, line=step.line, key=step.key)


def build_plan(
    runbook: Runbook,
    endpoint: Endpoint,
    overrides: Mapping[str, str] | None = None,
    *,
    target: TargetInfo | None = None,
    resolve_target: bool = True,
    resolver: TargetResolver = describe_target,
    targets: Sequence[str] = (),
) -> Plan:
    """Render ``runbook`` for ``endpoint``.

    Args:
        runbook: a loaded runbook.
        endpoint: the endpoint it runs for.
        overrides: ``--param`` values (highest precedence).
        target: where run steps execute; asked of ``resolver`` when None.
        resolve_target: False: do not ask ``resolver`` (the plan then shows the
            configured host name only).
        resolver: finds the SSH target of ``endpoint``; :func:`describe_target`
            (reads ``~/.ssh/config``, no network) by default.
        targets: finding codes the run is for (``--for``); each must be in the runbook's
            ``fixes:``. Empty: the current findings it fixes, decided when the run starts.

    Raises:
        RunbookError: an unknown ``--param``, a missing or invalid value, a built-in
            variable the endpoint cannot fill, or run steps without an SSH target.
    """
    overrides = dict(overrides or {})
    chosen = check_targets(runbook, targets)
    builtins = builtin_values(endpoint)
    _check_builtin_values(runbook, endpoint, builtins)
    _check_overrides(runbook, overrides)
    values = _param_values(runbook, endpoint, overrides, builtins)
    if target is None and resolve_target:
        target = resolver(endpoint)
    needs_target = _needs_target(runbook, endpoint)
    local_label = local_target().label if any(s.local for s in runbook.all_steps()) else None
    render = _Render(runbook, endpoint, values, builtins, target, local_label)
    return Plan(
        runbook=runbook,
        endpoint=endpoint,
        values=tuple(values.shown),
        target=target if needs_target else None,
        steps=tuple(_plan_step(step, render) for step in runbook.steps),
        secrets=tuple(values.secrets),
        targets=chosen,
    )


def _check_overrides(runbook: Runbook, overrides: Mapping[str, str]) -> None:
    """Every ``--param`` names a parameter of the runbook."""
    for name in overrides:
        if runbook.param(name) is None:
            known = ", ".join(p.name for p in runbook.params) or "none"
            raise RunbookError(
                f"unknown parameter {name!r} given with --param; {runbook.name} takes: {known}",
                file=runbook.file,
                line=runbook.line_of_params,
                key="params",
            )


def _param_values(
    runbook: Runbook, endpoint: Endpoint, overrides: dict[str, str], builtins: dict[str, str]
) -> _Values:
    """Each parameter's value (by precedence), validated by its type; then the built-ins."""
    out = _Values()
    for param in runbook.params:
        value, source = _raw_value(param, endpoint, overrides, builtins, runbook)
        validated = _validated(param, value, source, runbook)
        if param.type.multi_word:
            out.words[param.name] = validated
            out.scalars[param.name] = value
        else:
            out.scalars[param.name] = validated[0]
        if param.secret and value:
            out.secrets.append(value)
        out.shown.append(PlanValue(param.name, "********" if param.secret else value, source, param.secret))
    for name, value in builtins.items():
        out.scalars.setdefault(name, value)
    return out


def _validated(param: Param, value: str, source: str, runbook: Runbook) -> tuple[str, ...]:
    """``value`` checked against ``param``'s type (a secret is never echoed in the error)."""
    try:
        return validate_value(param, value)
    except ValueError as exc:
        shown = "(secret)" if param.secret else repr(printable(value))
        raise RunbookError(
            f"value {shown} from {source} {exc}",
            file=runbook.file,
            line=param.line,
            key=f"params.{param.name}",
        ) from None


def _needs_target(runbook: Runbook, endpoint: Endpoint) -> bool:
    """Whether a step runs on the SSH target; an error when the endpoint has none."""
    remote = [s for s in runbook.all_steps() if s.kind is StepKind.RUN and not s.local]
    if remote and endpoint.ssh is None:
        first = remote[0]
        raise RunbookError(
            f"endpoint {endpoint.name!r} has no ssh target in the config, but this step runs on it; "
            "add ssh: {host: ..., user: ...} to the endpoint (or ssh: local)",
            file=runbook.file,
            line=first.line,
            key=first.key,
        )
    return bool(remote)


def _templates(step: Step) -> list[Template]:
    """Every template of ``step``: argv, env values, confirmation token, message, stdin."""
    templates = [*step.argv, *(t for _, t in step.env), step.confirm_token, step.message]
    if step.stdin is not None:
        templates.append(step.stdin)
    return templates


def _check_builtin_values(runbook: Runbook, endpoint: Endpoint, builtins: dict[str, str]) -> None:
    """The built-in variables the runbook uses, validated like parameters of their type
    (``{stored_path}`` a path, ``{secret_name}`` a Kubernetes name...) before anything runs."""
    used: set[str] = set()
    for param in runbook.params:
        used.update(refs(param.default or ()))
    for step in runbook.all_steps():
        for template in _templates(step):
            used.update(refs(template))
    for name in sorted(used & set(BUILTINS)):
        try:
            validate_builtin(name, builtins[name])
        except ValueError as exc:
            raise RunbookError(
                f"the built-in {{{name}}} of endpoint {endpoint.name!r} ({quoted(builtins[name])}) {exc}",
                file=runbook.file,
                line=runbook.line_of_params,
                key=name,
            ) from None


def _raw_value(
    param: Param,
    endpoint: Endpoint,
    overrides: dict[str, str],
    builtins: dict[str, str],
    runbook: Runbook,
) -> tuple[str, str]:
    if param.name in overrides:
        return overrides[param.name], "--param"
    if param.name in endpoint.params:
        return endpoint.params[param.name], f"endpoint {endpoint.name} params"
    if param.default is None:
        raise RunbookError(
            f"is required: give it with --param {param.name}=VALUE or in the params of "
            f"endpoint {endpoint.name!r} in the config",
            file=runbook.file,
            line=param.line,
            key=f"params.{param.name}",
        )
    for name in refs(param.default):
        if not builtins.get(name):
            raise RunbookError(
                f"the default {template_source(param.default)!r} needs {{{name}}} "
                f"({BUILTINS[name]}), which endpoint {endpoint.name!r} does not have; "
                f"give {param.name} with --param or in the endpoint's params",
                file=runbook.file,
                line=param.line,
                key=f"params.{param.name}",
            )
    return render_text(param.default, builtins), "default"


def _check_builtins(step: Step, render: _Render) -> None:
    """Every built-in ``step`` uses has a value for this endpoint."""
    for template in _templates(step):
        for name in refs(template):
            if name in BUILTINS and not render.builtins.get(name):
                raise render.error(
                    f"uses {{{name}}} ({BUILTINS[name]}), which endpoint {render.endpoint.name!r} "
                    "does not have in the config",
                    step,
                )


def _render_command(step: Step, render: _Render) -> tuple[tuple[str, ...], str]:
    """``(argv, command line)`` of a run step (empty for other kinds)."""
    if step.kind is not StepKind.RUN:
        return (), ""
    argv = render_argv(step.argv, render.values.scalars, render.values.words, step.env)
    if not argv:
        raise render.error("renders to an empty command (every argument came from empty parameters)", step)
    if argv[0].startswith("-"):
        raise render.error(f"the command would start with {argv[0]!r}", step)
    return argv, shlex.join(argv)


def _render_token(step: Step, render: _Render) -> str | None:
    """What must be typed for a typed confirmation (None for other confirmations)."""
    if step.confirm is not ConfirmKind.TYPED:
        return None
    token = render_text(step.confirm_token, render.values.scalars)
    if not token.strip():
        raise render.error("the typed confirmation token renders empty", step)
    return token


def _plan_step(step: Step, render: _Render, parent: str | None = None) -> PlannedStep:
    """``step`` (and its ``on_failure`` steps) rendered for the plan's endpoint."""
    _check_builtins(step, render)
    argv, command = _render_command(step, render)
    token = _render_token(step, render)
    scalars = render.values.scalars
    return PlannedStep(
        id=step.id,
        title=step.title,
        kind=step.kind,
        key=step.key,
        argv=argv,
        command=command,
        local=step.local,
        target=render.where(step),
        timeout=step.timeout,
        confirm=step.confirm,
        confirm_token=token,
        message=render_text(step.message, scalars),
        continue_on_error=step.continue_on_error,
        on_failure=tuple(_plan_step(s, render, parent=step.id) for s in step.on_failure),
        parent=parent,
        verify=step.verify,
        stdin=render_text(step.stdin, scalars).encode() if step.stdin is not None else None,
    )
