"""Endpoint configuration: the typed model and its YAML loader.

The file is validated once, here. Every mistake raises :class:`ConfigError`
naming the file, the line and the key. Example::

    settings:
      timeout: 10            # seconds, one overall deadline per probe
      concurrency: 100
      interval: 60           # TUI re-probe interval, seconds (jittered)
      thresholds: {warning_days: 14, critical_days: 7, page_days: 3}
    endpoints:
      - name: app
        host: app.example.com
        port: 443
        sni: app.example.com
        backends: [10.0.0.1, "10.0.0.2:8443"]
        tags: [prod, web]
        ca_file: internal-ca.pem
        client_cert: client.pem
        client_key: client.key
        http: {port: 80, redirect: true, hsts: true}
        pins: ["sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
        stored: {path: /etc/letsencrypt/live/app.example.com/cert.pem}
        ssh: {host: app.example.com, user: root, port: 22}
        runbooks: [certbot-force-renew, nginx-reload]
        params: {cert_name: app.example.com}
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from certpager.errors import ConfigError, TargetError
from certpager.inputs import (
    K8S_LABEL,
    K8S_SUBDOMAIN,
    PEM_MAX_BYTES,
    YAML_MAX_BYTES,
    InputFileError,
    InputValueError,
    check_input_file,
    check_text,
    decode_text,
    parse_port,
    read_input_file,
    resolve_under,
)
from certpager.text import printable, quoted

if TYPE_CHECKING:
    # PyYAML is imported when a config file is read, not by `certpager check HOST`.
    from certpager.yamlfile import Reader

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 100
DEFAULT_INTERVAL = 60.0
DEFAULT_DNS_TIMEOUT = 5.0
DEFAULT_ALERT_INTERVAL = 30.0
DEFAULT_ALERT_TIMEOUT = 5.0

# Patterns are applied with fullmatch: `$` alone would accept a trailing newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\[\]-]{0,254}")
_HOST_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?\.?")
_ZONE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")

MAX_TIMEOUT = 300.0
"""Longest probe timeout and SSH connect timeout accepted (seconds)."""
MAX_INTERVAL = 86400.0
"""Longest TUI re-probe interval accepted (seconds)."""
MAX_DAYS = 36500.0
"""Largest number of days accepted in thresholds and ``hsts_min_days``."""


@dataclass(frozen=True)
class Thresholds:
    """Days-left thresholds for ``expires_soon``."""

    warning_days: float = 14.0
    """Warn when fewer days than this are left."""
    critical_days: float = 7.0
    """Critical when fewer days than this are left."""
    page_days: float = 3.0
    """Page when fewer days than this are left."""


@dataclass(frozen=True)
class HttpCheck:
    """Plain-HTTP redirect and HSTS checks of an endpoint."""

    port: int = 80
    """Port that must answer 301/308 to https://."""
    redirect: bool = True
    """Check that plain HTTP redirects to HTTPS on the same host."""
    hsts: bool = True
    """Check the Strict-Transport-Security header of the HTTPS response."""
    hsts_min_days: float = 180.0
    """Minimum acceptable HSTS max-age in days."""
    path: str = "/"
    """Path requested over HTTP and HTTPS."""


@dataclass(frozen=True)
class SSHTarget:
    """Where runbooks for an endpoint run."""

    host: str
    """Host name or address, looked up in ``~/.ssh/config`` like OpenSSH does; ``local`` runs locally."""
    port: int | None = None
    """Port; None means ``~/.ssh/config`` or 22."""
    user: str | None = None
    """Login user; None means ``~/.ssh/config`` or the local user."""
    known_hosts: str | None = None
    """known_hosts file; None means OpenSSH's defaults."""
    identity_files: tuple[str, ...] = ()
    """Private keys to offer, in addition to the agent and ``~/.ssh/config``."""
    connect_timeout: float = 10.0
    """Seconds to establish the connection."""

    @property
    def is_local(self) -> bool:
        """Whether commands run on this machine instead of over SSH."""
        return self.host == "local"


@dataclass(frozen=True)
class StoredCert:
    """Where the endpoint's certificate is stored, to compare with what is served."""

    kind: Literal["file", "secret"]
    """``file`` on the SSH host (read over SFTP) or a Kubernetes ``secret``."""
    path: str | None = None
    """File path on the SSH host (a PEM certificate or full chain)."""
    namespace: str | None = None
    """Kubernetes namespace of the secret."""
    secret: str | None = None
    """Kubernetes secret name."""


@dataclass(frozen=True)
class Backend:
    """An explicit backend address to probe with the endpoint's SNI."""

    host: str
    """Address or name of the backend."""
    port: int
    """TLS port of the backend."""


@dataclass(frozen=True)
class Endpoint:
    """One monitored TLS endpoint."""

    name: str
    """Unique name shown in lists and used by ``--endpoint``."""
    host: str
    """DNS name or address to connect to."""
    port: int = 443
    """TLS port."""
    sni: str | None = None
    """Server name sent and verified; None means ``host`` (no SNI for IP addresses)."""
    backends: tuple[Backend, ...] = ()
    """Explicit backends; empty means every A/AAAA address of ``host``."""
    tags: tuple[str, ...] = ()
    """Free-form tags for filtering and runbook selection."""
    ca_file: str | None = None
    """PEM bundle of trusted CAs; None means the system store."""
    client_cert: str | None = None
    """PEM client certificate for mTLS."""
    client_key: str | None = None
    """PEM private key of ``client_cert``."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    """Expiry thresholds."""
    http: HttpCheck | None = None
    """HTTP redirect and HSTS checks; None disables them."""
    pins: tuple[str, ...] = ()
    """Accepted SPKI pins, ``sha256/BASE64``."""
    stored: StoredCert | None = None
    """Where the certificate is stored, to detect renewed-but-not-reloaded."""
    ssh: SSHTarget | None = None
    """Where runbooks run."""
    runbooks: tuple[str, ...] = ()
    """Runbooks offered for this endpoint (in addition to those that select it by tag)."""
    params: dict[str, str] = field(default_factory=dict)
    """Runbook parameter values for this endpoint."""
    timeout: float = DEFAULT_TIMEOUT
    """Overall deadline of one probe, seconds."""
    check_protocols: bool = True
    """Also test which old protocol versions and weak cipher suites the server
    accepts (a few extra connections that stop after the ServerHello)."""
    check_no_sni: bool = True
    """Also fetch the certificate served without SNI (one extra handshake)."""
    fetch_aia: bool = True
    """When the chain is incomplete, fetch the issuer from the leaf's AIA URL to
    explain who can still build a path (never changes the verdict)."""
    aia_private: str = "auto"
    """Whether that fetch may go to a loopback, link-local or private address
    (:data:`AIA_PRIVATE_CHOICES`): ``auto`` only when the endpoint itself is in that
    same class of address, ``allow`` always, ``refuse`` never."""

    @property
    def server_name(self) -> str | None:
        """The SNI to send: explicit, else the host unless it is an IP address."""
        if self.sni is not None:
            return self.sni or None
        return None if is_ip(self.host) else self.host.rstrip(".")

    @property
    def verify_name(self) -> str:
        """The name the certificate must match."""
        return self.server_name or self.host

    @property
    def address(self) -> str:
        """``host:port`` for display (IPv6 bracketed)."""
        return format_hostport(self.host, self.port)


DEFAULT_PROMETHEUS_QUERY = "probe_ssl_earliest_cert_expiry"
"""The series imported by default: the blackbox exporter's, one per probed target."""


@dataclass(frozen=True)
class PrometheusSource:
    """``prometheus:``: import the fleet from a Prometheus server's series (docs/fleet.md)."""

    url: str
    """Base URL of the Prometheus HTTP API, e.g. ``http://127.0.0.1:9090``."""
    query: str = DEFAULT_PROMETHEUS_QUERY
    """PromQL instant query; each series it returns becomes an endpoint."""
    timeout: float = DEFAULT_TIMEOUT
    """Deadline of the query, seconds."""
    ca_file: str | None = None
    """PEM bundle an ``https://`` Prometheus is verified against (None: the system CAs)."""


@dataclass(frozen=True)
class AlertmanagerSettings:
    """Where certpager asks which endpoints are paged (``settings: alertmanager:``)."""

    url: str
    """Base URL of Alertmanager's API (``http://127.0.0.1:9093``; a path prefix is kept)."""
    matchers: tuple[str, ...] = ()
    """Alertmanager matchers (``team="web"``, ``severity=~"page|critical"``) every alert
    shown must satisfy, sent as ``filter`` parameters."""
    interval: float = DEFAULT_ALERT_INTERVAL
    """Seconds between two fetches of the alerts in the TUI."""
    timeout: float = DEFAULT_ALERT_TIMEOUT
    """Deadline of one request to Alertmanager, seconds."""
    ca_file: str | None = None
    """PEM bundle an ``https://`` Alertmanager is verified against (None: the system CAs)."""


@dataclass(frozen=True)
class Settings:
    """Global settings."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    """Default expiry thresholds."""
    timeout: float = DEFAULT_TIMEOUT
    """Default overall deadline of one probe, seconds."""
    dns_timeout: float = DEFAULT_DNS_TIMEOUT
    """Deadline of one DNS lookup, seconds."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Maximum probes in flight."""
    interval: float = DEFAULT_INTERVAL
    """TUI re-probe interval, seconds."""
    bell: bool = True
    """Ring the terminal bell when an endpoint gets worse."""
    runbook_dirs: tuple[str, ...] = ()
    """Extra runbook directories."""
    check_protocols: bool = True
    """Default of the endpoints' ``check_protocols``."""
    check_no_sni: bool = True
    """Default of the endpoints' ``check_no_sni``."""
    fetch_aia: bool = True
    """Default of the endpoints' ``fetch_aia``."""
    aia_private: str = "auto"
    """Default of the endpoints' ``aia_private``."""
    check_http: bool = True
    """Run the HTTP redirect and HSTS checks on port-443 endpoints that do not say
    otherwise (an endpoint's ``http`` key always wins)."""
    lock_dir: str | None = None
    """Machine-wide directory of the run locks (None: ``/run/lock/certpager``; the
    ``CERTPAGER_LOCK_DIR`` environment variable wins over it)."""
    prometheus: PrometheusSource | None = None
    """The top-level ``prometheus:`` section: endpoints imported from Prometheus."""
    alertmanager: AlertmanagerSettings | None = None
    """Alertmanager to ask for the alerts paging about the endpoints (None: none)."""


@dataclass(frozen=True)
class Config:
    """A loaded configuration."""

    endpoints: tuple[Endpoint, ...]
    """Monitored endpoints, in file order."""
    settings: Settings = field(default_factory=Settings)
    """Global settings."""
    path: Path | None = None
    """The file it came from, if any."""

    def endpoint(self, name: str) -> Endpoint | None:
        """The endpoint called ``name``."""
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        return None


#: Characters of an IP literal without a zone (``%eth0``), brackets included.
_IP_CHARS = frozenset("0123456789abcdefABCDEF.:[]")


@functools.lru_cache(maxsize=4096)
def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` spells (IPv4, or IPv6 with or without brackets), else None.

    Names are turned away by their characters first: ``ipaddress`` would refuse them
    by raising twice, which costs more than the probe of an endpoint's own name should.
    Cached: a check asks about the same host and SNI several times.
    """
    if "%" not in text and not _IP_CHARS.issuperset(text):
        return None
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal."""
    return ip_literal(host) is not None


def format_hostport(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/certpager/endpoints.yaml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "certpager" / "endpoints.yaml"


def _split_hostport(text: str, default_port: int, what: str) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` / bare IPv6; raise ValueError with a reason."""
    text = text.strip()
    if not text:
        raise ValueError(f"empty {what}")
    check_text(text, limit=300)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {what} {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if not is_ip(host):
            raise ValueError(f"{host!r} in brackets is not an IPv6 address")
        if rest == "":
            return host, default_port
        if not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in {what} {text!r}")
        port_text = rest[1:]
    elif text.count(":") > 1:
        if not is_ip(text):
            raise ValueError(f"{text!r} is not a valid IPv6 address; use [ADDR]:PORT")
        return text, default_port
    elif ":" in text:
        host, port_text = text.split(":", 1)
    else:
        host, port_text = text, ""
    port = parse_port(port_text) if port_text else default_port
    check_host(host)
    return host, port


def check_host(host: str) -> None:
    """Refuse what is neither a host name nor an IP literal (with an optional ``%zone``).

    Raises:
        ValueError: the reason.
    """
    check_text(host, limit=300)
    if is_ip(host):
        zone = host.partition("%")[2]
        if zone and not _ZONE_RE.fullmatch(zone):
            raise InputValueError(f"zone id {quoted(zone)} may only hold letters, digits, '.', '_' and '-'")
        return
    if not _HOST_RE.fullmatch(host):
        raise InputValueError(f"{quoted(host)} is not a valid host name")


def parse_target(text: str, settings: Settings | None = None, *, ca_file: str | None = None) -> Endpoint:
    """Parse a ``HOST[:PORT][@SNI]`` command-line target into an :class:`Endpoint`."""
    settings = settings or Settings()
    raw = text.strip()
    sni: str | None = None
    try:
        check_text(text, limit=600)
    except ValueError as exc:
        raise TargetError(f"target {quoted(text)}: {exc}") from None
    if "@" in raw:
        raw, sni = raw.rsplit("@", 1)
        if not sni or not _HOST_RE.fullmatch(sni) or is_ip(sni):
            raise TargetError(f"target {quoted(text)}: SNI {quoted(sni)} is not a valid DNS name")
    try:
        host, port = _split_hostport(raw, 443, "target")
    except ValueError as exc:
        raise TargetError(f"target {quoted(text)}: {exc} (expected HOST[:PORT][@SNI])") from None
    return Endpoint(
        name=text.strip(),
        host=host,
        port=port,
        sni=sni,
        ca_file=ca_file,
        thresholds=settings.thresholds,
        timeout=settings.timeout,
        http=default_http(port, settings),
        check_protocols=settings.check_protocols,
        check_no_sni=settings.check_no_sni,
        fetch_aia=settings.fetch_aia,
        aia_private=settings.aia_private,
    )


def default_http(port: int, settings: Settings) -> HttpCheck | None:
    """HTTP checks for an endpoint that does not configure them: on for the HTTPS
    port 443 (redirect from port 80, HSTS), off for other ports, where TLS often
    carries something other than a website."""
    return HttpCheck() if port == 443 and settings.check_http else None


def read_targets_file(
    path: Path, settings: Settings | None = None, *, ca_file: str | None = None
) -> list[Endpoint]:
    """Read one ``HOST[:PORT][@SNI]`` per line; ``#`` starts a comment."""
    try:
        lines = decode_text(read_input_file(path, cap=YAML_MAX_BYTES), str(path)).split("\n")
    except InputFileError as exc:
        raise TargetError(f"{exc} (--targets)") from None
    out: list[Endpoint] = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(parse_target(text, settings, ca_file=ca_file))
        except TargetError as exc:
            raise TargetError(f"{path}:{number}: {exc}") from None
    return out


def _thresholds(reader: Reader | None, base: Thresholds) -> Thresholds:
    if reader is None:
        return base
    warning = reader.number("warning_days", base.warning_days, lo=0, hi=MAX_DAYS)
    critical = reader.number("critical_days", base.critical_days, lo=0, hi=MAX_DAYS)
    page = reader.number("page_days", base.page_days, lo=0, hi=MAX_DAYS)
    reader.finish()
    assert warning is not None and critical is not None and page is not None
    if not warning >= critical >= page:
        reader.fail(
            "warning_days",
            f"thresholds must satisfy warning_days >= critical_days >= page_days "
            f"(got {warning:g} >= {critical:g} >= {page:g})",
        )
    return Thresholds(warning, critical, page)


def _resolve_file(reader: Reader, key: str, base_dir: Path, *, must_exist: bool = True) -> str | None:
    """The path under ``key`` (relative to the config's directory); when ``must_exist``,
    it must be a regular file of at most :data:`~certpager.inputs.PEM_MAX_BYTES`."""
    value = reader.str(key)
    if value is None:
        return None
    path = resolve_under(value, base_dir)
    if must_exist:
        try:
            check_input_file(path, cap=PEM_MAX_BYTES)
        except InputFileError as exc:
            reader.fail(key, str(exc))
    return str(path)


def _ca_file(reader: Reader, base_dir: Path) -> str | None:
    """``ca_file``: a readable PEM bundle holding at least one certificate."""
    path = _resolve_file(reader, "ca_file", base_dir)
    if path is not None:
        from certpager.probe.trust import TrustStoreError, get_trust_store

        try:
            get_trust_store(path)
        except TrustStoreError as exc:
            reader.fail("ca_file", str(exc))
    return path


#: Values of ``aia_private``.
AIA_PRIVATE_CHOICES = ("auto", "allow", "refuse")


def _aia_private(reader: Reader, default: str) -> str:
    value = reader.str("aia_private", default) or default
    if value not in AIA_PRIVATE_CHOICES:
        reader.fail("aia_private", f"{value!r} is not one of {', '.join(AIA_PRIVATE_CHOICES)}")
    return value


def _settings(reader: Reader | None, base_dir: Path) -> Settings:
    if reader is None:
        return Settings()
    lock_dir = reader.str("lock_dir")
    s = Settings(
        thresholds=_thresholds(reader.sub("thresholds"), Thresholds()),
        timeout=reader.number("timeout", DEFAULT_TIMEOUT, lo=0.1, hi=MAX_TIMEOUT) or DEFAULT_TIMEOUT,
        dns_timeout=reader.number("dns_timeout", DEFAULT_DNS_TIMEOUT, lo=0.1, hi=60) or DEFAULT_DNS_TIMEOUT,
        concurrency=reader.int("concurrency", DEFAULT_CONCURRENCY, lo=1, hi=10000) or DEFAULT_CONCURRENCY,
        interval=reader.number("interval", DEFAULT_INTERVAL, lo=1, hi=MAX_INTERVAL) or DEFAULT_INTERVAL,
        bell=reader.bool("bell", True),
        runbook_dirs=tuple(reader.str_list("runbook_dirs")),
        check_protocols=reader.bool("check_protocols", True),
        check_no_sni=reader.bool("check_no_sni", True),
        fetch_aia=reader.bool("fetch_aia", True),
        aia_private=_aia_private(reader, "auto"),
        check_http=reader.bool("check_http", True),
        lock_dir=str(base_dir / os.path.expanduser(lock_dir)) if lock_dir else None,
        alertmanager=_alertmanager(reader.sub("alertmanager"), base_dir),
    )
    reader.finish()
    return s


#: One Alertmanager matcher: a label name, an operator, a value (quoted or bare).
_MATCHER_RE = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|[^\"\s,{}=!~]*)\s*"
)


def parse_matcher(text: str) -> tuple[str, str, str]:
    """``name``, operator and unquoted value of one Alertmanager matcher (``team="web"``).

    Raises:
        InputValueError: the text is not ``name=value``, ``name!=value``, ``name=~regex``
        or ``name!~regex`` (a value may be double-quoted), or its regex does not compile.
    """
    match = _MATCHER_RE.fullmatch(text)
    if match is None:
        raise InputValueError(
            f"{quoted(text)} is not an Alertmanager matcher "
            '(label="value", label!="value", label=~"regex" or label!~"regex")'
        )
    name, op, value = match.groups()
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    if "~" in op:
        try:
            re.compile(value)
        except re.error as exc:
            raise InputValueError(f"{quoted(text)}: the regex does not compile ({exc})") from None
    return name, op, value


_URL_PATH_RE = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
"""What a URL path prefix may hold (RFC 3986 ``pchar`` and ``/``: no spaces, no controls)."""


def redact_url(text: str) -> str:
    """``text`` with everything between ``scheme://`` and its last ``@`` replaced by ``***``,
    printable: a URL as a message may show it (a ``user:password`` must never reach a log,
    an error or a report, even one holding ``/``, ``?`` or ``#``)."""
    scheme, sep, rest = text.partition("://") if "://" in text else ("", "", text)
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return printable(f"{scheme}{sep}{rest}")


def check_api_url(text: str) -> str:
    """``text`` without a trailing ``/`` if it is an ``http(s)://host[:port][/prefix]`` URL.

    Raises:
        InputValueError: anything else (other schemes, user:password, query, fragment, a
        path with spaces); the message never shows a password.
    """
    shown = redact_url(text)
    try:
        check_text(text, limit=2000)
        parts = urlsplit(text)
        netloc = parts.netloc
    except ValueError as exc:
        raise InputValueError(f"{quoted(shown)} is not a URL: {printable(str(exc))}") from None
    if parts.scheme not in ("http", "https") or not netloc:
        raise InputValueError(f"{quoted(shown)} is not an http:// or https:// URL")
    if "@" in text or parts.query or parts.fragment or "?" in text or "#" in text:
        raise InputValueError(
            f"{quoted(shown)}: no user, query or fragment (only scheme://host:port/path; "
            "certpager sends no credentials)"
        )
    if not _URL_PATH_RE.fullmatch(parts.path):
        raise InputValueError(
            f"{quoted(shown)}: the path may not hold spaces or other characters URLs escape"
        )
    try:
        _split_hostport(netloc, 0, "URL host")
    except ValueError as exc:
        raise InputValueError(f"{quoted(shown)}: {exc}") from None
    return text.rstrip("/")


def _api_url(reader: Reader) -> str:
    """The section's required ``url`` (:func:`check_api_url`)."""
    url = reader.str("url", required=True)
    assert url is not None
    try:
        return check_api_url(url)
    except InputValueError as exc:
        reader.fail("url", str(exc))


def _api_ca_file(reader: Reader, url: str, base_dir: Path) -> str | None:
    """``ca_file`` of a fleet API section: a PEM bundle, for an ``https://`` ``url`` only."""
    if reader.has("ca_file") and not url.startswith("https://"):
        reader.fail("ca_file", "applies to an https:// url only")
    return _ca_file(reader, base_dir)


def _alertmanager(reader: Reader | None, base_dir: Path) -> AlertmanagerSettings | None:
    """``settings: alertmanager: {url, matchers, interval, timeout, ca_file}``."""
    if reader is None:
        return None
    url = _api_url(reader)
    matchers = reader.str_list("matchers")
    for i, text in enumerate(matchers):
        try:
            parse_matcher(text)
        except InputValueError as exc:
            node = reader.raw("matchers")
            line = node.value[i].line if node is not None and isinstance(node.value, list) else None
            raise ConfigError(
                str(exc), file=reader.file, line=line, key=f"{reader.key_path('matchers')}[{i}]"
            ) from None
    am = AlertmanagerSettings(
        url=url,
        matchers=tuple(matchers),
        interval=reader.number("interval", DEFAULT_ALERT_INTERVAL, lo=1, hi=MAX_INTERVAL)
        or DEFAULT_ALERT_INTERVAL,
        timeout=reader.number("timeout", DEFAULT_ALERT_TIMEOUT, lo=0.1, hi=60) or DEFAULT_ALERT_TIMEOUT,
        ca_file=_api_ca_file(reader, url, base_dir),
    )
    reader.finish()
    return am


def _prometheus(reader: Reader | None, base_dir: Path) -> PrometheusSource | None:
    """``prometheus: {url, query, timeout, ca_file}``: an http(s) URL without credentials."""
    if reader is None:
        return None
    url = _api_url(reader)
    query = reader.str("query", DEFAULT_PROMETHEUS_QUERY) or DEFAULT_PROMETHEUS_QUERY
    timeout = reader.number("timeout", DEFAULT_TIMEOUT, lo=0.1, hi=MAX_TIMEOUT) or DEFAULT_TIMEOUT
    ca_file = _api_ca_file(reader, url, base_dir)
    reader.finish()
    return PrometheusSource(url=url, query=query, timeout=timeout, ca_file=ca_file)


def _ssh(reader: Reader, key: str, base_dir: Path) -> SSHTarget | None:
    node = reader.raw(key)
    if node is None or node.value is None:
        return None
    if isinstance(node.value, str):
        # "user@host:port" or "local"
        text = node.value.strip()
        user: str | None = None
        if "@" in text:
            user, text = text.split("@", 1)
        try:
            host, port = ("local", 0) if text == "local" else _split_hostport(text, 0, "ssh target")
            _check_user(user)
        except ValueError as exc:
            reader.fail(key, str(exc))
        return SSHTarget(host=host, port=port or None, user=user or None)
    sub = reader.sub(key)
    assert sub is not None
    ssh_host = sub.str("host", required=True)
    assert ssh_host is not None
    ssh_user = sub.str("user")
    try:
        if ssh_host != "local":
            check_host(ssh_host)
    except ValueError as exc:
        sub.fail("host", str(exc))
    try:
        _check_user(ssh_user)
    except ValueError as exc:
        sub.fail("user", str(exc))
    target = SSHTarget(
        host=ssh_host,
        port=sub.int("port", None, lo=1, hi=65535),
        user=ssh_user,
        known_hosts=_resolve_file(sub, "known_hosts", base_dir, must_exist=False),
        identity_files=tuple(str(resolve_under(p, base_dir)) for p in sub.str_list("identity_files")),
        connect_timeout=sub.number("connect_timeout", 10.0, lo=0.1, hi=MAX_TIMEOUT) or 10.0,
    )
    sub.finish()
    # asyncssh reads these itself: an existing one must at least be a regular file (a FIFO
    # would hang the connection, /dev/zero fill the memory).
    for key, paths in (("known_hosts", (target.known_hosts,)), ("identity_files", target.identity_files)):
        for path in paths:
            if path is not None and os.path.lexists(path):
                try:
                    check_input_file(path, cap=PEM_MAX_BYTES)
                except InputFileError as exc:
                    sub.fail(key, str(exc))
    return target


def _check_user(user: str | None) -> None:
    if user is not None and not _USER_RE.fullmatch(user):
        raise InputValueError(
            f"user {quoted(user)}: letters, digits, '.', '_' and '-', not starting with '-'"
        )


def _stored(reader: Reader | None) -> StoredCert | None:
    """``stored``: the same rules as the runbook parameter types of ``{stored_path}``,
    ``{secret_namespace}`` and ``{secret_name}`` (path, k8s_namespace, k8s_name)."""
    if reader is None:
        return None
    path = reader.str("path")
    secret = reader.str("secret")
    namespace = reader.str("namespace")
    reader.finish()
    if path and secret:
        reader.fail("secret", "give either 'path' (a file on the SSH host) or 'secret', not both")
    if path:
        if not path.startswith("/") or ".." in path.split("/"):
            reader.fail("path", f"{quoted(path)} must be an absolute path without '..'")
        return StoredCert(kind="file", path=path)
    if secret:
        key = "secret"
        if "/" in secret and namespace is None:
            namespace, secret = secret.split("/", 1)
        elif namespace is not None:
            key = "namespace"
        namespace = namespace or "default"
        if not K8S_LABEL.fullmatch(namespace):
            reader.fail(
                key,
                f"namespace {quoted(namespace)} is not a Kubernetes namespace "
                "(lower-case letters, digits and '-', at most 63)",
            )
        if len(secret) > 253 or not K8S_SUBDOMAIN.fullmatch(secret):
            reader.fail(
                "secret",
                f"{quoted(secret)} is not a Kubernetes name (lower-case letters, digits, '-' and '.')",
            )
        return StoredCert(kind="secret", namespace=namespace, secret=secret)
    reader.fail("path", "needs 'path' (a file on the SSH host) or 'secret' (namespace/name)")


_PIN_RE = re.compile(r"sha256/[A-Za-z0-9+/]{43}=")


def _endpoint(reader: Reader, settings: Settings, base_dir: Path) -> Endpoint:
    name = _endpoint_name(reader)
    host, port = _address(reader)
    sni = _sni(reader)
    backends = _backends(reader, port)
    pins = _pins(reader)
    client_cert, client_key = _client_pair(reader, base_dir)
    http = _http(reader, port, settings)
    params = _params(reader)
    endpoint = Endpoint(
        name=name,
        host=host,
        port=port,
        sni=sni,
        backends=backends,
        tags=tuple(reader.str_list("tags")),
        ca_file=_ca_file(reader, base_dir),
        client_cert=client_cert,
        client_key=client_key,
        thresholds=_thresholds(reader.sub("thresholds"), settings.thresholds),
        http=http,
        pins=pins,
        stored=_stored(reader.sub("stored")),
        ssh=_ssh(reader, "ssh", base_dir),
        runbooks=tuple(reader.str_list("runbooks")),
        params=params,
        timeout=reader.number("timeout", settings.timeout, lo=0.1, hi=MAX_TIMEOUT) or settings.timeout,
        check_protocols=reader.bool("check_protocols", settings.check_protocols),
        check_no_sni=reader.bool("check_no_sni", settings.check_no_sni),
        fetch_aia=reader.bool("fetch_aia", settings.fetch_aia),
        aia_private=_aia_private(reader, settings.aia_private),
    )
    reader.finish()
    return endpoint


def _endpoint_name(reader: Reader) -> str:
    """``name``: required, starts with a letter or digit, no spaces."""
    name = reader.str("name", required=True)
    assert name is not None
    if not _NAME_RE.fullmatch(name):
        reader.fail("name", f"{name!r} must start with a letter or digit and contain no spaces")
    return name


def _address(reader: Reader) -> tuple[str, int]:
    """``host`` (maybe with ``:port``) and ``port``: the port given, else the one in
    ``host``, else 443."""
    host_text = reader.str("host", required=True)
    assert host_text is not None
    try:
        host, port_in_host = _split_hostport(host_text, 0, "host")
    except ValueError as exc:
        reader.fail("host", str(exc))
    return host, reader.int("port", None, lo=1, hi=65535) or port_in_host or 443


def _sni(reader: Reader) -> str | None:
    """``sni``: a DNS name, or false/empty to send none (None: the host name)."""
    sni = reader.raw("sni")
    if sni is None:
        return None
    if sni.value is False or sni.value == "":
        return ""
    if isinstance(sni.value, str) and _HOST_RE.fullmatch(sni.value) and not is_ip(sni.value):
        return sni.value
    reader.fail("sni", f"{sni.value!r} is not a DNS name (use false to send no SNI)")


def _backends(reader: Reader, port: int) -> tuple[Backend, ...]:
    """``backends``: ``host[:port]`` of each server behind the name (default port: the endpoint's)."""
    backends: list[Backend] = []
    for i, text in enumerate(reader.str_list("backends")):
        try:
            b_host, b_port = _split_hostport(text, port, "backend")
        except ValueError as exc:
            reader.fail("backends", f"[{i}] {exc}")
        backends.append(Backend(b_host, b_port))
    return tuple(backends)


def _pins(reader: Reader) -> tuple[str, ...]:
    """``pins``: SPKI pins ``sha256/<base64>``."""
    pins = reader.str_list("pins")
    for pin in pins:
        if not _PIN_RE.fullmatch(pin):
            reader.fail("pins", f"{pin!r} is not an SPKI pin of the form sha256/<44 base64 characters>")
    return tuple(pins)


def _client_pair(reader: Reader, base_dir: Path) -> tuple[str | None, str | None]:
    """``client_cert`` and ``client_key`` (mutual TLS): both or neither, both readable files."""
    client_cert = _resolve_file(reader, "client_cert", base_dir)
    client_key = _resolve_file(reader, "client_key", base_dir)
    if bool(client_cert) != bool(client_key):
        reader.fail("client_key" if client_cert else "client_cert", "client_cert and client_key go together")
    return client_cert, client_key


def _http(reader: Reader, port: int, settings: Settings) -> HttpCheck | None:
    """``http``: left out, the default for the port; false, none; true, the defaults; or a mapping."""
    http_node = reader.raw("http")
    if http_node is None:
        return default_http(port, settings)
    if http_node.value is False or http_node.value is None:
        return None
    if http_node.value is True:
        return HttpCheck()
    sub = reader.sub("http")
    assert sub is not None
    http = HttpCheck(
        port=sub.int("port", 80, lo=1, hi=65535) or 80,
        redirect=sub.bool("redirect", True),
        hsts=sub.bool("hsts", True),
        hsts_min_days=sub.number("hsts_min_days", 180.0, lo=0, hi=MAX_DAYS) or 0.0,
        path=sub.str("path", "/") or "/",
    )
    if not http.path.startswith("/") or any(ch.isspace() for ch in http.path):
        sub.fail("path", f"{quoted(http.path)} must start with '/' and hold no spaces")
    sub.finish()
    return http


def _params(reader: Reader) -> dict[str, str]:
    """``params``: runbook parameter values for this endpoint (strings or numbers)."""
    params: dict[str, str] = {}
    params_reader = reader.sub("params")
    if params_reader is None:
        return params
    for key, node in params_reader.items.items():
        params_reader.seen.add(key)
        if isinstance(node.value, bool) or not isinstance(node.value, str | int | float):
            params_reader.fail(key, "parameter values must be strings or numbers")
        params_reader.check_text(key, str(node.value))
        params[key] = str(node.value)
    return params


def load_config(path: Path) -> Config:
    """Load and validate an endpoint config file.

    Raises:
        ConfigError: naming file, line and key of the first mistake.
    """
    from certpager.yamlfile import Reader, load_yaml

    root = load_yaml(path, ConfigError)
    file = str(path)
    reader = Reader(root, file=file, path="", error=ConfigError)
    base_dir = path.resolve().parent
    settings = _settings(reader.sub("settings"), base_dir)
    prometheus = _prometheus(reader.sub("prometheus"), base_dir)
    if prometheus is not None:
        settings = replace(settings, prometheus=prometheus)
    endpoints: list[Endpoint] = []
    names: dict[str, int] = {}
    if not reader.has("endpoints") and prometheus is None:
        reader.finish()  # a misspelt 'endpoints' is reported as the typo it is
        reader.fail("endpoints", "is required: a list of endpoints to monitor")
    for key_path, node in reader.list("endpoints"):
        ep_reader = Reader(node, file=file, path=key_path, error=ConfigError)
        endpoint = _endpoint(ep_reader, settings, base_dir)
        if endpoint.name in names:
            ep_reader.fail(
                "name",
                f"duplicate endpoint name {endpoint.name!r} (first on line {names[endpoint.name]})",
            )
        names[endpoint.name] = ep_reader.line_of("name")
        endpoints.append(endpoint)
    reader.finish()
    return Config(endpoints=tuple(endpoints), settings=settings, path=path)


def with_overrides(endpoint: Endpoint, **changes: object) -> Endpoint:
    """Return a copy of ``endpoint`` with fields replaced."""
    return replace(endpoint, **changes)  # type: ignore[arg-type]


__all__ = [
    "AlertmanagerSettings",
    "Backend",
    "Config",
    "Endpoint",
    "HttpCheck",
    "PrometheusSource",
    "SSHTarget",
    "Settings",
    "StoredCert",
    "Thresholds",
    "default_config_path",
    "load_config",
    "parse_target",
    "read_targets_file",
]
