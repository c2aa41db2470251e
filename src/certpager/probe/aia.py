"""Missing intermediates explained: fetch the issuer named in the AIA caIssuers URL.

When the server does not send the intermediate, browsers usually still work
because they fetch it from the leaf's Authority Information Access caIssuers
URL; curl, Python, Java and most API clients do not. This module fetches that
URL over plain HTTP (the endpoint's deadline, a size cap, at most two
redirects), accepts DER, PEM or PKCS#7, and re-verifies the chain with the
fetched certificate added as an *untrusted* intermediate, only to say which
case it is. The verdict of the endpoint never changes: ``chain_incomplete``
stays critical whatever the fetch finds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from certpager.config import Thresholds, is_ip
from certpager.errors import AiaError as AiaError
from certpager.errors import AiaRefused as AiaRefused
from certpager.probe.analysis import CertParseError, analyze_chain, parse_cert
from certpager.probe.handshake import ResolveError, resolve
from certpager.probe.http import HttpFailure, fetch
from certpager.probe.model import CertInfo
from certpager.probe.trust import TrustStore

#: Largest AIA response read, bytes (an intermediate is 1-2 KiB).
MAX_AIA_BYTES = 64 * 1024
#: How many issuers are fetched one after the other (leaf -> intermediate -> ...).
MAX_DEPTH = 3
#: Redirects followed per fetch.
MAX_REDIRECTS = 2
#: Seconds a successful fetch is remembered (many endpoints share one intermediate).
CACHE_SECONDS = 600.0

_CACHE: dict[tuple[str, str, str | None], tuple[float, tuple[bytes, ...], str]] = {}


# --- where a fetch may go ------------------------------------------------------------
#
# The AIA URL is a request that the monitored server chooses: without a policy, any
# server could make certpager GET http://127.0.0.1:8080/admin or a cloud metadata
# address from inside the monitoring network. Every address the URL's host resolves to
# (every redirect's too) is classified; the connection goes to the address that was
# checked, never to a second lookup of the name (DNS rebinding).

#: The classes of address a fetch is refused for by default.
PRIVATE_CLASSES = ("loopback", "link-local", "private")
#: The classes never fetched from (nothing legitimate serves a certificate there).
NEVER_CLASSES = ("unspecified", "multicast", "reserved")


def address_class(address: str) -> str:
    """``public``, ``loopback``, ``link-local``, ``private`` (RFC 1918, ULA, CGNAT and
    every other range that is not globally reachable), ``unspecified``, ``multicast`` or
    ``reserved``. An IPv4-mapped (``::ffff:127.0.0.1``) or IPv4-compatible IPv6 address
    is the IPv4 address it carries; anything that is not an IP address is ``reserved``."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "reserved"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d
            embedded = ipaddress.IPv4Address(int(ip))
        if embedded is not None:
            return address_class(str(embedded))
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "private"
    return "public"


def fetch_refusal(address: str, endpoint_address: str | None, policy: str = "auto") -> str | None:
    """Why an AIA fetch from ``address`` is refused, in words, or None when allowed.

    ``policy`` (the ``aia_private`` setting): ``auto`` refuses loopback, link-local and
    private addresses unless ``endpoint_address`` (the address the endpoint was
    reached at) is in that same class (a lab on 127.0.0.1 publishing its intermediate on
    127.0.0.1, an internal CA for internal servers); ``refuse`` refuses them always;
    ``allow`` always allows them. Unspecified, multicast and reserved addresses are
    refused whatever the policy.
    """
    kind = address_class(address)
    if kind == "public":
        return None
    if kind in NEVER_CLASSES:
        return f"{address} is a {kind} address"
    if policy == "allow":
        return None
    own = address_class(endpoint_address) if endpoint_address else None
    if policy == "auto" and own == kind:
        return None
    if policy == "refuse":
        return f"{address} is a {kind} address (aia_private: refuse)"
    where = (
        f"the endpoint is at {endpoint_address} ({own})"
        if endpoint_address
        else "the endpoint's address is unknown"
    )
    return f"{address} is a {kind} address and {where}"


@dataclass(frozen=True)
class Fetched:
    """One certificate fetched from an AIA URL."""

    url: str
    """Where it came from."""
    format: str
    """``DER``, ``PEM`` or ``PKCS7``."""
    cert: CertInfo
    """The certificate."""

    def as_json(self) -> dict[str, object]:
        """The facts, for ``--json``."""
        return {
            "url": self.url,
            "format": self.format,
            "subject": self.cert.subject,
            "issuer": self.cert.issuer,
            "sha256": self.cert.sha256,
            "not_after": self.cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "spki_pin": self.cert.spki_pin,
        }


@dataclass(frozen=True)
class AiaResult:
    """Whether fetching the AIA issuer would let a client build a path."""

    state: Literal["completes_chain", "no_path", "fetch_failed", "refused", "no_url"]
    """``completes_chain``: browsers work, non-fetching clients fail;
    ``no_path``: even with the fetched certificate(s) no trusted path exists;
    ``fetch_failed``: the URL gave no certificate; ``refused``: the URL leads to an
    address the ``aia_private`` policy does not let certpager fetch from (nothing was
    sent); ``no_url``: the certificate names no http caIssuers URL."""
    urls: tuple[str, ...] = ()
    """URLs tried, in order."""
    fetched: tuple[Fetched, ...] = field(default_factory=tuple)
    """Certificates fetched, nearest the leaf first."""
    detail: str | None = None
    """Why the fetch failed, or why no path exists."""

    def as_json(self) -> dict[str, object]:
        """The facts, for ``--json``."""
        return {
            "state": self.state,
            "urls": list(self.urls),
            "fetched": [f.as_json() for f in self.fetched],
            "detail": self.detail,
        }

    def sentence(self) -> str:
        """The explanation appended to the ``chain_incomplete`` message."""
        if self.state == "completes_chain":
            names = ", ".join(f"{f.cert.subject}" for f in self.fetched)
            return (
                f"AIA check: the issuer is published at {self.fetched[0].url} ({names}) and with it "
                "the chain verifies, so browsers will work (they fetch it), curl, Python and Java "
                "clients fail"
            )
        if self.state == "no_path":
            got = ", ".join(f"{f.cert.subject} from {f.url}" for f in self.fetched)
            return (
                f"AIA check: fetched {got}, but even with it there is no path to a trusted root "
                f"({self.detail}): no client can build a path"
            )
        if self.state == "refused":
            url = self.urls[-1] if self.urls else "the AIA URL"
            return (
                f"AIA check: certpager did not fetch {url}: refused by policy ({self.detail}); "
                "set aia_private: allow to fetch from such addresses"
            )
        if self.state == "fetch_failed":
            url = self.urls[-1] if self.urls else "the AIA URL"
            return (
                f"AIA check: fetching {url} failed ({self.detail}): no client can build a path "
                "unless it can fetch that URL when certpager cannot"
            )
        return "AIA check: the certificate names no http caIssuers URL, so no client can build a path"


def parse_certificates(data: bytes) -> tuple[tuple[bytes, ...], str]:
    """DER certificates in ``data`` (DER, PEM or PKCS#7, DER or PEM) and the format.

    Raises:
        AiaError: nothing in ``data`` is a certificate.
    """
    text = data.lstrip()
    if text.startswith(b"-----BEGIN PKCS7") or text.startswith(b"-----BEGIN CMS"):
        try:
            certs = pkcs7.load_pem_pkcs7_certificates(text)
            return tuple(c.public_bytes(Encoding.DER) for c in certs), "PKCS7"
        except ValueError as exc:
            raise AiaError(f"unreadable PKCS#7 PEM: {exc}") from None
    if text.startswith(b"-----BEGIN"):
        try:
            pem_certs = x509.load_pem_x509_certificates(text)
        except ValueError as exc:
            raise AiaError(f"unreadable PEM: {exc}") from None
        return tuple(c.public_bytes(Encoding.DER) for c in pem_certs), "PEM"
    try:
        cert = x509.load_der_x509_certificate(data)
        return (cert.public_bytes(Encoding.DER),), "DER"
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
        return tuple(c.public_bytes(Encoding.DER) for c in certs), "PKCS7"
    except ValueError:
        pass
    # Never the bytes themselves: the server chose them, and the report is read on a terminal.
    raise AiaError(f"the response is not a certificate (DER, PEM or PKCS#7; {len(data)} bytes)")


#: What an HTTP failure is called in an AIA explanation. The server's own bytes
#: (a non-HTTP answer, a reason phrase) are never repeated.
_HTTP_WORDS = {
    "not_http": "the server did not answer HTTP",
}


async def _checked_address(
    host: str, port: int, timeout: float, endpoint_address: str | None, policy: str
) -> str:
    """The one address of ``host`` to connect to, after checking every address it has
    against the policy (:func:`fetch_refusal`). Raises :class:`AiaRefused`, :class:`AiaError`."""
    if is_ip(host):
        addresses = [host.strip("[]")]
    else:
        try:
            addresses = [addr for _family, addr in await resolve(host, port, timeout)]
        except ResolveError as exc:
            raise AiaError(str(exc)) from None
        if not addresses:
            raise AiaError(f"{host} has no address")
    for address in addresses:
        why = fetch_refusal(address, endpoint_address, policy)
        if why is not None:
            raise AiaRefused(why if address == host else f"{host}: {why}")
    return addresses[0]


async def fetch_issuer(
    url: str,
    *,
    timeout: float,
    max_bytes: int = MAX_AIA_BYTES,
    endpoint_address: str | None = None,
    policy: str = "auto",
) -> tuple[tuple[bytes, ...], str]:
    """GET an http:// caIssuers URL (at most :data:`MAX_REDIRECTS` redirects), from an
    address the policy allows (:func:`fetch_refusal`, checked again at every redirect).

    Raises:
        AiaRefused: the URL (or a redirect) leads to an address the policy refuses;
            nothing was sent there.
        AiaError: with the reason in words.
    """
    now = time.monotonic()
    key = (url, policy, address_class(endpoint_address) if endpoint_address else None)
    cached = _CACHE.get(key)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1], cached[2]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            parts = urlsplit(current)
            host = parts.hostname or ""
            port = parts.port or 80
        except ValueError:
            raise AiaError(f"invalid URL {current!r}") from None
        if parts.scheme.lower() != "http":
            raise AiaError(f"only http:// caIssuers URLs are fetched, not {current!r}")
        if not host:
            raise AiaError(f"no host in {current!r}")
        address = await _checked_address(host, port, max(end - loop.time(), 0.01), endpoint_address, policy)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = await fetch(
                address, port, host=host, path=path, timeout=max(end - loop.time(), 0.01), max_body=max_bytes
            )
        except HttpFailure as exc:
            raise AiaError(_HTTP_WORDS.get(exc.kind, exc.message)) from None
        if response.status in (301, 302, 303, 307, 308) and response.header("Location"):
            location = response.header("Location") or ""
            current = location if "://" in location else f"http://{parts.netloc}{location}"
            continue
        if response.status != 200:
            raise AiaError(f"{current} answered {response.status}")
        ders, fmt = parse_certificates(response.body)
        _CACHE[key] = (now, ders, fmt)
        return ders, fmt
    raise AiaError(f"more than {MAX_REDIRECTS} redirects")


async def explain_incomplete(
    chain_der: Sequence[bytes],
    hostname: str,
    now: datetime,
    trust: TrustStore,
    thresholds: Thresholds,
    *,
    timeout: float,
    max_bytes: int = MAX_AIA_BYTES,
    endpoint_address: str | None = None,
    policy: str = "auto",
) -> AiaResult:
    """Fetch the missing issuer(s) through AIA and say whether a path then exists.

    ``endpoint_address`` (where the endpoint was reached) and ``policy`` (its
    ``aia_private``) decide which addresses may be fetched from (:func:`fetch_refusal`);
    a refused URL is reported as refused by policy, and nothing is sent to it.

    Never raises. The fetched certificates are only ever used as untrusted
    intermediates for this explanation.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    try:
        current = parse_cert(chain_der[0])
    except (CertParseError, IndexError):
        return AiaResult("no_url", detail="the leaf cannot be parsed")
    fetched: list[Fetched] = []
    tried: list[str] = []
    for _depth in range(MAX_DEPTH):
        urls = [u for u in current.ca_issuers if u.lower().startswith("http://")]
        if not urls:
            if not fetched:
                return AiaResult("no_url", tuple(tried))
            break
        got, errors, refusals = await _first_issuer(
            urls, current, end, tried, max_bytes=max_bytes, endpoint_address=endpoint_address, policy=policy
        )
        if got is None:
            if not fetched:
                state: Literal["refused", "fetch_failed"] = (
                    "refused" if refusals == len(errors) else "fetch_failed"
                )
                return AiaResult(state, tuple(tried), detail="; ".join(errors))
            break
        fetched.append(got)
        analysis = analyze_chain(
            [*chain_der, *(f.cert.der for f in fetched)], hostname, now, trust, thresholds
        )
        if analysis.trusted:
            return AiaResult("completes_chain", tuple(tried), tuple(fetched))
        if got.cert.self_signed or got.cert.der == current.der or got.cert.subject != current.issuer:
            break
        current = got.cert
    analysis = analyze_chain([*chain_der, *(f.cert.der for f in fetched)], hostname, now, trust, thresholds)
    return AiaResult(
        "no_path", tuple(tried), tuple(fetched), detail=analysis.verify_error or "verification failed"
    )


async def _first_issuer(
    urls: Sequence[str],
    current: CertInfo,
    end: float,
    tried: list[str],
    *,
    max_bytes: int,
    endpoint_address: str | None,
    policy: str,
) -> tuple[Fetched | None, list[str], int]:
    """The issuer of ``current`` from the first of ``urls`` that serves a readable
    certificate (the one named as its issuer, else the first), why each URL before
    failed, and how many of those were refused by policy. Each URL asked is added to
    ``tried``."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    refusals = 0
    for url in urls:
        tried.append(url)
        try:
            ders, fmt = await fetch_issuer(
                url,
                timeout=max(end - loop.time(), 0.01),
                max_bytes=max_bytes,
                endpoint_address=endpoint_address,
                policy=policy,
            )
        except AiaRefused as exc:
            errors.append(str(exc))
            refusals += 1
            continue
        except AiaError as exc:
            errors.append(str(exc))
            continue
        infos = []
        for der in ders:
            try:
                infos.append(parse_cert(der))
            except CertParseError:
                continue
        if not infos:
            errors.append("the response holds no readable certificate")
            continue
        best = next((c for c in infos if c.subject == current.issuer), infos[0])
        return Fetched(url, fmt, best), errors, refusals
    return None, errors, refusals


__all__ = [
    "MAX_AIA_BYTES",
    "AiaError",
    "AiaRefused",
    "AiaResult",
    "Fetched",
    "address_class",
    "explain_incomplete",
    "fetch_issuer",
    "fetch_refusal",
    "parse_certificates",
]
