"""Text from strangers is shown literally: certificate fields, endpoint names, error
messages and remote command output that look like markup or carry escape sequences
neither crash the app nor restyle it (reliability-plan §1.7, "Markup crashes")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import tuilab
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tests.support.pki import PKI

from certpager.config import Config, Endpoint
from certpager.ssh import FakeResponse
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.runbook import ConfirmModal, RunScreen

HOSTILE_CN = "[bold red]pwned[/] [link=https://evil.test]click[/link]"
HOSTILE_O = "[/]"
HOSTILE_OU = "\x1b[31mred\x1b[0m\x07"


def hostile_chain(tmp_path: Path) -> tuple[bytes, ...]:
    pki = PKI(tuilab.NOW.replace(tzinfo=dt.UTC), tmp_path / "pki")
    root = pki.root("Hostile Root [i]")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, HOSTILE_O),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, HOSTILE_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN),
        ]
    )
    leaf = root.leaf("evil.test", ["evil.test"], subject=subject, not_after=40)
    return (leaf.cert.public_bytes(Encoding.DER),)


def hostile_config() -> Config:
    base = tuilab.lab_config()
    evil = Endpoint(name="evil[b]", host="evil.test", tags=("[/]", "[bold]"), ca_file=str(tuilab.ROOT_PEM))
    return Config(endpoints=(*base.endpoints, evil), settings=base.settings)


async def test_hostile_certificate_fields_and_names_are_shown_literally(
    checker: tuilab.FakeChecker, tmp_path: Path
) -> None:
    checker.specs["evil[b]"] = tuilab.Spec(None, chain=hostile_chain(tmp_path))
    checker.specs["www"] = tuilab.Spec(None, error=("connect_refused", "refused [/] by \x1b[2J[bold]x"))
    app = tuilab.make_app(checker, config=hostile_config())
    async with app.run_test(size=(240, 50)) as pilot:
        await tuilab.settle(pilot)
        text = tuilab.screen_text(app)
        assert "evil[b]" in text
        await pilot.press("slash", *"[/]", "enter")  # a filter that looks like markup
        await pilot.pause()
        assert "/[/]" in tuilab.screen_text(app)
        await pilot.press("escape")
        app.show_endpoint("evil[b]")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        text = tuilab.screen_text(app)
        assert "[bold red]pwned[/] [link=https://evil.test]click[/link]" in text
        assert "\\x1b[31mred\\x1b[0m\\x07" in text
        assert "#[/] #[bold]" in text
        assert "Hostile Root [i]" in text
        assert "\x1b" not in text
        await pilot.press("c", "y")  # copy paths handle the hostile subject too
        await pilot.press("escape")
        app.show_endpoint("www")
        await tuilab.wait_for(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.endpoint.name == "www"
        )
        await pilot.pause()
        assert "refused [/] by \\x1b[2J[bold]x" in tuilab.screen_text(app)
        assert app.is_running


async def test_remote_output_that_looks_like_markup_is_literal(
    checker: tuilab.FakeChecker, state_dir: Path
) -> None:
    nasty = "[bold]root[/] [link=file:///etc/shadow]x[/link] \x1b]52;c;aGk=\x07 [/]"
    host = tuilab.FakeHost(checker, **{"nginx -t": FakeResponse(stdout=nasty, stderr="[red]warn[/red]")})
    app = tuilab.make_app(checker, runbooks=tuilab.runbook_service(checker, host, state_dir))
    async with app.run_test(size=(160, 50)) as pilot:
        await tuilab.settle(pilot)
        app.show_endpoint("shop-api")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("f")
        await tuilab.wait_for(pilot, lambda: type(app.screen).__name__ == "RunbookChooser")
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: type(app.screen).__name__ == "PlanScreen")
        await pilot.press("enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press(*"shop-api", "enter")
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal) and not app.screen.typed)
        await pilot.press("y")
        run = app.run_screens["shop-api"]
        await tuilab.wait_for(pilot, lambda: run.phase == "finished")
        assert isinstance(app.screen, RunScreen)
        lines = "\n".join(str(line.text) for line in run.query_one("#output").lines)  # type: ignore[attr-defined]
        assert "[bold]root[/] [link=file:///etc/shadow]x[/link]" in lines
        assert "[red]warn[/red]" in lines
        assert "\x1b" not in lines and "\x07" not in lines
        assert app.is_running
