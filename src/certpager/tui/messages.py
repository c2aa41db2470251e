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
    """A fresh probe of an endpoint began."""

    name: str
    """The endpoint being probed."""


@dataclass
class ProbeFinished(Message):
    """A report arrived (from a probe, or from a runbook's verification step)."""

    report: EndpointReport
    """The new report."""


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
class RunbookEvent(Message):
    """An event of a running runbook (from the engine's ``on_event`` callback)."""

    event: RunEvent
    """The engine's event, unchanged."""


@dataclass
class RunbookCrashed(Message):
    """The run could not start or its worker failed (lock held, audit log unusable, a bug)."""

    error: str
    """What went wrong, in plain words."""
