"""The plain-value layer of the TUI: wording, order, filter, column layout (no app)."""

from __future__ import annotations

from datetime import timedelta

import tuilab

from certpager.probe import Status
from certpager.tui import view
from certpager.tui.widgets.endpoint_table import COLUMNS, fit, layout_columns


def test_days_text_and_long() -> None:
    assert view.days_text(None) == "—"
    assert view.days_text(1.62) == "1.6d"
    assert view.days_text(62.4) == "62d"
    assert view.days_text(-2.0) == "-2.0d"
    assert view.days_long(1.6) == "expires in 1 day 14 h"
    assert view.days_long(-3.0) == "expired 3 days ago"
    assert view.days_long(0.25) == "expires in 6 h"
    assert view.days_long(3650.0) == "expires in 10.0 years"


def test_dn_short_honours_escaped_commas() -> None:
    assert view.dn_short("CN=Lab Issuing CA R7,O=certpager Lab,C=NL") == "Lab Issuing CA R7"
    assert view.dn_short("O=Acme\\, Inc.,C=US") == "Acme, Inc."
    assert view.dn_short("garbage") == "garbage"


def test_printable_escapes_control_characters() -> None:
    assert view.printable("a\x1b[31mred\x07\r\n") == "a\\x1b[31mred\\x07\\x0d\\x0a"
    assert view.printable("tab\tok") == "tab\\x09ok"  # a tab in a field could fake a column
    assert view.printable("tab\tok", tabs=True) == "tab\tok"  # remote output keeps its tabs


def rows() -> list[view.EndpointRow]:
    checker = tuilab.FakeChecker()
    out = []
    for ep in tuilab.endpoints():
        report = tuilab.build(ep, checker.specs[ep.name], tuilab.NOW)
        out.append(view.make_row(ep, report, False, tuilab.NOW))
    return out


def test_rows_sort_worst_first_then_days_left() -> None:
    ordered = [r.name for r in view.sort_rows(rows())]
    assert ordered == [
        "shop-api",
        "status-page",
        "auth",
        "payments",
        "legacy-intranet",
        "grafana",
        "www",
        "k8s-ingress",
        "mail",
    ]


def test_pending_rows_sort_last() -> None:
    ep = tuilab.endpoints()[0]
    pending = view.make_row(ep, None, True, tuilab.NOW)
    ordered = view.sort_rows([pending, *rows()])
    assert ordered[-1] is pending
    assert pending.badge == "↻ —"


def test_row_facts() -> None:
    by_name = {r.name: r for r in rows()}
    shop = by_name["shop-api"]
    assert shop.status is Status.PAGE
    assert shop.badge == "‼ PAGE"
    assert view.days_text(shop.days_left) == "1.6d"
    assert shop.issuer == "Lab Issuing CA R7"
    assert shop.tls_version == "TLSv1.3"
    assert shop.findings == 2
    assert shop.checked_text(tuilab.NOW + timedelta(seconds=42)) == "42s"
    down = by_name["status-page"]
    assert down.status is Status.ERROR and down.days_left is None


def test_filter_words_match_name_host_and_tags() -> None:
    all_rows = rows()
    assert {r.name for r in all_rows if view.matches(r, "shop")} == {"shop-api", "www"}
    assert {r.name for r in all_rows if view.matches(r, "tag:internal")} == {"legacy-intranet", "grafana"}
    assert {r.name for r in all_rows if view.matches(r, "PROD pay")} == {"payments"}
    assert {r.name for r in all_rows if view.matches(r, ":8443")} == {"legacy-intranet"}
    assert all(view.matches(r, "  ") for r in all_rows)


def test_counts_and_got_worse() -> None:
    counts = view.count_statuses(rows())
    assert counts[Status.PAGE] == 1 and counts[Status.OK] == 3 and counts[Status.WARNING] == 2
    checker = tuilab.FakeChecker()
    ep = tuilab.endpoints()[0]
    good = tuilab.build(ep, checker.specs["www"], tuilab.NOW)
    bad = tuilab.build(ep, tuilab.Spec(None, error=("connect_refused", "refused")), tuilab.NOW)
    assert view.got_worse(good, bad)
    assert not view.got_worse(bad, good)
    assert not view.got_worse(None, bad)


def test_columns_fit_80_and_120() -> None:
    for width in (79, 119, 200):
        chosen = layout_columns(width)
        used = sum(w for _, w in chosen) + (len(chosen) - 1)
        assert used <= width
        keys = [c.key for c, _ in chosen]
        assert keys[:2] == ["status", "name"] and "days" in keys and "expires" in keys
    narrow = [c.key for c, _ in layout_columns(79)]
    assert "issuer" not in narrow and "address" in narrow and "findings" in narrow
    assert [c.key for c, _ in layout_columns(119)] == [c.key for c in COLUMNS]


def test_fit_cuts_with_an_ellipsis() -> None:
    assert fit("abcdef", 4) == "abc…"
    assert fit("ab", 4) == "ab  "
    assert fit("ab", 4, right=True) == "  ab"
    assert fit("x\x1by", 8) == "x\\x1by  "
