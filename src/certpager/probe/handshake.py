"""One fresh TCP + TLS handshake, driven by asyncio over a pyOpenSSL memory BIO.

No thread per handshake, no session reuse. The handshake never fails over
trust: when given a trust store, OpenSSL verifies the chain as sent while the
handshake runs (``VERIFY_NONE`` plus a callback that records the first error, so
the handshake always completes) and a clean verdict comes back as
``Handshake.verified_path``; anything else is judged afterwards, from the chain
exactly as sent, by :mod:`certpager.probe.analysis`. Every failure becomes a
:class:`Handshake` with an ``error_code``; nothing raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from OpenSSL import SSL, crypto

from certpager.errors import ContextError as ContextError
from certpager.errors import PeerClosed as PeerClosed
from certpager.errors import ResolveError as ResolveError
from certpager.formats import format_seconds
from certpager.probe import _openssl
from certpager.probe.model import Handshake, Timings
from certpager.probe.trust import TrustStore

_READ_SIZE = 65536

#: Protocol versions by name, for callers that pin a version (deeper checks).
VERSIONS: dict[str, int] = {
    "SSLv3": SSL.SSL3_VERSION,
    "TLSv1": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}

#: Cipher list of the default probe: what OpenSSL offers by default, without the
#: security-level floor so that weak servers still complete and can be reported.
DEFAULT_CIPHERS = "DEFAULT:@SECLEVEL=0"


@dataclass(frozen=True)
class ClientOptions:
    """How the client side of a probe handshake is configured."""

    client_cert: str | None = None
    """PEM certificate (chain) file offered when the server asks."""
    client_key: str | None = None
    """PEM private key of ``client_cert``."""
    min_version: str | None = "TLSv1"
    """Lowest protocol offered (a key of :data:`VERSIONS`)."""
    max_version: str | None = None
    """Highest protocol offered; None means the library maximum."""
    ciphers: str = DEFAULT_CIPHERS
    """OpenSSL cipher list for TLS 1.2 and below."""
    tls13_ciphers: str | None = None
    """TLS 1.3 suites; None means the library default."""
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    """ALPN protocols offered."""


#: Client contexts by (options, id of the trust store), with the intermediates each
#: has learned; the store is kept alive with its context so that the id cannot be
#: reused.
_CONTEXTS: dict[tuple[ClientOptions, int], tuple[SSL.Context, TrustStore | None, _Shortcuts | None]] = {}


@dataclass
class _State:
    """Per-connection facts gathered by the callbacks."""

    cert_requested: bool = False
    verify_error: int | None = None
    """The first X509_V_ERR_* code OpenSSL reported while verifying the chain."""


#: OpenSSL's SSL_CB_LOOP: the info callback's call for a state the handshake entered.
_CB_LOOP = 0x01


def _info_callback(conn: SSL.Connection, where: int, ret: int) -> None:
    if not where & _CB_LOOP:
        return
    if b"certificate request" in conn.get_state_string():
        state = conn.get_app_data()
        if isinstance(state, _State):
            state.cert_requested = True


def _watch_cert_requests(ctx: SSL.Context) -> bool:
    """Note a server's CertificateRequest with OpenSSL's certificate callback.

    OpenSSL calls it on a client only when the server asks for a certificate, so a
    handshake with a server that does not ask pays nothing, where the info callback
    (the public way, through pyOpenSSL) runs on every state of every handshake (cost:
    docs/performance.md). pyOpenSSL does not wrap ``SSL_CTX_set_cert_cb``: False when
    :mod:`certpager.probe._openssl` cannot install it, and the caller keeps the info
    callback.
    """
    return _openssl.on_certificate_request(ctx, _note_cert_request)


def _note_cert_request(conn: SSL.Connection) -> None:
    state = conn.get_app_data()
    if isinstance(state, _State):
        state.cert_requested = True


def _verify_callback(conn: SSL.Connection, cert: Any, errnum: int, depth: int, ok: int) -> bool:
    """Record the first verification error and let the handshake go on."""
    if not ok:
        state = conn.get_app_data()
        if isinstance(state, _State) and state.verify_error is None:
            state.verify_error = errnum
    return True


#: The groups OpenSSL 3.5+ offers by default, in its order, with one difference: a
#: key share for X25519 only. OpenSSL's default also sends an X25519MLKEM768 share,
#: whose key generation is a large part of the CPU time of a ClientHello (figures:
#: docs/performance.md) and is wasted on the many servers that cannot use it. A server that wants
#: the hybrid still gets it: it is listed, and the server asks for its share with a
#: HelloRetryRequest (one more round trip, same result). ``?`` skips a group this
#: OpenSSL does not know.
KEY_EXCHANGE_GROUPS = (
    "?X25519MLKEM768:?SecP256r1MLKEM768:?curveSM2MLKEM768:?*X25519:?secp256r1:?X448"
    ":?secp384r1:?secp521r1:?curveSM2:?ffdhe2048:?ffdhe3072"
)


def _offer_groups(ctx: SSL.Context) -> bool:
    """Offer :data:`KEY_EXCHANGE_GROUPS`; False (library defaults kept) when this
    OpenSSL or pyOpenSSL's bindings cannot take the list."""
    return _openssl.set_groups(ctx, KEY_EXCHANGE_GROUPS)


def client_context(options: ClientOptions, trust: TrustStore | None = None) -> SSL.Context:
    """Build (once per distinct options and trust store) the client context.

    With ``trust``, OpenSSL verifies the server's chain against it during the
    handshake (dates ignored, like :mod:`certpager.probe.analysis`), without ever
    failing the handshake over it.

    Raises:
        ContextError: the client certificate or key cannot be loaded, or the
            cipher/protocol settings are not supported by this OpenSSL.
    """
    return _client(options, trust)[0]


def _client(options: ClientOptions, trust: TrustStore | None) -> tuple[SSL.Context, _Shortcuts | None]:
    """:func:`client_context` and the context's learned intermediates (None
    without a trust store, or when the store's anchors are not known one by one)."""
    key = (options, id(trust))
    cached = _CONTEXTS.get(key)
    if cached is not None:
        return cached[0], cached[2]
    try:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_verify(SSL.VERIFY_NONE)
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_cipher_list(options.ciphers.encode())
        if options.tls13_ciphers is not None:
            ctx.set_tls13_ciphersuites(options.tls13_ciphers.encode())
        if options.min_version is not None:
            ctx.set_min_proto_version(VERSIONS[options.min_version])
        if options.max_version is not None:
            ctx.set_max_proto_version(VERSIONS[options.max_version])
        if options.alpn:
            ctx.set_alpn_protos([p.encode() for p in options.alpn])
        _offer_groups(ctx)
        if not _watch_cert_requests(ctx):
            ctx.set_info_callback(_info_callback)
        if options.client_cert and options.client_key:
            ctx.use_certificate_chain_file(options.client_cert)
            ctx.use_privatekey_file(options.client_key)
            ctx.check_privatekey()
        if trust is not None:
            trust.load_into(ctx)
            ctx.set_verify(SSL.VERIFY_NONE, _verify_callback)
    except SSL.Error as exc:
        raise ContextError(describe_ssl_error(exc)) from None
    except OSError as exc:
        raise ContextError(str(exc)) from None
    shortcuts = _Shortcuts.for_context(ctx, trust) if trust is not None else None
    _CONTEXTS[key] = (ctx, trust, shortcuts)
    return ctx, shortcuts


def sni_bytes(name: str) -> bytes:
    """The SNI of ``name``: IDNA-encoded (``xn--`` labels); plain ASCII names as they are,
    without the cost of the pure-Python IDNA codec on every connection."""
    return name.encode("ascii") if name.isascii() else name.encode("idna")


# --- DNS -------------------------------------------------------------------

_DNS_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="certpager-dns")


async def resolve(host: str, port: int, timeout: float) -> list[tuple[int, str]]:
    """Every distinct ``(family, address)`` of ``host``, IPv4 first, within ``timeout``.

    Runs in a bounded thread pool: ``getaddrinfo`` blocks, and a stuck resolver
    must neither stall the event loop nor spawn unbounded threads.
    """
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(
        _DNS_POOL, socket.getaddrinfo, host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
    )
    try:
        async with asyncio.timeout(timeout):
            infos = await fut
    except TimeoutError:
        raise ResolveError(f"DNS lookup of {host} timed out after {format_seconds(timeout)}") from None
    except socket.gaierror as exc:
        raise ResolveError(f"{host} does not resolve: {exc.strerror}") from None
    except (OSError, UnicodeError) as exc:
        raise ResolveError(f"{host} does not resolve: {exc}") from None
    seen: dict[str, int] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen and family in (socket.AF_INET, socket.AF_INET6):
            seen[addr] = family
    out = [(fam, addr) for addr, fam in seen.items()]
    out.sort(key=lambda item: 0 if item[0] == socket.AF_INET else 1)
    if not out:
        raise ResolveError(f"{host} has no A or AAAA address")
    return out


# --- errors in words ---------------------------------------------------------

#: TLS alert descriptions (as OpenSSL spells them after "sslv3 alert", "tlsv1 alert",
#: "tlsv13 alert" or, in OpenSSL 3, "tls alert") in plain words.
_ALERTS = {
    "handshake failure": "the server refused the handshake (no protocol, cipher or signature algorithm in common, or it needs something the client did not offer)",
    "protocol version": "the server refused the protocol version offered",
    "certificate required": "the server requires a client certificate",
    "bad certificate": "the server rejected the client certificate",
    "unknown ca": "the server does not trust the client certificate's CA",
    "certificate expired": "the server says the client certificate has expired",
    "certificate revoked": "the server says the client certificate is revoked",
    "certificate unknown": "the server could not accept the client certificate",
    "unsupported certificate": "the server does not support the client certificate's type",
    "decode error": "the server could not decode the client's message",
    "decrypt error": "the server could not verify the client's handshake signature",
    "unrecognized name": "the server does not know the name sent in SNI",
    "internal error": "the server hit an internal error",
    "access denied": "the server denied access",
    "insufficient security": "the server demands stronger security than offered",
    "illegal parameter": "the server sent an illegal parameter",
    "unexpected message": "the server received a message it did not expect",
    "no application protocol": "the server supports none of the ALPN protocols offered",
    "inappropriate fallback": "the server detected a protocol downgrade",
}

#: Other OpenSSL reason strings in plain words.
_REASONS = {
    "wrong version number": "the server did not answer with TLS (wrong version number: is this port plain HTTP or another protocol?)",
    "packet length too long": "the server sent a record that is too long (not TLS?)",
    "record layer failure": "the server sent data that is not a TLS record",
    "excessive message size": "the server sent a handshake message larger than clients accept (certificate chain too large?)",
    "unexpected eof while reading": "the server closed the connection during the handshake",
    "no protocols available": "no protocol version in common with the server",
    "unsupported protocol": "the server only speaks a protocol version this client does not offer",
    "no shared cipher": "no cipher suite in common with the server",
    "no ciphers available": "no cipher suite this client may offer at this protocol version",
    "unknown protocol": "the server did not answer with TLS",
    "bad record type": "the server sent an invalid TLS record",
    "http request": "the server spoke HTTP, not TLS",
}

_ALERT_RE = re.compile(r"^(?:sslv3|tlsv1|tlsv13|tls)\s+(?:alert\s+)?(.+)$")


def _plain(reason: str) -> str | None:
    """Plain words for one OpenSSL reason string, or None."""
    text = reason.strip().lower()
    m = _ALERT_RE.match(text)
    if m and m.group(1) in _ALERTS:
        return f"TLS alert from the server: {_ALERTS[m.group(1)]}"
    return next((w for key, w in _REASONS.items() if key in text), None)


def describe_ssl_error(exc: BaseException) -> str:
    """OpenSSL's error stack in plain words, keeping the library's reason string."""
    reasons: list[str] = []
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if args and isinstance(args[0], list):
        for item in args[0]:
            if isinstance(item, tuple) and len(item) >= 3:
                reasons.append(str(item[2]))
    if isinstance(exc, SSL.SysCallError):
        code = args[0] if args else None
        if code == -1 or code == 0:
            return "the server closed the connection during the handshake"
        if isinstance(code, int) and code == errno.ECONNRESET:
            return "the server reset the connection during the handshake"
        return f"socket error during the handshake: {args[1] if len(args) > 1 else code}"
    if isinstance(exc, SSL.ZeroReturnError):
        return "the server closed the TLS connection"
    if not reasons:
        return str(exc) or type(exc).__name__
    words = []
    for reason in reasons:
        plain = _plain(reason)
        words.append(f"{plain} [{reason}]" if plain else reason)
    return "; ".join(dict.fromkeys(words))


# --- the handshake ---------------------------------------------------------


async def send_pending(conn: SSL.Connection, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """Send everything OpenSSL has queued for the peer.

    Raises:
        PeerClosed: the peer reset or closed the connection.
    """
    while True:
        try:
            data = conn.bio_read(_READ_SIZE)
        except SSL.WantReadError:
            return
        if not data:
            return
        try:
            await loop.sock_sendall(sock, data)
        except OSError as exc:
            raise PeerClosed(reset=isinstance(exc, ConnectionResetError)) from None


async def receive(sock: socket.socket, loop: asyncio.AbstractEventLoop) -> bytes:
    """Read what the peer sent (at least one byte).

    Raises:
        PeerClosed: the peer reset or closed the connection.
    """
    try:
        data = await loop.sock_recv(sock, _READ_SIZE)
    except OSError as exc:
        raise PeerClosed(reset=isinstance(exc, ConnectionResetError)) from None
    if not data:
        raise PeerClosed(reset=False)
    return data


def peer_chain(conn: SSL.Connection) -> tuple[bytes, ...]:
    """The certificates the peer sent, as DER, in order (empty if none yet)."""
    try:
        return _Chains().sent(conn)[1]
    except SSL.Error:
        return ()


def _sent_and_verified(
    conn: SSL.Connection, state: _State, trust: TrustStore | None, shortcuts: _Shortcuts | None = None
) -> tuple[tuple[bytes, ...], tuple[bytes, ...] | None]:
    """The chain as sent (DER, in order) and the path OpenSSL verified against
    ``trust`` during the handshake (leaf first), or None when verification reported
    an error (or did not run): analysis then verifies the chain as sent itself.

    The verified path holds the very certificates the peer sent plus the anchor
    from the store, so each is matched by its OpenSSL object and its DER reused;
    only anchors are encoded, once each. A path that stops at an intermediate the
    context learned (see :class:`_Shortcuts`) is completed with the rest of the
    path that intermediate was verified with.
    """
    chains = _chains(conn)
    try:
        objects, sent = chains.sent(conn)
    except SSL.Error:
        return (), None
    if trust is None or not sent:
        return sent, None
    if state.verify_error is not None:
        return sent, None
    try:
        chain = chains.verified(conn)
    except SSL.Error:
        return sent, None
    if not chain:
        return sent, None
    if shortcuts is not None:
        tail = shortcuts.tails.get(chain[-1])
        if tail is not None:
            return sent, shortcuts.complete(len(chain), sent, tail)
        if chain[-1] not in shortcuts.roots:
            return sent, None  # partial chains are accepted for learned intermediates only
    known = dict(zip(objects, sent, strict=True))
    path = tuple(known.get(c) or _anchor_der(c, chains) for c in chain)
    if path[0] != sent[0]:
        return sent, None
    if shortcuts is not None and len(path) >= 3 and chain[1] in known:
        shortcuts.learn(path)
    return sent, path


class _Chains:
    """A finished connection's chains as OpenSSL objects (compared by address) and
    DER, through pyOpenSSL's public API: a wrapper object per certificate."""

    def sent(self, conn: SSL.Connection) -> tuple[list[Any], tuple[bytes, ...]]:
        """The certificates the peer sent: their OpenSSL objects and DER, in order."""
        certs = conn.get_peer_cert_chain() or []
        return [_key(c) for c in certs], tuple(
            crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in certs
        )

    def verified(self, conn: SSL.Connection) -> list[Any]:
        """The OpenSSL objects of the verified path, leaf first (empty: none)."""
        return [_key(c) for c in conn.get_verified_chain() or []]

    def keep(self, obj: Any) -> tuple[Any, bytes]:
        """``(owner, DER)`` of an object of :meth:`verified`; the owner keeps it alive."""
        if isinstance(obj, crypto.X509):
            return obj, crypto.dump_certificate(crypto.FILETYPE_ASN1, obj)
        cert = _openssl.wrap(obj)  # an OpenSSL pointer: see _key
        return cert, crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)


#: :class:`_Chains` read straight from OpenSSL (see :mod:`certpager.probe._openssl`).
_RawChains = _openssl.RawChains


_CHAINS: _Chains | _RawChains | None = None


def _chains(conn: SSL.Connection) -> _Chains | _RawChains:
    """:class:`_RawChains` when pyOpenSSL's bindings offer what it needs and it reads
    the first connection's chain exactly as the public API does; else :class:`_Chains`."""
    global _CHAINS
    if _CHAINS is None:
        public = _Chains()
        try:
            raw = _RawChains.create()
            if raw is None:
                _CHAINS = public
                return public
            expected = public.sent(conn)
            if not expected[1]:
                return public  # nothing to compare: decided on the next connection
            if raw.sent(conn) != expected or raw.verified(conn) != public.verified(conn):
                _CHAINS = public
                return public
            _CHAINS = raw
        except Exception:
            _CHAINS = public
    return _CHAINS


@dataclass(frozen=True)
class FastPaths:
    """Which shortcuts through pyOpenSSL's private bindings this process uses."""

    bindings: bool
    """pyOpenSSL's private bindings can be reached (:mod:`certpager.probe._openssl`)."""
    raw_chains: bool | None
    """Chains are read from OpenSSL's stacks; None until a first chain decided it."""


def fast_paths() -> FastPaths:
    """The shortcuts in use now (for tests that must fail when one is lost)."""
    return FastPaths(
        bindings=_openssl.available(),
        raw_chains=None if _CHAINS is None else isinstance(_CHAINS, _RawChains),
    )


#: Intermediates one context learns at most (each is one certificate in its store).
_MAX_LEARNED = 256
#: Extensions whose meaning depends on the whole path from the root: a path that
#: holds one is never shortened.
_PATH_EXTENSIONS = frozenset(
    {
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.INHIBIT_ANY_POLICY,
    }
)


@dataclass
class _Shortcuts:
    """Intermediates a client context has verified up to one of its roots, trusted
    from then on as anchors of that context (OpenSSL's partial chains).

    A fleet's endpoints mostly send the same intermediate, and checking its
    signature with the root's key (an ECDSA or RSA verification per handshake, the
    largest CPU cost of verifying) gives the same answer every time: dates are not
    part of the in-handshake verdict. After one full verification, a chain through
    that intermediate costs the leaf's signature only. The verdict stays the full
    path's because a shortened path is only accepted when

    - it has the same shape: leaf, then the learned intermediate (a longer path
      below it would meet the root's path-length limit differently);
    - the server sent that intermediate itself (a server sending only its leaf
      must still fail with an incomplete chain; analysis judges it from the chain
      as sent);
    - no certificate of the learned path has name or policy constraints, whose
      checks need the path from the root.

    Any other path that ends short of a root (a CA bundle holding an intermediate)
    is handed to analysis, which verifies with the trust store itself, never with
    partial chains. The context's own store is the only one changed.
    """

    store: crypto.X509Store
    roots: frozenset[Any]
    """OpenSSL objects of the store's self-issued anchors (how a full path ends)."""
    tails: dict[Any, tuple[bytes, ...]]
    """Learned intermediate (OpenSSL object in the store) -> its DER and the DER of
    each certificate above it, up to the root, as verified."""
    tried: dict[bytes, crypto.X509 | None]
    """DER of every intermediate considered -> the object added (None: refused)."""

    @classmethod
    def for_context(cls, ctx: SSL.Context, trust: TrustStore) -> _Shortcuts | None:
        store = ctx.get_cert_store()
        if store is None or not trust.certs:
            return None  # OpenSSL's default paths: anchors come and go by lookup
        roots = frozenset(_pointer(c) for c in trust.roots)
        return cls(store=store, roots=roots - {None}, tails={}, tried={})

    def complete(
        self, length: int, sent: tuple[bytes, ...], tail: tuple[bytes, ...]
    ) -> tuple[bytes, ...] | None:
        """The full path of a verification that stopped at a learned intermediate."""
        if length == 2 and tail[0] in sent[1:]:
            return (sent[0], *tail)
        return None

    def learn(self, path: tuple[bytes, ...]) -> None:
        """Trust ``path[1]``, sent by the server and verified up to ``path[-1]`` (a
        root of the store), as an anchor of this context from now on."""
        der = path[1]
        if der in self.tried or len(self.tried) >= _MAX_LEARNED:
            return
        self.tried[der] = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # odd certificates (negative serials): not learned
                certs = [x509.load_der_x509_certificate(d) for d in path[1:]]
            inter = certs[0]
            constraints = inter.extensions.get_extension_for_class(x509.BasicConstraints).value
            if not constraints.ca or _self_issued(inter):
                return
            if any(ext.oid in _PATH_EXTENSIONS for cert in certs for ext in cert.extensions):
                return
            anchor = crypto.X509.from_cryptography(inter)
            self.store.add_cert(anchor)
            self.store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)  # may end at a learned one
        except Exception:
            return  # unreadable or refused by OpenSSL: keep verifying in full
        self.tried[der] = anchor
        if _pointer(anchor) is not None:
            self.tails[_pointer(anchor)] = path[1:]


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject.public_bytes() == cert.issuer.public_bytes()


def _key(cert: crypto.X509) -> Any:
    """What identifies ``cert`` in a chain: its OpenSSL object, else the wrapper
    (which compares by content)."""
    pointer = _pointer(cert)
    return pointer if pointer is not None else cert


_pointer = _openssl.pointer


#: DER of trust anchors by their OpenSSL object, with an owner of that object that
#: keeps it alive, so that its address cannot be reused by another certificate.
_ANCHORS: dict[Any, tuple[Any, bytes]] = {}
_MAX_ANCHORS = 512


def _anchor_der(obj: Any, chains: _Chains | _RawChains) -> bytes:
    cached = _ANCHORS.get(obj)
    if cached is not None:
        return cached[1]
    owner, der = chains.keep(obj)
    if len(_ANCHORS) < _MAX_ANCHORS:
        _ANCHORS[owner] = (owner, der)
    return der


def _client_ca_names(conn: SSL.Connection) -> tuple[str, ...]:
    try:
        names = conn.get_client_ca_list()
    except SSL.Error:
        return ()
    out = []
    for name in names:
        try:
            out.append(x509.Name.from_rfc4514_string(_x509name_rfc4514(name)).rfc4514_string())
        except Exception:
            out.append(str(name))
    return tuple(out)


def _x509name_rfc4514(name: Any) -> str:
    parts = []
    for key, value in reversed(name.get_components()):
        k = key.decode("ascii", "replace")
        v = value.decode("utf-8", "replace")
        v = v.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+").replace("=", "\\=")
        parts.append(f"{k}={v}")
    return ",".join(parts)


async def _await_client_verdict(
    conn: SSL.Connection, sock: socket.socket, loop: asyncio.AbstractEventLoop, wait: float
) -> str | None:
    """After a TLS 1.3 handshake the server judges the client certificate *after*
    the client's Finished: listen briefly for its alert or close.

    Returns the reason it refused, or None when no refusal arrived in time.
    """
    try:
        async with asyncio.timeout(wait):
            while True:
                data = await receive(sock, loop)
                conn.bio_write(data)
                try:
                    conn.recv(_READ_SIZE)
                    return None  # application data: the server accepted us
                except SSL.WantReadError:
                    continue  # e.g. NewSessionTicket; keep listening
                except SSL.ZeroReturnError:
                    return "the server closed the connection after the handshake"
                except SSL.Error as exc:
                    return describe_ssl_error(exc)
    except TimeoutError:
        return None
    except PeerClosed as exc:
        return exc.describe("right after the handshake")


async def handshake(
    address: str,
    port: int,
    sni: str | None,
    *,
    timeout: float = 10.0,
    options: ClientOptions | None = None,
    family: int | None = None,
    dns_ms: float | None = 0.0,
    budget: float | None = None,
    trust: TrustStore | None = None,
) -> Handshake:
    """Connect to ``address:port`` and complete one fresh TLS handshake.

    Args:
        address: an IP address (resolution happens before, see :func:`resolve`).
        port: TCP port.
        sni: server name to send, or None for no SNI.
        timeout: overall deadline for connect + handshake; a server trickling
            bytes cannot stretch it.
        options: client settings (versions, ciphers, client certificate).
        family: socket family; guessed from ``address`` when None.
        dns_ms: time spent resolving, carried into the timings.
        budget: the configured deadline to name in timeout messages (default:
            ``timeout``; the engine passes the endpoint's whole deadline, of
            which ``timeout`` is what was left).
        trust: verify the chain against this store during the handshake; a clean
            verdict is returned as ``verified_path`` (it never fails the handshake).

    Returns:
        A :class:`Handshake`; on failure ``error_code`` and ``error`` say why.
    """
    options = options or ClientOptions()
    run = _Attempt(address, port, sni, options, dns_ms)
    try:
        ctx, shortcuts = _client(options, trust)
    except ContextError as exc:
        return run.result("handshake_failed", f"cannot set up the TLS client: {exc}")
    loop = asyncio.get_running_loop()
    fam = family if family is not None else (socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock: socket.socket | None = None
    conn: SSL.Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            refused = await _connect(run, sock, loop)
            if refused is not None:
                return refused
            conn = SSL.Connection(ctx, None)
            conn.set_app_data(run.state)
            conn.set_connect_state()
            if sni:
                conn.set_tlsext_host_name(sni_bytes(sni))
            failed = await _exchange(run, conn, sock, loop)
            if failed is not None:
                return failed
            return await _completed(run, conn, sock, loop, timeout, trust, shortcuts)
    except TimeoutError:
        return _timed_out(run, conn, budget or timeout)
    except PeerClosed as exc:
        if conn is not None:
            return _failed(run.result, conn, run.state, options, str(exc), None)
        return run.result("handshake_failed", str(exc))
    except Exception as exc:
        return run.result("handshake_failed", f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        if sock is not None:
            sock.close()


class _Attempt:
    """One handshake attempt: its target, its clock and what the callbacks noted, from
    which every outcome is reported (:meth:`result`)."""

    __slots__ = ("address", "dns_ms", "options", "port", "sni", "start", "state", "t_connect", "t_handshake")

    def __init__(
        self, address: str, port: int, sni: str | None, options: ClientOptions, dns_ms: float | None
    ) -> None:
        self.address, self.port, self.sni = address, port, sni
        self.options, self.dns_ms = options, dns_ms
        self.start = time.perf_counter()
        self.state = _State()
        self.t_connect: float | None = None
        """Milliseconds to the TCP connection (None: not connected)."""
        self.t_handshake: float | None = None
        """Milliseconds of the completed TLS handshake."""

    def result(self, error_code: str | None = None, error: str | None = None, **kw: Any) -> Handshake:
        """The :class:`Handshake` to report, with the timings so far."""
        elapsed = (time.perf_counter() - self.start) * 1000
        t_connect, t_handshake = self.t_connect, self.t_handshake
        if t_handshake is None and t_connect is not None and error_code:
            t_handshake = elapsed - t_connect
        return Handshake(
            address=self.address,
            port=self.port,
            sni=self.sni,
            timings=Timings(
                dns_ms=self.dns_ms,
                connect_ms=t_connect,
                handshake_ms=t_handshake,
                total_ms=elapsed + (self.dns_ms or 0.0),
            ),
            error_code=error_code,
            error=error,
            client_cert_requested=self.state.cert_requested,
            client_cert_sent=bool(self.options.client_cert),
            **kw,
        )


async def _connect(run: _Attempt, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> Handshake | None:
    """Open the TCP connection; the failed :class:`Handshake` when it cannot be opened."""
    label = run.address, run.port
    try:
        await loop.sock_connect(sock, label)
    except ConnectionRefusedError:
        return run.result("connect_refused", f"connection refused by {_label(*label)}")
    except OSError as exc:
        # asyncio reports async failures as OSError(errno, "Connect call failed ..."):
        # the errno is the reason worth showing.
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        return run.result("connect_failed", f"cannot connect to {_label(*label)}: {why}")
    run.t_connect = (time.perf_counter() - run.start) * 1000
    return None


async def _exchange(
    run: _Attempt, conn: SSL.Connection, sock: socket.socket, loop: asyncio.AbstractEventLoop
) -> Handshake | None:
    """Drive the TLS handshake to its end; the failed :class:`Handshake` when OpenSSL
    gives up on it."""
    hs_start = time.perf_counter()
    while True:
        try:
            conn.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        except SSL.Error as exc:
            with contextlib.suppress(Exception):
                await send_pending(conn, sock, loop)  # deliver our alert
            return _failed(run.result, conn, run.state, run.options, describe_ssl_error(exc), hs_start)
        await send_pending(conn, sock, loop)
        if done:
            break
        conn.bio_write(await receive(sock, loop))
    run.t_handshake = (time.perf_counter() - hs_start) * 1000
    return None


async def _completed(
    run: _Attempt,
    conn: SSL.Connection,
    sock: socket.socket,
    loop: asyncio.AbstractEventLoop,
    timeout: float,
    trust: TrustStore | None,
    shortcuts: _Shortcuts | None,
) -> Handshake:
    """The report of a completed handshake: chains, verdict, negotiated parameters and,
    when the server asked for a client certificate over TLS 1.3, its later verdict."""
    state = run.state
    client_auth_error: str | None = None
    if state.cert_requested and conn.get_protocol_version_name() == "TLSv1.3":
        remaining = timeout - (time.perf_counter() - run.start)
        wait = min(max(0.3, 4 * (run.t_handshake or 0.0) / 1000), max(remaining, 0.0))
        client_auth_error = await _await_client_verdict(conn, sock, loop, wait)
    alpn = conn.get_alpn_proto_negotiated()
    sent, verified = _sent_and_verified(conn, state, trust, shortcuts)
    return run.result(
        chain_der=sent,
        verified_path=verified,
        verified_by=trust.name if trust is not None else None,
        tls_version=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name(),
        alpn=alpn.decode("ascii", "replace") if alpn else None,
        client_ca_names=_client_ca_names(conn) if state.cert_requested else (),
        client_auth_error=client_auth_error,
    )


def _timed_out(run: _Attempt, conn: SSL.Connection | None, budget: float) -> Handshake:
    """The deadline passed: while connecting, or during the handshake."""
    label = _label(run.address, run.port)
    if run.t_connect is None:
        return run.result(
            "connect_timeout",
            f"no TCP connection to {label} within {format_seconds(budget)} (the probe deadline)",
        )
    return run.result(
        "handshake_timeout",
        f"TLS handshake with {label} did not complete within {format_seconds(budget)} (the probe deadline)",
        chain_der=peer_chain(conn) if conn is not None else (),
    )


def _label(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _failed(
    result: Any,
    conn: SSL.Connection,
    state: _State,
    options: ClientOptions,
    reason: str,
    hs_start: float | None,
) -> Handshake:
    """A handshake that failed. When the server had already sent its certificate
    and failed us over client authentication, the chain is still reported."""
    chain = peer_chain(conn)
    if state.cert_requested and chain:
        return result(  # type: ignore[no-any-return]
            chain_der=chain,
            tls_version=conn.get_protocol_version_name() or None,
            cipher=conn.get_cipher_name(),
            client_ca_names=_client_ca_names(conn),
            client_auth_error=reason,
        )
    return result("handshake_failed", reason, chain_der=chain)  # type: ignore[no-any-return]
