"""A 2 AM incident, frozen: nine endpoints, a fake checker, a fixed clock.

Used by the TUI tests and by ``scripts/screenshots.py``. Reports are made by the
real analysis (``backend_result``/``build_report``) from committed fixture
certificates, so chains, findings and fingerprints are genuine and stable; only
the network is fake (addresses are from the RFC 5737/3849 documentation ranges
and nothing connects anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console
from textual.pilot import Pilot

from certpager.config import Config, Endpoint, HttpCheck, Settings, SSHTarget, StoredCert
from certpager.probe import EndpointReport, Handshake, Timings
from certpager.probe import findings as F
from certpager.probe.engine import backend_result, build_report
from certpager.probe.http import HstsResult, RedirectResult
from certpager.probe.model import (
    NO_ENDPOINT_FACTS,
    BackendsResult,
    EndpointClientAuth,
    EndpointFacts,
    HttpResult,
    NoSniResult,
    ProtocolsResult,
    StoredFacts,
)
from certpager.runbook.plan import TargetInfo
from certpager.ssh import ConnectionInfo, FakeResponse, FakeRunner
from certpager.tui.app import CertpagerApp, build_app
from certpager.tui.runbooks import RunbookService

NOW = datetime(2026, 3, 14, 2, 13, 0, tzinfo=UTC)
"""The frozen clock: a Saturday, 2:13 AM."""

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT_PEM = FIXTURES / "lab-root.pem"

#: slug -> (CN, SANs, not_before, not_after) in days relative to NOW.
LEAVES: dict[str, tuple[str, list[str], float, float]] = {
    "shop-api": ("api.shop.example", ["api.shop.example", "shop.example"], -88.4, 1.6),
    "shop-api-renewed": ("api.shop.example", ["api.shop.example", "shop.example"], -0.02, 89.98),
    "payments": ("pay.example", ["pay.example"], -42.0, 48.0),
    "auth": ("auth.example", ["auth.example"], -84.8, 5.2),
    "auth-renewed": ("auth.example", ["auth.example"], -2.0, 88.0),
    "legacy": ("intranet.corp.example", ["intranet.corp.example"], -353.5, 11.5),
    "grafana": ("grafana.internal.example", ["grafana.internal.example"], -65.0, 25.0),
    "www": ("www.shop.example", ["www.shop.example", "shop.example"], -28.0, 62.0),
    "mail": ("mail.example", ["mail.example"], -10.0, 80.0),
    "ingress": ("ingress.example", ["ingress.example", "*.apps.example"], -19.0, 71.0),
}


def der(slug: str) -> bytes:
    """DER of a fixture certificate."""
    cert = x509.load_pem_x509_certificate((FIXTURES / f"{slug}.pem").read_bytes())
    return cert.public_bytes(Encoding.DER)


def frozen_clock() -> datetime:
    """The clock of every TUI test."""
    return NOW


@dataclass
class Spec:
    """How the fake network answers for one endpoint."""

    leaf: str | None
    """Fixture slug of the leaf served (None: no handshake)."""
    with_intermediate: bool = True
    """Send the intermediate after the leaf."""
    error: tuple[str, str] | None = None
    """``(error_code, message)`` when no handshake completes."""
    addresses: tuple[str, ...] = ("192.0.2.10",)
    """Backend addresses."""
    tls_version: str = "TLSv1.3"
    cipher: str = "TLS_AES_128_GCM_SHA256"
    alpn: str | None = "h2"
    timings: tuple[float, float, float] = (1.8, 11.2, 23.5)
    """dns, connect, handshake milliseconds."""
    findings: tuple[tuple[str, str], ...] = ()
    """Extra endpoint-level findings ``(code, message)`` (deeper checks)."""
    deep: EndpointFacts = NO_ENDPOINT_FACTS
    """Endpoint-level facts from deeper checks."""
    chain: tuple[bytes, ...] | None = None
    """A chain of DER certificates to serve instead of the fixture ``leaf``."""


MODERN = {
    "SSLv3": "not_testable",
    "TLSv1": "refused",
    "TLSv1.1": "refused",
    "TLSv1.2": "accepted",
    "TLSv1.3": "accepted",
}
"""What the protocol scan of a well-configured server finds."""


def _http(host: str, address: str = "192.0.2.10") -> EndpointFacts:
    """Deep-check facts of a server that redirects and sends HSTS."""
    return EndpointFacts(
        client_auth=EndpointClientAuth("not_requested"),
        backends=BackendsResult(agree=True),
        protocols=ProtocolsResult(MODERN),
        no_sni=NoSniResult("same"),
        http=HttpResult(
            redirect=RedirectResult(
                "redirects", 80, address=address, status=301, location=f"https://{host}/"
            ),
            hsts=HstsResult("ok", status=200, header="max-age=63072000; includeSubDomains", max_age=63072000),
        ),
    )


def scenario() -> dict[str, Spec]:
    """The incident: one page, one error, two critical, two warnings, three fine."""
    return {
        "shop-api": Spec("shop-api", deep=_http("api.shop.example"), addresses=("192.0.2.10", "192.0.2.11")),
        "payments": Spec("payments", with_intermediate=False, timings=(2.1, 14.9, 31.0)),
        "auth": Spec(
            "auth",
            timings=(1.2, 9.8, 19.4),
            findings=(
                (
                    "served_not_stored",
                    "the certificate on disk (valid until 2026-06-10) is not the one served "
                    "(valid until 2026-03-19): renewed but never reloaded",
                ),
            ),
            deep=EndpointFacts(
                protocols=ProtocolsResult(MODERN),
                stored=StoredFacts(
                    "deploy@auth-1.example:/etc/letsencrypt/live/auth.example/fullchain.pem",
                    "differs (renewed but not reloaded)",
                    differing_backends=("192.0.2.10:443",),
                ),
            ),
        ),
        "status-page": Spec(
            None,
            error=("connect_timeout", "TCP connect to 198.51.100.7:443 did not finish within 10 s"),
            addresses=("198.51.100.7",),
        ),
        "legacy-intranet": Spec(
            "legacy",
            tls_version="TLSv1.2",
            cipher="ECDHE-RSA-AES128-SHA",
            alpn=None,
            timings=(0.9, 3.1, 48.2),
            findings=(("tls1_0_enabled", "the server still accepts TLS 1.0"),),
            deep=EndpointFacts(
                protocols=ProtocolsResult(
                    {
                        "SSLv3": "refused",
                        "TLSv1": "accepted",
                        "TLSv1.1": "accepted",
                        "TLSv1.2": "accepted",
                        "TLSv1.3": "refused",
                    }
                ),
                no_sni=NoSniResult("same"),
            ),
        ),
        "grafana": Spec("grafana", timings=(0.7, 2.2, 12.9)),
        "www": Spec("www", addresses=("192.0.2.20", "2001:db8::20"), deep=_http("www.shop.example")),
        "mail": Spec("mail", alpn=None, timings=(3.4, 21.0, 44.7)),
        "k8s-ingress": Spec("ingress", timings=(1.1, 6.6, 17.3)),
    }


def endpoints(ca_file: Path = ROOT_PEM) -> tuple[Endpoint, ...]:
    """The endpoints of the incident (config order is not the sort order on purpose)."""
    ca = str(ca_file)
    web = SSHTarget(host="web-1.shop.example", user="deploy")
    return (
        Endpoint(name="www", host="www.shop.example", tags=("prod", "shop"), ca_file=ca, http=HttpCheck()),
        Endpoint(
            name="shop-api",
            host="api.shop.example",
            tags=("prod", "shop"),
            ca_file=ca,
            http=HttpCheck(),
            ssh=web,
            runbooks=("certbot-force-renew", "nginx-reload", "certbot-dry-run"),
            params={"cert_name": "api.shop.example"},
        ),
        Endpoint(
            name="payments",
            host="pay.example",
            tags=("prod", "payments"),
            ca_file=ca,
            ssh=web,
            runbooks=("nginx-reload",),
        ),
        Endpoint(
            name="auth",
            host="auth.example",
            tags=("prod",),
            ca_file=ca,
            ssh=SSHTarget(host="auth-1.example", user="deploy"),
            stored=StoredCert(kind="file", path="/etc/letsencrypt/live/auth.example/fullchain.pem"),
            runbooks=("nginx-reload",),
        ),
        Endpoint(name="status-page", host="status.example", tags=("public",), ca_file=ca),
        Endpoint(
            name="legacy-intranet", host="intranet.corp.example", port=8443, tags=("internal",), ca_file=ca
        ),
        Endpoint(name="grafana", host="grafana.internal.example", tags=("internal",), ca_file=ca),
        Endpoint(name="mail", host="mail.example", tags=("prod", "mail"), ca_file=ca),
        Endpoint(
            name="k8s-ingress",
            host="ingress.example",
            tags=("k8s",),
            ca_file=ca,
            runbooks=("cert-manager-reissue",),
            params={"namespace": "shop", "certificate": "ingress-tls"},
        ),
    )


def lab_config(**settings: object) -> Config:
    """The incident as a :class:`Config`."""
    return Config(endpoints=endpoints(), settings=Settings(**settings))  # type: ignore[arg-type]


def build(endpoint: Endpoint, spec: Spec, now: datetime) -> EndpointReport:
    """A report made by the real analysis from the spec's fixture chain."""
    backends = []
    for address in spec.addresses:
        dns, connect, hs_ms = spec.timings
        if spec.error is not None or (spec.leaf is None and spec.chain is None):
            code, message = spec.error or ("connect_refused", "connection refused")
            hs = Handshake(
                address=address,
                port=endpoint.port,
                sni=endpoint.server_name,
                error_code=code,
                error=message,
                timings=Timings(dns_ms=dns, connect_ms=None, handshake_ms=None, total_ms=10_000.0),
            )
        else:
            if spec.chain is not None:
                chain = spec.chain
            else:
                assert spec.leaf is not None
                chain = (
                    (der(spec.leaf), der("lab-intermediate")) if spec.with_intermediate else (der(spec.leaf),)
                )
            hs = Handshake(
                address=address,
                port=endpoint.port,
                sni=endpoint.server_name,
                chain_der=chain,
                tls_version=spec.tls_version,
                cipher=spec.cipher,
                alpn=spec.alpn,
                timings=Timings(
                    dns_ms=dns, connect_ms=connect, handshake_ms=hs_ms, total_ms=dns + connect + hs_ms
                ),
            )
        backends.append(backend_result(endpoint, hs, now))
    extra_findings = [F.make(code, message) for code, message in spec.findings]
    return build_report(endpoint, backends, now, extra_findings, spec.deep)


class FakeChecker:
    """The injected checker: answers from specs, records calls, can hold probes in flight."""

    def __init__(self, specs: dict[str, Spec] | None = None, clock: Callable[[], datetime] = frozen_clock):
        self.specs = specs if specs is not None else scenario()
        """Endpoint name -> how it answers (tests change these to make things better or worse)."""
        self.clock = clock
        self.calls: list[str] = []
        """Endpoint names probed, in order."""
        self.gate: asyncio.Event | None = None
        """When set, probes wait for it (to observe the 'checking' state)."""
        self.fail: set[str] = set()
        """Endpoints whose probe raises (a bug in a checker must not bring the app down)."""

    async def __call__(self, endpoint: Endpoint) -> EndpointReport:
        self.calls.append(endpoint.name)
        if self.gate is not None:
            await self.gate.wait()
        if endpoint.name in self.fail:
            raise RuntimeError(f"checker exploded on {endpoint.name}")
        spec = self.specs.get(endpoint.name) or Spec(
            None, error=("dns_error", f"{endpoint.host}: name not known")
        )
        return build(endpoint, spec, self.clock())


def make_app(
    checker: FakeChecker | None = None,
    *,
    readonly: bool = False,
    config: Config | None = None,
    bell: bool = True,
    runbooks: RunbookService | None = None,
) -> CertpagerApp:
    """The app on the incident, frozen clock, no interval re-probes.

    Without ``runbooks`` the fix action exists but uses the real engine defaults;
    tests that run runbooks pass :func:`runbook_service`.
    """
    return build_app(
        config or lab_config(),
        checker=checker or FakeChecker(),
        clock=frozen_clock,
        readonly=readonly,
        auto_refresh=False,
        bell=bell,
        runbooks=runbooks,
    )


# -- the runbook side: a fake SSH host and the engine's clock -----------------------

CERTBOT_OUTPUT = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Processing /etc/letsencrypt/renewal/api.shop.example.conf
Renewing an existing certificate for api.shop.example and shop.example
Congratulations, all renewals succeeded:
  /etc/letsencrypt/live/api.shop.example/fullchain.pem (success)"""

NGINX_T_OUTPUT = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful"""


class FakeHost:
    """The SSH target of the incident: certbot renews, nginx reloads, and the fake
    network then serves the renewed certificate (what a real reload would do)."""

    def __init__(self, checker: FakeChecker, **overrides: FakeResponse) -> None:
        self.checker = checker
        self.overrides = overrides
        """Substring of a command -> response, checked first (a failing nginx -t...)."""
        self.runners: list[FakeRunner] = []
        self.renewed = False

    def respond(self, command: str) -> FakeResponse:
        for key, response in self.overrides.items():
            if key in command:
                return response
        if "renew" in command and "--dry-run" not in command:
            self.renewed = True
            return FakeResponse(stdout=CERTBOT_OUTPUT)
        if "nginx -t" in command:
            return FakeResponse(stderr=NGINX_T_OUTPUT)
        if "reload" in command and self.renewed:
            spec = self.checker.specs["shop-api"]
            self.checker.specs["shop-api"] = dataclasses.replace(spec, leaf="shop-api-renewed")
        return FakeResponse()

    def factory(self, target: SSHTarget) -> FakeRunner:
        info = ConnectionInfo(
            host=target.host,
            port=target.port or 22,
            user=target.user or "deploy",
            address="192.0.2.5",
            host_key_fingerprint="SHA256:2Ch7QmN6dR1xkq0cF3yJbR8pV9tW4sXeZuA5hLgKoIs",
            host_key_type="ssh-ed25519",
        )
        runner = FakeRunner(self.respond, info=info)
        self.runners.append(runner)
        return runner

    @property
    def commands(self) -> list[str]:
        return [c for r in self.runners for c in r.commands]


def target_info(endpoint: Endpoint) -> TargetInfo | None:
    """The plan's target without reading ``~/.ssh/config``."""
    ssh = endpoint.ssh
    if ssh is None:
        return None
    port = ssh.port or 22
    user = ssh.user or "deploy"
    return TargetInfo(label=f"{user}@{ssh.host}:{port}", host=ssh.host, port=port, user=user, local=False)


@contextlib.contextmanager
def frozen_engine_clock(now: datetime = NOW) -> Iterator[None]:
    """Freeze the wall clock the runbook engine's verification judges days-left with, and
    take away its settle wait before the confirming round (the lab's fake network answers
    at once; the times a screen shows stay the same from run to run).

    ``certpager.runbook.verify.judge`` reads ``datetime.now(UTC)`` and ``RunbookRun``
    takes no clock, so a frozen-clock scenario swaps the module's ``datetime``.
    """
    import certpager.runbook.loader as loader_module
    import certpager.runbook.verify as verify_module

    saved_wait = getattr(loader_module, "CONFIRM_WAIT")  # noqa: B009  (re-exported from model)
    setattr(loader_module, "CONFIRM_WAIT", 0.0)  # noqa: B010

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:  # type: ignore[override]
            return cls.fromtimestamp(now.timestamp(), tz)

    saved = verify_module.datetime  # type: ignore[attr-defined]
    verify_module.datetime = Frozen  # type: ignore[attr-defined, misc]
    try:
        yield
    finally:
        verify_module.datetime = saved  # type: ignore[attr-defined, misc]
        setattr(loader_module, "CONFIRM_WAIT", saved_wait)  # noqa: B010


def runbook_service(
    checker: FakeChecker, host: FakeHost, state_dir: Path, config: Config | None = None
) -> RunbookService:
    """The real engine with a fake SSH host, the fake network as its probe, state in ``state_dir``."""
    return RunbookService(
        config or lab_config(),
        audit_path=state_dir / "audit.jsonl",
        runner_factory=host.factory,
        probe=checker,
        lock_dir=state_dir / "locks",
        target_for=target_info,
        run_ids=lambda: "20260314T021300Z-5a1c0e",
    )


# -- waiting without timed assertions --------------------------------------------------


async def wait_for(
    pilot: Pilot[int], predicate: Callable[[], bool], *, rounds: int = 2000, what: str = ""
) -> None:
    """Let the app run until ``predicate()`` holds (bounded by rounds of the event loop)."""
    for _ in range(rounds):
        if predicate():
            return
        await pilot.pause()
    raise AssertionError(f"never happened: {what or predicate}")


def screen_text(app: CertpagerApp, *, styles: bool = False) -> str:
    """Everything on the screen (modals and the screens under them), as plain text (with
    ``styles``: with the ANSI codes of its colours and attributes, so a moved cursor shows)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        color_system="truecolor" if styles else None,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=styles)


async def settle(pilot: Pilot[int]) -> None:
    """Until every probe in flight has reported and the screen repainted."""
    app = pilot.app
    assert isinstance(app, CertpagerApp)
    await wait_for(pilot, lambda: not app.endpoints_screen.in_flight, what="probes to finish")
    await pilot.pause()
    await pilot.pause()


# -- scenes: the snapshot tests and scripts/screenshots.py render the same ones ---------

Steps = Callable[[Pilot[int]], Awaitable[None]]


@dataclass
class Scene:
    """An app in a known state: how to build it and the keys that get it there."""

    app: CertpagerApp
    steps: Steps
    checker: FakeChecker
    host: FakeHost


async def _main(pilot: Pilot[int]) -> None:
    await settle(pilot)


async def _detail(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def _help(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("question_mark")
    await pilot.pause()


async def _filter(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("slash", *"tag:prod")
    await pilot.pause()


async def _plan(pilot: Pilot[int]) -> None:
    await _detail(pilot)
    app = pilot.app
    await pilot.press("f")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "RunbookChooser", what="chooser")
    await pilot.press("enter")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "PlanScreen", what="plan")
    await pilot.pause()


async def _confirm(pilot: Pilot[int]) -> None:
    await _plan(pilot)
    app = pilot.app
    await pilot.press("enter")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="confirmation")
    await pilot.press(*"shop-")
    await pilot.pause()


async def _verified(pilot: Pilot[int]) -> None:
    await _confirm(pilot)
    app = pilot.app
    assert isinstance(app, CertpagerApp)
    await pilot.press(*"api", "enter")
    await wait_for(pilot, lambda: getattr(app.screen, "typed", True) is False, what="reload confirmation")
    await pilot.press("y")
    await wait_for(pilot, lambda: getattr(app.screen, "phase", "") == "finished", what="run to finish")
    await pilot.pause()
    await pilot.pause()


SCENES: dict[str, Steps] = {
    "main": _main,
    "detail": _detail,
    "help": _help,
    "filter": _filter,
    "plan": _plan,
    "confirm": _confirm,
    "verified": _verified,
}
"""Every scene, by name."""


def scene(name: str, home: Path) -> Scene:
    """A fresh app for scene ``name``; the audit log and locks live under ``home``
    (set ``HOME`` to it, so paths show as ``~/...``)."""
    checker = FakeChecker()
    host = FakeHost(checker)
    data = home / ".local" / "share" / "certpager"
    service = RunbookService(
        lab_config(),
        audit_path=data / "audit.jsonl",
        runner_factory=host.factory,
        probe=checker,
        lock_dir=home / ".local" / "state" / "certpager" / "locks",
        target_for=target_info,
        run_ids=lambda: "20260314T021300Z-5a1c0e",
    )
    return Scene(make_app(checker, runbooks=service), SCENES[name], checker, host)
