"""Instructions, not seconds: the baseline loop and ``certpager check`` counted by valgrind.

Wall and CPU times on this shared 2-core machine move by 15-40% between runs of the
same code. The number of instructions a run executes hardly moves (under 1% between
two runs of the baseline), so this is the figure to compare two versions of the
code with, as long as the change leaves the event loop's order of work alone (under
valgrind the client runs ~50x slower than nginx answers: awaiting a handshake inline
counted fewer instructions here and cost 10-30% more time in real runs). It says nothing
about parallelism, cache misses or waiting. certpager runs in one process (``--workers
1``) unless ``--workers N`` is given: then the instructions of the parent and of every
worker process are summed, and printed apart, so the cost of the worker pool itself
(start, sending and receiving results, teardown) is counted. A forked child starts with a
copy of valgrind's counters: its own summary includes what the parent did before the fork
(~700 M instructions here), so these runs use callgrind, which dumps and zeroes the
parent's counts at each ``os.fork`` (see :func:`count`). The 1-endpoint run never starts workers, so
the pool's whole cost lands in the per-endpoint figure, as it does in a real run.

Starts N nginx endpoints (bench/stack.py), then runs each tool under
``valgrind --tool=cachegrind --cache-sim=no`` twice: over 1 endpoint (the fixed
cost: interpreter, imports, set-up) and over N. The difference divided by N - 1 is
the cost per endpoint. Two tools run at a time (one per core). ``--profiles DIR``
runs ``valgrind --tool=callgrind`` instead and keeps one profile per process in DIR
(``callgrind_annotate DIR/<tool>-N<n>.<pid>``; same instruction counts, slower).

    /work/venv/bin/python bench/instructions.py --n 200 [--also-src REF ...]
    /work/venv/bin/python bench/instructions.py --n 400 --workers 2 --also-src 156c564

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
from dataclasses import dataclass
from pathlib import Path

import stack
from run import DEFAULT_PYTHON, LEAN_FLAGS, export_src

from certpager.lab.ports import free_ports

HERE = Path(__file__).resolve().parent
#: valgrind's summary line, one per process: ``==PID== I   refs:      1,234``.
_IR = re.compile(r"^==(\d+)==\s+I\s+refs:\s+([\d,]+)", re.MULTILINE)
_PID = re.compile(r"^==(\d+)==", re.MULTILINE)
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Counted:
    """Instructions of one run: the process started, and all the processes it forked."""

    parent: int
    children: int
    processes: int

    @property
    def total(self) -> int:
        return self.parent + self.children


def count(cmd: list[str], env: dict[str, str], timeout: float, profile: Path | None = None) -> Counted:
    """Instructions executed by ``cmd`` and every process it forks.

    Without ``profile``: cachegrind's summary (for a command that does not fork). With
    ``profile``: callgrind, one profile per process (``profile.<pid>``). A forked child
    starts with a copy of its parent's counters, so its summary on stderr includes all
    the parent did before the fork; callgrind dumps (and zeroes) the parent's profile at
    every ``os.fork`` (``--dump-before=os_fork``, into ``profile.<pid>.<n>``), so that the
    profile files, summed, count each instruction once.
    """
    subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)  # warm: .pyc written
    if profile is None:
        tool = ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    else:
        tool = ["--tool=callgrind", f"--callgrind-out-file={profile}.%p", "--dump-before=os_fork"]
    run = subprocess.run(
        ["valgrind", *tool, "--trace-children=yes", *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout * 20,
    )
    first = _PID.search(run.stderr)
    if first is None:
        raise RuntimeError(f"no output from valgrind: {run.stderr[-500:]}")
    pid = int(first.group(1))
    if profile is None:
        per_pid = {int(p): int(n.replace(",", "")) for p, n in _IR.findall(run.stderr)}
        if set(per_pid) != {pid}:
            raise RuntimeError(f"forked processes cannot be counted without callgrind: {sorted(per_pid)}")
        return Counted(per_pid[pid], 0, 1)
    parent = children = processes = 0
    for path in profile.parent.glob(f"{profile.name}.*"):
        totals = sum(int(n) for n in _TOTALS.findall(path.read_text(errors="replace")))
        if path.name[len(profile.name) + 1 :].split(".")[0] == str(pid):
            parent += totals
        else:
            children += totals
            processes += 1
    if parent == 0:
        raise RuntimeError(f"no callgrind profile for {cmd[:3]}: {run.stderr[-500:]}")
    return Counted(parent, children, 1 + processes)


def report(counted: dict[tuple[str, int], Counted], tools: list[str], n: int, workers: int) -> None:
    """The table: each tool's fixed cost and cost per endpoint, and its ratio to the baseline's;
    with workers, the per-endpoint cost of the parent and of the workers apart."""
    base_per = (counted[("baseline", n)].total - counted[("baseline", 1)].total) / (n - 1)
    where = "in one process" if workers == 1 else f"--workers {workers}: parent + workers summed"
    print(f"instructions, N={n} (valgrind; certpager {where})")
    print(f"{'tool':<36} {'fixed (1 endpoint)':>20} {'per endpoint':>14} {'ratio':>7}", end="")
    print(f" {'parent':>9} {'workers':>9} {'procs':>5}" if workers > 1 else "")
    for name in tools:
        fixed, full = counted[(name, 1)], counted[(name, n)]
        per = (full.total - fixed.total) / (n - 1)
        print(f"{name:<36} {fixed.total / 1e6:17.0f} M  {per / 1e6:11.3f} M  {per / base_per:6.3f}x", end="")
        if workers > 1:
            parent = (full.parent - fixed.total) / (n - 1)
            print(f" {parent / 1e6:7.3f} M {full.children / (n - 1) / 1e6:7.3f} M {full.processes:5d}")
        else:
            print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="endpoints (default 200)")
    parser.add_argument(
        "--also-src",
        metavar="REF",
        action="append",
        default=[],
        help="also count certpager from src/ of this revision, or of this directory (repeatable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="certpager's --workers (default 1); the parent's and the workers' instructions are summed",
    )
    parser.add_argument(
        "--profiles", metavar="DIR", help="count with callgrind and keep one profile per process in DIR"
    )
    parser.add_argument("--python", default=str(DEFAULT_PYTHON))
    args = parser.parse_args(argv)
    if not 2 <= args.n <= 2000:
        parser.error("--n must be 2-2000")
    if not 1 <= args.workers <= 8:
        parser.error("--workers must be 1-8")
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
                *("--targets", str(files[size]), "--workers", str(args.workers), "--timeout", "120"),
                *LEAN_FLAGS,
            ]

        tools = {"baseline": (baseline, env), "certpager-lean": (certpager, env)}
        for k, ref in enumerate(args.also_src):
            src = Path(ref, "src") if Path(ref).is_dir() else export_src(ref, work / f"code-also-{k}")
            other = {**env, "PYTHONPATH": str(src.resolve())}
            tools[f"certpager-lean@{ref}"] = (certpager, other)
        jobs = [(name, size) for name in tools for size in (1, args.n)]
        # Forked workers are counted from callgrind's profiles: kept in --profiles DIR, or here.
        profiles = Path(args.profiles).resolve() if args.profiles else None
        if profiles is None and args.workers > 1:
            profiles = work / "profiles"
        if profiles is not None:
            profiles.mkdir(parents=True, exist_ok=True)

        def run(job: tuple[str, int]) -> Counted:
            make, job_env = tools[job[0]]
            where = None if profiles is None else profiles / f"{job[0].replace('/', '_')}-N{job[1]}"
            return count(make(job[1]), job_env, 300, where)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            counted = dict(zip(jobs, pool.map(run, jobs), strict=True))
        report(counted, list(tools), args.n, args.workers)
        return 0
    finally:
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
