"""Run start against a big audit log: time and peak RSS of what `certpager run` does with
the log before the first step (check the location, find unfinished runs, report and
acknowledge them, write ``run_start``).

    python bench/audit_start.py [--size-mb 200] [--keep DIR]

Builds a log of real records (finished runs with output, one crashed run at the end), then
measures in a fresh process, so the RSS is that of a run start and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    started = time.perf_counter()
    from certpager.runbook.audit import AuditLog, RunAudit
    log = AuditLog(Path(sys.argv[1]))
    log.check()
    found = log.unfinished(is_active=lambda endpoint: False)
    for run in found:
        log.acknowledge(run)
    RunAudit(log, "bench-run").write("run_start", endpoint="app", runbook="r", pid=0, plan={})
    elapsed = time.perf_counter() - started
    # VmHWM: this process's peak RSS (ru_maxrss would include the parent's, kept across exec)
    hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")]
    rss = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "max_rss_mb": rss, "unfinished": [u.run_id for u in found]}))
    """
)


def build(path: Path, size: int) -> None:
    """Finished runs (start, intent, result with 4 KiB of output, end) up to ``size`` bytes, then a crash."""
    out = "renewed app.example.com; " * 160
    with path.open("wb") as fh:
        n = 0
        while fh.tell() < size:
            run = f"20260101T000000Z-{n:08x}"
            for seq, rec in enumerate(
                (
                    {
                        "type": "run_start",
                        "endpoint": f"ep{n % 50}",
                        "runbook": "certbot-force-renew",
                        "pid": n,
                    },
                    {"type": "step_intent", "step_id": "renew", "command": "certbot renew"},
                    {"type": "step_result", "step_id": "renew", "outcome": "ok", "stdout": out},
                    {"type": "run_end", "outcome": "succeeded"},
                ),
                1,
            ):
                line = {"v": 1, "ts": "2026-01-01T00:00:00Z", **rec, "run_id": run, "seq": seq}
                fh.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            n += 1
        crash = {"v": 1, "ts": "2026-01-02T00:00:00Z", "type": "run_start", "endpoint": "crashed"}
        fh.write(
            json.dumps({**crash, "runbook": "r", "pid": 1, "run_id": "crashed", "seq": 1}).encode() + b"\n"
        )
    path.chmod(0o600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="measurements (fresh process each)")
    parser.add_argument("--keep", help="build the log in this directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(mode=0o700, exist_ok=True)
        log = folder / "audit.jsonl"
        build(log, args.size_mb << 20)
        size = log.stat().st_size
        print(f"log: {size / (1 << 20):.0f} MB, {sys.version.split()[0]}")
        original = log.read_bytes() if args.runs > 1 else b""
        for i in range(args.runs):
            if i:
                log.write_bytes(original)  # the same crashed run to find each time
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(log)],
                capture_output=True,
                text=True,
                env=os.environ,
                check=True,
            )
            result = json.loads(done.stdout)
            print(
                f"run start: {result['seconds'] * 1000:.0f} ms, peak RSS {result['max_rss_mb']:.0f} MB, "
                f"unfinished found: {result['unfinished']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
