"""Which protocol versions and weak cipher suites a server accepts.

Each test is one fresh TCP connection whose handshake stops as soon as the
server's ServerHello has been read: the version and suite the server chose are
known then, so the client never computes a key exchange, never sends its second
flight and the server never waits for it. A refusing server answers the
ClientHello with an alert (one round trip). The probes of one backend run
concurrently within the endpoint's deadline.

What the main handshake already proves is not probed again: the client offered
TLS 1.0 to 1.3, so the negotiated version is accepted and every higher one is
not (``no_tls1_3`` costs nothing). Below it, one probe offering TLS 1.0-1.1
answers both versions when the server refuses them (the common case), a second
one is needed only when it accepts TLS 1.1. SSLv3 is probed only when this
OpenSSL build can still offer it; otherwise it is reported as not testable,
never as disabled.

``weak_cipher`` (warning) is about the suite a modern client actually gets:
the main handshake's, without forward secrecy or without AEAD (so a CBC-only
server is caught). One more probe at TLS 1.2 offers only static-RSA suites; a
server that accepts one gets ``weak_cipher`` at info severity (no forward
secrecy for clients that offer nothing better). That probe is skipped when the
served certificate has an EC key (static RSA needs an RSA certificate). CBC suites accepted next to
AEAD ones are not probed: a server accepting TLS 1.0 necessarily has them, and
``tls1_0_enabled`` already says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from OpenSSL import SSL

from certpager.formats import format_seconds
from certpager.probe import findings as F
from certpager.probe.analysis import CertParseError, parse_cert
from certpager.probe.handshake import (
    VERSIONS,
    ClientOptions,
    ContextError,
    PeerClosed,
    client_context,
    describe_ssl_error,
    peer_chain,
    receive,
    send_pending,
    sni_bytes,
)
from certpager.probe.model import Finding, Handshake, Severity

_READ_SIZE = 65536

#: Protocol versions, oldest first (names as OpenSSL reports them).
VERSION_ORDER: tuple[str, ...] = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

#: What is known about one version on one backend.
VersionState = Literal["accepted", "refused", "not_testable", "not_tested", "inconclusive"]

_VERSION_CODES = {"SSLv3": "sslv3_enabled", "TLSv1": "tls1_0_enabled", "TLSv1.1": "tls1_1_enabled"}
_VERSION_WORDS = {"SSLv3": "SSLv3", "TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2"}


# --- cipher suites ------------------------------------------------------------


def suite_weaknesses(cipher: str) -> tuple[str, ...]:
    """Why a negotiated suite (OpenSSL name) is weak; empty when it has forward
    secrecy and AEAD. TLS 1.3 suites (``TLS_...``) always have both."""
    name = cipher.upper()
    if name.startswith("TLS_"):
        return ()
    out: list[str] = []
    if "NULL" in name.split("-") or name.startswith("NULL"):
        out.append("no encryption (NULL cipher)")
    if "RC4" in name:
        out.append("RC4 stream cipher")
    if "DES-CBC3" in name or "3DES" in name or name.startswith("DES-") or "-DES-" in name:
        out.append("64-bit block cipher (3DES/DES)")
    forward_secret = name.startswith(("ECDHE-", "DHE-", "EDH-"))
    if not forward_secret:
        if name.startswith(("ADH-", "AECDH-")):
            out.append("anonymous key exchange (no server authentication)")
        elif "PSK" in name or name.startswith("SRP"):
            out.append("no forward secrecy (pre-shared key)")
        else:
            out.append(_STATIC_RSA)
    aead = "GCM" in name or "CHACHA20-POLY1305" in name or "CCM" in name
    if not aead and not any("NULL" in w for w in out):
        out.append("no AEAD (CBC mode)")
    return tuple(out)


_STATIC_RSA = "no forward secrecy (static RSA key exchange)"


@functools.cache
def static_rsa_suites() -> str:
    """OpenSSL cipher list of every static-RSA suite (no forward secrecy) this
    build knows, NULL ciphers left out."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_cipher_list(b"ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    names = SSL.Connection(ctx, None).get_cipher_list()
    keep = [n for n in names if "NULL" not in n and _STATIC_RSA in suite_weaknesses(n)]
    return ":".join(keep) + ":@SECLEVEL=0"


@functools.cache
def can_offer(version: str) -> bool:
    """Whether this OpenSSL build can still offer ``version`` (SSLv3 usually not)."""
    try:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_cipher_list(b"ALL:@SECLEVEL=0")
        ctx.set_min_proto_version(VERSIONS[version])
        ctx.set_max_proto_version(VERSIONS[version])
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        with contextlib.suppress(SSL.WantReadError):
            conn.do_handshake()
        hello = conn.bio_read(_READ_SIZE)
    except (SSL.Error, ValueError, KeyError):
        return False
    return bool(hello)


# --- one stopped-early handshake -------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """What the server answered to one ClientHello."""

    accepted: bool | None
    """True: it chose a version and suite; False: it refused; None: no answer
    (connect failed, deadline) so nothing can be concluded."""
    version: str | None = None
    """Version the server chose."""
    cipher: str | None = None
    """Suite the server chose."""
    chain_der: tuple[bytes, ...] = ()
    """Certificates the server sent (only when asked to wait for them)."""
    error: str | None = None
    """Why it refused, or why nothing could be concluded, in words."""


async def server_hello(
    address: str,
    port: int,
    sni: str | None,
    options: ClientOptions,
    *,
    timeout: float,
    want_chain: bool = False,
) -> Hello:
    """Send one ClientHello and stop once the server has chosen (or, with
    ``want_chain``, once its certificates have arrived). Never raises."""
    loop = asyncio.get_running_loop()
    try:
        ctx = client_context(options)
    except ContextError as exc:
        return Hello(None, error=f"cannot set up the TLS client: {exc}")
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(max(timeout, 0.001)):
            try:
                await loop.sock_connect(sock, (address, port))
            except OSError as exc:
                return Hello(None, error=f"cannot connect: {exc.strerror or exc}")
            conn = SSL.Connection(ctx, None)
            conn.set_connect_state()
            if sni:
                conn.set_tlsext_host_name(sni_bytes(sni))
            return await _until_chosen(conn, sock, loop, want_chain)
    except TimeoutError:
        return Hello(None, error=f"no answer within {format_seconds(timeout)}")
    except Exception as exc:  # a probe never raises
        return Hello(None, error=f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        sock.close()


async def _until_chosen(
    conn: SSL.Connection, sock: socket.socket, loop: asyncio.AbstractEventLoop, want_chain: bool
) -> Hello:
    """Drive the handshake until the server has chosen (see :func:`server_hello`)."""
    got_bytes = False
    try:
        while True:
            try:
                conn.do_handshake()
                done = True
            except SSL.WantReadError:
                done = False
            except SSL.Error as exc:
                chosen = _chosen(conn, want_chain)
                if chosen is not None:
                    return chosen
                return Hello(False, error=describe_ssl_error(exc))
            chosen = _chosen(conn, want_chain)
            if chosen is not None:
                return chosen
            if done:
                return Hello(
                    True,
                    conn.get_protocol_version_name(),
                    conn.get_cipher_name(),
                    peer_chain(conn) if want_chain else (),
                )
            await send_pending(conn, sock, loop)
            data = await receive(sock, loop)
            got_bytes = True
            conn.bio_write(data)
    except PeerClosed as exc:
        # After a good main handshake, hanging up on this ClientHello is a refusal.
        return Hello(False, error=exc.describe("after its first answer" if got_bytes else ""))


def _chosen(conn: SSL.Connection, want_chain: bool) -> Hello | None:
    """A result once the server has chosen (and, if wanted, sent its certificates)."""
    cipher = conn.get_cipher_name()
    if cipher is None:
        return None
    if want_chain:
        chain = peer_chain(conn)
        if not chain:
            return None
        return Hello(True, conn.get_protocol_version_name(), cipher, chain)
    return Hello(True, conn.get_protocol_version_name(), cipher)


# --- the protocol report of one backend ---------------------------------------------


@dataclass(frozen=True)
class ProtocolReport:
    """Protocol versions and weak suites of one backend."""

    versions: dict[str, VersionState]
    """Every version of :data:`VERSION_ORDER` and what is known about it."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why a version is not testable, not tested or inconclusive."""
    negotiated: str | None = None
    """Suite the main handshake negotiated (what a modern client gets)."""
    negotiated_weaknesses: tuple[str, ...] = ()
    """Why that suite is weak (empty: forward secrecy and AEAD)."""
    static_rsa: VersionState = "not_tested"
    """Whether the server accepts a static-RSA suite (no forward secrecy) at TLS 1.2
    from a client offering nothing else: ``accepted``, ``refused``,
    ``inconclusive`` or ``not_tested``."""
    static_rsa_suite: str | None = None
    """The static-RSA suite it chose."""
    static_rsa_note: str | None = None
    """Why it refused, or why the probe was inconclusive."""
    probes: int = 0
    """Extra connections this took."""
    findings: tuple[Finding, ...] = ()
    """``tls1_0_enabled``, ``tls1_1_enabled``, ``sslv3_enabled``, ``no_tls1_3``, ``weak_cipher``."""

    def accepted(self) -> list[str]:
        """Versions known to be accepted, oldest first."""
        return [v for v in VERSION_ORDER if self.versions.get(v) == "accepted"]

    def as_json(self) -> dict[str, object]:
        """The facts, for ``certpager check --json``."""
        return {
            "protocols": dict(self.versions),
            "protocols_accepted": self.accepted(),
            "protocol_notes": dict(self.notes),
            "cipher_check": {
                "negotiated": self.negotiated,
                "negotiated_weaknesses": list(self.negotiated_weaknesses),
                "static_rsa": self.static_rsa,
                "static_rsa_suite": self.static_rsa_suite,
                "static_rsa_note": self.static_rsa_note,
            },
            "protocol_probes": self.probes,
        }


def _leaf_key_type(main: Handshake) -> str | None:
    if not main.chain_der:
        return None
    try:
        return parse_cert(main.chain_der[0]).key_type
    except CertParseError:
        return None


def known_from_main(main: Handshake) -> tuple[dict[str, VersionState], dict[str, str]]:
    """What the main handshake (offering TLS 1.0-1.3) proves without another
    connection: its version is accepted, every higher one refused; SSLv3 is not
    testable when this OpenSSL cannot offer it."""
    versions: dict[str, VersionState] = {v: "not_tested" for v in VERSION_ORDER}
    notes: dict[str, str] = {}
    negotiated = main.tls_version if main.tls_version in VERSION_ORDER else None
    if negotiated is None:
        return versions, notes
    versions[negotiated] = "accepted"
    notes[negotiated] = f"negotiated {main.cipher} by the main handshake"
    for v in VERSION_ORDER[VERSION_ORDER.index(negotiated) + 1 :]:
        versions[v] = "refused"
        notes[v] = f"the server chose {negotiated} when offered up to TLS 1.3"
    if negotiated != "SSLv3" and not can_offer("SSLv3"):
        versions["SSLv3"] = "not_testable"
        notes["SSLv3"] = "this OpenSSL build cannot offer SSLv3, so whether the server accepts it is unknown"
    return versions, notes


#: What one probing step learnt about some versions: version -> (state, note).
_Learnt = dict[str, tuple[VersionState, str]]


@dataclass(frozen=True)
class _Target:
    """Where the probes of one backend go, and with which client certificate."""

    address: str
    port: int
    sni: str | None
    timeout: float
    client_cert: str | None
    client_key: str | None

    async def hello(self, low: str, high: str, ciphers: str = "ALL:@SECLEVEL=0") -> Hello:
        """One ClientHello offering ``low`` to ``high`` with ``ciphers``."""
        options = ClientOptions(
            client_cert=self.client_cert,
            client_key=self.client_key,
            min_version=low,
            max_version=high,
            ciphers=ciphers,
            alpn=(),
        )
        return await server_hello(self.address, self.port, self.sni, options, timeout=self.timeout)


@dataclass(frozen=True)
class _StaticRsa:
    """What the static-RSA probe found."""

    state: VersionState = "not_tested"
    suite: str | None = None
    note: str | None = None
    probes: int = 0
    tls1_2: str | None = None
    """The suite it negotiated at TLS 1.2 (which proves TLS 1.2 accepted), or None."""


async def probe_protocols(
    address: str,
    port: int,
    sni: str | None,
    main: Handshake,
    *,
    timeout: float,
    client: ClientOptions | None = None,
) -> ProtocolReport:
    """Find out which versions and weak suites ``address:port`` accepts.

    Args:
        address: backend address.
        port: TLS port.
        sni: SNI to send (the endpoint's).
        main: the backend's main handshake (it offered TLS 1.0-1.3).
        timeout: seconds left of the endpoint's deadline.
        client: client certificate settings (only the certificate files are used).
    """
    versions, notes = known_from_main(main)
    target = _Target(
        address,
        port,
        sni,
        timeout,
        client.client_cert if client else None,
        client.client_key if client else None,
    )
    negotiated = main.tls_version if main.tls_version in VERSION_ORDER else None
    below = [v for v in VERSION_ORDER if versions[v] == "not_tested"]
    if "TLSv1.2" in below:
        below.remove("TLSv1.2")  # not a problem either way; learnt from the static-RSA probe if it accepts
        notes["TLSv1.2"] = "not probed separately (the server prefers TLS 1.3)"
    (old, old_probes), (ssl3, ssl3_probes), rsa = await asyncio.gather(
        _old_versions(target, [v for v in ("TLSv1", "TLSv1.1") if v in below]),
        _sslv3(target, "SSLv3" in below),
        _static_rsa(target, main, negotiated),
    )
    for learnt in (old, ssl3):
        for v, (state, note) in learnt.items():
            versions[v], notes[v] = state, note
    if rsa.tls1_2 is not None and versions["TLSv1.2"] != "accepted":
        versions["TLSv1.2"] = "accepted"
        notes["TLSv1.2"] = f"negotiated {rsa.tls1_2}"
    neg_weak = suite_weaknesses(main.cipher) if main.cipher else ()
    return ProtocolReport(
        versions=versions,
        notes=notes,
        negotiated=main.cipher,
        negotiated_weaknesses=neg_weak,
        static_rsa=rsa.state,
        static_rsa_suite=rsa.suite,
        static_rsa_note=rsa.note,
        probes=old_probes + ssl3_probes + rsa.probes,
        findings=_protocol_findings(main, versions, notes, neg_weak, rsa.suite),
    )


async def _old_versions(target: _Target, olds: list[str]) -> tuple[_Learnt, int]:
    """TLS 1.0 and 1.1 (those of ``olds``): one probe offering both, a second one only
    when the server chose the higher; what was learnt and the probes it took."""
    if not olds:
        return {}, 0
    first = await target.hello(olds[0], olds[-1])
    if first.accepted is None:
        return {v: ("inconclusive", first.error or "no answer") for v in olds}, 1
    if not first.accepted:
        return {v: ("refused", first.error or "refused") for v in olds}, 1
    learnt: _Learnt = {}
    chosen = first.version or olds[-1]
    if chosen in olds:
        learnt[chosen] = ("accepted", f"negotiated {first.cipher}")
    for v in olds:
        if VERSION_ORDER.index(v) > VERSION_ORDER.index(chosen):
            learnt[v] = ("refused", f"the server chose {chosen} when offered up to {olds[-1]}")
    rest = [v for v in olds if VERSION_ORDER.index(v) < VERSION_ORDER.index(chosen)]
    if not rest:
        return learnt, 1
    second = await target.hello(rest[0], rest[-1])
    for v in rest:
        if second.accepted is None:
            learnt[v] = ("inconclusive", second.error or "no answer")
        elif second.accepted and second.version == v:
            learnt[v] = ("accepted", f"negotiated {second.cipher}")
        else:
            learnt[v] = ("refused", second.error or f"the server chose {second.version}")
    return learnt, 2


async def _sslv3(target: _Target, wanted: bool) -> tuple[_Learnt, int]:
    """SSLv3, when ``wanted``: what was learnt and the probes it took."""
    if not wanted:
        return {}, 0
    hello = await target.hello("SSLv3", "SSLv3")
    state: VersionState = (
        "inconclusive" if hello.accepted is None else ("accepted" if hello.accepted else "refused")
    )
    return {"SSLv3": (state, hello.error or f"negotiated {hello.cipher}")}, 1


async def _static_rsa(target: _Target, main: Handshake, negotiated: str | None) -> _StaticRsa:
    """Whether the server accepts a static-RSA suite at TLS 1.2 (only asked of servers that
    speak TLS 1.2+ with an RSA certificate: static RSA needs one)."""
    if negotiated not in ("TLSv1.2", "TLSv1.3"):
        return _StaticRsa()
    key_type = _leaf_key_type(main)
    if key_type not in ("RSA", None):
        # Static RSA needs an RSA certificate; a server with a second, RSA
        # certificate next to this one is the only way it could be accepted.
        return _StaticRsa(note=f"not probed: the server's certificate has an {key_type} key")
    hello = await target.hello("TLSv1.2", "TLSv1.2", static_rsa_suites())
    if hello.accepted is None:
        return _StaticRsa("inconclusive", note=hello.error, probes=1)
    if not hello.accepted:
        return _StaticRsa("refused", note=hello.error, probes=1)
    tls1_2 = hello.cipher if hello.version == "TLSv1.2" else None
    return _StaticRsa("accepted", hello.cipher, hello.error, probes=1, tls1_2=tls1_2)


def _protocol_findings(
    main: Handshake,
    versions: dict[str, VersionState],
    notes: dict[str, str],
    neg_weak: tuple[str, ...],
    rsa_suite: str | None,
) -> tuple[Finding, ...]:
    """Old versions accepted, TLS 1.3 missing, weak suites."""
    label = (main.label,)
    negotiated = main.tls_version if main.tls_version in VERSION_ORDER else None
    found: list[Finding] = []
    for v, code in _VERSION_CODES.items():
        if versions[v] == "accepted":
            found.append(
                F.make(
                    code,
                    f"the server accepts {_VERSION_WORDS[v]} ({notes.get(v, '')}); it is deprecated "
                    "(RFC 8996) and modern clients refuse it",
                    backends=label,
                )
            )
    if negotiated is not None and negotiated != "TLSv1.3":
        found.append(
            F.make(
                "no_tls1_3",
                f"the server chose {_VERSION_WORDS.get(negotiated, negotiated)} although the client "
                "offered TLS 1.3: TLS 1.3 is not enabled",
                backends=label,
            )
        )
    if neg_weak:
        found.append(
            F.make(
                "weak_cipher",
                f"a modern client gets {main.cipher} ({negotiated}): " + ", ".join(neg_weak),
                backends=label,
            )
        )
    if rsa_suite and not neg_weak:
        found.append(
            F.make(
                "weak_cipher",
                f"the server also accepts {rsa_suite} (static RSA key exchange: no forward secrecy) "
                "from clients that offer nothing better; modern clients do not use it",
                severity=Severity.INFO,
                backends=label,
            )
        )
    return tuple(found)


def merge_versions(reports: Sequence[ProtocolReport]) -> dict[str, VersionState]:
    """Endpoint view: a version is accepted when any backend accepts it."""
    rank = {"accepted": 4, "inconclusive": 3, "refused": 2, "not_testable": 1, "not_tested": 0}
    out: dict[str, VersionState] = {}
    for v in VERSION_ORDER:
        states = [r.versions.get(v, "not_tested") for r in reports]
        out[v] = max(states, key=lambda s: rank[s]) if states else "not_tested"
    return out


__all__ = [
    "VERSION_ORDER",
    "Hello",
    "ProtocolReport",
    "can_offer",
    "known_from_main",
    "merge_versions",
    "probe_protocols",
    "server_hello",
    "static_rsa_suites",
    "suite_weaknesses",
]

with contextlib.suppress(Exception):  # warm the caches at import; failures show at probe time
    static_rsa_suites()
