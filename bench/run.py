"""certpager check vs a minimal asyncio handshake loop, over N nginx endpoints on loopback.

    /work/venv/bin/python bench/run.py --n 1000

Sets up a root, an intermediate and N leaves with distinct notAfter dates, one
nginx serving each leaf on its own 127.0.0.1 port, then runs, interleaved,
``--reps`` times each after one discarded warm-up:

- ``baseline``: ``baseline_loop.py`` (asyncio + pyOpenSSL memory BIO, one fresh
  handshake per endpoint, concurrency 100, nothing else);
- ``certpager``: ``certpager check --json --ca-file ROOT --targets FILE`` as a
  user runs it (deeper checks on, when this build has them);
- ``certpager-lean``: the same with the deeper checks switched off
  (``--no-protocols --no-sni-check --no-http --no-aia``, those this build
  knows): one handshake per endpoint, the scope of the issue's target;
- ``stdlib``: ``asyncio.open_connection(ssl=ctx)``, verifying (unless ``--no-stdlib``);

each as a subprocess, measuring wall time, CPU time and peak RSS of that child
(``os.wait4`` in ``launch.py``), and checks every endpoint's ``not_after`` in certpager's JSON
against what was generated. Then measures start-up (``certpager check
--help``), times certpager's phases in-process (``components.py``) and
profiles one run of each certpager variant. Results go to ``bench/results/``;
see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import stack

from certpager.lab import process
from certpager.lab.ports import free_ports

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_PYTHON = Path(sys.executable)

#: Targets: the issue's figures, measured on this 2-core machine kind.
TARGET_RATIO = 1.3
TARGET_RSS_MB = 150.0


@dataclass
class Run:
    """One measured subprocess."""

    tool: str
    rep: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    exit_code: int
    server_cpu_s: float
    """CPU the nginx workers used during the run (both sides share 2 cores)."""
    load_1m: float
    """1-minute load average when the run started (the machine is shared)."""
    summary: dict[str, Any] = field(default_factory=dict)


# --- subprocesses ------------------------------------------------------------------

_RUNNING: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Usage:
    """What ``launch.py`` measured for one command."""

    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    exit_code: int


def measure(cmd: list[str], stdout_path: Path, timeout: float, env: dict[str, str] | None = None) -> Usage:
    """Run ``cmd`` through ``launch.py`` (stdout to a file): its wall and CPU time,
    peak RSS and exit code. Killed after ``timeout`` seconds."""
    usage_path = stdout_path.with_suffix(".usage.json")
    launcher = [sys.executable, "-I", "-S", str(HERE / "launch.py"), str(usage_path), str(timeout), "--"]
    err_path = stdout_path.with_suffix(".stderr")
    err_path.unlink(missing_ok=True)
    with stdout_path.open("wb") as out:
        proc = process.spawn([*launcher, *cmd], log=err_path, stdout=out, env=env)
    _RUNNING[proc.pid] = proc
    try:
        proc.wait(timeout=timeout + 30)  # the launcher kills the command at `timeout`
    except subprocess.TimeoutExpired:
        kill_running()
        raise RuntimeError(f"{Path(cmd[0]).name} did not finish within {timeout + 30:g} s") from None
    # On any other exception (Ctrl-C) it stays registered: kill_running() stops it.
    _RUNNING.pop(proc.pid, None)
    try:
        data = json.loads(usage_path.read_text())
    except (OSError, ValueError):
        return Usage(float("nan"), float("nan"), float("nan"), float("nan"), proc.returncode or -1)
    finally:
        usage_path.unlink(missing_ok=True)
    return Usage(
        wall_s=data["wall_s"],
        user_s=data["user_s"],
        sys_s=data["sys_s"],
        max_rss_mb=data["max_rss_kb"] / 1024,
        exit_code=data["exit_code"],
    )


def kill_running() -> None:
    """Stop every launcher still running (Ctrl-C, errors): SIGTERM makes it kill its
    command; SIGKILL after 5 s."""
    procs = list(_RUNNING.values())
    _RUNNING.clear()
    process.stop_all(procs, 5)


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def git_state(src_ref: str | None) -> dict[str, Any]:
    """Which certpager code was measured: the commit, and uncommitted changes under src/."""

    def git(*a: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=30)
        return proc.stdout.strip()

    if src_ref is not None:
        return {"measured": f"git archive {src_ref}", "commit": git("rev-parse", src_ref)}
    dirty = git("status", "--porcelain", "--", "src")
    return {
        "measured": "working tree (editable install)",
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_src_files": len(dirty.splitlines()) if dirty else 0,
    }


def export_src(ref: str, dest: Path) -> Path:
    """``git archive REF src`` unpacked into ``dest``; returns the dir for PYTHONPATH."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "src"], capture_output=True, timeout=60
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60)
    return dest / "src"


# --- checks of certpager's output ----------------------------------------------------


def check_expiry(json_path: Path, leaves: list[stack.Leaf]) -> dict[str, Any]:
    """Compare every endpoint's ``not_after`` (and its backends') with what was generated."""
    expected = {leaf.target: leaf.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") for leaf in leaves}
    try:
        reports = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        return {"parse_error": str(exc)[:300], "expiry_mismatches": len(expected), "missing": len(expected)}
    seen: set[str] = set()
    mismatches: list[str] = []
    statuses: dict[str, int] = {}
    untrusted = hostname_bad = errors = 0
    for r in reports:
        name = r.get("name")
        statuses[r.get("status")] = statuses.get(r.get("status"), 0) + 1
        if name not in expected or name in seen:
            mismatches.append(f"{name}: unexpected or repeated endpoint")
            continue
        seen.add(name)
        got = {r.get("not_after")} | {b.get("not_after") for b in r.get("backends", [])}
        if got != {expected[name]}:
            mismatches.append(f"{name}: got {sorted(map(str, got))}, generated {expected[name]}")
        untrusted += r.get("trusted") is not True
        hostname_bad += r.get("hostname_ok") is not True
        errors += r.get("error") is not None
    missing = sorted(set(expected) - seen)
    return {
        "endpoints": len(reports),
        "expiry_mismatches": len(mismatches) + len(missing),
        "missing": len(missing),
        "mismatch_examples": (mismatches + [f"{m}: missing" for m in missing])[:5],
        "untrusted": untrusted,
        "hostname_not_ok": hostname_bad,
        "errors": errors,
        "statuses": statuses,
    }


def expected_statuses(leaves: list[stack.Leaf], now: dt.datetime) -> dict[str, int]:
    """Statuses the leaves' dates alone imply (expiry thresholds 3/7/14 days; a
    third of the lifetime left is a warning), for a sanity look at certpager's counts."""
    out: dict[str, int] = {}
    for leaf in leaves:
        days = (leaf.not_after - now).total_seconds() / 86400
        lifetime = (leaf.not_after - now).total_seconds() / 86400 + stack.NOT_BEFORE_DAYS_AGO
        if days < 0 or days <= 3:
            status = "page"
        elif days <= 7:
            status = "critical"
        elif days <= 14 or days < lifetime / 3:
            status = "warning"
        else:
            status = "ok"
        out[status] = out.get(status, 0) + 1
    return out


# --- start-up, phases, profile ---------------------------------------------------------


def startup(certpager: list[str], python: str, reps: int, env: dict[str, str]) -> dict[str, Any]:
    """Median wall time of ``certpager check --help``, of bare interpreter start and of
    importing what any pyOpenSSL client imports; the heaviest imports."""

    def timed(cmd: list[str]) -> list[float]:
        out = []
        for _ in range(reps):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, timeout=60, env=env)
            out.append(time.perf_counter() - start)
        return out

    help_runs = timed([*certpager, "check", "--help"])
    # The same as a checkout run with PYTHONDONTWRITEBYTECODE=1 (set globally on the
    # project's machines): .pyc next to the sources are used when fresh, and any
    # module whose .pyc is missing or stale is compiled again on every start.
    cold_env = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
    cold_env["PYTHONDONTWRITEBYTECODE"] = "1"
    cold = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(
            [*certpager, "check", "--help"], capture_output=True, check=True, timeout=60, env=cold_env
        )
        cold.append(time.perf_counter() - start)
    stale = subprocess.run(
        [python, "-c", STALE_PYC], capture_output=True, text=True, timeout=60, env=cold_env
    ).stdout.split()
    bare = timed([python, "-c", "pass"])
    imp = timed([python, "-c", "import asyncio, OpenSSL.SSL, cryptography.x509"])
    proc = subprocess.run(
        [python, "-X", "importtime", "-m", "certpager", "check", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) // 2, m.group(4)))
    # Direct imports of certpager modules and the big third-party packages, heaviest first.
    interesting = [
        r
        for r in rows
        if r[3].startswith("certpager")
        or r[3].split(".")[0] in ("OpenSSL", "cryptography", "yaml", "asyncio")
    ]
    seen: set[str] = set()
    top = []
    for cum, own, _depth, name in sorted(interesting, reverse=True):
        if name not in seen:
            seen.add(name)
            top.append(
                {"module": name, "cumulative_ms": round(cum / 1000, 1), "self_ms": round(own / 1000, 1)}
            )
    return {
        "check_help_s": [round(x, 4) for x in help_runs],
        "check_help_median_s": round(statistics.median(help_runs), 4),
        "check_help_dont_write_bytecode_median_s": round(statistics.median(cold), 4),
        "certpager_modules_without_fresh_pyc": stale,
        "python_bare_median_s": round(statistics.median(bare), 4),
        "import_asyncio_openssl_cryptography_median_s": round(statistics.median(imp), 4),
        "importtime_top": top[:15],
    }


def components(
    python: str, targets: Path, root: Path, out_dir: Path, timeout: float, env: dict[str, str]
) -> Any:
    """``components.py``: certpager's phases timed in-process."""
    out = out_dir / "components.json"
    cmd = [python, str(HERE / "components.py"), "--targets", str(targets), "--ca-file", str(root)]
    usage = measure(cmd, out, timeout, env)
    try:
        return json.loads(out.read_text())
    except ValueError:
        return {"error": f"exit {usage.exit_code}: {out.with_suffix('.stderr').read_text()[-800:]}"}


def profile(
    python: str, label: str, check_args: list[str], out_dir: Path, timeout: float, env: dict[str, str]
) -> dict[str, Any]:
    """One certpager run under cProfile, one under pyinstrument (when installed)."""
    result: dict[str, Any] = {}
    prof = out_dir / f"{label}.prof"
    usage = measure(
        [python, "-m", "cProfile", "-o", str(prof), "-m", "certpager", *check_args],
        out_dir / f"profile-{label}-cprofile.json",
        timeout,
        env,
    )
    result["cprofile_wall_s"] = round(usage.wall_s, 3)
    result["cprofile_exit"] = usage.exit_code
    if prof.exists():
        for order in ("tottime", "cumulative"):
            with (out_dir / f"{label}-{order}.txt").open("w") as fh:
                pstats.Stats(str(prof), stream=fh).strip_dirs().sort_stats(order).print_stats(50)
        stats = pstats.Stats(str(prof))
        rows = []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            rows.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
        rows.sort(reverse=True)
        result["cprofile_total_s"] = round(stats.total_tt, 3)  # type: ignore[attr-defined]
        result["cprofile_top_tottime"] = [
            {"function": f, "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3), "calls": nc}
            for tt, ct, nc, f in rows[:15]
        ]
    has_pyinstrument = (
        subprocess.run([python, "-c", "import pyinstrument"], capture_output=True, timeout=60).returncode == 0
    )
    if has_pyinstrument:
        report = out_dir / f"{label}-pyinstrument.txt"
        cmd = [python, "-m", "pyinstrument", "-r", "text", "-o", str(report), "-m", "certpager", *check_args]
        usage = measure(cmd, out_dir / f"profile-{label}-pyinstrument.json", timeout, env)
        result["pyinstrument_wall_s"] = round(usage.wall_s, 3)
        result["pyinstrument_report"] = report.name
    else:
        result["pyinstrument"] = "not installed (pip install pyinstrument into the venv to get it)"
    return result


# --- the benchmark ---------------------------------------------------------------------

#: Prints the certpager modules whose .pyc next to the source is missing or stale.
STALE_PYC = """
import importlib.util, pathlib, certpager
root = pathlib.Path(certpager.__file__).parent
for src in sorted(root.rglob("*.py")):
    pyc = pathlib.Path(importlib.util.cache_from_source(str(src)))
    if not pyc.exists() or pyc.stat().st_mtime < src.stat().st_mtime:
        print(src.relative_to(root.parent))
"""

LEAN_FLAGS = ("--no-protocols", "--no-sni-check", "--no-http", "--no-aia")


def median_of(runs: list[Run], tool: str, attr: str) -> float:
    return round(statistics.median(getattr(r, attr) for r in runs if r.tool == tool), 4)


def summarise(runs: list[Run], tools: list[str], reps: int) -> dict[str, Any]:
    """Medians, ratios against the baseline of the same run, RSS, mismatches."""
    base = median_of(runs, "baseline", "wall_s")
    out: dict[str, Any] = {"baseline_wall_median_s": base, "ratio_target": TARGET_RATIO}
    by_rep = {(r.tool, r.rep): r for r in runs}
    for tool in tools:
        if tool == "baseline":
            continue
        mine = [r for r in runs if r.tool == tool]
        entry: dict[str, Any] = {
            "wall_median_s": median_of(runs, tool, "wall_s"),
            "wall_s": [r.wall_s for r in mine],
            "ratio_of_medians": round(median_of(runs, tool, "wall_s") / base, 3),
            "ratio_per_rep": [
                round(by_rep[(tool, rep)].wall_s / by_rep[("baseline", rep)].wall_s, 3)
                for rep in range(1, reps + 1)
            ],
            "cpu_median_s": round(statistics.median(r.user_s + r.sys_s for r in mine), 3),
            "cpu_ratio_of_medians": round(
                statistics.median(r.user_s + r.sys_s for r in mine)
                / statistics.median(r.user_s + r.sys_s for r in runs if r.tool == "baseline"),
                3,
            ),
            "peak_rss_mb": max(r.max_rss_mb for r in mine),
            "nginx_cpu_median_s": median_of(runs, tool, "server_cpu_s"),
            "exit_codes": sorted({r.exit_code for r in mine}),
        }
        if tool.startswith("certpager"):
            entry["expiry_mismatches_total"] = sum(r.summary.get("expiry_mismatches", 0) for r in mine)
            entry["untrusted_total"] = sum(r.summary.get("untrusted", 0) for r in mine)
            entry["hostname_not_ok_total"] = sum(r.summary.get("hostname_not_ok", 0) for r in mine)
            entry["statuses_last_rep"] = mine[-1].summary.get("statuses")
            entry["ratio_met"] = entry["ratio_of_medians"] <= TARGET_RATIO
            entry["rss_met"] = entry["peak_rss_mb"] < TARGET_RSS_MB
            entry["correct"] = entry["expiry_mismatches_total"] == 0 and set(entry["exit_codes"]) <= {0, 1, 2}
        else:
            entry["ok_min"] = min(r.summary.get("ok", 0) for r in mine)
        out[tool] = entry
    bl = [r for r in runs if r.tool == "baseline"]
    out["baseline_wall_s"] = [r.wall_s for r in bl]
    out["baseline_cpu_median_s"] = round(statistics.median(r.user_s + r.sys_s for r in bl), 3)
    out["baseline_peak_rss_mb"] = max(r.max_rss_mb for r in bl)
    out["baseline_ok_min"] = min(r.summary.get("ok", 0) for r in bl)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of TLS endpoints (default 1000)")
    parser.add_argument("--reps", type=int, default=5, help="measured repetitions of each tool (default 5)")
    parser.add_argument("--concurrency", type=int, default=100, help="for certpager and the baseline")
    parser.add_argument("--workers", type=int, default=2, choices=(1, 2), help="nginx worker_processes")
    parser.add_argument("--shared-key", action="store_true", help="one EC key for every leaf")
    parser.add_argument("--no-stdlib", action="store_true", help="skip the stdlib ssl (verifying) loop")
    parser.add_argument(
        "--no-one-share",
        action="store_true",
        help="skip the baseline variant that sends one key share, as certpager does",
    )
    parser.add_argument("--s-client", action="store_true", help="also time one openssl s_client per endpoint")
    parser.add_argument("--quick", action="store_true", help="skip start-up, components and profiles")
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="keep the caller's bytecode settings (default: cache .pyc in the temp dir, as an install would)",
    )
    parser.add_argument(
        "--src", metavar="REF", help="measure src/ of this git revision, not the working tree"
    )
    parser.add_argument(
        "--also-src",
        metavar="REF",
        action="append",
        default=[],
        help="also run certpager from src/ of this git revision, interleaved (repeatable)",
    )
    parser.add_argument(
        "--lean-only", action="store_true", help="skip certpager with its deeper checks (the default command)"
    )
    parser.add_argument("--python", default=str(DEFAULT_PYTHON), help="interpreter with certpager installed")
    parser.add_argument("--certpager", default=None, help="certpager script (default: `PYTHON -m certpager`)")
    parser.add_argument("--results", default=str(HERE / "results"), help="results directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="kill any one run after this many s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (certs, nginx logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 20000 or not 1 <= args.reps <= 50:
        parser.error("--n must be 1-20000 and --reps 1-50")

    python = args.python
    # `python -m certpager` rather than the installed script: the same start-up for every
    # revision, whichever entry point its pyproject names (--also-src runs older trees).
    certpager_cmd = [args.certpager] if args.certpager else [python, "-m", "certpager"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.results) / stamp
    out_dir.mkdir(parents=True, exist_ok=True)

    # SIGTERM behaves like Ctrl-C: unwind through the finally block below.
    def _term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 3 * args.n + 256
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))

    work = Path(tempfile.mkdtemp(prefix="certpager-bench-"))
    nginx: stack.NginxStack | None = None
    try:
        t0 = time.perf_counter()
        env = dict(os.environ)
        inherited = {k: os.environ.get(k) for k in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
        if not args.no_pyc_cache:
            # Like an installed package: bytecode cached after the first (warm-up) run,
            # in our temp dir rather than next to the sources.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        if args.src:
            env["PYTHONPATH"] = str(export_src(args.src, work / "code"))
        where = subprocess.run(
            [python, "-c", "import certpager; print(certpager.__file__)"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        ).stdout.strip()
        print(f"measuring certpager from {where}", flush=True)

        setup: dict[str, float] = {}
        now = dt.datetime.now(dt.UTC)
        for attempt in range(3):  # a port may be taken between choosing it and nginx binding it
            ports = free_ports(args.n)
            t = time.perf_counter()
            root, leaves = stack.make_certs(work / "certs", ports, shared_key=args.shared_key, now=now)
            setup["certs_s"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            nginx = stack.NginxStack(work / "nginx", leaves, workers=args.workers)
            try:
                nginx.start()
                break
            except RuntimeError as exc:
                nginx.stop()
                nginx = None
                print(f"nginx did not start (attempt {attempt + 1}): {exc}", file=sys.stderr)
        if nginx is None:
            raise SystemExit("nginx could not be started")
        setup["nginx_start_s"] = round(time.perf_counter() - t, 3)
        targets = work / "targets.txt"
        targets.write_text("".join(f"{leaf.target}\n" for leaf in leaves))
        print(
            f"{args.n} endpoints ready: certs {setup['certs_s']} s, nginx {setup['nginx_start_s']} s "
            f"(workers {nginx.worker_pids})",
            flush=True,
        )

        check_args = ["check", "--json", "--ca-file", str(root), "--targets", str(targets)]
        check_args += ["--concurrency", str(args.concurrency)]
        help_text = subprocess.run(
            [*certpager_cmd, "check", "--help"], capture_output=True, text=True, env=env, timeout=60
        ).stdout
        lean_flags = [f for f in LEAN_FLAGS if f in help_text]
        base = [python, str(HERE / "baseline_loop.py"), "--targets", str(targets)]
        base += ["--concurrency", str(args.concurrency), "--ca-file", str(root)]
        tools: dict[str, list[str]] = {"baseline": [*base, "--mode", "pyopenssl"]}
        if not (args.lean_only and lean_flags):
            tools["certpager"] = [*certpager_cmd, *check_args]
        if lean_flags:
            tools["certpager-lean"] = [*certpager_cmd, *check_args, *lean_flags]
        tool_env: dict[str, dict[str, str]] = {}
        for k, ref in enumerate(args.also_src):
            other_env = {**env, "PYTHONPATH": str(export_src(ref, work / f"code-also-{k}"))}
            other_help = subprocess.run(
                [*certpager_cmd, "check", "--help"], capture_output=True, text=True, env=other_env, timeout=60
            ).stdout
            other_flags = [f for f in LEAN_FLAGS if f in other_help]
            name = f"certpager{'-lean' if other_flags else ''}@{ref}"
            tools[name] = [*certpager_cmd, *check_args, *other_flags]
            tool_env[name] = other_env
        if not args.no_stdlib:
            tools["stdlib"] = [*base, "--mode", "stdlib"]
        if not args.no_one_share:
            # For transparency, not for the target: the baseline offering the key exchange
            # groups the way certpager's client does (one key share, see baseline_loop.py).
            tools["baseline-1share"] = [*base, "--mode", "pyopenssl", "--key-shares", "one"]
        if args.s_client:
            tools["s_client"] = [*base, "--mode", "s_client"]

        runs: list[Run] = []
        names = list(tools)
        for rep in range(args.reps + 1):  # rep 0 is the warm-up, not counted
            order = names if rep % 2 == 0 else names[::-1]
            for tool in order:
                out = out_dir / f"{tool}-{rep}.out"
                load = os.getloadavg()[0]
                before = cpu_of(nginx.worker_pids)
                nginx.check_alive()
                usage = measure(tools[tool], out, args.timeout, tool_env.get(tool, env))
                server_cpu = cpu_of(nginx.worker_pids) - before
                summary: dict[str, Any]
                if tool.startswith("certpager"):
                    summary = check_expiry(out, leaves)
                else:
                    try:
                        summary = json.loads(out.read_text().strip().splitlines()[-1])
                    except (ValueError, IndexError):
                        summary = {"parse_error": out.with_suffix(".stderr").read_text()[-500:]}
                run = Run(
                    tool=tool,
                    rep=rep,
                    wall_s=round(usage.wall_s, 4),
                    user_s=round(usage.user_s, 3),
                    sys_s=round(usage.sys_s, 3),
                    max_rss_mb=round(usage.max_rss_mb, 1),
                    exit_code=usage.exit_code,
                    server_cpu_s=round(server_cpu, 2),
                    load_1m=round(load, 2),
                    summary=summary,
                )
                label = "warm-up" if rep == 0 else f"rep {rep}"
                extra = (
                    f"expiry mismatches {summary.get('expiry_mismatches')}"
                    if tool.startswith("certpager")
                    else f"ok {summary.get('ok')}/{summary.get('targets')}"
                )
                print(
                    f"{label:>7} {tool:<14} wall {run.wall_s:6.3f} s  cpu {run.user_s + run.sys_s:6.2f} s  "
                    f"nginx cpu {run.server_cpu_s:5.2f} s  rss {run.max_rss_mb:6.1f} MB  exit {run.exit_code}  "
                    f"load {load:4.1f}  {extra}",
                    flush=True,
                )
                if rep > 0:
                    runs.append(run)
                if rep != 1:  # keep one output per tool (4 MB of JSON each for certpager)
                    out.unlink()

        summary_all = summarise(runs, names, args.reps)
        start_info: dict[str, Any] = {}
        phases: Any = {}
        profiles: dict[str, Any] = {}
        if not args.quick:
            start_info = startup(certpager_cmd, python, 7, env)
            print(
                f"start-up: certpager check --help {start_info['check_help_median_s']} s "
                f"({start_info['check_help_dont_write_bytecode_median_s']} s with PYTHONDONTWRITEBYTECODE=1 and "
                f"{len(start_info['certpager_modules_without_fresh_pyc'])} certpager modules without a fresh .pyc), "
                f"python -c pass {start_info['python_bare_median_s']} s",
                flush=True,
            )
            phases = components(python, targets, root, out_dir, args.timeout, env)
            print("phases in-process: components.json", flush=True)
            for tool in ("certpager-lean", "certpager"):
                if tool in tools:
                    profiles[tool] = profile(python, tool, tools[tool][1:], out_dir, args.timeout, env)
                    print(f"profiled {tool}", flush=True)

        result = {
            "when": stamp,
            "code": git_state(args.src),
            "certpager_module": where,
            "environment": {
                "inherited": inherited,
                "bytecode_cache": "caller's settings"
                if args.no_pyc_cache
                else "PYTHONPYCACHEPREFIX in the temp dir",
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "nginx": subprocess.run([stack.NGINX, "-v"], capture_output=True, text=True).stderr.strip(),
            },
            "params": {
                "n": args.n,
                "reps": args.reps,
                "concurrency": args.concurrency,
                "nginx_workers": args.workers,
                "shared_key": args.shared_key,
                "tools": {
                    k: [Path(a).name if a.startswith(str(work)) else a for a in v] for k, v in tools.items()
                },
            },
            "setup": setup,
            "expected_statuses_from_dates": expected_statuses(leaves, now),
            "summary": summary_all,
            "runs": [asdict(r) for r in runs],
            "startup": start_info,
            "components": phases,
            "profile": profiles,
            "total_s": round(time.perf_counter() - t0, 1),
        }
        text = json.dumps(result, indent=2) + "\n"
        (out_dir / "result.json").write_text(text)
        (Path(args.results) / "latest.json").write_text(text)

        s = summary_all
        print(f"\nmedians of {args.reps} interleaved reps; baseline {s['baseline_wall_median_s']:.3f} s")
        failed = s["baseline_ok_min"] != args.n
        for tool in names[1:]:
            e = s[tool]
            line = (
                f"  {tool:<14} {e['wall_median_s']:6.3f} s  ratio {e['ratio_of_medians']:5.2f} "
                f"(per rep {e['ratio_per_rep']})  cpu ratio {e['cpu_ratio_of_medians']:5.2f}  "
                f"peak RSS {e['peak_rss_mb']} MB"
            )
            if tool.startswith("certpager"):
                line += f"  expiry mismatches {e['expiry_mismatches_total']}"
                verdict = "met" if e["ratio_met"] and e["rss_met"] and e["correct"] else "NOT met"
                line += f"  [target <= {TARGET_RATIO}x, < {TARGET_RSS_MB:g} MB: {verdict}]"
                failed = failed or e["expiry_mismatches_total"] != 0 or not set(e["exit_codes"]) <= {0, 1, 2}
            print(line)
        print(f"results: {out_dir}/result.json ({result['total_s']} s)", flush=True)
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # nginx failed or went away mid-run
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        kill_running()
        if nginx is not None:
            nginx.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
