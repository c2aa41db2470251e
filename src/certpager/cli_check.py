"""``certpager check``: headless probe with Nagios exit codes and JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from certpager.config import (
    Config,
    Endpoint,
    Settings,
    default_config_path,
    load_config,
    parse_target,
    read_targets_file,
)
from certpager.errors import UserError
from certpager.probe.engine import check_endpoints
from certpager.probe.model import EndpointReport, Status
from certpager.report import report_json, write_table


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add ``check``'s arguments."""
    p.description = (
        "Probe endpoints with fresh TLS handshakes and report what is wrong. "
        "Exit codes: 0 ok, 1 warning, 2 critical/page/error, 3 unknown (bad input)."
    )
    p.add_argument("targets", nargs="*", metavar="HOST[:PORT][@SNI]", help="endpoints to check")
    p.add_argument(
        "--targets", dest="targets_file", metavar="FILE", help="file of targets, one per line, # comments"
    )
    p.add_argument("--config", dest="check_config", metavar="FILE", help="endpoint config file")
    p.add_argument("--ca-file", metavar="FILE", help="trust this PEM CA bundle instead of the system store")
    p.add_argument("--concurrency", type=_positive_int, metavar="N", help="probes in flight (default 100)")
    p.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="overall deadline per probe (default 10)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per endpoint, in a list")
    p.add_argument(
        "--endpoint", action="append", metavar="NAME", help="with a config: check only these endpoints"
    )
    p.set_defaults(handler=run_check)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"{value} is out of range 1-10000")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range (0, 300]")
    return value


def gather_endpoints(args: argparse.Namespace) -> tuple[list[Endpoint], Settings]:
    """Endpoints from targets, a targets file, or the config (default config when none given)."""
    ca_file = args.ca_file
    if ca_file is not None and not Path(ca_file).is_file():
        raise UserError(f"--ca-file: file not found: {ca_file}")
    config_path = args.check_config or args.config
    config: Config | None = None
    settings = Settings()
    if config_path or not (args.targets or args.targets_file):
        path = Path(config_path) if config_path else default_config_path()
        if not config_path and not path.exists():
            raise UserError(
                f"no targets given and no config at {path}: pass HOST[:PORT][@SNI], --targets FILE or --config FILE"
            )
        config = load_config(path)
        settings = config.settings
    if args.timeout is not None:
        settings = replace(settings, timeout=args.timeout)
    endpoints: list[Endpoint] = []
    if config is not None:
        chosen = list(config.endpoints)
        if args.endpoint:
            unknown = [n for n in args.endpoint if config.endpoint(n) is None]
            if unknown:
                names = ", ".join(e.name for e in config.endpoints)
                raise UserError(
                    f"--endpoint: no endpoint named {', '.join(unknown)} in {path} (have: {names})"
                )
            chosen = [e for e in chosen if e.name in args.endpoint]
        for ep in chosen:
            if ca_file is not None:
                ep = replace(ep, ca_file=ca_file)
            if args.timeout is not None:
                ep = replace(ep, timeout=args.timeout)
            endpoints.append(ep)
    for text in args.targets:
        endpoints.append(parse_target(text, settings, ca_file=ca_file))
    if args.targets_file:
        endpoints.extend(read_targets_file(Path(args.targets_file), settings, ca_file=ca_file))
    if not endpoints:
        raise UserError("nothing to check: the config has no endpoints and no targets were given")
    return endpoints, settings


def exit_code(reports: list[EndpointReport]) -> int:
    """Nagios: the worst status decides."""
    worst = max((r.status for r in reports), key=lambda s: s.rank, default=Status.OK)
    return worst.exit_code


def run_check(args: argparse.Namespace) -> int:
    """Run ``certpager check``."""
    endpoints, settings = gather_endpoints(args)
    reports = asyncio.run(check_endpoints(endpoints, settings=settings, concurrency=args.concurrency))
    if args.json:
        json.dump([report_json(r) for r in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_table(reports)
    return exit_code(reports)
