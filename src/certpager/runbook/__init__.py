"""Runbooks: YAML schema and loader, safe templating, plan, engine, events.

The public API (for the CLI and the TUI):

- :func:`find_runbook`, :func:`list_runbooks`, :func:`runbook_dirs`, :func:`load_runbook`,
  :func:`runbooks_for` (which runbooks an endpoint may use);
- :func:`build_plan` -> :class:`Plan` (every rendered command, host and user; runs nothing);
- :class:`RunbookRun` (``execute()``, ``cancel()``) with an injected
  :data:`Confirmer` and an :data:`EventSink`;
- the event and result dataclasses in :mod:`certpager.runbook.events`.

This package never imports Textual or ``certpager.tui``.
"""

from __future__ import annotations

from certpager.config import Endpoint
from certpager.runbook.engine import RunbookRun, new_run_id
from certpager.runbook.events import (
    BackendVerdict,
    BaselineCaptured,
    CommandSent,
    ConfirmationAnswered,
    Confirmer,
    ConfirmReply,
    ConfirmRequest,
    Connected,
    EventSink,
    Notice,
    OutputReceived,
    RunEvent,
    RunFinished,
    RunOutcome,
    RunResult,
    RunStarted,
    ServedCert,
    StepFinished,
    StepOutcome,
    StepResult,
    StepSkipped,
    StepStarted,
    VerificationAttempted,
    VerificationFinished,
    VerificationResult,
)
from certpager.runbook.loader import (
    CatalogEntry,
    find_runbook,
    list_runbooks,
    load_runbook,
    parse_runbook,
    runbook_dirs,
    shipped_runbook_dir,
)
from certpager.runbook.lock import EndpointLock, LockDirError, default_lock_dir, lock_held, run_is_active
from certpager.runbook.model import (
    ConfirmKind,
    Param,
    ParamType,
    Runbook,
    Step,
    StepKind,
    VerifyExpect,
    VerifySpec,
)
from certpager.runbook.plan import Plan, PlannedStep, PlanValue, TargetInfo, build_plan


def runbooks_for(endpoint: Endpoint, entries: list[CatalogEntry]) -> list[Runbook]:
    """The valid, unshadowed runbooks ``endpoint`` may use, those it lists first."""
    usable = [e.runbook for e in entries if e.runbook is not None and not e.shadowed]
    usable = [r for r in usable if r.applies_to(endpoint)]
    order = {name: i for i, name in enumerate(endpoint.runbooks)}
    return sorted(usable, key=lambda r: (order.get(r.name, len(order)), r.name))


__all__ = [
    "BackendVerdict",
    "BaselineCaptured",
    "CatalogEntry",
    "CommandSent",
    "ConfirmKind",
    "ConfirmReply",
    "ConfirmRequest",
    "ConfirmationAnswered",
    "Confirmer",
    "Connected",
    "EndpointLock",
    "EventSink",
    "LockDirError",
    "Notice",
    "OutputReceived",
    "Param",
    "ParamType",
    "Plan",
    "PlanValue",
    "PlannedStep",
    "RunEvent",
    "RunFinished",
    "RunOutcome",
    "RunResult",
    "RunStarted",
    "Runbook",
    "RunbookRun",
    "ServedCert",
    "Step",
    "StepFinished",
    "StepKind",
    "StepOutcome",
    "StepResult",
    "StepSkipped",
    "StepStarted",
    "TargetInfo",
    "VerificationAttempted",
    "VerificationFinished",
    "VerificationResult",
    "VerifyExpect",
    "VerifySpec",
    "build_plan",
    "default_lock_dir",
    "find_runbook",
    "list_runbooks",
    "load_runbook",
    "lock_held",
    "new_run_id",
    "parse_runbook",
    "run_is_active",
    "runbook_dirs",
    "runbooks_for",
    "shipped_runbook_dir",
]
