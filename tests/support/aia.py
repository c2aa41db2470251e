"""AIA (caIssuers) test plumbing shared by the deep-check and the output tests: a leaf that
names a loopback AIA URL served alone, the endpoint that probes it, its chain finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.pki import PKI, Issued

from certpager.config import Endpoint
from certpager.probe.model import EndpointReport, Finding

TIMEOUT = 2.0
"""Default probe timeout of :func:`aia_endpoint` (seconds)."""


def aia_url(port: int, path: str) -> str:
    """``http://127.0.0.1:PORT/PATH`` of a loopback AIA server."""
    return f"http://127.0.0.1:{port}{path}"


def leaf_only(pki: PKI, issuer: Issued, url: str | None, name: str) -> tuple[Path, Path]:
    """Chain and key files of an ``app.test`` leaf issued by ``issuer`` whose caIssuers
    URL is ``url`` (None: no AIA), served without its issuer."""
    leaf = issuer.leaf("app.test", aia_ca_issuers=url)
    return pki.write_chain(name, [leaf], key_of=leaf)


def aia_endpoint(port: int, root_file: object, *, timeout: float = TIMEOUT, **kw: Any) -> Endpoint:
    """The endpoint for ``app.test`` on loopback ``port``, trusting ``root_file``; only the
    chain and AIA checks run (``kw``: more Endpoint fields, e.g. ``aia_private``)."""
    return Endpoint(
        name="aia",
        host="127.0.0.1",
        port=port,
        sni="app.test",
        ca_file=str(root_file),
        check_protocols=False,
        check_no_sni=False,
        timeout=timeout,
        **kw,
    )


def chain_incomplete(report: EndpointReport) -> Finding:
    """The one ``chain_incomplete`` finding of ``report``."""
    (finding,) = [f for f in report.findings if f.code == "chain_incomplete"]
    return finding


__all__ = ["TIMEOUT", "aia_endpoint", "aia_url", "chain_incomplete", "leaf_only"]
