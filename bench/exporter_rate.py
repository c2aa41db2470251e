"""Probes per second: ``certpager exporter`` vs Debian's blackbox exporter, same lab, same run.

Starts on 127.0.0.1 only: one nginx with ``--sites`` TLS server blocks (one leaf, full
chain, a test CA), Debian's prometheus-blackbox-exporter (a ``tcp`` prober with TLS: one
handshake and its verification), and two ``certpager exporter`` processes: one with the
default deeper checks (protocol versions, the no-SNI certificate, ...) and one with them
off (one handshake and the chain analysis, the closest to blackbox). A client sends
``--count`` GET /probe requests to each, ``--concurrency`` at a time, round-robin over the
sites, bounded by ``--max-seconds`` per run; the runs of the three are interleaved
``--reps`` times. Prints one JSON object: probes/s per tool (median over reps) and the
ratios to blackbox measured in this run. Every load loop is bounded in count and time.

    .venv/bin/python bench/exporter_rate.py                 # 200 probes x 3 reps per tool
    .venv/bin/python bench/exporter_rate.py --count 500 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

import yaml
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, hierarchy
from tests.support.prometheus import Blackbox, CertpagerExporter


async def _get(port: int, path: str, timeout: float) -> bool:
    """One GET on 127.0.0.1:port; True when it answered 200 with ``probe_success 1``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        body = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return body.startswith(b"HTTP/1.1 200") and b"\nprobe_success 1" in body


async def _run(
    port: int, paths: list[str], count: int, concurrency: int, max_seconds: float
) -> dict[str, Any]:
    """``count`` probes (fewer when ``max_seconds`` passes), ``concurrency`` at a time."""
    deadline = time.monotonic() + max_seconds
    next_index = 0
    ok = failed = 0

    async def worker() -> None:
        nonlocal next_index, ok, failed
        while next_index < count and time.monotonic() < deadline:
            path = paths[next_index % len(paths)]
            next_index += 1
            try:
                success = await _get(port, path, timeout=max(0.1, deadline - time.monotonic()))
            except (OSError, TimeoutError):
                success = False
            ok, failed = (ok + 1, failed) if success else (ok, failed + 1)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.monotonic() - began
    return {
        "probes": ok + failed,
        "ok": ok,
        "failed": failed,
        "seconds": took,
        "rate": ok / took if took else 0,
    }


def _lab(tmp: Path, sites: int) -> tuple[Nginx, Path]:
    pki = PKI(dt.datetime.now(dt.UTC).replace(microsecond=0), tmp / "pki")
    ca = hierarchy(pki, "Bench")
    leaf = ca.leaf("app.test", sans=["app.test"])
    chain, key = pki.write_chain("bench", [leaf, ca.intermediate], key_of=leaf)
    server = Nginx(
        prefix=tmp / "nginx", sites=[Site(f"s{i}", chain, key, server_name="app.test") for i in range(sites)]
    )
    server.start()
    return server, ca.root_file


def _exporter_config(path: Path, lab: Nginx, root: Path, *, deep: bool) -> Path:
    settings: dict[str, Any] = {"timeout": 10}
    if not deep:
        settings.update(check_protocols=False, check_no_sni=False, fetch_aia=False, check_http=False)
    endpoints = [
        {"name": s.name, "host": "127.0.0.1", "port": s.port, "sni": "app.test", "ca_file": str(root)}
        for s in lab.sites
    ]
    path.write_text(yaml.safe_dump({"settings": settings, "endpoints": endpoints}))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--count", type=int, default=200, help="probes per tool and rep (default 200, max 5000)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8, max 64)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3, max 10)")
    parser.add_argument("--sites", type=int, default=10, help="nginx TLS server blocks (default 10, max 200)")
    parser.add_argument(
        "--max-seconds", type=float, default=60, help="bound of one run (default 60, max 300)"
    )
    args = parser.parse_args()
    count, conc = min(max(args.count, 1), 5000), min(max(args.concurrency, 1), 64)
    reps, sites, max_s = min(max(args.reps, 1), 10), min(max(args.sites, 1), 200), min(args.max_seconds, 300)
    with tempfile.TemporaryDirectory(prefix="certpager-bench-exporter-") as name:
        tmp = Path(name)
        lab, root = _lab(tmp, sites)
        try:
            modules = {
                "tls": {
                    "prober": "tcp",
                    "timeout": "10s",
                    "tcp": {"tls": True, "tls_config": {"ca_file": str(root), "server_name": "app.test"}},
                }
            }
            with (
                Blackbox(tmp / "blackbox", modules=modules) as blackbox,
                CertpagerExporter(
                    tmp / "deep", config=_exporter_config(tmp / "deep.yaml", lab, root, deep=True)
                ) as deep,
                CertpagerExporter(
                    tmp / "one", config=_exporter_config(tmp / "one.yaml", lab, root, deep=False)
                ) as one,
            ):
                tools = {
                    "blackbox": (
                        blackbox.port,
                        [f"/probe?module=tls&target=127.0.0.1:{s.port}" for s in lab.sites],
                    ),
                    "certpager_deep": (deep.port, [f"/probe?endpoint={s.name}" for s in lab.sites]),
                    "certpager_one_handshake": (one.port, [f"/probe?endpoint={s.name}" for s in lab.sites]),
                }
                runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
                for port, paths in tools.values():  # warm-up, not counted
                    asyncio.run(_run(port, paths, min(count, 20), conc, max_s))
                for _ in range(reps):
                    for tool, (port, paths) in tools.items():
                        runs[tool].append(asyncio.run(_run(port, paths, count, conc, max_s)))
        finally:
            lab.stop()
    rates = {t: statistics.median(r["rate"] for r in rs) for t, rs in runs.items()}
    result = {
        "count": count,
        "concurrency": conc,
        "reps": reps,
        "sites": sites,
        "probes_per_second_median": rates,
        "ratio_to_blackbox": {t: rates[t] / rates["blackbox"] for t in rates if rates["blackbox"]},
        "failed": {t: sum(r["failed"] for r in rs) for t, rs in runs.items()},
        "load_average_1m": os.getloadavg()[0],
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return 1 if any(result["failed"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
