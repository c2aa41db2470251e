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
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class NoSniResult:
    """What a client that sends no SNI is served: ``same`` or ``differs`` (with the
    certificate), ``refused`` or ``failed`` (with the error)."""

    state: str
    cert: CertInfo | None = None
    error: str = ""

    def as_json(self) -> dict[str, object]:
        if self.cert is None:
            return {"state": self.state, "error": self.error}
        return {"state": self.state, "certificate": _cert_facts(self.cert)}


async def no_sni_check(endpoint: Endpoint, primary: BackendResult, timeout: float) -> NoSniResult:
    """The certificate served to a client that sends no SNI."""
    hs = primary.handshake
    options = ClientOptions(client_cert=endpoint.client_cert, client_key=endpoint.client_key, alpn=())
    hello = await no_sni_hello(hs.address, hs.port, options, timeout)
    if not hello.accepted or not hello.chain_der:
        state = "refused" if hello.accepted is False else "failed"
        return NoSniResult(state, error=hello.error or "no certificate")
    try:
        cert = parse_cert(hello.chain_der[0])
    except CertParseError as exc:
        return NoSniResult("failed", error=str(exc))
    leaf = _leaf(primary)
    same = leaf is not None and leaf.sha256 == cert.sha256
    return NoSniResult("same" if same else "differs", cert=cert)


def no_sni_findings(result: NoSniResult, verify_name: str) -> tuple[Finding, ...]:
    """``no_sni_cert_differs`` when a client without SNI gets another certificate."""
    cert = result.cert
    if result.state != "differs" or cert is None:
        return ()
    covers = match_hostname(cert.sans, verify_name)
    names = ", ".join(cert.sans[:4]) + (f" (+{len(cert.sans) - 4})" if len(cert.sans) > 4 else "")
    note = "" if covers else f"; it does not cover {verify_name}"
    return (
        F.make(
            "no_sni_cert_differs",
            f"without SNI the server sends another certificate: {cert.subject} (names: {names or 'none'}, "
            f"expires {cert.not_after:%Y-%m-%d}){note}. Clients that send no SNI (old clients, scripts "
            "connecting by IP, some health checks) see that one",
        ),
    )


def _chain_incomplete_rewrite(b: BackendResult, aia: AiaResult, leaf_sha: str) -> BackendResult:
    leaf = _leaf(b)
    if leaf is None or leaf.sha256 != leaf_sha:
        return b
    findings = tuple(
        replace(f, message=f"{f.message}. {aia.sentence()}") if f.code == "chain_incomplete" else f
        for f in b.findings
    )
    return replace(b, findings=findings)


# --- the orchestrator ----------------------------------------------------------------------


class DeepCheck(enum.Enum):
    """The deeper checks over extra connections, in the order they are assembled."""

    PROTOCOLS = "protocols"
    NO_SNI = "no_sni"
    HTTP = "http"
    AIA = "aia"


@dataclass
class _Run:
    """One run of the deeper checks over one report: what the checks read and what they add."""

    endpoint: Endpoint
    report: EndpointReport
    primary: BackendResult
    budget: float
    added: dict[int, list[Finding]]
    bextra: dict[int, dict[str, object]]
    replace_codes: dict[int, set[str]] = field(default_factory=dict)
    endpoint_findings: list[Finding] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    worst_auth: str = "not_requested"
    backends: list[BackendResult] = field(default_factory=list)
    want_hsts: bool = False
    auth_over_http: bool = False

    @property
    def primary_index(self) -> int:
        return self.report.backends.index(self.primary)


Jobs = dict[str, Awaitable[Any]]


@dataclass(frozen=True)
class _Check:
    """One deeper check: the jobs it starts, then how their results refine the run."""

    start: Callable[[_Run], Jobs]
    assemble: Callable[[_Run, dict[str, Any]], None]


def _local_checks(run: _Run) -> None:
    """No network: mTLS facts, pins, backends, SPKI pins."""
    endpoint, report = run.endpoint, run.report
    names: list[str] = []
    states: list[str] = []
    for i, b in enumerate(report.backends):
        if not b.handshake.ok:
            continue
        found, f_facts = _client_auth(b, endpoint)
        if found:
            run.replace_codes.setdefault(i, set()).add("client_cert_required")
            run.added[i].extend(found)
        run.bextra[i].update(f_facts)
        states.append(str(f_facts["client_auth"]))
        names.extend(n for n in b.handshake.client_ca_names if n not in names)
        if endpoint.pins:
            found, p_facts = pin_check(b, endpoint.pins)
            run.added[i].extend(found)
            run.bextra[i].update(p_facts)
    run.worst_auth = max(
        states or ["not_requested"],
        key=["not_requested", "accepted", "optional", "required", "rejected"].index,
    )
    run.facts["client_auth"] = run.worst_auth
    run.facts["client_ca_names"] = names
    found, b_facts = backends_check(report)
    run.endpoint_findings.extend(found)
    run.facts.update(b_facts)
    run.facts["spki_pins"] = spki_pins(report)


def _protocols_start(run: _Run) -> Jobs:
    if not run.endpoint.check_protocols:
        return {}
    from certpager.probe.protocols import probe_protocols

    opts = client_options(run.endpoint)
    jobs: Jobs = {}
    for i, b in enumerate(run.report.backends):
        if b.handshake.ok:
            hs = b.handshake
            jobs[f"protocols:{i}"] = probe_protocols(
                hs.address, hs.port, hs.sni, hs, timeout=run.budget, client=opts
            )
    return jobs


def _protocols_assemble(run: _Run, results: dict[str, Any]) -> None:
    if not run.endpoint.check_protocols:
        run.facts["protocols"] = "not checked (check_protocols is off)"
        return
    from certpager.probe.protocols import ProtocolReport, known_from_main, merge_versions

    protocol_reports: list[ProtocolReport] = []
    for key, value in results.items():
        if not key.startswith("protocols:"):
            continue
        i = int(key.split(":", 1)[1])
        if isinstance(value, ProtocolReport):
            protocol_reports.append(value)
            run.added[i].extend(value.findings)
            run.bextra[i].update(value.as_json())
        else:  # cancelled at the deadline: keep what the main handshake proved
            hs = run.report.backends[i].handshake
            versions, notes = known_from_main(hs)
            for v, state in versions.items():
                if state == "not_tested":
                    versions[v], notes[v] = "inconclusive", str(value)
            fallback = ProtocolReport(versions=versions, notes=notes, negotiated=hs.cipher)
            protocol_reports.append(fallback)
            run.bextra[i].update(fallback.as_json())
    if protocol_reports:
        merged = merge_versions(protocol_reports)
        run.facts["protocols"] = merged
        run.facts["protocols_accepted"] = [v for v, s in merged.items() if s == "accepted"]
        run.facts["protocol_notes"] = {
            k: v for r in protocol_reports for k, v in r.notes.items() if k == "SSLv3"
        }


def _no_sni_start(run: _Run) -> Jobs:
    if run.endpoint.check_no_sni and run.endpoint.server_name:
        return {"no_sni": no_sni_check(run.endpoint, run.primary, run.budget)}
    return {}


def _no_sni_assemble(run: _Run, results: dict[str, Any]) -> None:
    if "no_sni" in results:
        value = results["no_sni"]
        if isinstance(value, NoSniResult):
            run.endpoint_findings.extend(no_sni_findings(value, run.endpoint.verify_name))
            run.facts["no_sni"] = value.as_json()
        else:
            run.facts["no_sni"] = {"state": "failed", "error": str(value)}
    elif not run.endpoint.server_name:
        run.facts["no_sni"] = {"state": "skipped", "error": "the endpoint itself sends no SNI"}


def _http_start(run: _Run) -> Jobs:
    endpoint, primary = run.endpoint, run.primary
    jobs: Jobs = {}
    http = endpoint.http
    if http is not None:
        if http.redirect:
            from certpager.probe.http import check_redirect

            jobs["redirect"] = check_redirect(
                primary.handshake.address, http.port, endpoint.verify_name, http.path, timeout=run.budget
            )
    else:
        run.facts["http"] = {"state": "skipped", "detail": "HTTP checks are off for this endpoint"}
    # One HTTPS request serves two purposes: the HSTS header, and the verdict on the
    # client certificate of servers that finish the handshake and refuse over HTTP
    # (nginx's ssl_verify_client answers 400 instead of failing the handshake).
    primary_auth = str(run.bextra[run.primary_index].get("client_auth", "not_requested"))
    run.auth_over_http = primary_auth in ("optional", "accepted")
    run.want_hsts = http is not None and http.hsts and run.worst_auth not in ("required", "rejected")
    if http is not None and http.hsts and not run.want_hsts:
        run.facts["hsts"] = _hsts_skipped(http.hsts_min_days, run.worst_auth)
    if run.want_hsts or run.auth_over_http:
        from certpager.probe.http import fetch_https

        jobs["https"] = fetch_https(
            primary.handshake.address,
            primary.handshake.port,
            endpoint.verify_name,
            endpoint.server_name,
            http.path if http is not None else "/",
            timeout=run.budget if run.want_hsts else min(run.budget, CLIENT_AUTH_HTTP_WAIT),
            client_cert=endpoint.client_cert,
            client_key=endpoint.client_key,
        )
    return jobs


def _client_auth_http_assemble(run: _Run, results: dict[str, Any]) -> None:
    """The verdict on the client certificate from the HTTPS answer, when it decides one."""
    from certpager.probe.http import HttpFailure, HttpResponse, client_auth_verdict

    answer = results.get("https")
    verdict = client_auth_verdict(answer) if run.auth_over_http and _is_answer(answer) else None
    if run.auth_over_http and "https" in results:
        run.facts["client_auth_http"] = {
            "status": answer.status if isinstance(answer, HttpResponse) else None,
            "verdict": verdict[0] if verdict else None,
            "detail": verdict[1]
            if verdict
            else (answer.message if isinstance(answer, HttpFailure) else None),
        }
    if verdict is None:
        return
    pi = run.primary_index
    auth = "rejected" if run.endpoint.client_cert else verdict[0]
    found = _client_auth_over_http(run.primary, run.endpoint, auth, verdict[1])
    run.added[pi] = [f for f in run.added[pi] if f.code != "client_cert_required"] + found
    run.replace_codes.setdefault(pi, set()).add("client_cert_required")
    run.bextra[pi]["client_auth"] = auth
    run.facts["client_auth"] = auth
    http = run.endpoint.http
    if run.want_hsts and http is not None:
        run.want_hsts = False
        run.facts["hsts"] = _hsts_skipped(http.hsts_min_days, auth)


def _http_assemble(run: _Run, results: dict[str, Any]) -> None:
    http = run.endpoint.http
    if http is None and "https" not in results:
        return
    from certpager.probe.http import HstsResult, RedirectResult, hsts_of, http_findings

    _client_auth_http_assemble(run, results)
    if http is None:
        return
    answer = results.get("https")
    redirect = results.get("redirect")
    redirect_r = redirect if isinstance(redirect, RedirectResult) else None
    hsts_r: HstsResult | None = None
    if run.want_hsts and "https" in results:
        if _is_answer(answer):
            hsts_r = hsts_of(answer, http.hsts_min_days)
        else:
            hsts_r = HstsResult("failed", detail=str(answer), min_days=http.hsts_min_days)
    if "redirect" in results:
        run.facts["redirect"] = (
            redirect_r.as_json() if redirect_r else {"state": "failed", "detail": str(redirect)}
        )
    if hsts_r is not None:
        hsts_facts = hsts_r.as_json()
        if hsts_r.state in ("ok", "short"):
            missing = list(hsts_r.preload_missing)
            if redirect_r is not None and redirect_r.state not in ("redirects", "closed"):
                missing.append("an HTTP to HTTPS redirect on the same host")
            hsts_facts = {**hsts_facts, "preload_ready": not missing, "preload_missing": missing}
        run.facts["hsts"] = hsts_facts
    run.endpoint_findings.extend(
        http_findings(redirect_r, hsts_r, run.endpoint.verify_name, run.primary.handshake.port)
    )
    if "redirect" in results and redirect_r is None:
        run.endpoint_findings.append(
            F.make("http_check_failed", f"the redirect check did not complete: {redirect}")
        )


def _aia_start(run: _Run) -> Jobs:
    endpoint, primary = run.endpoint, run.primary
    incomplete = any(f.code == "chain_incomplete" for f in primary.findings)
    if not (incomplete and endpoint.fetch_aia):
        return {}
    try:
        trust = get_trust_store(endpoint.ca_file)
    except TrustStoreError:
        return {}
    from certpager.probe.aia import explain_incomplete

    return {
        "aia": explain_incomplete(
            primary.handshake.chain_der,
            endpoint.verify_name,
            run.report.checked_at,
            trust,
            endpoint.thresholds,
            timeout=run.budget,
            endpoint_address=primary.handshake.address,
            policy=endpoint.aia_private,
        )
    }


def _aia_assemble(run: _Run, results: dict[str, Any]) -> None:
    if "aia" not in results:
        return
    from certpager.probe.aia import AiaResult

    aia = results["aia"]
    if not isinstance(aia, AiaResult):
        run.facts["aia"] = {"state": "fetch_failed", "detail": str(aia)}
        return
    run.facts["aia"] = aia.as_json()
    leaf = _leaf(run.primary)
    if leaf is not None and aia.state != "no_url":  # the analysis already says "no AIA URL"
        run.backends = [_chain_incomplete_rewrite(b, aia, leaf.sha256) for b in run.backends]


#: Every deeper check over extra connections and its implementation.
CHECKS: dict[DeepCheck, _Check] = {
    DeepCheck.PROTOCOLS: _Check(_protocols_start, _protocols_assemble),
    DeepCheck.NO_SNI: _Check(_no_sni_start, _no_sni_assemble),
    DeepCheck.HTTP: _Check(_http_start, _http_assemble),
    DeepCheck.AIA: _Check(_aia_start, _aia_assemble),
}


async def deep_checks(endpoint: Endpoint, report: EndpointReport, deadline: float) -> EndpointReport:
    """Refine ``report`` with every deeper check, all done by ``deadline`` (loop time)."""
    loop = asyncio.get_running_loop()
    if not any(b.handshake.ok for b in report.backends):
        return report
    primary = report.primary
    assert primary is not None
    n = len(report.backends)
    run = _Run(
        endpoint,
        report,
        primary,
        budget=0.0,
        added={i: [] for i in range(n)},
        bextra={i: {} for i in range(n)},
        backends=list(report.backends),
    )
    _local_checks(run)
    # Over the network, concurrently, within the deadline. Each job gets a little
    # less than what is left so that it reports its own timeout (a fact with
    # words) before the deadline cancels it.
    run.budget = max(deadline - loop.time() - JOB_MARGIN, 0.01)
    jobs: Jobs = {}
    for check in CHECKS.values():
        jobs.update(check.start(run))
    results = await _run_all(jobs, max(deadline - loop.time(), 0.0))
    for check in CHECKS.values():
        check.assemble(run, results)
    return _merge(run)


def _merge(run: _Run) -> EndpointReport:
    """The report refined with what the checks added."""
    report, backends = run.report, run.backends
    if not run.replace_codes and not any(run.added.values()) and backends == list(report.backends):
        # No backend's findings changed (the usual case): the merged findings stay as they
        # are, so only the new facts and the endpoint-level findings are added.
        facts_only = [replace(b, extra={**b.extra, **run.bextra[i]}) for i, b in enumerate(backends)]
        return with_findings(replace(report, backends=tuple(facts_only)), run.endpoint_findings, run.facts)
    new_backends = []
    for i, b in enumerate(backends):
        drop = run.replace_codes.get(i, set())
        kept = tuple(f for f in b.findings if f.code not in drop)
        new_backends.append(replace(b, findings=(*kept, *run.added[i]), extra={**b.extra, **run.bextra[i]}))
    return with_backends(report, new_backends, run.endpoint_findings, run.facts)


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


__all__ = [
    "CHECKS",
    "DeepCheck",
    "NoSniResult",
    "backends_check",
    "client_auth_state",
    "deep_checks",
    "no_sni_findings",
    "pin_check",
    "spki_pins",
]
