"""``certpager check``: headless probe with Nagios exit codes and JSON."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from OpenSSL import SSL

from certpager.check.parallel import auto_workers, check_encoded, check_reports
from certpager.check.report import encode_json, write_json_texts, write_table
from certpager.config import (
    Config,
    Endpoint,
    HttpCheck,
    Settings,
    default_config_path,
    load_config,
    parse_target,
    read_targets_file,
)
from certpager.errors import AlertmanagerError, OutputError, UserError
from certpager.fleet.alertmanager import fetch_alerts
from certpager.fleet.blackbox import blackbox_expiry
from certpager.fleet.pages import PageMap, map_batch, page_line
from certpager.fleet.prometheus import with_imported
from certpager.inputs import PEM_MAX_BYTES, InputFileError, check_input_file
from certpager.probe.deep import restricted
from certpager.probe.model import ALL_CHECKS, DeepCheck, EndpointReport, Status
from certpager.probe.trust import TrustStoreError, get_trust_store
from certpager.text import discard, emit, printable, write_failure


def _client_files(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--client-cert`` and ``--client-key``, checked: both or neither, readable, matching."""
    cert, key = getattr(args, "client_cert", None), getattr(args, "client_key", None)
    if cert is None and key is None:
        return None, None
    if not cert or not key:
        raise UserError("--client-cert and --client-key go together: give both")
    for flag, path in (("--client-cert", cert), ("--client-key", key)):
        try:
            check_input_file(path, cap=PEM_MAX_BYTES)
        except InputFileError as exc:
            raise UserError(f"{flag}: {exc}") from None
    try:
        SSL.Context(SSL.TLS_CLIENT_METHOD).use_privatekey_file(key)
    except SSL.Error:
        raise UserError(
            f"--client-key: {key} holds no readable PEM private key (or it is encrypted)"
        ) from None
    try:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.use_certificate_chain_file(cert)
    except SSL.Error:
        raise UserError(f"--client-cert: {cert} holds no readable PEM certificate") from None
    try:
        ctx.use_privatekey_file(key)
    except SSL.Error:
        raise UserError(f"--client-key: {key} is not the private key of {cert}") from None
    try:
        ctx.check_privatekey()
    except SSL.Error:
        raise UserError(f"--client-key: {key} is not the private key of {cert}") from None
    return str(Path(cert).resolve()), str(Path(key).resolve())


#: The ``--no-*`` switches and the deeper check each one leaves out.
_SWITCHES = (
    ("no_http", DeepCheck.HTTP),
    ("no_protocols", DeepCheck.PROTOCOLS),
    ("no_sni_check", DeepCheck.NO_SNI),
    ("no_aia", DeepCheck.AIA),
)


def selected_checks(args: argparse.Namespace) -> frozenset[DeepCheck]:
    """The deeper checks this run may do: every one the ``--no-*`` switches leave in
    (each still subject to the endpoint's own settings). The one place switches become checks."""
    return ALL_CHECKS.difference(check for switch, check in _SWITCHES if getattr(args, switch, False))


def _apply_switches(ep: Endpoint, args: argparse.Namespace) -> Endpoint:
    """The ``--no-*`` switches applied to one endpoint (a copy only when one changes it)."""
    return restricted(ep, selected_checks(args))


def _switched(settings: Settings, checks: frozenset[DeepCheck]) -> Settings:
    """``settings`` with the checks left out of ``checks`` off by default, so that targets
    are built with them off (instead of copied once per target afterwards)."""
    if checks == ALL_CHECKS:
        return settings
    return replace(
        settings,
        check_http=settings.check_http and DeepCheck.HTTP in checks,
        check_protocols=settings.check_protocols and DeepCheck.PROTOCOLS in checks,
        check_no_sni=settings.check_no_sni and DeepCheck.NO_SNI in checks,
        fetch_aia=settings.fetch_aia and DeepCheck.AIA in checks,
    )


def _apply_target_options(
    ep: Endpoint, args: argparse.Namespace, cert: str | None, key: str | None
) -> Endpoint:
    """``--http-port``, ``--client-cert``, ``--client-key``: what the endpoint config would say."""
    port = getattr(args, "http_port", None)
    if port is not None:
        ep = replace(ep, http=HttpCheck(port=port))
    if cert and key:
        ep = replace(ep, client_cert=cert, client_key=key)
    return ep


def gather_endpoints(args: argparse.Namespace) -> tuple[list[Endpoint], Settings]:
    """Endpoints from targets, a targets file, or the config (default config when none given)."""
    ca_file = args.ca_file
    if ca_file is not None:
        try:
            get_trust_store(ca_file)  # an unusable bundle is bad input, not N critical endpoints
        except TrustStoreError as exc:
            raise UserError(f"--ca-file: {exc}") from None
    config_path = args.config
    config: Config | None = None
    settings = Settings()
    if config_path or not (args.targets or args.targets_file):
        path = Path(config_path) if config_path else default_config_path()
        if not config_path and not path.exists():
            raise UserError(
                f"no targets given and no config at {path}: pass HOST[:PORT][@SNI], --targets FILE or --config FILE"
            )
        config = load_config(path)
        config, note = with_imported(config)  # the config as it is without a prometheus section
        if note:
            emit(sys.stderr, f"certpager: {note}", flush=True)
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
    cert, key = _client_files(args)
    checks = selected_checks(args)
    defaults = _switched(settings, checks)
    targets = [parse_target(text, defaults, ca_file=ca_file) for text in args.targets]
    if args.targets_file:
        targets.extend(read_targets_file(Path(args.targets_file), defaults, ca_file=ca_file))
    if not targets and (cert or getattr(args, "http_port", None) is not None):
        flag = "--client-cert/--client-key" if cert else "--http-port"
        raise UserError(
            f"{flag} applies to targets given on the command line (HOST[:PORT][@SNI] or --targets); "
            "in a config file use the endpoint's client_cert/client_key or http keys"
        )
    endpoints.extend(_apply_target_options(ep, args, cert, key) for ep in targets)
    if not endpoints:
        raise UserError("nothing to check: the config has no endpoints and no targets were given")
    return [restricted(ep, checks) for ep in endpoints], settings


def exit_code(statuses: Sequence[Status]) -> int:
    """Nagios: the worst status decides."""
    worst = max(statuses, key=lambda s: s.rank, default=Status.OK)
    return worst.exit_code


def gather_pages(
    endpoints: list[Endpoint], settings: Settings, args: argparse.Namespace
) -> tuple[list[Endpoint], PageMap | None]:
    """The alerts of the configured Alertmanager by endpoint (None: none configured), and
    the endpoints with the ad-hoc ones its alerts name (unless ``--endpoint`` picks).
    Alertmanager down or hostile: one line on stderr, the endpoints are still checked."""
    if settings.alertmanager is None:
        return endpoints, None
    try:
        batch = asyncio.run(fetch_alerts(settings.alertmanager))
    except AlertmanagerError as exc:
        emit(sys.stderr, f"certpager: {exc} (checking without its alerts)")
        return endpoints, PageMap(error=str(exc))
    pages = map_batch(batch, endpoints, settings)
    if args.endpoint:
        return endpoints, pages
    return [*endpoints, *(_apply_switches(ep, args) for ep in pages.adhoc)], pages


def report_extra(report: EndpointReport, pages: PageMap | None) -> dict[str, object]:
    """The JSON keys of the fleet work: ``alerts``, ``alerts_ignored`` and ``alerts_error``
    (with an Alertmanager configured: an empty ``alerts`` is "no alert" only when
    ``alerts_error`` is null) and ``blackbox_expiry`` (when blackbox's expiry and the
    verified path's differ)."""
    extra: dict[str, object] = {}
    if pages is not None:
        extra["alerts"] = [p.json() for p in pages.of(report.name)]
        extra["alerts_ignored"] = pages.ignored.json()
        extra["alerts_error"] = pages.error
    fact = blackbox_expiry(report)
    if fact is not None:
        extra["blackbox_expiry"] = fact.json()
    return extra


def table_notes(reports: Sequence[EndpointReport], pages: PageMap | None) -> dict[str, list[str]]:
    """The PAGED lines of the table: who pages about each endpoint, and a false page's cause."""
    notes: dict[str, list[str]] = {}
    for report in reports:
        paged = pages.of(report.name) if pages is not None else ()
        if not paged:
            continue
        lines = notes.setdefault(report.name, [page_line(paged)])
        fact = blackbox_expiry(report)
        if fact is not None and any(p.from_blackbox for p in paged):
            lines.append(fact.sentence() + (": the cause of blackbox's page" if fact.false_page else ""))
    return notes


def run_check(args: argparse.Namespace) -> int:
    """Run ``certpager check``.

    A report that cannot be written (standard output closed, the reader of the pipe
    gone, the disk full) is :class:`~certpager.errors.OutputError`: one line on stderr
    and exit 3 (UNKNOWN), whatever the endpoints' status: nobody saw the verdict.
    """
    if sys.stdout is None:  # started with `>&-`: say so before probing anything
        raise OutputError(f"could not write the report: {write_failure(None)}")
    endpoints, settings = gather_endpoints(args)
    endpoints, pages = gather_pages(endpoints, settings, args)
    concurrency = args.concurrency or settings.concurrency
    workers = getattr(args, "workers", None) or auto_workers(len(endpoints), concurrency)
    out = sys.stdout
    pretty = bool(getattr(args, "pretty", False)) or out.isatty()
    encoded = None
    reports = None
    if args.json:
        encoded = check_encoded(
            endpoints,
            lambda r: encode_json(r, pretty=pretty, extra=report_extra(r, pages)).encode(),
            settings=settings,
            concurrency=concurrency,
            workers=workers,
        )
        statuses = [e.status for e in encoded]
    else:
        reports = check_reports(endpoints, settings=settings, concurrency=concurrency, workers=workers)
        statuses = [r.status for r in reports]
    try:
        if encoded is not None:
            write_json_texts((e.payload.decode() for e in encoded), out, pretty=pretty)
        elif reports is not None:
            write_table(reports, out, notes=table_notes(reports, pages))
            ignored = pages.ignored.sentence() if pages is not None else None
            if ignored:  # under the summary line: alerts that page about no row
                out.write(printable(ignored) + "\n")
        out.flush()
    except (OSError, ValueError) as exc:
        discard(out)
        raise OutputError(f"could not write the report: {write_failure(exc)}") from None
    return exit_code(statuses)
