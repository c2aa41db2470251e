"""Where certpager's time goes, without a profiler's distortion.

Runs certpager's own functions in-process, one phase at a time, over the same
targets, and prints one JSON object: for each phase the least CPU time
(``time.process_time``) and the least wall time over ``--reps`` runs. CPU time
is the steadier figure on a shared machine; certpager's client side is CPU
bound (one core busy for the whole run), so CPU seconds saved here are wall
seconds saved there. Profilers inflate code that makes many small Python calls
(the JSON encoder, OpenSSL callbacks) several times over; these are plain
timings. A few "what-if" phases monkeypatch one certpager function to measure
a suggested change (nothing in src/ is modified).

    python bench/components.py --targets FILE --ca-file ROOT
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

T_START = time.perf_counter()

from OpenSSL import SSL, crypto  # noqa: E402

from certpager.check.report import report_json  # noqa: E402
from certpager.config import Endpoint, Settings, read_targets_file  # noqa: E402
from certpager.probe import analysis  # noqa: E402
from certpager.probe import handshake as hs_mod  # noqa: E402
from certpager.probe.engine import backend_result, check_endpoints  # noqa: E402
from certpager.probe.model import Handshake  # noqa: E402
from certpager.probe.trust import get_trust_store  # noqa: E402

T_IMPORTS = time.perf_counter() - T_START

#: Endpoint switches of the deeper checks (when this build has them).
LEAN_FIELDS = ("check_protocols", "check_no_sni", "fetch_aia")


def timed(fn: Callable[[], object], reps: int) -> dict[str, float]:
    """Least CPU and wall seconds of ``reps`` calls."""
    cpu, wall = [], []
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {"cpu_s": round(min(cpu), 4), "wall_s": round(min(wall), 4)}


def interleaved(variants: dict[str, Callable[[], object]], reps: int) -> dict[str, dict[str, float]]:
    """Like :func:`timed` for several variants, run A B C A B C ... so drift hits all alike."""
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {k: {"cpu_s": round(min(cpu[k]), 4), "wall_s": round(min(wall[k]), 4)} for k in variants}


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn`` (CPU time, best of 3 batches)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - start)
    return round(best / calls * 1e6, 2)


async def handshakes(
    endpoints: list[Endpoint], concurrency: int, options: hs_mod.ClientOptions
) -> list[Handshake]:
    """certpager's ``handshake()`` over every endpoint, nothing else."""
    limit = asyncio.Semaphore(concurrency)

    async def one(ep: Endpoint) -> Handshake:
        async with limit:
            return await hs_mod.handshake(
                ep.host, ep.port, ep.server_name, timeout=ep.timeout, options=options
            )

    return list(await asyncio.gather(*(one(ep) for ep in endpoints)))


def blocking_connection(ep: Endpoint) -> tuple[socket.socket, SSL.Connection]:
    """One completed handshake with certpager's client context (for per-call timings)."""
    sock = socket.create_connection((ep.host, ep.port), timeout=5)
    sock.settimeout(None)  # blocking: OpenSSL drives the socket itself
    conn = SSL.Connection(hs_mod.client_context(hs_mod.ClientOptions()), sock)
    conn.set_connect_state()
    if ep.server_name:
        conn.set_tlsext_host_name(ep.server_name.encode())
    conn.do_handshake()
    return sock, conn


def peer_chain_der(conn: SSL.Connection) -> tuple[bytes, ...]:
    """What-if for ``handshake._peer_chain``: DER straight from OpenSSL."""
    try:
        chain = conn.get_peer_cert_chain()
    except SSL.Error:
        return ()
    return tuple(crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in chain or ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"imports_s": round(T_IMPORTS, 4)}
    endpoints = read_targets_file(Path(args.targets), Settings(), ca_file=args.ca_file)
    out["endpoints"] = len(endpoints)
    now = datetime.now(UTC)
    start = time.perf_counter()
    trust = get_trust_store(args.ca_file)
    out["trust_store_load_s"] = round(time.perf_counter() - start, 4)

    # 1. Handshakes alone: certpager's as is, without the info callback (an
    #    upper bound on what the callback costs: it is how certpager sees a
    #    client-certificate request), and with the chain taken as DER directly.
    default = hs_mod.ClientOptions()
    no_callback = hs_mod.ClientOptions(alpn=("h2", "http/1.1", "x-bench"))  # its own cached context
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_cipher_list(default.ciphers.encode())
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    ctx.set_alpn_protos([p.encode() for p in default.alpn])
    hs_mod._CONTEXTS[no_callback] = ctx
    results: list[Handshake] = []

    def run(options: hs_mod.ClientOptions) -> Callable[[], None]:
        def go() -> None:
            results[:] = asyncio.run(handshakes(endpoints, args.concurrency, options))

        return go

    def run_der_chain() -> None:
        original = hs_mod._peer_chain
        hs_mod._peer_chain = peer_chain_der
        try:
            run(default)()
        finally:
            hs_mod._peer_chain = original

    out["handshakes"] = interleaved(
        {
            "as_is": run(default),
            "no_info_callback": run(no_callback),
            "der_peer_chain": run_der_chain,
        },
        args.reps,
    )
    run(default)()
    out["handshakes_ok"] = sum(1 for h in results if h.ok)
    out["handshake_ms_median_under_load"] = round(
        statistics.median(h.timings.handshake_ms or 0.0 for h in results if h.ok), 2
    )

    # Per-call costs on one live connection.
    sock, conn = blocking_connection(endpoints[0])
    try:
        out["per_call_us"] = {
            "peer_chain_as_is": per_call_us(lambda: hs_mod._peer_chain(conn), 2000),
            "peer_chain_der": per_call_us(lambda: peer_chain_der(conn), 2000),
            "ssl_connection_new": per_call_us(lambda: SSL.Connection(ctx, None), 2000),
        }
    finally:
        sock.close()

    # DNS: certpager resolves every endpoint through its bounded thread pool
    # (the benchmark's targets are IP literals, so the runs above skip it).
    # Here: "localhost" (from /etc/hosts, 127.0.0.1) once per endpoint through
    # that pool at the engine's concurrency, and the same lookups inline.
    async def pool_lookups() -> None:
        limit = asyncio.Semaphore(args.concurrency)

        async def one(ep: Endpoint) -> None:
            async with limit:
                await hs_mod.resolve("localhost", ep.port, 5.0)

        await asyncio.gather(*(one(ep) for ep in endpoints))

    def inline_lookups() -> None:
        for ep in endpoints:
            socket.getaddrinfo("localhost", ep.port, socket.AF_UNSPEC, socket.SOCK_STREAM)

    out["dns_localhost"] = interleaved(
        {"resolve_pool": lambda: asyncio.run(pool_lookups()), "getaddrinfo_inline": inline_lookups}, args.reps
    )

    # 2. Analysis, split: parsing (cold cache), OpenSSL verification, the rest.
    pairs = [(ep, h) for ep, h in zip(endpoints, results, strict=True) if h.ok]
    leaf_der = pairs[0][1].chain_der[0]
    out["per_call_us"]["parse_cert_leaf_uncached"] = per_call_us(
        lambda: analysis.parse_cert.__wrapped__(leaf_der), 500
    )
    out["per_call_us"]["load_certificate_pyopenssl"] = per_call_us(lambda: analysis._x509(leaf_der), 2000)
    chain = [analysis.parse_cert(d) for d in pairs[0][1].chain_der]
    out["per_call_us"]["verify_one_chain"] = per_call_us(lambda: analysis._verify(chain, trust, []), 500)
    out["per_call_us"]["match_hostname"] = per_call_us(
        lambda: analysis.match_hostname(chain[0].sans, pairs[0][0].verify_name), 2000
    )

    def parse_all() -> None:
        analysis.parse_cert.cache_clear()
        for _ep, h in pairs:
            for der in h.chain_der:
                analysis.parse_cert(der)

    out["parse_cert_cold"] = timed(parse_all, args.reps)

    def verify_all() -> None:
        for _ep, h in pairs:
            analysis._verify([analysis.parse_cert(d) for d in h.chain_der], trust, [])

    parse_all()
    out["verify_incl_x509_loads"] = timed(verify_all, args.reps)

    def verify_bare() -> None:
        for _ep, h in pairs:
            leaf, *rest = (crypto.load_certificate(crypto.FILETYPE_ASN1, d) for d in h.chain_der)
            crypto.X509StoreContext(trust.store, leaf, chain=rest).verify_certificate()

    out["verify_bare_openssl"] = timed(verify_bare, args.reps)

    def analyze_all() -> None:
        analysis.parse_cert.cache_clear()
        for ep, h in pairs:
            backend_result(ep, h, now)

    out["analysis_total"] = timed(analyze_all, args.reps)
    original_x509 = analysis._x509
    analysis._x509 = functools.lru_cache(maxsize=4096)(original_x509)  # what-if: cache by DER
    try:
        out["analysis_total_x509_cached"] = timed(analyze_all, args.reps)
    finally:
        analysis._x509 = original_x509

    # 3. The engine end to end, in-process (handshake + analysis interleaved), with
    #    the deeper checks as configured by default and switched off (those this
    #    build has), like ``certpager check`` and ``certpager check --no-...``.
    reports: list[Any] = []
    off = {f.name: False for f in dataclasses.fields(Endpoint) if f.name in LEAN_FIELDS}
    if any(f.name == "http" for f in dataclasses.fields(Endpoint)):
        off["http"] = None  # type: ignore[assignment]
    lean = [dataclasses.replace(ep, **off) for ep in endpoints]  # type: ignore[arg-type]

    def engine(eps: list[Endpoint]) -> Callable[[], None]:
        def go() -> None:
            analysis.parse_cert.cache_clear()
            reports[:] = asyncio.run(check_endpoints(eps, concurrency=args.concurrency))

        return go

    out["check_endpoints"] = interleaved({"default": engine(endpoints), "lean": engine(lean)}, args.reps)
    out["lean_switched_off"] = sorted(off)

    # 4. Rendering.
    dicts: list[Any] = []

    def to_dicts() -> None:
        dicts[:] = [report_json(r) for r in reports]

    out["report_json"] = timed(to_dicts, args.reps)
    with open(os.devnull, "w") as devnull:
        out["json_dump_indent2"] = timed(lambda: json.dump(dicts, devnull, indent=2), args.reps)
        out["json_dumps_compact"] = timed(lambda: devnull.write(json.dumps(dicts)), args.reps)
    out["json_bytes_indent2"] = len(json.dumps(dicts, indent=2))
    out["json_bytes_compact"] = len(json.dumps(dicts, separators=(",", ":")))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
