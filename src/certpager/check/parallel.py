"""Bulk checks spread over worker processes.

The client side of a TLS handshake, and the analysis after it, is CPU work done by
the Python process that drives it: one process checks about as fast as one core
allows. For a fleet, :func:`check_each` starts worker processes (``multiprocessing``,
fork context) once the input is parsed. Each worker runs its share of the concurrency
(the total in flight never exceeds the limit asked for) and takes the next endpoint
index from a counter shared by all workers, so a worker slowed down by anything (a
slow server, another job on the machine) leaves more to the others instead of making
everyone wait for a fixed share. Each worker converts each report as it completes
into bytes (the JSON text after a status byte, or the report pickled for the table)
and sends them to the parent over a pipe, framed with the endpoint's index, several
to a message when they complete together; the parent hands the results back in input
order. What every worker would need on its own (the deeper checks' module, the trust
stores) is made ready in the parent before forking. Reports are not kept once
converted (:func:`certpager.check.monitor.stream_full`): memory holds only what is in
flight.

Nothing is lost: a worker that exits early or stops sending for longer than any
check may take is killed (by PID), and the endpoints it had not reported are
checked again in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import selectors
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from certpager.check.monitor import check_full, stream_full
from certpager.config import Endpoint, Settings
from certpager.errors import TrustStoreError
from certpager.probe.model import EndpointReport, Status
from certpager.probe.trust import get_trust_store

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from multiprocessing.sharedctypes import Synchronized

T = TypeVar("T")

#: Most workers ever started.
MAX_WORKERS = 8
#: Fewest endpoints worth a worker of their own.
MIN_PER_WORKER = 25


@dataclass(frozen=True)
class Encoded:
    """One endpoint's verdict and its report, encoded."""

    status: Status
    payload: bytes


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_workers(endpoints: int, concurrency: int) -> int:
    """Workers for ``endpoints`` endpoints: one per CPU, at most :data:`MAX_WORKERS`, each
    with at least :data:`MIN_PER_WORKER` endpoints and one slot of the concurrency."""
    return max(1, min(cpu_count(), MAX_WORKERS, endpoints // MIN_PER_WORKER, concurrency))


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal positive integers."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


def _usable(workers: int, endpoints: Sequence[Endpoint], concurrency: int) -> int:
    """How many workers to start (0: check in this process). Forking needs the fork start
    method and no other thread running here."""
    workers = min(workers, len(endpoints), concurrency)
    if workers <= 1 or threading.active_count() > 1:
        return 0
    import multiprocessing  # here: a run in one process (one target) never needs it

    return workers if "fork" in multiprocessing.get_all_start_methods() else 0


def check_reports(
    endpoints: Sequence[Endpoint], *, settings: Settings, concurrency: int, workers: int
) -> list[EndpointReport]:
    """Every endpoint's report (as :func:`certpager.check.monitor.check_full` makes it), in
    input order (see :func:`check_each`); workers send them pickled."""
    return check_each(
        endpoints,
        _same,
        settings=settings,
        concurrency=concurrency,
        workers=workers,
        dump=pickle.dumps,
        load=pickle.loads,  # our own workers' output
    )


def _same(report: EndpointReport) -> EndpointReport:
    return report


def check_encoded(
    endpoints: Sequence[Endpoint],
    encode: Callable[[EndpointReport], bytes],
    *,
    settings: Settings,
    concurrency: int,
    workers: int,
) -> list[Encoded]:
    """``encode(report)`` of every endpoint's report, with its status, in input order
    (see :func:`check_each`); workers send the bytes as they are, after a status byte."""
    return check_each(
        endpoints,
        lambda report: Encoded(report.status, encode(report)),
        settings=settings,
        concurrency=concurrency,
        workers=workers,
        dump=_dump_encoded,
        load=_load_encoded,
    )


_STATUSES = tuple(Status)
_STATUS_BYTES = {status: bytes([k]) for k, status in enumerate(_STATUSES)}


def _dump_encoded(encoded: Encoded) -> bytes:
    return _STATUS_BYTES[encoded.status] + encoded.payload


def _load_encoded(data: bytes) -> Encoded:
    return Encoded(_STATUSES[data[0]], data[1:])


def check_each(
    endpoints: Sequence[Endpoint],
    convert: Callable[[EndpointReport], T],
    *,
    settings: Settings,
    concurrency: int,
    workers: int,
    dump: Callable[[T], bytes],
    load: Callable[[bytes], T],
) -> list[T]:
    """Check every endpoint (as :func:`certpager.check.monitor.check_full` does) and return
    ``convert(report)`` of each, in input order.

    With ``workers`` > 1 (and the fork start method available, and no other thread
    running in this process), the checks run in that many worker processes, which send
    ``dump(convert(report))`` for the parent to ``load``; what they leave unreported is
    checked here. Otherwise everything is checked here.
    """
    results: list[T | None] = [None] * len(endpoints)
    workers = _usable(workers, endpoints, concurrency)
    if workers:
        wire = _Wire(lambda report: dump(convert(report)), load)
        _run_workers(endpoints, wire, settings, concurrency, workers, results)
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:

        def keep(j: int, report: EndpointReport) -> None:
            results[missing[j]] = convert(report)

        asyncio.run(
            stream_full([endpoints[i] for i in missing], keep, settings=settings, concurrency=concurrency)
        )
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class _Wire(Generic[T]):
    """How a result crosses from a worker to the parent: ``dump`` (in the worker) turns a
    report into bytes, ``load`` (in the parent) turns them into the result."""

    dump: Callable[[EndpointReport], bytes]
    load: Callable[[bytes], T]


#: Seconds beyond an endpoint's deadline that a check may still take: the served vs
#: stored comparison over SSH has its own 20 s limit, and a loaded machine adds delays.
_SILENCE_MARGIN = 35.0


def _silence_limit(endpoints: Sequence[Endpoint]) -> float:
    """How long a worker may go without reporting anything before it counts as stuck:
    every check ends within its endpoint's deadline plus :data:`_SILENCE_MARGIN`, so
    one of those in flight must have ended by then."""
    return max((ep.timeout for ep in endpoints), default=10.0) + _SILENCE_MARGIN


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    heard: float


def _run_workers(
    endpoints: Sequence[Endpoint],
    wire: _Wire[T],
    settings: Settings,
    concurrency: int,
    workers: int,
    results: list[T | None],
) -> None:
    """Start the workers, collect what they send into ``results``, reap them."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0)  # the next endpoint index to check
    _prepare(endpoints)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # nothing buffered may be written twice
    started: list[_Worker] = []
    # What exists now (modules, the endpoints) is never garbage: keeping it out of the
    # collector's sight spares the workers both the scans and copying the pages they touch.
    gc.freeze()
    # SIGTERM (`timeout`, systemd, a CI runner) must not leave workers behind: it ends the
    # parent through `finally`, which kills them, and exits 143 like the default would.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # a handler set outside Python: the closest we can restore
        previous = signal.SIG_DFL
    main = threading.current_thread() is threading.main_thread()
    if main:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        for limit in _shares(concurrency, workers):
            read, write = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=_worker,
                args=(endpoints, counter, wire.dump, settings, limit, write),
                daemon=True,
            )
            process.start()
            write.close()  # the worker holds it: end of file once it is gone
            started.append(_Worker(process, read, time.monotonic()))
        _collect(started, results, wire.load, _silence_limit(endpoints))
    finally:
        for worker in started:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join()
            worker.conn.close()
        gc.unfreeze()
        if main:
            signal.signal(signal.SIGTERM, previous)


def _prepare(endpoints: Sequence[Endpoint]) -> None:
    """Do once here what every worker would otherwise do on its own before its first report
    (counted with callgrind): import the deeper checks (the engine imports them on first
    use: ~15 M instructions per worker) and load the trust stores the endpoints use (the
    system store: ~150 M; a ``--ca-file`` or ``ca_file`` was loaded when the input was read)."""
    import certpager.probe.deep  # noqa: F401

    for ca_file in {ep.ca_file for ep in endpoints}:
        with contextlib.suppress(TrustStoreError):  # each endpoint's check reports it
            get_trust_store(ca_file)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


#: A result's frame header: endpoint index, length of the bytes that follow.
_FRAME = struct.Struct("!II")


def _collect(
    started: list[_Worker], results: list[T | None], load: Callable[[bytes], T], silence: float
) -> None:
    """Receive results until every worker has closed its pipe or gone silent.

    One selector for the whole run: ``multiprocessing.connection.wait`` builds one per
    call (and ``Connection.poll`` calls it). A message holds every result a worker
    completed in one turn of its event loop (:class:`_Outbox`). A pause between rounds,
    to let more gather, made no difference to the instructions counted and did not help
    in timed runs (docs/performance.md).
    """
    with selectors.DefaultSelector() as selector:
        for worker in started:
            selector.register(worker.conn, selectors.EVENT_READ, worker)
        while selector.get_map():
            for key, _events in selector.select(timeout=1.0):
                worker = key.data
                worker.heard = time.monotonic()
                try:
                    _unpack(worker.conn.recv_bytes(), results, load)
                except (EOFError, OSError):  # gone (a torn last message: redone)
                    selector.unregister(worker.conn)
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                if now - key.data.heard > silence:
                    key.data.process.kill()  # its endpoints are checked again
                    selector.unregister(key.fileobj)


def _unpack(message: bytes, results: list[T | None], load: Callable[[bytes], T]) -> None:
    """Store the results framed in ``message`` (one or more) into ``results``."""
    offset = 0
    with memoryview(message) as view:
        while offset < len(message):
            index, length = _FRAME.unpack_from(message, offset)
            offset += _FRAME.size
            results[index] = load(bytes(view[offset : offset + length]))
            offset += length


class _Outbox:
    """A worker's side of its pipe. The results that complete in one turn of the event loop
    go in one message (one write here, one receive in the parent), sent before their slots
    take another endpoint: a worker that dies has only its checks in flight unreported."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._frames: list[bytes] = []
        self._sent: asyncio.Future[None] | None = None

    async def put(self, index: int, data: bytes) -> None:
        """Send ``data`` as the result of endpoint ``index`` (with the others of this turn)."""
        self._frames += (_FRAME.pack(index, len(data)), data)
        if self._sent is None:
            loop = asyncio.get_running_loop()
            self._sent = loop.create_future()
            loop.call_soon(self._send)
        await self._sent

    def _send(self) -> None:
        sent, self._sent = self._sent, None
        assert sent is not None
        try:
            self._conn.send_bytes(b"".join(self._frames))
        except Exception as exc:  # the parent is gone: the slots end with it, and the worker
            sent.set_exception(exc)
        else:
            sent.set_result(None)
        self._frames.clear()


def _take(counter: Synchronized[int], total: int) -> int | None:
    """The next endpoint index from ``counter`` (shared by the workers), None when all
    ``total`` have been taken."""
    with counter.get_lock():
        index: int = counter.value
        if index >= total:
            return None
        counter.value = index + 1
    return index


def _worker(
    endpoints: Sequence[Endpoint],
    counter: Synchronized[int],
    dump: Callable[[EndpointReport], bytes],
    settings: Settings,
    concurrency: int,
    conn: Connection,
) -> None:  # pragma: no cover - runs in the child (covered by the CLI tests)
    """A worker process: ``concurrency`` slots, each checking the endpoint of the next index
    it takes from ``counter`` and sending ``dump(report)`` as it completes (each
    endpoint's deadline starts when a slot takes it, as in
    :func:`certpager.probe.engine.stream_endpoints`)."""
    # Ctrl-C reaches the whole process group: the parent reports it; workers just stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    async def slot(outbox: _Outbox) -> None:
        while (index := _take(counter, len(endpoints))) is not None:
            report = await check_full(endpoints[index], settings=settings)
            await outbox.put(index, dump(report))

    async def slots() -> None:
        outbox = _Outbox(conn)
        await asyncio.gather(*(slot(outbox) for _ in range(concurrency)))

    try:
        asyncio.run(slots())
    except BaseException:
        sys.exit(1)  # quietly: the parent checks whatever this worker did not report
