"""The deeper checks that run after an endpoint's main handshakes.

:func:`deep_checks`, which :func:`certpager.probe.engine.check_endpoint` calls with
the set of :class:`~certpager.probe.model.DeepCheck` its caller asks for, refines a
report within the endpoint's deadline:

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
escapes. Each check's result is a typed value (:mod:`certpager.probe.model`:
``BackendResult.deep``, ``EndpointReport.deep``) with pure ``*_findings`` functions.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from certpager.probe.model import (
    ALL_CHECKS,
    BackendFacts,
    BackendResult,
    BackendsResult,
    CertInfo,
    CheckFailed,
    ClientAuthHttp,
    ClientAuthResult,
    DeepCheck,
    EndpointClientAuth,
    EndpointFacts,
    EndpointReport,
    Finding,
    HttpResult,
    NoSniResult,
    PinMatch,
    PinsResult,
    ProtocolsResult,
    ServedCertificate,
    SpkiPin,
    spki_pins_json,
)
from certpager.probe.trust import TrustStoreError, get_trust_store

# aia, http and protocols are imported where a check that needs them runs: a run with
# the deeper checks off (`check --no-protocols --no-sni-check --no-http --no-aia`) never
# loads them.
if TYPE_CHECKING:
    from certpager.probe.aia import AiaResult
    from certpager.probe.http import HstsResult, HttpFailure, HttpResponse, RedirectResult
    from certpager.probe.protocols import Hello, ProtocolReport

#: Seconds before the deadline at which the network jobs give up on their own.
JOB_MARGIN = 0.1
#: Longest wait for the HTTPS answer that tells whether a server which completed an
#: mTLS handshake accepts the client (when HSTS is not checked anyway): a non-HTTP
#: service may stay silent, and must not cost the whole deadline.
CLIENT_AUTH_HTTP_WAIT = 2.0


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


_NOT_REQUESTED = ClientAuthResult("not_requested")
_NOT_ASKED = ClientAuthResult(
    "not_requested", note="a client certificate is configured but the server did not ask for one"
)


def client_auth_result(b: BackendResult, endpoint: Endpoint) -> ClientAuthResult:
    """What one backend asks of clients and what it did with the configured certificate."""
    state = client_auth_state(b, endpoint)
    if state == "not_requested":
        return _NOT_ASKED if endpoint.client_cert else _NOT_REQUESTED
    return ClientAuthResult(state)


def client_auth_findings(
    result: ClientAuthResult, b: BackendResult, endpoint: Endpoint
) -> tuple[Finding, ...]:
    """The refined ``client_cert_required`` wording for one backend (none when not requested)."""
    if result.state == "not_requested":
        return ()
    hs = b.handshake
    names = ", ".join(hs.client_ca_names) or "any CA (the server sent no names)"
    words = {
        "optional": "the server asks for a client certificate but completes the handshake without one "
        "(optional mTLS)",
        "required": "the server requires a client certificate (mTLS): it refused the handshake without "
        f"one ({hs.client_auth_error})",
        "accepted": f"the server requires a client certificate (mTLS) and accepted {endpoint.client_cert}",
        "rejected": "the server requests a client certificate (mTLS)",
    }
    return (
        F.make("client_cert_required", f"{words[result.state]}; accepted CAs: {names}", backends=(hs.label,)),
    )


def _candidates(b: BackendResult) -> tuple[PinMatch, ...]:
    """Every distinct certificate sent or in the verified path, leaf first, with its role."""
    return tuple(PinMatch(role, cert) for role, cert, _sent in _roles(b))


def _roles(b: BackendResult) -> list[SpkiPin]:
    """``(role, certificate, sent)`` of every distinct certificate sent or in the verified path."""
    a = b.analysis
    if a is None:
        return []
    out: list[SpkiPin] = []
    seen: set[bytes] = set()
    sent = len(a.chain)
    for i, cert in enumerate((*a.chain, *a.verified_path)):
        der = cert.der
        if der in seen:
            continue
        seen.add(der)
        role = "leaf" if i == 0 else ("root" if cert.self_signed else "intermediate")
        # Every certificate sent is seen before the path's: one of the path's that is
        # left was not sent.
        out.append(tuple.__new__(SpkiPin, (role, cert, i < sent)))  # SpkiPin(...) without its Python __new__
    return out


def pins_result(b: BackendResult, pins: tuple[str, ...]) -> PinsResult | None:
    """The configured pins against one backend's chain (None: no chain)."""
    if b.analysis is None or not b.analysis.chain:
        return None
    candidates = _candidates(b)
    matched = tuple(m for m in candidates if m.cert.spki_pin in pins)
    return PinsResult(configured=tuple(pins), candidates=candidates, matched=matched)


def pin_findings(result: PinsResult, label: str) -> tuple[Finding, ...]:
    """``pin_mismatch`` / ``pin_rotation_risk`` for one backend."""
    leaf = result.candidates[0].cert
    if not result.matched:
        return (
            F.make(
                "pin_mismatch",
                f"the served key ({leaf.spki_pin}, {leaf.subject}) and the CA keys of its chain match none "
                f"of the {len(result.configured)} configured pin(s): pinned clients refuse this server",
                backends=(label,),
            ),
        )
    if all(m.role == "leaf" for m in result.matched):
        backup = next((m.cert.spki_pin for m in result.candidates if m.role == "intermediate"), None)
        tip = f" (the intermediate's pin is {backup})" if backup else ""
        return (
            F.make(
                "pin_rotation_risk",
                "the configured pins match only the leaf key: a renewal that generates a new key breaks "
                f"pinned clients{tip}",
                backends=(label,),
            ),
        )
    return ()


def pin_check(b: BackendResult, pins: tuple[str, ...]) -> tuple[list[Finding], dict[str, object]]:
    """:func:`pin_findings` and the ``pins`` fact as JSON, for one backend."""
    result = pins_result(b, pins)
    if result is None:
        return [], {}
    return list(pin_findings(result, b.handshake.label)), {"pins": result.as_json()}


def spki_pin_list(report: EndpointReport) -> tuple[SpkiPin, ...]:
    """The SPKI pin of every certificate sent or in the verified path (primary backend)."""
    p = report.primary
    if p is None:
        return ()
    return tuple(_roles(p))


def spki_pins(report: EndpointReport) -> list[dict[str, object]]:
    """:func:`spki_pin_list` as JSON."""
    return spki_pins_json(spki_pin_list(report))


_ONE_BACKEND = BackendsResult(agree=True)


def backends_result(report: EndpointReport) -> BackendsResult:
    """The distinct leaves the backends serve."""
    if len(report.backends) <= 1:
        return _ONE_BACKEND
    groups: dict[str, tuple[CertInfo, list[str]]] = {}
    for b in report.backends:
        leaf = _leaf(b)
        if leaf is not None:
            groups.setdefault(leaf.sha256, (leaf, []))[1].append(b.handshake.label)
    served = tuple(ServedCertificate(leaf, tuple(labels)) for leaf, labels in groups.values())
    return BackendsResult(agree=len(groups) <= 1, served=served)


def _serve(labels: tuple[str, ...]) -> str:
    return f"{', '.join(labels)} serve{'s' if len(labels) == 1 else ''}"


def backends_findings(result: BackendsResult) -> tuple[Finding, ...]:
    """``backends_disagree`` when the backends serve different leaf certificates."""
    if result.agree or result.served is None:
        return ()
    ordered = sorted(result.served, key=lambda s: s.cert.not_before)
    parts = [
        f"{_serve(s.backends)} serial {s.cert.serial} "
        f"(issued {s.cert.not_before:%Y-%m-%d}, expires {s.cert.not_after:%Y-%m-%d})"
        for s in ordered
    ]
    oldest = ordered[0].backends
    msg = (
        f"the backends serve {len(result.served)} different certificates: " + "; ".join(parts) + ". "
        f"{', '.join(oldest)} still serve{'s' if len(oldest) == 1 else ''} the "
        "oldest one: renewed but not deployed or not reloaded there?"
    )
    return (F.make("backends_disagree", msg, backends=oldest),)


def backends_check(report: EndpointReport) -> tuple[list[Finding], dict[str, object]]:
    """:func:`backends_findings` and the facts as JSON."""
    result = backends_result(report)
    return list(backends_findings(result)), result.as_json()


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


@dataclass
class _Run:
    """One run of the deeper checks over one report: what the checks read and what they add."""

    endpoint: Endpoint
    report: EndpointReport
    primary: BackendResult
    checks: frozenset[DeepCheck]
    budget: float = 0.0
    added: dict[int, list[Finding]] = field(default_factory=dict)
    replace_codes: dict[int, set[str]] = field(default_factory=dict)
    endpoint_findings: list[Finding] = field(default_factory=list)
    backends: list[BackendResult] = field(default_factory=list)
    # per backend (index into report.backends)
    client_auth: dict[int, ClientAuthResult] = field(default_factory=dict)
    pins: dict[int, PinsResult] = field(default_factory=dict)
    protocols: dict[int, ProtocolReport] = field(default_factory=dict)
    # the endpoint
    auth: EndpointClientAuth | None = None
    agreement: BackendsResult | None = None
    spki_pins: tuple[SpkiPin, ...] | None = None
    protocols_result: ProtocolsResult | None = None
    no_sni: NoSniResult | None = None
    http: HttpResult | None = None
    aia: AiaResult | CheckFailed | None = None
    want_hsts: bool = False
    auth_over_http: bool = False

    @property
    def primary_index(self) -> int:
        return self.report.backends.index(self.primary)

    @property
    def worst_auth(self) -> str:
        return self.auth.state if self.auth is not None else "not_requested"


Jobs = dict[str, Awaitable[Any]]


@dataclass(frozen=True)
class _Check:
    """One deeper check: the jobs it starts (the checks on what the main handshakes hold
    do their work there and start none), then how their results refine the run."""

    start: Callable[[_Run], Jobs]
    assemble: Callable[[_Run, dict[str, Any]], None]


_AUTH_ORDER = ("not_requested", "accepted", "optional", "required", "rejected")


def _client_auth_start(run: _Run) -> Jobs:
    """mTLS facts of every backend, and the refined ``client_cert_required`` wording."""
    endpoint = run.endpoint
    names: list[str] = []
    worst = "not_requested"
    for i, b in enumerate(run.report.backends):
        hs = b.handshake
        if not hs.ok:
            continue
        if not hs.client_cert_requested:  # the usual case, written out (client_auth_result)
            run.client_auth[i] = _NOT_ASKED if endpoint.client_cert else _NOT_REQUESTED
        else:
            result = client_auth_result(b, endpoint)
            run.replace_codes.setdefault(i, set()).add("client_cert_required")
            run.added[i].extend(client_auth_findings(result, b, endpoint))
            run.client_auth[i] = result
            if _AUTH_ORDER.index(result.state) > _AUTH_ORDER.index(worst):
                worst = result.state
        if hs.client_ca_names:
            names.extend(n for n in hs.client_ca_names if n not in names)
    run.auth = (
        _NO_CLIENT_AUTH if worst == "not_requested" and not names else EndpointClientAuth(worst, tuple(names))
    )
    return {}


_NO_CLIENT_AUTH = EndpointClientAuth("not_requested")


def _pins_start(run: _Run) -> Jobs:
    """The configured pins against every backend, and the SPKI pins of the primary's chain."""
    pins = run.endpoint.pins
    if pins:
        for i, b in enumerate(run.report.backends):
            result = pins_result(b, pins) if b.handshake.ok else None
            if result is not None:
                run.added[i].extend(pin_findings(result, b.handshake.label))
                run.pins[i] = result
    run.spki_pins = tuple(_roles(run.primary))  # spki_pin_list: run.primary is the report's
    return {}


def _backends_start(run: _Run) -> Jobs:
    if len(run.report.backends) <= 1:
        run.agreement = _ONE_BACKEND  # backends_result, without the calls
        return {}
    run.agreement = backends_result(run.report)
    run.endpoint_findings.extend(backends_findings(run.agreement))
    return {}


def _no_jobs_to_assemble(run: _Run, results: dict[str, Any]) -> None:
    return None


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


_PROTOCOLS_OFF = ProtocolsResult(checked=False)


def _protocols_assemble(run: _Run, results: dict[str, Any]) -> None:
    if not run.endpoint.check_protocols:
        run.protocols_result = _PROTOCOLS_OFF
        return
    from certpager.probe.protocols import ProtocolReport, known_from_main, merge_versions

    for key, value in results.items():
        if not key.startswith("protocols:"):
            continue
        i = int(key.split(":", 1)[1])
        if isinstance(value, ProtocolReport):
            run.added[i].extend(value.findings)
        else:  # cancelled at the deadline: keep what the main handshake proved
            hs = run.report.backends[i].handshake
            versions, notes = known_from_main(hs)
            for v, state in versions.items():
                if state == "not_tested":
                    versions[v], notes[v] = "inconclusive", str(value)
            value = ProtocolReport(versions=versions, notes=notes, negotiated=hs.cipher)
        run.protocols[i] = value
    if run.protocols:
        reports = list(run.protocols.values())
        run.protocols_result = ProtocolsResult(
            versions=merge_versions(reports),
            notes={k: v for r in reports for k, v in r.notes.items() if k == "SSLv3"},
        )


def _no_sni_start(run: _Run) -> Jobs:
    if run.endpoint.check_no_sni and run.endpoint.server_name:
        return {"no_sni": no_sni_check(run.endpoint, run.primary, run.budget)}
    return {}


_NO_SNI_SKIPPED = NoSniResult("skipped", error="the endpoint itself sends no SNI")


def _no_sni_assemble(run: _Run, results: dict[str, Any]) -> None:
    if "no_sni" in results:
        value = results["no_sni"]
        if isinstance(value, NoSniResult):
            run.endpoint_findings.extend(no_sni_findings(value, run.endpoint.verify_name))
            run.no_sni = value
        else:
            run.no_sni = NoSniResult("failed", error=str(value))
    elif not run.endpoint.server_name:
        run.no_sni = _NO_SNI_SKIPPED


_HTTP_OFF = HttpResult(off=True)


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
        run.http = _HTTP_OFF
    # One HTTPS request serves two purposes: the HSTS header, and the verdict on the
    # client certificate of servers that finish the handshake and refuse over HTTP
    # (nginx's ssl_verify_client answers 400 instead of failing the handshake).
    primary_auth = run.client_auth.get(run.primary_index)
    run.auth_over_http = primary_auth is not None and primary_auth.state in ("optional", "accepted")
    run.want_hsts = http is not None and http.hsts and run.worst_auth not in ("required", "rejected")
    if http is not None and http.hsts and not run.want_hsts:
        hsts = _hsts_skipped(http.hsts_min_days, run.worst_auth)
        run.http = HttpResult(hsts=hsts, hsts_before_connections=True)
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
        fact = ClientAuthHttp(
            status=answer.status if isinstance(answer, HttpResponse) else None,
            verdict=verdict[0] if verdict else None,
            detail=verdict[1] if verdict else (answer.message if isinstance(answer, HttpFailure) else None),
        )
        run.http = replace(run.http or HttpResult(), client_auth=fact)
    if verdict is None:
        return
    pi = run.primary_index
    auth = "rejected" if run.endpoint.client_cert else verdict[0]
    found = _client_auth_over_http(run.primary, run.endpoint, auth, verdict[1])
    run.added[pi] = [f for f in run.added[pi] if f.code != "client_cert_required"] + found
    run.replace_codes.setdefault(pi, set()).add("client_cert_required")
    run.client_auth[pi] = replace(run.client_auth[pi], state=auth)
    if run.auth is not None:
        run.auth = replace(run.auth, state=auth)
    http = run.endpoint.http
    if run.want_hsts and http is not None:
        run.want_hsts = False
        run.http = replace(run.http or HttpResult(), hsts=_hsts_skipped(http.hsts_min_days, auth))


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
    changes: dict[str, Any] = {}
    if "redirect" in results:
        changes["redirect"] = redirect_r or CheckFailed("failed", str(redirect))
    if hsts_r is not None:
        changes["hsts"] = _with_preload(hsts_r, redirect_r)
    if changes:
        run.http = replace(run.http or HttpResult(), **changes)
    run.endpoint_findings.extend(
        http_findings(redirect_r, hsts_r, run.endpoint.verify_name, run.primary.handshake.port)
    )
    if "redirect" in results and redirect_r is None:
        run.endpoint_findings.append(
            F.make("http_check_failed", f"the redirect check did not complete: {redirect}")
        )


def _with_preload(hsts: HstsResult, redirect: RedirectResult | None) -> HstsResult:
    """``hsts`` whose preload requirements also name a missing HTTP to HTTPS redirect."""
    if hsts.state not in ("ok", "short"):
        return hsts
    if redirect is not None and redirect.state not in ("redirects", "closed"):
        return replace(
            hsts, preload_missing=(*hsts.preload_missing, "an HTTP to HTTPS redirect on the same host")
        )
    return hsts


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
        run.aia = CheckFailed("fetch_failed", str(aia))
        return
    run.aia = aia
    leaf = _leaf(run.primary)
    if leaf is not None and aia.state != "no_url":  # the analysis already says "no AIA URL"
        run.backends = [_chain_incomplete_rewrite(b, aia, leaf.sha256) for b in run.backends]


#: Every deeper check and its implementation, in the order they start and assemble.
CHECKS: dict[DeepCheck, _Check] = {
    DeepCheck.CLIENT_AUTH: _Check(_client_auth_start, _no_jobs_to_assemble),
    DeepCheck.PINS: _Check(_pins_start, _no_jobs_to_assemble),
    DeepCheck.BACKENDS: _Check(_backends_start, _no_jobs_to_assemble),
    DeepCheck.PROTOCOLS: _Check(_protocols_start, _protocols_assemble),
    DeepCheck.NO_SNI: _Check(_no_sni_start, _no_sni_assemble),
    DeepCheck.HTTP: _Check(_http_start, _http_assemble),
    DeepCheck.AIA: _Check(_aia_start, _aia_assemble),
}

#: The checks on what the main handshakes hold (no network), in the order they run.
_LOCAL = (DeepCheck.CLIENT_AUTH, DeepCheck.PINS, DeepCheck.BACKENDS)
#: The checks over extra connections, in the order they start and assemble.
_NETWORK = (DeepCheck.PROTOCOLS, DeepCheck.NO_SNI, DeepCheck.HTTP, DeepCheck.AIA)


def restricted(endpoint: Endpoint, checks: frozenset[DeepCheck]) -> Endpoint:
    """``endpoint`` with every check over extra connections that ``checks`` leaves out
    turned off, as its own settings would turn it off: a check left out reports exactly
    what it reports when the config turns it off. ``endpoint`` itself when none is left out."""
    if checks.issuperset(_NETWORK):
        return endpoint
    protocols = endpoint.check_protocols and DeepCheck.PROTOCOLS in checks
    no_sni = endpoint.check_no_sni and DeepCheck.NO_SNI in checks
    http = endpoint.http if DeepCheck.HTTP in checks else None
    aia = endpoint.fetch_aia and DeepCheck.AIA in checks
    if (protocols, no_sni, http, aia) == (
        endpoint.check_protocols,
        endpoint.check_no_sni,
        endpoint.http,
        endpoint.fetch_aia,
    ):
        return endpoint
    return replace(endpoint, check_protocols=protocols, check_no_sni=no_sni, http=http, fetch_aia=aia)


async def deep_checks(
    endpoint: Endpoint,
    report: EndpointReport,
    deadline: float,
    checks: frozenset[DeepCheck] = ALL_CHECKS,
) -> EndpointReport:
    """Refine ``report`` with the deeper ``checks`` (each only where the endpoint's flags
    also turn it on), all done by ``deadline`` (loop time)."""
    loop = asyncio.get_running_loop()
    if not checks or not any(b.handshake.ok for b in report.backends):
        return report
    primary = report.primary
    assert primary is not None
    if checks is not ALL_CHECKS:
        endpoint = restricted(endpoint, checks)
    run = _Run(endpoint, report, primary, checks, backends=list(report.backends))
    run.added = {i: [] for i in range(len(report.backends))}
    for start in _LOCAL_STARTS if checks is ALL_CHECKS else [CHECKS[k].start for k in _LOCAL if k in checks]:
        start(run)
    # Over the network, concurrently, within the deadline. Each job gets a little less
    # than what is left so that it reports its own timeout (a fact with words) before
    # the deadline cancels it. A check left out of ``checks`` runs with its setting off
    # (see :func:`restricted`), so that it says so.
    run.budget = max(deadline - loop.time() - JOB_MARGIN, 0.01)
    jobs: Jobs = {}
    for check in _NETWORK_CHECKS:
        jobs.update(check.start(run))
    results = await _run_all(jobs, max(deadline - loop.time(), 0.0))
    for check in _NETWORK_CHECKS:
        check.assemble(run, results)
    return _merge(run)


_LOCAL_STARTS = [CHECKS[k].start for k in _LOCAL]
_NETWORK_CHECKS = [CHECKS[k] for k in _NETWORK]


_NOT_REQUESTED_FACTS = BackendFacts(client_auth=_NOT_REQUESTED)


def _backend_facts(run: _Run, i: int, b: BackendResult) -> BackendFacts:
    auth, pins, protocols = run.client_auth.get(i), run.pins.get(i), run.protocols.get(i)
    if pins is None and protocols is None:
        if auth is None:
            return b.deep
        if auth is _NOT_REQUESTED:  # the usual case: one value for every backend
            return _NOT_REQUESTED_FACTS
    return BackendFacts(client_auth=auth, pins=pins, protocols=protocols)


def _merge(run: _Run) -> EndpointReport:
    """The report refined with what the checks added."""
    report, backends = run.report, run.backends
    facts = EndpointFacts(
        client_auth=run.auth,
        backends=run.agreement,
        spki_pins=run.spki_pins,
        protocols=run.protocols_result,
        no_sni=run.no_sni,
        http=run.http,
        aia=run.aia,
    )
    if not run.replace_codes and not any(run.added.values()) and backends == list(report.backends):
        # No backend's findings changed (the usual case): the merged findings stay as they
        # are, so only the new facts and the endpoint-level findings are added.
        facts_only = []
        for i, b in enumerate(backends):
            usual = run.client_auth.get(i) is _NOT_REQUESTED and not run.pins and not run.protocols
            facts_only.append(replace(b, deep=_NOT_REQUESTED_FACTS if usual else _backend_facts(run, i, b)))
        return with_findings(replace(report, backends=tuple(facts_only)), run.endpoint_findings, facts)
    new_backends = []
    for i, b in enumerate(backends):
        drop = run.replace_codes.get(i, set())
        kept = tuple(f for f in b.findings if f.code not in drop)
        new_backends.append(replace(b, findings=(*kept, *run.added[i]), deep=_backend_facts(run, i, b)))
    return with_backends(report, new_backends, run.endpoint_findings, facts)


def _is_answer(value: object) -> TypeGuard[HttpResponse | HttpFailure]:
    from certpager.probe.http import HttpFailure, HttpResponse

    return isinstance(value, HttpResponse | HttpFailure)


def _hsts_skipped(min_days: float, auth: str) -> HstsResult:
    from certpager.probe.http import HstsResult

    return HstsResult(
        "skipped",
        min_days=min_days,
        detail="not checked: the server requires a client certificate and "
        + ("none is configured" if auth == "required" else "refused the configured one"),
    )


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
    "ALL_CHECKS",
    "CHECKS",
    "DeepCheck",
    "NoSniResult",
    "backends_check",
    "backends_findings",
    "backends_result",
    "client_auth_findings",
    "client_auth_result",
    "client_auth_state",
    "deep_checks",
    "no_sni_findings",
    "pin_check",
    "pin_findings",
    "pins_result",
    "restricted",
    "spki_pin_list",
    "spki_pins",
]
