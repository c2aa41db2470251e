"""The one exception tree of certpager: every exception class the package defines lives here.

Every error a user can cause (bad config, bad runbook, bad CLI argument) is a
:class:`UserError`: it carries one clear message naming what is wrong and where,
and the CLI turns it into exit code 3 without a traceback.

The modules that raise these classes re-export them (``from certpager.probe.aia import
AiaError`` keeps working); ``tests/unit/test_errors_tree.py`` checks that no other module
defines an exception class.

- ``CertpagerError``: base of everything raised on purpose by certpager.
  - ``UserError``: bad input; the message is shown as is.
    - ``LocatedError``: a mistake at ``file:line: key``.
      - ``ConfigError``: the endpoint config file is wrong (file, line, key).
      - ``RunbookError``: a runbook file or its parameters are wrong.
    - ``TargetError``: a ``HOST[:PORT][@SNI]`` argument is malformed.
    - ``InputFileError``: an input file cannot be used (``certpager.inputs``).
    - ``TrustStoreError``: a CA bundle cannot be read (``certpager.probe.trust``).
    - ``LockDirError``: the run lock directory cannot be used (``certpager.runbook.lock``).
    - ``HeadlessRefusedError``: no terminal and a confirmation is unanswered
      (``certpager.runbook.cli``).
    - ``AuditLocationError`` (also an ``AuditError``): the audit log's place is unsafe.
  - ``SSHError``: an SSH connection or command could not be run.
    - ``HostKeyError``: the host key is unknown or changed (never trusted silently).
    - ``SSHConnectError``: the connection could not be established.
  - ``RunLockedError``: another run holds the endpoint's lock.
  - ``AuditError``: the audit log cannot be written safely.
  - ``OutputError``: the report could not be written (stdout closed, pipe closed, disk
    full): exit 3, UNKNOWN.
  - ``StoredCertError``: the stored certificate cannot be read (``certpager.check.stored``).
  - ``AlertmanagerError``: Alertmanager could not be asked or answered nonsense
    (``certpager.fleet.alertmanager``); shown as one notice, never stops a check or a run.
  - ``FleetApiError``: one request to Alertmanager or Prometheus failed (``certpager.fleet.api``);
    the callers turn it into ``AlertmanagerError`` or ``PrometheusError``.
  - ``LabError``: the demo lab could not be started (``certpager.demo.process``).
  - ``RequestHeadError``: an HTTP request head is malformed (``certpager.httpwire``).
  - ``Terminated``: SIGTERM/SIGHUP arrived during ``certpager demo`` (``certpager.demo.cli``).
  - Values rejected inside a parser, also ``ValueError`` (so ``except ValueError`` still
    catches them); the caller adds where:
    - ``InputValueError``: a value is not acceptable (``certpager.inputs``).
    - ``TemplateError``: a runbook template string is malformed (``certpager.runbook.template``).
    - ``CertParseError``: a certificate sent by the server cannot be parsed
      (``certpager.probe.analysis``).
  - Probe failures, caught inside the probe and reported as findings, never shown raw:
    - ``ContextError``: the client TLS context could not be built.
    - ``ResolveError``: name resolution failed or timed out.
    - ``PeerClosed``: the peer closed or reset the TCP connection.
    - ``HttpFailure``: an HTTP exchange produced no response (``certpager.probe.http``).
    - ``AiaError``: an AIA URL could not be fetched (``certpager.probe.aia``).
      - ``AiaRefused``: the AIA URL was refused by policy.
  - Internal control flow, never leaving the module that raises it:
    - ``_Cancelled``: the operator cancelled while the runbook engine waited.
    - ``_TooDeepError``: a YAML document nests too deep (``certpager.yamlfile``).
"""

from __future__ import annotations

import signal
from typing import Literal

from certpager.escape import printable


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


class StoredCertError(CertpagerError):
    """The stored certificate cannot be read or parsed."""

    def __init__(self, message: str, *, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind
        """Why, as one of :data:`certpager.check.stored.UNREADABLE_KINDS`."""


class AuditLocationError(AuditError, UserError):
    """The audit log's file or directory is unsafe or unusable (bad input: exit 3)."""


class InputFileError(UserError):
    """An input file cannot be used; :attr:`reason` says why (the path is in the message)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        """The file."""
        self.reason = reason
        """Why, in plain words, without the path."""
        super().__init__(f"{printable(path)}: {reason}")


class InputValueError(CertpagerError, ValueError):
    """A value is not acceptable; the message says why (the caller adds where)."""


class TrustStoreError(UserError):
    """A CA bundle cannot be read or holds no certificate (bad input: exit 3)."""


class LockDirError(UserError):
    """The run lock directory cannot be created or used (exit 3: fix the setting)."""


class HeadlessRefusedError(UserError):
    """No terminal and not every confirmation is answered by ``--yes``/``--confirm``."""


class TemplateError(CertpagerError, ValueError):
    """A template string is malformed (the message says how)."""


class CertParseError(CertpagerError, ValueError):
    """A certificate sent by the server cannot be parsed."""


class ContextError(CertpagerError):
    """The client context could not be built (e.g. unreadable client key)."""


class ResolveError(CertpagerError):
    """Name resolution failed or timed out."""


class PeerClosed(CertpagerError):
    """The peer closed or reset the TCP connection."""

    def __init__(self, reset: bool):
        self.reset = reset
        """True for a reset (RST), False for an orderly close."""
        super().__init__(self.describe("during the handshake"))

    def describe(self, when: str = "") -> str:
        """``the server reset/closed the connection`` plus ``when``."""
        verb = "reset" if self.reset else "closed"
        return f"the server {verb} the connection" + (f" {when}" if when else "")


FailureKind = Literal[
    "refused", "connect_timeout", "connect_failed", "timeout", "tls", "closed", "not_http", "too_large"
]
"""What went wrong in an HTTP exchange (:attr:`HttpFailure.kind`)."""


class HttpFailure(CertpagerError):
    """An HTTP exchange that did not produce a response, with the reason in words."""

    def __init__(self, kind: FailureKind, message: str):
        super().__init__(message)
        self.kind: FailureKind = kind
        """What went wrong, for callers that treat cases differently."""
        self.message = message
        """In plain words."""


class AiaError(CertpagerError):
    """The AIA URL could not be fetched or did not hold a certificate."""


class AiaRefused(AiaError):
    """The AIA URL leads to an address the policy does not let certpager fetch from."""


class NginxError(CertpagerError, RuntimeError):
    """nginx could not be found, its config is bad, or it did not start (the message says why)."""


class AlertmanagerError(CertpagerError):
    """Alertmanager could not be reached, was too slow, or answered something unusable
    (the message says which, in one line; certpager goes on without its alerts)."""


class LabError(CertpagerError):
    """The lab could not be started (the message says why and where its log is)."""


class RequestHeadError(CertpagerError):
    """An HTTP request head is malformed (:mod:`certpager.httpwire`); the message says what, in one line."""


class ExporterRequestError(CertpagerError):
    """A request to ``certpager exporter`` is refused; the message is the one line answered."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        """HTTP status answered (400 bad parameters, 404, 405, 408, 431...)."""
        super().__init__(message)


class FleetApiError(CertpagerError):
    """One exchange with a fleet API (Alertmanager, Prometheus) gave no usable answer: the
    reason in one line, without the URL (the caller names the service and the URL)."""


class PrometheusError(CertpagerError):
    """The Prometheus HTTP API could not be queried or gave an unusable answer (one line, why)."""


class Terminated(CertpagerError):
    """SIGTERM or SIGHUP arrived: stop the lab and exit."""

    def __init__(self, signum: int):
        self.signum = signum
        """The signal received."""
        super().__init__(signal.Signals(signum).name)


class _Cancelled(CertpagerError):
    """Internal: the operator cancelled while the runbook engine waited."""


class _TooDeepError(CertpagerError):
    """Internal: a YAML document nests deeper than allowed (at :attr:`line`)."""

    def __init__(self, line: int):
        self.line = line
