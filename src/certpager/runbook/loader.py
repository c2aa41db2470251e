"""Load and validate runbook files; find runbooks by name.

Everything is checked here, once, before anything runs: unknown keys (with a
did-you-mean), types, unknown variables, observed-value placeholders, where
multi-word parameters may go, secret parameters outside stdin, duplicate step
ids. Every mistake raises :class:`RunbookError` as ``file:line: key: message``.

Search path for ``certpager run NAME`` (first match wins):

1. ``Settings.runbook_dirs`` (relative to the config file's directory),
2. ``$XDG_CONFIG_HOME/certpager/runbooks`` (default ``~/.config/certpager/runbooks``),
3. the shipped runbooks: ``<checkout>/runbooks`` or, in an installed wheel,
   ``certpager/_runbooks``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from certpager.config import Settings
from certpager.errors import RunbookError
from certpager.inputs import YAML_MAX_BYTES, InputFileError, check_text, decode_text, read_input_file
from certpager.probe.findings import SPECS
from certpager.runbook.model import (
    CONFIRM_WAIT,
    RENEWAL_CODES,
    ConfirmKind,
    FlagRule,
    Param,
    ParamType,
    Runbook,
    Step,
    StepKind,
    Template,
    VerifyExpect,
    VerifySpec,
)
from certpager.runbook.template import (
    BUILTINS,
    OBSERVED_NAMES,
    SHELL_OPERATORS,
    TemplateError,
    check_env_name,
    parse_template,
    refs,
    whole_ref,
)
from certpager.text import printable
from certpager.yamlfile import Node, Reader, parse_yaml, type_name

# Applied with fullmatch: `$` alone would accept a trailing newline.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")
_STEP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FLAG_RE = re.compile(r"-[A-Za-z0-9]|--[A-Za-z0-9][A-Za-z0-9-]*")
MAX_PATTERN_CHARS = 1024
"""Longest parameter pattern accepted."""
MAX_TIMEOUT = 3600.0
"""Longest step timeout accepted (seconds)."""
DEFAULT_TIMEOUT = 120.0
"""Step timeout when the runbook gives none (seconds)."""


def shipped_runbook_dir(package: Path | None = None) -> Path | None:
    """Directory of the runbooks shipped with certpager.

    An installed wheel has them in ``certpager/_runbooks`` (pyproject force-includes
    ``runbooks`` there); a source checkout in ``<repo>/runbooks``.

    Args:
        package: the ``certpager`` package directory (default: this installation's).
    """
    package = package or Path(__file__).resolve().parent.parent
    installed = package / "_runbooks"
    if installed.is_dir():
        return installed
    checkout = package.parent.parent / "runbooks"
    if checkout.is_dir():
        return checkout
    return None


def user_runbook_dir() -> Path:
    """``$XDG_CONFIG_HOME/certpager/runbooks``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "certpager" / "runbooks"


def runbook_dirs(settings: Settings | None = None, *, config_dir: Path | None = None) -> list[Path]:
    """Directories searched for runbooks, highest precedence first."""
    dirs: list[Path] = []
    for raw in settings.runbook_dirs if settings else ():
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        dirs.append(path)
    dirs.append(user_runbook_dir())
    shipped = shipped_runbook_dir()
    if shipped is not None:
        dirs.append(shipped)
    return dirs


def find_runbook(name: str, dirs: list[Path]) -> Runbook:
    """Load the runbook called ``name`` (or at path ``name``).

    Raises:
        RunbookError: not found (listing what exists) or invalid.
    """
    if "/" in name or name.endswith((".yaml", ".yml")):
        return load_runbook(Path(name))
    if not _NAME_RE.fullmatch(name):
        raise RunbookError(f"{name!r} is not a runbook name", file="<command line>", key="RUNBOOK")
    for d in dirs:
        for ext in (".yaml", ".yml"):
            path = d / f"{name}{ext}"
            if path.exists() or path.is_symlink():  # a FIFO or a directory is reported as such
                return load_runbook(path)
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.y*ml")})
    searched = ", ".join(str(d) for d in dirs)
    raise RunbookError(
        f"no runbook named {name!r} (searched {searched}; available: {', '.join(known) or 'none'})",
        file="<command line>",
        key="RUNBOOK",
    )


@dataclass(frozen=True)
class CatalogEntry:
    """One runbook file found on the search path."""

    path: Path
    """The file."""
    runbook: Runbook | None
    """The loaded runbook (None when it is invalid)."""
    error: RunbookError | None
    """Why it is invalid."""
    shadowed: bool = False
    """A file of the same name earlier on the search path wins."""


def list_runbooks(dirs: list[Path]) -> list[CatalogEntry]:
    """Every runbook file on the search path, loaded (invalid ones carry their error)."""
    seen: set[str] = set()
    out: list[CatalogEntry] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            shadowed = path.stem in seen
            seen.add(path.stem)
            try:
                out.append(CatalogEntry(path, load_runbook(path), None, shadowed))
            except RunbookError as exc:  # load_runbook raises nothing else: one file never hides the rest
                out.append(CatalogEntry(path, None, exc, shadowed))
    return out


def load_runbook(path: Path) -> Runbook:
    """Load and validate one runbook file.

    Raises:
        RunbookError: ``file:line: key: message`` for the first mistake.
    """
    file = str(path)
    try:
        data = read_input_file(path, cap=YAML_MAX_BYTES)
        text = decode_text(data, file)
    except InputFileError as exc:
        raise RunbookError(exc.reason, file=exc.path) from None
    try:
        runbook = parse_runbook(text, file=file, path=path)
    except RunbookError:
        raise
    except (RecursionError, MemoryError, ValueError, OverflowError, re.error) as exc:
        # Every check above has its own message; this is the net under them, so that
        # a file nobody foresaw is still one INVALID line and never a crash.
        reason = " ".join(str(exc).split())[:200]
        raise RunbookError(
            f"cannot be loaded ({type(exc).__name__}: {printable(reason)})", file=file
        ) from None
    if runbook.name != path.stem:
        raise RunbookError(
            f"the runbook is called {runbook.name!r} but the file is {path.name}; "
            f"name the file {runbook.name}.yaml",
            file=file,
            line=1,
            key="name",
        )
    return Runbook(
        **{**runbook.__dict__, "path": path, "sha256": hashlib.sha256(data).hexdigest()},
    )


def parse_runbook(text: str, *, file: str, path: Path | None = None) -> Runbook:
    """Validate runbook YAML text (see :func:`load_runbook`)."""
    _refuse_aliases(text, file)
    root = parse_yaml(text, file, RunbookError)
    reader = Reader(root, file=file, path="", error=RunbookError)
    name = reader.str("name", required=True)
    assert name is not None
    if not _NAME_RE.fullmatch(name):
        reader.fail("name", f"{name!r}: use lower-case letters, digits, '-' and '_'")
    title = reader.str("title", required=True)
    assert title is not None
    description = reader.str("description", "", multiline=True) or ""
    tags: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    applies = reader.sub("applies_to")
    if applies is not None:
        tags = tuple(applies.str_list("tags"))
        names = tuple(applies.str_list("endpoints"))
        applies.finish()
    params = _params(reader)
    fixes = _fixes(reader)
    default_expect = (
        VerifyExpect.FINDINGS
        if fixes and not RENEWAL_CODES.intersection(fixes)
        else VerifyExpect.CHANGED_OR_STORED
    )
    ctx = _Context(file=file, params={p.name: p for p in params}, default_expect=default_expect)
    steps_node = reader.raw("steps")
    if steps_node is None or not isinstance(steps_node.value, list) or not steps_node.value:
        reader.finish()  # a misspelt "steps" is reported as such, with a did-you-mean
        reader.fail("steps", "is required: a list of steps")
    steps = tuple(
        _step(Reader(node, file=file, path=key, error=RunbookError), ctx, nested=False)
        for key, node in reader.list("steps")
    )
    reader.finish()
    if fixes and not any(s.kind is StepKind.VERIFY for s in steps):
        reader.fail(
            "fixes",
            "a runbook that names findings it fixes needs a verify step to prove them gone "
            "(add `- id: verify` with `verify: true`), or leave fixes out",
        )
    return Runbook(
        name=name,
        title=title,
        description=description.strip(),
        params=params,
        steps=steps,
        path=path,
        applies_to_tags=tags,
        applies_to_endpoints=names,
        line_of_params=reader.line_of("params"),
        fixes=fixes,
        line_of_fixes=reader.line_of("fixes") if fixes else 0,
    )


def _fixes(reader: Reader) -> tuple[str, ...]:
    """``fixes:``: finding codes of the catalogue, each once."""
    node = reader.raw("fixes")
    if node is None or node.value is None:
        return ()
    if not isinstance(node.value, list):
        reader.fail("fixes", f"expected a list of finding codes, got {type_name(node.value)}")
    out: list[str] = []
    for i, item in enumerate(node.value):
        key = f"{reader.key_path('fixes')}[{i}]"
        code = item.value
        if not isinstance(code, str):
            raise RunbookError(
                f"expected a finding code, got {type_name(code)}", file=reader.file, line=item.line, key=key
            )
        if code not in SPECS:
            close = difflib.get_close_matches(code, list(SPECS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RunbookError(
                f"unknown finding code {code!r}{hint}; `certpager check` reports: "
                + ", ".join(sorted(SPECS)),
                file=reader.file,
                line=item.line,
                key=key,
            )
        if code in out:
            raise RunbookError(f"{code!r} is listed twice", file=reader.file, line=item.line, key=key)
        out.append(code)
    return tuple(out)


def _refuse_aliases(text: str, file: str) -> None:
    """Reject ``*alias`` references: expanding nested ones is exponential ("billion laughs")."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken):
                raise RunbookError(
                    "YAML aliases (*name) are not supported in runbooks; write the value out",
                    file=file,
                    line=token.start_mark.line + 1,
                )
    except yaml.YAMLError:
        return  # parse_yaml reports syntax errors with their line


# ------------------------------------------------------------------- params


def _params(reader: Reader) -> tuple[Param, ...]:
    sub = reader.sub("params")
    if sub is None:
        return ()
    out: list[Param] = []
    for key, node in sub.items.items():
        sub.seen.add(key)
        line = sub.line_of(key)
        if not _PARAM_RE.fullmatch(key):
            sub.fail(key, "parameter names use letters, digits and _ (they appear as {name})")
        if key in BUILTINS:
            sub.fail(key, f"{key!r} is a built-in variable ({BUILTINS[key]}); pick another name")
        if key.lower() in OBSERVED_NAMES:
            sub.fail(
                key,
                f"{key!r} names a value observed from servers; such values are never "
                "substituted into commands, so it cannot be a parameter",
            )
        if node.value is None or isinstance(node.value, dict):
            if node.value is None:
                sub.fail(key, "needs a mapping (type, default, description...) or a default value")
            out.append(
                _param(Reader(node, file=sub.file, path=sub.key_path(key), error=RunbookError), key, line)
            )
        elif isinstance(node.value, str | int | float) and not isinstance(node.value, bool):
            sub.check_text(key, str(node.value))
            out.append(
                Param(
                    name=key, type=ParamType.STRING, default=_template(sub, key, str(node.value)), line=line
                )
            )
        else:
            sub.fail(key, f"expected a mapping or a default value, got {type_name(node.value)}")
    sub.finish()
    return tuple(out)


def _param(reader: Reader, name: str, line: int) -> Param:
    ptype = _param_type(reader)
    default = _param_default(reader)
    pattern = _param_pattern(reader)
    choices, prefix = _param_choices_and_prefix(reader, ptype)
    param = Param(
        name=name,
        type=ptype,
        default=default,
        description=(reader.str("description", "", multiline=True) or "").strip(),
        pattern=pattern,
        choices=choices,
        prefix=prefix,
        allow_dash=reader.bool("allow_dash", False),
        secret=reader.bool("secret", False),
        line=line,
        allow_flags=_allow_flags(reader, ptype),
    )
    if reader.bool("required", False) and default is not None:
        reader.fail("required", "a required parameter cannot have a default")
    reader.finish()
    return param


def _param_type(reader: Reader) -> ParamType:
    """``type`` (``string`` when left out)."""
    type_text = reader.str("type", "string") or "string"
    try:
        return ParamType(type_text)
    except ValueError:
        reader.fail("type", f"unknown type {type_text!r}; one of: {', '.join(t.value for t in ParamType)}")


def _param_default(reader: Reader) -> Template | None:
    """``default``: a scalar template that may use built-in variables only."""
    default_node = reader.raw("default")
    if default_node is None:
        return None
    value = default_node.value
    if value is None:
        value = ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        reader.fail("default", f"expected a string, got {type_name(value)} (quote it)")
    reader.check_text("default", str(value))
    default = _template(reader, "default", str(value))
    for ref in refs(default):
        if ref not in BUILTINS:
            reader.fail(
                "default",
                f"a default may only use built-in variables ({', '.join(BUILTINS)}), not {{{ref}}}",
            )
    return default


def _param_pattern(reader: Reader) -> str | None:
    """``pattern``: a regular expression of bounded length that compiles."""
    pattern = reader.str("pattern")
    if pattern is None:
        return None
    if len(pattern) > MAX_PATTERN_CHARS:
        reader.fail("pattern", f"is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        reader.fail("pattern", f"invalid regular expression: {reason}")
    return pattern


def _param_choices_and_prefix(reader: Reader, ptype: ParamType) -> tuple[tuple[str, ...], str | None]:
    """``choices`` (enum parameters only, and required there) and ``prefix`` (path parameters only)."""
    choices = tuple(reader.str_list("choices"))
    if ptype is ParamType.ENUM and not choices:
        reader.fail("choices", "an enum parameter needs a list of choices")
    if choices and ptype is not ParamType.ENUM:
        reader.fail("choices", "only enum parameters have choices")
    prefix = reader.str("prefix")
    if prefix is not None and ptype is not ParamType.PATH:
        reader.fail("prefix", "only path parameters have a prefix")
    return choices, prefix


def _allow_flags(reader: Reader, ptype: ParamType) -> tuple[FlagRule, ...] | None:
    """``allow_flags``: a mapping of option -> the type of its value (or ``switch``)."""
    sub = reader.sub("allow_flags")
    if sub is None:
        return None
    if ptype is not ParamType.ARGS:
        reader.fail("allow_flags", "only args parameters have allow_flags")
    value_types = [t.value for t in ParamType if not t.multi_word and t is not ParamType.ENUM]
    rules: list[FlagRule] = []
    for flag, node in sub.items.items():
        sub.seen.add(flag)
        if not _FLAG_RE.fullmatch(flag):
            sub.fail(flag, f"{flag!r} is not an option: write -x or --long-name, without =value")
        kind = node.value
        if kind == "switch" or kind is False:
            rules.append(FlagRule(flag, None))
        elif isinstance(kind, str) and kind in value_types:
            rules.append(FlagRule(flag, ParamType(kind)))
        else:
            sub.fail(
                flag,
                f"the type of the option's value: switch (no value) or one of {', '.join(value_types)}",
            )
    if not rules:
        reader.fail("allow_flags", "list at least one option (or leave allow_flags out)")
    return tuple(rules)


# -------------------------------------------------------------------- steps


@dataclass
class _Context:
    file: str
    params: dict[str, Param]
    default_expect: VerifyExpect = VerifyExpect.CHANGED_OR_STORED
    ids: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.ids is None:
            self.ids = {}


def _template(
    reader: Reader, key: str, text: str, *, line: int | None = None, sub_key: str | None = None
) -> Template:
    try:
        return parse_template(text)
    except TemplateError as exc:
        if line is not None:
            raise RunbookError(
                str(exc), file=reader.file, line=line, key=sub_key or reader.key_path(key)
            ) from None
        reader.fail(key, str(exc))


def _check_refs(
    reader: Reader,
    ctx: _Context,
    template: Template,
    *,
    key: str,
    line: int,
    where: str,
    whole_element: bool = False,
) -> None:
    """Check every placeholder of ``template`` may be used at ``where``."""
    for name in refs(template):
        if name in BUILTINS:
            continue
        param = ctx.params.get(name)
        if param is None:
            known = sorted([*ctx.params, *BUILTINS])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise RunbookError(
                f"unknown variable {{{name}}}{hint}; declare it under params or use a built-in: "
                f"{', '.join(BUILTINS)}",
                file=ctx.file,
                line=line,
                key=key,
            )
        if param.secret and where != "stdin":
            raise RunbookError(
                f"{{{name}}} is a secret parameter: secrets may only be passed on stdin, never in "
                "a command line (it would be visible in the process list and logs)",
                file=ctx.file,
                line=line,
                key=key,
            )
        if param.type.multi_word and (not whole_element or whole_ref(template) != name):
            raise RunbookError(
                f"{{{name}}} is a {param.type.value} parameter (several words) and can only fill a "
                'whole argument of a command, e.g. run: ["{' + name + '}", ...]',
                file=ctx.file,
                line=line,
                key=key,
            )


@dataclass(frozen=True)
class _Body:
    """What a step does: its kind, and its command or verification."""

    kind: StepKind
    argv: list[Template] = field(default_factory=list)
    verify: VerifySpec | None = None


def _step(reader: Reader, ctx: _Context, *, nested: bool) -> Step:
    step_id = _step_id(reader, ctx)
    has_run, has_script, has_verify = reader.has("run"), reader.has("script"), reader.has("verify")
    if sum((has_run, has_script, has_verify)) > 1:
        reader.fail("run" if has_run else "script", "a step has only one of run, script and verify")
    confirm, message, token = _confirm(reader, ctx)
    if has_run:
        body = _Body(StepKind.RUN, _argv(reader, ctx, "run"))
    elif has_script:
        body = _Body(StepKind.RUN, _script_argv(reader, ctx))
    elif has_verify:
        body = _Body(StepKind.VERIFY, verify=_verify(reader, ctx.default_expect))
    else:
        body = _confirm_body(reader, confirm, message)
    env, stdin = _run_inputs(reader, ctx, body.kind, has_run=has_run)
    local = _where(reader) == "local"
    timeout = reader.number("timeout", DEFAULT_TIMEOUT, lo=1, hi=MAX_TIMEOUT) or DEFAULT_TIMEOUT
    on_failure = _on_failure(reader, ctx, nested=nested)
    continue_on_error = reader.bool("continue_on_error", False)
    title = reader.str("title") or _default_title(step_id, body.kind, body.argv)
    reader.finish(allowed_extra=("description",))
    return Step(
        id=step_id,
        title=title.strip(),
        kind=body.kind,
        line=reader.node.line,
        key=reader.path,
        argv=tuple(body.argv),
        env=tuple(env),
        stdin=stdin,
        local=local,
        timeout=timeout,
        confirm=confirm,
        message=message,
        confirm_token=token,
        on_failure=on_failure,
        continue_on_error=continue_on_error,
        verify=body.verify,
    )


def _step_id(reader: Reader, ctx: _Context) -> str:
    """``id``: required, well-formed and unique in the runbook (its line is remembered)."""
    assert ctx.ids is not None
    step_id = reader.str("id", required=True)
    assert step_id is not None
    if not _STEP_ID_RE.fullmatch(step_id):
        reader.fail("id", f"{step_id!r}: use letters, digits, '-' and '_'")
    if step_id in ctx.ids:
        reader.fail("id", f"duplicate step id {step_id!r} (first on line {ctx.ids[step_id]})")
    ctx.ids[step_id] = reader.line_of("id")
    return step_id


def _script_argv(reader: Reader, ctx: _Context) -> list[Template]:
    """A ``script:`` step: ``sh -c SCRIPT certpager-step ARGS...``, the script constant text."""
    script = reader.str("script", required=True, multiline=True)
    assert script is not None
    for match in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", script):
        if match.group(1) in ctx.params or match.group(1) in BUILTINS:
            reader.fail(
                "script",
                f"a script is constant text: {match.group(0)} would not be substituted. Pass "
                'values with args: and use "$1", "$2"... in the script',
            )
    argv: list[Template] = [("sh",), ("-c",), (script,), ("certpager-step",)]
    argv.extend(_argv(reader, ctx, "args"))
    return argv


def _confirm_body(reader: Reader, confirm: ConfirmKind, message: Template) -> _Body:
    """A step with neither run, script nor verify: a confirmation, which needs a message."""
    if confirm is ConfirmKind.NONE:
        reader.fail("id", "a step needs run, script or verify (or confirm with a message)")
    if not message:
        reader.fail("message", "a confirmation step needs a message saying what is being confirmed")
    return _Body(StepKind.CONFIRM)


def _run_inputs(
    reader: Reader, ctx: _Context, kind: StepKind, *, has_run: bool
) -> tuple[list[tuple[str, Template]], Template | None]:
    """``env`` and ``stdin`` of a run or script step; refused on other steps (with args, where)."""
    if kind is not StepKind.RUN:
        for key in ("env", "stdin", "args", "where"):
            if reader.has(key) and reader.raw(key) is not None:
                reader.fail(key, f"only run and script steps take {key}")
        return [], None
    env = _env(reader, ctx)
    stdin: Template | None = None
    stdin_text = reader.str("stdin", multiline=True)
    if stdin_text is not None:
        stdin = _template(reader, "stdin", stdin_text)
        _check_refs(
            reader, ctx, stdin, key=reader.key_path("stdin"), line=reader.line_of("stdin"), where="stdin"
        )
    if has_run and reader.raw("args") is not None:
        reader.fail("args", "args go with script:; put the arguments in run:")
    return env, stdin


def _where(reader: Reader) -> str:
    """``where``: ``target`` (the endpoint's SSH target, the default) or ``local``."""
    where = reader.str("where", "target") or "target"
    if where not in ("target", "local"):
        reader.fail("where", f"must be 'target' (the endpoint's SSH target) or 'local', not {where!r}")
    return where


def _on_failure(reader: Reader, ctx: _Context, *, nested: bool) -> tuple[Step, ...]:
    """``on_failure``: steps run when this one fails (not nested further)."""
    if not reader.has("on_failure") or reader.raw("on_failure") is None:
        return ()
    if nested:
        reader.fail("on_failure", "on_failure steps cannot have their own on_failure")
    return tuple(
        _step(Reader(node, file=ctx.file, path=key, error=RunbookError), ctx, nested=True)
        for key, node in reader.list("on_failure")
    )


def _default_title(step_id: str, kind: StepKind, argv: list[Template]) -> str:
    if kind is StepKind.VERIFY:
        return "Verify the new certificate is served"
    return step_id.replace("-", " ").replace("_", " ")


def _argv(reader: Reader, ctx: _Context, key: str) -> list[Template]:
    node = reader.raw(key)
    if node is None or node.value is None:
        if key == "args":
            return []
        reader.fail(key, "is empty")
    items: list[tuple[str, int, str]] = []
    if isinstance(node.value, str):
        reader.check_text(key, node.value, multiline=True)
        try:
            words = shlex.split(node.value)
        except ValueError as exc:
            reader.fail(key, f"cannot be split into words: {exc}")
        items = [(w, node.line, f"{reader.key_path(key)}") for w in words]
    elif isinstance(node.value, list):
        for i, item in enumerate(node.value):
            if isinstance(item.value, bool) or not isinstance(item.value, str | int | float):
                raise RunbookError(
                    f"each argument must be a string, got {type_name(item.value)}",
                    file=ctx.file,
                    line=item.line,
                    key=f"{reader.key_path(key)}[{i}]",
                )
            items.append((str(item.value), item.line, f"{reader.key_path(key)}[{i}]"))
    else:
        reader.fail(key, f"expected a command (list of arguments, or one line), got {type_name(node.value)}")
    if not items and key == "run":
        reader.fail(key, "is empty")
    out: list[Template] = []
    for index, (text, line, item_key) in enumerate(items):
        try:
            check_text(text, multiline=True)  # printf "%s\n" is fine; ESC or a bidi override is not
        except ValueError as exc:
            raise RunbookError(str(exc), file=ctx.file, line=line, key=item_key) from None
        if text in SHELL_OPERATORS:
            raise RunbookError(
                f"{text!r} is a shell operator; commands are argument lists and are not run "
                "through a shell. Split the work into separate steps, or use a script: step",
                file=ctx.file,
                line=line,
                key=item_key,
            )
        template = _template(reader, key, text, line=line, sub_key=item_key)
        _check_refs(reader, ctx, template, key=item_key, line=line, where="argv", whole_element=True)
        if key == "run" and index == 0 and text.startswith("-"):
            raise RunbookError("a command cannot start with '-'", file=ctx.file, line=line, key=item_key)
        out.append(template)
    return out


def _env(reader: Reader, ctx: _Context) -> list[tuple[str, Template]]:
    sub = reader.sub("env")
    if sub is None:
        return []
    out: list[tuple[str, Template]] = []
    for name, node in sub.items.items():
        sub.seen.add(name)
        try:
            check_env_name(name)
        except TemplateError as exc:
            sub.fail(name, str(exc))
        if isinstance(node.value, bool) or not isinstance(node.value, str | int | float):
            sub.fail(name, f"expected a string, got {type_name(node.value)}")
        sub.check_text(name, str(node.value))
        template = _template(sub, name, str(node.value))
        _check_refs(sub, ctx, template, key=sub.key_path(name), line=sub.line_of(name), where="env")
        out.append((name, template))
    sub.finish()
    return out


def _confirm(reader: Reader, ctx: _Context) -> tuple[ConfirmKind, Template, Template]:
    node = reader.raw("confirm")
    kind = ConfirmKind.NONE
    if node is not None and node.value is not None:
        value = node.value
        if value is True or value == "plain":
            kind = ConfirmKind.PLAIN
        elif value == "typed":
            kind = ConfirmKind.TYPED
        elif value is False or value == "none":
            kind = ConfirmKind.NONE
        else:
            reader.fail("confirm", f"expected true, false or typed, got {value!r}")
    message: Template = ()
    text = reader.str("message", multiline=True)
    if text is not None:
        message = _template(reader, "message", text.strip())
        for name in refs(message):
            param = ctx.params.get(name)
            if name not in BUILTINS and param is None:
                reader.fail("message", f"unknown variable {{{name}}}")
            if param is not None and param.secret:
                reader.fail("message", f"{{{name}}} is secret and cannot be shown")
    token: Template = parse_template("{endpoint}")
    token_text = reader.str("confirm_token")
    if token_text is not None:
        if kind is not ConfirmKind.TYPED:
            reader.fail("confirm_token", "only a typed confirmation (confirm: typed) has a token")
        token = _template(reader, "confirm_token", token_text)
        _check_refs(
            reader,
            ctx,
            token,
            key=reader.key_path("confirm_token"),
            line=reader.line_of("confirm_token"),
            where="token",
        )
    return kind, message, token


def _verify(reader: Reader, default_expect: VerifyExpect) -> VerifySpec:
    node: Node | None = reader.raw("verify")
    assert node is not None
    if node.value is True or node.value is None:
        return VerifySpec(expect=default_expect, confirm_wait=CONFIRM_WAIT)
    if not isinstance(node.value, dict):
        reader.fail(
            "verify",
            f"expected true or a mapping (deadline, interval, expect, min_days_left, confirm_wait), got {type_name(node.value)}",
        )
    sub = Reader(node, file=reader.file, path=reader.key_path("verify"), error=RunbookError)
    deadline = sub.number("deadline", 60.0, lo=1, hi=MAX_TIMEOUT) or 60.0
    interval = sub.number("interval", 2.0, lo=0.2, hi=300) or 2.0
    expect_text = sub.str("expect", default_expect.value) or default_expect.value
    try:
        expect = VerifyExpect(expect_text)
    except ValueError:
        sub.fail("expect", f"one of: {', '.join(e.value for e in VerifyExpect)}")
    min_days = sub.number("min_days_left", None, lo=0, hi=36500)
    confirm_wait = sub.number("confirm_wait", CONFIRM_WAIT, lo=0, hi=60)
    sub.finish()
    return VerifySpec(
        deadline=deadline,
        interval=interval,
        expect=expect,
        min_days_left=min_days,
        confirm_wait=CONFIRM_WAIT if confirm_wait is None else confirm_wait,
    )
