"""Time the Prometheus import: N blackbox-style series in a real Prometheus -> endpoints.

Starts Debian's Prometheus on 127.0.0.1 (data in a temp dir), loads it with N series of
``probe_ssl_earliest_cert_expiry{instance="hostI.test:443"}`` by one scrape of a static
exposition served on loopback, then times certpager's import (the instant query over
HTTP, the JSON, one endpoint per series, the merge with the configured endpoints) over
``--reps`` runs. The requirement: 10,000 series in under 2 s. Prints one JSON object.

    .venv/bin/python bench/prometheus_import.py              # N=10000, 5 reps
    .venv/bin/python bench/prometheus_import.py --n 20000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from tests.support.prometheus import Prometheus, StaticMetrics, blackbox_series

from certpager.config import Config, PrometheusSource, Settings
from certpager.fleet.prometheus import endpoints_of, query, with_imported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="series (default 10000, at most 100000)")
    parser.add_argument("--reps", type=int, default=5, help="timed imports (default 5, at most 50)")
    args = parser.parse_args()
    n, reps = min(max(args.n, 1), 100_000), min(max(args.reps, 1), 50)
    targets = [f"host{i}.test:443" for i in range(n)]
    with (
        tempfile.TemporaryDirectory(prefix="certpager-bench-prom-") as tmp,
        StaticMetrics(blackbox_series(targets)) as static,
        Prometheus(Path(tmp) / "prometheus", scrape_configs=[static.job()], interval="5s") as prometheus,
    ):
        assert isinstance(prometheus, Prometheus)
        prometheus.wait_for(
            f"{n} series",
            lambda: (
                (r := prometheus.query("count(probe_ssl_earliest_cert_expiry)"))
                and r[0]["value"][1] == str(n)
            ),
            timeout=120,
        )
        source = PrometheusSource(url=prometheus.url)
        config = Config(endpoints=(), settings=Settings(prometheus=source))
        totals, queries, parses = [], [], []
        for _ in range(reps):
            began = time.perf_counter()
            merged, note = with_imported(config)
            totals.append(time.perf_counter() - began)
            if note is not None or len(merged.endpoints) != n:
                print(f"wrong import: {note} ({len(merged.endpoints)} endpoints)", file=sys.stderr)
                return 1
            began = time.perf_counter()
            series = query(source)
            queries.append(time.perf_counter() - began)
            began = time.perf_counter()
            endpoints_of(series, config.settings)
            parses.append(time.perf_counter() - began)
    result = {
        "series": n,
        "reps": reps,
        "import_seconds": {"median": statistics.median(totals), "min": min(totals), "max": max(totals)},
        "query_and_json_seconds_median": statistics.median(queries),
        "endpoints_seconds_median": statistics.median(parses),
        "under_2s": max(totals) < 2.0,
        "load_average_1m": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
