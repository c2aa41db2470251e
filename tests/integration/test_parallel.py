"""``certpager check`` over worker processes (:mod:`certpager.check.parallel`).

Against real TLS servers on loopback: the workers' reports equal the in-process
ones, in input order; a worker that dies or falls silent loses nothing (its
endpoints are checked again in the parent); Ctrl-C ends the parent and every
worker at once, with one line and exit 130. The CLI and the helper scripts run as
subprocesses: this test process runs server threads, and a process with threads
never forks (the module falls back to checking in-process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.hostile import SilentServer
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import TLSServer

from certpager.lab.ports import free_port

LEAN = ("--no-protocols", "--no-sni-check", "--no-http", "--no-aia")


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("certpager")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certpager"]


@pytest.fixture(scope="module")
def fleet(pki: PKI, ca: Hierarchy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A targets file of 60 lines over four verdicts and a refusing port, plus the CA file."""
    chains = {
        "ok": [ca.leaf("app.test", not_before=-10, not_after=80), ca.intermediate],
        "warning": [ca.leaf("app.test", not_before=-355, not_after=10), ca.intermediate],
        "incomplete": [ca.leaf("app.test", not_before=-10, not_after=80)],
        "expired": [ca.leaf("app.test", not_before=-91, not_after=-1), ca.intermediate],
    }
    servers = []
    try:
        ports = []
        for name, chain in chains.items():
            server = TLSServer(
                *pki.write_chain(f"par-{name}", chain, key_of=chain[0]), max_connections=10_000
            )
            server.start()
            servers.append(server)
            ports.append(server.port)
        ports.append(free_port())
        lines = [f"127.0.0.1:{ports[i % len(ports)]}@app.test  # {i}" for i in range(60)]
        targets = tmp_path_factory.mktemp("parallel") / "targets.txt"
        targets.write_text("\n".join(lines) + "\n")
        yield targets, ca.root_file
    finally:
        for server in servers:
            server.stop()


def _stable(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reports without what changes from one run to the next (timings, clock)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("timings", "checked_at", "days_left", "handshake_ms")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(r) for r in reports]


def _check_fleet(
    fleet: tuple[Path, Path], workers: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``certpager check`` (lean) over the fleet with ``--workers workers``."""
    targets, ca_file = fleet
    return subprocess.run(
        [
            *_cli(),
            "check",
            *extra,
            "--ca-file",
            str(ca_file),
            "--targets",
            str(targets),
            "--workers",
            workers,
            *LEAN,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_workers_report_exactly_what_one_process_reports_in_input_order(fleet: tuple[Path, Path]) -> None:
    targets = fleet[0]
    runs = {}
    for workers in ("1", "3"):
        run = _check_fleet(fleet, workers, "--json")
        assert run.returncode == 2, run.stderr
        assert run.stderr == ""
        runs[workers] = json.loads(run.stdout)
    one, three = runs["1"], runs["3"]
    assert len(three) == 60
    lines = [line.split("#")[0].strip() for line in targets.read_text().splitlines()]
    assert [r["name"] for r in three] == lines
    assert _stable(three) == _stable(one)
    codes = {f["code"] for r in three for f in r["findings"]}
    assert {"chain_incomplete", "cert_expired", "connect_refused"} <= codes


SCRIPT = """
import json, os, sys, time
from pathlib import Path
from certpager.check import parallel
from certpager.config import Settings, read_targets_file
from certpager.check.report import encode_json

targets, ca_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
parent = os.getpid()
parallel._SILENCE_MARGIN = 2.0
endpoints = [
    ep.__class__(**{
        **ep.__dict__, "name": f"ep{i}", "timeout": 3.0,
        "check_protocols": False, "check_no_sni": False, "fetch_aia": False, "http": None,
    })
    for i, ep in enumerate(read_targets_file(Path(targets), Settings(), ca_file=ca_file))
]
doomed = endpoints[7].name

def encode(report):
    if os.getpid() != parent and report is not None:
        if mode == "die" and report.name == doomed:
            os._exit(9)
        if mode == "hang" and report.name == doomed:
            time.sleep(3600)
    return json.dumps({"pid": os.getpid(), "report": json.loads(encode_json(report))}).encode()

start = time.monotonic()
out = parallel.check_encoded(endpoints, encode, settings=Settings(), concurrency=20, workers=3)
print(json.dumps({
    "parent": parent,
    "seconds": time.monotonic() - start,
    "results": [{"status": e.status.value, **json.loads(e.payload)} for e in out],
}))
"""


def _script(fleet: tuple[Path, Path], mode: str) -> dict[str, Any]:
    targets, ca_file = fleet
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(targets), str(ca_file), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_reports_come_from_several_worker_processes(fleet: tuple[Path, Path]) -> None:
    out = _script(fleet, "ok")
    pids = {r["pid"] for r in out["results"]}
    assert len(out["results"]) == 60
    assert out["parent"] not in pids
    assert len(pids) == 3
    assert [r["report"]["status"] for r in out["results"]] == [r["status"] for r in out["results"]]


@pytest.mark.parametrize("mode", ["die", "hang"])
def test_a_worker_that_dies_or_hangs_loses_nothing(fleet: tuple[Path, Path], mode: str) -> None:
    """Its unreported endpoints are checked again in the parent; the run still ends."""
    out = _script(fleet, mode)
    results = out["results"]
    assert len(results) == 60
    assert [r["report"]["name"] for r in results] == [f"ep{i}" for i in range(60)]
    redone = [r for r in results if r["pid"] == out["parent"]]
    assert results[7] in redone  # the endpoint the worker died or hung on
    assert 1 <= len(redone) <= 7  # only what that worker had in flight (its 7 of 20 slots)
    if mode == "hang":
        assert out["seconds"] < 3.0 + 2.0 + 10.0  # deadline + silence margin + the re-check


def _signalled_mid_run(
    tmp_path: Path, send: Callable[[subprocess.Popen[str]], None]
) -> tuple[int, str, str, float, list[int]]:
    """Start ``check --workers 2`` against a server that never answers, call ``send`` once both
    workers run, and return (exit code, stdout, stderr, seconds to exit, worker PIDs)."""
    with SilentServer(max_seconds=30, max_connections=200) as silent:
        targets = tmp_path / "targets.txt"
        targets.write_text("".join(f"127.0.0.1:{silent.port}@app.test\n" for _ in range(100)))
        proc = subprocess.Popen(
            [
                *_cli(),
                "check",
                "--json",
                "--timeout",
                "20",
                "--targets",
                str(targets),
                "--workers",
                "2",
                *LEAN,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            time.sleep(1.5)
            children = _children(proc.pid)
            assert len(children) == 2, children
            send(proc)
            start = time.monotonic()
            out, err = proc.communicate(timeout=10)
            elapsed = time.monotonic() - start
            deadline = time.monotonic() + 3
            while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return proc.returncode, out, err, elapsed, children


def test_ctrl_c_stops_parent_and_workers_at_once(tmp_path: Path) -> None:
    # What a terminal's Ctrl-C does: SIGINT to the whole process group.
    code, out, err, elapsed, children = _signalled_mid_run(
        tmp_path, lambda p: os.killpg(p.pid, signal.SIGINT)
    )
    assert code == 130, err
    assert err.strip() == "certpager: interrupted"
    assert out == ""
    assert elapsed < 3.0
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def test_sigterm_to_the_parent_alone_takes_the_workers_with_it(tmp_path: Path) -> None:
    """`timeout`, systemd and CI runners send SIGTERM to the parent only."""
    code, out, err, _elapsed, children = _signalled_mid_run(tmp_path, lambda p: p.send_signal(signal.SIGTERM))
    assert code == 143, err
    assert "Traceback" not in err
    assert out == ""
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_table_from_workers_equals_table_from_one_process(fleet: tuple[Path, Path]) -> None:
    """The table path carries whole reports back from the workers (pickled): same rows,
    same findings, worst first."""
    tables = {}
    for workers in ("1", "3"):
        run = _check_fleet(fleet, workers, env={**os.environ, "NO_COLOR": "1"})
        assert run.returncode == 2, run.stderr
        lines = run.stdout.splitlines()
        assert lines[-1].startswith("60 endpoint(s): 12 "), lines[-1]
        # Rows without the DAYS column (it moves with the clock between the two runs).
        rows = [" ".join(line.split()[:3] + line.split()[4:]) for line in lines[1:-2] if line[:1].isupper()]
        tables[workers] = rows + [line for line in lines if line.startswith(" ")] + lines[-1:]
    assert tables["3"] == tables["1"]
    assert len(tables["3"]) > 60 + 60  # a row per endpoint and its findings
