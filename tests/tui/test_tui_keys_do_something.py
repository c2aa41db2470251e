"""Every key the TUI advertises does something where it is advertised.

For every state a user can reach (the list, the filter, the endpoint screen with
either pane focused, help, the runbook chooser, the plan, both kinds of
confirmation, the run while running and once finished, the yes/no question, a
message, the too-small notice) the test presses every key that is advertised there:

- the footer's keys (the screen's active bindings shown in the footer);
- the help screen's keys for that screen (each row of ``LIST_KEYS``, ``DETAIL_KEYS``
  and ``RUNBOOK_KEYS`` mapped to the keys it names and the states it is about:
  :data:`HELP`; a new help row without a mapping fails);
- the keys a modal writes on itself (its border subtitle or buttons: :data:`SHOWN`);
- the keys docs/tui.md promises there in words (Ctrl+P and Ctrl+Q anywhere, the scroll
  keys of every long pane: :data:`DOCUMENTED`);
- every binding certpager declares that is active there (docs/tui.md's generated table
  lists them all).

Each key is pressed in the state, prepared so that the key has something to do
(scroll keys that go down start at the top, those that go up at the bottom, Enter and
Space in the chain on a certificate), and something observable must change: the
screens shown, the focus, what the terminal shows with its colours (scroll, cursor,
a reactive drawn on screen), a notification, the clipboard, a probe started, the app
asked to exit (``app.exit`` only records that, so a quit key leaves the app running
for the next key). A key that is rightly a no-op in a state is listed in
:data:`NO_OP` with the reason. A failure names the state and the key. After a key
that left the state, the app is put back in it when that is only closing a screen
the key opened, giving the focus back or driving it there again from the list; else
a fresh app is driven there. One test per state, a few seconds each (about a minute for
all of them on a shared 2-core machine).

Every binding active in each state also resolves (with the app's own action
parser and namespaces) to a method on the node Textual would run it on: the
runtime half of tests/unit/test_tui_bindings.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tuilab
from textual.actions import ActionError
from textual.binding import BindingsMap
from textual.command import CommandPalette
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, OptionList, Tree

from certpager.ssh import FakeResponse
from certpager.tui.app import CertpagerApp
from certpager.tui.screens.detail import DetailScreen
from certpager.tui.screens.endpoints import EndpointsScreen, FilterInput
from certpager.tui.screens.help import DETAIL_KEYS, LIST_KEYS, RUNBOOK_KEYS, HelpScreen, TooSmallScreen
from certpager.tui.screens.runbook import (
    AskModal,
    ConfirmModal,
    MessageModal,
    PlanScreen,
    RunbookChooser,
    RunScreen,
)
from certpager.tui.widgets.chain_tree import ChainTree
from certpager.tui.widgets.endpoint_table import EndpointTable
from certpager.tui.widgets.pane import OutputLog, Pane

SIZE = (80, 24)
"""The design size: every long pane has more to show than fits."""

LONG_OUTPUT = "\n".join(f"nginx: testing line {i}" for i in range(1, 41))
"""What the hanging ``nginx -t`` of a running run has written: more than its pane shows."""

DOWNWARD = {"down", "j", "pagedown", "end", "G", "ctrl+f"}
"""Keys that move down or to the end: pressed from the top."""
UPWARD = {"up", "k", "pageup", "home", "g", "ctrl+b"}
"""Keys that move up or to the start: pressed from the bottom."""
LEAVING = {"escape", "backspace", "enter", "space", "question_mark", "colon", "ctrl+p", "f", "ctrl+c"}
LEAVING |= {"tab", "shift+tab", "slash", "y", "n"}
"""Keys that may leave the state (or move the focus): pressed after the others."""
ROUNDS = 40
"""Event-loop rounds a key's effect may take (a worker pushing a screen takes a few)."""

Setup = Callable[[Pilot[int], CertpagerApp], Awaitable[None]]


@dataclass
class Session:
    """One app, driven to a state, and what it did that a user notices outside the screen."""

    app: CertpagerApp
    checker: tuilab.FakeChecker
    notes: list[str] = field(default_factory=list)
    """Every notification."""
    exits: int = 0
    """Times the app asked to exit."""


# -- how each state is reached ---------------------------------------------------------


def _flow_running(app: CertpagerApp) -> bool:
    return any(w.group.startswith("runbook:") and not w.is_finished for w in app.workers)


async def _list(pilot: Pilot[int], app: CertpagerApp) -> None:
    await tuilab.settle(pilot)


async def _filtering(pilot: Pilot[int], app: CertpagerApp) -> None:
    await tuilab.settle(pilot)
    await pilot.press("slash")
    app.screen.query_one(FilterInput).value = "tag:prod"  # as typed (Input.Changed), without 8 key presses
    await pilot.pause()


async def _filtered(pilot: Pilot[int], app: CertpagerApp) -> None:
    await _filtering(pilot, app)
    await pilot.press("enter")
    await pilot.pause()


async def _detail(pilot: Pilot[int], app: CertpagerApp) -> None:
    """The endpoint screen of shop-api (opened from the list unless it is shown)."""
    await tuilab.settle(pilot)
    if not isinstance(app.screen, DetailScreen):
        app.show_endpoint("shop-api")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen), "the endpoint screen")
    await _until(pilot, lambda: bool(app.screen.query("#facts")), "the endpoint screen composed")
    app.screen.query_one("#facts").focus()
    await pilot.pause()


async def _detail_chain(pilot: Pilot[int], app: CertpagerApp) -> None:
    await _detail(pilot, app)
    app.screen.query_one(ChainTree).focus()
    await pilot.pause()


async def _help(pilot: Pilot[int], app: CertpagerApp) -> None:
    await tuilab.settle(pilot)
    await pilot.press("question_mark")
    await _until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")


async def _chooser(pilot: Pilot[int], app: CertpagerApp) -> None:
    await _detail(pilot, app)
    await pilot.press("f")
    await _until(pilot, lambda: isinstance(app.screen, RunbookChooser), "the runbook chooser")
    await pilot.pause()


async def _plan(pilot: Pilot[int], app: CertpagerApp, runbook: str = "certbot-force-renew") -> None:
    await _chooser(pilot, app)
    chooser = app.screen
    assert isinstance(chooser, RunbookChooser)
    options = chooser.query_one(OptionList)
    options.highlighted = next(i for i, rb in enumerate(chooser.runbooks) if rb.name == runbook)
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
    await pilot.pause()


async def _typed(pilot: Pilot[int], app: CertpagerApp) -> None:
    """certbot-force-renew's first step is destructive: the name is typed to confirm it."""
    await _plan(pilot, app)
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the typed confirmation")


async def _plain(pilot: Pilot[int], app: CertpagerApp) -> None:
    """nginx-reload tests the configuration, then asks before the reload."""
    await _plan(pilot, app, "nginx-reload")
    await pilot.press("enter")
    await _until(pilot, lambda: getattr(app.screen, "typed", True) is False, "the yes/no confirmation")


async def _running(pilot: Pilot[int], app: CertpagerApp) -> None:
    """nginx-reload's ``nginx -t``, which hangs in this state (see :func:`_session`)."""
    await _plan(pilot, app, "nginx-reload")
    await pilot.press("enter")
    await _until(pilot, lambda: _run_phase(app) == "running" and _step_running(app), "the run to be running")
    await _until(pilot, lambda: "line 40" in str(_output(app).source), "the output so far")


async def _finished(pilot: Pilot[int], app: CertpagerApp) -> None:
    """certbot-force-renew to the end: the longest output."""
    await _typed(pilot, app)
    app.screen.query_one(Input).value = "shop-api"  # the typed confirmation's own state types it
    await pilot.press("enter")
    await _until(pilot, lambda: getattr(app.screen, "typed", True) is False, "the yes/no confirmation")
    await pilot.press("y")
    await _until(pilot, lambda: _run_phase(app) == "finished", "the run to finish")
    await pilot.pause()


async def _ask(pilot: Pilot[int], app: CertpagerApp) -> None:
    await _running(pilot, app)
    await pilot.press("ctrl+c")
    await _until(pilot, lambda: isinstance(app.screen, AskModal), "the cancel question")


async def _message(pilot: Pilot[int], app: CertpagerApp) -> None:
    """``f`` when the runbooks cannot be listed: a message says why (a long reason: it scrolls)."""
    await _detail(pilot, app)
    assert app.runbooks is not None

    def broken(endpoint: object) -> object:
        raise RuntimeError("\n".join(f"runbooks/broken-{i}.yaml: unreadable" for i in range(1, 41)))

    app.runbooks.for_endpoint = broken  # type: ignore[method-assign, assignment]
    await pilot.press("f")
    await _until(pilot, lambda: isinstance(app.screen, MessageModal), "the message")


async def _too_small(pilot: Pilot[int], app: CertpagerApp) -> None:
    await tuilab.settle(pilot)
    await pilot.resize_terminal(50, 12)
    await _until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small notice")


def _run_phase(app: CertpagerApp) -> str:
    return str(getattr(app.screen, "phase", ""))


def _step_running(app: CertpagerApp) -> bool:
    screen = app.screen
    return isinstance(screen, RunScreen) and any(s.state == "running" for s in screen.steps)


def _output(app: CertpagerApp) -> OutputLog:
    return app.screen.query_one(OutputLog)


async def _until(pilot: Pilot[int], predicate: Callable[[], bool], what: str) -> None:
    await tuilab.wait_for(pilot, predicate, what=what)


@dataclass(frozen=True)
class State:
    """A state a user can reach: how, what it looks like."""

    name: str
    setup: Setup
    screen: type
    focused: type | None = None
    """The widget class focused in this state (None: whatever the screen focuses)."""
    again_from: tuple[type, ...] = (EndpointsScreen,)
    """Screens (the top of a stack of only the list and these) ``setup`` can start from."""
    declared: bool = True
    """Press every binding certpager declares that is active here (False: an earlier state has
    the same screen and focused widget and pressed them there)."""


_FROM_DETAIL = (EndpointsScreen, DetailScreen)

STATES: dict[str, State] = {
    s.name: s
    for s in [
        State("list", _list, EndpointsScreen, EndpointTable),
        State("list, typing a filter", _filtering, EndpointsScreen, FilterInput),
        State("list, filtered", _filtered, EndpointsScreen, EndpointTable, declared=False),
        State("endpoint", _detail, DetailScreen, Pane, _FROM_DETAIL),
        State("endpoint, chain focused", _detail_chain, DetailScreen, ChainTree, _FROM_DETAIL),
        State("help", _help, HelpScreen),
        State("runbook chooser", _chooser, RunbookChooser, OptionList, _FROM_DETAIL),
        State("plan", _plan, PlanScreen, Pane, _FROM_DETAIL),
        State("typed confirmation", _typed, ConfirmModal, Input, _FROM_DETAIL),
        State("yes/no confirmation", _plain, ConfirmModal, None, _FROM_DETAIL),
        State("run, running", _running, RunScreen, OutputLog, ()),
        State("run, finished", _finished, RunScreen, OutputLog, ()),
        State("cancel question", _ask, AskModal, None, ()),
        State("message", _message, MessageModal, None, _FROM_DETAIL),
        State("too small", _too_small, TooSmallScreen),
    ]
}


# -- what is advertised where ------------------------------------------------------------

HELP: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    # (help section, key column) -> state -> the keys that row names there
    ("list", "↑ ↓  j k"): {"list": ("up", "down", "j", "k")},
    ("list", "g G  Home End"): {"list": ("g", "G", "home", "end")},
    ("list", "PgUp PgDn"): {"list": ("pageup", "pagedown")},
    ("list", "Enter"): {"list": ("enter",)},
    ("list", "r"): {"list": ("r",)},
    ("list", "R"): {"list": ("R",)},
    ("list", "/"): {"list": ("slash",)},
    ("list", "Esc"): {"list, filtered": ("escape",), "list, typing a filter": ("escape",)},
    ("list", "b"): {"list": ("b",)},
    ("list", ":  Ctrl+P"): {"list": ("colon", "ctrl+p")},
    ("list", "?"): {"list": ("question_mark",)},
    ("list", "q  Ctrl+Q"): {"list": ("q", "ctrl+q")},
    ("detail", "Esc"): {"endpoint": ("escape",)},
    ("detail", "r"): {"endpoint": ("r",)},
    ("detail", "f"): {"endpoint": ("f",)},
    ("detail", "n  p"): {"endpoint": ("n", "p")},
    ("detail", "c"): {"endpoint": ("c",), "endpoint, chain focused": ("c",)},
    ("detail", "y"): {"endpoint": ("y",), "endpoint, chain focused": ("y",)},
    ("detail", "Tab"): {"endpoint": ("tab",), "endpoint, chain focused": ("tab",)},
    ("detail", "↑ ↓  j k"): {
        "endpoint": ("up", "down", "j", "k"),
        "endpoint, chain focused": ("up", "down", "j", "k"),
    },
    ("detail", "PgUp PgDn"): {  # "page; Home End (g G): first / last line"
        "endpoint": ("pageup", "pagedown", "home", "end", "g", "G"),
        "endpoint, chain focused": ("pageup", "pagedown", "home", "end", "g", "G"),
    },
    ("detail", "Enter  Space"): {"endpoint, chain focused": ("enter", "space")},
    ("runbooks", "↑ ↓  j k"): {  # "plan, steps, output: scroll (PgUp PgDn, Home End)"
        "plan": ("up", "down", "j", "k", "pageup", "pagedown", "home", "end"),
        "run, finished": ("up", "down", "j", "k", "pageup", "pagedown", "home", "end"),
    },
    ("runbooks", "Tab"): {"run, running": ("tab",), "run, finished": ("tab",)},
    ("runbooks", "Enter"): {"plan": ("enter",)},
    ("runbooks", "y / n"): {"yes/no confirmation": ("y", "n")},
    ("runbooks", "typed name"): {"typed confirmation": ("shop-api enter",)},
    ("runbooks", "Ctrl+C  Esc"): {"run, running": ("ctrl+c", "escape")},
    ("runbooks", "Esc"): {"run, finished": ("escape",)},
}
"""Every row of the help screen: the keys it names, in the states it is about."""

SHOWN: dict[str, tuple[str, ...]] = {
    # Keys a screen without a footer writes on itself.
    "help": ("escape",),  # "Esc closes"
    "runbook chooser": ("enter", "escape"),  # "Enter shows the plan · Esc back"
    "typed confirmation": ("escape",),  # "Esc: don't run", "Don't run (Esc)"
    "yes/no confirmation": ("y", "n", "escape"),  # "y: run · n or Esc: don't run"
    "cancel question": ("y", "n"),  # "Cancel the run (y)", "Keep running (n)"
    "message": ("enter", "escape"),  # "Enter or Esc closes"
}

SCROLL_KEYS = ("up", "down", "pageup", "pagedown", "home", "end", "j", "k", "g", "G")

DOCUMENTED: dict[str, tuple[str, ...]] = {
    # docs/tui.md, "Keys": "Ctrl+P (anywhere)" opens the command palette, "Ctrl+Q quits from
    # anywhere"; "Every long pane (endpoint, plan, run, help) scrolls to any line with ↑ ↓ / j k,
    # PgUp PgDn, Home End / g G".
    name: ("ctrl+p", "ctrl+q")
    + (SCROLL_KEYS if name in ("endpoint", "help", "plan", "run, finished") else ())
    for name in STATES
}

NO_OP: dict[tuple[str, str], str] = {}
"""(state, key) -> why the key rightly does nothing there."""


def help_sections() -> Iterator[tuple[str, str]]:
    for section, rows in (("list", LIST_KEYS), ("detail", DETAIL_KEYS), ("runbooks", RUNBOOK_KEYS)):
        for key, _ in rows:
            yield section, key


def test_every_help_row_is_mapped_to_keys() -> None:
    rows = set(help_sections())
    assert rows == set(HELP), (
        f"help rows this test does not press: {sorted(rows - set(HELP))}; "
        f"mapped rows the help no longer has: {sorted(set(HELP) - rows)}"
    )


# -- the keys active in a state -------------------------------------------------------------


def _chains(app: CertpagerApp) -> Iterator[tuple[DOMNode, BindingsMap]]:
    """Every (node, bindings) a key can reach now, as Textual tries them: priority bindings from
    the app down, then the others from the focused widget up to the screen (and the app unless
    the screen is modal)."""
    screen = app.screen
    for namespace, bindings in screen._binding_chain:
        yield namespace, BindingsMap([b for _, b in bindings if b.priority])
    yield from screen._modal_binding_chain


def _declared_by_certpager(node: DOMNode, key: str, action: str) -> bool:
    """Whether a certpager class of ``node`` declares the binding ``key`` -> ``action`` itself."""
    for cls in type(node).__mro__:
        if cls.__module__.startswith("certpager.") and "BINDINGS" in vars(cls):
            declared = BindingsMap(vars(cls)["BINDINGS"]).key_to_bindings.get(key, [])
            if any(b.action == action for b in declared):
                return True
    return False


def advertised(state: State, app: CertpagerApp) -> list[str]:
    """The keys advertised in ``state`` (the app being in it), those that may leave it last."""
    screen = app.screen
    keys: list[str] = []
    if screen.query(Footer):
        keys += [k for k, active in screen.active_bindings.items() if active.binding.show and active.enabled]
    for states in HELP.values():
        keys += states.get(state.name, ())
    keys += SHOWN.get(state.name, ())
    keys += DOCUMENTED.get(state.name, ())
    for namespace, bindings in _chains(app) if state.declared else ():
        for key, binding in bindings:
            enabled = app._check_action_state(binding.action, namespace)  # False: Textual skips it
            if enabled is not False and _declared_by_certpager(namespace, key, binding.action):
                keys.append(key)
    return sorted(dict.fromkeys(keys), key=lambda k: k in LEAVING)


def unresolved(app: CertpagerApp) -> list[str]:
    """Active bindings whose action Textual would not find, resolved with the app's own parser."""
    problems = []
    for namespace, bindings in _chains(app):
        for key, binding in bindings:
            where = f"{type(namespace).__name__}: key {key!r} -> action {binding.action!r}"
            try:
                target, name, _ = app._parse_action(binding.action, namespace)
            except ActionError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if not any(callable(getattr(target, f"{p}action_{name}", None)) for p in ("_", "")):
                problems.append(f"{where}: {type(target).__name__} has no action_{name}")
    return problems


# -- pressing a key and seeing what changed ------------------------------------------------


def holds(state: State, app: CertpagerApp) -> bool:
    """Whether ``app`` is (still) in ``state``."""
    screen = app.screen
    if not isinstance(screen, state.screen):
        return False
    if isinstance(screen, RunScreen):
        return screen.phase == ("running" if state.name == "run, running" else "finished")
    if isinstance(screen, ConfirmModal) and screen.typed != (state.name == "typed confirmation"):
        return False
    if state.name == "list, filtered" and not app.endpoints_screen.filter_text:
        return False
    return state.focused is None or isinstance(screen.focused, state.focused)


def observe(session: Session) -> dict[str, object]:
    """What a user can tell about the app now."""
    app = session.app
    focused = app.screen.focused
    return {
        "screens": [(type(s).__name__, id(s)) for s in app.screen_stack],
        "focus": (type(focused).__name__, id(focused)) if focused is not None else None,
        "screen": tuilab.screen_text(app, styles=True),
        "notifications": len(session.notes),
        "clipboard": app.clipboard,
        "probes": len(session.checker.calls),
        "exits": session.exits,
    }


def _prepare(widget: Widget | None, key: str) -> bool:
    """Put ``widget`` where ``key`` has something to do: at its start for a key moving down, at
    its end for one moving up, on a certificate in the chain for Enter/Space. False: nothing done."""
    if isinstance(widget, ChainTree) and key in ("enter", "space"):
        nodes = [widget.get_node_at_line(line) for line in range(widget.last_line + 1)]
        widget.cursor_line = next(
            i for i, node in enumerate(nodes) if node is not None and node.data is not None
        )
        return True
    if key not in DOWNWARD and key not in UPWARD:
        return False
    end = key in UPWARD
    if isinstance(widget, EndpointTable):
        widget.action_last() if end else widget.action_first()
    elif isinstance(widget, Tree):
        widget.cursor_line = widget.last_line if end else 0
        widget.scroll_to_line(widget.cursor_line, animate=False)
    elif isinstance(widget, OptionList):
        widget.highlighted = widget.option_count - 1 if end else 0
    elif widget is not None:
        widget.scroll_end(animate=False, immediate=True) if end else widget.scroll_home(
            animate=False, immediate=True
        )
    return True


def _place(widget: Widget | None) -> object:
    """Where ``widget`` is scrolled to and its cursor is."""
    if widget is None:
        return None
    cursor = (
        getattr(widget, "cursor", None),
        getattr(widget, "cursor_line", None),
        getattr(widget, "highlighted", None),
    )
    return widget.scroll_offset, cursor


async def press(pilot: Pilot[int], session: Session, state: State, key: str) -> str | None:
    """Press ``key`` in ``state``; a line saying so when nothing observable changed."""
    app = session.app
    app.clear_notifications()
    widget = app.screen.focused
    place = _place(widget)
    if _prepare(widget, key) and _place(widget) != place:
        await pilot.pause()
    before = observe(session)
    typed, _, final = key.rpartition(" ")
    await pilot.press(*typed, final) if typed else await pilot.press(key)
    rounds = 3 if (state.name, key) in NO_OP else ROUNDS
    for _ in range(rounds):
        if observe(session) != before:
            return None
        await pilot.pause()
    if (state.name, key) in NO_OP:
        return None
    return f"{state.name}: {key!r} changed nothing"


def _session(state: State, state_dir: Path) -> Session:
    """A fresh app on the incident; quitting only counts."""
    checker = tuilab.FakeChecker()
    hang = {}
    if state.name in ("run, running", "cancel question"):
        hang = {"nginx -t": FakeResponse(stdout=LONG_OUTPUT, hang=True)}
    host = tuilab.FakeHost(checker, **hang)
    app = tuilab.make_app(checker, runbooks=tuilab.runbook_service(checker, host, state_dir))
    app.animation_level = "none"  # a scroll key takes effect at once, not over an animation
    session = Session(app, checker)
    notify = app.notify

    def counted(message: str, **kwargs: object) -> None:
        session.notes.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    def exit_asked(*args: object, **kwargs: object) -> None:
        session.exits += 1

    app.notify = counted  # type: ignore[method-assign]
    app.exit = exit_asked  # type: ignore[method-assign]
    return session


RESTORABLE = (HelpScreen, CommandPalette, DetailScreen, AskModal)
"""Screens a key opens over a state that can simply be closed again (nothing waits on them)."""


async def restore(
    pilot: Pilot[int], app: CertpagerApp, state: State, home: Screen[object], focus: Widget | None
) -> bool:
    """Put ``app`` back in ``state`` after a key left it: close what the key opened over it and
    give the focus back, or drive it there again from the list (or the endpoint screen); False:
    a fresh app is needed (a runbook flow or run moved on)."""
    if home in app.screen_stack:
        while app.screen is not home and isinstance(app.screen, RESTORABLE):
            app.pop_screen()
            await pilot.pause()
        if app.screen is home and focus is not None and app.screen.focused is not focus:
            focus.focus()
            await pilot.pause()
        if holds(state, app):
            return True
    if (
        isinstance(app.screen, state.again_from)
        and not _flow_running(app)
        and all(isinstance(s, _FROM_DETAIL) for s in app.screen_stack)
    ):
        await state.setup(pilot, app)
    return holds(state, app)


async def exercise(state: State, state_dir: Path) -> tuple[list[str], list[str], int]:
    """Press every key advertised in ``state``: (keys pressed, failures, apps started)."""
    pressed: list[str] = []
    failures: list[str] = []
    pending: list[str] | None = None
    apps = 0
    while pending is None or pending:
        session = _session(state, state_dir)
        app = session.app
        apps += 1
        async with app.run_test(size=SIZE) as pilot:
            await state.setup(pilot, app)
            assert holds(state, app), f"{state.name}: not reached"
            home, focus = app.screen, app.screen.focused
            if pending is None:
                pending = advertised(state, app)
                failures += [f"{state.name}: {p}" for p in unresolved(app)]
            while pending and (holds(state, app) or await restore(pilot, app, state, home, focus)):
                key = pending.pop(0)
                pressed.append(key)
                failure = await press(pilot, session, state, key)
                if failure is not None:
                    failures.append(failure)
            del app.exit
            app.exit()
    return pressed, failures, apps


@pytest.mark.parametrize("state", list(STATES.values()), ids=list(STATES))
async def test_every_advertised_key_does_something(state: State, state_dir: Path) -> None:
    started = time.monotonic()
    pressed, failures, apps = await exercise(state, state_dir)
    took = time.monotonic() - started
    print(f"{state.name}: {len(pressed)} keys, {apps} apps, {took:.1f} s: {' '.join(pressed)}")
    assert not failures, "advertised keys that do nothing:\n" + "\n".join(failures)
    assert took < 15, f"{state.name}: {took:.1f} s"
