"""The fire drill's planted incidents: one loopback endpoint per scenario.

This table is the single source for the lab (what to serve), the lab config
(what certpager checks and which runbooks it offers), the tests (which finding
each scenario must show) and docs/demo.md.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "drill.test"
"""Every lab name is under this reserved (RFC 2606) domain; nothing resolves it:
the lab config connects to 127.0.0.1 and sends the name as SNI."""


@dataclass(frozen=True)
class Scenario:
    """One endpoint of the lab and the incident planted in it."""

    name: str
    """Endpoint name in the lab config."""
    summary: str
    """What is planted, in plain words."""
    planted: tuple[str, ...]
    """Finding codes ``certpager check`` must report for it."""
    status: str
    """Expected endpoint status (``ok``, ``warning``, ``critical``, ``page``, ``error``)."""
    cert_name: str = ""
    """certbot lineage (``--cert-name``) of the certificate the site serves; "" = ``NAME.drill.test``."""
    not_before_days: float = -20
    """notBefore of the served certificate, days from now (negative = past)."""
    not_after_days: float = 70
    """notAfter of the served certificate, days from now."""
    serve: str = "fullchain"
    """Which lineage file the server sends: ``fullchain`` (right) or ``cert`` (leaf only)."""
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    """Protocols the server accepts."""
    hsts: bool = True
    """HTTPS responses carry Strict-Transport-Security."""
    redirect: bool = True
    """Plain HTTP answers 301 to https."""
    http_check: bool = True
    """The lab config enables certpager's HTTP redirect/HSTS checks for it."""
    mtls: bool = False
    """The server requires a client certificate from the lab's client CA."""
    renewed_on_disk_days: float | None = None
    """A newer certificate issued this many days from now (negative) sits in ``live/``,
    but the server still serves the old one: renewed, never reloaded."""
    listening: bool = True
    """False: the endpoint's port has no listener (connection refused)."""
    stored: bool = False
    """The lab config gives ``stored: {path: live/NAME/cert.pem}`` (read over SFTP)."""
    runbooks: tuple[str, ...] = ()
    """Runbooks offered for it."""
    params: tuple[tuple[str, str], ...] = ()
    """Runbook parameters set for it in the lab config (beyond ``cert_name``)."""

    @property
    def server_name(self) -> str:
        """The name the endpoint is probed as (SNI)."""
        return f"{self.name}.{DOMAIN}"

    @property
    def lineage(self) -> str:
        """The certbot ``--cert-name`` of the certificate it serves."""
        return self.cert_name or self.server_name


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="api",
        summary="expires in 2 days: certbot's renewal has been failing silently (the page)",
        planted=("expires_soon", "renewal_overdue"),
        status="page",
        not_before_days=-88,
        not_after_days=2,
        stored=True,
        runbooks=("certbot-force-renew", "certbot-dry-run", "nginx-reload"),
    ),
    Scenario(
        name="shop",
        summary="healthy: full chain, TLS 1.2+, HTTP redirected, HSTS",
        planted=(),
        status="ok",
        stored=True,
        runbooks=("certbot-dry-run", "nginx-reload"),
    ),
    Scenario(
        name="partners",
        summary="missing intermediate: nginx points at cert.pem instead of fullchain.pem",
        planted=("chain_incomplete",),
        status="critical",
        not_before_days=-30,
        not_after_days=60,
        serve="cert",
        runbooks=("nginx-reload",),
    ),
    Scenario(
        name="legacy",
        summary="TLS 1.0 and 1.1 still enabled",
        planted=("tls1_0_enabled",),
        status="warning",
        not_before_days=-10,
        not_after_days=80,
        protocols=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
        runbooks=("nginx-reload",),
    ),
    Scenario(
        name="blog",
        summary="hostname mismatch: serves the certificate of www.drill.test",
        planted=("hostname_mismatch",),
        status="critical",
        cert_name=f"www.{DOMAIN}",
        not_before_days=-15,
        not_after_days=75,
        runbooks=("nginx-reload",),
    ),
    Scenario(
        name="docs",
        summary="plain HTTP answers 200 instead of redirecting, and HTTPS sends no HSTS",
        planted=("no_https_redirect", "hsts_missing"),
        status="warning",
        not_before_days=-5,
        not_after_days=85,
        hsts=False,
        redirect=False,
        runbooks=("nginx-reload",),
    ),
    Scenario(
        name="auth",
        summary="renewed on disk 18 days ago, but nginx was never reloaded: still serves the old one",
        planted=("served_not_stored",),
        status="critical",
        not_before_days=-78,
        not_after_days=12,
        renewed_on_disk_days=-18,
        stored=True,
        runbooks=("nginx-reload", "certbot-dry-run"),
    ),
    Scenario(
        name="ledger",
        summary="an mTLS service: requires a client certificate (the lab config provides one)",
        planted=("client_cert_required",),
        status="ok",
        not_before_days=-30,
        not_after_days=60,
        mtls=True,
        http_check=False,
    ),
    Scenario(
        name="metrics",
        summary="unreachable: nothing listens on its port",
        planted=("connect_refused",),
        status="error",
        listening=False,
        http_check=False,
    ),
)
"""Every scenario, in the order the lab config lists them."""


def scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(name)


PAGE_ENDPOINT = "api"
"""The endpoint that pages: the drill's main loop renews and reloads it."""
