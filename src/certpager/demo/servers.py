"""The lab's web servers: TLS + HTTP per site, reloadable like nginx.

Each :class:`Site` listens on two loopback ports: TLS (a real HTTP/1.1
response, with or without HSTS) and plain HTTP (a 301 to https, or a 200 when
the scenario plants "HTTP not redirected"). Its certificate files are read
when the lab starts and again on every :meth:`Site.load`, never in between:
a certificate renewed on disk is served only after a reload, exactly the trap
nginx sets. New connections use the context loaded last; connections already
open keep theirs, like nginx's old workers.

The listeners are the lab's one server (:mod:`certpager.lab.tls`): a thread per
connection, bounded in connections at once and in time per socket operation.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from certpager.formats import format_serial
from certpager.lab.http import http_response, parse_request, read_request_head
from certpager.lab.tls import VERSIONS, HttpServer, LoopbackServer, TLSServer, TLSStream, server_context

PROTOCOLS: dict[str, ssl.TLSVersion] = VERSIONS
"""nginx ``ssl_protocols`` names and their versions."""

HSTS_VALUE = "max-age=63072000; includeSubDomains"
"""The Strict-Transport-Security header the healthy sites send (two years)."""

SERVER_HEADER = ("Server", "certpager-drill")
"""The Server header of the lab's own answers."""

_REQUEST_TIMEOUT = 5.0
_HANDSHAKE_TIMEOUT = 10.0
_MAX_REQUEST = 16 * 1024
_MAX_CONCURRENT = 64
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


@dataclass
class SiteConfig:
    """One ``server {}`` block of the lab's nginx stand-in (``nginx/sites.json``)."""

    name: str
    """Endpoint name in the lab config."""
    server_name: str
    """The name the site is meant to answer for."""
    certificate: str
    """``ssl_certificate``: PEM file with the certificate chain the site sends."""
    certificate_key: str
    """``ssl_certificate_key``: PEM private key."""
    protocols: list[str] = field(default_factory=lambda: ["TLSv1.2", "TLSv1.3"])
    """``ssl_protocols``."""
    hsts: bool = True
    """``add_header Strict-Transport-Security``."""
    redirect: bool = True
    """The plain HTTP port answers 301 to https (else 200 with the page)."""
    client_ca: str | None = None
    """``ssl_client_certificate`` + ``ssl_verify_client on`` (mTLS)."""
    listen: int = 0
    """TLS port (set when the lab binds it; a reload cannot change it)."""
    http_listen: int | None = 0
    """Plain HTTP port; None for no HTTP listener."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SiteConfig:
        """Parse one entry of ``sites.json``; raise ValueError naming the problem."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        try:
            site = cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        bad = [p for p in site.protocols if p not in PROTOCOLS]
        if bad or not site.protocols:
            raise ValueError(f"ssl_protocols {site.protocols}: use some of {', '.join(PROTOCOLS)}")
        return site


def read_sites(path: Path) -> list[SiteConfig]:
    """Load ``sites.json``; raise ValueError with a plain message."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sites"), list):
        raise ValueError(f'{path}: expected {{"sites": [...]}}')
    out: list[SiteConfig] = []
    for i, entry in enumerate(data["sites"]):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: sites[{i}] is not an object")
        try:
            out.append(SiteConfig.from_json(entry))
        except ValueError as exc:
            raise ValueError(f"{path}: sites[{i}] ({entry.get('name', '?')}): {exc}") from None
    return out


def write_sites(path: Path, sites: list[SiteConfig]) -> None:
    """Write ``sites.json`` (human-editable: change it and reload, as with nginx)."""
    doc = {
        "_comment": (
            "The fire-drill lab's web server config (its nginx stand-in). Edit and run "
            "'nginx -t && systemctl reload nginx' over the lab's SSH, as on a real host."
        ),
        "sites": [asdict(s) for s in sites],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def build_context(site: SiteConfig, certificate: str, key: str) -> ssl.SSLContext:
    """A server context for ``site`` from the given files; raise ssl.SSLError/OSError/ValueError."""
    names = sorted(site.protocols, key=lambda p: PROTOCOLS[p])
    # OpenSSL 3 (Debian's SECLEVEL=2 in particular) refuses TLS < 1.2 unless the
    # security level is 0: a legacy nginx config that "still allows TLS 1.0"
    # really accepts it only this way.
    legacy = PROTOCOLS[names[0]] < ssl.TLSVersion.TLSv1_2
    ctx = server_context(
        certificate,
        key,
        min_version=names[0],
        max_version=names[-1],
        ciphers="DEFAULT:@SECLEVEL=0" if legacy else None,
    )
    ctx.set_alpn_protocols(["http/1.1"])
    if site.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(site.client_ca)
    return ctx


def _first_cert(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@dataclass(frozen=True)
class Loaded:
    """What a site serves since its last (re)load."""

    context: ssl.SSLContext | SSL.Context
    """Context for new connections (pyOpenSSL for mTLS sites)."""
    serial: str
    """Hex serial of the leaf."""
    not_after: str
    """ISO notAfter of the leaf."""
    certificate: str
    """The file it came from."""


def _request(conn: socket.socket | TLSStream) -> tuple[str, str, str] | None:
    """``(method, path, host)`` of one HTTP/1.x request, or None when the client sent none."""
    return parse_request(read_request_head(conn, _REQUEST_TIMEOUT, _MAX_REQUEST + 4), _MAX_REQUEST)


def _answer(status: int, headers: list[tuple[str, str]], body: str, method: str) -> bytes:
    payload = body.encode("utf-8")
    return http_response(status, [SERVER_HEADER, *headers], payload, head_only=method == "HEAD")


class _SiteTLS(TLSServer):
    """A site's TLS port: each connection gets the site's context loaded last."""

    def __init__(self, site: Site):
        loaded = site.loaded
        assert loaded is not None, "load() before start()"
        super().__init__(
            context=loaded.context,
            port=site.config.listen or 0,
            max_connections=None,
            max_concurrent=_MAX_CONCURRENT,
            handshake_timeout=_HANDSHAKE_TIMEOUT,
        )
        self.site = site

    def handle(self, conn: socket.socket) -> None:
        loaded = self.site.loaded  # read once: a reload mid-connection does not touch it
        if loaded is not None:
            self.accept_tls(conn, loaded.context, lambda tls: self._page(tls, loaded))

    def _page(self, tls: TLSStream, loaded: Loaded) -> None:
        request = _request(tls)
        if request is None:
            return
        config = self.site.config
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if config.hsts:
            headers.append(("Strict-Transport-Security", HSTS_VALUE))
        body = (
            f"certpager fire drill: {config.name} ({config.server_name})\n"
            f"served certificate serial {loaded.serial}, notAfter {loaded.not_after}\n"
        )
        tls.sendall(_answer(200, headers, body, request[0]))


class _SiteHTTP(LoopbackServer):
    """A site's plain HTTP port: 301 to https, or the page (HTTP not redirected)."""

    def __init__(self, site: Site):
        super().__init__(
            port=site.config.http_listen or 0, max_connections=None, max_concurrent=_MAX_CONCURRENT
        )
        self.site = site

    def handle(self, conn: socket.socket) -> None:
        request = _request(conn)
        if request is None:
            return
        method, path, host = request
        config = self.site.config
        if config.redirect:
            # nginx: return 301 https://$host$request_uri; plus the lab's TLS port.
            name = host if host and _HOST_RE.match(host) else config.server_name
            location = f"https://{name}:{config.listen}{path}"
            conn.sendall(_answer(301, [("Location", location)], f"moved to {location}\n", method))
            return
        body = f"certpager fire drill: {config.name} over plain HTTP (not redirected!)\n"
        conn.sendall(_answer(200, [("Content-Type", "text/plain; charset=utf-8")], body, method))


class Site:
    """One scenario's TLS and HTTP listeners."""

    def __init__(self, config: SiteConfig):
        self.config = config
        """Current config (replaced by a successful reload)."""
        self.loaded: Loaded | None = None
        """What new TLS connections get."""
        self._servers: list[LoopbackServer] = []

    def load(self, config: SiteConfig, certificate: str | None = None, key: str | None = None) -> Loaded:
        """Build and install a context from ``config`` (or explicit files); raise on failure."""
        cert_path = certificate or config.certificate
        key_path = key or config.certificate_key
        ctx: ssl.SSLContext | SSL.Context
        if config.client_ca:
            ctx = build_openssl_context(config, cert_path, key_path)
        else:
            ctx = build_context(config, cert_path, key_path)
        leaf = _first_cert(cert_path)
        self.loaded = Loaded(
            context=ctx,
            serial=format_serial(leaf.serial_number),
            not_after=leaf.not_valid_after_utc.isoformat(),
            certificate=cert_path,
        )
        # Ports are bound once; a reload changes everything else.
        self.config = replace(config, listen=self.config.listen, http_listen=self.config.http_listen)
        return self.loaded

    def start(self) -> None:
        """Bind the TLS port and (unless disabled) the HTTP port on 127.0.0.1."""
        tls = _SiteTLS(self).start()
        self._servers.append(tls)
        self.config.listen = tls.port
        if self.config.http_listen is not None:
            http = _SiteHTTP(self).start()
            self._servers.append(http)
            self.config.http_listen = http.port

    @property
    def ports(self) -> list[int]:
        """Every port this site listens on."""
        return [p for p in (self.config.listen, self.config.http_listen) if p]

    def stop(self) -> None:
        """Close listeners and every open connection; join their threads."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()


def build_openssl_context(site: SiteConfig, certificate: str, key: str) -> SSL.Context:
    """A pyOpenSSL server context (for mTLS sites: it advertises the accepted client CAs)."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    versions = sorted(PROTOCOLS[p] for p in site.protocols)
    openssl_versions = {
        ssl.TLSVersion.TLSv1: SSL.TLS1_VERSION,
        ssl.TLSVersion.TLSv1_1: SSL.TLS1_1_VERSION,
        ssl.TLSVersion.TLSv1_2: SSL.TLS1_2_VERSION,
        ssl.TLSVersion.TLSv1_3: SSL.TLS1_3_VERSION,
    }
    if versions[0] < ssl.TLSVersion.TLSv1_2:
        ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    ctx.set_min_proto_version(openssl_versions[versions[0]])
    ctx.set_max_proto_version(openssl_versions[versions[-1]])
    ctx.use_certificate_chain_file(certificate)
    ctx.use_privatekey_file(key)
    ctx.check_privatekey()
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_alpn_select_callback(_select_http11)
    if site.client_ca:
        ctx.load_verify_locations(site.client_ca)
        for ca in x509.load_pem_x509_certificates(Path(site.client_ca).read_bytes()):
            ctx.add_client_ca(ca)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_ok)
    return ctx


def _select_http11(conn: SSL.Connection, offered: list[bytes]) -> Any:  # bytes or NO_OVERLAPPING_PROTOCOLS
    return b"http/1.1" if b"http/1.1" in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def _verify_ok(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    return bool(ok)


def static_http(files: dict[str, tuple[bytes, str]]) -> HttpServer:
    """A plain HTTP server for fixed files, ``path -> (body, content type)`` (the CA's
    AIA ``caIssuers`` URL); not started."""
    routes = {
        path: http_response(200, [("Content-Type", ctype)], body) for path, (body, ctype) in files.items()
    }
    return HttpServer(
        routes=routes,
        default=http_response(404, [SERVER_HEADER], b"not found\n"),
        head_without_body=True,
        max_connections=None,
        max_concurrent=_MAX_CONCURRENT,
    )
