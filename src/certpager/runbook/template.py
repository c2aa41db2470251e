"""Safe templating: ``{name}`` placeholders, typed validators, argv rendering, display escaping.

The rules (see reliability-plan §1.4):

- A command is an **argv list**: each element is a template; a placeholder fills a
  whole element or part of one, and a value is never split again. The string
  sent to the target is ``shlex.join(argv)``, so every value is shell-quoted.
- Every value is validated by its parameter's type before anything runs: no
  control or invisible characters (bidi overrides, zero-width), and no leading
  ``-`` unless the parameter says ``allow_dash`` (quoting does not stop
  ``--all`` reaching kubectl).
- Only ``command`` and ``args`` parameters (operator-given command lines) may
  expand to several words, and only as a whole element.
- Values observed from servers (certificate subject, SANs, issuer...) are not
  variables at all: a runbook naming one is rejected when loaded.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from urllib.parse import urlsplit

from certpager.errors import TemplateError as TemplateError
from certpager.inputs import K8S_LABEL, K8S_SUBDOMAIN, bad_char
from certpager.runbook.model import FlagRule, Param, ParamType, Ref, Template
from certpager.text import printable

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

BUILTINS: dict[str, str] = {
    "endpoint": "the endpoint's name",
    "host": "the endpoint's host (from the config)",
    "port": "the endpoint's TLS port",
    "sni": "the name the certificate must match (SNI, else host)",
    "ssh_host": "the SSH target's host (from the config)",
    "ssh_user": "the SSH target's user (from the config, if set)",
    "ssh_port": "the SSH target's port (from the config, if set)",
    "stored_path": "the endpoint's stored certificate path (stored: path)",
    "secret_namespace": "the endpoint's stored Kubernetes secret namespace",
    "secret_name": "the endpoint's stored Kubernetes secret name",
}
"""Variables every runbook may use; all come from the operator's config."""

OBSERVED_NAMES = frozenset(
    {
        "subject", "cn", "common_name", "san", "sans", "subject_alt_names", "issuer", "serial",
        "fingerprint", "sha256", "not_after", "not_before", "expiry", "leaf", "chain", "served",
        "probe", "cert", "report", "tls", "handshake",
    }
)  # fmt: skip

"""Names that would denote values observed from a server: never variables."""

SHELL_OPERATORS = frozenset({"&&", "||", "|", ";", "&", ">", ">>", "<", "<<", "2>&1", "2>", "|&", "(", ")"})
"""Words that mean something only to a shell; in an argv they would be literal arguments."""

MAX_VALUE_CHARS = 4096
"""Longest accepted parameter value."""

_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_CERT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def parse_template(text: str) -> Template:
    """Split ``text`` into literals and :class:`Ref` placeholders.

    ``{name}`` is a placeholder, ``{{`` and ``}}`` are literal braces.

    Raises:
        TemplateError: unbalanced braces, or a placeholder that is not a plain name
            (observed-value names get their own message).
    """
    parts: list[str | Ref] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if text.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = text.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' at character {i + 1} (write {{{{ for a literal brace)")
            name = text[i + 1 : end].strip()
            check_name(name)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Ref(name))
            i = end + 1
        elif ch == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(f"unmatched '}}' at character {i + 1} (write }}}} for a literal brace)")
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def check_name(name: str) -> None:
    """Reject placeholder names that are not plain identifiers or that name observed values."""
    head = re.split(r"[.\[]", name, maxsplit=1)[0].lower()
    if head in OBSERVED_NAMES or name.lower() in OBSERVED_NAMES:
        raise TemplateError(
            f"{{{name}}} refers to a value observed from the server (certificate subject, SANs, "
            "issuer, serial...); such values are never substituted into commands. Declare a "
            "parameter and set it in the endpoint's params instead"
        )
    if not _IDENT.fullmatch(name):
        raise TemplateError(f"{{{name}}} is not a valid placeholder: use {{name}} with letters, digits and _")


def refs(template: Template) -> list[str]:
    """Names referenced by ``template``."""
    return [p.name for p in template if isinstance(p, Ref)]


def whole_ref(template: Template) -> str | None:
    """The name when ``template`` is exactly one placeholder, else None."""
    if len(template) == 1 and isinstance(template[0], Ref):
        return template[0].name
    return None


def render_text(template: Template, values: dict[str, str]) -> str:
    """Concatenate literals and values (no quoting: for display and scalar values)."""
    return "".join(p if isinstance(p, str) else values[p.name] for p in template)


def template_source(template: Template) -> str:
    """Turn a template back into its source text."""
    out: list[str] = []
    for p in template:
        if isinstance(p, Ref):
            out.append("{" + p.name + "}")
        else:
            out.append(p.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


# ------------------------------------------------------------------ validators


def _bad_char(value: str) -> str | None:
    return bad_char(value)


def validate_value(param: Param, value: str) -> tuple[str, ...]:
    """Check ``value`` against ``param``; return its words (one for scalar types).

    An empty value is accepted only when the parameter's default is empty
    (an optional parameter); it then yields no words for ``command``/``args``
    and the empty string otherwise.

    Raises:
        ValueError: the reason, in plain words (the caller adds where).
    """
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"is {len(value)} characters long; the limit is {MAX_VALUE_CHARS}")
    bad = _bad_char(value)
    if bad:
        raise ValueError(bad)
    optional = param.default == () or param.default == ("",)
    if value == "":
        if optional:
            return () if param.type.multi_word else ("",)
        raise ValueError("must not be empty")
    kind = param.type
    if kind.multi_word:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into words: {exc}") from None
        if kind is ParamType.COMMAND:
            if not words:
                raise ValueError("must name a command")
            if words[0].startswith("-"):
                raise ValueError(f"the command must not start with '-' (got {words[0]!r})")
            if param.pattern and not re.fullmatch(param.pattern, value):
                raise ValueError(f"does not match the pattern {param.pattern!r}")
        else:
            for word in words:
                if param.pattern and not re.fullmatch(param.pattern, word):
                    raise ValueError(f"argument {word!r} does not match the pattern {param.pattern!r}")
            if param.allow_flags is not None:
                _check_flags(param, words, param.allow_flags)
        return tuple(words)
    if value.startswith("-") and not param.allow_dash:
        raise ValueError(
            "starts with '-', which the command would read as an option (quoting does not stop "
            "that); the parameter does not allow it (allow_dash: true)"
        )
    _check_scalar(param, value)
    if param.pattern and not re.fullmatch(param.pattern, value):
        raise ValueError(f"does not match the pattern {param.pattern!r}")
    return (value,)


def _check_flags(param: Param, words: list[str], rules: tuple[FlagRule, ...]) -> None:
    """Every word is an allowed option or the value of one (an allow-list: an abbreviation
    such as certbot's ``--serv`` for ``--server`` matches nothing, so it is refused)."""
    by_flag = {rule.flag: rule for rule in rules}
    allowed = ", ".join(rule.flag for rule in rules)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        rule = by_flag.get(flag)
        if rule is None:
            what = "option" if word.startswith("-") else "argument"
            raise ValueError(f"{what} {word!r} is not allowed here; allowed options: {allowed}")
        if rule.value is None:
            if eq:
                raise ValueError(f"option {flag} takes no value (got {word!r})")
            continue
        if not eq:
            if index >= len(words):
                raise ValueError(f"option {flag} needs a value")
            value = words[index]
            index += 1
        rule_param = Param(name=f"{param.name} {flag}", type=rule.value, default=None)
        try:
            validate_value(rule_param, value)
        except ValueError as exc:
            raise ValueError(f"the value {value!r} of {flag} {exc}") from None


BUILTIN_TYPES: dict[str, ParamType] = {
    "endpoint": ParamType.STRING,
    "host": ParamType.HOSTNAME,
    "port": ParamType.INT,
    "sni": ParamType.HOSTNAME,
    "ssh_host": ParamType.HOSTNAME,
    "ssh_user": ParamType.STRING,
    "ssh_port": ParamType.INT,
    "stored_path": ParamType.PATH,
    "secret_namespace": ParamType.K8S_NAMESPACE,
    "secret_name": ParamType.K8S_NAME,
}
"""How each built-in variable's value is validated: like a parameter of that type
(host names may also be IP literals)."""


def validate_builtin(name: str, value: str) -> None:
    """Check a built-in variable's value like a parameter of its type (empty: not set).

    Raises:
        ValueError: the reason, in plain words.
    """
    if value == "":
        return
    kind = BUILTIN_TYPES.get(name, ParamType.STRING)
    if kind is ParamType.HOSTNAME:
        bad = _bad_char(value)
        if bad:
            raise ValueError(bad)
        if _is_ip(value) or (name == "ssh_host" and value == "local"):
            return
    validate_value(Param(name=name, type=kind, default=None), value)


def _is_ip(value: str) -> bool:
    import ipaddress

    address, _, zone = value.strip("[]").partition("%")
    if zone and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", zone):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _check_scalar(param: Param, value: str) -> None:
    kind = param.type
    if kind is ParamType.HOSTNAME:
        if not value.isascii():
            raise ValueError("is not ASCII: give internationalised names in their IDNA (xn--) form")
        name = value[:-1] if value.endswith(".") else value
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
            raise ValueError("is not a valid host name (RFC 1123: letters, digits, '-' and '.')")
    elif kind is ParamType.CERT_NAME:
        if not _CERT_NAME.fullmatch(value):
            raise ValueError(
                "is not a certificate name: letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
    elif kind is ParamType.PATH:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        if ".." in value.split("/"):
            raise ValueError("must not contain '..'")
        if param.prefix:
            prefix = param.prefix.rstrip("/") + "/"
            if not (value + "/").startswith(prefix):
                raise ValueError(f"must be under {param.prefix}")
    elif kind is ParamType.K8S_NAME:
        if len(value) > 253 or not K8S_SUBDOMAIN.fullmatch(value):
            raise ValueError(
                "is not a Kubernetes name (lower-case letters, digits, '-' and '.', at most 253)"
            )
    elif kind is ParamType.K8S_NAMESPACE:
        if not K8S_LABEL.fullmatch(value):
            raise ValueError("is not a Kubernetes namespace (lower-case letters, digits and '-', at most 63)")
    elif kind is ParamType.URL:
        if any(ch.isspace() for ch in value):
            raise ValueError("must not contain spaces")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("is not an http(s):// URL")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (user:password@)")
    elif kind is ParamType.INT:
        if not value.isdigit() or not value.isascii() or len(value) > 12:
            raise ValueError("is not a non-negative integer")
    elif kind is ParamType.ENUM and value not in param.choices:
        raise ValueError(f"must be one of: {', '.join(param.choices)}")


def check_env_name(name: str) -> None:
    """Reject environment variable names a shell would not accept."""
    if not _ENV_NAME.fullmatch(name):
        raise TemplateError(f"{name!r} is not an environment variable name")


# ------------------------------------------------------------------ rendering


def render_argv(
    elements: Iterable[Template],
    scalars: dict[str, str],
    words: dict[str, tuple[str, ...]],
    env: Iterable[tuple[str, Template]] = (),
) -> tuple[str, ...]:
    """Render a command to its argv.

    Args:
        elements: one template per argument.
        scalars: validated scalar values by name.
        words: validated word lists of ``command``/``args`` parameters by name.
        env: ``NAME=template`` pairs; rendered as a leading ``env NAME=value``
            (pairs whose value is empty are left out).

    An element made only of placeholders whose values are empty is left out
    (optional arguments); a literal ``""`` element stays.
    """
    argv: list[str] = []
    for element in elements:
        name = whole_ref(element)
        if name is not None and name in words:
            argv.extend(words[name])
            continue
        text = render_text(element, scalars)
        if text == "" and element and all(isinstance(p, Ref) for p in element):
            continue
        argv.append(text)
    assignments = [f"{k}={render_text(t, scalars)}" for k, t in env if render_text(t, scalars) != ""]
    if argv and _ASSIGNMENT.match(argv[0]):
        # `VAR=x cmd` from a command parameter: make it an argv that `exec` can run.
        argv.insert(0, "env")
    if assignments:
        if argv and argv[0] == "env":
            argv[1:1] = assignments
        else:
            argv[0:0] = ["env", *assignments]
    return tuple(argv)


# ------------------------------------------------------------------- display


def sanitize_output(line: str) -> str:
    """A line of remote output, safe for a terminal: tabs kept, other controls escaped."""
    return printable(line, tabs=True)
