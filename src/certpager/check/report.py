"""Rendering endpoint reports: the JSON shape (docs/check.md, "JSON", and docs/deeper-checks.md, "JSON facts") and the readable table."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from certpager.config import format_hostport
from certpager.probe.findings import hint_label
from certpager.probe.model import BackendResult, CertInfo, EndpointReport, Finding, Status
from certpager.text import printable


@functools.lru_cache(maxsize=4096)
def _iso(dt: datetime | None) -> str | None:
    """``2026-11-27T13:05:09Z`` (``dt`` is in UTC), or None. Cached: a report names the
    same instants several times (the leaf's expiry at three places, the check time)."""
    if dt is None:
        return None
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


def cert_json(cert: CertInfo) -> dict[str, Any]:
    """One certificate of a chain."""
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_before": _iso(cert.not_before),
        "not_after": _iso(cert.not_after),
        "sha256": cert.sha256,
        "serial": cert.serial,
        "key": cert.key_desc,
        "signature_algorithm": cert.signature_algorithm,
        "sans": list(cert.sans),
        "spki_pin": cert.spki_pin,
        "is_ca": cert.is_ca,
        "self_signed": cert.self_signed,
    }


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding."""
    out: dict[str, Any] = {
        "code": f.code,
        "severity": f.severity.label,
        "message": f.message,
        "hint": f.hint,
        "runbook": f.runbook,
    }
    if f.backends:
        out["backends"] = list(f.backends)
    return out


def _timings(b: BackendResult) -> dict[str, float | None]:
    t = b.handshake.timings

    def r(v: float | None) -> float | None:
        return round(v, 2) if v is not None else None

    return {
        "dns_ms": r(t.dns_ms),
        "connect_ms": r(t.connect_ms),
        "handshake_ms": r(t.handshake_ms),
        "total_ms": r(t.total_ms),
    }


def backend_json(b: BackendResult, now: datetime) -> dict[str, Any]:
    """One backend's result."""
    hs = b.handshake
    a = b.analysis
    leaf = a.leaf if a is not None else None
    out: dict[str, Any] = {
        "address": hs.address,
        "port": hs.port,
        "status": b.status.value,
        "error_code": hs.error_code,
        "error": hs.error,
        "tls_version": hs.tls_version,
        "cipher": hs.cipher,
        "alpn": hs.alpn,
        "client_cert_requested": hs.client_cert_requested,
        "client_ca_names": list(hs.client_ca_names),
        "client_auth_error": hs.client_auth_error,
        "leaf_sha256": leaf.sha256 if leaf else None,
        "not_after": _iso(leaf.not_after) if leaf else None,
        "days_left": round(leaf.days_left(now), 2) if leaf else None,
        "trusted": a.trusted if a is not None else None,
        "hostname_ok": a.hostname_ok if a is not None else None,
        "chain_length": len(hs.chain_der),
        "timings": _timings(b),
        "findings": [finding_json(f) for f in b.findings],
    }
    b.deep.write_json(out)
    return out


def report_json(r: EndpointReport, now: datetime | None = None) -> dict[str, Any]:
    """The JSON object of one endpoint (docs/check.md, "JSON", and docs/deeper-checks.md, "JSON facts")."""
    now = now or r.checked_at
    primary = r.primary
    a = primary.analysis if primary is not None else None
    hs = primary.handshake if primary is not None else None
    leaf = a.leaf if a is not None else None
    out: dict[str, Any] = {
        "name": r.name,
        "host": r.host,
        "port": r.port,
        "sni": r.sni,
        "status": r.status.value,
        "days_left": round(leaf.days_left(now), 2) if leaf else None,
        "not_after": _iso(leaf.not_after) if leaf else None,
        "chain_not_after": _iso(a.chain_not_after) if a is not None else None,
        "trusted": a.trusted if a is not None else None,
        "hostname_ok": a.hostname_ok if a is not None else None,
        "tls_version": hs.tls_version if hs else None,
        "cipher": hs.cipher if hs else None,
        "alpn": hs.alpn if hs else None,
        "chain_length": len(hs.chain_der) if hs else 0,
        "chain": [cert_json(c) for c in a.chain] if a is not None else [],
        "verified_path": [c.sha256 for c in a.verified_path] if a is not None else [],
        "findings": [finding_json(f) for f in r.findings],
        "backends": [backend_json(b, now) for b in r.backends],
        "error": r.error,
        "timings": _timings(primary) if primary is not None else None,
        "checked_at": _iso(r.checked_at),
    }
    r.deep.write_json(out)
    return out


def encode_json(
    report: EndpointReport, *, pretty: bool = False, extra: Mapping[str, Any] | None = None
) -> str:
    """One report's JSON text as it appears inside :func:`write_json`'s list; ``extra``
    keys (the endpoint's Alertmanager alerts, docs/check.md) come last."""
    obj = report_json(report)
    if extra:
        obj.update(extra)
    if pretty:
        # JSON strings hold no raw newline: every "\n" is between two lines of the layout.
        return json.dumps(obj, indent=2).replace("\n", "\n  ")
    return json.dumps(obj)


def write_json_texts(texts: Iterable[str], stream: TextIO | None = None, *, pretty: bool = False) -> None:
    """The JSON list of already encoded reports (:func:`encode_json`) and a newline."""
    out = stream if stream is not None else sys.stdout
    if pretty:
        opening, separator, closing = "[\n  ", ",\n  ", "\n]\n"
    else:
        opening, separator, closing = "[", ", ", "]\n"
    first = True
    for text in texts:
        out.write((opening if first else separator) + text)
        first = False
    out.write("[]\n" if first else closing)


def write_json(
    reports: Sequence[EndpointReport], stream: TextIO | None = None, *, pretty: bool = False
) -> None:
    """The JSON list of :func:`report_json` objects and a newline: the text of
    ``json.dumps([...], indent=2 if pretty else None)``, written one report at a time so
    that only one report's text is held in memory at once (compact output also takes
    the C encoder; ``indent`` needs the pure-Python one)."""
    write_json_texts((encode_json(r, pretty=pretty) for r in reports), stream, pretty=pretty)


# --- the table ---------------------------------------------------------------------

_COLORS = {
    Status.OK: "32",
    Status.WARNING: "33",
    Status.CRITICAL: "31",
    Status.PAGE: "1;31",
    Status.ERROR: "35",
}


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal and never with ``NO_COLOR`` set."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def render_table(
    reports: Sequence[EndpointReport],
    *,
    color: bool = False,
    now: datetime | None = None,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A readable report, worst first; every finding in plain words with its fix;
    ``notes`` (endpoint name -> lines, e.g. the alerts paging about it) under its row."""
    from certpager.probe.engine import sort_reports

    def paint(text: str, status: Status) -> str:
        return f"\x1b[{_COLORS[status]}m{text}\x1b[0m" if color else text

    rows = sort_reports(reports, now)
    # Every line goes through the one escaper (certpager.text.printable) as a whole:
    # names, addresses, issuers, messages and hints all hold text from servers or from
    # the config. Only the colour of the leading label, added afterwards, is certpager's.
    lines: list[str] = []
    # ENDPOINT and ADDRESS are as wide as their longest entry: a name or an SNI is never cut.
    names = [printable(r.name) for r in rows]
    addresses = [
        printable(format_hostport(r.host, r.port) + (f" @{r.sni}" if r.sni and r.sni != r.host else ""))
        for r in rows
    ]
    name_w = max([len("ENDPOINT"), *map(len, names)])
    addr_w = max([len("ADDRESS"), *map(len, addresses)])
    header = (
        f"{'STATUS':<9} {'ENDPOINT':<{name_w}} {'ADDRESS':<{addr_w}} {'DAYS':>6}  {'EXPIRES':<16}  "
        f"{'TLS':<7}  ISSUER"
    )
    lines.append(header)
    for r, name, address in zip(rows, names, addresses, strict=True):
        when = now or r.checked_at
        leaf = r.leaf
        days = f"{leaf.days_left(when):.1f}" if leaf else "-"
        expires = leaf.not_after.strftime("%Y-%m-%d %H:%M") if leaf else "-"
        primary = r.primary
        tls = (primary.handshake.tls_version or "-") if primary else "-"
        issuer = _short_issuer(leaf.issuer) if leaf else (r.error or "-")
        lines.append(
            paint(f"{r.status.value.upper():<9}", r.status)
            + printable(f" {name:<{name_w}} {address:<{addr_w}} {days:>6}  {expires:<16}  {tls:<7}  {issuer}")
        )
        lines.extend(
            paint("    PAGED   ", Status.PAGE) + printable(f" {n}") for n in (notes or {}).get(r.name, ())
        )
        for f in r.findings:
            where = f" [{', '.join(f.backends)}]" if f.backends else ""
            sev = Status.from_severity(f.severity) if f.severity.label != "info" else Status.OK
            tag = paint(f"{f.severity.label:<8}", sev)
            lines.append(f"    {tag}" + printable(f" {f.code}{where}: {f.message}"))
            fix = f.hint + (f" (runbook: {f.runbook})" if f.runbook else "")
            if fix:
                lines.append(printable(f"             {hint_label(f)}: {fix}"))
    lines.append("")
    lines.append(_summary(rows))
    return "\n".join(lines) + "\n"


def _summary(rows: Sequence[EndpointReport]) -> str:
    """``3 endpoint(s): 1 page, 2 ok``: how many endpoints per status, worst first."""
    counts: dict[Status, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda kv: -kv[0].rank))
    return f"{len(rows)} endpoint(s): {summary or 'none'}"


def _short_issuer(issuer: str) -> str:
    for part in issuer.split(","):
        if part.startswith("CN="):
            return part
    return issuer[:40]


def write_table(
    reports: Sequence[EndpointReport],
    stream: TextIO | None = None,
    *,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Print :func:`render_table` with colour when appropriate."""
    stream = stream or sys.stdout
    stream.write(render_table(reports, color=use_color(stream), notes=notes))
