"""certpager's chain and hostname verdicts against OpenSSL's own client.

For each case the same server is judged twice: by ``openssl s_client -connect
127.0.0.1:PORT -servername NAME -verify_return_error -verify_hostname NAME
-CAfile ROOT`` (exit status and "Verify return code") and by the probe. They
must agree on pass/fail, and where OpenSSL fails, certpager must name the same
reason as a finding. Served by Python TLS servers and by Debian nginx.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy, Issued
from tests.support.tls_server import TLSServer

from certpager.config import Endpoint
from certpager.probe.engine import check_endpoint
from certpager.probe.model import NO_CHECKS

#: Findings that make a client refuse the connection (what OpenSSL's verify judges).
REFUSING = {
    "chain_incomplete",
    "untrusted_root",
    "self_signed",
    "chain_invalid",
    "hostname_mismatch",
    "cert_expired",
    "cert_not_yet_valid",
    "chain_cert_expired",
}

#: OpenSSL X509_V_ERR_* code -> the finding certpager must give for it.
OPENSSL_TO_FINDING = {
    9: "cert_not_yet_valid",
    10: "cert_expired",
    18: "self_signed",
    19: "untrusted_root",
    20: "chain_incomplete",
    21: "chain_incomplete",
    62: "hostname_mismatch",
}


@dataclass(frozen=True)
class CrossCase:
    id: str
    chain: Callable[[PKI, Hierarchy, Hierarchy], Sequence[Issued]]
    name: str = "app.test"
    trust: str = "ca"  # "ca" or "other"
    openssl_error: int | None = None
    """The X509_V_ERR code OpenSSL must report (None: verification passes)."""
    finding: str | None = None
    """The finding certpager must give instead of the generic mapping (error 20 means
    "issuer not found" for the leaf *or* for a sent intermediate: certpager tells them apart)."""


CASES = [
    CrossCase("complete", lambda p, c, o: [c.leaf("app.test"), c.intermediate]),
    CrossCase("complete-with-root", lambda p, c, o: [c.leaf("app.test"), c.intermediate, c.root]),
    CrossCase("leaf-only", lambda p, c, o: [c.leaf("app.test")], openssl_error=20),
    CrossCase(
        "wrong-host",
        lambda p, c, o: [c.leaf("app.test"), c.intermediate],
        name="other.test",
        openssl_error=62,
    ),
    CrossCase(
        "wildcard", lambda p, c, o: [c.leaf("w", sans=["*.wild.test"]), c.intermediate], name="a.wild.test"
    ),
    CrossCase(
        "wildcard-two-labels",
        lambda p, c, o: [c.leaf("w", sans=["*.wild.test"]), c.intermediate],
        name="a.b.wild.test",
        openssl_error=62,
    ),
    CrossCase(
        "cn-only",
        lambda p, c, o: [c.leaf("app.test", sans=[]), c.intermediate],
        # OpenSSL falls back to the CN when there is no SAN at all; browsers and certpager do not.
        openssl_error=None,
    ),
    CrossCase("self-signed", lambda p, c, o: [p.self_signed("app.test")], openssl_error=18),
    CrossCase(
        "untrusted-root",
        lambda p, c, o: [c.leaf("app.test"), c.intermediate],
        trust="other",
        openssl_error=20,
        finding="untrusted_root",
    ),
    CrossCase(
        "untrusted-root-sent",
        lambda p, c, o: [c.leaf("app.test"), c.intermediate, c.root],
        trust="other",
        openssl_error=19,
    ),
    CrossCase(
        "expired",
        lambda p, c, o: [c.leaf("app.test", not_before=-91, not_after=-1), c.intermediate],
        openssl_error=10,
    ),
    CrossCase(
        "not-yet-valid",
        lambda p, c, o: [c.leaf("app.test", not_before=2, not_after=90), c.intermediate],
        openssl_error=9,
    ),
]

#: Cases where certpager is deliberately stricter than OpenSSL's CN fallback.
STRICTER = {"cn-only": "hostname_mismatch"}


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.fail("openssl CLI is not installed: apt-get install -y openssl", pytrace=False)
    return found


def s_client(port: int, name: str, ca_file: Path) -> tuple[bool, int | None, str]:
    """``(verified, verify_code, output)`` from OpenSSL's client."""
    run = subprocess.run(
        [
            _openssl(),
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            name,
            "-verify_return_error",
            "-verify_hostname",
            name,
            "-CAfile",
            str(ca_file),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    out = run.stdout + run.stderr
    codes = [int(c) for c in re.findall(r"verify error:num=(\d+)", out)]
    match = re.search(r"Verify return code: (\d+)", out)
    code = codes[0] if codes else (int(match.group(1)) if match else None)
    return run.returncode == 0 and code in (0, None), code, out


@dataclass
class Served:
    case: CrossCase
    port: int
    ca_file: Path


def _files(pki: PKI, ca: Hierarchy, other: Hierarchy) -> dict[str, tuple[Path, Path]]:
    out = {}
    for case in CASES:
        chain = list(case.chain(pki, ca, other))
        out[case.id] = pki.write_chain(f"xcheck-{case.id}", chain, key_of=chain[0])
    return out


@pytest.fixture(scope="module")
def chain_files(pki: PKI, ca: Hierarchy, other_ca: Hierarchy) -> dict[str, tuple[Path, Path]]:
    return _files(pki, ca, other_ca)


@pytest.fixture(scope="module")
def python_servers(chain_files: dict[str, tuple[Path, Path]]) -> Iterator[dict[str, int]]:
    servers = {cid: TLSServer(*files) for cid, files in chain_files.items()}
    try:
        for server in servers.values():
            server.start()
        yield {cid: s.port for cid, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def nginx_servers(
    chain_files: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    sites = [Site(cid, chain, key, server_name="_") for cid, (chain, key) in chain_files.items()]
    server = Nginx(prefix=tmp_path_factory.mktemp("nginx-xcheck"), sites=sites)
    server.start()
    try:
        yield {site.name: site.port for site in server.sites}
    finally:
        server.stop()


def _trust(case: CrossCase, ca: Hierarchy, other: Hierarchy) -> Path:
    return ca.root_file if case.trust == "ca" else other.root_file


async def _crosscheck(case: CrossCase, port: int, ca: Hierarchy, other: Hierarchy) -> None:
    ca_file = _trust(case, ca, other)
    ok, code, out = s_client(port, case.name, ca_file)
    assert ok == (case.openssl_error is None), f"openssl: code={code}\n{out[-2000:]}"
    if case.openssl_error is not None:
        assert code == case.openssl_error, out[-2000:]
    report = await check_endpoint(
        Endpoint(name=case.id, host="127.0.0.1", port=port, sni=case.name, ca_file=str(ca_file), timeout=5),
        checks=NO_CHECKS,
    )
    refusing = {f.code for f in report.findings} & REFUSING
    if case.id in STRICTER:
        assert refusing == {STRICTER[case.id]}, report.findings
        return
    assert (not refusing) == ok, f"openssl {'accepts' if ok else 'refuses'}; certpager: {sorted(refusing)}"
    expected = case.finding or (OPENSSL_TO_FINDING.get(code) if code is not None else None)
    if expected is not None:
        assert expected in refusing, (code, refusing)
    if case.finding == "untrusted_root":
        assert "chain_incomplete" not in refusing


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_python_server_verdicts_match_openssl(
    case: CrossCase, python_servers: dict[str, int], ca: Hierarchy, other_ca: Hierarchy
) -> None:
    await _crosscheck(case, python_servers[case.id], ca, other_ca)


@pytest.mark.nginx
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_nginx_verdicts_match_openssl(
    case: CrossCase, nginx_servers: dict[str, int], ca: Hierarchy, other_ca: Hierarchy
) -> None:
    await _crosscheck(case, nginx_servers[case.id], ca, other_ca)


#: Cases whose chain verifies against their trust store (dates and names aside).
VERIFIES = {
    "complete",
    "complete-with-root",
    "wrong-host",
    "wildcard",
    "wildcard-two-labels",
    "cn-only",
    "expired",
    "not-yet-valid",
}


@pytest.fixture(params=["verify-callback", "learned-intermediate", "public-chains"])
def verdict_reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The verdict recorded by the Python verify callback (the default), read once the
    context has learned the intermediate of a complete chain (verification may stop
    there), and with the chains read through pyOpenSSL's public API instead of
    OpenSSL's stacks."""
    from certpager.probe import handshake

    if request.param == "public-chains":
        monkeypatch.setattr(handshake, "_CHAINS", handshake._Chains())
    handshake._CONTEXTS.clear()  # contexts are cached with their callbacks
    yield request.param
    handshake._CONTEXTS.clear()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_verdict_during_handshake_equals_verdict_after(
    case: CrossCase,
    python_servers: dict[str, int],
    ca: Hierarchy,
    other_ca: Hierarchy,
    verdict_reading: str,
) -> None:
    """The fast path (OpenSSL verifies while the handshake runs) must judge exactly as
    verifying the chain afterwards does, and must only ever claim a clean verdict."""
    from datetime import UTC, datetime

    from certpager.config import Thresholds
    from certpager.probe import handshake as module
    from certpager.probe.analysis import analyze_chain
    from certpager.probe.handshake import handshake
    from certpager.probe.trust import get_trust_store

    trust = get_trust_store(str(_trust(case, ca, other_ca)))
    if verdict_reading == "learned-intermediate":
        teacher = await handshake("127.0.0.1", python_servers["complete"], "app.test", timeout=5, trust=trust)
        learned = {
            tail[0] for _, _, cuts in module._CONTEXTS.values() if cuts for tail in cuts.tails.values()
        }
        assert (ca.intermediate.der in learned) == (case.trust == "ca"), teacher.verified_path
    hs = await handshake("127.0.0.1", python_servers[case.id], case.name, timeout=5, trust=trust)
    assert hs.ok, hs.error
    assert isinstance(module._CHAINS, module._RawChains) == (verdict_reading != "public-chains")
    assert hs.verified_by == trust.name
    assert (hs.verified_path is not None) == (case.id in VERIFIES), hs.verified_path
    now = datetime.now(UTC)
    after = analyze_chain(hs.chain_der, case.name, now, trust, Thresholds())
    during = analyze_chain(hs.chain_der, case.name, now, trust, Thresholds(), verified_path=hs.verified_path)
    assert during == after
    if hs.verified_path is not None:
        assert [c.der for c in after.verified_path] == list(hs.verified_path)


async def test_chains_are_read_through_the_public_api_when_the_raw_reading_differs(
    python_servers: dict[str, int], ca: Hierarchy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw reader is only used after it read the first chain exactly as pyOpenSSL
    does; a difference (here: a byte lost) leaves the public API in charge."""
    from certpager.probe import handshake as module
    from certpager.probe.handshake import handshake
    from certpager.probe.trust import get_trust_store

    monkeypatch.setattr(module, "_CHAINS", None)
    monkeypatch.setattr(module._RawChains, "_der", lambda self, obj: b"\x30")
    trust = get_trust_store(str(ca.root_file))
    hs = await handshake("127.0.0.1", python_servers["complete"], "app.test", timeout=5, trust=trust)
    assert type(module._CHAINS) is module._Chains
    leaf_der = hs.chain_der[0]
    assert hs.chain_der == (leaf_der, ca.intermediate.der)
    assert hs.verified_path == (leaf_der, ca.intermediate.der, ca.root.der)
