"""The append-only audit log: one JSON object per line, written before each action.

Location: ``$CERTPAGER_AUDIT_LOG`` if set, else ``$XDG_DATA_HOME/certpager/audit.jsonl``
(default ``~/.local/share/certpager/audit.jsonl``). The directory is created 0700
and the file 0600 with ``O_APPEND|O_CREAT|O_NOFOLLOW``; a log that is a symlink, not a
regular file, owned by another user or readable/writable by group/others is refused, and
so is a directory owned by another user or writable by group/others
(:class:`AuditLocationError`, a :class:`~certpager.errors.UserError`: exit 3).

Each append redacts the record with one :class:`Redactor` (every string, argv word by
word), takes an exclusive ``flock``, writes the whole line with one ``write()``, and
``fsync``\\s before returning (the directory too when the file was just created). A failed
or short write is cut back with ``ftruncate`` to the last whole record (else the next
record starts on a new line) and raises :class:`~certpager.errors.AuditError`; the
engine stops before the next step: the log fails closed.

A run start reads only the last :data:`TAIL_WINDOW` bytes (:meth:`AuditLog.unfinished`).

Record types (every record has ``v``, ``ts`` (UTC ISO 8601), ``type``, and for
runs ``run_id`` and ``seq``):

- ``run_start``: operator, certpager version, host, pid, runbook name/path/sha256,
  endpoint, parameters (redacted), the full plan.
- ``connected`` / ``connect_failed``: target, resolved address, host key fingerprint seen.
- ``baseline``: certificates served before the run (per backend).
- ``confirmation``: step, kind, the text shown (sha256), answer, when.
- ``step_intent``: written and fsynced **before** the command is sent: step, target,
  host key fingerprint, argv, command, the exact string sent, timeout.
- ``step_result``: outcome (``ok``, ``failed``, ``timeout``, ``cancelled``, ``unknown``),
  exit status or signal, duration, remote state, stdout/stderr (redacted, capped,
  with byte counts and a truncation marker).
- ``step_skipped``, ``verification`` (before/after per backend, verdict), ``run_end``.
- ``outcome_unknown``: written when a later start finds a run (or a step) that
  opened but never closed, after reporting it.
- ``silence_created``, ``silence_expired``, ``silence_kept``: the front end's silences
  around a run (:mod:`certpager.fleet.silence`), in the run's ``seq`` (:class:`RunAudit`).

Readers skip (and report) a torn last line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import getpass
import json
import os
import re
import shlex
import socket
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certpager.errors import AuditError
from certpager.errors import AuditLocationError as AuditLocationError

AUDIT_VERSION = 1
"""Value of the ``v`` field."""
OUTPUT_CAP = 256 * 1024
"""Characters of each output stream kept in a ``step_result`` record."""
_HEAD_CAP = 32 * 1024

REDACTED = "[REDACTED]"
"""What a secret is replaced with."""


def default_audit_path() -> Path:
    """``$CERTPAGER_AUDIT_LOG``, else ``$XDG_DATA_HOME/certpager/audit.jsonl``."""
    explicit = os.environ.get("CERTPAGER_AUDIT_LOG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "certpager" / "audit.jsonl"


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def operator() -> dict[str, str | None]:
    """Who is running certpager: OS user, ``SUDO_USER``, host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "sudo_user": os.environ.get("SUDO_USER"), "host": socket.gethostname()}


# ------------------------------------------------------------------ redaction

_SECRET_WORDS = frozenset(
    {
        "token",
        "tokens",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "credential",
        "credentials",
        "apikey",
        "cookie",
    }
)
_SECRET_SUFFIXES = ("token", "password", "passwd", "secret", "passphrase", "apikey", "credentials")
"""``PGPASSWORD``, ``GITHUBTOKEN``: one word ending with a secret word."""
_NOT_SECRET_LAST = frozenset(
    {"name", "names", "file", "path", "ref", "dir", "namespace", "id", "type", "kind", "length", "count"}
)
_KEY_PARTS = re.compile(r"[_.\-]+|(?<=[a-z0-9])(?=[A-Z])")


def is_secret_key(key: str) -> bool:
    """Whether a setting/flag/parameter name denotes a secret (``api_token``, ``tls.key``,
    ``clientSecret``, ``--password``), but not ``secretName``, ``tokenizer`` or ``password_file``."""
    parts = [p.lower() for p in _KEY_PARTS.split(key.strip("-")) if p]
    if not parts or parts[-1] in _NOT_SECRET_LAST:
        return False
    joined = "_".join(parts)
    return bool(
        _SECRET_WORDS.intersection(parts)
        or any(part.endswith(_SECRET_SUFFIXES) for part in parts)
        or re.search(r"(^|_)(api|private|access|client|tls|secret|signing|encryption)_?key(_|$)", joined)
    )


_secret_key = functools.lru_cache(maxsize=4096)(is_secret_key)


# A value as written in text: 'single quoted', "double quoted" (with \" escapes) or a bare word.
_VALUE = r"""(?!['"]?\[REDACTED)(?:'(?P<sq>[^'\n]{0,4096})'|"(?P<dq>(?:[^"\\\n]|\\.){0,4096})"|(?P<bare>[^\s"',;}&]{1,4096}))"""
_KEYVAL = re.compile(
    r"""(?<![\w.-])(?P<key>[A-Za-z_][\w.-]{0,63})(?P<q1>["']?)(?P<sep>[ \t]{0,8}[:=][ \t]{0,8})""" + _VALUE
)
_KEY_START = re.compile(r"""(?<![\w.-])[A-Za-z_][\w.-]{0,63}(?=["']?[ \t]{0,8}[:=])""")
_FLAG = re.compile(
    r"(?<![\w-])(?P<key>--?[\w-]{0,40}(?:token|password|passwd|secret|api-?key|passphrase|credential)[\w-]{0,40})"
    r"(?P<sep>=|[ \t]{1,8})(?=[^\s-])" + _VALUE,
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"(?i)((?>(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate)\b\s*)?))"
    r"(?!'?\[REDACTED)(\S+)"
)
_URL_CREDS = re.compile(
    r"(\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@]{0,256}:)(?!\[REDACTED)([^@\s/]{1,256})(@)"
)
_PASS_ARG = re.compile(r"(?<![\w-])(pass:)(?!\[REDACTED)(\S+)")
_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_SHELLISH = re.compile(r"(?i)token|pass|secret|key|auth|bearer|credential|pwd|cookie|-u\b|--user\b")
"""Lines worth splitting into words (a cheap test before :func:`shlex.split`)."""
_SHELL_MAX = 64 * 1024
_STRUCTURED = re.compile(r"""[{}]|["']\s*:""")
"""JSON/YAML-looking lines are left to the patterns (splitting them into words would mangle them)."""
_ELEM_KV = re.compile(r"(?P<key>--?[\w.-]{1,80}|[A-Za-z_][\w.-]{0,80})(?P<sep>=|:[ \t]*)(?P<value>.+)", re.S)
_ELEM_AUTH = re.compile(
    r"(?is)(?P<head>\s*(?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest|negotiate)\s+)?)(?P<value>.+)"
)

_USER_FLAGS = frozenset({"-u", "--user", "--proxy-user", "--username"})
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate"})
_META_KEYS = frozenset({"source", "type", "kind", "secret", "step_id", "id"})
"""Keys kept under a secret key (``{"api_token": {"value": ..., "source": "--param"}}``)."""


def _requote(match: re.Match[str], hide: Callable[[str], str]) -> str:
    if match.group("sq") is not None:
        return f"'{hide(match.group('sq'))}'"
    if match.group("dq") is not None:
        return f'"{hide(match.group("dq"))}"'
    return hide(match.group("bare"))


class Redactor:
    """The one redactor every audit record goes through (and command output on screen).

    It hides: the exact ``secrets`` given (also as shell-quoted), private key blocks,
    values of keys and options that name secrets (``*_TOKEN=X``, ``password: X``,
    ``--token X``, ``--password=X``), ``Authorization:`` headers, passwords in URLs,
    ``pass:X`` (OpenSSL), ``-u user:X``. :meth:`value` walks a whole record: a dict key that
    names a secret (or is in ``secret_names``) hides its value; a list of strings is an argv,
    redacted word by word with the previous word as context; every other string goes
    through :meth:`text`.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        secret_names: Iterable[str] = (),
        *,
        learn: bool = False,
        public_names: Iterable[str] = (),
    ):
        """Args:
        secrets: exact values to hide.
        secret_names: names whose values are secret even if the name does not say so.
        learn: remember every value hidden by context (``--token X``, ``api_token: X``) as an
            exact secret from then on, so the same value is hidden where no context shows it
            (a command's output echoing it). For one run's redactor; never a shared one.
        public_names: record keys that hold no secret although their name says so (a
            parameter ``secret`` that names a Kubernetes Secret).
        """
        self._values: set[str] = set()
        self.secrets: tuple[str, ...] = ()
        """Exact values hidden wherever they appear (longest first)."""
        for secret in secrets:
            if secret and len(secret) >= 3:
                self._remember(secret)
        self.learn = learn
        """Whether values hidden by context become exact secrets."""
        self.secret_names = frozenset(secret_names)
        """Names (parameters, keys) whose values are secret even if the name does not say so."""
        self.public_names = frozenset(public_names) - self.secret_names
        """Record keys whose values are not secret although the name says so."""

    def _remember(self, value: str) -> None:
        if value in self._values:
            return
        self._values.add(value)
        self._values.add(value.replace("'", "'\"'\"'"))  # inside shlex.quote's quotes
        self._values.add(json.dumps(value)[1:-1])  # inside JSON text
        self.secrets = tuple(sorted(self._values, key=len, reverse=True))

    def _hide(self, value: str) -> str:
        """:data:`REDACTED`; when learning, ``value`` is hidden everywhere from now on."""
        value = value.strip()
        if self.learn and len(value) >= 4 and REDACTED not in value:
            self._remember(value)
        return REDACTED

    def is_secret_name(self, key: str) -> bool:
        """Whether a key, option or parameter name holds a secret."""
        return key in self.secret_names or key.lstrip("-") in self.secret_names or _secret_key(key)

    # --------------------------------------------------------------- strings

    def text(self, text: str) -> str:
        """``text`` with every secret replaced (line structure kept)."""
        if not text:
            return text
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "PRIVATE KEY" in text:
            text = _PEM_BLOCK.sub(lambda m: f"[REDACTED {m.group(1)}]", text)
        if len(text) <= _SHELL_MAX and _SHELLISH.search(text):
            lines = text.split("\n")
            for number, line in enumerate(lines):
                # A line read as shell words is redacted word by word (quoted values whole);
                # any other line by the patterns below.
                words = self._shell_line(line)
                lines[number] = words if words is not None else self._patterns(line)
            return "\n".join(lines)
        return self._patterns(text)

    def _patterns(self, text: str) -> str:
        text = _AUTH.sub(lambda m: m.group(1) + self._hide(m.group(2)), text)
        text = _URL_CREDS.sub(lambda m: m.group(1) + self._hide(m.group(2)) + m.group(3), text)
        text = _PASS_ARG.sub(lambda m: m.group(1) + self._hide(m.group(2)), text)
        text = _FLAG.sub(self._flag, text)
        return self._keyvals(text)

    def _flag(self, match: re.Match[str]) -> str:
        if not self.is_secret_name(match.group("key")):
            return match.group(0)
        return match.group("key") + match.group("sep") + _requote(match, self._hide)

    def _keyvals(self, text: str) -> str:
        """Hide the value of every ``key=value`` / ``key: value`` whose key names a secret,
        wherever it is (``url=https://x?access_token=X`` too); linear in ``text``."""
        out: list[str] = []
        done = 0
        for key in _KEY_START.finditer(text):
            if key.start() < done or not self.is_secret_name(key.group(0)):
                continue
            match = _KEYVAL.match(text, key.start())
            if match is None:
                continue
            out.append(text[done : match.start()])
            out.append(f"{match.group('key')}{match.group('q1')}{match.group('sep')}")
            out.append(_requote(match, self._hide))
            done = match.end()
        out.append(text[done:])
        return "".join(out)

    def _shell_line(self, line: str) -> str | None:
        """A line that parses as shell words and holds a secret, redacted as an argv; else None."""
        if not _SHELLISH.search(line) or not any(c in line for c in " \t") or _STRUCTURED.search(line):
            return None
        try:
            words = shlex.split(line)
        except ValueError:
            return None
        if len(words) < 2:
            return None
        clean = self.argv(words)
        return None if clean == words else shlex.join(clean)

    # ------------------------------------------------------------------ argv

    def argv(self, words: Iterable[str]) -> list[str]:
        """An argv redacted word by word; the word before gives context (``--token``, ``X``)."""
        out: list[str] = []
        prev: str | None = None
        before = ""
        for word in words:
            out.append(self._word(word, prev, before))
            before = (prev or "").strip().lower()
            prev = word
        return out

    def _word(self, word: str, prev: str | None, before: str) -> str:
        if not word:
            return word
        if prev is not None:
            low = prev.strip().lower()
            if (prev.startswith("-") and "=" not in prev and self.is_secret_name(prev)) or (
                low.endswith(":") and self.is_secret_name(low[:-1].strip())
            ):
                return self._hide(word)
            if low in ("authorization:", "proxy-authorization:"):
                return word if word.lower() in _AUTH_SCHEMES else self._hide(word)
            if low in _AUTH_SCHEMES and before in ("authorization:", "proxy-authorization:"):
                return self._hide(word)
            if low in _USER_FLAGS and ":" in word:
                user, password = word.split(":", 1)
                return user + ":" + self._hide(password)
        auth = _ELEM_AUTH.match(word)
        if auth:
            return auth.group("head") + self._hide(auth.group("value"))
        pair = _ELEM_KV.fullmatch(word)
        if pair and self.is_secret_name(pair.group("key")):
            return pair.group("key") + pair.group("sep") + self._hide(pair.group("value"))
        return self.text(word)

    # --------------------------------------------------------------- records

    def value(self, value: Any, *, secret: bool = False) -> Any:
        """A JSON-ready value with every secret hidden (dicts, lists, tuples, strings)."""
        if isinstance(value, str):
            if secret:
                return self._hide(value) if value else value
            return self.text(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return REDACTED if secret else value
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                name = str(key)
                hidden = (secret and name not in _META_KEYS) or (
                    name not in self.public_names and self.is_secret_name(name)
                )
                out[self.text(key) if isinstance(key, str) else key] = self.value(item, secret=hidden)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if secret:
                return [self.value(item, secret=True) for item in items]
            if items and all(isinstance(item, str) for item in items):
                return self.argv(items)
            return [self.value(item) for item in items]
        return self.value(str(value), secret=secret)

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record with every secret hidden.

        When learning, a value hidden by its context late in the record (an argv in the
        plan) is also hidden where it appeared earlier without context (the parameters)."""
        known = self.secrets
        clean = self.value(record)
        if self.secrets != known:
            clean = self.value(record)
        assert isinstance(clean, dict)
        return clean


_DEFAULT = Redactor()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace secrets in ``text`` (see :class:`Redactor`), and the exact ``secrets`` given."""
    redactor = Redactor(secrets) if secrets else _DEFAULT
    return redactor.text(text)


def redact_params(params: dict[str, str], secret_names: Iterable[str] = ()) -> dict[str, str]:
    """Redact parameter values whose name looks secret or that are declared secret."""
    clean = Redactor(secret_names=secret_names).value(params)
    assert isinstance(clean, dict)
    return clean


class LineRedactor:
    """Redacts a stream line by line, remembering when it is inside a private key block."""

    def __init__(self, secrets: Iterable[str] = (), *, redactor: Redactor | None = None):
        self.redactor = redactor or Redactor(secrets)
        """Does the redaction of each line."""
        self.secrets = self.redactor.secrets
        """Exact values to hide."""
        self._in_key = False

    def __call__(self, line: str) -> str | None:
        """The redacted line, or None when the line is part of a hidden key block."""
        if self._in_key:
            if _PEM_END.search(line):
                self._in_key = False
            return None
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            self._in_key = True
            return self.redactor.text(line[: begin.start()]) + f"[REDACTED {begin.group(1)}]"
        return self.redactor.text(line)


class OutputCapture:
    """Keeps the head and the tail of a stream within :data:`OUTPUT_CAP` characters."""

    def __init__(self, cap: int = OUTPUT_CAP, head: int = _HEAD_CAP):
        self.cap = cap
        self.head_cap = min(head, cap)
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0
        """Characters left out."""
        self.lines = 0
        """Lines seen."""

    def add(self, line: str) -> None:
        """Record one line."""
        self.lines += 1
        size = len(line) + 1
        if self.head_size + size <= self.head_cap and not self.tail:
            self.head.append(line)
            self.head_size += size
            return
        self.tail.append(line)
        self.tail_size += size
        while self.tail and self.tail_size > self.cap - self.head_size:
            dropped = self.tail.popleft()
            self.tail_size -= len(dropped) + 1
            self.dropped += len(dropped) + 1

    @property
    def truncated(self) -> bool:
        """Whether something was left out."""
        return self.dropped > 0

    def text(self) -> str:
        """The kept text, with a marker where lines were left out."""
        parts = list(self.head)
        if self.dropped:
            parts.append(f"…[{self.dropped} characters left out]…")
        parts.extend(self.tail)
        return "\n".join(parts)


# ------------------------------------------------------------------- the log

TAIL_WINDOW = 16 * 1024 * 1024
"""Bytes at the end of the log that :meth:`AuditLog.unfinished` reads (a run start never reads more)."""
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class AuditRead:
    """What :meth:`AuditLog.read` found."""

    records: list[dict[str, Any]]
    """Parsed records, in file order."""
    torn: list[tuple[int, str]] = field(default_factory=list)
    """``(line number, text)`` of lines that are not complete JSON objects (skipped)."""


@dataclass(frozen=True)
class UnfinishedRun:
    """A run whose record opened but never closed: its outcome is unknown."""

    run_id: str
    """The run."""
    endpoint: str
    """Its endpoint."""
    runbook: str
    """Its runbook."""
    started: str
    """When it started (UTC)."""
    pid: int | None
    """The certpager process that ran it."""
    open_steps: tuple[str, ...]
    """Steps with an ``about to run`` record and no result: they may or may not have run."""
    last_command: str | None
    """The last command certpager was about to run."""
    last_seq: int = 0
    """The highest ``seq`` of its records (the ``outcome_unknown`` record gets the next one)."""

    def describe(self) -> str:
        """One paragraph for the operator."""
        text = (
            f"outcome unknown: run {self.run_id} of runbook {self.runbook} on endpoint "
            f"{self.endpoint} (started {self.started}, pid {self.pid}) never finished"
        )
        if self.open_steps:
            text += (
                f"; step(s) {', '.join(self.open_steps)} were about to run"
                + (f" ({self.last_command})" if self.last_command else "")
                + " and may or may not have run. Check the target before acting again."
            )
        return text


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):o}"


class AuditLog:
    """Append-only JSON-lines audit log (see the module docstring)."""

    def __init__(self, path: Path | None = None):
        """Use ``path`` (default :func:`default_audit_path`)."""
        self.path = Path(path) if path is not None else default_audit_path()
        """The log file."""

    # ------------------------------------------------------------ safety

    def _check_file(self, st: os.stat_result) -> None:
        """Refuse a log that is not a regular file of ours, private to us."""
        if stat.S_ISLNK(st.st_mode):
            raise AuditLocationError(
                f"audit log {self.path} is a symbolic link; refusing to write through it"
            )
        if not stat.S_ISREG(st.st_mode):
            raise AuditLocationError(f"audit log {self.path} is not a regular file")
        if st.st_uid != os.getuid():
            raise AuditLocationError(
                f"audit log {self.path} is owned by uid {st.st_uid}, not by you; refusing to use it"
            )
        if st.st_mode & 0o022:
            raise AuditLocationError(
                f"audit log {self.path} is writable by group or others (mode {_mode(st)}); "
                f"fix it with: chmod 600 {self.path}"
            )
        if st.st_mode & 0o044:
            raise AuditLocationError(
                f"audit log {self.path} is readable by group or others (mode {_mode(st)}) and records "
                f"commands and hosts; fix it with: chmod 600 {self.path}"
            )

    def _check_existing(self) -> bool:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AuditLocationError(f"audit log {self.path}: {exc.strerror}") from None
        self._check_file(st)
        return True

    def _ensure_dir(self) -> None:
        """Create the directory 0700; refuse one others own or can write to."""
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(parent)
        except OSError as exc:
            raise AuditLocationError(
                f"cannot create the audit directory {parent}: {exc.strerror or exc}"
            ) from None
        own = "; keep the log in a directory of your own (--audit-log or CERTPAGER_AUDIT_LOG)"
        if st.st_uid not in (os.getuid(), 0):
            raise AuditLocationError(
                f"the audit directory {parent} is owned by uid {st.st_uid}, not by you{own}"
            )
        if st.st_mode & 0o002 and st.st_mode & stat.S_ISVTX:
            raise AuditLocationError(f"the audit directory {parent} is shared (mode {_mode(st)}){own}")
        if st.st_mode & 0o022:
            raise AuditLocationError(
                f"the audit directory {parent} is writable by group or others (mode {_mode(st)}), "
                f"so they could replace the log; fix it with: chmod 700 {parent}"
            )

    def check(self) -> None:
        """Make sure the log can be written safely (creates the directory).

        Raises:
            AuditLocationError: the directory or the file is unsafe (a :class:`UserError`).
        """
        self._ensure_dir()
        self._check_existing()

    def _open(self, flags: int) -> int:
        """Open the log (never through a symlink, never blocking on a FIFO) and check what was opened."""
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AuditLocationError(
                    f"audit log {self.path} is a symbolic link; refusing to write through it"
                ) from None
            if exc.errno == errno.ENOENT and not flags & os.O_CREAT:
                raise
            raise AuditLocationError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
        try:
            self._check_file(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    # ------------------------------------------------------------ writing

    def append(self, record: dict[str, Any], redactor: Redactor | None = None) -> None:
        """Redact ``record`` and write it durably: flock, one ``write()`` of the whole line, fsync.

        A failed or short write is undone (the file is cut back to its last whole
        record); if even that fails, the next record starts on a new line. Nothing
        already in the log is lost.

        Raises:
            AuditError: the record could not be written; nothing else may run.
        """
        record = (redactor or _DEFAULT).record({"v": AUDIT_VERSION, "ts": now_iso(), **record})
        try:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit record cannot be encoded: {exc}") from None
        data = line.encode("utf-8", errors="replace")
        self._ensure_dir()
        existed = self._check_existing()
        fd = self._open(os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._write_line(fd, data)
            except OSError as exc:
                raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if not existed:
            self._fsync_dir()

    def _write_line(self, fd: int, data: bytes) -> None:
        """Append ``data`` as one whole line, or leave the file as it was (raise AuditError)."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # an earlier record was torn (killed mid-write): start a new line
        try:
            # One write() of the whole line; after a short one (a signal, the disk filling
            # up), the next write() finishes the line or says why it cannot.
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.EIO, f"short write ({len(data) - len(view)} of {len(data)} bytes)")
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            try:
                os.ftruncate(fd, size)
                with contextlib.suppress(OSError):
                    os.fsync(fd)
                undone = "the log still ends with its last whole record"
            except OSError:
                undone = "the partial line could not be removed; the next record starts on a new line"
            raise AuditError(
                f"cannot write the audit log {self.path}: {reason}; the record was not written ({undone})"
            ) from None

    def _fsync_dir(self) -> None:
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # ------------------------------------------------------------ reading

    def read(self) -> AuditRead:
        """All complete records of the whole log (a tool's view: a run start uses
        :meth:`unfinished`, which reads only the tail); torn lines are skipped and listed."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AuditRead([])
        except OSError as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        records: list[dict[str, Any]] = []
        torn: list[tuple[int, str]] = []
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            value = _parse(line)
            if value is None:
                torn.append((number, line[:200].decode("utf-8", "replace")))
            else:
                records.append(value)
        return AuditRead(records, torn)

    def tail(self, window: int = TAIL_WINDOW) -> Iterator[dict[str, Any]]:
        """Records of the last ``window`` bytes, **newest first**; reads at most ``window`` bytes.

        A record cut by the window's start is left out, and so are torn lines.
        """
        try:
            fd = self._open(os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            yield from _lines_backwards(fd, os.fstat(fd).st_size, window)
        except OSError as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def unfinished(
        self, is_active: Callable[[dict[str, Any]], bool] | None = None, window: int = TAIL_WINDOW
    ) -> list[UnfinishedRun]:
        """Runs that opened and never closed, not yet reported, and not running now.

        Reads only the last ``window`` bytes (newest first), so a run start costs the
        same with a log of any size. Every run start reports what it finds, so a run
        left open is found by the next start unless it opened more than ``window``
        bytes earlier.

        Args:
            is_active: ``is_active(run_start_record)`` is True while that run may still be
                in progress (its lock is held, its process is alive); such runs are skipped
                (:func:`certpager.runbook.lock.run_is_active`).
            window: bytes read from the end.
        """
        scan = _TailScan()
        for rec in self.tail(window):
            scan.add(rec)
        return [
            scan.unfinished(start)
            for start in reversed(scan.starts)  # oldest first
            if is_active is None or not is_active(start)
        ]

    def acknowledge(self, run: UnfinishedRun) -> None:
        """Record that ``run`` was reported as "outcome unknown" (so it is reported once).

        The record continues the run's ``seq``."""
        self.append(
            {
                "type": "outcome_unknown",
                "run_id": run.run_id,
                "seq": run.last_seq + 1,
                "endpoint": run.endpoint,
                "runbook": run.runbook,
                "open_steps": list(run.open_steps),
                "reported_by_pid": os.getpid(),
            }
        )


class _TailScan:
    """What :meth:`AuditLog.unfinished` gathers from records read newest first."""

    def __init__(self) -> None:
        self.closed: set[str] = set()
        """Runs whose closing record (or opening record) was seen: older records of theirs count no more."""
        self.results: dict[str, set[str]] = {}
        """Run -> steps with a ``step_result``."""
        self.intents: dict[str, list[tuple[str, str | None]]] = {}
        """Run -> ``(step, command)`` of each ``step_intent`` with no result, newest first."""
        self.last_seq: dict[str, int] = {}
        """Run -> highest ``seq`` seen."""
        self.starts: list[dict[str, Any]] = []
        """``run_start`` records of runs not closed, newest first."""

    def add(self, rec: dict[str, Any]) -> None:
        """Take one record (the next older one)."""
        run_id = rec.get("run_id")
        if not isinstance(run_id, str):
            return
        seq = rec.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > self.last_seq.get(run_id, 0):
            self.last_seq[run_id] = seq
        if run_id in self.closed:
            return
        kind = rec.get("type")
        if kind in ("run_end", "outcome_unknown"):
            self.closed.add(run_id)
        elif kind == "step_result":
            self.results.setdefault(run_id, set()).add(str(rec.get("step_id")))
        elif kind == "step_intent":
            step = str(rec.get("step_id"))
            if step not in self.results.get(run_id, set()):
                command = rec.get("command")
                self.intents.setdefault(run_id, []).append((step, None if command is None else str(command)))
        elif kind == "run_start":
            self.starts.append(rec)
            self.closed.add(run_id)  # older records of the same id belong to nothing newer

    def unfinished(self, start: dict[str, Any]) -> UnfinishedRun:
        """The run that ``start`` opened, which never closed."""
        run_id = str(start["run_id"])
        steps = list(reversed(self.intents.get(run_id, [])))  # file order
        pid = start.get("pid")
        return UnfinishedRun(
            run_id=run_id,
            endpoint=str(start.get("endpoint", "?")),
            runbook=str(start.get("runbook", "?")),
            started=str(start.get("ts", "?")),
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            open_steps=tuple(dict.fromkeys(step for step, _ in steps)),
            last_command=steps[-1][1] if steps else None,
            last_seq=self.last_seq.get(run_id, 0),
        )


def _parse(line: bytes) -> dict[str, Any] | None:
    """One record, or None for a torn or corrupt line."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _lines_backwards(fd: int, size: int, window: int) -> Iterator[dict[str, Any]]:
    """Parsed records of the last ``window`` bytes of ``fd``, newest first."""
    stop = max(0, size - window)
    pos = size
    carry = b""
    while pos > stop:
        count = min(_CHUNK, pos - stop)
        pos -= count
        block = os.pread(fd, count, pos) + carry
        lines = block.split(b"\n")
        carry = lines[0]
        for line in reversed(lines[1:]):
            if line.strip():
                record = _parse(line)
                if record is not None:
                    yield record
        if len(carry) > window:  # one line longer than the window: not a record of ours
            carry = b""
    if pos == 0 and carry.strip():
        record = _parse(carry)
        if record is not None:
            yield record


class RunAudit:
    """The records of one run: adds ``run_id`` and a gap-free ``seq`` to each, and redacts
    every record with the run's :class:`Redactor`."""

    def __init__(self, log: AuditLog, run_id: str, redactor: Redactor | None = None):
        self.log = log
        """The log written to."""
        self.run_id = run_id
        """The run."""
        self.redactor = redactor or _DEFAULT
        """Applied to every record of the run (its secrets, its secret parameter names)."""
        self.seq = 0
        """Sequence number of the last record."""

    def write(self, record_type: str, /, **fields: Any) -> None:
        """Append a record of type ``record_type`` (raises AuditError).

        ``seq`` counts records written: a record that could not be written takes no number."""
        seq = self.seq + 1
        self.log.append(
            {**fields, "type": record_type, "run_id": self.run_id, "seq": seq}, redactor=self.redactor
        )
        self.seq = seq
