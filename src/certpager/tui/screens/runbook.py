"""The runbook flow: choose, read the plan, confirm each dangerous step, watch, verify.

The flow itself is a worker on the app (:meth:`CertpagerApp.fix_flow`) that uses
``push_screen_wait`` for each question; these screens only ask and show.

- :class:`RunbookChooser`: the runbooks that apply, those a finding names first.
- :class:`PlanScreen`: every command, host and user before anything runs.
- :class:`ConfirmModal`: one step's confirmation; a destructive step needs the
  name typed exactly, and Enter alone never confirms it.
- :class:`RunScreen`: steps, streamed output, then the verification panel;
  Ctrl+C or Esc cancels the running step after asking.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from certpager.config import Endpoint
from certpager.runbook import (
    BaselineCaptured,
    CatalogEntry,
    CommandSent,
    ConfirmationAnswered,
    ConfirmKind,
    ConfirmReply,
    ConfirmRequest,
    Connected,
    Notice,
    OutputReceived,
    Plan,
    Runbook,
    RunEvent,
    RunFinished,
    RunOutcome,
    RunResult,
    RunStarted,
    StepFinished,
    StepKind,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
)
from certpager.tui import view
from certpager.tui.messages import RunbookCrashed, RunbookEvent
from certpager.tui.services import Clock
from certpager.tui.widgets.pane import OutputLog, Pane
from certpager.tui.widgets.run_views import PlanView, StepList, StepState, VerificationPanel, plan_steps

# -- choose -------------------------------------------------------------------


class RunbookChooser(ModalScreen[Runbook | None]):
    """Pick one of the runbooks that apply to the endpoint: the one the selected finding's advice
    names first, then those whose ``fixes:`` names the selected finding, then the others
    recommended for its current findings, then the rest."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
    ]

    def __init__(
        self,
        endpoint: Endpoint,
        runbooks: Sequence[Runbook],
        recommended: dict[str, list[str]],
        invalid: Sequence[CatalogEntry] = (),
        selected: str | None = None,
        advised: str | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        """The endpoint to fix."""
        self.selected = selected
        """The finding the fix is for (the one marked on the endpoint screen), if any."""
        self.advised = advised
        """The runbook the selected finding's advice was changed to for this incident (the
        reload, when the renewed certificate is on disk): listed first, and the only one said
        to fix that finding. None: every runbook whose ``fixes:`` name it."""

        def rank(rb: Runbook) -> int:
            if advised is not None and rb.name == advised:
                return 0
            if self._for_selected(rb):
                return 1
            return 2 if rb.name in recommended else 3

        order = {rb.name: i for i, rb in enumerate(runbooks)}
        self.runbooks = sorted(runbooks, key=lambda rb: (rank(rb), order[rb.name]))
        """The runbooks offered, in the order shown."""
        self.recommended = recommended
        """Runbook name -> current finding codes it fixes (or that name it in the catalogue)."""
        self.invalid = list(invalid)
        """Runbook files that failed to load (shown so a typo is not silent)."""

    def compose(self) -> ComposeResult:
        options = []
        for rb in self.runbooks:
            prompt = Text()
            prompt.append(rb.name, "bold")
            prompt.append(f"  {view.printable(rb.title)}")
            prompt.append(self._fixes_line(rb), "italic")
            options.append(Option(prompt, id=rb.name))
        with Vertical(id="chooser-box") as box:
            box.border_title = f"Fix {self.endpoint.name}: choose a runbook"
            box.border_subtitle = "Enter shows the plan · Esc back"
            yield OptionList(*options, id="runbooks", markup=False)
            for entry in self.invalid:
                yield Static(
                    Text(f"not offered: {entry.path.name}: {view.printable(str(entry.error))}"),
                    classes="chooser-invalid",
                )

    def _for_selected(self, rb: Runbook) -> bool:
        """Whether ``rb`` is a fix for the selected finding."""
        if self.selected is None:
            return False
        if self.advised is not None:
            return rb.name == self.advised
        return self.selected in rb.fixes

    def _fixes_line(self, rb: Runbook) -> str:
        """``fixes: chain_incomplete (this finding), hsts_missing`` — what it would fix here."""
        codes = self.recommended.get(rb.name, [])
        if self._for_selected(rb) and self.selected not in codes:
            codes = [self.selected, *codes] if self.selected is not None else codes
        shown = [
            f"{c} (this finding)" if c == self.selected else c
            for c in codes
            if c in rb.fixes and (c != self.selected or self._for_selected(rb))
        ]
        if shown:
            return f"\n  fixes: {', '.join(shown)}"
        if codes:
            return f"\n  for: {', '.join(codes)} (a diagnostic: fixes nothing it can verify)"
        if rb.fixes:
            more = f" and {len(rb.fixes) - 3} more" if len(rb.fixes) > 3 else ""
            return f"\n  fixes: {', '.join(rb.fixes[:3])}{more} (none seen now)"
        return ""

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        chosen = next((rb for rb in self.runbooks if rb.name == event.option.id), None)
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        """Back without choosing."""
        self.dismiss(None)


# -- plan ---------------------------------------------------------------------


class PlanScreen(Screen[bool]):
    """The plan of one runbook for one endpoint; nothing runs until Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "run", "Run it"),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Keys"),
    ]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        """What would run."""

    def compose(self) -> ComposeResult:
        rb = self.plan.runbook
        title = Text.assemble((" PLAN ", "reverse bold"), no_wrap=True, overflow="ellipsis")
        title.append(f"  {rb.name} for {view.printable(self.plan.endpoint.name)} — nothing has run yet")
        yield Static(title, id="plan-title")
        with Pane(id="plan-body"):
            yield PlanView(self.plan, id="plan")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan-body").focus()

    def action_run(self) -> None:
        """Start the run (each dangerous step still asks)."""
        self.dismiss(True)

    def action_back(self) -> None:
        """Back without running anything."""
        self.dismiss(False)


# -- confirm ------------------------------------------------------------------


class ConfirmInput(Input):
    """The typed confirmation: Enter submits only the exact name."""


class ConfirmModal(ModalScreen[ConfirmReply]):
    """Ask before one step: what, where, the exact command, the runbook's warning.

    A plain step is confirmed with ``y`` (or the Run button). A destructive
    (typed) step is confirmed only by typing :attr:`ConfirmRequest.expected`
    exactly and pressing Enter; Enter on an empty or wrong text does nothing.
    Esc or ``n`` declines (the engine then stops the run).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "decline", "Don't run"),
        Binding("ctrl+c", "decline", "Don't run", show=False),
    ]

    def __init__(self, request: ConfirmRequest) -> None:
        super().__init__()
        self.request = request
        """What the engine asks."""

    @property
    def typed(self) -> bool:
        """Whether the name must be typed."""
        return self.request.kind is ConfirmKind.TYPED

    def compose(self) -> ComposeResult:
        req = self.request
        with Vertical(id="confirm-box", classes="-typed" if self.typed else "") as box:
            box.border_title = "Destructive step: type to confirm" if self.typed else "Confirm step"
            box.border_subtitle = "Esc: don't run" if self.typed else "y: run · n or Esc: don't run"
            with Pane(id="confirm-facts"):
                yield Static(self._facts(), id="confirm-text")
            if self.typed:
                yield Static(
                    Text.assemble(
                        "Type ", (repr(req.expected or ""), "bold"), " and press Enter to run this step:"
                    ),
                    id="confirm-prompt",
                )
                yield ConfirmInput(placeholder="type the name here", id="confirm-input")
            with Horizontal(id="confirm-buttons"):
                yield Button(
                    "Run this step (Enter)" if self.typed else "Run this step (y)",
                    id="confirm-yes",
                    variant="error" if self.typed else "warning",
                    disabled=self.typed,
                )
                yield Button("Don't run (Esc)" if self.typed else "Don't run (n)", id="confirm-no")

    def _facts(self) -> RenderableType:
        req = self.request
        step = req.step
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=9, no_wrap=True, style="dim")
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row("step", Text.assemble((view.printable(step.title), "bold"), f"  [{step.id}]"))
        grid.add_row("endpoint", Text(view.printable(req.endpoint)))
        if step.kind is StepKind.RUN:
            where = Text.assemble(
                (view.printable(req.target), "bold"),
                view.printable(f" ({req.address})") if req.address else "",
            )
            grid.add_row("runs on", where)
            if req.host_key_fingerprint:
                grid.add_row("host key", Text(req.host_key_fingerprint))
            grid.add_row("command", Text.assemble(("$ ", "dim"), (step.display_command, "bold")))
            grid.add_row("timeout", Text(f"{step.timeout:g} s"))
        parts: list[RenderableType] = [grid]
        if step.message:
            warning = Text()
            for line in step.message.splitlines():
                warning.append("! " + view.printable(line) + "\n", "bold")
            parts.extend([Text(""), warning])
        return Group(*parts)

    def on_mount(self) -> None:
        if self.typed:
            self.query_one(ConfirmInput).focus()
        else:
            self.query_one("#confirm-yes", Button).focus()

    def _matches(self) -> bool:
        return self.query_one(ConfirmInput).value == (self.request.expected or "")

    @on(Input.Changed, "#confirm-input")
    def _typed_changed(self) -> None:
        self.query_one("#confirm-yes", Button).disabled = not self._matches()

    @on(Input.Submitted, "#confirm-input")
    def _typed_submitted(self) -> None:
        if self._matches():
            self.dismiss(ConfirmReply.with_text(self.query_one(ConfirmInput).value))
        else:
            self.notify(
                f"Type exactly {self.request.expected!r} to run this step, or Esc.",
                severity="warning",
                markup=False,
            )

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        if self.typed:
            if self._matches():
                self.dismiss(ConfirmReply.with_text(self.query_one(ConfirmInput).value))
            return
        self.dismiss(ConfirmReply.yes())

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.action_decline()

    def on_key(self, event: object) -> None:
        from textual.events import Key

        if not isinstance(event, Key) or self.typed:
            return
        if event.key == "y":
            event.stop()
            self.dismiss(ConfirmReply.yes())
        elif event.key == "n":
            event.stop()
            self.action_decline()

    def action_decline(self) -> None:
        """Do not run this step."""
        self.dismiss(ConfirmReply.no())


class AskModal(ModalScreen[bool]):
    """A yes/no question (cancel the run?). ``y`` yes; ``n``/Esc no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str, yes: str = "Yes (y)", no: str = "No (n)") -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box") as box:
            box.border_title = self.title_text
            yield Static(Text(self.question), id="ask-text")
            with Horizontal(id="ask-buttons"):
                yield Button(self.yes_label, id="ask-yes", variant="error")
                yield Button(self.no_label, id="ask-no")

    def on_mount(self) -> None:
        self.query_one("#ask-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "ask-yes")

    def action_answer(self, value: bool) -> None:
        """Answer."""
        self.dismiss(value)


class MessageModal(ModalScreen[None]):
    """A message the operator must read (a runbook that cannot be planned)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Pane(id="message-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "Enter or Esc closes"
            yield Static(Text(view.printable_lines(self.message)))

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)


# -- run ----------------------------------------------------------------------

_OUTCOME = {
    RunOutcome.SUCCEEDED: ("✓ SUCCEEDED", "-ok"),
    RunOutcome.FAILED: ("✖ FAILED", "-failed"),
    RunOutcome.CANCELLED: ("■ CANCELLED", "-failed"),
    RunOutcome.DECLINED: ("■ DECLINED", "-muted"),
}

_STEP_STATE = {
    "ok": "ok",
    "failed": "failed",
    "timeout": "timeout",
    "cancelled": "cancelled",
    "unknown": "unknown",
    "declined": "declined",
    "skipped": "skipped",
}


class RunScreen(Screen[None]):
    """A run as it happens: steps on the left, output on the right, the proof at the end."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "cancel_run", "Cancel run", priority=True),
        Binding("escape", "cancel_run", "Cancel run", show=False),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Keys"),
    ]

    phase: reactive[str] = reactive("starting")
    """``starting``, ``running``, ``finished``."""
    steps: reactive[tuple[StepState, ...]] = reactive((), always_update=True)
    """Every step and its state."""
    result: reactive[RunResult | None] = reactive(None)
    """How the run ended."""
    now: reactive[datetime] = reactive(datetime.min)
    """The clock (days left in the verification panel)."""

    def __init__(self, plan: Plan, *, clock: Clock, cancel: Callable[[str], None]) -> None:
        super().__init__()
        self.plan = plan
        """What runs."""
        self._cancel = cancel
        self._clock = clock
        self.set_reactive(RunScreen.steps, tuple(StepState(n, s) for n, s in plan_steps(plan)))
        self.set_reactive(RunScreen.now, clock())
        self.events: list[RunEvent] = []
        """Every event received (tests read them)."""
        self.audit_path: str | None = None
        """The audit log the run writes."""

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="run-title")
        with Horizontal(id="run-body"):
            with Pane(id="run-steps"):
                yield StepList(id="steps").data_bind(RunScreen.steps)
            yield OutputLog(id="output")
        with Pane(id="verification-pane") as pane:
            pane.display = False
            yield VerificationPanel(id="verification").data_bind(now=RunScreen.now)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(OutputLog).focus()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")

    def _title(self) -> Text:
        plan = self.plan
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.phase == "finished" and self.result is not None:
            label, _ = _OUTCOME[self.result.outcome]
            text.append(f" {label} ", "reverse bold")
        else:
            text.append(" RUNNING " if self.phase == "running" else " STARTING ", "reverse bold")
        text.append(f"  {plan.runbook.name} on {view.printable(plan.endpoint.name)}")
        if plan.target is not None:
            text.append(f" · {plan.target.label}", "dim")
        if self.audit_path:
            text.append(f" · audit {view.home_path(self.audit_path)}", "dim")
        return text

    def _refresh_title(self) -> None:
        title = self.query_one("#run-title", Static)
        title.update(self._title())
        title.set_class(self.phase == "finished" and self.result is not None and self.result.succeeded, "-ok")
        title.set_class(
            self.phase == "finished" and self.result is not None and not self.result.succeeded, "-failed"
        )

    def watch_phase(self) -> None:
        if self.is_mounted:
            self._refresh_title()
            self.refresh_bindings()

    # -- events -------------------------------------------------------------

    def _set_step(self, step_id: str, state: str, note: str = "", parent: str | None = None) -> None:
        steps = list(self.steps)
        for i, s in enumerate(steps):
            if s.step.id == step_id and (parent is None or s.step.parent == parent):
                steps[i] = StepState(s.number, s.step, state, note or s.note)
                break
        self.steps = tuple(steps)

    def _log(self, text: str | Text, style: str = "") -> None:
        line = text if isinstance(text, Text) else Text(view.printable(text, tabs=True), style)
        self.query_one(OutputLog).add(line)

    @on(RunbookEvent)
    def _on_event(self, message: RunbookEvent) -> None:
        message.stop()
        self.apply(message.event)

    def apply(self, event: RunEvent) -> None:
        """Show one engine event."""
        self.events.append(event)
        self.show_event(event)

    @functools.singledispatchmethod
    def show_event(self, event: RunEvent) -> None:
        """Show one event: one handler per event type below (an event without one shows nothing)."""

    @show_event.register
    def _run_started(self, event: RunStarted) -> None:
        self.phase = "running"
        self.audit_path = event.audit_path
        self._refresh_title()
        self._log(f"run {event.run_id} started; audit log {view.home_path(event.audit_path)}", "dim")

    @show_event.register
    def _connected(self, event: Connected) -> None:
        info = event.info
        fp = f", host key {info.host_key_fingerprint}" if info.host_key_fingerprint else ""
        self._log(f"connected to {info.label}{f' ({info.address})' if info.address else ''}{fp}", "dim")

    @show_event.register
    def _baseline(self, event: BaselineCaptured) -> None:
        if event.error:
            self._log(f"baseline: {event.error}", "bold")
        for cert in event.certs:
            self._log(f"before: {cert.backend} serves {cert.short()}", "dim")

    @show_event.register
    def _step_started(self, event: StepStarted) -> None:
        step = event.step
        self._set_step(
            step.id, "asking" if step.confirm is not ConfirmKind.NONE else "running", parent=step.parent
        )
        self._log(Text(f"── {event.number}. {view.printable(step.title)} ", "bold"))

    @show_event.register
    def _answered(self, event: ConfirmationAnswered) -> None:
        self._set_step(
            event.step_id, "running" if event.accepted else "declined", view.printable(event.detail)
        )
        self._log(f"confirmation: {event.detail}", "dim")

    @show_event.register
    def _command_sent(self, event: CommandSent) -> None:
        self._log(
            Text.assemble(
                ("$ ", "dim"),
                (view.printable(event.command), "bold"),
                (f"   on {view.printable(event.target)}", "dim"),
            )
        )

    @show_event.register
    def _output(self, event: OutputReceived) -> None:
        self._log(event.line, "italic" if event.stream == "stderr" else "")

    @show_event.register
    def _step_finished(self, event: StepFinished) -> None:
        r = event.result
        state = _STEP_STATE.get(r.outcome.value, "failed")
        note = r.message or r.outcome.value
        if r.duration:
            note += f" · {r.duration:.1f} s"
        self._set_step(r.step_id, state, note, parent=r.parent)
        self._log(f"{'✓' if state == 'ok' else '✖'} {r.step_id}: {note}", "bold" if state != "ok" else "dim")
        if r.remote_note:
            self._log(f"  remote: {r.remote_note}", "dim")

    @show_event.register
    def _step_skipped(self, event: StepSkipped) -> None:
        self._set_step(event.step_id, "skipped", event.reason)

    @show_event.register
    def _attempted(self, event: VerificationAttempted) -> None:
        panel = self._verification()
        panel.attempt = event.backends
        panel.attempt_number = event.attempt
        passed = sum(1 for b in event.backends if b.passed)
        self._log(f"verify attempt {event.attempt}: {passed}/{len(event.backends)} backends pass", "dim")

    @show_event.register
    def _verified(self, event: VerificationFinished) -> None:
        self._verification().result = event.result
        self._log(("✓ " if event.result.passed else "✖ ") + event.result.message, "bold")

    @show_event.register
    def _notice(self, event: Notice) -> None:
        self._log(f"{event.level.upper()}: {event.message}", "bold" if event.level != "info" else "dim")

    @show_event.register
    def _run_finished(self, event: RunFinished) -> None:
        self.finish(event.result)

    def _verification(self) -> VerificationPanel:
        """The verification panel, shown from the first attempt on."""
        self.query_one("#verification-pane").display = True
        return self.query_one(VerificationPanel)

    def finish(self, result: RunResult) -> None:
        """The run ended."""
        self.result = result
        self.phase = "finished"
        self.call_after_refresh(self.query_one(OutputLog).scroll_end, animate=False)
        label, _ = _OUTCOME[result.outcome]
        self._log(Text.assemble((f"{label}: {view.printable_lines(result.message)}", "bold")))
        if result.error is not None:
            self._log(Text(f"error: {view.printable_lines(str(result.error))}", "bold"))
        self._refresh_title()

    @on(RunbookCrashed)
    def _crashed(self, message: RunbookCrashed) -> None:
        message.stop()
        self.phase = "finished"
        self._log(Text("✖ " + view.printable_lines(message.error), "bold"))
        title = self.query_one("#run-title", Static)
        title.update(
            Text.assemble(
                (" ✖ NOT RUN ", "reverse bold"),
                f"  {view.printable(message.error.splitlines()[0] if message.error else '')}",
            )
        )
        title.add_class("-failed")

    # -- keys ---------------------------------------------------------------

    def action_cancel_run(self) -> None:
        """Ask, then cancel the running step (the rest of the run is skipped)."""
        if self.phase == "finished":
            return
        current = next((s for s in self.steps if s.state in ("running", "asking")), None)
        what = f"step {current.number} ({current.step.title})" if current is not None else "the run"
        command = (
            f"\n\n$ {current.step.display_command}\non {current.step.target}"
            if current and current.step.command
            else ""
        )

        def answered(yes: bool | None) -> None:
            if yes and self.phase != "finished":
                self._cancel("cancelled by the operator in the TUI")
                self._log("cancelling: ending the remote command…", "bold")

        self.app.push_screen(
            AskModal(
                "Cancel the run?",
                f"Cancel {what}? The running command is ended on its target and the remaining steps are skipped.{command}",
                yes="Cancel the run (y)",
                no="Keep running (n)",
            ),
            answered,
        )

    def action_back(self) -> None:
        """Back to the endpoint (once the run has finished)."""
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            return self.phase != "finished"
        if action == "back":
            return self.phase == "finished"
        return True

    def palette_commands(self) -> Iterator[SystemCommand]:
        """Actions of this screen for the command palette."""
        if self.phase == "finished":
            yield SystemCommand("Back to the endpoint", "Esc", self.action_back)
        else:
            yield SystemCommand(
                "Cancel the run", "Ends the running command, skips the rest (Ctrl+C)", self.action_cancel_run
            )
