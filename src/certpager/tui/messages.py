"""Messages carrying work results and requests between screens.

Facts are in the past tense (``ProbeFinished``), requests are imperatives
(``Recheck``). Widget events live on their widgets (``EndpointTable.Selected``).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from certpager.probe import EndpointReport
from certpager.runbook import RunEvent


@dataclass
class ProbeStarted(Message):
    """Fresh probes of these endpoints began (screens showing one say it is being checked)."""

    names: tuple[str, ...]
    """The endpoints being probed."""


@dataclass
class ProbeFinished(Message):
    """A report arrived (from a probe, or from a runbook's verification step)."""

    report: EndpointReport
    """The new report."""


@dataclass
class ReportsAccepted(Message):
    """The endpoint list took these reports (one batch): screens showing one of them update."""

    reports: tuple[EndpointReport, ...]
    """The new reports in the order they arrived (of two for one endpoint, the last is current)."""


@dataclass
class PagesUpdated(Message):
    """Fresh alerts changed what pages about these endpoints: screens showing one say so."""

    names: tuple[str, ...]
    """The endpoints whose alerts changed (new, resolved or different)."""


@dataclass
class ProbeCrashed(Message):
    """A probe worker failed unexpectedly (a bug, not a TLS failure: those are reports)."""

    name: str
    """The endpoint whose probe failed."""
    error: str
    """What went wrong, one line."""


@dataclass
class Recheck(Message):
    """Probe these endpoints now (empty: all of them)."""

    names: tuple[str, ...] = ()
    """Endpoint names; empty means every endpoint."""


@dataclass
class ShowEndpoint(Message):
    """Open the detail screen of this endpoint."""

    name: str
    """The endpoint."""


@dataclass
class StartFix(Message):
    """Choose a runbook for this endpoint, show its plan, run it."""

    name: str
    """The endpoint."""
    finding: str | None = None
    """Code of the finding the fix is for; None: the endpoint's worst finding."""


@dataclass
class RunbookEvent(Message):
    """An event of a running runbook (from the engine's ``on_event`` callback)."""

    event: RunEvent
    """The engine's event, unchanged."""


@dataclass
class RunbookCrashed(Message):
    """The run could not start or its worker failed (lock held, audit log unusable, a bug)."""

    error: str
    """What went wrong, in plain words."""
