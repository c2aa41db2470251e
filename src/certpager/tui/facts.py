"""The deeper checks' facts (``report.extra``), chosen and worded for the detail screen.

``certpager check --json`` carries every fact; the detail screen shows the ones
an on-call engineer acts on, one line each, with a tone (``ok``, ``warning``,
``critical``, ``muted``). Unknown keys are still shown, flattened, so nothing a
new check adds is hidden. No Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Tone = str
"""``ok``, ``warning``, ``critical`` or ``muted``."""

_HIDDEN = frozenset(
    {
        "spki_pins",  # in the chain tree
        "certificates_served",  # in the chain tree (one branch per distinct chain)
        "protocols_accepted",  # folded into "protocols"
        "protocol_notes",
        "protocol_probes",
        "client_ca_names",  # in the client_cert_required finding
        "client_auth_http",  # folded into "mTLS"
        "client_auth_note",
    }
)
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


def _get(mapping: Mapping[str, object], key: str) -> str:
    value = mapping.get(key)
    return "" if value is None else str(value)


def flat(value: object) -> str:
    """Any fact on one line: mappings as ``key value · key value``, lists comma-separated."""
    if isinstance(value, Mapping):
        return " · ".join(f"{str(k).replace('_', ' ')} {flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(flat(v) for v in value) or "none"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def protocols_fact(value: object) -> Fact:
    """``accepts TLSv1.3, TLSv1 · refuses TLSv1.1 · not tested TLSv1.2``."""
    if not isinstance(value, Mapping):
        return Fact("protocols", flat(value))
    groups: dict[str, list[str]] = {}
    order = ("accepted", "refused", "not_tested", "not_testable")
    for version, state in sorted(
        value.items(), key=lambda kv: order.index(str(kv[1])) if kv[1] in order else len(order)
    ):
        groups.setdefault(str(state), []).append(str(version))
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


def redirect_fact(value: Mapping[str, object]) -> Fact:
    state = _get(value, "state")
    if state == "redirects":
        return Fact(
            "HTTP",
            f"port {_get(value, 'port')} answers {_get(value, 'status')} → {_get(value, 'location')}",
            "ok",
        )
    detail = _get(value, "detail") or state.replace("_", " ")
    if state == "closed":
        return Fact("HTTP", f"port {_get(value, 'port')} closed ({detail})")
    return Fact("HTTP", detail, "warning" if state == "no_redirect" else "muted")


def hsts_fact(value: Mapping[str, object]) -> Fact:
    state = _get(value, "state")
    if state in ("ok", "short"):
        days = value.get("max_age_days")
        text = f"{_get(value, 'header')}" + (f" ({days:g} days)" if isinstance(days, int | float) else "")
        return Fact("HSTS", text, "ok" if state == "ok" else "warning")
    return Fact("HSTS", _get(value, "detail") or state, "warning" if state == "missing" else "muted")


def no_sni_fact(value: Mapping[str, object]) -> Fact:
    state = _get(value, "state")
    if state == "same":
        return Fact("without SNI", "the same certificate is sent")
    if state == "differs":
        cert = value.get("certificate")
        if isinstance(cert, Mapping):
            return Fact(
                "without SNI",
                f"another certificate: {_get(cert, 'subject')}, expires {_get(cert, 'not_after')}",
                "warning",
            )
        return Fact("without SNI", "another certificate is sent", "warning")
    return Fact("without SNI", f"{state}: {_get(value, 'error')}".rstrip(": "))


_MTLS_WORDS = {
    "optional": "optional: the server asks for a client certificate but completes the handshake without one",
    "required": "required: the server refuses a client without a certificate",
    "accepted": "required, and the configured client certificate is accepted",
    "rejected": "the server refuses the configured client certificate",
}


def mtls_fact(state: str, http: object = None) -> Fact | None:
    """One mTLS line: what the server asks of clients and what it did with ours.

    The accepted CA names are not repeated here: the ``client_cert_required`` finding
    states them (an empty list from the server reads "any CA"). ``http`` is the
    ``client_auth_http`` fact (the HTTPS answer that decided the verdict), folded in.
    """
    if state in ("", "not_requested"):
        return None
    text = _MTLS_WORDS.get(state, f"client certificate {state.replace('_', ' ')}")
    if isinstance(http, Mapping):
        status, detail = _get(http, "status"), _get(http, "detail")
        if status:
            text += f" (HTTPS answered {status}{f': {detail}' if detail else ''})"
        elif detail:
            text += f" (HTTPS check: {detail})"
    tone = "critical" if state == "rejected" else "muted"
    return Fact("mTLS", text, tone)


def aia_fact(value: Mapping[str, object]) -> Fact:
    state = _get(value, "state")
    detail = _get(value, "detail")
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


def endpoint_facts(extra: Mapping[str, object]) -> list[Fact]:
    """The endpoint-level facts worth a line, most actionable first."""
    out: list[Fact] = []
    seen: set[str] = set()

    def take(key: str) -> object:
        seen.add(key)
        return extra.get(key)

    http = take("http")
    if isinstance(http, Mapping):
        out.append(Fact("HTTP", _get(http, "detail") or _get(http, "state")))
    redirect = take("redirect")
    if isinstance(redirect, Mapping):
        out.append(redirect_fact(redirect))
    hsts = take("hsts")
    if isinstance(hsts, Mapping):
        out.append(hsts_fact(hsts))
    if "protocols" in extra:
        out.append(protocols_fact(take("protocols")))
    stored = take("stored")
    if isinstance(stored, Mapping):
        differs = "differs" in _get(stored, "state")
        error = _get(stored, "error")
        line = f"{_get(stored, 'location')}: {_get(stored, 'state')}"
        if _get(stored, "serial"):
            line += (
                f" (serial {_get(stored, 'serial')} · sha256 {_get(stored, 'sha256')[:16]}… · "
                f"notAfter {_get(stored, 'not_after')})"
            )
        if error:
            line += f": {error}"
        out.append(Fact("stored", line, "critical" if differs else "warning" if error else "ok"))
    elif stored is not None:
        out.append(Fact("stored", flat(stored)))
    no_sni = take("no_sni")
    if isinstance(no_sni, Mapping):
        out.append(no_sni_fact(no_sni))
    mtls = mtls_fact(str(take("client_auth") or ""), take("client_auth_http"))
    if mtls is not None:
        out.append(mtls)
    agree = take("backends_agree")
    if agree is False:
        out.append(Fact("backends", "serve different certificates (see the chain branches)", "critical"))
    pins = take("pins")
    if isinstance(pins, Mapping):
        state = _get(pins, "state")
        out.append(
            Fact(
                "pins",
                f"{state}: {len(pins.get('configured') or [])} configured",
                "ok" if state == "match" else "critical",
            )
        )
    aia = take("aia")
    if isinstance(aia, Mapping):
        out.append(aia_fact(aia))
    for key, value in extra.items():
        if key in seen or key in _HIDDEN:
            continue
        tone = "warning" if key.endswith("_error") else "muted"
        out.append(Fact(key.replace("_", " "), flat(value), tone))
    return out


def backend_facts(extra: Mapping[str, object]) -> list[Fact]:
    """Per-backend facts worth a line (weak suites, mTLS, errors of the extra probes)."""
    out: list[Fact] = []
    mtls = mtls_fact(str(extra.get("client_auth") or ""))
    if mtls is not None:
        out.append(mtls)
    cipher = extra.get("cipher_check")
    if isinstance(cipher, Mapping):
        weak = cipher.get("negotiated_weaknesses")
        if weak:
            out.append(Fact("cipher", f"{_get(cipher, 'negotiated')}: {flat(weak)}", "warning"))
        if _get(cipher, "static_rsa") == "accepted":
            suite = _get(cipher, "static_rsa_suite")
            out.append(
                Fact(
                    "cipher",
                    f"accepts static RSA key exchange{f' ({suite})' if suite else ''}: no forward secrecy",
                    "warning",
                )
            )
    for key, value in extra.items():
        if key.endswith("_error"):
            out.append(Fact(key.replace("_", " "), flat(value), "warning"))
    return out
