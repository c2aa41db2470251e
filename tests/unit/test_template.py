"""Safe templating: placeholders, typed validators, argv rendering, display escaping,
the injection corpus over every shipped runbook, and property tests with a real shell."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certpager.config import Endpoint, SSHTarget, StoredCert
from certpager.errors import RunbookError
from certpager.runbook import build_plan, load_runbook, parse_runbook, shipped_runbook_dir
from certpager.runbook.model import Param, ParamType, Ref, StepKind
from certpager.runbook.plan import TargetInfo
from certpager.runbook.template import (  # type: ignore[attr-defined]
    TemplateError,
    parse_template,
    printable,
    render_argv,
    sanitize_output,
    validate_value,
)

SHIPPED = sorted(shipped_runbook_dir().glob("*.yaml"))  # type: ignore[union-attr]
TARGET = TargetInfo(label="root@127.0.0.1:22", host="127.0.0.1", port=22, user="root", local=False)


def endpoint(**changes: object) -> Endpoint:
    values: dict[str, object] = {
        "name": "app",
        "host": "app.example.com",
        "tags": ("certbot", "nginx", "cert-manager"),
        "ssh": SSHTarget(host="app.example.com", user="root"),
        "stored": StoredCert(kind="secret", namespace="web", secret="app-tls"),
    }
    values.update(changes)
    return Endpoint(**values)  # type: ignore[arg-type]


def param(kind: ParamType = ParamType.STRING, **kw: object) -> Param:
    return Param(name="p", type=kind, default=None, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ placeholders


def test_parse_template_literals_placeholders_and_escaped_braces() -> None:
    assert parse_template("--cert-name={name}") == ("--cert-name=", Ref("name"))
    assert parse_template("{a}{b}") == (Ref("a"), Ref("b"))
    assert parse_template("jsonpath={{.data}}") == ("jsonpath={.data}",)
    assert parse_template("") == ()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{unclosed", "unclosed '{'"),
        ("stray}", "unmatched '}'"),
        ("{a b}", "not a valid placeholder"),
        ("{1x}", "not a valid placeholder"),
        ("{cert.subject}", "observed from the server"),
        ("{san}", "observed from the server"),
        ("{issuer}", "observed from the server"),
        ("{probe.leaf.cn}", "observed from the server"),
        ("{SERIAL}", "observed from the server"),
    ],
)
def test_parse_template_rejects(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment):
        parse_template(text)


# ------------------------------------------------------------------ validators

GOOD = [
    (ParamType.STRING, "hello world"),
    (ParamType.HOSTNAME, "app.example.com"),
    (ParamType.HOSTNAME, "xn--bcher-kva.example"),
    (ParamType.CERT_NAME, "app.example.com-0001"),
    (ParamType.PATH, "/etc/letsencrypt/live/app/cert.pem"),
    (ParamType.K8S_NAME, "app-tls.v2"),
    (ParamType.K8S_NAMESPACE, "web-prod"),
    (ParamType.URL, "https://acme-v02.api.letsencrypt.org/directory"),
    (ParamType.INT, "180"),
]


@pytest.mark.parametrize(("kind", "value"), GOOD)
def test_validators_accept(kind: ParamType, value: str) -> None:
    assert validate_value(param(kind), value) == (value,)


BAD = [
    (ParamType.STRING, "-oProxyCommand=x", "starts with '-'"),
    (ParamType.STRING, "--all", "starts with '-'"),
    (ParamType.STRING, "a\nb", "LINE FEED"),
    (ParamType.STRING, "a\x00b", "NULL"),
    (ParamType.STRING, "abc\u202edef", "RIGHT-TO-LEFT OVERRIDE"),
    (ParamType.STRING, "ab\u200bc", "ZERO WIDTH SPACE"),
    (ParamType.STRING, "\x1b[31mred", "ESCAPE"),
    (ParamType.STRING, "x" * 5000, "limit"),
    (ParamType.HOSTNAME, "bücher.example", "IDNA"),
    (ParamType.HOSTNAME, "a_b.example", "host name"),
    (ParamType.HOSTNAME, "-lead.example", "starts with '-'"),
    (ParamType.HOSTNAME, "app.example.com;id", "host name"),
    (ParamType.CERT_NAME, "../etc", "certificate name"),
    (ParamType.CERT_NAME, "a b", "certificate name"),
    (ParamType.PATH, "relative/path", "absolute"),
    (ParamType.PATH, "/etc/../root/.ssh/id_rsa", "'..'"),
    (ParamType.K8S_NAME, "App_TLS", "Kubernetes name"),
    (ParamType.K8S_NAMESPACE, "a.b", "namespace"),
    (ParamType.URL, "ftp://x", "http(s)"),
    (ParamType.URL, "https://user:pw@host/dir", "credentials"),
    (ParamType.URL, "https://host/ dir", "spaces"),
    (ParamType.INT, "12a", "integer"),
    (ParamType.INT, "١٢", "integer"),
    (ParamType.COMMAND, "--help", "must not start with '-'"),
    (ParamType.COMMAND, "echo 'unclosed", "split"),
]


@pytest.mark.parametrize(("kind", "value", "fragment"), BAD)
def test_validators_reject(kind: ParamType, value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        validate_value(param(kind), value)


def test_leading_dash_allowed_only_when_declared() -> None:
    assert validate_value(param(allow_dash=True), "-x") == ("-x",)
    with pytest.raises(ValueError):
        validate_value(param(), "-x")


def test_enum_pattern_prefix() -> None:
    assert validate_value(param(ParamType.ENUM, choices=("a", "b")), "a") == ("a",)
    with pytest.raises(ValueError, match="one of"):
        validate_value(param(ParamType.ENUM, choices=("a", "b")), "c")
    with pytest.raises(ValueError, match="pattern"):
        validate_value(param(pattern="[a-z]+"), "abc1")
    with pytest.raises(ValueError, match="under /etc/letsencrypt"):
        validate_value(param(ParamType.PATH, prefix="/etc/letsencrypt"), "/etc/letsencryptx/a")


def test_command_and_args_split_into_words() -> None:
    assert validate_value(param(ParamType.COMMAND), "nginx -s reload -p '/a b/'") == (
        "nginx",
        "-s",
        "reload",
        "-p",
        "/a b/",
    )
    optional = Param(name="p", type=ParamType.ARGS, default=("",))
    assert validate_value(optional, "") == ()
    assert validate_value(optional, "--config-dir /x") == ("--config-dir", "/x")
    guarded = Param(name="p", type=ParamType.ARGS, default=("",), pattern=r"(?!--server)\S+")
    with pytest.raises(ValueError, match="--server"):
        validate_value(guarded, "--config-dir /x --server=https://evil")


def test_render_argv_quotes_splices_and_drops_empty_optionals() -> None:
    elements = [
        parse_template("{cmd}"),
        ("renew",),
        parse_template("--cert-name={name}"),
        parse_template("{extra}"),
    ]
    argv = render_argv(
        elements,
        {"name": "a b;c", "extra": "", "bundle": "/ca.pem", "none": ""},
        {"cmd": ("sudo", "-n", "certbot"), "extra": ()},
        env=[("REQUESTS_CA_BUNDLE", parse_template("{bundle}")), ("EMPTY", parse_template("{none}"))],
    )
    assert argv == (
        "env",
        "REQUESTS_CA_BUNDLE=/ca.pem",
        "sudo",
        "-n",
        "certbot",
        "renew",
        "--cert-name=a b;c",
    )
    assert shlex.split(shlex.join(argv)) == list(argv)


def test_render_argv_assignment_prefix_becomes_env() -> None:
    argv = render_argv([parse_template("{cmd}")], {}, {"cmd": ("FOO=1", "certbot")})
    assert argv == ("env", "FOO=1", "certbot")


def test_escape_display_makes_invisible_characters_visible() -> None:
    assert printable("a\u202eb\u200bc\x1b[2Jd\re") == "a\\u202eb\\u200bc\\x1b[2Jd\\x0de"
    assert printable("plain é ✓") == "plain é ✓"
    assert sanitize_output("tab\there\x1b]52;c;AAAA\x07") == "tab\there\\x1b]52;c;AAAA\\x07"


# ------------------------------------------------------------------ injection corpus (T20)

HOSTILE = [
    "; rm -rf /", "| cat /etc/shadow", "& reboot", "$(id)", "`id`", "${IFS}id", "a\nb", "a\rb",
    "'", '"', "'\"'\"'", "\\", "*", "?", "~root", "~", "--all", "-oProxyCommand=sh -c id",
    "-rf", "--server=https://evil.example/dir", "x" * 10_000, "a\u202eb", "\u200b", "a\x00b",
    "аpp.example.com",  # Cyrillic a: IDN homoglyph
    "app.example.com\x1b]0;pwned\x07", "{cert_name}", "{{", "}}", "%s%n", "$HOME", "!!", "#comment",
    "a b", " leading", "trailing ", "tab\there", "new\u2028line", "é", "../../etc/passwd", "/tmp/x;id",
    "app.example.com && id", "app.example.com||id", ">/etc/passwd", "<(id)", "$((1+1))",
]  # fmt: skip


def _used_in_commands(rb: object, name: str) -> bool:
    from certpager.runbook.template import refs

    for step in rb.all_steps():  # type: ignore[attr-defined]
        templates = [*step.argv, *(t for _, t in step.env)]
        if any(name in refs(t) for t in templates):
            return True
    return False


def _slots() -> list[tuple[Path, str]]:
    out = []
    for path in SHIPPED:
        rb = load_runbook(path)
        for p in rb.params:
            out.append((path, p.name))
    return out


@pytest.mark.parametrize(("path", "name"), _slots(), ids=lambda v: getattr(v, "stem", v))
def test_injection_corpus_every_slot_of_every_shipped_runbook(path: Path, name: str) -> None:
    """Every hostile value is either rejected naming the slot, or delivered as literal argv text."""
    rb = load_runbook(path)
    ep = endpoint(params={"context": "prod", "certificate": "app"})
    accepted = rejected = 0
    for value in HOSTILE:
        try:
            plan = build_plan(rb, ep, {name: value}, target=TARGET)
        except RunbookError as exc:
            assert f"params.{name}" in str(exc), str(exc)
            assert str(exc).startswith(str(path)), str(exc)
            rejected += 1
            continue
        accepted += 1
        ptype = rb.param(name).type  # type: ignore[union-attr]
        run_steps = [s for s in plan.all_steps() if s.kind is StepKind.RUN]
        for step in run_steps:
            # The string sent parses back to exactly the argv meant (no word split, no expansion).
            assert shlex.split(step.command) == list(step.argv)
        if not ptype.multi_word and value and _used_in_commands(rb, name):
            # An accepted value arrives whole, inside one argument, in some command.
            assert any(value in arg for step in run_steps for arg in step.argv), value
    assert accepted + rejected == len(HOSTILE)


def test_hostile_values_never_reach_a_shell_unquoted(tmp_path: Path) -> None:
    """The accepted corpus values, rendered into a real command, reach printf byte-exact (dash and bash)."""
    rb = parse_runbook(
        """
name: echo
title: echo
params:
  value: {type: string, allow_dash: true}
steps:
  - id: echo
    run: [printf, "%s\\n", "{value}", "prefix-{value}-suffix"]
""",
        file="echo.yaml",
    )
    for value in HOSTILE:
        try:
            plan = build_plan(rb, endpoint(), {"value": value}, target=TARGET)
        except RunbookError:
            continue
        command = plan.steps[0].command
        for shell in ("/bin/sh", "/bin/bash"):
            out = subprocess.run([shell, "-c", command], capture_output=True, timeout=30)
            assert out.returncode == 0
            assert out.stdout.decode() == f"{value}\nprefix-{value}-suffix\n", (shell, value)


# ------------------------------------------------------------------ property tests (T22)

VISIBLE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
    | st.just(" "),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(VISIBLE, min_size=1, max_size=4))
def test_property_rendered_argv_round_trips_through_shlex(values: list[str]) -> None:
    scalars = {f"v{i}": v for i, v in enumerate(values)}
    elements = [("printf",), ("%s\\n",)] + [parse_template(f"{{v{i}}}") for i in range(len(values))]
    argv = render_argv(elements, scalars, {})
    assert argv == ("printf", "%s\\n", *values)
    assert shlex.split(shlex.join(argv)) == list(argv)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VISIBLE)
def test_property_real_shell_receives_exactly_the_value(value: str) -> None:
    p = Param(name="v", type=ParamType.STRING, default=None, allow_dash=True)
    (checked,) = validate_value(p, value)
    command = shlex.join(render_argv([("printf",), ("%s\\n",), parse_template("{v}")], {"v": checked}, {}))
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=30)
    assert out.stdout.decode() == value + "\n"


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=40))
def test_property_validation_never_lets_control_or_dash_through(value: str) -> None:
    try:
        (checked,) = validate_value(param(), value)
    except ValueError:
        return
    assert not checked.startswith("-")
    assert checked.isprintable() or all(c.isprintable() or c == " " for c in checked)
    assert "\n" not in checked and "\x00" not in checked
