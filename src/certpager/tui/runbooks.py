"""The runbook engine as the TUI uses it: catalogue, plan, run. No Textual here.

Everything goes through :mod:`certpager.runbook` unchanged (plan, confirmations,
lock, audit log, verification); this class only holds what the app injects
(where runbooks and the audit log live, the SSH runner factory, the probe) so
tests can replace the network with fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from certpager.config import Config, Endpoint
from certpager.probe import EndpointReport, Finding
from certpager.probe.findings import SPECS
from certpager.runbook import (
    CatalogEntry,
    Confirmer,
    EventSink,
    Plan,
    Runbook,
    RunbookRun,
    build_plan,
    list_runbooks,
    run_is_active,
    runbook_dirs,
    runbooks_for,
)
from certpager.runbook.audit import AuditLog
from certpager.runbook.plan import TargetInfo, describe_target
from certpager.runbook.verify import ProbeFn, default_probe
from certpager.ssh import RunnerFactory


def recommendations(findings: Sequence[Finding], runbooks: Sequence[Runbook]) -> dict[str, list[str]]:
    """Runbook name -> the current finding codes it is recommended for.

    A runbook is recommended for a finding when its ``fixes:`` name the code or the finding's
    advice names it. A finding whose advice was changed for this incident (the reload, when
    the renewed certificate is already on disk) recommends that runbook only, never the forced
    renewal its code would otherwise call for.
    """
    offered = {rb.name for rb in runbooks}
    out: dict[str, list[str]] = {}
    for finding in findings:
        spec = SPECS.get(finding.code)
        readvised = spec is not None and finding.runbook != spec.runbook and finding.runbook in offered
        for rb in runbooks:
            if finding.runbook == rb.name or (not readvised and finding.code in rb.fixes):
                codes = out.setdefault(rb.name, [])
                if finding.code not in codes:
                    codes.append(finding.code)
    return out


def advised_runbook(
    findings: Sequence[Finding], selected: str | None, runbooks: Sequence[Runbook]
) -> str | None:
    """The runbook the ``selected`` finding's advice was changed to for this incident (e.g. the
    reload, when the renewed certificate is on disk), when it is offered; None when its advice
    is the catalogue's (then every runbook whose ``fixes:`` name the code fixes it)."""
    offered = {rb.name for rb in runbooks}
    for finding in findings:
        spec = SPECS.get(finding.code)
        if finding.code == selected and spec is not None and finding.runbook != spec.runbook:
            return finding.runbook if finding.runbook in offered else None
    return None


def _stamp(dirs: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every runbook file on the search path."""
    out: list[tuple[str, int, int]] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass
class RunbookService:
    """What the app needs to offer, plan and run runbooks for its endpoints."""

    config: Config
    """The loaded config (settings, runbook directories)."""
    audit_path: Path | None = None
    """The audit log (None: ``$CERTPAGER_AUDIT_LOG`` or the XDG default)."""
    runner_factory: RunnerFactory | None = None
    """Builds the SSH runner of a target (None: asyncssh / local)."""
    probe: ProbeFn | None = None
    """Fresh handshakes for baseline and verification (None: the engine's lean probe)."""
    lock_dir: Path | None = None
    """Where run locks live (None: ``$CERTPAGER_LOCK_DIR``, ``settings.lock_dir``, ``/run/lock/certpager``)."""
    dirs: list[Path] | None = None
    """Runbook search path (None: from the config)."""
    target_for: Callable[[Endpoint], TargetInfo | None] | None = None
    """Override of how the plan names the SSH target (tests: no ``~/.ssh/config``)."""
    run_ids: Callable[[], str] | None = None
    """Makes run ids (None: the engine's time + random; tests and screenshots fix it)."""
    last_reports: dict[str, EndpointReport] = field(default_factory=dict)
    """The last report each verification probe produced (shown at once when a run ends)."""
    _catalog: tuple[tuple[tuple[str, int, int], ...], list[CatalogEntry]] | None = field(
        default=None, repr=False
    )

    def search_path(self) -> list[Path]:
        """Directories searched for runbooks, highest precedence first."""
        if self.dirs is not None:
            return self.dirs
        config_dir = self.config.path.resolve().parent if self.config.path else None
        return runbook_dirs(self.config.settings, config_dir=config_dir)

    def catalog(self) -> list[CatalogEntry]:
        """Every runbook file on the search path (invalid ones carry their error).

        Loading validates every file (a few hundred ms); the result is kept until a
        file on the search path is added, removed or changed.
        """
        dirs = self.search_path()
        stamp = _stamp(dirs)
        if self._catalog is None or self._catalog[0] != stamp:
            self._catalog = (stamp, list_runbooks(dirs))
        return self._catalog[1]

    def for_endpoint(self, endpoint: Endpoint) -> tuple[list[Runbook], list[CatalogEntry]]:
        """The runbooks ``endpoint`` may use (its own list first) and the invalid files seen."""
        entries = self.catalog()
        invalid = [e for e in entries if e.runbook is None and not e.shadowed]
        return runbooks_for(endpoint, entries), invalid

    def plan(self, runbook: Runbook, endpoint: Endpoint, targets: Sequence[str] = ()) -> Plan:
        """Render ``runbook`` for ``endpoint`` (nothing runs), for the findings ``targets``
        (empty: its current ones the runbook fixes). Raises ``RunbookError``."""
        resolver = self.target_for or describe_target
        return build_plan(runbook, endpoint, resolver=resolver, targets=targets)

    def audit(self) -> AuditLog:
        """The audit log every run writes to."""
        return AuditLog(self.audit_path)

    def unfinished_runs(self) -> list[str]:
        """Runs an earlier process opened and never closed (described, then acknowledged).

        Raises:
            AuditError: the log cannot be read or written safely.
        """
        log = self.audit()
        log.check()
        out: list[str] = []
        for run in log.unfinished(is_active=run_is_active):
            out.append(run.describe())
            log.acknowledge(run)
        return out

    def _probe(self) -> ProbeFn:
        base = self.probe or default_probe(self.config.settings)

        async def probe(endpoint: Endpoint) -> EndpointReport:
            report = await base(endpoint)
            self.last_reports[endpoint.name] = report
            return report

        return probe

    def new_run(self, plan: Plan, *, confirm: Confirmer, on_event: EventSink) -> RunbookRun:
        """A run of ``plan`` whose confirmations and events go to the app."""
        self.last_reports.pop(plan.endpoint.name, None)
        return RunbookRun(
            plan,
            confirm=confirm,
            on_event=on_event,
            settings=self.config.settings,
            audit=self.audit(),
            runner_factory=self.runner_factory,
            probe=self._probe(),
            lock_dir=self.lock_dir,
            run_id=self.run_ids() if self.run_ids is not None else None,
        )
