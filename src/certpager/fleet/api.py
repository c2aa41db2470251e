"""One bounded JSON exchange with a fleet API (Alertmanager, Prometheus): the part they share.

Every request is :func:`certpager.probe.http.fetch`: one overall deadline a trickling or
silent server cannot stretch, at most ``max_body`` bytes read (a larger ``Content-Length``
is refused before the body is read), redirects never followed (a ``3xx`` is an answer,
named with where it pointed), no compression asked for and none accepted, ``https://``
verified against the system CAs and the host name. What the server says (an error page, a
``Location``) is shown escaped and cut short. Anything wrong is one :class:`FleetApiError`
line; the callers add which service and URL (:attr:`ApiServer.shown`).
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from certpager.config import redact_url
from certpager.errors import FleetApiError, HttpFailure
from certpager.probe.http import HttpResponse, fetch
from certpager.text import printable, quoted

#: Longest piece of an error answer quoted in a message, characters.
QUOTE_MAX = 200
#: Most ``,``, ``:``, ``[`` and ``{`` in a JSON answer parsed (an upper bound on its values
#: and containers: parsing it takes at most about 130 MB whatever it holds). An alert of
#: Alertmanager takes about 45, a series of a Prometheus instant query about 12.
MAX_VALUES = 1_500_000


class ApiServer:
    """Where one fleet API is (a URL already checked by :func:`certpager.config.check_api_url`)."""

    def __init__(self, url: str, ca_file: str | None = None) -> None:
        parts = urlsplit(url)
        self.url = url
        """``http(s)://host[:port][/prefix]``."""
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        """``Host`` header: ``host[:port]``."""
        self.prefix = parts.path.rstrip("/")
        self.ca_file = ca_file
        """The PEM bundle trusted instead of the system CAs (None: the system CAs)."""
        self.context: ssl.SSLContext | None = None
        self.problem: str | None = None
        """Why no request can be made (the ca_file became unreadable since the config was read)."""
        if self.tls:  # verified like any web API (its CAs, the host name); never not at all
            try:
                self.context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                self.problem = f"cannot load ca_file {printable(str(ca_file))}: {printable(str(exc))}"

    @property
    def shown(self) -> str:
        """The URL as messages show it (never a password)."""
        return redact_url(self.url)


async def exchange(
    server: ApiServer,
    method: str,
    path: str,
    *,
    timeout: float,
    max_body: int,
    body: object = None,
) -> HttpResponse:
    """One request; the response with its body (any status), within ``timeout`` seconds.

    Raises:
        FleetApiError: no usable HTTP answer, a redirect, or a compressed body.
    """
    if server.problem is not None:
        raise FleetApiError(server.problem)
    payload = json.dumps(body).encode() if body is not None else None
    try:
        response = await fetch(
            server.host,
            server.port,
            host=server.netloc,
            path=server.prefix + path,
            timeout=timeout,
            tls=server.context,
            sni=server.host if server.tls else None,
            max_body=max_body,
            method=method,
            body=payload,
        )
    except HttpFailure as exc:
        if "CERTIFICATE_VERIFY_FAILED" in exc.message:
            trusted = (
                f"ca_file {printable(server.ca_file)}" if server.ca_file else "the system CAs (or ca_file)"
            )
            raise FleetApiError(
                f"TLS failed: the server's certificate is not trusted by {trusted} "
                "(CERTIFICATE_VERIFY_FAILED): certpager never talks to an unverified API"
            ) from None
        raise FleetApiError(exc.message) from None
    what = f"{method} {path.split('?')[0]}"
    if 300 <= response.status < 400:
        where = printable((response.header("Location") or "nowhere")[:QUOTE_MAX])
        raise FleetApiError(f"{what} answered {response.status}, a redirect to {where}: not followed")
    encoding = (response.header("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise FleetApiError(
            f"{what} answered a body compressed with {quoted(encoding[:40])}, which was not asked for"
        )
    return response


def quote_body(response: HttpResponse) -> str:
    """The start of an error answer's body, one printable line."""
    text = response.body[: QUOTE_MAX * 4].decode("utf-8", "replace")
    return printable(" ".join(text.split()))[:QUOTE_MAX] or "an empty body"


def parse_json(body: bytes, what: str) -> Any:
    """The JSON document ``body`` holds (None when it is empty), of at most about
    :data:`MAX_VALUES` values; ``what`` names it in messages (``the answer``).

    Raises:
        FleetApiError: not JSON, nested too deep, or too many values.
    """
    if not body.strip():
        return None
    # Counted before parsing: 16 MiB of "{}," are 5.6 million dicts (about 400 MB).
    if sum(body.count(mark) for mark in (b",", b":", b"[", b"{")) > MAX_VALUES:
        raise FleetApiError(
            f"{what} holds more than {MAX_VALUES:,} JSON values and containers: refused unparsed"
        )
    try:
        return json.loads(body)
    except RecursionError:
        raise FleetApiError(f"{what} is JSON nested too deep") from None
    except ValueError:
        raise FleetApiError(f"{what} is not JSON") from None


__all__ = ["ApiServer", "FleetApiError", "exchange", "parse_json", "quote_body", "redact_url"]
