"""Instructions, not seconds: the baseline loop and ``certpager check`` counted by valgrind.

Wall and CPU times on this shared 2-core machine move by 15-40% between runs of the
same code. The number of instructions a run executes hardly moves (under 1% between
two runs of the baseline), so this is the figure to compare two versions of the
code with, as long as the change leaves the event loop's order of work alone (under
valgrind the client runs ~50x slower than nginx answers: awaiting a handshake inline
counted fewer instructions here and cost 10-30% more time in real runs). It says nothing
about parallelism: certpager runs here in one process (``--workers 1``), and cache
misses or waiting are not counted.

Starts N nginx endpoints (bench/stack.py), then runs each tool under
``valgrind --tool=cachegrind --cache-sim=no`` twice: over 1 endpoint (the fixed
cost: interpreter, imports, set-up) and over N. The difference divided by N - 1 is
the cost per endpoint. Two tools run at a time (one per core).

    /work/venv/bin/python bench/instructions.py --n 200 [--also-src REF ...]

Needs valgrind (Debian package ``valgrind``). A run takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import stack
from run import DEFAULT_PYTHON, LEAN_FLAGS, export_src

from certpager.lab.ports import free_ports

HERE = Path(__file__).resolve().parent
_IR = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(cmd: list[str], env: dict[str, str], timeout: float) -> int:
    """Instructions executed by ``cmd`` (and its children, traced too)."""
    subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)  # warm: .pyc written
    run = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout * 20,
    )
    match = _IR.search(run.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count from valgrind: {run.stderr[-500:]}")
    return int(match.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="endpoints (default 200)")
    parser.add_argument(
        "--also-src",
        metavar="REF",
        action="append",
        default=[],
        help="also count certpager from src/ of this revision (repeatable)",
    )
    parser.add_argument("--python", default=str(DEFAULT_PYTHON))
    args = parser.parse_args(argv)
    if not 2 <= args.n <= 2000:
        parser.error("--n must be 2-2000")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2

    # SIGTERM unwinds through `finally` like Ctrl-C: nginx is stopped, the temp dir removed.
    def _term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 3 * args.n + 256), hard), hard))

    work = Path(tempfile.mkdtemp(prefix="certpager-instructions-"))
    nginx: stack.NginxStack | None = None
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        root, leaves = stack.make_certs(work / "certs", free_ports(args.n), now=dt.datetime.now(dt.UTC))
        nginx = stack.NginxStack(work / "nginx", leaves)
        nginx.start()
        files = {}
        for size in (1, args.n):
            files[size] = work / f"targets-{size}.txt"
            files[size].write_text("".join(leaf.target + "\n" for leaf in leaves[:size]))

        def baseline(size: int) -> list[str]:
            return [args.python, str(HERE / "baseline_loop.py"), "--targets", str(files[size])]

        def certpager(size: int) -> list[str]:
            return [
                *(args.python, "-m", "certpager", "check", "--json", "--ca-file", str(root)),
                *("--targets", str(files[size]), "--workers", "1", "--timeout", "120", *LEAN_FLAGS),
            ]

        tools = {"baseline": (baseline, env), "certpager-lean": (certpager, env)}
        for k, ref in enumerate(args.also_src):
            other = {**env, "PYTHONPATH": str(export_src(ref, work / f"code-also-{k}"))}
            tools[f"certpager-lean@{ref}"] = (certpager, other)
        jobs = [(name, size) for name in tools for size in (1, args.n)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            counted = dict(
                zip(
                    jobs,
                    pool.map(lambda job: count(tools[job[0]][0](job[1]), tools[job[0]][1], 300), jobs),
                    strict=True,
                )
            )
        base_per = (counted[("baseline", args.n)] - counted[("baseline", 1)]) / (args.n - 1)
        print(f"instructions, N={args.n} (valgrind cachegrind; certpager in one process)")
        print(f"{'tool':<28} {'fixed (1 endpoint)':>20} {'per endpoint':>14} {'ratio':>7}")
        for name in tools:
            fixed = counted[(name, 1)]
            per = (counted[(name, args.n)] - fixed) / (args.n - 1)
            print(f"{name:<28} {fixed / 1e6:17.0f} M  {per / 1e6:11.2f} M  {per / base_per:6.2f}x")
        return 0
    finally:
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
