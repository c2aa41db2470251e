"""``certpager demo``: start the fire-drill lab, open the TUI on it, clean up on the way out.

``certpager demo --no-tui`` starts the lab alone, prints the lab config path on
stdout (for ``certpager check --config FILE`` and ``certpager --config FILE run ...``)
and runs until Ctrl-C or SIGTERM (its normal stop: exit 0). With the TUI, quitting
exits 0 and SIGTERM/SIGHUP leave through the app's normal exit with 128+signal. Either way the lab process is ended by PID and
its directory removed on exit, Ctrl-C, SIGTERM, SIGHUP or a crash; if this
process is SIGKILLed the lab notices (its stdin pipe closes) and removes itself.

All of the drill's state lives in the lab dir and goes with it: the audit log
``LAB_DIR/audit.jsonl`` (unless ``--audit-log FILE`` says otherwise: drill runs stay
out of the real audit log that postmortems are written from), the run locks
``LAB_DIR/locks`` (``settings.lock_dir`` of the lab config, not the machine-wide
``/run/lock/certpager``) and the lab's SSH known_hosts and keys. Nothing is written
to ``$HOME`` or the XDG directories.

``--config`` is refused (exit 3): the demo always runs on the lab's own config.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from certpager.demo.info import LabInfo
from certpager.demo.process import LabError, LabProcess
from certpager.demo.scenarios import PAGE_ENDPOINT, SCENARIOS
from certpager.errors import Terminated as Terminated

EXIT_UNKNOWN = 3


@contextlib.contextmanager
def _termination_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` so ``finally`` blocks run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def summary_line(info: LabInfo, seconds: float) -> str:
    """The one line that says what was started and where."""
    ports = info.all_ports
    page = next(s for s in SCENARIOS if s.name == PAGE_ENDPOINT)
    return (
        f"certpager demo: fire-drill lab up in {seconds:.1f} s (pid {info.pid}): "
        f"{len(SCENARIOS)} endpoints on 127.0.0.1 ports {ports[0]}-{ports[-1]} "
        f"('{page.name}' {page.summary.split(':')[0]}), SSH host 127.0.0.1:{info.ssh_port}, "
        f"files in {info.dir}; all removed on exit"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run ``certpager demo``."""
    no_tui = bool(getattr(args, "no_tui", False))
    refused = _refusal(args, no_tui)
    if refused is not None:
        print(f"certpager demo: {refused}", file=sys.stderr)
        return EXIT_UNKNOWN
    lab = LabProcess()
    code = 0
    with _termination_signals():
        try:
            code = _run_on_lab(lab, args, no_tui)
        except KeyboardInterrupt:
            code = 0
        except Terminated:
            code = 0
        finally:
            code = _stop_lab(lab, code)
    return code


def _refusal(args: argparse.Namespace, no_tui: bool) -> str | None:
    """Why the demo cannot run as asked (None: it can)."""
    if getattr(args, "config", None):
        return (
            "--config is not used by the demo (it writes and uses the lab's own "
            "config); for your endpoints run `certpager --config FILE` (the TUI) or "
            "`certpager check --config FILE`"
        )
    if not no_tui and importlib.util.find_spec("certpager.tui") is None:
        return (
            "the TUI is not available in this build; "
            "use `certpager demo --no-tui` and `certpager check --config ...`"
        )
    return None


def _run_on_lab(lab: LabProcess, args: argparse.Namespace, no_tui: bool) -> int:
    """Start the lab, then wait for Ctrl-C/SIGTERM (``--no-tui``) or run the TUI on it."""
    try:
        lab.spawn()
        if not no_tui:
            # Import the TUI (the slowest import) while the lab starts on the other core.
            import certpager.tui.app  # noqa: F401
        info = lab.wait_ready()
    except LabError as exc:
        print(f"certpager demo: {exc}", file=sys.stderr)
        return 2
    seconds = lab.startup_seconds or 0.0
    audit = Path(args.audit_log).resolve() if args.audit_log else Path(info.dir) / "audit.jsonl"
    with _lab_environment(audit, Path(info.dir) / "locks"):
        if no_tui:
            print(summary_line(info, seconds), file=sys.stderr, flush=True)
            print(info.config, flush=True)
            print(_hints(info, audit), file=sys.stderr, flush=True)
            return _wait_for_stop(lab)
        print(summary_line(info, seconds), flush=True)
        from certpager.tui.cli import run_tui

        # The app handles SIGTERM/SIGHUP itself while it runs (cancels a running
        # runbook, restores the terminal, returns 128+signal); before and after
        # that, _termination_signals turns them into Terminated.
        return run_tui(Path(info.config), readonly=bool(getattr(args, "readonly", False)))


@contextlib.contextmanager
def _lab_environment(audit: Path, lock_dir: Path) -> Iterator[None]:
    """Point the audit log and the run locks into the lab, restoring both afterwards.

    The lab's config says where its locks go too (for `certpager --config LAB_CONFIG
    run`); the variable wins over it, so an operator's own CERTPAGER_LOCK_DIR is not
    used. Both are restored when the lab stops (a caller in the same process, such as
    a test, must not go on writing into the removed lab).
    """
    saved = {name: os.environ.get(name) for name in _LAB_ENV_NAMES}
    os.environ["CERTPAGER_AUDIT_LOG"] = str(audit)
    os.environ["CERTPAGER_LOCK_DIR"] = str(lock_dir)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop_lab(lab: LabProcess, code: int) -> int:
    """Stop the lab and say so; the exit code (2 when its directory could not be removed)."""
    report = lab.stop()
    if report.pid is not None:
        state = "removed" if report.dir_removed else "NOT removed"
        print(
            f"certpager demo: lab stopped (pid {report.pid} ended"
            f"{', killed' if report.killed else ''}), {lab.dir} {state}",
            file=sys.stderr,
            flush=True,
        )
        if not report.dir_removed:
            code = code or 2
    return code


_LAB_ENV_NAMES = ("CERTPAGER_AUDIT_LOG", "CERTPAGER_LOCK_DIR")
"""Set for the TUI the demo opens, restored when the lab stops."""


def _hints(info: LabInfo, audit: Path) -> str:
    config = info.config
    return "\n".join(
        [
            f"  try:  certpager check --config {config}",
            f"        certpager --config {config} run certbot-force-renew "
            f"--endpoint {PAGE_ENDPOINT} --audit-log {audit}",
            "  Ctrl-C (or SIGTERM) stops the lab and removes everything.",
        ]
    )


def _wait_for_stop(lab: LabProcess) -> int:
    """Block until Ctrl-C/SIGTERM (raised as exceptions) or until the lab dies on its own."""
    while True:
        status = lab.wait(1.0)
        if status is not None:
            tail = lab.read_log_tail()
            print(
                f"certpager demo: the lab process exited unexpectedly (status {status})"
                + (f"; its log ends with: {tail}" if tail else ""),
                file=sys.stderr,
            )
            return 2
