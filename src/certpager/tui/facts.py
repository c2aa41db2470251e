"""The deeper checks' facts (``report.deep``, ``backend.deep``), chosen and worded for the detail screen.

``certpager check --json`` carries every fact; the detail screen shows the ones
an on-call engineer acts on, one line each, with a tone (``ok``, ``warning``,
``critical``, ``muted``). No Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certpager.probe.model import (
    BackendFacts,
    CheckFailed,
    ClientAuthHttp,
    EndpointFacts,
    HttpResult,
    NoSniResult,
    ProtocolsResult,
    StoredFacts,
)

if TYPE_CHECKING:
    from certpager.probe.aia import AiaResult
    from certpager.probe.http import HstsResult, RedirectResult

Tone = str
"""``ok``, ``warning``, ``critical`` or ``muted``."""

_OLD_PROTOCOLS = ("SSLv3", "TLSv1", "TLSv1.1")


@dataclass(frozen=True)
class Fact:
    """One line of the facts pane."""

    label: str
    """Short name (``HTTP``, ``HSTS``, ``protocols``...)."""
    value: str
    """What was found, in plain words."""
    tone: Tone = "muted"
    """How it should read."""


def flat(value: object) -> str:
    """Any value on one line: mappings as ``key value · key value``, lists comma-separated."""
    if isinstance(value, Mapping):
        return " · ".join(f"{str(k).replace('_', ' ')} {flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(flat(v) for v in value) or "none"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def protocols_fact(value: ProtocolsResult | Mapping[str, str]) -> Fact:
    """``accepts TLSv1.3, TLSv1 · refuses TLSv1.1 · not tested TLSv1.2``."""
    if isinstance(value, ProtocolsResult):
        if not value.checked:
            return Fact("protocols", "not checked (check_protocols is off)")
        value = value.versions
    groups: dict[str, list[str]] = {}
    order = ("accepted", "refused", "not_tested", "not_testable")
    for version, state in sorted(
        value.items(), key=lambda kv: order.index(kv[1]) if kv[1] in order else len(order)
    ):
        groups.setdefault(state, []).append(version)
    words = {
        "accepted": "accepts",
        "refused": "refuses",
        "not_tested": "not tested",
        "not_testable": "cannot test",
    }
    parts = [
        f"{words.get(state, state.replace('_', ' '))} {', '.join(versions)}"
        for state, versions in groups.items()
    ]
    old = [v for v in groups.get("accepted", []) if v in _OLD_PROTOCOLS]
    return Fact("protocols", " · ".join(parts), "warning" if old else "ok")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def redirect_fact(value: RedirectResult | CheckFailed) -> Fact:
    if isinstance(value, CheckFailed):
        return Fact("HTTP", value.detail or value.state)
    state = value.state
    if state == "redirects":
        return Fact(
            "HTTP", f"port {value.port} answers {_text(value.status)} → {_text(value.location)}", "ok"
        )
    detail = value.detail or state.replace("_", " ")
    if state == "closed":
        return Fact("HTTP", f"port {value.port} closed ({detail})")
    return Fact("HTTP", detail, "warning" if state == "no_redirect" else "muted")


def hsts_fact(value: HstsResult) -> Fact:
    state = value.state
    if state in ("ok", "short"):
        days = round(value.max_age / 86400, 2) if value.max_age is not None else None
        text = _text(value.header) + (f" ({days:g} days)" if days is not None else "")
        return Fact("HSTS", text, "ok" if state == "ok" else "warning")
    return Fact("HSTS", value.detail or state, "warning" if state == "missing" else "muted")


def no_sni_fact(value: NoSniResult) -> Fact:
    if value.state == "same":
        return Fact("without SNI", "the same certificate is sent")
    if value.state == "differs":
        cert = value.cert
        if cert is not None:
            return Fact(
                "without SNI",
                f"another certificate: {cert.subject}, expires {cert.not_after:%Y-%m-%dT%H:%M:%SZ}",
                "warning",
            )
        return Fact("without SNI", "another certificate is sent", "warning")
    return Fact("without SNI", f"{value.state}: {value.error}".rstrip(": "))


_MTLS_WORDS = {
    "optional": "optional: the server asks for a client certificate but completes the handshake without one",
    "required": "required: the server refuses a client without a certificate",
    "accepted": "required, and the configured client certificate is accepted",
    "rejected": "the server refuses the configured client certificate",
}


def mtls_fact(state: str, http: ClientAuthHttp | None = None) -> Fact | None:
    """One mTLS line: what the server asks of clients and what it did with ours.

    The accepted CA names are not repeated here: the ``client_cert_required`` finding
    states them (an empty list from the server reads "any CA"). ``http`` is the HTTPS
    answer that decided the verdict, folded in.
    """
    if state in ("", "not_requested"):
        return None
    text = _MTLS_WORDS.get(state, f"client certificate {state.replace('_', ' ')}")
    if http is not None:
        status, detail = _text(http.status), _text(http.detail)
        if status:
            text += f" (HTTPS answered {status}{f': {detail}' if detail else ''})"
        elif detail:
            text += f" (HTTPS check: {detail})"
    tone = "critical" if state == "rejected" else "muted"
    return Fact("mTLS", text, tone)


def aia_fact(value: AiaResult | CheckFailed) -> Fact:
    state = value.state
    detail = value.detail or ""
    if state == "completes_chain":
        return Fact(
            "AIA",
            detail
            or "fetching the issuer from the AIA URL completes the chain: browsers work, curl/Python/Java fail",
            "warning",
        )
    if state == "no_path":
        return Fact("AIA", detail or "even with the AIA certificate no trusted path exists", "critical")
    return Fact("AIA", detail or state.replace("_", " "))


def stored_fact(value: StoredFacts) -> Fact:
    """The stored certificate against the one served."""
    differs = "differs" in value.state
    line = f"{value.location}: {value.state}"
    cert = value.cert
    if cert is not None and value.error is None:
        line += (
            f" (serial {cert.serial} · sha256 {cert.sha256[:16]}… · "
            f"notAfter {cert.not_after:%Y-%m-%dT%H:%M:%SZ})"
        )
    if value.error:
        line += f": {value.error}"
    return Fact("stored", line, "critical" if differs else "warning" if value.error else "ok")


def _http_facts(http: HttpResult) -> list[Fact]:
    out: list[Fact] = []
    if http.off:
        out.append(Fact("HTTP", "HTTP checks are off for this endpoint"))
    if http.redirect is not None:
        out.append(redirect_fact(http.redirect))
    if http.hsts is not None:
        out.append(hsts_fact(http.hsts))
    return out


def endpoint_facts(deep: EndpointFacts) -> list[Fact]:
    """The endpoint-level facts worth a line, most actionable first."""
    out = _http_facts(deep.http) if deep.http is not None else []
    if deep.protocols is not None:
        out.append(protocols_fact(deep.protocols))
    if deep.stored is not None:
        out.append(stored_fact(deep.stored))
    if deep.no_sni is not None:
        out.append(no_sni_fact(deep.no_sni))
    auth = deep.client_auth
    mtls = mtls_fact(auth.state if auth else "", deep.http.client_auth if deep.http else None)
    if mtls is not None:
        out.append(mtls)
    if deep.backends is not None and not deep.backends.agree:
        out.append(Fact("backends", "serve different certificates (see the chain branches)", "critical"))
    if deep.aia is not None:
        out.append(aia_fact(deep.aia))
    if deep.error is not None:
        out.append(Fact("deep checks error", deep.error, "warning"))
    return out


def backend_facts(deep: BackendFacts) -> list[Fact]:
    """Per-backend facts worth a line (mTLS, weak suites)."""
    out: list[Fact] = []
    mtls = mtls_fact(deep.client_auth.state if deep.client_auth else "")
    if mtls is not None:
        out.append(mtls)
    protocols = deep.protocols
    if protocols is not None:
        weak = protocols.negotiated_weaknesses
        if weak:
            out.append(Fact("cipher", f"{_text(protocols.negotiated)}: {flat(weak)}", "warning"))
        if protocols.static_rsa == "accepted":
            suite = protocols.static_rsa_suite
            out.append(
                Fact(
                    "cipher",
                    f"accepts static RSA key exchange{f' ({suite})' if suite else ''}: no forward secrecy",
                    "warning",
                )
            )
    return out
