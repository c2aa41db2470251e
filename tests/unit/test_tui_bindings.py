"""Every key binding of the TUI names an action that exists, on the object Textual runs it on.

Textual looks a binding's action up only when the key is pressed, and an action it
cannot find is silently ignored: ``Binding("tab", "focus_next", ...)`` on the detail
screen (where ``focus_next`` is the app's action, not the screen's) made Tab do
nothing for months. This test walks every Textual class certpager defines (the app,
its screens, modals and widgets: every ``DOMNode`` subclass in a module under
``certpager.tui``) and resolves each binding it has (its own and those it inherits,
merged as Textual merges them) the way Textual does when the key is pressed:

- the action string is parsed by ``textual.actions.parse`` (namespace prefix,
  parameters in parentheses);
- no prefix: the node that holds the binding; ``app.``: the app (certpager's);
  ``screen.``: the screen shown (for a screen, itself; for a widget, some certpager
  screen must have it, the pilot test in tests/tui/test_tui_keys_do_something.py
  checks the screen it is actually on); ``focused.``: the focused widget (some
  certpager or Textual widget must have it); any other prefix is an error;
- the method is ``_action_<name>`` or ``action_<name>`` and takes the parameters given;
- the key is one a terminal can send (a Textual key name or a character's).

A failure names the class, the key and the action.
"""

from __future__ import annotations

import importlib.util
import inspect
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import textual.widgets
from textual.actions import ActionError, parse
from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.keys import Keys, _character_to_key
from textual.screen import Screen
from textual.widget import Widget

from certpager.tui.app import CertpagerApp
from certpager.tui.screens.detail import DetailScreen

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
KEY_NAMES = {key.value for key in Keys} | {_character_to_key(ch) for ch in string.printable if ch.strip()}
"""Every key name a Textual key event can carry, modifiers aside."""


def _gen_docs() -> ModuleType:
    """scripts/gen_docs.py, whose walk over certpager.tui also makes the keys table of docs/tui.md."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_docs.py"
    spec = importlib.util.spec_from_file_location("gen_docs_for_bindings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tui_classes() -> list[type[DOMNode]]:
    """Every DOMNode subclass defined in a module under certpager.tui (each module imported)."""
    return [cls for _, _, cls in _gen_docs().tui_classes() if issubclass(cls, DOMNode)]


CLASSES = tui_classes()
SCREENS = [cls for cls in CLASSES if issubclass(cls, Screen)]
WIDGETS = [
    cls
    for cls in (*CLASSES, *(getattr(textual.widgets, name) for name in vars(textual.widgets)["__all__"]))
    if isinstance(cls, type) and issubclass(cls, Widget)
]


def effective_bindings(cls: type[DOMNode]) -> Iterator[tuple[str, Binding]]:
    """(key, binding) for every binding ``cls`` has, its own and inherited, as Textual merges them
    (a subclass's binding of a key replaces the base class's)."""
    for key, bindings in cls._merge_bindings().key_to_bindings.items():
        for binding in bindings:
            yield key, binding


def _method(target: type, name: str) -> Callable[..., object] | None:
    for attr in (f"_action_{name}", f"action_{name}"):
        method = getattr(target, attr, None)
        if callable(method):
            return method  # type: ignore[no-any-return]
    return None


def _takes(method: Callable[..., object], params: tuple[object, ...]) -> bool:
    try:
        inspect.signature(method).bind(None, *params)  # None: self
    except TypeError:
        return False
    return True


def _targets(cls: type[DOMNode], namespace: str, app: type[App[Any]]) -> tuple[list[type], str] | None:
    """The classes one of which must have the action, and what they are called; None: unknown prefix."""
    if namespace == "":
        return [cls], cls.__name__
    if namespace == "app":
        return [app], app.__name__
    if namespace == "screen":
        if issubclass(cls, Screen):
            return [cls], cls.__name__
        return list(SCREENS), "any certpager screen"
    if namespace == "focused":
        return list(WIDGETS), "any widget"
    return None


def key_problem(key: str) -> str | None:
    """Why no terminal can send ``key`` (None: one can)."""
    *mods, base = key.split("+")
    bad = [m for m in mods if m not in MODIFIERS]
    if bad:
        return f"unknown modifier {bad[0]!r}"
    if base not in KEY_NAMES:
        return f"no key is called {base!r}"
    return None


def binding_problems(cls: type[DOMNode], app: type[App[Any]] = CertpagerApp) -> list[str]:
    """One line per binding of ``cls`` that cannot work: class, key, action and why."""
    problems = []
    for key, binding in effective_bindings(cls):
        where = f"{cls.__name__}: key {key!r} -> action {binding.action!r}"
        why = key_problem(key)
        if why is not None:
            problems.append(f"{where}: {why}")
        try:
            namespace, name, params = parse(binding.action)
        except ActionError as exc:
            problems.append(f"{where}: {exc}")
            continue
        targets = _targets(cls, namespace, app)
        if targets is None:
            problems.append(
                f"{where}: Textual knows no action namespace {namespace!r} (app, screen, focused)"
            )
            continue
        classes, what = targets
        methods = [m for m in (_method(c, name) for c in classes) if m is not None]
        if not methods:
            problems.append(f"{where}: {what} has no method action_{name}")
        elif not any(_takes(m, params) for m in methods):
            problems.append(f"{where}: action_{name} of {what} does not take the parameters {params!r}")
    return problems


def test_the_walk_finds_every_kind_of_class() -> None:
    names = {cls.__name__ for cls in CLASSES}
    expected = {"CertpagerApp", "EndpointsScreen", "DetailScreen", "HelpScreen", "TooSmallScreen"}
    expected |= {"RunbookChooser", "PlanScreen", "ConfirmModal", "AskModal", "MessageModal", "RunScreen"}
    expected |= {"EndpointTable", "FilterInput", "Pane", "OutputLog", "ChainTree", "ConfirmInput"}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_binding_names_an_action_that_exists(cls: type[DOMNode]) -> None:
    problems = binding_problems(cls)
    assert not problems, "bindings whose key does nothing:\n" + "\n".join(problems)


# -- the check can fail ------------------------------------------------------------


def _with_bindings(base: type[DOMNode], bindings: list[BindingType]) -> type[DOMNode]:
    return type(base.__name__, (base,), {"BINDINGS": bindings})


def test_fails_on_the_old_detail_tab_binding() -> None:
    """The binding detail.py had until the lead's fix: Tab named a screen action that does not exist."""
    old = _with_bindings(DetailScreen, [Binding("tab", "focus_next", "Next pane", show=False)])
    assert binding_problems(old) == [
        "DetailScreen: key 'tab' -> action 'focus_next': DetailScreen has no method action_focus_next"
    ]


@pytest.mark.parametrize(
    ("binding", "problem"),
    [
        (Binding("x", "app.no_such_thing", "X"), "CertpagerApp has no method action_no_such_thing"),
        (Binding("x", "help", "X"), "DetailScreen has no method action_help"),
        (Binding("x", "screen.nothing_here", "X"), "DetailScreen has no method action_nothing_here"),
        (Binding("x", "focused.nothing_here", "X"), "any widget has no method action_nothing_here"),
        (Binding("x", "elsewhere.back", "X"), "Textual knows no action namespace 'elsewhere'"),
        (Binding("x", "back(1)", "X"), "action_back of DetailScreen does not take the parameters (1,)"),
        (Binding("x", "recheck(1 +)", "X"), "unable to parse"),
        (Binding("escpae", "back", "Back"), "no key is called 'escpae'"),
        (Binding("ctlr+x", "back", "Back"), "unknown modifier 'ctlr'"),
    ],
)
def test_each_kind_of_broken_binding_is_named(binding: Binding, problem: str) -> None:
    problems = binding_problems(_with_bindings(DetailScreen, [binding]))
    assert len(problems) == 1 and problem in problems[0], problems


def test_working_forms_pass() -> None:
    """Prefixes, parameters, private actions and inherited bindings that do resolve are not flagged."""
    fine = _with_bindings(
        DetailScreen,
        [
            Binding("a", "app.help", "Keys"),
            Binding("b", "screen.back", "Back"),
            Binding("d", "focused.scroll_down", "Down"),
            Binding("e", "app.focus_next", "Next"),
            Binding("question_mark", "app.bell", "Bell"),
            Binding("ctrl+shift+up", "back", "Back"),
        ],
    )
    assert binding_problems(fine) == []
    from certpager.tui.screens.runbook import AskModal

    assert binding_problems(AskModal) == []  # answer(True) / answer(False)
