"""Broken runbook files in the TUI: the chooser lists them as not offered (with their
one-line error) and still offers the good ones; the fix key never silently does nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tuilab

from certpager.runbook.loader import shipped_runbook_dir
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.runbook import MessageModal, RunbookChooser


def _broken_dir(root: Path) -> Path:
    d = root / "broken-runbooks"
    d.mkdir()
    os.mkfifo(d / "fifo.yaml")
    (d / "deep.yaml").write_text("name: deep\ntitle: t\nsteps: " + "[" * 2000 + "]" * 2000 + "\n")
    (d / "nan.yaml").write_text("name: nan\ntitle: t\nsteps:\n  - {id: a, run: [x], timeout: .nan}\n")
    (d / "zero.yaml").symlink_to("/dev/zero")
    return d


async def _open_fix(pilot: tuilab.Pilot[int], app: tuilab.CertpagerApp) -> None:
    await tuilab.settle(pilot)
    app.show_endpoint("shop-api")
    await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
    await pilot.press("f")


async def test_broken_runbooks_are_listed_as_not_offered(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, tmp_path: Path
) -> None:
    service = tuilab.runbook_service(checker, host, state_dir)
    shipped = shipped_runbook_dir()
    assert shipped is not None
    service.dirs = [_broken_dir(tmp_path), shipped]
    app = tuilab.make_app(checker, runbooks=service)
    async with app.run_test(size=(160, 50)) as pilot:
        await _open_fix(pilot, app)
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, RunbookChooser), what="chooser")
        chooser = app.screen
        assert isinstance(chooser, RunbookChooser)
        assert "certbot-force-renew" in [rb.name for rb in chooser.runbooks]
        shown = {e.path.name: str(e.error) for e in chooser.invalid}
        assert set(shown) == {"fifo.yaml", "deep.yaml", "nan.yaml", "zero.yaml"}
        assert "not a regular file (a FIFO)" in shown["fifo.yaml"]
        assert "nested more than 64 levels deep" in shown["deep.yaml"]
        assert "finite" in shown["nan.yaml"]
        text = tuilab.screen_text(app)
        assert "not offered: fifo.yaml" in text


async def test_the_fix_key_reports_an_unexpected_loading_error(
    checker: tuilab.FakeChecker, host: tuilab.FakeHost, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = tuilab.runbook_service(checker, host, state_dir)

    def broken(_endpoint: object) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(service, "for_endpoint", broken)
    app = tuilab.make_app(checker, runbooks=service)
    async with app.run_test(size=(160, 50)) as pilot:
        await _open_fix(pilot, app)
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, MessageModal), what="message")
        assert "RecursionError" in tuilab.screen_text(app)
