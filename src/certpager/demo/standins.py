"""The fire drill's stand-in ``certbot``, ``nginx`` and ``systemctl``.

The lab puts small wrappers named after the real tools first on its SSH host's
``PATH``; they run ``python -m certpager.demo.standins --lab DIR TOOL ARGS...``.
Each one says on stderr that it is the drill's stand-in, accepts the flags the
shipped runbooks (and a typical on-call engineer) pass, ignores the rest with
a note, and acts on the lab for real:

- ``certbot renew [--force-renewal] [--cert-name N] [--dry-run] [--reuse-key]
  [--deploy-hook/--post-hook CMD]`` and ``certbot certonly ... --cert-name N
  [-d NAME]`` issue from the lab CA into ``letsencrypt/live/N`` (symlinks into
  ``archive/``); ``--dry-run`` changes nothing; ``certbot certificates`` lists.
- ``nginx -t`` / ``-T`` validate ``nginx/sites.json`` (certificate files load,
  key matches); ``nginx -s reload`` makes the lab servers re-read their files.
- ``systemctl reload|restart nginx`` reloads too; ``status``/``is-active`` report.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certpager.formats import format_serial

if TYPE_CHECKING:
    from certpager.demo.pki import Authority, Lineage

CONTROL_TIMEOUT = 10.0
"""Seconds to wait for the lab to answer a reload/status request."""

_CERTBOT_VALUE_FLAGS = {
    "--cert-name",
    "-d",
    "--domain",
    "--domains",
    "--config-dir",
    "--work-dir",
    "--logs-dir",
    "--server",
    "-w",
    "--webroot-path",
    "--pre-hook",
    "--post-hook",
    "--deploy-hook",
    "--renew-hook",
    "--key-type",
    "--elliptic-curve",
    "--rsa-key-size",
    "--preferred-challenges",
    "-a",
    "--authenticator",
    "-i",
    "--installer",
    "-m",
    "--email",
    "--max-log-backups",
    "--user-agent",
    "--eab-kid",
    "--eab-hmac-key",
    "--preferred-chain",
    "--http-01-port",
    "--https-port",
}
_CERTBOT_BOOL_FLAGS = {
    "--force-renewal",
    "--renew-by-default",
    "--dry-run",
    "--non-interactive",
    "-n",
    "--noninteractive",
    "--quiet",
    "-q",
    "--agree-tos",
    "--no-random-sleep-on-renew",
    "--reuse-key",
    "--no-reuse-key",
    "--new-key",
    "--webroot",
    "--standalone",
    "--nginx",
    "--apache",
    "--manual",
    "--keep-until-expiring",
    "--keep",
    "--reinstall",
    "--expand",
    "--register-unsafely-without-email",
    "--test-cert",
    "--staging",
    "-v",
    "--verbose",
    "--no-verify-ssl",
    "--disable-hook-validation",
    "--no-directory-hooks",
    "--no-autorenew",
    "--must-staple",
    "--hsts",
    "--redirect",
    "--no-redirect",
    "--no-eff-email",
    "--eff-email",
}
_CERTBOT_COMMANDS = {
    "renew",
    "certonly",
    "certificates",
    "run",
    "delete",
    "revoke",
    "register",
    "unregister",
    "update_account",
    "install",
    "rollback",
    "plugins",
    "update_symlinks",
    "enhance",
    "reconfigure",
    "show_account",
}


@dataclass(frozen=True)
class LabPaths:
    """The lab facts a stand-in needs (from ``DIR/lab.json``)."""

    lab_dir: Path
    letsencrypt: Path
    sites_file: Path
    control_socket: Path
    aia_url: str
    intermediate_cert: Path
    intermediate_key: Path

    @classmethod
    def load(cls, lab_dir: Path) -> LabPaths:
        """Read ``lab.json``; raise SystemExit(1) with a clear message when the lab is gone."""
        try:
            data = json.loads((lab_dir / "lab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _err(f"the fire-drill lab at {lab_dir} is gone or broken ({exc}); is `certpager demo` running?")
            raise SystemExit(1) from None
        return cls(
            lab_dir=lab_dir,
            letsencrypt=Path(data["letsencrypt"]),
            sites_file=Path(data["sites_file"]),
            control_socket=Path(data["control_socket"]),
            aia_url=str(data["aia_url"]),
            intermediate_cert=Path(data["intermediate_cert"]),
            intermediate_key=Path(data["intermediate_key"]),
        )


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _banner(tool: str, what: str) -> None:
    _err(f"[drill stand-in] {tool}: certpager's fire-drill stand-in, not the real {tool}; {what}")


def control(lab: LabPaths, op: str) -> dict[str, Any]:
    """Send ``op`` to the lab's control socket; raise OSError when it cannot be reached."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONTROL_TIMEOUT)
        sock.connect(str(lab.control_socket))
        sock.sendall(json.dumps({"op": op}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf or b"{}")
    if not isinstance(reply, dict):
        raise OSError("malformed reply from the lab")
    return reply


# ---------------------------------------------------------------------- certbot


@dataclass
class _CertbotArgs:
    command: str = "run"
    cert_names: list[str] | None = None
    domains: list[str] | None = None
    config_dir: str | None = None
    force: bool = False
    dry_run: bool = False
    reuse_key: bool = False
    quiet: bool = False
    deploy_hooks: list[str] | None = None
    post_hooks: list[str] | None = None
    pre_hooks: list[str] | None = None
    ignored: list[str] | None = None


def _parse_certbot(argv: list[str]) -> _CertbotArgs:
    args = _CertbotArgs(cert_names=[], domains=[], deploy_hooks=[], post_hooks=[], pre_hooks=[], ignored=[])
    assert args.cert_names is not None and args.domains is not None and args.ignored is not None
    assert args.deploy_hooks is not None and args.post_hooks is not None and args.pre_hooks is not None
    command: str | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        flag, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if flag in _CERTBOT_VALUE_FLAGS:
            if eq:
                value = inline
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                args.ignored.append(f"{flag} (no value)")
                continue
            if flag == "--cert-name":
                args.cert_names.append(value)
            elif flag in ("-d", "--domain", "--domains"):
                args.domains.extend(d.strip() for d in value.split(",") if d.strip())
            elif flag == "--config-dir":
                args.config_dir = value
            elif flag in ("--deploy-hook", "--renew-hook"):
                args.deploy_hooks.append(value)
            elif flag == "--post-hook":
                args.post_hooks.append(value)
            elif flag == "--pre-hook":
                args.pre_hooks.append(value)
            continue
        if flag in _CERTBOT_BOOL_FLAGS:
            if flag in ("--force-renewal", "--renew-by-default"):
                args.force = True
            elif flag == "--dry-run":
                args.dry_run = True
            elif flag == "--reuse-key":
                args.reuse_key = True
            elif flag in ("--no-reuse-key", "--new-key"):
                args.reuse_key = False
            elif flag in ("--quiet", "-q"):
                args.quiet = True
            continue
        if not token.startswith("-") and command is None and token in _CERTBOT_COMMANDS:
            command = token
            continue
        args.ignored.append(token)
    args.command = command or "run"
    return args


def certbot(lab: LabPaths, argv: list[str]) -> int:
    """The stand-in ``certbot``."""
    from certpager.demo import pki

    args = _parse_certbot(argv)
    config_dir = Path(args.config_dir) if args.config_dir else lab.letsencrypt
    _banner("certbot", f"it issues from the lab CA into {config_dir} (no ACME server is contacted)")
    for token in args.ignored or []:
        _err(f"[drill stand-in] certbot: note: ignoring {token!r} (not modelled by the drill)")
    say: Say = (lambda _text="": None) if args.quiet else _out
    if args.command == "certificates":
        return _certbot_certificates(config_dir)
    if args.command not in ("renew", "certonly"):
        _err(
            f"[drill stand-in] certbot: '{args.command}' is not part of the drill "
            "(supported: renew, certonly, certificates)"
        )
        return 1
    lineages = _certbot_lineages(args, config_dir)
    if lineages is None:
        return 1
    if not lineages:
        say("No certificates found.")
        return 0
    for hook in args.pre_hooks or []:
        if not args.dry_run:
            _run_hook("pre-hook", hook, None, say)
    renewed: list[pki.Lineage] = []
    skipped: list[tuple[pki.Lineage, str]] = []
    issuer = _Issuer(lab, pki.load_authority(lab.intermediate_cert, lab.intermediate_key), pki.utcnow())
    say("Saving debug log to /dev/null (the drill keeps no certbot log)")
    for lin in lineages:
        say("")
        say("- " * 40)
        why_skipped = _certbot_lineage(args, lin, issuer, say)
        if why_skipped is not None:
            skipped.append((lin, why_skipped))
            continue
        renewed.append(lin)
    say("")
    say("- " * 40)
    _certbot_summary(args, renewed, skipped, say)
    say("- " * 40)
    return 0


Say = Callable[..., None]
"""Where certbot's progress lines go (nowhere with ``--quiet``)."""


@dataclass(frozen=True)
class _Issuer:
    """What a certbot run issues with: the lab's CA at one instant."""

    lab: LabPaths
    ca: Authority
    now: datetime


def _certbot_lineages(args: _CertbotArgs, config_dir: Path) -> list[Lineage] | None:
    """The lineages a renew/certonly run acts on; None (after saying why) when one is invalid."""
    from certpager.demo import pki

    names = list(args.cert_names or [])
    if args.command == "certonly":
        if not names and args.domains:
            names = [args.domains[0]]
        if not names:
            _err("certbot: certonly needs --cert-name or -d NAME")
            return None
    lineages = [pki.Lineage(config_dir, n) for n in names] or pki.list_lineages(config_dir)
    for lin in lineages:
        if not pki.valid_lineage_name(lin.name):
            _err(f"certbot: invalid certificate name {lin.name!r}")
            return None
        if args.command == "renew" and not lin.exists():
            known = ", ".join(x.name for x in pki.list_lineages(config_dir)) or "none"
            _err(f"No certificate found with name {lin.name} (expected one of {known}).")
            return None
    return lineages


def _certbot_lineage(args: _CertbotArgs, lin: Lineage, issuer: _Issuer, say: Say) -> str | None:
    """Renew (or request) one lineage; the reason when it is skipped (not due), else None."""
    from certpager.demo import pki

    now = issuer.now
    if lin.exists():
        say(f"Processing {lin.renewal_conf}")
        current = lin.current()
        left = current.not_valid_after_utc - now
        names_for = args.domains if args.command == "certonly" and args.domains else pki.dns_names(current)
        due = left < timedelta(days=pki.RENEW_BEFORE_DAYS)
        if not (due or args.force or args.dry_run):
            expires = current.not_valid_after_utc.strftime("%Y-%m-%d")
            say(f"Certificate not yet due for renewal (expires {expires}, {left.days} days left)")
            return f"expires on {expires}"
        verb = "Simulating renewal of" if args.dry_run else "Renewing"
        say(f"{verb} an existing certificate for {' and '.join(names_for)}")
        key = lin.current_key() if args.reuse_key else None
    else:
        names_for = args.domains or [lin.name]
        verb = "Simulating a certificate request for" if args.dry_run else "Requesting a certificate for"
        say(f"{verb} {' and '.join(names_for)}")
        key = None
    if args.dry_run:
        return None
    cert, new_key = pki.issue(
        issuer.ca,
        list(names_for),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=pki.LIFETIME_DAYS),
        key=key,
        aia_url=issuer.lab.aia_url,
    )
    version = pki.write_lineage(lin, cert, new_key, [issuer.ca.cert])
    say(
        f"New certificate: serial {format_serial(cert.serial_number)}, valid until "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC (archive version {version})"
    )
    for hook in args.deploy_hooks or []:
        _run_hook("deploy-hook", hook, lin, say)
    return None


def _certbot_summary(
    args: _CertbotArgs, renewed: list[Lineage], skipped: list[tuple[Lineage, str]], say: Say
) -> None:
    """certbot's closing summary; runs the post-hooks (not on a dry run)."""
    if args.dry_run:
        say("Congratulations, all simulated renewals succeeded:")
        for lin in renewed:
            say(f"  {lin.path('fullchain')} (success)")
        if args.deploy_hooks or args.post_hooks or args.pre_hooks:
            say("(dry run: hooks were not run)")
        return
    if renewed:
        say("Congratulations, all renewals succeeded:")
        for lin in renewed:
            say(f"  {lin.path('fullchain')} (success)")
    if skipped:
        say("The following certificates are not due for renewal yet:")
        for lin, why in skipped:
            say(f"  {lin.path('fullchain')} {why} (skipped)")
    if not renewed:
        say("No renewals were attempted.")
    for hook in args.post_hooks or []:
        _run_hook("post-hook", hook, None, say)
    if renewed:
        say("Note: the web server still serves the old certificate until it is reloaded.")


def _run_hook(kind: str, command: str, lineage: Any, say: Any) -> None:
    env = dict(os.environ)
    if lineage is not None:
        env["RENEWED_LINEAGE"] = str(lineage.live)
        env["RENEWED_DOMAINS"] = lineage.name
    say(f"Running {kind} command: {command}")
    done = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = (done.stdout + done.stderr).strip()
    if output:
        say(f"Hook '{kind}' ran with output:")
        for line in output.splitlines():
            say(f" {line}")
    if done.returncode != 0:
        _err(f"Hook '{kind}' ran with error output / exit status {done.returncode}")


def _certbot_certificates(config_dir: Path) -> int:
    from certpager.demo import pki

    now = pki.utcnow()
    lineages = [lin for lin in pki.list_lineages(config_dir) if lin.exists()]
    _out("- " * 40)
    if not lineages:
        _out("No certificates found.")
    else:
        _out("Found the following certs:")
    for lin in lineages:
        cert = lin.current()
        left = cert.not_valid_after_utc - now
        state = "INVALID: EXPIRED" if left.total_seconds() < 0 else f"VALID: {left.days} days"
        _out(f"  Certificate Name: {lin.name}")
        _out(f"    Serial Number: {format_serial(cert.serial_number)}")
        _out("    Key Type: ECDSA")
        _out(f"    Domains: {' '.join(pki.dns_names(cert))}")
        _out(f"    Expiry Date: {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S+00:00} ({state})")
        _out(f"    Certificate Path: {lin.path('fullchain')}")
        _out(f"    Private Key Path: {lin.path('privkey')}")
    _out("- " * 40)
    return 0


# ---------------------------------------------------------------------- nginx


def nginx_test(lab: LabPaths, *, dump: bool = False) -> int:
    """``nginx -t``: every site's certificate and key load and match."""
    from certpager.demo.servers import build_context, read_sites

    conf = lab.sites_file
    try:
        sites = read_sites(conf)
    except ValueError as exc:
        _err(f"nginx: [emerg] {exc}")
        _err(f"nginx: configuration file {conf} test failed")
        return 1
    failed = False
    for site in sites:
        try:
            build_context(site, site.certificate, site.certificate_key)
        except FileNotFoundError as exc:
            _err(f'nginx: [emerg] cannot load certificate "{exc.filename}" ({site.name}): No such file')
            failed = True
        except (OSError, ValueError) as exc:
            # ssl.SSLError is an OSError: "key values mismatch" and friends.
            _err(
                f'nginx: [emerg] cannot load certificate "{site.certificate}" with key '
                f'"{site.certificate_key}" ({site.name}): {exc}'
            )
            failed = True
    if failed:
        _err(f"nginx: configuration file {conf} test failed")
        return 1
    _err(f"nginx: the configuration file {conf} syntax is ok")
    _err(f"nginx: configuration file {conf} test is successful")
    if dump:
        _out(f"# configuration file {conf}:")
        _out(conf.read_text(encoding="utf-8").rstrip())
    return 0


def reload_lab(lab: LabPaths, tool: str) -> int:
    """Ask the lab servers to re-read their config and certificate files."""
    try:
        reply = control(lab, "reload")
    except (OSError, ValueError) as exc:
        _err(
            f"{tool}: cannot reach the fire-drill lab ({lab.control_socket}: {exc}); "
            "is `certpager demo` still running?"
        )
        return 1
    if reply.get("error"):
        _err(f"{tool}: reload failed: {reply['error']}")
        return 1
    for site in reply.get("sites", []):
        if site.get("error"):
            _err(f"{tool}: [emerg] {site['name']}: {site['error']}")
        elif site.get("changed"):
            _out(
                f"{tool}: reloaded {site['name']}: now serving serial {site['serial']} (until {site['not_after']})"
            )
    changed = sum(1 for s in reply.get("sites", []) if s.get("changed"))
    _out(f"{tool}: {len(reply.get('sites', []))} sites reloaded, {changed} now serve a different certificate")
    return 0 if reply.get("ok") else 1


def nginx(lab: LabPaths, argv: list[str]) -> int:
    """The stand-in ``nginx``."""
    _banner("nginx", f"the lab's web servers read {lab.sites_file}")
    test = dump = False
    signal_name: str | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token in ("-t", "-T"):
            test = True
            dump = dump or token == "-T"
        elif token == "-q":
            continue
        elif token == "-s":
            if i >= len(argv):
                _err('nginx: option "-s" requires parameter')
                return 1
            signal_name = argv[i]
            i += 1
        elif token in ("-c", "-p", "-e", "-g"):
            if i < len(argv):
                _err(f"[drill stand-in] nginx: note: ignoring {token} {argv[i]!r} (the lab has one config)")
                i += 1
        elif token in ("-v", "-V"):
            _err("nginx version: certpager-drill-stand-in")
            return 0
        elif token in ("-h", "-?"):
            _err("usage: nginx [-t|-T] [-s reload|reopen] (the drill's stand-in)")
            return 0
        else:
            _err(f"[drill stand-in] nginx: note: ignoring {token!r}")
    if test:
        code = nginx_test(lab, dump=dump)
        if code or signal_name is None:
            return code
    if signal_name == "reload":
        return reload_lab(lab, "nginx")
    if signal_name == "reopen":
        return 0
    if signal_name in ("stop", "quit"):
        _err("nginx: the drill's web servers stop with the lab (quit `certpager demo`)")
        return 1
    if signal_name is not None:
        _err(f'nginx: invalid option: "-s {signal_name}"')
        return 1
    _err(
        "nginx: [emerg] the drill's nginx is already running; "
        "use 'nginx -s reload' or 'systemctl reload nginx'"
    )
    return 1


# ---------------------------------------------------------------------- systemctl

_RELOAD_VERBS = {
    "reload",
    "restart",
    "reload-or-restart",
    "try-restart",
    "try-reload-or-restart",
    "condreload",
    "condrestart",
    "force-reload",
}


def systemctl(lab: LabPaths, argv: list[str]) -> int:
    """The stand-in ``systemctl`` (knows one unit: nginx)."""
    _banner("systemctl", "it knows one unit, nginx.service: the lab's web servers")
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        _err("systemctl: the drill's stand-in needs a verb (reload, restart, status, is-active)")
        return 1
    verb, units = words[0], words[1:]
    if verb == "daemon-reload":
        return 0
    if not units:
        _err(f"Too few arguments. (systemctl {verb} needs a unit)")
        return 1
    for unit in units:
        if unit.removesuffix(".service") != "nginx":
            _err(f"Failed to {verb} {unit}: Unit {unit.removesuffix('.service')}.service not found.")
            return 5
    if verb in _RELOAD_VERBS:
        return reload_lab(lab, "systemctl")
    if verb == "is-active":
        try:
            control(lab, "status")
        except (OSError, ValueError):
            _out("inactive")
            return 3
        _out("active")
        return 0
    if verb == "status":
        try:
            reply = control(lab, "status")
        except (OSError, ValueError) as exc:
            _out("● nginx.service - certpager fire-drill web servers (stand-in)")
            _out(f"     Active: inactive (dead): {exc}")
            return 3
        _out("● nginx.service - certpager fire-drill web servers (stand-in)")
        _out(f"     Active: active (running); Main PID: {reply.get('pid')} (certpager demo lab)")
        for site in reply.get("sites", []):
            _out(
                f"     {site['name']:9} 127.0.0.1:{site['listen']:<5} serial {site['serial']} "
                f"until {site['not_after']}"
            )
        return 0
    if verb in ("start", "enable"):
        return 0
    if verb in ("stop", "disable", "kill", "mask"):
        _err("systemctl: the drill's web servers stop with the lab (quit `certpager demo`)")
        return 1
    _err(f"systemctl: '{verb}' is not part of the drill (reload, restart, status, is-active)")
    return 1


# ---------------------------------------------------------------------- entry

TOOLS = {"certbot": certbot, "nginx": nginx, "systemctl": systemctl}
"""Stand-in name -> implementation."""


def main(argv: list[str] | None = None) -> int:
    """``python -m certpager.demo.standins --lab DIR TOOL ARGS...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[0] != "--lab" or argv[2] not in TOOLS:
        _err(f"usage: python -m certpager.demo.standins --lab DIR {{{','.join(TOOLS)}}} ARGS...")
        return 2
    lab = LabPaths.load(Path(argv[1]))
    try:
        return TOOLS[argv[2]](lab, argv[3:])
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
