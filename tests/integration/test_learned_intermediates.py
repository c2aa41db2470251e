"""Intermediates learned as partial-chain anchors must never change a verdict.

After one full verification, a client context trusts the intermediate it saw
(``handshake._Shortcuts``) so that the next chain through it costs the leaf's
signature only. Each test first makes the context learn, proves that it did, then
probes a server whose verdict a careless shortcut would get wrong, and compares with
what a fresh context (full verification, no learning) says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.pki import PKI, Hierarchy, Issued, generate_key
from tests.support.tls_server import TLSServer

from certpager.config import Endpoint
from certpager.probe import handshake
from certpager.probe.engine import check_endpoint
from certpager.probe.model import NO_CHECKS, ChainAnalysis, EndpointReport

Serve = Callable[..., TLSServer]


@pytest.fixture(autouse=True)
def fresh_contexts() -> Iterator[None]:
    """Every test starts with contexts that have learned nothing."""
    handshake._CONTEXTS.clear()
    yield
    handshake._CONTEXTS.clear()


def _learned() -> set[bytes]:
    """DER of every intermediate some client context trusts by now."""
    return {tail[0] for _, _, cuts in handshake._CONTEXTS.values() if cuts for tail in cuts.tails.values()}


def _serve(pki: PKI, serve: Serve, name: str, chain: list[Issued]) -> int:
    return serve(*pki.write_chain(f"learn-{name}", chain)).port


async def _check(port: int, name: str, ca_file: Path) -> EndpointReport:
    return await check_endpoint(
        Endpoint(name=name, host="127.0.0.1", port=port, sni=name, ca_file=str(ca_file), timeout=5),
        checks=NO_CHECKS,
    )


def _codes(report: EndpointReport) -> set[str]:
    return {f.code for f in report.findings}


def _analysis(report: EndpointReport) -> ChainAnalysis:
    analysis = report.backends[0].analysis
    assert analysis is not None, report.findings
    return analysis


async def _fresh_verdict(port: int, name: str, ca_file: Path) -> tuple[set[str], list[str]]:
    """Codes and verified path from a context that has learned nothing."""
    handshake._CONTEXTS.clear()
    report = await _check(port, name, ca_file)
    return _codes(report), [c.sha256 for c in _analysis(report).verified_path]


async def _learn(pki: PKI, serve: Serve, inter: Issued, ca_file: Path) -> None:
    """Verify a complete chain through ``inter`` once: the context learns ``inter``."""
    port = _serve(pki, serve, f"teacher-{inter.sha256[:8]}", [inter.leaf("teach.test"), inter])
    report = await _check(port, "teach.test", ca_file)
    assert _analysis(report).trusted, report.findings
    assert inter.der in _learned()


async def test_a_learned_intermediate_shortens_verification_and_keeps_the_whole_path(
    pki: PKI, ca: Hierarchy, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _learn(pki, serve, ca.intermediate, ca.root_file)
    used: list[int] = []
    complete = handshake._Shortcuts.complete

    def spy(self: handshake._Shortcuts, length: int, *rest: tuple[bytes, ...]) -> tuple[bytes, ...] | None:
        used.append(length)
        return complete(self, length, *rest)

    monkeypatch.setattr(handshake._Shortcuts, "complete", spy)
    leaf = ca.leaf("next.test")
    port = _serve(pki, serve, "next", [leaf, ca.intermediate])
    report = await _check(port, "next.test", ca.root_file)
    assert used == [2], "OpenSSL did not stop at the learned intermediate"
    analysis = _analysis(report)
    assert [c.sha256 for c in analysis.verified_path] == [leaf.sha256, ca.intermediate.sha256, ca.root.sha256]
    assert analysis.chain_not_after == min(leaf.not_after, ca.intermediate.not_after, ca.root.not_after)
    assert _codes(report) == set(), report.findings
    assert (_codes(report), [c.sha256 for c in analysis.verified_path]) == await _fresh_verdict(
        port, "next.test", ca.root_file
    )


async def test_a_server_sending_only_its_leaf_is_still_incomplete(
    pki: PKI, ca: Hierarchy, serve: Serve
) -> None:
    """The store now holds the intermediate, so OpenSSL alone would accept the bare
    leaf: the path is only taken when the server sent the intermediate itself."""
    await _learn(pki, serve, ca.intermediate, ca.root_file)
    port = _serve(pki, serve, "bare", [ca.leaf("bare.test")])
    report = await _check(port, "bare.test", ca.root_file)
    assert report.backends[0].handshake.verified_path is None
    assert "chain_incomplete" in _codes(report), report.findings
    assert not _analysis(report).trusted
    assert _codes(report) == (await _fresh_verdict(port, "bare.test", ca.root_file))[0]


async def test_a_leaf_with_a_forged_signature_still_fails(pki: PKI, ca: Hierarchy, serve: Serve) -> None:
    await _learn(pki, serve, ca.intermediate, ca.root_file)
    forged = ca.intermediate.leaf("forged.test", signing_key=generate_key("rsa2048"))
    port = _serve(pki, serve, "forged", [forged, ca.intermediate])
    report = await _check(port, "forged.test", ca.root_file)
    assert "chain_invalid" in _codes(report), report.findings
    assert _codes(report) == (await _fresh_verdict(port, "forged.test", ca.root_file))[0]


async def test_name_constrained_paths_are_never_learned(pki: PKI, serve: Serve) -> None:
    """A root that permits only good.test: its constraint needs the path from the root,
    so its intermediate is not trusted alone, and a leaf outside it still fails."""
    root = pki.root("Constrained Root", permitted_dns=["good.test"])
    inter = root.intermediate("Constrained Intermediate")
    ca_file = pki.write_pem("constrained-root.pem", root)
    good = _serve(pki, serve, "nc-good", [inter.leaf("a.good.test"), inter])
    report = await _check(good, "a.good.test", ca_file)
    assert _analysis(report).trusted, report.findings
    assert _learned() == set()
    evil = _serve(pki, serve, "nc-evil", [inter.leaf("evil.test"), inter])
    report = await _check(evil, "evil.test", ca_file)
    assert "chain_invalid" in _codes(report), report.findings
    assert _codes(report) == (await _fresh_verdict(evil, "evil.test", ca_file))[0]


async def test_a_longer_path_below_a_learned_intermediate_meets_the_roots_path_length(
    pki: PKI, serve: Serve
) -> None:
    """The root allows one intermediate below it. Once its intermediate is learned,
    OpenSSL would accept leaf -> sub-CA -> intermediate; the root forbids it."""
    root = pki.root("PathLen Root", path_length=1)
    inter = root.intermediate("PathLen Intermediate")
    sub = inter.intermediate("PathLen Sub CA")
    ca_file = pki.write_pem("pathlen-root.pem", root)
    await _learn(pki, serve, inter, ca_file)
    port = _serve(pki, serve, "deep", [sub.leaf("deep.test"), sub, inter])
    report = await _check(port, "deep.test", ca_file)
    assert report.backends[0].handshake.verified_path is None
    assert "chain_invalid" in _codes(report), report.findings
    assert _codes(report) == (await _fresh_verdict(port, "deep.test", ca_file))[0]


async def test_a_bundle_holding_an_intermediate_is_judged_as_without_partial_chains(
    pki: PKI, ca: Hierarchy, other_ca: Hierarchy, serve: Serve
) -> None:
    """A CA bundle with a root and a foreign intermediate (its root left out): once the
    context accepts partial chains, a path ending at that intermediate is not taken."""
    ca_file = pki.write_pem("root-plus-foreign-intermediate.pem", ca.root, other_ca.intermediate)
    await _learn(pki, serve, ca.intermediate, ca_file)
    port = _serve(pki, serve, "foreign", [other_ca.leaf("foreign.test"), other_ca.intermediate])
    report = await _check(port, "foreign.test", ca_file)
    assert report.backends[0].handshake.verified_path is None
    fresh = await _fresh_verdict(port, "foreign.test", ca_file)
    assert (_codes(report), [c.sha256 for c in _analysis(report).verified_path]) == fresh
    assert "untrusted_root" in _codes(report), report.findings
