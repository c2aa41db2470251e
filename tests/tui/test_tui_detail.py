"""The detail screen: findings in plain words, the chain tree, handshakes, copy, back."""

from __future__ import annotations

import ssl

import tuilab

from certpager.probe import CertInfo
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.widgets.chain_tree import ChainTree
from certpager.tui.widgets.report_views import FactsView, FindingsView, HandshakeView


def plain(widget: object) -> str:
    """What a render-only widget shows, as plain text."""
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(widget.render())  # type: ignore[attr-defined]
    return console.export_text()


def tree_text(tree: ChainTree) -> str:
    lines: list[str] = []

    def walk(node: object, depth: int) -> None:
        lines.append("  " * depth + str(node.label))  # type: ignore[attr-defined]
        for child in node.children:  # type: ignore[attr-defined]
            walk(child, depth + 1)

    walk(tree.root, 0)
    return "\n".join(lines)


async def open_detail(pilot: tuilab.Pilot[int], name: str) -> DetailScreen:
    app = pilot.app
    assert isinstance(app, tuilab.CertpagerApp)
    await tuilab.settle(pilot)
    app.show_endpoint(name)
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
    await pilot.pause()
    assert isinstance(app.screen, DetailScreen)
    return app.screen


async def test_enter_opens_the_worst_endpoint_and_esc_goes_back(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.endpoint.name == "shop-api"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.endpoints_screen  # type: ignore[comparison-overlap]


async def test_findings_in_plain_words_with_fix_and_runbook(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "shop-api")
        text = plain(screen.query_one(FindingsView))
        assert "‼ PAGE" in text
        assert "certificate expires in 1.6 days" in text
        assert "Fix  Renew the certificate and reload the server" in text
        assert "Runbook  certbot-force-renew  press f" in text
        assert "renewal_overdue" in text


async def test_chain_tree_has_every_fact(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "shop-api")
        tree = screen.query_one(ChainTree)
        text = tree_text(tree)
        leaf = app.endpoints_screen.reports["shop-api"].leaf
        assert leaf is not None
        for fact in (
            "#0 leaf  api.shop.example  expires in 1 day 14 h",
            "#1 intermediate  Lab Issuing CA R7",
            "subject   CN=api.shop.example,O=Example Shop,C=NL",
            "issuer    CN=Lab Issuing CA R7,O=certpager Lab,C=NL",
            "SANs      api.shop.example, shop.example",
            "key       EC P-256",
            "signature ecdsa-with-SHA256",
            f"serial    {leaf.serial}",
            f"sha256    {leaf.sha256}",
            f"SPKI pin  {leaf.spki_pin}",
            "✓ verifies to a trusted root",
            "✓ name matches",
        ):
            # Long values wrap onto continuation lines under their label (64-column pane).
            assert "".join(fact.split()) in "".join(text.split()), fact


async def test_missing_intermediate_and_handshake_facts(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "payments")
        findings = plain(screen.query_one(FindingsView))
        assert "chain_incomplete" in findings and "Runbook  nginx-reload" in findings
        handshakes = plain(screen.query_one(HandshakeView))
        assert "192.0.2.10:443" in handshakes
        assert "TLSv1.3 · TLS_AES_128_GCM_SHA256 · ALPN h2" in handshakes
        assert "dns 2 ms · connect 15 ms · TLS 31 ms · total 48 ms" in handshakes
        assert "✖ chain does not verify" in handshakes


async def test_served_vs_stored_and_http_facts(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "auth")
        assert "served_not_stored" in plain(screen.query_one(FindingsView))
        facts = plain(screen.query_one(FactsView))
        assert "stored" in facts and "differs (renewed but not reloaded)" in facts
        await pilot.press("escape")
        screen = await open_detail(pilot, "shop-api")
        facts = plain(screen.query_one(FactsView))
        assert "port 80 answers 301 → https://api.shop.example/" in facts
        assert "max-age=63072000; includeSubDomains (730 days)" in facts
        assert "refuses TLSv1, TLSv1.1" in facts


async def test_error_endpoint_detail(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, "status-page")
        assert "connect_timeout" in plain(screen.query_one(FindingsView))
        assert "no handshake completed" in tree_text(screen.query_one(ChainTree))


async def test_copy_leaf_pem_and_fingerprint(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot, "shop-api")
        leaf = app.endpoints_screen.reports["shop-api"].leaf
        assert leaf is not None
        await pilot.press("c")
        assert app.clipboard == ssl.DER_cert_to_PEM_cert(leaf.der)
        await pilot.press("y")
        assert app.clipboard == leaf.sha256
        # the certificate under the tree cursor when the tree has focus
        tree = app.screen.query_one(ChainTree)
        tree.focus()
        await pilot.pause()
        node = next(n for n in tree._tree_nodes.values() if isinstance(n.data, CertInfo) and n.data.is_ca)
        tree.move_cursor(node)
        await pilot.press("y")
        assert isinstance(node.data, CertInfo)
        assert app.clipboard == node.data.sha256


async def test_recheck_from_detail_updates_it(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "www")
        checker.calls.clear()
        checker.specs["www"] = tuilab.Spec(
            None, error=("connect_refused", "connection refused by 192.0.2.20")
        )
        await pilot.press("r")
        await tuilab.settle(pilot)
        assert checker.calls == ["www"]
        assert screen.report is not None and screen.report.status.value == "error"
        assert "no handshake completed" in tree_text(screen.query_one(ChainTree))


async def test_an_info_finding_reads_as_a_note_not_a_fix() -> None:
    import dataclasses

    checker = tuilab.FakeChecker()
    checker.specs["www"] = dataclasses.replace(
        checker.specs["www"],
        findings=(("client_cert_required", "the server requests a client certificate (mTLS)"),),
    )
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "www")
        text = plain(screen.query_one(FindingsView))
        assert "ℹ INFO" in text and "client_cert_required" in text
        assert "Note  This is mTLS" in text
        assert "Fix  This is mTLS" not in text


async def _screen_after(path: list[str], size: tuple[int, int]) -> tuple[str, str | None, str]:
    """Open each endpoint of ``path`` in turn, moving the reader's place on each (next finding,
    the tree focused, a certificate collapsed, the pane scrolled), then open the last; returns
    what the terminal shows, the focused widget's id and the marked finding."""
    app = tuilab.make_app(tuilab.FakeChecker())
    async with app.run_test(size=size) as pilot:
        for name in path[:-1]:
            await open_detail(pilot, name)
            for key in ("n", "pagedown", "tab", "down", "down", "down", "down", "space", "end"):
                await pilot.press(key)
            await pilot.pause()
            await pilot.press("escape")
            await tuilab.wait_for(pilot, lambda: app.screen is app.endpoints_screen)
        screen = await open_detail(pilot, path[-1])
        await tuilab.settle(pilot)
        focused = screen.focused.id if screen.focused is not None else None
        return app.export_screenshot(), focused, str(screen.selected_finding())


async def test_a_reopened_detail_screen_shows_what_a_new_one_shows() -> None:
    """The app keeps one detail screen and points it at each endpoint opened: what it shows
    (every pane from the top, every certificate expanded, the worst finding marked, the
    findings pane focused, the footer's keys) is what a screen built for that endpoint shows,
    whatever was done on the endpoints opened before, at both terminal sizes."""
    for size in ((120, 40), (80, 24)):
        for path in (["auth", "shop-api"], ["shop-api", "shop-api"], ["payments", "status-page", "auth"]):
            fresh = await _screen_after(path[-1:], size)
            reused = await _screen_after(path, size)
            assert reused[1:] == fresh[1:] == ("facts", fresh[2]), (size, path)
            assert reused[0] == fresh[0], f"{path} at {size}: the reused screen differs from a new one"


async def test_the_detail_screen_is_built_once(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        first = await open_detail(pilot, "shop-api")
        await pilot.press("escape")
        await tuilab.wait_for(pilot, lambda: app.screen is app.endpoints_screen)
        second = await open_detail(pilot, "auth")
        assert second is first
        assert second.endpoint.name == "auth"
        assert "auth" in plain(second.query_one(FindingsView)) or second.report is not None


async def test_tab_and_shift_tab_move_between_the_panes(checker: tuilab.FakeChecker) -> None:
    app = tuilab.make_app(checker)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_detail(pilot, "shop-api")
        assert screen.focused is not None and screen.focused.id == "facts"
        await pilot.press("tab")
        await pilot.pause()
        assert screen.focused is not None and screen.focused.id == "chain"
        tree = screen.query_one(ChainTree)
        line = tree.cursor_line
        await pilot.press("j", "j", "k")
        await pilot.pause()
        assert tree.cursor_line == line + 1  # j/k move in the chain as in every pane
        await pilot.press("shift+tab")
        await pilot.pause()
        assert screen.focused is not None and screen.focused.id == "facts"


async def _detail_in_theme(theme: str, *, opened_before: bool = False, while_open: bool = False) -> str:
    app = tuilab.make_app(tuilab.FakeChecker())
    async with app.run_test(size=(120, 40)) as pilot:
        if opened_before:
            await open_detail(pilot, "auth")
            await pilot.press("escape")
            await tuilab.wait_for(pilot, lambda: app.screen is app.endpoints_screen)
        if not while_open:
            app.theme = theme
            await tuilab.settle(pilot)
        await open_detail(pilot, "shop-api")
        if while_open:
            app.theme = theme
        await tuilab.settle(pilot)
        return app.export_screenshot()


async def test_a_theme_changed_while_the_list_is_shown_reaches_the_kept_detail_screen() -> None:
    """The kept screen is not restyled when it comes back; a theme picked meanwhile (command
    palette) must still reach every one of its widgets."""
    fresh = await _detail_in_theme("textual-light")
    reused = await _detail_in_theme("textual-light", opened_before=True)
    assert reused == fresh


async def test_the_chain_tree_follows_a_theme_picked_while_it_is_shown() -> None:
    """Its labels are built once per report; their colours come from the theme in force."""
    fresh = await _detail_in_theme("textual-light")
    switched = await _detail_in_theme("textual-light", while_open=True)
    assert switched == fresh


async def _list_in_theme(theme: str, *, via_detail: bool) -> str:
    app = tuilab.make_app(tuilab.FakeChecker())
    async with app.run_test(size=(120, 40)) as pilot:
        await tuilab.settle(pilot)
        if via_detail:
            await pilot.press("enter")
            await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("tab")  # focus and hover states change on the way
        app.theme = theme
        await tuilab.settle(pilot)
        if via_detail:
            await pilot.press("escape")
            await tuilab.wait_for(pilot, lambda: app.screen is app.endpoints_screen)
            await tuilab.settle(pilot)
        return app.export_screenshot()


async def test_the_list_shown_again_is_the_list_as_first_shown() -> None:
    """The list is kept too and comes back without a restyle when nothing changed; back
    from an endpoint it looks as it did, in the theme picked meanwhile included."""
    for theme in ("textual-dark", "textual-light"):
        assert await _list_in_theme(theme, via_detail=True) == await _list_in_theme(theme, via_detail=False)
