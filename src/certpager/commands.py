"""The subcommands' arguments, kept import-light.

``certpager --help`` and ``certpager check`` build the whole parser, so registering a
subcommand must not import its machinery (``run`` pulls in asyncssh, ``check`` pyOpenSSL and
the probe): only argparse and the standard library here. Each handler imports its command's
module when it runs.
"""

from __future__ import annotations

import argparse


def configure_check(p: argparse.ArgumentParser) -> None:
    """Add ``check``'s arguments."""
    p.description = (
        "Probe endpoints with fresh TLS handshakes and report what is wrong. "
        "Exit codes: 0 ok, 1 warning, 2 critical/page/error, 3 unknown (bad input)."
    )
    _add_check_inputs(p)
    _add_check_pace(p)
    _add_check_output(p)
    p.add_argument(
        "--endpoint", action="append", metavar="NAME", help="with a config: check only these endpoints"
    )
    _add_deep_checks(p)
    p.set_defaults(handler=_run_check)


def _add_check_inputs(p: argparse.ArgumentParser) -> None:
    """``check``'s targets: on the command line, in a file, and the CA bundle to trust."""
    p.add_argument("targets", nargs="*", metavar="HOST[:PORT][@SNI]", help="endpoints to check")
    p.add_argument(
        "--targets", dest="targets_file", metavar="FILE", help="file of targets, one per line, # comments"
    )
    p.add_argument("--ca-file", metavar="FILE", help="trust this PEM CA bundle instead of the system store")


def _add_check_pace(p: argparse.ArgumentParser) -> None:
    """How many probes run at once, in how many processes, and for how long each."""
    p.add_argument("--concurrency", type=_positive_int, metavar="N", help="probes in flight (default 100)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="processes that share the probes (default: one per CPU, with at least 25 endpoints "
        "each; 1: only this process). The concurrency is the total over all of them",
    )
    p.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="overall deadline per probe (default 10)"
    )


def _add_check_output(p: argparse.ArgumentParser) -> None:
    """JSON output and its indentation."""
    p.add_argument("--json", action="store_true", help="print one JSON object per endpoint, in a list")
    p.add_argument(
        "--pretty",
        action="store_true",
        help="with --json: indent the JSON (the default when stdout is a terminal; compact otherwise)",
    )


def _add_deep_checks(p: argparse.ArgumentParser) -> None:
    """The "deeper checks" group: HTTP redirect/HSTS, client certificate, and the switches
    that turn the extra connections off."""
    deep = p.add_argument_group(
        "deeper checks",
        "On by default: protocol versions and weak suites, the certificate sent without SNI, the AIA "
        "explanation of a missing intermediate, and (for port 443, or with --http-port) the HTTP "
        "redirect and HSTS header.",
    )
    deep.add_argument(
        "--http-port",
        type=_port,
        metavar="PORT",
        help="targets: check that this plain-HTTP port redirects to HTTPS and that the HTTPS answer "
        "has HSTS (default: port 80, for targets on port 443 only)",
    )
    deep.add_argument("--no-http", action="store_true", help="skip the HTTP redirect and HSTS checks")
    deep.add_argument(
        "--client-cert",
        metavar="FILE",
        help="targets: PEM client certificate (chain) offered when the server asks (mTLS)",
    )
    deep.add_argument("--client-key", metavar="FILE", help="targets: PEM private key of --client-cert")
    deep.add_argument(
        "--no-protocols",
        action="store_true",
        help="skip the extra connections that test TLS 1.0/1.1, SSLv3 and weak cipher suites",
    )
    deep.add_argument(
        "--no-sni-check", action="store_true", help="skip the handshake that fetches the no-SNI certificate"
    )
    deep.add_argument(
        "--no-aia", action="store_true", help="never fetch a missing intermediate from the AIA URL"
    )


def _port(text: str) -> int:
    from certpager.inputs import InputValueError, parse_port

    try:
        return parse_port(text)
    except InputValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None


def _positive_int(text: str) -> int:
    from certpager.inputs import InputValueError, parse_int

    try:
        return parse_int(text, lo=1, hi=10000)
    except InputValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    from certpager.inputs import InputValueError, parse_number

    try:
        return parse_number(text, lo=0.1, hi=300)
    except InputValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure_run(p: argparse.ArgumentParser) -> None:
    """Add the ``run`` arguments and set the handler."""
    p.description = (
        "Run a runbook for an endpoint: show the plan, ask for confirmations, stream the output, "
        "verify by handshake. Everything goes to the audit log."
    )
    p.add_argument("runbook", nargs="?", metavar="RUNBOOK", help="runbook name (or path to a runbook file)")
    p.add_argument("--endpoint", "-e", metavar="NAME", help="endpoint to run it for (from the config)")
    p.add_argument(
        "--plan", action="store_true", help="print every rendered command, host and user; run nothing"
    )
    p.add_argument(
        "--param",
        "--var",
        "-p",
        action="append",
        default=[],
        dest="params",
        metavar="NAME=VALUE",
        help="runbook parameter (overrides the endpoint's params and the runbook default); repeatable",
    )
    p.add_argument(
        "--for",
        action="append",
        default=[],
        dest="for_codes",
        metavar="CODE",
        help="the finding the run is for (a code the runbook's fixes: names); repeatable; "
        "default: the endpoint's current findings that the runbook fixes",
    )
    p.add_argument("--yes", "-y", action="store_true", help="answer plain (yes/no) confirmations with yes")
    p.add_argument(
        "--confirm",
        action="append",
        default=[],
        dest="confirm_names",
        metavar="NAME",
        help="answer typed confirmations that ask for exactly NAME; repeatable",
    )
    p.add_argument("--list", action="store_true", dest="list_runbooks", help="list runbooks (for --endpoint)")
    p.add_argument(
        "--audit-log", metavar="FILE", help="audit log (default: $XDG_DATA_HOME/certpager/audit.jsonl)"
    )
    p.add_argument(
        "--silence",
        action="store_true",
        help="silence the endpoint's firing alerts in the configured Alertmanager while the run "
        "goes (expired when the fix is verified, kept otherwise)",
    )
    p.set_defaults(handler=_run_command)


def configure_demo(p: argparse.ArgumentParser) -> None:
    """Add ``demo``'s arguments."""
    p.description = (
        "Start a fire-drill lab on 127.0.0.1 with planted certificate incidents (a certificate "
        "expiring in 2 days, a missing intermediate, TLS 1.0, a hostname mismatch, no HSTS, a "
        "renewal never reloaded, mTLS, an unreachable port) and an SSH host whose certbot, nginx "
        "and systemctl are stand-ins, then open the TUI on it. Everything is removed on exit."
    )
    p.add_argument(
        "--no-tui",
        action="store_true",
        help="start the lab only; print its config path and run until Ctrl-C or SIGTERM",
    )
    p.add_argument(
        "--audit-log",
        metavar="FILE",
        help="where drill runs are audited (default: LAB_DIR/audit.jsonl, removed with the lab)",
    )
    p.set_defaults(handler=_run_demo)


def configure_exporter(p: argparse.ArgumentParser) -> None:
    """Add ``exporter``'s arguments."""
    p.description = (
        "Serve Prometheus series of certpager checks, blackbox-style: GET /probe?target=HOST[:PORT][@SNI] "
        "or /probe?endpoint=NAME runs one full check; /metrics is the exporter's own health "
        "(docs/fleet.md). Listens on loopback unless --listen says otherwise."
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:9219",
        metavar="ADDR:PORT",
        help="address and port to listen on (default 127.0.0.1:9219; a non-loopback address "
        "exposes the exporter to the network)",
    )
    p.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="probes in flight (default: the config's)"
    )
    p.set_defaults(handler=_run_exporter)


def _run_exporter(args: argparse.Namespace) -> int:
    from certpager.fleet.exporter import run_exporter

    return run_exporter(args)


def _run_check(args: argparse.Namespace) -> int:
    from certpager.check.cli import run_check

    return run_check(args)


def _run_command(args: argparse.Namespace) -> int:
    from certpager.runbook.cli import run_command

    return run_command(args)


def _run_demo(args: argparse.Namespace) -> int:
    from certpager.demo.cli import run_demo

    return run_demo(args)
