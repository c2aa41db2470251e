"""Render-only views of a runbook run: the plan, the step list, the verification panel.

Everything comes from the engine's dataclasses (``Plan``, ``StepResult``,
``VerificationResult``) and is rendered as ``Text`` built from plain strings:
commands, remote output and certificate names are shown literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from certpager.runbook import (
    BackendVerdict,
    ConfirmKind,
    Plan,
    PlannedStep,
    Runbook,
    ServedCert,
    StepKind,
    VerificationResult,
)
from certpager.runbook.loader import shipped_runbook_dir
from certpager.runbook.plan import describe_verify
from certpager.tui import view

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StepState:
    """Where one step of a run is."""

    number: str
    """``1``, ``2``, ``2.1`` (an on_failure step)."""
    step: PlannedStep
    """The planned step."""
    state: str = "pending"
    """``pending``, ``running``, ``asking``, ``ok``, ``failed``, ``timeout``, ``cancelled``,
    ``unknown``, ``declined``, ``skipped``."""
    note: str = ""
    """Outcome in plain words (``exit 0 in 3.2 s``...)."""


STATE_MARKS = {
    "pending": ("·", "pending"),
    "running": ("▶", "running"),
    "asking": ("?", "asking"),
    "ok": ("✓", "ok"),
    "failed": ("✖", "failed"),
    "timeout": ("✖", "failed"),
    "cancelled": ("■", "failed"),
    "unknown": ("?", "failed"),
    "declined": ("■", "muted"),
    "skipped": ("–", "muted"),
}
"""Symbol and style key per step state (the symbol carries the meaning without colour)."""

_RUN_CLASSES = {
    "--muted",
    "--heading",
    "--ok",
    "--failed",
    "--running",
    "--asking",
    "--pending",
    "--command",
    "--warning",
}


def runbook_origin(runbook: Runbook) -> str:
    """``shipped certbot-force-renew.yaml``, or the file's path (home shown as ``~``)."""
    shipped = shipped_runbook_dir()
    path = runbook.path
    if path is None:
        return runbook.file
    if shipped is not None and path.resolve().parent == shipped.resolve():
        return f"shipped with certpager: {path.name}"
    return view.home_path(path)


def plan_steps(plan: Plan) -> list[tuple[str, PlannedStep]]:
    """``(number, step)`` in order, ``on_failure`` steps numbered ``n.m``."""
    out: list[tuple[str, PlannedStep]] = []
    for i, step in enumerate(plan.steps, 1):
        out.append((str(i), step))
        out.extend((f"{i}.{j}", sub) for j, sub in enumerate(step.on_failure, 1))
    return out


class PlanView(Widget):
    """The plan: target, parameters and every step with its exact command. Nothing has run."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"plan-view{c}" for c in _RUN_CLASSES}

    def __init__(self, plan: Plan, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plan = plan
        """What would run."""

    def _style(self, key: str) -> Style:
        return self.get_component_rich_style(f"plan-view--{key}")

    def render(self) -> RenderableType:
        plan = self.plan
        ep = plan.endpoint
        rb = plan.runbook
        muted = self._style("muted")
        head = Table.grid(padding=(0, 1))
        head.add_column(width=14, no_wrap=True)
        head.add_column(ratio=1, overflow="fold")
        head.add_row(
            Text("runbook", muted),
            Text.assemble((rb.name, self._style("heading")), f" · {view.printable(rb.title)}"),
        )
        sha = f" (sha256 {rb.sha256[:12]}…)" if rb.sha256 else ""
        head.add_row(Text("file", muted), Text(view.printable(runbook_origin(rb)) + sha, muted))
        sni = f" · SNI {ep.verify_name}" if ep.verify_name != ep.host else ""
        head.add_row(Text("endpoint", muted), Text(view.printable(f"{ep.name} · {ep.address}{sni}")))
        head.add_row(Text("for", muted), Text(plan.for_text.removeprefix("This run is for: ")))
        if plan.target is not None:
            target = Text.assemble((view.printable(plan.target.label), self._style("heading")))
            target.append(
                view.printable(
                    f"   host {plan.target.host} · port {plan.target.port} · user {plan.target.user}"
                ),
                muted,
            )
            head.add_row(Text("runs on", muted), target)
            if plan.target.known_hosts:
                head.add_row(
                    Text("host key", muted),
                    Text(view.printable("checked against " + ", ".join(plan.target.known_hosts)), muted),
                )
        for value in plan.values:
            shown = view.printable(value.value) if value.value else "(empty)"
            head.add_row(
                Text(value.name, muted) if len(value.name) <= 14 else Text(value.name[:13] + "…", muted),
                Text.assemble(shown, (f"  ({value.source})", muted)),
            )
        steps = Table.grid(padding=(0, 1))
        steps.add_column(width=4, no_wrap=True, justify="right")
        steps.add_column(ratio=1, overflow="fold")
        for number, step in plan_steps(plan):
            steps.add_row(Text(f"{number}.", self._style("heading")), self._step(step))
            steps.add_row("", "")
        description = (
            Text(view.printable(" ".join(rb.description.split())), muted) if rb.description else Text("")
        )
        note = Text(
            "This is the plan: nothing has run. Each remote command runs under a remote `timeout`, "
            "with stdin closed and no terminal; everything is written to the audit log.",
            muted,
        )
        return Group(
            head, Text(""), description, Text(""), Text("STEPS", self._style("heading")), steps, note
        )

    def _step(self, step: PlannedStep) -> Text:
        muted = self._style("muted")
        text = Text()
        if step.parent:
            text.append(f"if {step.parent} fails: ", self._style("warning"))
        text.append(view.printable(step.title), self._style("heading"))
        text.append(f"  [{step.id}]", muted)
        if step.confirm is ConfirmKind.PLAIN:
            text.append("\nasks yes/no first", self._style("warning"))
        elif step.confirm is ConfirmKind.TYPED:
            text.append(f"\nasks you to type {step.confirm_token!r} first", self._style("warning"))
        for line in step.message.splitlines() if step.message else ():
            text.append("\n! " + view.printable(line), self._style("warning"))
        if step.kind is StepKind.RUN:
            text.append(f"\non {step.target} · timeout {step.timeout:g} s", muted)
            text.append("\n$ ", muted)
            text.append(step.display_command, self._style("command"))
            if step.stdin is not None:
                text.append("\n(with input on stdin, not shown)", muted)
        elif step.kind is StepKind.VERIFY and step.verify is not None:
            text.append(
                "\n"
                + describe_verify(
                    step.verify, self.plan.endpoint, self.plan.targets, self.plan.runbook.fixes
                ),
                muted,
            )
        if step.continue_on_error:
            text.append("\n(a failure does not stop the run)", muted)
        return text


class StepList(Widget):
    """One line per step with its state; the running one is marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"step-list{c}" for c in _RUN_CLASSES}

    steps: reactive[tuple[StepState, ...]] = reactive((), always_update=True, layout=True)
    """The steps and their states (a new note adds lines: the height follows)."""

    def render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=2, no_wrap=True)
        grid.add_column(width=4, no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        for s in self.steps:
            mark, key = STATE_MARKS.get(s.state, ("?", "muted"))
            style = self.get_component_rich_style(f"step-list--{key}")
            body = Text(view.printable(s.step.title), style if s.state in ("running", "asking") else Style())
            if s.note:
                body.append(
                    f"\n{view.printable(s.note)}",
                    self.get_component_rich_style(f"step-list--{'failed' if key == 'failed' else 'muted'}"),
                )
            grid.add_row(
                Text(mark, style), Text(s.number, self.get_component_rich_style("step-list--muted")), body
            )
        return grid


class VerificationPanel(Widget):
    """Before and after, side by side, per backend: the proof the fix is served."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"verification-panel{c}" for c in _RUN_CLASSES} | {
        "verification-panel--verdict-ok",
        "verification-panel--verdict-failed",
    }

    result: reactive[VerificationResult | None] = reactive(None, layout=True)
    """The verdict (None while the verification has not reached one)."""
    attempt: reactive[tuple[BackendVerdict, ...]] = reactive((), layout=True)
    """Per-backend verdicts of the latest attempt (shown while polling)."""
    attempt_number: reactive[int] = reactive(0)
    """Which attempt the verdicts come from."""
    now: reactive[datetime] = reactive(_EPOCH)
    """The clock days-left are measured against."""

    def _style(self, key: str) -> Style:
        return self.get_component_rich_style(f"verification-panel--{key}")

    def render(self) -> RenderableType:
        result = self.result
        verdicts = result.backends if result is not None else self.attempt
        table = Table(box=None, show_edge=False, pad_edge=False, expand=True, padding=(0, 1))
        # The backend address is never cut: its column is as wide as the longest one.
        backend_width = max((len(v.backend) for v in verdicts), default=7)
        table.add_column("backend", style=self._style("muted"), no_wrap=True, width=max(backend_width, 7))
        table.add_column("before the run", ratio=5, overflow="fold")
        table.add_column("after", ratio=5, overflow="fold")
        for v in verdicts:
            table.add_row(Text(view.printable(v.backend)), *self._before_after(v, result))
        parts: list[RenderableType] = [self._head(result)]
        if result is not None and (result.targets or result.new or result.other):
            parts.append(self._findings(result))
        parts.append(table)
        if result is not None and result.stored is not None:
            parts.append(
                Text.assemble(
                    ("stored  ", self._style("muted")), self._cert(result.stored, good=True, plain=True)
                )
            )
        if result is not None:
            parts.extend(Text("note: " + view.printable(n), self._style("muted")) for n in result.notes)
        return Group(*parts)

    def _head(self, result: VerificationResult | None) -> Text:
        """``✓ VERIFIED  message  (2 attempts, 3.1 s)``, or the attempt in progress."""
        if result is None:
            head = Text.assemble(("VERIFYING", self._style("heading")))
            head.append(
                f"  attempt {self.attempt_number}: fresh handshakes to every backend…", self._style("muted")
            )
            return head
        ok = result.passed
        head = Text()
        head.append(
            " ✓ VERIFIED " if ok else " ✖ NOT VERIFIED ",
            self._style("verdict-ok" if ok else "verdict-failed"),
        )
        head.append("  " + view.printable(result.message), self._style("ok" if ok else "failed"))
        head.append(
            f"  ({result.attempts} attempt{'s' if result.attempts != 1 else ''}, {result.elapsed:.1f} s)",
            self._style("muted"),
        )
        return head

    def _before_after(self, v: BackendVerdict, result: VerificationResult | None) -> tuple[Text, Text]:
        """One backend's certificate before the run and after, with why it passed or not."""
        after = self._cert(v.after, good=v.passed)
        if v.reasons:
            after.append("\n" + "\n".join(f"✖ {view.printable(r)}" for r in v.reasons), self._style("failed"))
        elif v.passed:
            renewed = v.before is not None and v.after is not None and v.before.sha256 != v.after.sha256
            said = ["findings gone"] if result is not None and result.targets else []
            if renewed:
                said.append("new certificate served, chain verifies, name matches")
            said.append("nothing worse")
            proof = ", ".join(said)
            after.append(f"\n✓ {proof}", self._style("ok"))
        before = self._cert(v.before, good=False, before=True)
        if v.findings_before or v.findings_after:
            before.append("\nfindings: " + (", ".join(v.findings_before) or "none"), self._style("muted"))
            after.append("\nfindings: " + (", ".join(v.findings_after) or "none"), self._style("muted"))
        return before, after

    def _findings(self, result: VerificationResult) -> Text:
        """``for: chain_incomplete  ✓ gone: ...  ✖ remains: ...  ✖ new: ...``."""
        text = Text()
        text.append("for ", self._style("muted"))
        text.append(", ".join(result.targets) or "no finding", self._style("heading"))
        if result.gone:
            text.append(f"   ✓ gone: {', '.join(result.gone)}", self._style("ok"))
        if result.remaining:
            text.append(f"   ✖ remains: {', '.join(result.remaining)}", self._style("failed"))
        absent = [c for c in result.targets if c not in result.gone and c not in result.remaining]
        if absent:
            text.append(f"   not seen before: {', '.join(absent)}", self._style("muted"))
        if result.new:
            text.append(f"   ✖ new (worse): {', '.join(result.new)}", self._style("failed"))
        if result.other:
            text.append(f"   still there, not this run's: {', '.join(result.other)}", self._style("muted"))
        return text

    def _cert(
        self, cert: ServedCert | None, *, good: bool, before: bool = False, plain: bool = False
    ) -> Text:
        if cert is None:
            return Text("no certificate (no handshake)", self._style("muted" if before else "failed"))
        days = (cert.not_after - self.now).total_seconds() / 86400.0
        style = self._style("muted") if plain else self._style("ok" if good else "failed")
        text = Text()
        text.append(f"{view.date_text(cert.not_after)} ", style)
        text.append(f"({view.days_long(days)})", style)
        text.append(f"\nserial {cert.serial}", self._style("muted"))
        text.append(f"\nsha256 {cert.sha256[:24]}…", self._style("muted"))
        text.append("\nissuer " + view.printable(view.dn_short(cert.issuer)), self._style("muted"))
        return text
