"""The deeper checks that run after an endpoint's main handshakes.

:func:`deep_checks`, which :func:`certpager.probe.engine.check_endpoint` calls when
``deep`` is on, refines a report within the endpoint's deadline:

- from what the main handshakes already hold (no network): ``backends_disagree``,
  ``pin_mismatch`` / ``pin_rotation_risk`` and the SPKI pin of every certificate,
  mTLS facts (client authentication not requested, optional, required, accepted
  or rejected, with the acceptable CA names);
- concurrently, over extra connections: protocol versions and weak suites
  (:mod:`certpager.probe.protocols`), the certificate served without SNI, the
  plain-HTTP redirect and the HSTS header (:mod:`certpager.probe.http`), and the
  AIA explanation of a missing intermediate (:mod:`certpager.probe.aia`).

A check still running at the deadline is cancelled and reported as a fact
("did not finish within the deadline"), never as a finding; no exception
escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeGuard

from certpager.config import Endpoint
from certpager.formats import format_seconds
from certpager.probe import findings as F
from certpager.probe.analysis import CertParseError, match_hostname, parse_cert
from certpager.probe.engine import client_options, with_backends, with_findings
from certpager.probe.handshake import ClientOptions
from certpager.probe.model import BackendResult, CertInfo, EndpointReport, Finding
from certpager.probe.trust import TrustStoreError, get_trust_store

# aia, http and protocols are imported where a check that needs them runs: a run with
# the deeper checks off (`check --no-protocols --no-sni-check --no-http --no-aia`) never
# loads them.
if TYPE_CHECKING:
    from certpager.probe.aia import AiaResult
    from certpager.probe.http import HstsResult, HttpFailure, HttpResponse
    from certpager.probe.protocols import Hello

#: Seconds before the deadline at which the network jobs give up on their own.
JOB_MARGIN = 0.1
#: Longest wait for the HTTPS answer that tells whether a server which completed an
#: mTLS handshake accepts the client (when HSTS is not checked anyway): a non-HTTP
#: service may stay silent, and must not cost the whole deadline.
CLIENT_AUTH_HTTP_WAIT = 2.0


def _iso(cert: CertInfo) -> str:
    return cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_facts(cert: CertInfo) -> dict[str, object]:
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "sans": list(cert.sans),
        "not_after": _iso(cert),
        "serial": cert.serial,
        "sha256": cert.sha256,
        "spki_pin": cert.spki_pin,
    }


def _leaf(b: BackendResult) -> CertInfo | None:
    return b.analysis.leaf if b.analysis is not None else None


# --- checks on what the main handshakes hold -----------------------------------------


def client_auth_state(b: BackendResult, endpoint: Endpoint) -> str:
    """``not_requested``, ``optional``, ``required``, ``accepted`` or ``rejected``."""
    hs = b.handshake
    if not hs.client_cert_requested:
        return "not_requested"
    if endpoint.client_cert:
        return "rejected" if hs.client_auth_error else "accepted"
    return "required" if hs.client_auth_error else "optional"


def _client_auth(b: BackendResult, endpoint: Endpoint) -> tuple[list[Finding], dict[str, object]]:
    """Refined ``client_cert_required`` wording and the facts, for one backend."""
    state = client_auth_state(b, endpoint)
    hs = b.handshake
    facts: dict[str, object] = {"client_auth": state}
    if state == "not_requested":
        if endpoint.client_cert:
            facts["client_auth_note"] = (
                "a client certificate is configured but the server did not ask for one"
            )
        return [], facts
    names = ", ".join(hs.client_ca_names) or "any CA (the server sent no names)"
    words = {
        "optional": "the server asks for a client certificate but completes the handshake without one "
        "(optional mTLS)",
        "required": "the server requires a client certificate (mTLS): it refused the handshake without "
        f"one ({hs.client_auth_error})",
        "accepted": f"the server requires a client certificate (mTLS) and accepted {endpoint.client_cert}",
        "rejected": "the server requests a client certificate (mTLS)",
    }
    return [
        F.make("client_cert_required", f"{words[state]}; accepted CAs: {names}", backends=(hs.label,))
    ], facts


def pin_check(b: BackendResult, pins: tuple[str, ...]) -> tuple[list[Finding], dict[str, object]]:
    """``pin_mismatch`` / ``pin_rotation_risk`` for one backend, and the facts."""
    a = b.analysis
    if a is None or not a.chain:
        return [], {}
    label = (b.handshake.label,)
    candidates: list[tuple[str, CertInfo]] = []
    seen: set[bytes] = set()
    for i, cert in enumerate([*a.chain, *a.verified_path]):
        if cert.der in seen:
            continue
        seen.add(cert.der)
        role = "leaf" if i == 0 else ("root" if cert.self_signed else "intermediate")
        candidates.append((role, cert))
    matched = [(role, c) for role, c in candidates if c.spki_pin in pins]
    facts: dict[str, object] = {
        "pins": {
            "configured": list(pins),
            "matched": [{"role": r, "subject": c.subject, "spki_pin": c.spki_pin} for r, c in matched],
            "state": "match" if matched else "mismatch",
        }
    }
    leaf = a.chain[0]
    if not matched:
        return [
            F.make(
                "pin_mismatch",
                f"the served key ({leaf.spki_pin}, {leaf.subject}) and the CA keys of its chain match none "
                f"of the {len(pins)} configured pin(s): pinned clients refuse this server",
                backends=label,
            )
        ], facts
    if all(role == "leaf" for role, _ in matched):
        backup = next((c.spki_pin for role, c in candidates if role == "intermediate"), None)
        tip = f" (the intermediate's pin is {backup})" if backup else ""
        return [
            F.make(
                "pin_rotation_risk",
                "the configured pins match only the leaf key: a renewal that generates a new key breaks "
                f"pinned clients{tip}",
                backends=label,
            )
        ], facts
    return [], facts


def spki_pins(report: EndpointReport) -> list[dict[str, object]]:
    """The SPKI pin of every certificate sent or in the verified path (primary backend)."""
    p = report.primary
    if p is None or p.analysis is None:
        return []
    out: list[dict[str, object]] = []
    seen: set[bytes] = set()
    sent = {c.der for c in p.analysis.chain}
    for i, cert in enumerate([*p.analysis.chain, *p.analysis.verified_path]):
        if cert.der in seen:
            continue
        seen.add(cert.der)
        role = "leaf" if i == 0 else ("root" if cert.self_signed else "intermediate")
        out.append(
            {
                "role": role,
                "subject": cert.subject,
                "spki_pin": cert.spki_pin,
                "sha256": cert.sha256,
                "sent": cert.der in sent,
            }
        )
    return out


def backends_check(report: EndpointReport) -> tuple[list[Finding], dict[str, object]]:
    """``backends_disagree`` when the backends serve different leaf certificates."""
    groups: dict[str, list[BackendResult]] = {}
    for b in report.backends:
        leaf = _leaf(b)
        if leaf is not None:
            groups.setdefault(leaf.sha256, []).append(b)
    if len(report.backends) <= 1:
        return [], {"backends_agree": True}
    certs = []
    for members in groups.values():
        leaf = _leaf(members[0])
        assert leaf is not None
        certs.append(
            {
                **_cert_facts(leaf),
                "not_before": leaf.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "backends": [m.handshake.label for m in members],
            }
        )
    facts: dict[str, object] = {"backends_agree": len(groups) <= 1, "certificates_served": certs}
    if len(groups) <= 1:
        return [], facts
    ordered = sorted(groups.values(), key=lambda ms: _leaf(ms[0]).not_before)  # type: ignore[union-attr]
    parts = []
    for members in ordered:
        leaf = _leaf(members[0])
        assert leaf is not None
        parts.append(
            f"{', '.join(m.handshake.label for m in members)} serve{'s' if len(members) == 1 else ''} serial "
            f"{leaf.serial} (issued {leaf.not_before:%Y-%m-%d}, expires {leaf.not_after:%Y-%m-%d})"
        )
    oldest = ordered[0]
    msg = (
        f"the backends serve {len(groups)} different certificates: " + "; ".join(parts) + ". "
        f"{', '.join(m.handshake.label for m in oldest)} still serve{'s' if len(oldest) == 1 else ''} the "
        "oldest one: renewed but not deployed or not reloaded there?"
    )
    return [F.make("backends_disagree", msg, backends=tuple(m.handshake.label for m in oldest))], facts


# --- checks over extra connections ------------------------------------------------------


#: Seconds a no-SNI answer is shared between endpoints on the same address and
#: port: the default certificate belongs to the listener, not to a name, so one
#: ``certpager check`` over many virtual hosts of one load balancer needs one
#: such handshake, not one per name. Short, so that a check after a reload sees
#: the reload.
NO_SNI_SHARE_SECONDS = 10.0

_NoSniKey = tuple[str, int, str | None, str | None]
_no_sni_done: dict[_NoSniKey, tuple[float, Hello]] = {}
_no_sni_running: dict[_NoSniKey, asyncio.Task[Hello]] = {}


async def no_sni_hello(address: str, port: int, options: ClientOptions, timeout: float) -> Hello:
    """The server's answer to a ClientHello without SNI, shared for
    :data:`NO_SNI_SHARE_SECONDS` between callers asking about the same listener."""
    from certpager.probe.protocols import Hello, server_hello

    key = (address, port, options.client_cert, options.client_key)
    now = time.monotonic()
    done = _no_sni_done.get(key)
    if done is not None and now - done[0] < NO_SNI_SHARE_SECONDS:
        return done[1]
    loop = asyncio.get_running_loop()
    task = _no_sni_running.get(key)
    if task is None or task.done() or task.get_loop() is not loop:
        task = loop.create_task(server_hello(address, port, None, options, timeout=timeout, want_chain=True))
        _no_sni_running[key] = task

        def store(t: asyncio.Task[Hello], key: _NoSniKey = key) -> None:
            if _no_sni_running.get(key) is t:
                del _no_sni_running[key]
            if not t.cancelled() and t.exception() is None and t.result().accepted is not None:
                _no_sni_done[key] = (time.monotonic(), t.result())
            for k in [
                k for k, (at, _) in _no_sni_done.items() if time.monotonic() - at >= NO_SNI_SHARE_SECONDS
            ]:
                del _no_sni_done[k]

        task.add_done_callback(store)
    try:
        return await asyncio.wait_for(asyncio.shield(task), max(timeout, 0.001))
    except TimeoutError:
        return Hello(None, error=f"no answer within {format_seconds(timeout)}")


async def no_sni_check(endpoint: Endpoint, primary: BackendResult, timeout: float) -> dict[str, Any]:
    """The certificate served to a client that sends no SNI."""
    hs = primary.handshake
    options = ClientOptions(client_cert=endpoint.client_cert, client_key=endpoint.client_key, alpn=())
    hello = await no_sni_hello(hs.address, hs.port, options, timeout)
    if not hello.accepted or not hello.chain_der:
        state = "refused" if hello.accepted is False else "failed"
        return {"state": state, "error": hello.error or "no certificate"}
    try:
        cert = parse_cert(hello.chain_der[0])
    except CertParseError as exc:
        return {"state": "failed", "error": str(exc)}
    leaf = _leaf(primary)
    same = leaf is not None and leaf.sha256 == cert.sha256
    return {"state": "same" if same else "differs", "certificate": _cert_facts(cert), "_cert": cert}


def _no_sni_finding(endpoint: Endpoint, facts: dict[str, Any]) -> list[Finding]:
    cert = facts.get("_cert")
    if facts.get("state") != "differs" or not isinstance(cert, CertInfo):
        return []
    covers = match_hostname(cert.sans, endpoint.verify_name)
    names = ", ".join(cert.sans[:4]) + (f" (+{len(cert.sans) - 4})" if len(cert.sans) > 4 else "")
    note = "" if covers else f"; it does not cover {endpoint.verify_name}"
    return [
        F.make(
            "no_sni_cert_differs",
            f"without SNI the server sends another certificate: {cert.subject} (names: {names or 'none'}, "
            f"expires {cert.not_after:%Y-%m-%d}){note}. Clients that send no SNI (old clients, scripts "
            "connecting by IP, some health checks) see that one",
        )
    ]


def _chain_incomplete_rewrite(b: BackendResult, aia: AiaResult, leaf_sha: str) -> BackendResult:
    leaf = _leaf(b)
    if leaf is None or leaf.sha256 != leaf_sha:
        return b
    findings = tuple(
        replace(f, message=f"{f.message}. {aia.sentence()}") if f.code == "chain_incomplete" else f
        for f in b.findings
    )
    return replace(b, findings=findings)


# --- the hook ----------------------------------------------------------------------------


async def deep_checks(endpoint: Endpoint, report: EndpointReport, deadline: float) -> EndpointReport:
    """Refine ``report`` with every deeper check, all done by ``deadline`` (loop time)."""
    loop = asyncio.get_running_loop()
    if not any(b.handshake.ok for b in report.backends):
        return report

    def left() -> float:
        return max(deadline - loop.time(), 0.0)

    added: dict[int, list[Finding]] = {i: [] for i in range(len(report.backends))}
    bextra: dict[int, dict[str, object]] = {i: {} for i in range(len(report.backends))}
    endpoint_findings: list[Finding] = []
    facts: dict[str, object] = {}
    primary = report.primary
    assert primary is not None

    # No network: mTLS facts, pins, backends, SPKI pins.
    replace_codes: dict[int, set[str]] = {}
    names: list[str] = []
    states: list[str] = []
    for i, b in enumerate(report.backends):
        if not b.handshake.ok:
            continue
        found, f_facts = _client_auth(b, endpoint)
        if found:
            replace_codes.setdefault(i, set()).add("client_cert_required")
            added[i].extend(found)
        bextra[i].update(f_facts)
        states.append(str(f_facts["client_auth"]))
        names.extend(n for n in b.handshake.client_ca_names if n not in names)
        if endpoint.pins:
            found, p_facts = pin_check(b, endpoint.pins)
            added[i].extend(found)
            bextra[i].update(p_facts)
    worst_auth = max(
        states or ["not_requested"],
        key=["not_requested", "accepted", "optional", "required", "rejected"].index,
    )
    facts["client_auth"] = worst_auth
    facts["client_ca_names"] = names
    found, b_facts = backends_check(report)
    endpoint_findings.extend(found)
    facts.update(b_facts)
    facts["spki_pins"] = spki_pins(report)

    # Over the network, concurrently, within the deadline. Each job gets a little
    # less than what is left so that it reports its own timeout (a fact with
    # words) before the deadline cancels it.
    budget = max(left() - JOB_MARGIN, 0.01)
    jobs: dict[str, Awaitable[Any]] = {}
    opts = client_options(endpoint)
    if endpoint.check_protocols:
        from certpager.probe.protocols import probe_protocols

        for i, b in enumerate(report.backends):
            if b.handshake.ok:
                hs = b.handshake
                jobs[f"protocols:{i}"] = probe_protocols(
                    hs.address, hs.port, hs.sni, hs, timeout=budget, client=opts
                )
    if endpoint.check_no_sni and endpoint.server_name:
        jobs["no_sni"] = no_sni_check(endpoint, primary, budget)
    http = endpoint.http
    if http is not None:
        address = primary.handshake.address
        if http.redirect:
            from certpager.probe.http import check_redirect

            jobs["redirect"] = check_redirect(
                address, http.port, endpoint.verify_name, http.path, timeout=budget
            )
    else:
        facts["http"] = {"state": "skipped", "detail": "HTTP checks are off for this endpoint"}
    # One HTTPS request serves two purposes: the HSTS header, and the verdict on the
    # client certificate of servers that finish the handshake and refuse over HTTP
    # (nginx's ssl_verify_client answers 400 instead of failing the handshake).
    primary_auth = str(bextra[report.backends.index(primary)].get("client_auth", "not_requested"))
    auth_over_http = primary_auth in ("optional", "accepted")
    want_hsts = http is not None and http.hsts and worst_auth not in ("required", "rejected")
    if http is not None and http.hsts and not want_hsts:
        facts["hsts"] = _hsts_skipped(http.hsts_min_days, worst_auth)
    if want_hsts or auth_over_http:
        from certpager.probe.http import fetch_https

        jobs["https"] = fetch_https(
            primary.handshake.address,
            primary.handshake.port,
            endpoint.verify_name,
            endpoint.server_name,
            http.path if http is not None else "/",
            timeout=budget if want_hsts else min(budget, CLIENT_AUTH_HTTP_WAIT),
            client_cert=endpoint.client_cert,
            client_key=endpoint.client_key,
        )
    incomplete = any(f.code == "chain_incomplete" for f in primary.findings)
    if incomplete and endpoint.fetch_aia:
        try:
            trust = get_trust_store(endpoint.ca_file)
        except TrustStoreError:
            trust = None
        if trust is not None:
            from certpager.probe.aia import explain_incomplete

            jobs["aia"] = explain_incomplete(
                primary.handshake.chain_der,
                endpoint.verify_name,
                report.checked_at,
                trust,
                endpoint.thresholds,
                timeout=budget,
                endpoint_address=primary.handshake.address,
                policy=endpoint.aia_private,
            )

    results = await _run_all(jobs, left())

    # Assemble.
    if endpoint.check_protocols:
        from certpager.probe.protocols import ProtocolReport, known_from_main, merge_versions

        protocol_reports: list[ProtocolReport] = []
        for key, value in results.items():
            if not key.startswith("protocols:"):
                continue
            i = int(key.split(":", 1)[1])
            if isinstance(value, ProtocolReport):
                protocol_reports.append(value)
                added[i].extend(value.findings)
                bextra[i].update(value.as_json())
            else:  # cancelled at the deadline: keep what the main handshake proved
                versions, notes = known_from_main(report.backends[i].handshake)
                for v, state in versions.items():
                    if state == "not_tested":
                        versions[v], notes[v] = "inconclusive", str(value)
                fallback = ProtocolReport(
                    versions=versions, notes=notes, negotiated=report.backends[i].handshake.cipher
                )
                protocol_reports.append(fallback)
                bextra[i].update(fallback.as_json())
        if protocol_reports:
            versions = merge_versions(protocol_reports)
            facts["protocols"] = versions
            facts["protocols_accepted"] = [v for v, s in versions.items() if s == "accepted"]
            facts["protocol_notes"] = {
                k: v for r in protocol_reports for k, v in r.notes.items() if k == "SSLv3"
            }
    else:
        facts["protocols"] = "not checked (check_protocols is off)"

    if "no_sni" in results:
        value = results["no_sni"]
        if isinstance(value, dict):
            endpoint_findings.extend(_no_sni_finding(endpoint, value))
            facts["no_sni"] = {k: v for k, v in value.items() if not k.startswith("_")}
        else:
            facts["no_sni"] = {"state": "failed", "error": str(value)}
    elif not endpoint.server_name:
        facts["no_sni"] = {"state": "skipped", "error": "the endpoint itself sends no SNI"}

    if http is not None or "https" in results:
        from certpager.probe.http import (
            HstsResult,
            HttpFailure,
            HttpResponse,
            RedirectResult,
            client_auth_verdict,
            hsts_of,
            http_findings,
        )

        answer = results.get("https")
        verdict = client_auth_verdict(answer) if auth_over_http and _is_answer(answer) else None
        if auth_over_http and "https" in results:
            facts["client_auth_http"] = {
                "status": answer.status if isinstance(answer, HttpResponse) else None,
                "verdict": verdict[0] if verdict else None,
                "detail": verdict[1]
                if verdict
                else (answer.message if isinstance(answer, HttpFailure) else None),
            }
        if verdict is not None:
            pi = report.backends.index(primary)
            auth = "rejected" if endpoint.client_cert else verdict[0]
            found = _client_auth_over_http(primary, endpoint, auth, verdict[1])
            added[pi] = [f for f in added[pi] if f.code != "client_cert_required"] + found
            replace_codes.setdefault(pi, set()).add("client_cert_required")
            bextra[pi]["client_auth"] = auth
            facts["client_auth"] = auth
            if want_hsts and http is not None:
                want_hsts = False
                facts["hsts"] = _hsts_skipped(http.hsts_min_days, auth)
        redirect = results.get("redirect")
        redirect_r = redirect if isinstance(redirect, RedirectResult) else None
        hsts_r: HstsResult | None = None
        if want_hsts and http is not None and "https" in results:
            if _is_answer(answer):
                hsts_r = hsts_of(answer, http.hsts_min_days)
            else:
                hsts_r = HstsResult("failed", detail=str(answer), min_days=http.hsts_min_days)
        if http is not None:
            if "redirect" in results:
                facts["redirect"] = (
                    redirect_r.as_json() if redirect_r else {"state": "failed", "detail": str(redirect)}
                )
            if hsts_r is not None:
                facts["hsts"] = hsts_r.as_json()
            if hsts_r is not None and hsts_r.state in ("ok", "short"):
                missing = list(hsts_r.preload_missing)
                if redirect_r is not None and redirect_r.state not in ("redirects", "closed"):
                    missing.append("an HTTP to HTTPS redirect on the same host")
                hsts_facts = dict(facts["hsts"])  # type: ignore[call-overload]
                hsts_facts["preload_ready"] = not missing
                hsts_facts["preload_missing"] = missing
                facts["hsts"] = hsts_facts
            endpoint_findings.extend(
                http_findings(redirect_r, hsts_r, endpoint.verify_name, primary.handshake.port)
            )
            if "redirect" in results and redirect_r is None:
                endpoint_findings.append(
                    F.make("http_check_failed", f"the redirect check did not complete: {redirect}")
                )

    backends = list(report.backends)
    if "aia" in results:
        from certpager.probe.aia import AiaResult

        aia = results["aia"]
        if isinstance(aia, AiaResult):
            facts["aia"] = aia.as_json()
            leaf = _leaf(primary)
            if leaf is not None and aia.state != "no_url":  # the analysis already says "no AIA URL"
                backends = [_chain_incomplete_rewrite(b, aia, leaf.sha256) for b in backends]
        else:
            facts["aia"] = {"state": "fetch_failed", "detail": str(aia)}

    if not replace_codes and not any(added.values()) and backends == list(report.backends):
        # No backend's findings changed (the usual case): the merged findings stay as they
        # are, so only the new facts and the endpoint-level findings are added.
        facts_only = [replace(b, extra={**b.extra, **bextra[i]}) for i, b in enumerate(backends)]
        return with_findings(replace(report, backends=tuple(facts_only)), endpoint_findings, facts)
    new_backends = []
    for i, b in enumerate(backends):
        drop = replace_codes.get(i, set())
        kept = tuple(f for f in b.findings if f.code not in drop)
        new_backends.append(replace(b, findings=(*kept, *added[i]), extra={**b.extra, **bextra[i]}))
    return with_backends(report, new_backends, endpoint_findings, facts)


def _is_answer(value: object) -> TypeGuard[HttpResponse | HttpFailure]:
    from certpager.probe.http import HttpFailure, HttpResponse

    return isinstance(value, HttpResponse | HttpFailure)


def _hsts_skipped(min_days: float, auth: str) -> dict[str, object]:
    from certpager.probe.http import HstsResult

    return HstsResult(
        "skipped",
        min_days=min_days,
        detail="not checked: the server requires a client certificate and "
        + ("none is configured" if auth == "required" else "refused the configured one"),
    ).as_json()


def _client_auth_over_http(b: BackendResult, endpoint: Endpoint, state: str, words: str) -> list[Finding]:
    """Findings when the server refused the client certificate over HTTP, not TLS."""
    hs = b.handshake
    names = ", ".join(hs.client_ca_names) or "any CA (the server sent no names)"
    label = (hs.label,)
    if state == "required":
        return [
            F.make(
                "client_cert_required",
                f"the server requires a client certificate (mTLS): {words}; accepted CAs: {names}",
                backends=label,
            )
        ]
    return [
        F.make(
            "client_cert_required",
            f"the server requests a client certificate (mTLS); accepted CAs: {names}",
            backends=label,
        ),
        F.make(
            "client_cert_rejected",
            f"the server refused the configured client certificate {endpoint.client_cert}: {words}",
            backends=label,
        ),
    ]


class _Unfinished:
    """A job cancelled at the deadline or one that raised."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


async def _run_all(jobs: dict[str, Awaitable[Any]], timeout: float) -> dict[str, Any]:
    """Run every job concurrently; at ``timeout`` cancel the rest. Never raises."""
    if not jobs:
        return {}
    tasks = {asyncio.ensure_future(job): key for key, job in jobs.items()}
    _done, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(BaseException):
            await task
    out: dict[str, Any] = {}
    for task, key in tasks.items():
        if task in pending:
            out[key] = _Unfinished(
                f"did not finish within the deadline ({format_seconds(timeout)} left when it started)"
            )
        elif task.cancelled():
            out[key] = _Unfinished("cancelled")
        elif task.exception() is not None:
            exc = task.exception()
            out[key] = _Unfinished(f"internal error: {type(exc).__name__}: {exc}")
        else:
            out[key] = task.result()
    return out


__all__ = ["backends_check", "client_auth_state", "deep_checks", "pin_check", "spki_pins"]
