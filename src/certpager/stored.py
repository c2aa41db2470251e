"""Renewed but not reloaded: compare the stored certificate with the one served.

An endpoint may say where its certificate is stored (``stored: {path: ...}``, a
file on its SSH host, read over SFTP; or ``stored: {secret: ns/name}``, a
Kubernetes TLS secret read with ``kubectl`` on the SSH target). When the stored
leaf differs from the leaf a backend serves, :func:`compare_stored` reports a
``served_not_stored`` finding with both fingerprints and dates, whose runbook is
``nginx-reload``.

Usage (``certpager check``, the TUI)::

    report = await check_endpoint(endpoint)
    comparison = await compare_stored(endpoint, report)
    if comparison.finding:
        ...  # add it to the report's findings; comparison.error says why nothing was compared

The comparison never raises; a failure to read is :attr:`StoredComparison.error`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shlex
from dataclasses import dataclass

from certpager.config import Endpoint
from certpager.errors import CertpagerError, SSHError
from certpager.formats import format_seconds
from certpager.probe.analysis import parse_cert
from certpager.probe.findings import make
from certpager.probe.model import CertInfo, EndpointReport, Finding
from certpager.ssh import CommandRunner, RunnerFactory, runner_for

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)
MAX_STORED_BYTES = 1 << 20
"""Largest stored file read (a certificate chain is a few KiB)."""


class StoredCertError(CertpagerError):
    """The stored certificate cannot be read or parsed."""


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
            raise StoredCertError(f"{where}: no PEM certificate in the file")
    else:
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", match.group(1)), validate=True)
        except ValueError:
            raise StoredCertError(f"{where}: the PEM certificate is not valid base64") from None
    try:
        return parse_cert(der)
    except Exception as exc:  # parse_cert raises its own CertParseError (a ValueError)
        raise StoredCertError(f"{where}: {exc}") from None


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


async def read_stored_cert(
    endpoint: Endpoint, runner: CommandRunner, *, kubectl: str = "kubectl"
) -> CertInfo:
    """Read and parse the endpoint's stored leaf certificate through ``runner``.

    Raises:
        StoredCertError: not configured, unreadable or unparseable (the message says which).
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
            raise StoredCertError(f"cannot read the stored certificate: {exc}") from None
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
    result = await runner.run(
        command,
        timeout=30.0,
        on_output=lambda stream, line: lines.append(line) if stream == "stdout" else None,
    )
    if not result.ok:
        raise StoredCertError(f"{where}: kubectl get secret failed ({result.exit_status})")
    try:
        data = base64.b64decode("".join(lines).strip(), validate=True)
    except ValueError:
        raise StoredCertError(f"{where}: tls.crt is not base64") from None
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
    """``served_not_stored`` when any backend differs."""
    error: str | None = None
    """Why nothing could be compared (None when compared or not configured)."""

    @property
    def configured(self) -> bool:
        """Whether the endpoint has a stored certificate configured."""
        return bool(self.location)


def _when(cert: CertInfo) -> str:
    return f"{cert.not_after:%Y-%m-%d %H:%M}Z"


def served_leaves(report: EndpointReport) -> list[tuple[str, CertInfo]]:
    """``(backend label, leaf)`` of every backend that completed a handshake."""
    out: list[tuple[str, CertInfo]] = []
    for backend in report.backends:
        if backend.handshake.ok and backend.analysis is not None and backend.analysis.leaf is not None:
            out.append((backend.handshake.label, backend.analysis.leaf))
    return out


def compare(endpoint: Endpoint, report: EndpointReport, stored: CertInfo) -> StoredComparison:
    """Compare an already-read stored leaf with the report (pure)."""
    served = served_leaves(report)
    location = stored_location(endpoint)
    differing = [(label, leaf) for label, leaf in served if leaf.sha256 != stored.sha256]
    finding = None
    if differing:
        label, leaf = differing[0]
        newer = "newer" if stored.not_after > leaf.not_after else "older"
        message = (
            f"served certificate differs from the stored one ({location}): {label} serves serial "
            f"{leaf.serial} (sha256 {leaf.sha256[:16]}…, notAfter {_when(leaf)}), stored is serial "
            f"{stored.serial} (sha256 {stored.sha256[:16]}…, notAfter {_when(stored)}, {newer}). "
            "Renewed but not reloaded: run the nginx-reload runbook."
        )
        if len(differing) > 1:
            message += f" {len(differing)} of {len(served)} backends differ."
        finding = make("served_not_stored", message, backends=tuple(label for label, _ in differing))
    return StoredComparison(
        endpoint=endpoint.name,
        location=location,
        stored=stored,
        served=tuple(served),
        differing=tuple(label for label, _ in differing),
        finding=finding,
    )


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
        A :class:`StoredComparison`; never raises (errors go to ``.error``).
    """
    location = stored_location(endpoint)
    if endpoint.stored is None:
        return StoredComparison(endpoint.name, "", None, tuple(served_leaves(report)), (), None)

    def failed(message: str) -> StoredComparison:
        return StoredComparison(
            endpoint.name, location, None, tuple(served_leaves(report)), (), None, message
        )

    if runner is None and endpoint.ssh is None:
        return failed(
            f"endpoint {endpoint.name} says where its certificate is stored but has no ssh target to read it"
        )
    own = runner is None
    if runner is None:
        assert endpoint.ssh is not None
        runner = (runner_factory or runner_for)(endpoint.ssh)
    try:
        stored = await asyncio.wait_for(read_stored_cert(endpoint, runner), timeout)
    except TimeoutError:
        return failed(
            f"reading the stored certificate ({location}) took longer than {format_seconds(timeout)}"
        )
    except CertpagerError as exc:
        return failed(str(exc))
    finally:
        if own:
            with contextlib.suppress(Exception):
                await runner.close()
    return compare(endpoint, report, stored)
