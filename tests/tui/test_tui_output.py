"""The TUI shows config values, server text and notifications from strangers as visible
escapes: a bidi override, an escape sequence or a zero-width character in an endpoint
name, a tag, a backend label or an error never reaches the screen raw (the rendered
screen is what the terminal receives, after the app's line filter)."""

from __future__ import annotations

import dataclasses

import pytest
import tuilab
from rich.text import Text
from tests.support.hostile_text import CORPUS, unsafe
from textual.widgets import Static

from certpager.config import Config, Endpoint
from certpager.tui.screens.detail import DetailScreen

NAME = "evil\u202egpj.exe\u200b"
TAGS = ("\x1b[2J", "\u2066x\u2069", "\x9b31m")
HOST = "evil\u200b.test"


def _config() -> Config:
    base = tuilab.lab_config()
    evil = Endpoint(name=NAME, host=HOST, tags=TAGS, ca_file=str(tuilab.ROOT_PEM))
    return Config(endpoints=(*base.endpoints, evil), settings=base.settings)


@pytest.mark.parametrize("chunk", [CORPUS[:20], CORPUS[20:]], ids=["corpus-a", "corpus-b"])
async def test_hostile_config_and_server_text_never_reach_the_screen_raw(
    checker: tuilab.FakeChecker, chunk: list[tuple[str, str]]
) -> None:
    error = " | ".join(text for _c, text in chunk)
    checker.specs[NAME] = dataclasses.replace(
        tuilab.Spec(None, error=("handshake_failed", error)), addresses=("192.0.2.66",)
    )
    app = tuilab.make_app(checker, config=_config())
    async with app.run_test(size=(200, 50)) as pilot:
        await tuilab.settle(pilot)
        text = tuilab.screen_text(app)
        assert unsafe(text.replace("\n", "")) == []
        assert "evil\\u202egpj.exe\\u200b" in text  # the list shows the name, visibly
        app.show_endpoint(NAME)
        await tuilab.wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        text = tuilab.screen_text(app)
        assert unsafe(text.replace("\n", "")) == []
        assert "#\\x1b[2J #\\u2066x\\u2069 #\\x9b31m" in text  # tags
        assert "evil\\u200b.test" in text  # the address
        # Even text that no widget escaped is filtered on its way to the terminal.
        await app.screen.mount(Static(Text(f"raw widget {error}"), id="raw"))
        await tuilab.wait_for(pilot, lambda: "raw widget" in tuilab.screen_text(app))
        text = tuilab.screen_text(app)
        assert unsafe(text.replace("\n", "")) == []
        assert app.is_running
