"""Command line: args -> config -> build app -> exit code.

``certpager`` (TUI), ``certpager check``, ``certpager run``, ``certpager demo``.
Exit codes follow Nagios: 0 ok, 1 warning, 2 critical/page/error, 3 unknown (bad input).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from certpager import __version__
from certpager.errors import CertpagerError, OutputError, UserError
from certpager.text import discard, emit, write_failure

EXIT_UNKNOWN = 3


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors exit 3 (UNKNOWN) with one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_UNKNOWN, f"certpager: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    parser = _Parser(
        prog="certpager",
        description="TLS certificate triage for the on-call engineer.",
    )
    parser.add_argument("--version", action="version", version=f"certpager {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="endpoint config (default: $XDG_CONFIG_HOME/certpager/endpoints.yaml)",
    )
    parser.add_argument("--readonly", action="store_true", help="TUI: hide every runbook action")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    # `--config` is accepted before or after the subcommand (`certpager run X --config F`).
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", dest="sub_config", metavar="FILE", default=None, help="endpoint config file"
    )

    # Registering a subcommand imports only certpager.commands (argparse); each handler imports
    # its machinery (pyOpenSSL and the probe, asyncssh, the lab) when it runs.
    from certpager import commands

    commands.configure_check(
        sub.add_parser("check", parents=[common], help="probe endpoints headless; Nagios exit codes")
    )
    commands.configure_run(sub.add_parser("run", parents=[common], help="run a runbook for an endpoint"))
    commands.configure_demo(
        sub.add_parser("demo", parents=[common], help="start a lab with planted incidents and open the TUI")
    )
    commands.configure_exporter(
        sub.add_parser(
            "exporter", parents=[common], help="serve Prometheus series of checks (blackbox-style)"
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    return _dispatch(argv)[0]


def run() -> NoReturn:
    """Entry point of the ``certpager`` script: :func:`main`, then exit.

    ``check`` is one-shot: once its output is flushed nothing is left to do, so it
    leaves without Python's teardown, which otherwise frees every object of the run
    one by one (70 ms after 1000 endpoints, longer than writing their JSON). The
    other commands (the TUI, runbooks over SSH) exit the usual way.

    Output that cannot be written, to the end (a closed stdout, the reader of a pipe
    gone, a full disk), is one line on stderr and exit 3, never a traceback.
    """
    _standard_streams()
    code, command = _dispatch(None)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as exc:
        discard(sys.stdout)
        _say(f"could not write the {'report' if command == 'check' else 'output'}: {write_failure(exc)}")
        code = EXIT_UNKNOWN
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    if command == "check":
        os._exit(code)
    sys.exit(code)


def _standard_streams() -> None:
    """Make the standard streams safe to use whatever the shell gave us.

    A closed descriptor 0, 1 or 2 (``>&-``) gets ``/dev/null``, so that no socket or pipe
    opened later takes its number (and receives what was meant for the terminal); Python
    has already set ``sys.stdout`` to None then, which ``check`` reports as a write
    failure. Characters the terminal's encoding cannot show are written as
    ``\\uNNNN`` instead of failing.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives until exit
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(errors="backslashreplace")


def _say(message: str) -> None:
    """``certpager: MESSAGE`` on stderr, escaped; nothing more if stderr cannot be written."""
    with contextlib.suppress(OutputError):
        emit(sys.stderr, f"certpager: {message}", flush=True)


def _dispatch(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """(exit code, command name) of the command line ``argv``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return _run(args), args.command


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "sub_config", None):
        args.config = args.sub_config
    try:
        if args.command is None:
            try:
                from certpager.tui import cli as tui_cli
            except ImportError:
                _say("the TUI is not available in this build")
                return EXIT_UNKNOWN
            return tui_cli.main(args)
        handler = args.handler
        code: int = handler(args)
        return code
    except OutputError as exc:
        _say(str(exc))
        return EXIT_UNKNOWN
    except UserError as exc:
        _say(" ".join(str(exc).splitlines()))
        return EXIT_UNKNOWN
    except CertpagerError as exc:
        _say(str(exc))
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    run()
