"""Which endpoint each firing alert pages about (pure).

An alert names its endpoint by one of its labels, tried in this order:

- ``endpoint``: certpager's own exporter and rules, the endpoint's name;
- ``target``: blackbox's multi-target pattern (``__param_target`` relabelled);
- ``instance``: what blackbox setups usually relabel the target into.

A ``target``/``instance`` value is ``host``, ``host:port``, ``[v6]:port``,
``https://host[:port]/path`` or ``host:port@sni`` (port 443 when none is given).
It matches a configured endpoint with that port whose host or server name is that
host (and that SNI, when the value names one). Alerts for targets the config does
not hold become ad-hoc endpoints (named after the target, default settings) that
can be probed; they can be fixed only when a configured endpoint on the same host
says where runbooks run (its ``ssh``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit

from certpager.config import Endpoint, Settings, parse_target
from certpager.errors import TargetError
from certpager.fleet.alertmanager import MAX_ALERTS, Alert, AlertBatch


@dataclass(frozen=True)
class Page:
    """One firing alert about one endpoint."""

    alertname: str
    """The ``alertname`` label."""
    severity: str | None
    """The ``severity`` label."""
    starts_at: datetime | None
    """When it started firing (UTC)."""
    labels: dict[str, str]
    """Every label of the alert."""
    fingerprint: str
    """Alertmanager's identity of the alert."""
    endpoint: str
    """Name of the endpoint it pages about."""
    summary: str | None = None
    """The alert's ``summary`` (or ``description``) annotation."""

    @property
    def from_blackbox(self) -> bool:
        """Whether the alert is blackbox's (a target label, no certpager ``endpoint`` label)."""
        return "endpoint" not in self.labels and ("instance" in self.labels or "target" in self.labels)

    def json(self) -> dict[str, object]:
        """The alert in ``certpager check --json`` (docs/check.md, "alerts")."""
        return {
            "alertname": self.alertname,
            "severity": self.severity,
            "starts_at": _iso(self.starts_at),
            "labels": dict(self.labels),
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Ignored:
    """Alerts of one fetch that page about no endpoint, by reason: counted and said
    (``certpager check``'s table and JSON, a TUI notice), never left out silently."""

    malformed: int = 0
    """Entries that are not an alert (:attr:`AlertBatch.malformed`)."""
    duplicate: int = 0
    """A fingerprint already seen (:attr:`AlertBatch.duplicate`)."""
    over_limit: int = 0
    """Beyond the first :data:`~certpager.fleet.alertmanager.MAX_ALERTS`."""
    no_endpoint: int = 0
    """Alerts with no usable ``endpoint``, ``target`` or ``instance`` label."""

    @property
    def total(self) -> int:
        """Every alert ignored."""
        return self.malformed + self.duplicate + self.over_limit + self.no_endpoint

    def json(self) -> dict[str, int]:
        """``alerts_ignored`` in ``certpager check --json`` (docs/check.md, "alerts")."""
        return {
            "total": self.total,
            "malformed": self.malformed,
            "duplicate": self.duplicate,
            "over_limit": self.over_limit,
            "no_endpoint": self.no_endpoint,
        }

    def sentence(self) -> str | None:
        """``Alertmanager: 3 alerts ignored (2 malformed, 1 duplicate)``; None when none was."""
        reasons = (
            (self.malformed, "malformed"),
            (self.duplicate, "duplicate"),
            (self.over_limit, f"beyond the first {MAX_ALERTS:,}"),
            (self.no_endpoint, "naming no endpoint"),
        )
        parts = [f"{n} {why}" for n, why in reasons if n]
        if not parts:
            return None
        plural = "s" if self.total != 1 else ""
        return f"Alertmanager: {self.total} alert{plural} ignored ({', '.join(parts)})"


@dataclass(frozen=True)
class PageMap:
    """The alerts of one fetch, by endpoint."""

    pages: dict[str, tuple[Page, ...]] = field(default_factory=dict)
    """Endpoint name -> its alerts, earliest first."""
    adhoc: tuple[Endpoint, ...] = ()
    """Endpoints made for alerts whose target the config does not hold."""
    unmapped: int = 0
    """Alerts with no usable ``endpoint``, ``target`` or ``instance`` label."""
    ignored: Ignored = Ignored()
    """Every alert of the fetch left out, by reason (:func:`map_batch`; :attr:`unmapped` only,
    from :func:`map_alerts`)."""
    error: str | None = None
    """Why there are no alerts: the fetch failed (one line); None when they were fetched."""

    def of(self, name: str) -> tuple[Page, ...]:
        """The alerts about endpoint ``name`` (none: empty)."""
        return self.pages.get(name, ())


def _iso(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt is not None else None


def target_text(value: str) -> str | None:
    """``host[:port][@sni]`` of a ``target``/``instance`` label value, or None when it holds
    no host (``https://host:8443/path`` -> ``host:8443``)."""
    value = value.strip()
    if "://" in value:
        try:  # a label is the server's text: "https://[::1/x" makes urlsplit raise
            parts = urlsplit(value)
            default = {"https": 443, "http": 80}.get(parts.scheme.lower(), 443)
            port = parts.port or default
            host = parts.hostname or ""
        except ValueError:
            return None
        if not parts.netloc or "@" in parts.netloc:
            return None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return value or None


def _host_key(host: str | None) -> str | None:
    return host.lower().rstrip(".") if host is not None else None


class EndpointIndex:
    """Configured endpoints by name and by host and server name (lower case), so that
    mapping N alerts costs N look-ups, not N times the config."""

    def __init__(self, endpoints: Sequence[Endpoint]):
        self.endpoints = endpoints
        self.by_name = {ep.name: ep for ep in endpoints}
        self.by_host: dict[str, list[Endpoint]] = {}
        for ep in endpoints:
            for key in {_host_key(ep.host), _host_key(ep.server_name)} - {None}:
                assert key is not None
                self.by_host.setdefault(key, []).append(ep)

    def match(self, target: Endpoint) -> Endpoint | None:
        """The configured endpoint ``target`` (parsed from a label) is about, if any: same
        port, its host or server name is the target's host, and the target's SNI if it names
        one. Several such endpoints (one address serving several names) and a target naming
        no SNI: the one whose server name is that host, else none (an alert about
        ``10.0.0.5:443`` is not about whichever name happens to be configured first there)."""
        found = [
            ep
            for ep in self.by_host.get(_host_key(target.host) or "", ())
            if ep.port == target.port
            and (target.sni is None or _host_key(target.sni) == _host_key(ep.server_name))
        ]
        if len(found) <= 1:
            return found[0] if found else None
        want = _host_key(target.server_name)
        named = [ep for ep in found if _host_key(ep.server_name) == want]
        return named[0] if named else None

    def labelled(self, alert: Alert, settings: Settings) -> Endpoint | str | None:
        """The configured endpoint an alert names, else its parsed target text, else None."""
        # certpager's own endpoint job names the endpoint (its `endpoint` label, or its
        # `instance` when a scrape config keeps the name there): a name wins over parsing.
        for key in ("endpoint", "instance", "target"):
            name = alert.labels.get(key)
            if name is not None and name in self.by_name:
                return self.by_name[name]
        for key in ("target", "instance"):
            text = target_text(alert.labels.get(key, ""))
            if text is None:
                continue
            try:
                target = parse_target(text, settings)
            except TargetError:
                continue
            return self.match(target) or text
        return None


def match_endpoint(target: Endpoint, endpoints: Sequence[Endpoint]) -> Endpoint | None:
    """The configured endpoint ``target`` (parsed from a label) is about, if any."""
    return EndpointIndex(endpoints).match(target)


def adhoc_endpoint(text: str, endpoints: Sequence[Endpoint] | EndpointIndex, settings: Settings) -> Endpoint:
    """An endpoint for a target the config does not hold: default settings, and the ``ssh``
    of a configured endpoint on the same host (when one says where runbooks run there)."""
    index = endpoints if isinstance(endpoints, EndpointIndex) else EndpointIndex(endpoints)
    ep = parse_target(text, settings)
    for other in index.by_host.get(_host_key(ep.host) or "", ()):
        if other.ssh is not None:
            return replace(ep, ssh=other.ssh)
    return ep


def map_alerts(alerts: Iterable[Alert], endpoints: Sequence[Endpoint], settings: Settings) -> PageMap:
    """Each alert's endpoint; ad-hoc endpoints for targets not in ``endpoints``."""
    index = EndpointIndex(endpoints)
    pages: dict[str, list[Page]] = {}
    adhoc: dict[str, Endpoint] = {}
    unmapped = 0
    for alert in alerts:
        found = index.labelled(alert, settings)
        if found is None:
            unmapped += 1
            continue
        if isinstance(found, str):
            if found not in adhoc and found not in index.by_name:
                adhoc[found] = adhoc_endpoint(found, index, settings)
            name = found
        else:
            name = found.name
        pages.setdefault(name, []).append(
            Page(
                alertname=alert.alertname,
                severity=alert.severity,
                starts_at=alert.starts_at,
                labels=dict(alert.labels),
                fingerprint=alert.fingerprint,
                endpoint=name,
                summary=alert.summary,
            )
        )
    ordered = {
        name: tuple(
            sorted(items, key=lambda p: (p.starts_at is None, p.starts_at or datetime.min, p.alertname))
        )
        for name, items in pages.items()
    }
    return PageMap(
        pages=ordered, adhoc=tuple(adhoc.values()), unmapped=unmapped, ignored=Ignored(no_endpoint=unmapped)
    )


def map_batch(batch: AlertBatch, endpoints: Sequence[Endpoint], settings: Settings) -> PageMap:
    """:func:`map_alerts` of one fetch, with what the fetch left out in :attr:`PageMap.ignored`."""
    pages = map_alerts(batch.alerts, endpoints, settings)
    ignored = Ignored(batch.malformed, batch.duplicate, batch.over_limit, pages.unmapped)
    return replace(pages, ignored=ignored)


def page_line(pages: Sequence[Page]) -> str:
    """``paged by ALERT since TIME (N alerts)``: the earliest alert of an endpoint (unescaped)."""
    first = pages[0]
    since = first.starts_at.strftime("%Y-%m-%d %H:%M UTC") if first.starts_at else "an unknown time"
    count = f" ({len(pages)} alerts)" if len(pages) > 1 else ""
    return f"paged by {first.alertname or 'an alert without alertname'} since {since}{count}"


__all__ = [
    "EndpointIndex",
    "Ignored",
    "Page",
    "PageMap",
    "adhoc_endpoint",
    "map_alerts",
    "map_batch",
    "match_endpoint",
    "page_line",
    "target_text",
]
