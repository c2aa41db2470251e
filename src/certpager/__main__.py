"""Command line: args -> config -> build app -> exit code.

``certpager`` (TUI), ``certpager check``, ``certpager run``, ``certpager demo``.
Exit codes follow Nagios: 0 ok, 1 warning, 2 critical/page/error, 3 unknown (bad input).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from certpager import __version__
from certpager.errors import CertpagerError, UserError

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
    """
    code, command = _dispatch(None)
    if command == "check":
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # e.g. a closed pipe: let the usual exit report it
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


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
                print("certpager: the TUI is not available in this build", file=sys.stderr)
                return EXIT_UNKNOWN
            return tui_cli.main(args)
        handler = args.handler
        code: int = handler(args)
        return code
    except UserError as exc:
        print(f"certpager: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_UNKNOWN
    except CertpagerError as exc:
        print(f"certpager: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("certpager: interrupted", file=sys.stderr)
        return 130


def _one_line(message: str) -> str:
    """An error message as one terminal-safe line (a value quoted in it cannot move the
    cursor, recolour the terminal or start a second line)."""
    from certpager.inputs import escape_display

    return escape_display(message.replace("\n", " ").replace("\r", " "))


if __name__ == "__main__":
    run()
