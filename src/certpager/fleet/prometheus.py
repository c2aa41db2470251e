"""Import the fleet from Prometheus: an instant query's series become endpoints.

``prometheus: {url, query}`` in the config (default query: the blackbox exporter's
``probe_ssl_earliest_cert_expiry``). Each series names its target in the ``target``
label when it has one, else in ``instance``: ``host:port``, ``https://host[:port]/path``
or certpager's own ``HOST[:PORT][@SNI]``. The instance label is the endpoint's name.
Configured endpoints win over imported ones (same name, or same host, port and SNI);
a series whose target is already imported is merged into it. Series left out unchecked (no
usable target, or named like an endpoint with a different target) are counted and said in
one line (:meth:`Imported.note`: stderr, and a notice in the TUI).

The client is :func:`certpager.fleet.api.exchange` (GET /api/v1/query): one overall
deadline, a size cap, no redirect followed; any failure is
:class:`~certpager.errors.PrometheusError`, one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from certpager.config import Config, Endpoint, PrometheusSource, Settings, parse_target
from certpager.errors import FleetApiError, PrometheusError, TargetError
from certpager.fleet.api import ApiServer, exchange, parse_json, quote_body
from certpager.inputs import InputValueError, check_text
from certpager.probe.http import HttpResponse
from certpager.text import printable

MAX_ANSWER = 32 * 1024 * 1024
"""Largest query answer read, bytes (10,000 series take about 2 MB, 100,000 about 20 MB); a larger
``Content-Length`` is refused unread."""


MAX_NAME = 255
"""Longest ``instance`` label kept as an endpoint's name, characters."""


@dataclass(frozen=True)
class Imported:
    """The outcome of an import."""

    endpoints: tuple[Endpoint, ...]
    """Endpoints made from the series, configured ones and duplicates left out."""
    skipped: int = 0
    """Series whose target could not be read as ``HOST[:PORT][@SNI]``."""
    name_taken: int = 0
    """Series left out because an earlier one (or, after :func:`merge_counted`, a configured
    endpoint) has their endpoint name with another target: their target is not checked."""

    def note(self) -> str | None:
        """The one line saying which series were left out unchecked; None when none was."""
        parts = []
        if self.skipped:
            parts.append(f"{self.skipped} without a usable target label")
        if self.name_taken:
            parts.append(f"{self.name_taken} named like another endpoint with a different target")
        if not parts:
            return None
        total = self.skipped + self.name_taken
        return f"prometheus import: {total} series left out, not checked ({', '.join(parts)})"


def query(source: PrometheusSource) -> list[dict[str, str]]:
    """The label sets of the series ``source.query`` returns now (blocking: call it outside
    an event loop, or in a thread).

    Raises:
        PrometheusError: Prometheus unreachable, an error answer, or an answer that is not one.
    """
    return asyncio.run(query_async(source))


async def query_async(source: PrometheusSource) -> list[dict[str, str]]:
    """:func:`query`, in the running event loop."""
    server = ApiServer(source.url, source.ca_file)
    path = "/api/v1/query?" + urlencode({"query": source.query}, quote_via=quote)
    try:
        answer = await exchange(server, "GET", path, timeout=source.timeout, max_body=MAX_ANSWER)
    except FleetApiError as exc:
        raise PrometheusError(f"{server.shown}: cannot query Prometheus: {exc}") from None
    if answer.status != 200:
        raise PrometheusError(f"{server.shown}: HTTP {answer.status}: {_error_of(answer)}")
    return label_sets(answer.body, server.shown)


def _error_of(answer: HttpResponse) -> str:
    try:
        doc = parse_json(answer.body, "the answer")
    except FleetApiError:
        return quote_body(answer)
    if not isinstance(doc, dict):
        return quote_body(answer)
    return printable(str(doc.get("error", "")))[:300] or "no error text"


def label_sets(body: bytes, where: str) -> list[dict[str, str]]:
    """The ``metric`` label sets of a ``/api/v1/query`` answer (vector results).

    Raises:
        PrometheusError: the answer is not JSON of that shape.
    """
    try:
        doc = parse_json(body, "the answer")
    except FleetApiError as exc:
        raise PrometheusError(f"{where}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error") if isinstance(doc, dict) else None
        why = printable(str(error))[:300] if error else 'the answer has no "status": "success"'
        raise PrometheusError(f"{where}: query failed: {why}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise PrometheusError(f"{where}: expected an instant vector, got {printable(str(kind))[:40]}")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError(f"{where}: the answer has no result list")
    return [_labels(item, where) for item in result]


def _labels(item: Any, where: str) -> dict[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise PrometheusError(f"{where}: a result without a label set")
    return metric


def target_text(labels: Mapping[str, str]) -> str | None:
    """``HOST[:PORT][@SNI]`` of a series: its ``target`` label, else ``instance``, with a
    URL's scheme and path removed (``https://host/x`` -> ``host:443``)."""
    text = labels.get("target") or labels.get("instance")
    if not text:
        return None
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme not in ("https", "tcp", "tls"):
            return None
        text = rest.split("/", 1)[0].split("?", 1)[0]
        if scheme == "https" and not _has_port(text):
            text = _with_port(text, 443)
    return text


def _has_port(text: str) -> bool:
    host = text.rsplit("@", 1)[0]
    if host.startswith("["):
        return "]:" in host
    return host.count(":") == 1


def _with_port(text: str, port: int) -> str:
    host, at, sni = text.partition("@")
    return f"{host}:{port}{at}{sni}"


def endpoints_of(series: Iterable[Mapping[str, str]], settings: Settings) -> Imported:
    """One endpoint per series (the first of each name and of each host, port and SNI)."""
    out: list[Endpoint] = []
    names: dict[str, tuple[str, int, str | None]] = {}
    places: set[tuple[str, int, str | None]] = set()
    skipped = name_taken = 0
    for labels in series:
        text = target_text(labels)
        if text is None:
            skipped += 1
            continue
        try:
            ep = parse_target(text, settings)
        except TargetError:
            skipped += 1
            continue
        name = _name(labels.get("instance"), text)
        place = (ep.host.lower(), ep.port, ep.sni.lower() if ep.sni else None)
        if name in names:  # the same series twice, or another target under a name already used
            name_taken += names[name] != place and place not in places
            continue
        if place in places:  # another name for a target already imported: it is checked
            continue
        names[name] = place
        places.add(place)
        out.append(replace(ep, name=name) if name != ep.name else ep)
    return Imported(tuple(out), skipped, name_taken)


def _name(instance: str | None, target: str) -> str:
    """The endpoint's name: the ``instance`` label when it is printable text of at most
    :data:`MAX_NAME` characters, else the target (a label holding escape sequences or 10 kB
    names nothing on a screen)."""
    if instance:
        try:
            return check_text(instance, limit=MAX_NAME)
        except InputValueError:
            pass
    return target


def merge(configured: Sequence[Endpoint], imported: Iterable[Endpoint]) -> list[Endpoint]:
    """``configured``, then the ``imported`` endpoints that no configured one names or
    covers (same host, port and SNI)."""
    return merge_counted(configured, imported)[0]


def _place(ep: Endpoint) -> tuple[str, int, str]:
    return ep.host.lower(), ep.port, (ep.sni or "").lower()


def merge_counted(configured: Sequence[Endpoint], imported: Iterable[Endpoint]) -> tuple[list[Endpoint], int]:
    """:func:`merge`, and how many imported endpoints were left out unchecked: named like a
    configured endpoint that is about another target (one the configured endpoints cover
    is checked as configured)."""
    names = {ep.name: _place(ep) for ep in configured}
    places = set(names.values())
    out = list(configured)
    taken = 0
    for ep in imported:
        place = _place(ep)
        if ep.name in names:
            taken += names[ep.name] != place and place not in places
            continue
        if place in places:
            continue
        out.append(ep)
    return out, taken


def with_imported(config: Config) -> tuple[Config, str | None]:
    """``config`` with the endpoints its ``prometheus`` section imports merged in, and a
    one-line warning when the import failed (the configured endpoints are kept) or left
    series out unchecked (:meth:`Imported.note`). Without a ``prometheus`` section:
    ``config`` as it is."""
    source = config.settings.prometheus
    if source is None:
        return config, None
    try:
        series = query(source)
    except PrometheusError as exc:
        return config, f"prometheus import failed, checking the configured endpoints only: {exc}"
    merged, note = merge_series(config, series)
    return replace(config, endpoints=tuple(merged)), note


def merge_series(config: Config, series: Iterable[Mapping[str, str]]) -> tuple[list[Endpoint], str | None]:
    """The config's endpoints, then those ``series`` import (:func:`endpoints_of`,
    :func:`merge_counted`), and the note saying which series were left out unchecked."""
    imported = endpoints_of(series, config.settings)
    merged, taken = merge_counted(config.endpoints, imported.endpoints)
    return merged, replace(imported, name_taken=imported.name_taken + taken).note()


__all__ = [
    "Imported",
    "endpoints_of",
    "label_sets",
    "merge",
    "merge_counted",
    "merge_series",
    "query",
    "target_text",
    "with_imported",
]
