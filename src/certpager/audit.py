"""The append-only audit log: one JSON object per line, written before each action.

Location: ``$CERTPAGER_AUDIT_LOG`` if set, else ``$XDG_DATA_HOME/certpager/audit.jsonl``
(default ``~/.local/share/certpager/audit.jsonl``). The directory is created 0700
and the file 0600 with ``O_APPEND|O_CREAT|O_NOFOLLOW``; a log that is a symlink,
owned by another user or writable by group/others is refused.

Each append takes an exclusive ``flock``, writes the whole line with one
``write()``, and ``fsync``\\s before returning (the directory too when the file was
just created). A failed append raises :class:`~certpager.errors.AuditError`,
and the engine stops before the next step: the log fails closed.

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

Readers skip (and report) a torn last line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import json
import os
import re
import socket
import stat
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certpager.errors import AuditError

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
    }
)
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
        or re.search(r"(^|_)(api|private|access|client|tls)_?key(_|$)", joined)
    )


_KEYVAL = re.compile(
    r"""(?<![\w.-])(?P<key>[A-Za-z_][\w.-]{0,63})(?P<q1>["']?)(?P<sep>[ \t]{0,8}[:=][ \t]{0,8})"""
    r"""(?P<q2>["']?)(?P<value>[^\s"',;}]+)"""
)
_FLAG = re.compile(
    r"(?<![\w-])(?P<flag>--?[\w-]{0,40}(?:token|password|passwd|secret|api-?key|passphrase)[\w-]{0,40})"
    r"(?P<sep>=|[ \t]{1,8})(?P<value>[^\s-]\S*)",
    re.IGNORECASE,
)
_AUTH = re.compile(r"(?i)(authorization\s*:\s*(?:bearer|basic|token|digest)?\s*)(\S+)")
_URL_CREDS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@]{1,256}:)([^@\s/]{1,256})(@)")
_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def _keyval(match: re.Match[str]) -> str:
    key = match.group("key")
    if not is_secret_key(key):
        return match.group(0)
    return f"{key}{match.group('q1')}{match.group('sep')}{match.group('q2')}{REDACTED}"


def _flag(match: re.Match[str]) -> str:
    if not is_secret_key(match.group("flag")):
        return match.group(0)
    return match.group("flag") + match.group("sep") + REDACTED


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace secrets in ``text``: private keys, ``*token*=``/``*password*:``-style
    values, ``--token X`` flags, ``Authorization:`` headers, passwords in URLs,
    and the exact ``secrets`` given."""
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if "PRIVATE KEY" in text:
        text = _PEM_BLOCK.sub(lambda m: f"[REDACTED {m.group(1)}]", text)
    text = _AUTH.sub(lambda m: m.group(1) + REDACTED, text)
    text = _URL_CREDS.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    text = _FLAG.sub(_flag, text)
    return _KEYVAL.sub(_keyval, text)


def redact_params(params: dict[str, str], secret_names: Iterable[str] = ()) -> dict[str, str]:
    """Redact parameter values whose name looks secret or that are declared secret."""
    names = set(secret_names)
    out: dict[str, str] = {}
    for key, value in params.items():
        if key in names or is_secret_key(key):
            out[key] = REDACTED
        else:
            out[key] = redact(value)
    return out


class LineRedactor:
    """Redacts a stream line by line, remembering when it is inside a private key block."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = tuple(secrets)
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
            return line[: begin.start()] + f"[REDACTED {begin.group(1)}]"
        return redact(line, self.secrets)


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


class AuditLog:
    """Append-only JSON-lines audit log (see the module docstring)."""

    def __init__(self, path: Path | None = None):
        """Use ``path`` (default :func:`default_audit_path`)."""
        self.path = Path(path) if path is not None else default_audit_path()
        """The log file."""

    def _check_existing(self) -> bool:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise AuditError(f"audit log {self.path} is a symbolic link; refusing to write through it")
        if not stat.S_ISREG(st.st_mode):
            raise AuditError(f"audit log {self.path} is not a regular file")
        if st.st_uid != os.getuid():
            raise AuditError(
                f"audit log {self.path} is owned by uid {st.st_uid}, not by you; refusing to use it"
            )
        if st.st_mode & 0o022:
            raise AuditError(
                f"audit log {self.path} is writable by group or others (mode {st.st_mode & 0o777:o}); "
                f"fix it with: chmod 600 {self.path}"
            )
        return True

    def _ensure_dir(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(parent)
        except OSError as exc:
            raise AuditError(f"cannot create the audit directory {parent}: {exc.strerror}") from None
        if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
            raise AuditError(
                f"the audit directory {parent} is writable by everyone; put the log elsewhere "
                "(CERTPAGER_AUDIT_LOG)"
            )

    def check(self) -> None:
        """Make sure the log can be written safely (creates the directory); raise AuditError."""
        self._ensure_dir()
        self._check_existing()

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (flock, one write, fsync).

        Raises:
            AuditError: the record could not be written; nothing else may run.
        """
        record = {"v": AUDIT_VERSION, "ts": now_iso(), **record}
        try:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit record cannot be encoded: {exc}") from None
        data = line.encode("utf-8", errors="replace")
        self._ensure_dir()
        existed = self._check_existing()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AuditError(
                    f"audit log {self.path} is a symbolic link; refusing to write through it"
                ) from None
            raise AuditError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if not existed:
            self._fsync_dir()

    def _fsync_dir(self) -> None:
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def read(self) -> AuditRead:
        """All complete records; torn or corrupt lines are skipped and listed."""
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
            try:
                value = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                torn.append((number, line[:200].decode("utf-8", "replace")))
                continue
            if isinstance(value, dict):
                records.append(value)
            else:
                torn.append((number, line[:200].decode("utf-8", "replace")))
        return AuditRead(records, torn)

    def unfinished(self, is_active: Callable[[dict[str, Any]], bool] | None = None) -> list[UnfinishedRun]:
        """Runs that opened and never closed, not yet reported, and not running now.

        Args:
            is_active: ``is_active(run_start_record)`` is True while that run may still be
                in progress (its lock is held, its process is alive); such runs are skipped
                (:func:`certpager.runbook.lock.run_is_active`).
        """
        runs: dict[str, dict[str, Any]] = {}
        for rec in self.read().records:
            run_id = rec.get("run_id")
            if not isinstance(run_id, str):
                continue
            kind = rec.get("type")
            if kind == "run_start":
                runs[run_id] = {"start": rec, "open": {}, "closed": False}
            elif run_id not in runs:
                continue
            elif kind == "step_intent":
                runs[run_id]["open"][rec.get("step_id")] = rec.get("command")
            elif kind == "step_result":
                runs[run_id]["open"].pop(rec.get("step_id"), None)
            elif kind in ("run_end", "outcome_unknown"):
                runs[run_id]["closed"] = True
        out: list[UnfinishedRun] = []
        for run_id, info in runs.items():
            if info["closed"]:
                continue
            start = info["start"]
            endpoint = str(start.get("endpoint", "?"))
            if is_active is not None and is_active(start):
                continue
            open_steps = tuple(str(s) for s in info["open"])
            last = None
            if open_steps:
                last = str(list(info["open"].values())[-1])
            out.append(
                UnfinishedRun(
                    run_id=run_id,
                    endpoint=endpoint,
                    runbook=str(start.get("runbook", "?")),
                    started=str(start.get("ts", "?")),
                    pid=start.get("pid") if isinstance(start.get("pid"), int) else None,
                    open_steps=open_steps,
                    last_command=last,
                )
            )
        return out

    def acknowledge(self, run: UnfinishedRun) -> None:
        """Record that ``run`` was reported as "outcome unknown" (so it is reported once)."""
        self.append(
            {
                "type": "outcome_unknown",
                "run_id": run.run_id,
                "endpoint": run.endpoint,
                "runbook": run.runbook,
                "open_steps": list(run.open_steps),
                "reported_by_pid": os.getpid(),
            }
        )


class RunAudit:
    """The records of one run: adds ``run_id`` and a gap-free ``seq`` to each."""

    def __init__(self, log: AuditLog, run_id: str):
        self.log = log
        """The log written to."""
        self.run_id = run_id
        """The run."""
        self.seq = 0
        """Sequence number of the last record."""

    def write(self, record_type: str, /, **fields: Any) -> None:
        """Append a record of type ``record_type`` (raises AuditError)."""
        self.seq += 1
        self.log.append({**fields, "type": record_type, "run_id": self.run_id, "seq": self.seq})
