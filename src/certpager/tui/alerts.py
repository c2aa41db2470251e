"""The TUI's Alertmanager side: the endpoint list's alerts: fetched on mount and every
``settings.alertmanager.interval`` seconds, in a worker (input never waits for it).

A fetch that fails is one notice (once per distinct reason, and once more when
Alertmanager answers again); so are alerts a fetch left out (malformed, duplicate, naming no
endpoint: once per distinct count); the endpoints go on being probed. Each fresh set of alerts
goes to :meth:`certpager.tui.screens.endpoints.EndpointsScreen.set_pages`. Before a
run on a paged endpoint, :func:`silence_question` is what the operator is asked
(certpager.fleet.silence does the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from certpager.config import AlertmanagerSettings
from certpager.errors import AlertmanagerError
from certpager.fleet.alertmanager import fetch_alerts
from certpager.fleet.pages import Page, map_batch
from certpager.fleet.silence import MARGIN, run_duration
from certpager.runbook.plan import Plan
from certpager.text import printable

if TYPE_CHECKING:
    from certpager.tui.screens.endpoints import EndpointsScreen


class AlertPoller:
    """Fetches the alerts for one endpoint screen."""

    def __init__(self, screen: EndpointsScreen, settings: AlertmanagerSettings):
        self.screen = screen
        self.settings = settings
        self.failure: str | None = None
        """The reason of the last failed fetch (None: the last one worked)."""
        self.ignored: str | None = None
        """What the last fetch left out, as said in a notice (None: nothing)."""

    def fetch(self) -> None:
        """Start a fetch (a running one is replaced)."""
        self.screen.run_worker(
            self._fetch(), name="alerts", group="alerts", exclusive=True, exit_on_error=False
        )

    async def _fetch(self) -> None:
        try:
            batch = await fetch_alerts(self.settings)
        except AlertmanagerError as exc:
            if str(exc) != self.failure:
                self.failure = str(exc)
                self.screen.notify(
                    printable(
                        f"{exc}. Endpoints are still checked; alerts are asked again in "
                        f"{self.settings.interval:g} s."
                    ),
                    title="No alerts",
                    severity="warning",
                    timeout=10,
                    markup=False,
                )
            return
        if self.failure is not None:
            self.failure = None
            self.screen.notify("Alertmanager answers again.", timeout=4)
        config = self.screen.config
        pages = map_batch(batch, config.endpoints, config.settings)
        self._say_ignored(pages.ignored.sentence())
        self.screen.set_pages(pages)

    def _say_ignored(self, sentence: str | None) -> None:
        """A notice when a fetch left alerts out (malformed, duplicate, naming no
        endpoint...): once per distinct count, not at every interval."""
        if sentence is not None and sentence != self.ignored:
            self.screen.notify(
                printable(f"{sentence}: they page about no row here."),
                title="Alerts ignored",
                severity="warning",
                timeout=10,
                markup=False,
            )
        self.ignored = sentence


def watch_alerts(screen: EndpointsScreen) -> AlertPoller | None:
    """Fetch the alerts now and every interval, when an Alertmanager is configured."""
    settings = screen.config.settings.alertmanager
    if settings is None:
        return None
    poller = AlertPoller(screen, settings)
    screen.set_interval(settings.interval, poller.fetch, name="alerts")
    poller.fetch()
    return poller


def silence_question(pages: Sequence[Page], plan: Plan) -> str:
    """What the operator is asked before a run of ``plan`` on a paged endpoint (escaped)."""
    ends = datetime.now(UTC) + run_duration(plan) + MARGIN
    names = ", ".join(sorted({p.alertname for p in pages}))
    count = f"{len(pages)} alert{'s' if len(pages) != 1 else ''}"
    return printable(
        f"{count} page about {plan.endpoint.name} ({names}). Silence them in Alertmanager while "
        f"{plan.runbook.name} runs, until {ends:%Y-%m-%d %H:%M} UTC at the latest? The silence is "
        "expired when the fix is verified, and kept (until then) when it is not."
    )
