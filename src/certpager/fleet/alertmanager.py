"""Alertmanager API v2 client: the firing alerts, and silences while a runbook fixes.

- :meth:`AlertmanagerClient.alerts`: ``GET /api/v2/alerts?active=true&silenced=false&inhibited=false``
  with the configured matchers as ``filter`` parameters;
- :meth:`AlertmanagerClient.create_silence` (``POST /api/v2/silences``),
  :meth:`AlertmanagerClient.expire_silence` (``DELETE /api/v2/silence/{id}``),
  :meth:`AlertmanagerClient.silence` (``GET /api/v2/silence/{id}``).

Every request is one bounded exchange (:func:`certpager.fleet.api.exchange`): one overall
deadline (``settings.alertmanager.timeout``) a trickling server cannot stretch, at most
:data:`MAX_RESPONSE` bytes read, no redirect followed, no compressed body accepted. Anything that goes wrong is one
:class:`~certpager.errors.AlertmanagerError` line naming the URL; callers show it and go on.

Label and annotation values are the server's text: kept as they are (bounded in size)
and escaped by whoever shows them (:func:`certpager.text.printable`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from certpager.config import AlertmanagerSettings
from certpager.errors import AlertmanagerError, FleetApiError
from certpager.fleet.api import ApiServer, exchange, parse_json, quote_body

#: Largest response body read, bytes (10,000 alerts of Debian's Alertmanager take about 4.3 MB);
#: a larger ``Content-Length`` is refused before the body is read.
MAX_RESPONSE = 16 * 1024 * 1024
#: Most alerts kept from one answer (the rest are dropped, see :attr:`AlertBatch.dropped`;
#: :data:`certpager.fleet.api.MAX_VALUES` allows about 33,000).
MAX_ALERTS = 30_000
#: How far in the future a ``startsAt`` may be (clock skew) before it counts as unknown.
MAX_SKEW = timedelta(minutes=5)
#: Longest label or annotation value kept, characters (longer ones are cut, with "...").
MAX_VALUE_CHARS = 1024
#: Most labels or annotations kept per alert.
MAX_LABELS = 64


@dataclass(frozen=True)
class Alert:
    """One firing alert as Alertmanager reports it."""

    alertname: str
    """The ``alertname`` label."""
    severity: str | None
    """The ``severity`` label, when there is one."""
    starts_at: datetime | None
    """When it started firing (UTC)."""
    labels: Mapping[str, str]
    """Every label."""
    fingerprint: str
    """Alertmanager's identity of the alert."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """``summary``, ``description``...."""

    @property
    def summary(self) -> str | None:
        """The ``summary`` annotation, else ``description``."""
        return self.annotations.get("summary") or self.annotations.get("description")


def parse_time(value: object, now: datetime | None = None) -> datetime | None:
    """An RFC 3339 time as Alertmanager writes it (``2026-12-03T16:17:58.026Z``), in UTC;
    None when it is not one, or lies in the future (beyond :data:`MAX_SKEW` after ``now``):
    an alert cannot have started firing later than now."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        return None
    if parsed > (now or datetime.now(UTC)) + MAX_SKEW:
        return None
    return parsed


def _strings(value: object) -> dict[str, str] | None:
    """A label set: a JSON object of strings (bounded), or None when it is not one."""
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    for key, item in list(value.items())[:MAX_LABELS]:
        if not isinstance(key, str) or not isinstance(item, str) or len(key) > 256:
            return None
        out[key] = item if len(item) <= MAX_VALUE_CHARS else item[: MAX_VALUE_CHARS - 3] + "..."
    return out


def alert_of(item: object) -> Alert | None:
    """One alert of ``GET /api/v2/alerts``, or None when it is malformed."""
    if not isinstance(item, dict):
        return None
    labels = _strings(item.get("labels"))
    annotations = _strings(item.get("annotations") or {})
    fingerprint = item.get("fingerprint")
    if (
        labels is None
        or annotations is None
        or not isinstance(fingerprint, str)
        or not 0 < len(fingerprint) <= 64
    ):
        return None
    return Alert(
        alertname=labels.get("alertname", ""),
        severity=labels.get("severity"),
        starts_at=parse_time(item.get("startsAt")),
        labels=labels,
        fingerprint=fingerprint,
        annotations=annotations,
    )


@dataclass(frozen=True)
class AlertBatch:
    """The alerts of one fetch."""

    alerts: tuple[Alert, ...]
    """Firing, not silenced, not inhibited, matching the configured matchers."""
    malformed: int = 0
    """Entries left out as malformed (not an object, labels that are not strings, no fingerprint)."""
    duplicate: int = 0
    """Entries left out because an earlier one had the same fingerprint."""
    over_limit: int = 0
    """Entries left out beyond the first :data:`MAX_ALERTS`."""

    @property
    def dropped(self) -> int:
        """Every entry left out (said by ``certpager check`` and the TUI, see
        :class:`certpager.fleet.pages.Ignored`)."""
        return self.malformed + self.duplicate + self.over_limit


def batch_of(data: list[Any]) -> AlertBatch:
    """The alerts of a ``GET /api/v2/alerts`` answer (one per fingerprint: the first), and
    how many entries were left out, by reason."""
    alerts: dict[str, Alert] = {}
    malformed = duplicate = 0
    for alert in map(alert_of, data[:MAX_ALERTS]):
        if alert is None:
            malformed += 1
        elif alert.fingerprint in alerts:
            duplicate += 1
        else:
            alerts[alert.fingerprint] = alert
    over_limit = max(0, len(data) - MAX_ALERTS)
    return AlertBatch(tuple(alerts.values()), malformed=malformed, duplicate=duplicate, over_limit=over_limit)


class AlertmanagerClient:
    """Requests to one Alertmanager (the configured URL, nothing else)."""

    def __init__(self, settings: AlertmanagerSettings):
        self.settings = settings
        self._server = ApiServer(settings.url, settings.ca_file)

    def _fail(self, what: str) -> AlertmanagerError:
        return AlertmanagerError(f"alertmanager {self._server.shown}: {what}")

    async def _call(self, method: str, path: str, body: object = None, *, expect: int = 200) -> Any:
        """One request; the decoded JSON answer (None for an empty body)."""
        what = f"{method} {path.split('?')[0]}"
        try:
            response = await exchange(
                self._server, method, path, timeout=self.settings.timeout, max_body=MAX_RESPONSE, body=body
            )
            if response.status != expect:
                raise FleetApiError(f"{what} answered {response.status}: {quote_body(response)}")
            return parse_json(response.body, f"the answer to {what}")
        except FleetApiError as exc:
            raise self._fail(str(exc)) from None

    async def alerts(self) -> AlertBatch:
        """The firing alerts (active, neither silenced nor inhibited) the matchers select.

        Raises:
            AlertmanagerError: one line saying what went wrong.
        """
        query = [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        query += [("filter", m) for m in self.settings.matchers]
        data = await self._call("GET", "/api/v2/alerts?" + urlencode(query, quote_via=quote))
        if not isinstance(data, list):
            raise self._fail("GET /api/v2/alerts did not answer a list of alerts")
        return batch_of(data)

    async def create_silence(
        self,
        labels: Mapping[str, str],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        starts_at: datetime | None = None,
    ) -> str:
        """Silence the alerts with exactly these ``labels`` until ``ends_at``; the silence id."""
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())
            ],
            "startsAt": _rfc3339(starts_at or datetime.now(UTC)),
            "endsAt": _rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        data = await self._call("POST", "/api/v2/silences", body)
        silence_id = data.get("silenceID") if isinstance(data, dict) else None
        if not isinstance(silence_id, str) or not _SILENCE_ID.fullmatch(silence_id):
            raise self._fail("POST /api/v2/silences answered no silence id (a UUID)")
        return silence_id

    async def expire_silence(self, silence_id: str) -> None:
        """Expire the silence ``silence_id`` now."""
        await self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    async def silence(self, silence_id: str) -> dict[str, Any]:
        """The silence ``silence_id`` as Alertmanager holds it (``status.state``, ``endsAt``...)."""
        data = await self._call("GET", f"/api/v2/silence/{quote(silence_id, safe='')}")
        if not isinstance(data, dict):
            raise self._fail("GET /api/v2/silence answered no silence")
        return data


#: What a silence id looks like (Alertmanager's are UUIDs): it is shown, audited and sent back.
_SILENCE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def fetch_alerts(settings: AlertmanagerSettings) -> AlertBatch:
    """The firing alerts of the configured Alertmanager (:meth:`AlertmanagerClient.alerts`)."""
    return await AlertmanagerClient(settings).alerts()


def silence_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a silence for one alert matches exactly: ``alertname`` and whichever of
    ``instance``, ``target`` and ``endpoint`` it carries."""
    return {k: labels[k] for k in ("alertname", "instance", "target", "endpoint") if k in labels}


__all__ = [
    "MAX_RESPONSE",
    "Alert",
    "AlertBatch",
    "AlertmanagerClient",
    "alert_of",
    "batch_of",
    "fetch_alerts",
    "parse_time",
    "silence_labels",
]
