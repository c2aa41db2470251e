"""The lab's web servers: TLS + HTTP per site, reloadable like nginx.

Each :class:`Site` listens on two loopback ports: TLS (a real HTTP/1.1
response, with or without HSTS) and plain HTTP (a 301 to https, or a 200 when
the scenario plants "HTTP not redirected"). Its certificate files are read
when the lab starts and again on every :meth:`Site.reload`, never in between:
a certificate renewed on disk is served only after a reload, exactly the trap
nginx sets. New connections use the context loaded last; connections already
open keep theirs, like nginx's old workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from certpager.formats import format_serial

PROTOCOLS: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
"""nginx ``ssl_protocols`` names and their versions."""

HSTS_VALUE = "max-age=63072000; includeSubDomains"
"""The Strict-Transport-Security header the healthy sites send (two years)."""

_REQUEST_TIMEOUT = 5.0
_HANDSHAKE_TIMEOUT = 10.0
_MAX_REQUEST = 16 * 1024
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
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(PROTOCOLS[p] for p in site.protocols)
    if versions[0] < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 (Debian's SECLEVEL=2 in particular) refuses TLS < 1.2 unless the
        # security level is 0: a legacy nginx config that "still allows TLS 1.0"
        # really accepts it only this way.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # ssl.TLSVersion.TLSv1/TLSv1_1 are deprecated: enabling them is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = versions[0]
        ctx.maximum_version = versions[-1]
    ctx.load_cert_chain(certificate, key)
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


class Site:
    """One scenario's TLS and HTTP listeners."""

    def __init__(self, config: SiteConfig):
        self.config = config
        """Current config (replaced by a successful reload)."""
        self.loaded: Loaded | None = None
        """What new TLS connections get."""
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.StreamWriter] = set()

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

    async def start(self) -> None:
        """Bind the TLS port and (unless disabled) the HTTP port on 127.0.0.1."""
        tls = await asyncio.start_server(self._track(self._serve_tls), "127.0.0.1", self.config.listen or 0)
        self._servers.append(tls)
        self.config.listen = tls.sockets[0].getsockname()[1]
        if self.config.http_listen is not None:
            http = await asyncio.start_server(
                self._track(self._serve_http), "127.0.0.1", self.config.http_listen or 0
            )
            self._servers.append(http)
            self.config.http_listen = http.sockets[0].getsockname()[1]

    def _track(
        self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._conns.add(writer)
            try:
                await handler(reader, writer)
            except (TimeoutError, OSError, ssl.SSLError, SSL.Error, asyncio.IncompleteReadError):
                pass
            finally:
                self._conns.discard(writer)
                writer.transport.abort()

        return wrapped

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loaded = self.loaded
        if loaded is None:
            return
        if isinstance(loaded.context, SSL.Context):
            tls = _MemoryTLS(loaded.context, reader, writer)
            if not await tls.handshake():
                return
            head = await tls.read_head()
            request = _parse_request(head) if head else None
            if request is not None:
                await tls.send(self._page(loaded, request[0]))
            return
        await writer.start_tls(loaded.context, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        request = await _read_request(reader)
        if request is None:
            return
        writer.write(self._page(loaded, request[0]))
        await writer.drain()

    def _page(self, loaded: Loaded, method: str) -> bytes:
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if self.config.hsts:
            headers.append(("Strict-Transport-Security", HSTS_VALUE))
        body = (
            f"certpager fire drill: {self.config.name} ({self.config.server_name})\n"
            f"served certificate serial {loaded.serial}, notAfter {loaded.not_after}\n"
        )
        return _response_bytes(200, "OK", headers, body, head=method == "HEAD")

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        method, path, host = request
        if self.config.redirect:
            # nginx: return 301 https://$host$request_uri; plus the lab's TLS port.
            name = host if host and _HOST_RE.match(host) else self.config.server_name
            location = f"https://{name}:{self.config.listen}{path}"
            body = f"moved to {location}\n"
            await _respond(
                writer, 301, "Moved Permanently", [("Location", location)], body, head=method == "HEAD"
            )
        else:
            body = f"certpager fire drill: {self.config.name} over plain HTTP (not redirected!)\n"
            await _respond(
                writer,
                200,
                "OK",
                [("Content-Type", "text/plain; charset=utf-8")],
                body,
                head=method == "HEAD",
            )

    @property
    def ports(self) -> list[int]:
        """Every port this site listens on."""
        return [p for p in (self.config.listen, self.config.http_listen) if p]

    async def stop(self) -> None:
        """Close listeners and every open connection."""
        for server in self._servers:
            server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str] | None:
    """``(method, path, host)`` of one HTTP/1.x request, or None when the client sent none."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    return _parse_request(head)


def _parse_request(head: bytes) -> tuple[str, str, str] | None:
    """Parse a request head (up to the blank line)."""
    if len(head) > _MAX_REQUEST:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, path = parts[0], parts[1]
    if not path.startswith("/"):
        path = "/"
    host = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            host = value.strip()
            if host.startswith("["):
                host = host[1 : host.find("]")] if "]" in host else ""
            else:
                host = host.split(":", 1)[0]
    return method, path, host


def _response_bytes(
    status: int, reason: str, headers: list[tuple[str, str]], body: str, *, head: bool = False
) -> bytes:
    payload = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {reason}", "Server: certpager-drill"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head else payload)


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    body: str,
    *,
    head: bool = False,
) -> None:
    writer.write(_response_bytes(status, reason, headers, body, head=head))
    await writer.drain()


class _MemoryTLS:
    """Server side of one TLS connection through pyOpenSSL memory BIOs over asyncio streams.

    Used for mTLS sites: unlike :mod:`ssl`, pyOpenSSL can send the list of accepted
    client CAs in the CertificateRequest, as nginx's ``ssl_client_certificate`` does.
    """

    def __init__(self, context: SSL.Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.conn = SSL.Connection(context, None)
        self.conn.set_accept_state()
        self.reader = reader
        self.writer = writer

    async def _flush(self) -> None:
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
        if out:
            self.writer.write(out)
            await self.writer.drain()

    async def _feed(self, timeout: float) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            return False
        self.conn.bio_write(data)
        return True

    async def handshake(self) -> bool:
        """Complete the handshake (False: the client left or failed it; alerts are sent)."""
        for _ in range(1000):  # bounded: a handshake is a handful of flights
            try:
                self.conn.do_handshake()
            except SSL.WantReadError:
                await self._flush()
                if not await self._feed(_HANDSHAKE_TIMEOUT):
                    return False
                continue
            except SSL.Error:
                with contextlib.suppress(OSError):
                    await self._flush()
                return False
            await self._flush()
            return True
        return False

    async def read_head(self) -> bytes | None:
        """Read up to the end of an HTTP request head."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > _MAX_REQUEST:
                return None
            try:
                buf += self.conn.recv(65536)
            except SSL.WantReadError:
                await self._flush()
                if not await self._feed(_REQUEST_TIMEOUT):
                    return None
            except (SSL.ZeroReturnError, SSL.Error):
                return None
        return buf.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"

    async def send(self, data: bytes) -> None:
        """Send application data and close the TLS session."""
        self.conn.sendall(data)
        with contextlib.suppress(SSL.Error):
            self.conn.shutdown()
        await self._flush()


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


class StaticHTTP:
    """A plain HTTP server for fixed files (the CA's AIA ``caIssuers`` URL)."""

    def __init__(self, files: dict[str, tuple[bytes, str]]):
        self.files = files
        """``path -> (body, content type)``."""
        self.port = 0
        """Bound port."""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind on 127.0.0.1, a free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return
            method, path, _host = request
            found = self.files.get(path.split("?", 1)[0])
            if found is None:
                await _respond(writer, 404, "Not Found", [], "not found\n", head=method == "HEAD")
                return
            body, ctype = found
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def stop(self) -> None:
        """Close the listener."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
