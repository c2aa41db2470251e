"""Bulk checks spread over worker processes.

The client side of a TLS handshake, and the analysis after it, is CPU work done by
the Python process that drives it: one process checks about as fast as one core
allows. For a fleet, :func:`check_encoded` forks worker processes once the input
is parsed. Each worker runs its share of the concurrency (the total in flight never
exceeds the limit asked for) and takes the next endpoint from a pipe of tickets
(endpoint indices) that the parent filled before forking, so a worker slowed down
by anything (a slow server, another job on the machine) leaves more to the others
instead of making everyone wait for its fixed share. Each worker encodes each report
as it completes and sends it to the parent over a pipe; the parent hands the results
back in input order. When the tickets do not fit in a pipe (more than about 260,000
endpoints), each worker gets a fixed interleaved share instead. Reports are not kept
once encoded (:func:`certpager.check.monitor.stream_full`): memory holds only what is in
flight, and the garbage collector scans that much less (at 1000 endpoints in one
process: 0.02-0.04 s of collections against 0.06-0.08 s when every report is kept).

Nothing is lost: a worker that exits early or stops sending for longer than any
check may take is killed (by PID), and the endpoints it had not reported are
checked again in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
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

from certpager.check.monitor import check_full, check_full_many, stream_full
from certpager.config import Endpoint, Settings
from certpager.probe.model import EndpointReport, Status

#: Most workers ever started.
MAX_WORKERS = 8
#: Fewest endpoints worth a worker of their own.
MIN_PER_WORKER = 25
#: Frame header: endpoint index, payload length, index of the status in :data:`_STATUSES`.
_HEADER = struct.Struct("!IIB")
_STATUSES = tuple(Status)
_READ_SIZE = 1 << 20
#: Pause of the parent between reads of the workers' pipes.
_GATHER_SECONDS = 0.01
#: Capacity asked for the pipes the workers report over (best effort).
_PIPE_BYTES = 1 << 20
#: A ticket: the index of an endpoint to check.
_TICKET = struct.Struct("!I")
#: Most tickets put in a pipe (its capacity is raised up to ``/proc/sys/fs/pipe-max-size``);
#: beyond, or when the pipe cannot be made that large, workers get fixed shares.
MAX_TICKETS = 1 << 18


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
    """How many workers to fork (0: check in this process). Forking needs ``os.fork`` and
    no other thread running here."""
    workers = min(workers, len(endpoints), concurrency)
    if workers <= 1 or not hasattr(os, "fork") or threading.active_count() > 1:
        return 0
    return workers


def check_reports(
    endpoints: Sequence[Endpoint], *, settings: Settings, concurrency: int, workers: int
) -> list[EndpointReport]:
    """Every endpoint's report (as :func:`certpager.check.monitor.check_full` makes it), in input
    order, checked in ``workers`` forked processes (or here, see :func:`check_encoded`)."""
    if not _usable(workers, endpoints, concurrency):
        return asyncio.run(check_full_many(endpoints, settings=settings, concurrency=concurrency))
    encoded = check_encoded(
        endpoints, pickle.dumps, settings=settings, concurrency=concurrency, workers=workers
    )
    return [pickle.loads(e.payload) for e in encoded]  # our own workers' output


def check_encoded(
    endpoints: Sequence[Endpoint],
    encode: Callable[[EndpointReport], bytes],
    *,
    settings: Settings,
    concurrency: int,
    workers: int,
) -> list[Encoded]:
    """Check every endpoint (as :func:`certpager.check.monitor.check_full` does) and return
    ``encode(report)`` with its status, in input order.

    With ``workers`` > 1 (and ``os.fork`` available, and no other thread running in this
    process), the checks run in that many forked worker processes; otherwise here.
    """
    workers = _usable(workers, endpoints, concurrency)
    if not workers:
        return _in_process(endpoints, encode, settings, concurrency)
    results: list[Encoded | None] = [None] * len(endpoints)
    _run_workers(endpoints, encode, settings, concurrency, workers, results)
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        redone = _in_process([endpoints[i] for i in missing], encode, settings, concurrency)
        for i, enc in zip(missing, redone, strict=True):
            results[i] = enc
    return [r for r in results if r is not None]


def _in_process(
    endpoints: Sequence[Endpoint],
    encode: Callable[[EndpointReport], bytes],
    settings: Settings,
    concurrency: int,
) -> list[Encoded]:
    results: list[Encoded | None] = [None] * len(endpoints)

    def keep(index: int, report: EndpointReport) -> None:
        results[index] = Encoded(report.status, encode(report))

    asyncio.run(stream_full(endpoints, keep, settings=settings, concurrency=concurrency))
    return [r for r in results if r is not None]


#: Seconds beyond an endpoint's deadline that a check may still take: the served vs
#: stored comparison over SSH has its own 20 s limit, and a loaded machine adds delays.
_SILENCE_MARGIN = 35.0


def _silence_limit(endpoints: Sequence[Endpoint]) -> float:
    """How long a worker may go without reporting anything before it counts as stuck:
    every check ends within its endpoint's deadline plus :data:`_SILENCE_MARGIN`, so
    one of those in flight must have ended by then."""
    return max((ep.timeout for ep in endpoints), default=10.0) + _SILENCE_MARGIN


def _run_workers(
    endpoints: Sequence[Endpoint],
    encode: Callable[[EndpointReport], bytes],
    settings: Settings,
    concurrency: int,
    workers: int,
    results: list[Encoded | None],
) -> None:
    """Fork the workers, collect their frames into ``results``, reap them."""
    limits = _shares(concurrency, workers)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # nothing buffered may be written twice
    pids: dict[int, int] = {}  # read fd -> pid
    selector = selectors.DefaultSelector()
    # What exists now (modules, the endpoints) is never garbage: keeping it out of the
    # collector's sight spares the workers both the scans and copying the pages they touch.
    gc.freeze()
    # SIGTERM (`timeout`, systemd, a CI runner) must not leave workers behind: it ends the
    # parent through `finally`, which kills them, and exits 143 like the default would.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # a handler set outside Python: the closest we can restore
        previous = signal.SIG_DFL
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    tickets = _ticket_pipe(len(endpoints))
    try:
        for k in range(workers):
            work: int | list[int] = (
                tickets if tickets is not None else list(range(k, len(endpoints), workers))
            )
            read_fd, write_fd = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (covered by the CLI tests)
                os.close(read_fd)
                for fd in pids:
                    os.close(fd)
                _worker(endpoints, work, encode, settings, limits[k], write_fd)
            os.close(write_fd)
            pids[read_fd] = pid
            selector.register(read_fd, selectors.EVENT_READ, bytearray())
        if tickets is not None:
            os.close(tickets)  # the workers hold it
            tickets = None
        _collect(selector, pids, results, _silence_limit(endpoints))
    finally:
        if tickets is not None:
            os.close(tickets)
        for fd, pid in pids.items():
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        selector.close()
        gc.unfreeze()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _collect(
    selector: selectors.BaseSelector,
    pids: dict[int, int],
    results: list[Encoded | None],
    silence: float,
) -> None:
    """Read frames until every worker has closed its pipe or gone silent."""
    heard = dict.fromkeys(pids, time.monotonic())
    while selector.get_map():
        for key, _events in selector.select(timeout=1.0):
            fd = key.fd
            buf: bytearray = key.data
            data = os.read(fd, _READ_SIZE)
            if not data:
                selector.unregister(fd)
                continue
            heard[fd] = time.monotonic()
            buf += data
            offset = 0
            while len(buf) - offset >= _HEADER.size:
                index, length, status = _HEADER.unpack_from(buf, offset)
                end = offset + _HEADER.size + length
                if len(buf) < end:
                    break
                if index < len(results) and status < len(_STATUSES):
                    with memoryview(buf) as view:
                        payload = bytes(view[offset + _HEADER.size : end])
                    results[index] = Encoded(_STATUSES[status], payload)
                offset = end
            del buf[:offset]
        now = time.monotonic()
        for stuck in [key.fd for key in selector.get_map().values() if now - heard[key.fd] > silence]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[stuck], signal.SIGKILL)  # its endpoints are checked again
            selector.unregister(stuck)
        # Let frames gather: woken for each one, the parent spent 0.1 s of CPU per 1000
        # endpoints, taken from the workers. The pipes hold far more than a pause's worth.
        if selector.get_map():
            time.sleep(_GATHER_SECONDS)


def _ticket_pipe(count: int) -> int | None:
    """The read end of a pipe holding one ticket per endpoint, ``0`` to ``count - 1``,
    whose write end is closed (a read past the last ticket gets end of file); None when
    :data:`MAX_TICKETS` or the pipe's capacity is too small for them."""
    if count > MAX_TICKETS:
        return None
    data = b"".join(map(_TICKET.pack, range(count)))
    read_fd, write_fd = os.pipe()
    try:
        if fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) < len(data):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, len(data))
        os.set_blocking(write_fd, False)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except OSError:  # pipe-max-size too small for them, or full after all: fixed shares
        os.close(read_fd)
        return None
    finally:
        os.close(write_fd)
    return read_fd


def _take(tickets: int) -> int | None:
    """The next endpoint index from the ticket pipe, None when none is left.

    Every write was of whole tickets and a pipe read happens under the pipe's lock,
    so a read gets a whole ticket or end of file.
    """
    data = os.read(tickets, _TICKET.size)
    if len(data) < _TICKET.size:
        return None
    index: int = _TICKET.unpack(data)[0]
    return index


async def _drain(
    endpoints: Sequence[Endpoint],
    tickets: int,
    on_report: Callable[[int, EndpointReport], None],
    settings: Settings,
    concurrency: int,
) -> None:
    """``concurrency`` slots, each checking the next ticket's endpoint until none is left
    (each endpoint's deadline starts when a slot takes it, as in
    :func:`certpager.probe.engine.stream_endpoints`)."""

    async def slot() -> None:
        while (index := _take(tickets)) is not None:
            if index < len(endpoints):
                on_report(index, await check_full(endpoints[index], settings=settings))

    await asyncio.gather(*(slot() for _ in range(concurrency)))


def _worker(
    endpoints: Sequence[Endpoint],
    work: int | list[int],
    encode: Callable[[EndpointReport], bytes],
    settings: Settings,
    concurrency: int,
    write_fd: int,
) -> None:  # pragma: no cover - runs in the child (covered by the CLI tests)
    """A forked worker: check the endpoints of the tickets it takes from the pipe ``work``
    (or, given a list, ``endpoints[i]`` for every ``i`` in it), send each report as it
    completes, and leave with ``os._exit`` (never returns)."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the parent reports it; workers just stop.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        def emit(index: int, report: EndpointReport) -> None:
            payload = encode(report)
            frame = _HEADER.pack(index, len(payload), _STATUSES.index(report.status)) + payload
            view = memoryview(frame)
            while view:
                view = view[os.write(write_fd, view) :]

        if isinstance(work, int):
            asyncio.run(_drain(endpoints, work, emit, settings, concurrency))
        else:
            share = work
            asyncio.run(
                stream_full(
                    [endpoints[i] for i in share],
                    lambda j, report: emit(share[j], report),
                    settings=settings,
                    concurrency=concurrency,
                )
            )
    except BaseException:
        code = 1  # the parent checks whatever this worker did not report
    finally:
        os._exit(code)
