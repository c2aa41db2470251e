"""Renewed but not reloaded: compare the stored certificate with the one served.

An endpoint may say where its certificate is stored (``stored: {path: ...}``, a
file on its SSH host, read over SFTP; or ``stored: {secret: ns/name}``, a
Kubernetes TLS secret read with ``kubectl`` on the SSH target). Per backend that
serves another leaf:

- the stored leaf is newer and valid: ``served_not_stored`` (runbook
  ``nginx-reload``), and every finding about the served leaf that serving the stored
  one clears recommends the reload too (one incident, one recommendation);
- it is no better (older, not valid now, without the name): ``stored_outdated``;
- it cannot be read: ``stored_unreadable`` (critical for a changed SSH host key).

Usage (``certpager check`` and the TUI do this in :func:`certpager.check.monitor.check_full`,
reading while the probe runs, within the endpoint's deadline)::

    read = await read_stored(endpoint, deadline=loop.time() + endpoint.timeout)
    report = comparison_of(endpoint, report, read).apply(report)

or ``await compare_stored(endpoint, report)`` for both steps. Nothing here raises;
a failure to read is :attr:`StoredComparison.error` and a finding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import re
import shlex
from dataclasses import dataclass, replace

from certpager.config import Endpoint
from certpager.errors import CertpagerError, HostKeyError, SSHConnectError, SSHError
from certpager.errors import StoredCertError as StoredCertError
from certpager.probe.analysis import parse_cert, reload_verdict, renewed_on_disk
from certpager.probe.engine import with_backends, with_findings
from certpager.probe.findings import make
from certpager.probe.model import CertInfo, EndpointReport, Finding, Severity, StoredFacts
from certpager.ssh import CommandRunner, RunnerFactory, runner_for

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)
MAX_STORED_BYTES = 1 << 20
"""Largest stored file read (a certificate chain is a few KiB)."""


UNREADABLE_KINDS = (
    "host_key_changed",
    "host_key_unknown",
    "timeout",
    "ssh",
    "path",
    "not_certificate",
    "no_ssh",
    "kubectl",
    "unreadable",
)
"""Why a stored certificate could not be read: the SSH host key changed (critical: maybe an
attack) or is not known yet, the SSH host did not answer in time, SSH failed otherwise
(refused, login, SFTP), the path is wrong (missing, not readable, too large), the file holds
no certificate, the endpoint has no ssh target, ``kubectl`` failed, anything else."""


def first_certificate(data: bytes, where: str) -> CertInfo:
    """Parse the first certificate (the leaf) of a PEM file or chain.

    Raises:
        StoredCertError: no certificate, or it cannot be parsed.
    """
    match = _PEM_CERT.search(data)
    if match is None:
        if data[:1] == b"\x30":  # DER
            der = data
        else:
            raise StoredCertError(f"{where}: no PEM certificate in the file", kind="not_certificate")
    else:
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", match.group(1)), validate=True)
        except ValueError:
            raise StoredCertError(
                f"{where}: the PEM certificate is not valid base64", kind="not_certificate"
            ) from None
    try:
        return parse_cert(der)
    except Exception as exc:  # parse_cert raises its own CertParseError (a ValueError)
        raise StoredCertError(f"{where}: {exc}", kind="not_certificate") from None


def stored_location(endpoint: Endpoint) -> str:
    """``user@host:/path`` / ``secret ns/name`` for messages."""
    stored = endpoint.stored
    if stored is None:
        return ""
    host = endpoint.ssh.host if endpoint.ssh else "?"
    if endpoint.ssh is not None and endpoint.ssh.user:
        host = f"{endpoint.ssh.user}@{host}"
    if stored.kind == "file":
        return f"{host}:{stored.path}"
    return f"secret {stored.namespace}/{stored.secret} (kubectl on {host})"


_CANNOT_READ = "cannot read the stored certificate: "


def _ssh_kind(exc: SSHError) -> str:
    """The :data:`UNREADABLE_KINDS` entry of an SSH failure."""
    if isinstance(exc, HostKeyError):
        return "host_key_changed" if exc.changed else "host_key_unknown"
    text = str(exc)
    if isinstance(exc, SSHConnectError):
        return "timeout" if "timed out" in text else "ssh"
    if any(words in text for words in ("no such file", "permission denied", "larger than")):
        return "path"
    return "ssh"


async def read_stored_cert(
    endpoint: Endpoint, runner: CommandRunner, *, kubectl: str = "kubectl"
) -> CertInfo:
    """Read and parse the endpoint's stored leaf certificate through ``runner``.

    Raises:
        StoredCertError: not configured, unreadable or unparseable (the message says which,
            :attr:`StoredCertError.kind` classifies it).
    """
    stored = endpoint.stored
    where = stored_location(endpoint)
    if stored is None:
        raise StoredCertError(f"endpoint {endpoint.name} has no stored certificate configured")
    if stored.kind == "file":
        assert stored.path is not None
        try:
            data = await runner.read_file(stored.path, max_bytes=MAX_STORED_BYTES)
        except SSHError as exc:
            raise StoredCertError(f"{_CANNOT_READ}{exc}", kind=_ssh_kind(exc)) from None
        return first_certificate(data, where)
    assert stored.secret is not None
    command = shlex.join(
        [
            kubectl,
            "get",
            "secret",
            "-n",
            stored.namespace or "default",
            "-o",
            r"jsonpath={.data.tls\.crt}",
            "--",
            stored.secret,
        ]
    )
    lines: list[str] = []
    try:
        result = await runner.run(
            command,
            timeout=30.0,
            on_output=lambda stream, line: lines.append(line) if stream == "stdout" else None,
        )
    except SSHError as exc:
        raise StoredCertError(f"{_CANNOT_READ}{exc}", kind=_ssh_kind(exc)) from None
    if not result.ok:
        raise StoredCertError(f"{where}: kubectl get secret failed ({result.exit_status})", kind="kubectl")
    try:
        data = base64.b64decode("".join(lines).strip(), validate=True)
    except ValueError:
        raise StoredCertError(f"{where}: tls.crt is not base64", kind="not_certificate") from None
    return first_certificate(data, where)


@dataclass(frozen=True)
class StoredComparison:
    """Stored leaf vs the leaves served, for one endpoint."""

    endpoint: str
    """Endpoint name."""
    location: str
    """Where the stored certificate lives (``user@host:/path``), empty when not configured."""
    stored: CertInfo | None
    """The stored leaf, when it could be read."""
    served: tuple[tuple[str, CertInfo], ...]
    """``(backend, leaf)`` for every backend that completed a handshake."""
    differing: tuple[str, ...]
    """Backends serving a leaf other than the stored one."""
    finding: Finding | None
    """The worst of :attr:`findings` (None when the stored leaf is the one served)."""
    error: str | None = None
    """Why nothing could be compared (None when compared or not configured)."""
    error_kind: str | None = None
    """Why, as one of :data:`UNREADABLE_KINDS` (None when compared or not configured)."""
    findings: tuple[Finding, ...] = ()
    """``served_not_stored`` (a newer, valid leaf on disk: reload), ``stored_outdated`` (the
    leaf on disk is no better: do not reload) or ``stored_unreadable`` (not compared)."""
    cleared: tuple[tuple[str, frozenset[str]], ...] = ()
    """``(backend, codes)``: the findings about a backend's served leaf that loading the
    stored leaf clears (see :func:`certpager.probe.analysis.reload_verdict`)."""

    @property
    def configured(self) -> bool:
        """Whether the endpoint has a stored certificate configured."""
        return bool(self.location)

    def apply(self, report: EndpointReport) -> EndpointReport:
        """``report`` with this comparison in it: its findings added, the ``stored`` fact,
        and the advice of every finding a reload clears turned to the reload."""
        if not self.configured:
            return report
        facts = replace(report.deep, stored=stored_facts(self))
        cleared = dict(self.cleared)
        if not cleared or self.stored is None:
            return with_findings(report, self.findings, facts)
        leaves = dict(self.served)
        backends = []
        for b in report.backends:
            label = b.handshake.label
            if label in cleared and label in leaves:
                findings = renewed_on_disk(
                    b.findings, leaves[label], self.stored, cleared[label], report.checked_at, self.location
                )
                b = replace(b, findings=findings)
            backends.append(b)
        return with_backends(report, backends, self.findings, facts)


def stored_facts(comparison: StoredComparison) -> StoredFacts:
    """The served-vs-stored comparison as the report's ``stored`` fact (JSON and the detail screen)."""
    if comparison.error is not None:
        return StoredFacts(
            comparison.location, "not compared", error=comparison.error, reason=comparison.error_kind
        )
    codes = {f.code for f in comparison.findings}
    if "served_not_stored" in codes:
        state = "differs (renewed but not reloaded)"
    elif "stored_outdated" in codes:
        state = "differs (the stored one is no better: do not reload)"
    else:
        state = "same as served"
    return StoredFacts(
        comparison.location, state, cert=comparison.stored, differing_backends=comparison.differing
    )


def _when(cert: CertInfo) -> str:
    return f"{cert.not_after:%Y-%m-%d %H:%M}Z"


def served_leaves(report: EndpointReport) -> list[tuple[str, CertInfo]]:
    """``(backend label, leaf)`` of every backend that completed a handshake."""
    out: list[tuple[str, CertInfo]] = []
    for backend in report.backends:
        if backend.handshake.ok and backend.analysis is not None and backend.analysis.leaf is not None:
            out.append((backend.handshake.label, backend.analysis.leaf))
    return out


def _leaf_words(label: str, leaf: CertInfo, stored: CertInfo, location: str) -> str:
    return (
        f"served certificate differs from the stored one ({location}): {label} serves serial "
        f"{leaf.serial} (sha256 {leaf.sha256[:16]}…, notAfter {_when(leaf)}), stored is serial "
        f"{stored.serial} (sha256 {stored.sha256[:16]}…, notAfter {_when(stored)}"
    )


def compare(endpoint: Endpoint, report: EndpointReport, stored: CertInfo) -> StoredComparison:
    """Compare an already-read stored leaf with the report (pure).

    Per backend that serves another leaf: when the stored leaf is newer and valid (a
    renewal that was not loaded), ``served_not_stored`` recommends the reload and the
    findings about the served leaf that the reload clears are listed in
    :attr:`StoredComparison.cleared`; when it is older, not valid now or lacks the name,
    ``stored_outdated`` says so and that a reload would make things worse.
    """
    served = served_leaves(report)
    location = stored_location(endpoint)
    differing = [(label, leaf) for label, leaf in served if leaf.sha256 != stored.sha256]
    now = report.checked_at
    better: list[tuple[str, CertInfo]] = []
    worse: list[tuple[str, CertInfo, str]] = []
    cleared: list[tuple[str, frozenset[str]]] = []
    for label, leaf in differing:
        codes, why = reload_verdict(leaf, stored, now, endpoint.thresholds, endpoint.verify_name)
        if why is None:
            better.append((label, leaf))
            cleared.append((label, codes))
        else:
            worse.append((label, leaf, why))
    everyone = {b.handshake.label for b in report.backends}

    def seen_on(labels: list[str]) -> tuple[str, ...]:
        """Backends named as the engine names them: none when every backend is concerned."""
        return () if set(labels) >= everyone or len(everyone) <= 1 else tuple(labels)

    findings: list[Finding] = []
    if better:
        label, leaf = better[0]
        message = (
            _leaf_words(label, leaf, stored, location)
            + ", newer). Renewed but not reloaded: run the nginx-reload runbook."
        )
        if len(better) > 1:
            message += f" {len(better)} of {len(served)} backends serve the old certificate."
        findings.append(make("served_not_stored", message, backends=seen_on([label for label, _ in better])))
    if worse:
        label, leaf, why = worse[0]
        message = (
            _leaf_words(label, leaf, stored, location)
            + f"). The stored one is {why}: reloading would make things worse."
        )
        if len(worse) > 1:
            message += f" {len(worse)} of {len(served)} backends differ this way."
        findings.append(make("stored_outdated", message, backends=seen_on([label for label, _, _ in worse])))
    return StoredComparison(
        endpoint=endpoint.name,
        location=location,
        stored=stored,
        served=tuple(served),
        differing=tuple(label for label, _ in differing),
        finding=findings[0] if findings else None,
        findings=tuple(findings),
        cleared=tuple(cleared),
    )


_UNREADABLE_HINTS = {
    "host_key_changed": (
        "Do not trust the new key blindly: this may be a man-in-the-middle attack, or the host "
        "was re-installed. Check the new fingerprint out of band (on the host: ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub); only if it matches, remove the old entry "
        "(ssh-keygen -R HOST) and add the new one to the endpoint's known_hosts."
    ),
    "host_key_unknown": (
        "Add the host key to the endpoint's known_hosts: fetch it with ssh-keyscan -p PORT HOST, "
        "compare its fingerprint (ssh-keygen -lf) with the one shown on the host itself "
        "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then append the line."
    ),
    "timeout": (
        "The SSH host did not answer within the endpoint's timeout: check that sshd runs on "
        "that host and port and that no firewall drops the connection (or raise timeout)."
    ),
    "ssh": (
        "Check the endpoint's ssh settings (host, port, user, identity_files) and that sshd "
        "accepts that key and offers SFTP."
    ),
    "path": (
        "Check stored.path: it must name the certificate file the server loads (e.g. certbot's "
        "live/<name>/fullchain.pem), readable by the SSH user."
    ),
    "not_certificate": (
        "Check stored.path: it must name a PEM certificate (or chain) file, not a key or a config file."
    ),
    "no_ssh": "Give the endpoint an ssh target (host, user, known_hosts) to read stored.path on.",
    "kubectl": (
        "Check that kubectl works on the SSH target and that the secret exists: "
        "kubectl get secret -n NAMESPACE NAME."
    ),
}


def unreadable(endpoint: Endpoint, error: str, kind: str) -> Finding:
    """The ``stored_unreadable`` finding: critical for a changed SSH host key, else warning."""
    where = stored_location(endpoint)
    reason = " ".join(error.split())  # one line, whatever the SSH layer wrote
    reason = reason.removeprefix(_CANNOT_READ)
    severity = Severity.CRITICAL if kind == "host_key_changed" else Severity.WARNING
    message = (
        f"could not read the stored certificate ({where}): {reason}. The served certificate "
        "was not compared with it: a renewal that was not reloaded would go unnoticed"
    )
    return make(
        "stored_unreadable",
        message,
        severity=severity,
        hint=_UNREADABLE_HINTS.get(kind),
    )


async def read_stored(
    endpoint: Endpoint,
    *,
    runner: CommandRunner | None = None,
    runner_factory: RunnerFactory | None = None,
    deadline: float,
) -> CertInfo | StoredCertError:
    """Read the endpoint's stored leaf, all done by ``deadline`` (loop time). Never raises:
    a failure is returned as a :class:`StoredCertError` (its ``kind`` says why).

    The SSH connect timeout is capped by what is left of the deadline; a connection
    this opens is closed within the deadline too.
    """
    loop = asyncio.get_running_loop()

    def left() -> float:
        return max(deadline - loop.time(), 0.0)

    if endpoint.stored is None:
        return StoredCertError(f"endpoint {endpoint.name} has no stored certificate configured")
    if runner is None and endpoint.ssh is None:
        return StoredCertError(
            f"endpoint {endpoint.name} says where its certificate is stored but has no ssh target to read it",
            kind="no_ssh",
        )
    own = runner is None
    budget = left()
    if runner is None:
        assert endpoint.ssh is not None
        target = endpoint.ssh
        if target.connect_timeout > budget - CONNECT_MARGIN:
            # The runner's own timeout fires first and says "timed out" in its words.
            capped = math.floor((budget - CONNECT_MARGIN) * 10) / 10  # "timed out after 2.8 s"
            target = replace(target, connect_timeout=max(capped, 0.1))
        runner = (runner_factory or runner_for)(target)
    try:
        try:
            return await asyncio.wait_for(read_stored_cert(endpoint, runner), budget)
        except TimeoutError:
            return StoredCertError(
                f"timed out: no answer over SSH within the check's deadline ({budget:.1f} s)",
                kind="timeout",
            )
        except StoredCertError as exc:
            return exc
        except CertpagerError as exc:
            return StoredCertError(str(exc))
        except Exception as exc:  # a runner's bug must not take the probe's report with it
            return StoredCertError(f"internal error: {type(exc).__name__}: {exc}")
    finally:
        if own:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.close(), max(left(), CLOSE_GRACE))


CONNECT_MARGIN = 0.1
"""Seconds before the deadline at which the SSH connect gives up on its own."""
CLOSE_GRACE = 0.25
"""Longest wait for an SSH connection to close once the deadline has passed."""


def comparison_of(
    endpoint: Endpoint, report: EndpointReport, read: CertInfo | StoredCertError
) -> StoredComparison:
    """The comparison for what :func:`read_stored` returned (pure)."""
    if endpoint.stored is None:
        return StoredComparison(endpoint.name, "", None, tuple(served_leaves(report)), (), None)
    if isinstance(read, StoredCertError):
        finding = unreadable(endpoint, str(read), read.kind)
        return StoredComparison(
            endpoint.name,
            stored_location(endpoint),
            None,
            tuple(served_leaves(report)),
            (),
            finding,
            str(read),
            read.kind,
            (finding,),
        )
    return compare(endpoint, report, read)


async def compare_stored(
    endpoint: Endpoint,
    report: EndpointReport,
    *,
    runner: CommandRunner | None = None,
    runner_factory: RunnerFactory | None = None,
    timeout: float = 20.0,
) -> StoredComparison:
    """Read the endpoint's stored certificate and compare it with what ``report`` saw served.

    Args:
        endpoint: the endpoint (``stored`` and ``ssh`` come from the config).
        report: a fresh :func:`certpager.probe.check_endpoint` report of it.
        runner: an open runner to the SSH target to reuse (not closed here).
        runner_factory: builds a runner when ``runner`` is None (default: real SSH).
        timeout: overall seconds for connecting and reading.

    Returns:
        A :class:`StoredComparison`; never raises (a failure to read is ``.error`` and a
        ``stored_unreadable`` finding).
    """
    if endpoint.stored is None:
        return comparison_of(endpoint, report, StoredCertError("not configured"))
    deadline = asyncio.get_running_loop().time() + timeout
    read = await read_stored(endpoint, runner=runner, runner_factory=runner_factory, deadline=deadline)
    return comparison_of(endpoint, report, read)
