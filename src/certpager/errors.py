"""The one exception tree of the certpager core.

Every error a user can cause (bad config, bad runbook, bad CLI argument) is a
:class:`UserError`: it carries one clear message naming what is wrong and where,
and the CLI turns it into exit code 3 without a traceback.

- ``CertpagerError``: base of everything raised on purpose by certpager.
  - ``UserError``: bad input; the message is shown as is.
    - ``ConfigError``: the endpoint config file is wrong (file, line, key).
    - ``RunbookError``: a runbook file or its parameters are wrong.
    - ``TargetError``: a ``HOST[:PORT][@SNI]`` argument is malformed.
  - ``SSHError``: an SSH connection or command could not be run.
    - ``HostKeyError``: the host key is unknown or changed (never trusted silently).
  - ``RunLockedError``: another run holds the endpoint's lock.
  - ``OutputError``: the report could not be written (stdout closed, pipe closed, disk
    full): exit 3, UNKNOWN.
"""

from __future__ import annotations


class CertpagerError(Exception):
    """Base of every error certpager raises on purpose."""


class UserError(CertpagerError):
    """Input from the user is wrong; the message says what and where."""


class LocatedError(UserError):
    """A mistake at a known place in a YAML file.

    Rendered as ``file:line: key: message``.
    """

    def __init__(self, message: str, *, file: str, line: int | None = None, key: str | None = None):
        self.message = message
        """What is wrong, in plain words."""
        self.file = file
        """The file that holds the mistake."""
        self.line = line
        """1-based line number, when known."""
        self.key = key
        """Dotted path of the offending key, when known."""
        super().__init__(self.render())

    def render(self) -> str:
        """Return ``file:line: key: message``."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(LocatedError):
    """The endpoint configuration is invalid."""


class RunbookError(LocatedError):
    """A runbook file, or a parameter given to it, is invalid."""


class TargetError(UserError):
    """A ``HOST[:PORT][@SNI]`` target is malformed."""


class SSHError(CertpagerError):
    """An SSH connection or remote command could not be run."""


class HostKeyError(SSHError):
    """The SSH host key is unknown or does not match known_hosts."""

    def __init__(self, message: str, *, host: str, port: int, fingerprint: str | None, changed: bool = False):
        self.host = host
        """The host whose key was refused."""
        self.port = port
        """The SSH port."""
        self.fingerprint = fingerprint
        """SHA256 fingerprint of the key the server offered, if it got that far."""
        self.changed = changed
        """True when known_hosts has another key for this host (possibly an attack), False when
        the host is simply not known yet."""
        super().__init__(message)


class RunLockedError(CertpagerError):
    """A runbook run is already active for this endpoint."""


class AuditError(CertpagerError):
    """The audit log cannot be written safely; certpager stops before the next step."""


class SSHConnectError(SSHError):
    """The SSH connection could not be established (refused, timeout, auth, DNS, config)."""

    def __init__(self, message: str, *, host: str, port: int | None, phase: str):
        self.host = host
        """The host certpager tried to reach."""
        self.port = port
        """The SSH port, when known."""
        self.phase = phase
        """Where it failed: ``config``, ``resolve``, ``connect``, ``host_key``, ``auth``, ``shell``."""
        super().__init__(message)


class OutputError(CertpagerError):
    """What certpager had to say could not be written (standard output closed, the reader
    of the pipe gone, the disk full). The command exits 3 (UNKNOWN): nobody saw the verdict."""

    def __init__(self, message: str, *, reason: str | None = None):
        self.reason = reason or message
        """Why the write failed, in words (``No space left on device``)."""
        super().__init__(message)
