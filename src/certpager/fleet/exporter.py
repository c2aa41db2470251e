"""``certpager exporter``: a multi-target Prometheus exporter in the blackbox exporter's style.

``GET /probe?target=HOST[:PORT][@SNI]`` or ``GET /probe?endpoint=NAME`` runs one full
check (:func:`certpager.check.monitor.check_full`, deeper checks included) and answers
its series (:mod:`certpager.fleet.metrics`); ``GET /metrics`` answers the exporter's own
health. ``NAME`` is a configured endpoint or, with a ``prometheus:`` section, one the
import from Prometheus names (:class:`ImportCache`: the import is reused for
:data:`IMPORT_TTL` seconds), as ``certpager check`` and the TUI name it. The server is stdlib asyncio streams with a small HTTP/1.x request parser: one
request per connection, bounded in size (request line, header count, head bytes), in
time (reading the head, writing the answer) and in number (open connections, probes in
flight: excess probes wait on a semaphore within their deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from certpager.check.monitor import check_full
from certpager.config import (
    Config,
    Endpoint,
    Settings,
    default_config_path,
    format_hostport,
    is_ip,
    load_config,
    parse_target,
)
from certpager.errors import ExporterRequestError, PrometheusError, RequestHeadError, TargetError, UserError
from certpager.fleet.metrics import exposition, failure_families, report_families
from certpager.fleet.prometheus import endpoints_of, merge, query
from certpager.httpwire import http_response, parse_request_head
from certpager.inputs import InputValueError, parse_number, parse_port
from certpager.text import emit, printable, quoted

DEFAULT_LISTEN = "127.0.0.1:9219"
"""Where the exporter listens unless told otherwise (loopback)."""

MAX_LINE = 8192
"""Longest request line or header line, bytes."""
MAX_HEADERS = 64
"""Most header lines in one request."""
MAX_HEAD = 32768
"""Most bytes of request line plus headers."""
READ_TIMEOUT = 10.0
"""Seconds a client has to send its whole request head."""
WRITE_TIMEOUT = 10.0
"""Seconds a client has to take the answer."""
MAX_CONNECTIONS = 512
"""Open connections at most; more are answered 503 and closed."""
SCRAPE_MARGIN = 0.5
"""Seconds taken off ``X-Prometheus-Scrape-Timeout-Seconds`` (the answer must still arrive)."""
MIN_DEADLINE = 0.1
"""Shortest probe deadline, seconds."""
MAX_DEADLINE = 300.0
"""Longest probe deadline a scrape-timeout header can ask for, seconds."""
MAX_PARAM = 600
"""Longest ``target``/``endpoint`` value, characters."""
IMPORT_TTL = 60.0
"""Seconds an import from Prometheus answers ``endpoint=NAME`` before it is queried again."""
IMPORT_RETRY = 10.0
"""Seconds before a failed import is tried again (a down Prometheus is not asked per scrape)."""

TEXT = "text/plain; charset=utf-8"
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes (the text format every Prometheus 2.x reads)."""


@dataclass(frozen=True)
class Request:
    """A parsed request head."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names; the last value wins."""


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers of ``head`` (CRLF or LF line ends, no body).

    Raises:
        ExporterRequestError: what is wrong, in one line.
    """
    try:
        head_parts = parse_request_head(head)
    except RequestHeadError as exc:
        raise ExporterRequestError(str(exc)) from None
    try:
        url = urlsplit(head_parts.target)
        query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as exc:
        raise ExporterRequestError(f"bad request target: {exc}") from None
    return Request(method=head_parts.method, path=url.path, query=query, headers=head_parts.headers)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers, up to the blank line, within the limits.

    Raises:
        ExporterRequestError: too long, too many headers, or the client went quiet.
    """
    out = bytearray()
    count = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise ExporterRequestError("connection closed before the request ended") from None
        except asyncio.LimitOverrunError:
            raise ExporterRequestError(f"a request line is longer than {MAX_LINE} bytes", 431) from None
        if line in (b"\r\n", b"\n"):
            return bytes(out)
        out += line
        count += 1
        if count > MAX_HEADERS + 1:
            raise ExporterRequestError(f"more than {MAX_HEADERS} header lines", 431)
        if len(out) > MAX_HEAD:
            raise ExporterRequestError(f"request head longer than {MAX_HEAD} bytes", 431)


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise ExporterRequestError(f"{name} given {len(values)} times: give it once")
    value = values[0]
    if not value:
        raise ExporterRequestError(f"{name} is empty")
    if len(value) > MAX_PARAM:
        raise ExporterRequestError(f"{name} is longer than {MAX_PARAM} characters")
    return value


def scrape_deadline(headers: dict[str, str], default: float) -> float:
    """Seconds a probe may take: ``X-Prometheus-Scrape-Timeout-Seconds`` less
    :data:`SCRAPE_MARGIN` when the header is there, else ``default``."""
    raw = headers.get("x-prometheus-scrape-timeout-seconds")
    if raw is None:
        return default
    try:  # a huge value is only a long deadline: capped below, like blackbox's module timeout
        seconds = parse_number(raw[:40], lo=0)
    except InputValueError:
        raise ExporterRequestError(
            f"X-Prometheus-Scrape-Timeout-Seconds: {quoted(raw[:40])} is not a number of seconds "
            "(write digits, e.g. 10 or 2.5)"
        ) from None
    return max(MIN_DEADLINE, min(seconds - SCRAPE_MARGIN, MAX_DEADLINE))


class ImportCache:
    """The endpoints a config's ``prometheus:`` section imports, by name, for ``endpoint=NAME``.

    Queried when a name is not configured and the last import is older than
    :data:`IMPORT_TTL` (a failed one: :data:`IMPORT_RETRY`); one query at a time, in a
    thread, which a scrape waits for only within its own deadline; a failed query keeps the
    previous import and its error says why a name is unknown.
    Configured endpoints win, as in :func:`certpager.fleet.prometheus.merge`.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.queries = 0
        """Imports run so far."""
        self.error: str | None = None
        """Why the last import failed (None: it did not)."""
        self._by_name: dict[str, Endpoint] = {}
        self._fresh_until = float("-inf")
        self._running: asyncio.Future[None] | None = None

    async def find(self, name: str, within: float | None = None) -> Endpoint | None:
        """The imported endpoint ``name``, importing first when the last import is stale.

        Raises:
            TimeoutError: the import did not finish within ``within`` seconds (it goes on,
            for the next request: one import at a time, never one per waiting scrape).
        """
        if self.clock() >= self._fresh_until:
            if self._running is None:
                self._running = asyncio.ensure_future(self._refresh_in_thread())
            async with asyncio.timeout(within):
                await asyncio.shield(self._running)
        return self._by_name.get(name)

    async def _refresh_in_thread(self) -> None:
        try:
            await asyncio.to_thread(self._refresh)
        except Exception as exc:  # a bug: said in the 400 line, never a task nobody awaits
            self.error = f"the import failed: {type(exc).__name__}: {printable(str(exc))[:200]}"
            self._fresh_until = self.clock() + IMPORT_RETRY
        finally:
            self._running = None

    def _refresh(self) -> None:
        source = self.config.settings.prometheus
        assert source is not None
        self.queries += 1
        try:
            imported = endpoints_of(query(source), self.config.settings).endpoints
        except PrometheusError as exc:
            self.error = str(exc)
            self._fresh_until = self.clock() + IMPORT_RETRY
            return
        configured = self.config.endpoints
        self._by_name = {ep.name: ep for ep in merge(configured, imported)[len(configured) :]}
        self.error = None
        self._fresh_until = self.clock() + IMPORT_TTL


class Exporter:
    """The request handler: endpoints from the config, the probe semaphore, own metrics."""

    def __init__(self, config: Config | None, settings: Settings, concurrency: int) -> None:
        from prometheus_client import (
            GC_COLLECTOR,
            PLATFORM_COLLECTOR,
            PROCESS_COLLECTOR,
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.config = config
        self.settings = settings
        self.concurrency = concurrency
        self.imports = ImportCache(config) if config is not None and config.settings.prometheus else None
        """Endpoints imported from Prometheus (None: the config has no ``prometheus:`` section)."""
        self._slots = asyncio.Semaphore(concurrency)
        self.connections = 0
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.requests = Counter(
            "certpager_exporter_requests",
            "HTTP requests answered, by path and status code",
            ["path", "code"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "certpager_exporter_probe_duration_seconds",
            "Seconds a /probe request took (waiting for a slot included)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "certpager_exporter_probes_in_flight", "Probes running now", registry=self.registry
        )
        self.waiting = Gauge(
            "certpager_exporter_probes_waiting", "Probes waiting for a slot", registry=self.registry
        )
        Gauge("certpager_exporter_max_concurrency", "Probes allowed in flight", registry=self.registry).set(
            concurrency
        )

    async def resolve(self, query: dict[str, list[str]], within: float | None = None) -> Endpoint:
        """The endpoint a ``/probe`` query names (an import from Prometheus waited for at most
        ``within`` seconds).

        Raises:
            ExporterRequestError: unknown endpoint, both or neither parameter, a bad target.
        """
        unknown = sorted(set(query) - {"target", "endpoint", "module"})
        if unknown:
            raise ExporterRequestError(f"unknown parameter {quoted(unknown[0][:40])}")
        target, name = _one(query, "target"), _one(query, "endpoint")
        if (target is None) == (name is None):
            raise ExporterRequestError("give exactly one of target=HOST[:PORT][@SNI] or endpoint=NAME")
        if name is not None:
            return await self._named(name, within)
        assert target is not None
        try:
            return parse_target(target, self.settings)
        except TargetError as exc:
            raise ExporterRequestError(" ".join(str(exc).splitlines())) from None

    async def _named(self, name: str, within: float | None) -> Endpoint:
        """The configured endpoint ``name``, else the imported one (waiting at most ``within``
        seconds for an import).

        Raises:
            ExporterRequestError: neither has it (naming a failed import), or the import
            did not finish in time.
        """
        found = self.config.endpoint(name) if self.config is not None else None
        if found is None and self.imports is not None:
            try:
                found = await self.imports.find(name, within)
            except TimeoutError:
                raise ExporterRequestError(
                    f"the import from Prometheus that may name {quoted(name[:100])} "
                    f"did not finish within {within or 0:g} s (the scrape's deadline); try again",
                    503,
                ) from None
        if found is not None:
            return found
        shown = printable(name[:100])
        if self.imports is None:
            raise ExporterRequestError(f"no endpoint named {quoted(shown)} in the config")
        why = f" (the last import failed: {self.imports.error})" if self.imports.error else ""
        raise ExporterRequestError(
            f"no endpoint named {quoted(shown)} in the config or imported from Prometheus{why}"
        )

    async def probe(self, request: Request) -> bytes:
        """The exposition of one check for ``request``."""
        started = time.monotonic()
        endpoint = await self.resolve(request.query, scrape_deadline(request.headers, self.settings.timeout))
        deadline = scrape_deadline(request.headers, endpoint.timeout)  # counted from `started`
        self.waiting.inc()
        try:
            acquired = await _acquire(self._slots, deadline - (time.monotonic() - started))
        finally:
            self.waiting.dec()
        if not acquired:
            return exposition(failure_families(time.monotonic() - started))
        self.in_flight.inc()
        try:
            remaining = max(MIN_DEADLINE, deadline - (time.monotonic() - started))
            endpoint = replace(endpoint, timeout=remaining)
            try:  # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancellation
                async with asyncio.timeout(remaining + SCRAPE_MARGIN):
                    report = await check_full(endpoint, settings=self.settings)
            except TimeoutError:
                return exposition(failure_families(time.monotonic() - started))
        finally:
            self.in_flight.dec()
            self._slots.release()
            self.durations.observe(time.monotonic() - started)
        return exposition(report_families(report, time.monotonic() - started))

    def own_metrics(self) -> bytes:
        """The exporter's own health."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    async def route(self, request: Request) -> tuple[int, bytes, str]:
        """(status, body, content type) for ``request``."""
        if request.method not in ("GET", "HEAD"):
            raise ExporterRequestError(f"method {printable(request.method[:20])} not allowed: use GET", 405)
        if request.path == "/probe":
            return 200, await self.probe(request), EXPOSITION
        if request.path == "/metrics":
            return 200, self.own_metrics(), EXPOSITION
        if request.path == "/":
            return 200, _INDEX, TEXT
        raise ExporterRequestError("not found: try /probe?target=HOST[:PORT][@SNI] or /metrics", 404)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: one request, one answer, close."""
        self.connections += 1
        answer: Answer | None
        try:
            if self.connections > MAX_CONNECTIONS:
                path, answer = "-", (503, b"too many connections\n", TEXT)
            else:
                path, answer = await self._serve_one(reader)
            if answer is None:  # the client left before its answer: nginx's 499
                self.requests.labels(path, "499").inc()
                return
            status, body, ctype = answer
            self.requests.labels(path, str(status)).inc()
            await _answer(writer, status, body, ctype)
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)

    async def _serve_one(self, reader: asyncio.StreamReader) -> tuple[str, Answer | None]:
        """(path label, answer) of the connection's request; None when the client left first."""
        path = "-"
        try:
            try:
                head = await asyncio.wait_for(read_head(reader), READ_TIMEOUT)
            except TimeoutError:
                return path, (408, b"request head not received in time\n", TEXT)
            request = parse_head(head)
            path = request.path if request.path in ("/probe", "/metrics", "/") else "other"
            answer = await _unless_gone(self.route(request), reader)
            if answer is None or request.method != "HEAD":
                return path, answer
            return path, (answer[0], b"", answer[2])
        except ExporterRequestError as exc:
            return path, (exc.status, _line(str(exc)), TEXT)
        except Exception as exc:  # a bug costs one scrape one line, never the server a traceback
            emit(sys.stderr, f"certpager exporter: internal error on {path}: {type(exc).__name__}: {exc}")
            return path, (500, b"internal error (the exporter's log says which)\n", TEXT)


Answer = tuple[int, bytes, str]
"""(status, body, content type)."""


async def _until_gone(reader: asyncio.StreamReader) -> None:
    """Return when the client closes or resets its side (what it sends meanwhile is discarded)."""
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


async def _unless_gone(
    work: Coroutine[object, object, Answer], reader: asyncio.StreamReader
) -> Answer | None:
    """The result of ``work``, or None when the client hangs up first (``work`` is then
    cancelled: its probe slot is freed at once, not at the probe's deadline). Like Go's
    net/http, an end of the client's stream after the request counts as hanging up."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_until_gone(reader))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


_INDEX = (
    b"certpager exporter\n"
    b"  /probe?target=HOST[:PORT][@SNI]  check one target with the config's settings\n"
    b"  /probe?endpoint=NAME             check a configured endpoint\n"
    b"  /metrics                         the exporter's own health\n"
)


def _line(message: str) -> bytes:
    return (printable(" ".join(message.splitlines()))[:500] + "\n").encode()


async def _acquire(slots: asyncio.Semaphore, within: float) -> bool:
    """Take a probe slot, waiting at most ``within`` seconds."""
    try:  # not wait_for: on Python 3.11 it can swallow the cancellation of a client that left
        async with asyncio.timeout(within):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str) -> None:
    with contextlib.suppress(OSError, TimeoutError):
        writer.write(http_response(status, [("Content-Type", ctype)], body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` of ``--listen``; the host must be an IP address.

    Raises:
        UserError: naming ``--listen``.
    """
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        if not sep or not is_ip(host):
            raise InputValueError("expected an IP address and a port, e.g. 127.0.0.1:9219")
        return host, parse_port(port_text)
    except InputValueError as exc:
        raise UserError(f"--listen {quoted(text)}: {exc}") from None


async def serve(
    exporter: Exporter,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve on ``host:port`` until ``stop`` is set."""
    try:
        server = await asyncio.start_server(exporter.handle, host, port, limit=MAX_LINE, backlog=256)
    except OSError as exc:
        raise UserError(f"--listen {format_hostport(host, port)}: {exc.strerror or exc}") from None
    async with server:
        if on_ready is not None:
            on_ready(f"http://{format_hostport(host, port)}")
        await stop.wait()


def _load(args: argparse.Namespace) -> tuple[Config | None, Settings]:
    path = Path(args.config) if args.config else default_config_path()
    if not args.config and not path.exists():
        return None, Settings()
    config = load_config(path)
    return config, config.settings


def run_exporter(args: argparse.Namespace) -> int:
    """Run ``certpager exporter`` until SIGTERM or Ctrl-C."""
    host, port = parse_listen(args.listen)
    config, settings = _load(args)
    exporter = Exporter(config, settings, args.concurrency or settings.concurrency)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        def ready(url: str) -> None:
            emit(sys.stderr, f"certpager exporter: listening on {url} (/probe, /metrics)", flush=True)

        await serve(exporter, host, port, stop=stop, on_ready=ready)

    asyncio.run(main())
    return 0


__all__ = [
    "DEFAULT_LISTEN",
    "IMPORT_TTL",
    "Exporter",
    "ImportCache",
    "Request",
    "parse_head",
    "parse_listen",
    "read_head",
    "run_exporter",
    "scrape_deadline",
    "serve",
]
