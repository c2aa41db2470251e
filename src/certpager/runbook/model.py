"""The runbook model: what a validated runbook file says. Frozen dataclasses, no behaviour.

See docs/runbooks.md ("Writing runbooks") for the YAML format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from certpager.config import Endpoint


@dataclass(frozen=True)
class Ref:
    """A ``{name}`` placeholder inside a template."""

    name: str
    """The variable it refers to."""


Template = tuple[str | Ref, ...]
"""Literal text and placeholders, in order; rendering concatenates them."""


class ParamType(enum.Enum):
    """How a parameter value is validated (and whether it may become several words)."""

    STRING = "string"
    """Free text on one line; no control or invisible characters; no leading ``-``."""
    HOSTNAME = "hostname"
    """An RFC 1123 host name (IDNA ``xn--`` form), at most 253 characters."""
    CERT_NAME = "cert_name"
    """A certbot certificate name: ``[A-Za-z0-9][A-Za-z0-9._-]*``."""
    PATH = "path"
    """An absolute path without ``..``, optionally under a declared ``prefix``."""
    K8S_NAME = "k8s_name"
    """A Kubernetes object name (DNS-1123 subdomain)."""
    K8S_NAMESPACE = "k8s_namespace"
    """A Kubernetes namespace (DNS-1123 label)."""
    URL = "url"
    """An ``http(s)://`` URL without credentials or spaces."""
    INT = "int"
    """A non-negative integer."""
    ENUM = "enum"
    """One of the declared ``choices``."""
    COMMAND = "command"
    """A command line given by the operator (config or CLI), split into words with POSIX
    shell rules; fills a whole argument position and may expand to several words;
    its first word must not start with ``-``."""
    ARGS = "args"
    """Zero or more extra arguments given by the operator, split like ``command``;
    options (``-x``) are their purpose, so leading dashes are allowed."""

    @property
    def multi_word(self) -> bool:
        """Whether a value becomes a list of words (whole-element placeholders only)."""
        return self in (ParamType.COMMAND, ParamType.ARGS)


@dataclass(frozen=True)
class FlagRule:
    """One option an ``args`` parameter allows (see :attr:`Param.allow_flags`)."""

    flag: str
    """The option exactly as written, e.g. ``--config-dir`` (abbreviations do not match)."""
    value: ParamType | None
    """How its value is validated (given as the next word or ``--flag=value``); None: a switch."""


@dataclass(frozen=True)
class Param:
    """A declared runbook parameter."""

    name: str
    """Name used in ``{name}`` placeholders and ``--param name=value``."""
    type: ParamType
    """Validation rule."""
    default: Template | None
    """Default value (may use built-in variables such as ``{sni}``); None means required."""
    description: str = ""
    """Shown by ``--plan`` and ``--list``."""
    pattern: str | None = None
    """Extra regular expression the value (or each word, for ``args``) must fully match."""
    choices: tuple[str, ...] = ()
    """Allowed values for ``enum``."""
    prefix: str | None = None
    """For ``path``: the value must be under this directory."""
    allow_dash: bool = False
    """Allow a value that starts with ``-`` (quoting does not stop option injection)."""
    secret: bool = False
    """A secret: only usable as ``stdin``, redacted everywhere."""
    line: int = 0
    """Line of the declaration in the runbook file."""
    allow_flags: tuple[FlagRule, ...] | None = None
    """For ``args``: the only options a value may hold, and nothing else (an allow-list);
    None: no policy."""

    @property
    def required(self) -> bool:
        """Whether a value must be supplied (no default)."""
        return self.default is None


class StepKind(enum.Enum):
    """What a step does."""

    RUN = "run"
    """Run a command on the endpoint's SSH target (or locally)."""
    CONFIRM = "confirm"
    """Only ask the operator."""
    VERIFY = "verify"
    """Fresh handshakes (and the deeper checks the run's findings need) to every backend
    until the findings the run is for are gone (and, for a renewal, the new certificate is served)."""


class ConfirmKind(enum.Enum):
    """How a step is confirmed before it runs."""

    NONE = "none"
    """No confirmation."""
    PLAIN = "plain"
    """Yes/no."""
    TYPED = "typed"
    """The operator types the confirmation token (the endpoint or certificate name)."""


class VerifyExpect(enum.Enum):
    """What the verification step accepts as proof."""

    CHANGED = "changed"
    """The served certificate differs from the one seen before the run."""
    STORED = "stored"
    """The served certificate equals the stored one (endpoint ``stored: path``)."""
    CHANGED_OR_STORED = "changed_or_stored"
    """Either of the above."""
    FINDINGS = "findings"
    """No new certificate needed: the findings the run is for are gone (a config fix
    that keeps the certificate: full chain, protocols, HSTS)."""


RENEWAL_CODES = frozenset({"cert_expired", "expires_soon", "renewal_overdue", "cert_not_yet_valid"})
"""Finding codes only a new certificate can fix: a runbook whose ``fixes:`` names one
renews, and its verification also needs the new (stored) certificate to be served."""


CONFIRM_WAIT = 0.5
"""Default seconds between a verification's first passing round and the one confirming it."""


@dataclass(frozen=True)
class VerifySpec:
    """Parameters of a verification step."""

    deadline: float = 60.0
    """Seconds to keep retrying (a reload takes a moment to apply)."""
    interval: float = 2.0
    """Longest wait between attempts: the first waits are short (0.1 s, doubling up to this),
    because a reload usually applies within a fraction of a second."""
    expect: VerifyExpect = VerifyExpect.CHANGED_OR_STORED
    """What counts as the new certificate (``findings``: none needed). When the runbook
    does not say, ``findings`` for a runbook whose ``fixes:`` names no renewal code, else
    ``changed_or_stored``."""
    min_days_left: float | None = None
    """Days of validity required; None means the endpoint's warning threshold."""
    confirm_wait: float = CONFIRM_WAIT
    """Seconds between the first round where every backend passes and the round that must
    confirm it: a pass counts only when it holds (after a reload, old nginx workers keep
    accepting connections for a moment, so one handshake on a new worker proves nothing)."""


@dataclass(frozen=True)
class Step:
    """One step of a runbook, as written (before rendering)."""

    id: str
    """Unique id within the runbook."""
    title: str
    """One line shown in the plan and the progress."""
    kind: StepKind
    """What it does."""
    line: int
    """Line of the step in the runbook file."""
    key: str
    """Dotted key path, e.g. ``steps[2]``, for messages."""
    argv: tuple[Template, ...] = ()
    """The command, one template per argument (RUN)."""
    env: tuple[tuple[str, Template], ...] = ()
    """Environment variables set with ``env NAME=value`` (empty values are left out)."""
    stdin: Template | None = None
    """Text written to the command's stdin (the only place a secret may go)."""
    local: bool = False
    """Run on this machine instead of the endpoint's SSH target."""
    timeout: float = 120.0
    """Seconds before the command is ended (locally and by the remote ``timeout``)."""
    confirm: ConfirmKind = ConfirmKind.NONE
    """Confirmation required before the step."""
    message: Template = ()
    """Text shown with the confirmation (warnings go here)."""
    confirm_token: Template = (Ref("endpoint"),)
    """What must be typed for a typed confirmation."""
    on_failure: tuple[Step, ...] = ()
    """Steps run when this one fails."""
    continue_on_error: bool = False
    """Go on with the next step even when this one fails."""
    verify: VerifySpec | None = None
    """Verification parameters (VERIFY)."""


@dataclass(frozen=True)
class Runbook:
    """A validated runbook."""

    name: str
    """Name used by ``certpager run NAME`` (equals the file name without ``.yaml``)."""
    title: str
    """One line."""
    description: str
    """Longer text (what it does, risks)."""
    params: tuple[Param, ...]
    """Declared parameters."""
    steps: tuple[Step, ...]
    """Ordered steps."""
    path: Path | None = None
    """The file it was loaded from."""
    sha256: str = ""
    """SHA-256 of the file's bytes (recorded with every run)."""
    applies_to_tags: tuple[str, ...] = ()
    """Endpoints with any of these tags may use it."""
    applies_to_endpoints: tuple[str, ...] = ()
    """Endpoints with these names may use it."""
    line_of_params: int = 1
    """Line of the ``params`` key (for messages about parameter values)."""
    fixes: tuple[str, ...] = ()
    """Finding codes (``certpager.probe.findings``) this runbook fixes and its
    verification proves gone; empty for a runbook that fixes nothing it can prove."""
    line_of_fixes: int = 0
    """Line of the ``fixes`` key (0 when absent)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Reserved for future keys."""

    @property
    def file(self) -> str:
        """File name for messages."""
        return str(self.path) if self.path else f"<runbook {self.name}>"

    @property
    def renews(self) -> bool:
        """Whether it renews the certificate (its ``fixes:`` names a code only a new one fixes)."""
        return bool(RENEWAL_CODES.intersection(self.fixes))

    def param(self, name: str) -> Param | None:
        """The parameter called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    def applies_to(self, endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` may use this runbook.

        True when the endpoint lists it in ``runbooks``, when it matches
        ``applies_to`` (tags or names), or when the runbook restricts nothing.
        """
        if self.name in endpoint.runbooks:
            return True
        if not self.applies_to_tags and not self.applies_to_endpoints:
            return True
        if endpoint.name in self.applies_to_endpoints:
            return True
        return bool(set(endpoint.tags) & set(self.applies_to_tags))

    def all_steps(self) -> list[Step]:
        """Steps in order, each followed by its ``on_failure`` steps."""
        out: list[Step] = []
        for step in self.steps:
            out.append(step)
            out.extend(step.on_failure)
        return out
