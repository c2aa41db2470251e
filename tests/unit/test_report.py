"""Rendering: the JSON object, the readable table (worst first, plain words,
fix hints, no terminal control from certificate text), and the Nagios exit code.

Reports are assembled from handshake records and the real analysis, without a network.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence

import pytest
from tests.support.pki import Hierarchy, Issued

from certpager.check.cli import exit_code
from certpager.check.report import render_table, report_json, write_json
from certpager.config import Endpoint
from certpager.probe.engine import backend_result, build_report, sort_reports
from certpager.probe.model import EndpointReport, Handshake, Timings


def make_report(
    ca: Hierarchy,
    now: dt.datetime,
    name: str,
    chain: Sequence[Issued] = (),
    *,
    error_code: str | None = None,
    addresses: Sequence[str] = ("127.0.0.1",),
    sni: str = "app.test",
) -> EndpointReport:
    ep = Endpoint(name=name, host="app.test", port=443, sni=sni, ca_file=str(ca.root_file))
    backends = []
    for address in addresses:
        hs = Handshake(
            address=address,
            port=443,
            sni=sni,
            chain_der=tuple(c.der for c in chain),
            tls_version=None if error_code else "TLSv1.3",
            cipher=None if error_code else "TLS_AES_256_GCM_SHA384",
            timings=Timings(dns_ms=1.0, connect_ms=0.5, handshake_ms=3.25, total_ms=4.75),
            error_code=error_code,
            error="connection refused by 127.0.0.1:443" if error_code else None,
        )
        backends.append(backend_result(ep, hs, now))
    return build_report(ep, backends, now)


@pytest.fixture(scope="module")
def reports(ca: Hierarchy, now: dt.datetime) -> dict[str, EndpointReport]:
    return {
        "ok": make_report(ca, now, "ok", [ca.leaf("app.test", not_after=80), ca.intermediate]),
        "warning": make_report(
            ca, now, "warning", [ca.leaf("app.test", not_before=-355, not_after=10), ca.intermediate]
        ),
        "critical": make_report(ca, now, "critical", [ca.leaf("app.test")]),
        "page": make_report(
            ca, now, "page", [ca.leaf("app.test", not_before=-91, not_after=-1), ca.intermediate]
        ),
        "error": make_report(ca, now, "error", error_code="connect_refused"),
    }


def test_statuses(reports: dict[str, EndpointReport]) -> None:
    assert {name: r.status.value for name, r in reports.items()} == {
        "ok": "ok",
        "warning": "warning",
        "critical": "critical",
        "page": "page",
        "error": "error",
    }


@pytest.mark.parametrize(
    ("names", "code"),
    [
        ([], 0),
        (["ok"], 0),
        (["ok", "warning"], 1),
        (["warning", "critical"], 2),
        (["ok", "page"], 2),
        (["ok", "error"], 2),
        (["ok", "warning", "critical", "page", "error"], 2),
    ],
)
def test_exit_code(reports: dict[str, EndpointReport], names: list[str], code: int) -> None:
    assert exit_code([reports[n].status for n in names]) == code


def test_sort_worst_first(reports: dict[str, EndpointReport], now: dt.datetime) -> None:
    order = [r.name for r in sort_reports(list(reports.values()), now)]
    assert order == ["page", "error", "critical", "warning", "ok"]


def test_sort_ties_by_days_left_then_name(ca: Hierarchy, now: dt.datetime) -> None:
    a = make_report(ca, now, "b-later", [ca.leaf("app.test", not_before=-355, not_after=12), ca.intermediate])
    b = make_report(ca, now, "a-sooner", [ca.leaf("app.test", not_before=-355, not_after=9), ca.intermediate])
    c = make_report(ca, now, "c-sooner", [ca.leaf("app.test", not_before=-355, not_after=9), ca.intermediate])
    assert [r.name for r in sort_reports([a, c, b], now)] == ["a-sooner", "c-sooner", "b-later"]


def test_json_ok(reports: dict[str, EndpointReport], ca: Hierarchy, now: dt.datetime) -> None:
    data = report_json(reports["ok"], now)
    json.dumps(data)  # serialisable as is
    for key in (
        "name",
        "host",
        "port",
        "sni",
        "status",
        "days_left",
        "not_after",
        "tls_version",
        "cipher",
        "chain_length",
        "chain",
        "findings",
        "backends",
        "error",
        "timings",
    ):
        assert key in data, key
    assert (data["name"], data["host"], data["port"], data["sni"]) == ("ok", "app.test", 443, "app.test")
    assert data["status"] == "ok" and data["error"] is None and data["findings"] == []
    assert data["days_left"] == 80.0
    assert data["not_after"] == (now + dt.timedelta(days=80)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert data["tls_version"] == "TLSv1.3" and data["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert data["chain_length"] == 2 == len(data["chain"])
    leaf, inter = data["chain"]
    assert set(leaf) >= {
        "subject",
        "issuer",
        "not_before",
        "not_after",
        "sha256",
        "serial",
        "key",
        "signature_algorithm",
    }
    assert leaf["key"] == "EC P-256" and inter["key"] == "RSA 2048"
    assert inter["sha256"] == ca.intermediate.sha256
    assert data["timings"] == {"dns_ms": 1.0, "connect_ms": 0.5, "handshake_ms": 3.25, "total_ms": 4.75}
    (backend,) = data["backends"]
    assert backend["address"] == "127.0.0.1" and backend["status"] == "ok"


def test_json_findings_and_error(reports: dict[str, EndpointReport], now: dt.datetime) -> None:
    warning = report_json(reports["warning"], now)
    for f in warning["findings"]:
        assert set(f) >= {"code", "severity", "message"}
    assert {f["code"]: f["severity"] for f in warning["findings"]} == {
        "expires_soon": "warning",
        "renewal_overdue": "warning",
    }
    error = report_json(reports["error"], now)
    assert error["status"] == "error"
    assert error["error"] == "connection refused by 127.0.0.1:443"
    assert error["days_left"] is None and error["not_after"] is None and error["tls_version"] is None
    assert error["chain"] == [] and error["chain_length"] == 0
    assert [f["code"] for f in error["findings"]] == ["connect_refused"]
    assert [f["severity"] for f in error["findings"]] == ["error"]


def test_json_names_backends_of_partial_findings(ca: Hierarchy, now: dt.datetime) -> None:
    ep = Endpoint(name="multi", host="app.test", sni="app.test", ca_file=str(ca.root_file))
    good = Handshake("10.0.0.1", 443, "app.test", chain_der=(ca.leaf("app.test").der, ca.intermediate.der))
    bad = Handshake("10.0.0.2", 443, "app.test", chain_der=(ca.leaf("app.test").der,))
    report = build_report(ep, [backend_result(ep, good, now), backend_result(ep, bad, now)], now)
    data = report_json(report, now)
    (finding,) = [f for f in data["findings"] if f["code"] == "chain_incomplete"]
    assert finding["backends"] == ["10.0.0.2:443"]
    assert [b["status"] for b in data["backends"]] == ["ok", "critical"]


def test_table(reports: dict[str, EndpointReport], now: dt.datetime) -> None:
    text = render_table(list(reports.values()), now=now)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["STATUS", "ENDPOINT", "ADDRESS", "DAYS"]
    rows = [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
    assert rows[:5] == ["PAGE", "ERROR", "CRITICAL", "WARNING", "OK"]
    assert lines[-1] == "5 endpoint(s): 1 page, 1 error, 1 critical, 1 warning, 1 ok"
    assert "cert_expired: certificate expired 1.0 days ago" in text
    assert "chain_incomplete: the server did not send the intermediate certificate" in text
    assert "connect_refused: connection refused" in text
    assert "fix: Serve the full chain" in text
    assert "(runbook: " in text
    assert "\x1b" not in text


def test_table_colour_only_when_asked(reports: dict[str, EndpointReport], now: dt.datetime) -> None:
    coloured = render_table([reports["page"], reports["ok"]], color=True, now=now)
    assert "\x1b[1;31m" in coloured and "\x1b[32m" in coloured
    assert "\x1b" not in render_table([reports["page"]], color=False, now=now)


def test_table_never_prints_control_characters_from_certificates(ca: Hierarchy, now: dt.datetime) -> None:
    evil = ca.root.intermediate("Evil \x1b[2J\x1b]52;c;cHduZWQ=\x07 CA")
    report = make_report(ca, now, "evil\x1b[31m", [evil.leaf("app.test"), evil, ca.root], sni="app.test")
    text = render_table([report], now=now)
    assert "\x1b" not in text and "\x07" not in text
    assert "Evil" in text


def test_table_empty() -> None:
    assert render_table([]).splitlines()[-1] == "0 endpoint(s): none"


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_write_json_is_the_whole_list_dumped(
    reports: dict[str, EndpointReport], pretty: bool, count: int
) -> None:
    """Written report by report, the text is exactly ``json.dumps`` of the whole list
    (indented with ``pretty``, compact otherwise) and a newline."""
    chosen = list(reports.values())[:count]
    out = io.StringIO()
    write_json(chosen, out, pretty=pretty)
    whole = [report_json(r) for r in chosen]
    assert out.getvalue() == json.dumps(whole, indent=2 if pretty else None) + "\n"
    assert json.loads(out.getvalue()) == whole


def test_table_never_cuts_the_name_or_the_sni(ca: Hierarchy, now: dt.datetime) -> None:
    sni = "payments-gateway.eu-west-1.internal.example.com"
    name = "payments-gateway-production-eu-west-1"
    long = make_report(ca, now, name, [ca.leaf(sni), ca.intermediate], sni=sni)
    short = make_report(ca, now, "ok", [ca.leaf("app.test"), ca.intermediate])
    lines = render_table([long, short], now=now).splitlines()
    row = next(line for line in lines if name in line)
    assert f"{name} app.test:443 @{sni} " in row
    # The columns after ADDRESS still line up under their headers.
    days = lines[0].index("DAYS") + len("DAYS")
    assert all(line[days - 1] != " " for line in lines[1:3])
    # Short entries keep the table within 120 columns.
    assert len(render_table([short], now=now).splitlines()[1]) <= 120
