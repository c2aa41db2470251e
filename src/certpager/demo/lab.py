"""The fire-drill lab: builds the files, runs every server, writes the lab config.

Run as a child process by :class:`certpager.demo.process.LabProcess`::

    python -m certpager.demo.lab --dir DIR

It prints one JSON line (:class:`LabInfo`) on stdout once everything listens,
then serves until SIGTERM/SIGINT/SIGHUP or until its stdin reaches EOF (the
parent is gone), and on the way out ends every command it started and removes
``DIR``. Layout of ``DIR``::

    endpoints.yaml        the lab config: certpager check/run --config DIR/endpoints.yaml
    lab.json              paths the stand-ins use
    ca/                   drill root + intermediate (the "Let's Encrypt" of the lab), client CA
    client/               the mTLS client certificate and key
    letsencrypt/          certbot-style live/, archive/, renewal/
    nginx/sites.json      the web server config; edit + reload as with nginx
    ssh/                  known_hosts (the lab host key) and the lab client key
    bin/                  stand-in certbot, nginx, systemctl (first on the SSH PATH)
    home/                 HOME and working directory of SSH commands
    run/control.sock      reload/status requests from the stand-ins
    run/commands/PID      commands running right now (for cleanup by PID)
    locks/                run locks of drill runs (the config's settings.lock_dir)
    audit.jsonl           the drill's audit log (written by `certpager demo`'s runs)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import sys
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

import certpager
from certpager.demo import pki
from certpager.demo.info import CONFIG_NAME, LAB_ENV, LabInfo
from certpager.demo.scenarios import DOMAIN, SCENARIOS, Scenario
from certpager.demo.servers import Site, SiteConfig, read_sites, static_http, write_sites
from certpager.demo.sshd import DrillSSHServer
from certpager.lab.ports import reserve_port
from certpager.lab.tls import HttpServer

STANDINS = ("certbot", "nginx", "systemctl")
"""Commands the lab provides on the SSH host's PATH."""

AIA_PATH = "/drill-intermediate.der"
"""Path of the intermediate certificate on the lab's AIA (caIssuers) server."""

SSH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of SSH commands after the lab's ``bin/``."""


class Lab:
    """Everything the drill runs, in one asyncio loop."""

    def __init__(self, directory: Path):
        self.dir = directory.resolve()
        """The lab directory (must exist, should be empty)."""
        self.sites: dict[str, Site] = {}
        """Running sites by endpoint name."""
        self.sshd: DrillSSHServer | None = None
        """The SSH host."""
        self.aia: HttpServer | None = None
        """The caIssuers server."""
        self.reserved: dict[str, socket.socket] = {}
        """Bound, never listening sockets of unreachable endpoints (the port stays ours, refused)."""
        self.info: LabInfo | None = None
        """Set once started."""
        self._control: asyncio.Server | None = None
        self.user = getpass.getuser()
        """The SSH login user (the local user: commands run with its rights)."""

    # ------------------------------------------------------------------ paths

    def path(self, *parts: str) -> Path:
        """A path inside the lab dir."""
        return self.dir.joinpath(*parts)

    @property
    def letsencrypt(self) -> Path:
        """The certbot config dir."""
        return self.path("letsencrypt")

    # ------------------------------------------------------------------ start

    async def start(self, *, t0: float | None = None) -> LabInfo:
        """Build files, start every server, write the config; return what runs where."""
        t0 = time.monotonic() if t0 is None else t0
        for sub in ("ca", "client", "letsencrypt", "nginx", "ssh", "bin", "home", "run/commands"):
            self.path(sub).mkdir(parents=True, exist_ok=True)
        now = pki.utcnow()
        inter = self._make_cas(now)
        self.aia = static_http({AIA_PATH: (inter.cert.public_bytes(Encoding.DER), "application/pkix-cert")})
        self.aia.start()
        aia_url = f"http://127.0.0.1:{self.aia.port}{AIA_PATH}"
        initial = self._issue_lineages(inter, now, aia_url)
        self._start_sites(initial)
        identity = await self._start_sshd()
        control = self.path("run", "control.sock")
        self._control = await asyncio.start_unix_server(self._serve_control, str(control))
        control.chmod(0o600)
        self._write_lab_json(control, aia_url)
        self._write_config()
        self._write_readme()
        assert self.sshd is not None
        self.info = LabInfo(
            dir=str(self.dir),
            config=str(self.path(CONFIG_NAME)),
            pid=os.getpid(),
            ssh_port=self.sshd.port,
            user=self.user,
            known_hosts=str(self.path("ssh", "known_hosts")),
            identity_file=str(identity),
            ports={name: site.ports for name, site in self.sites.items()},
            endpoint_ports=self._endpoint_ports(),
            aia_port=self.aia.port,
            control_socket=str(control),
            started_in=round(time.monotonic() - t0, 3),
        )
        return self.info

    def _make_cas(self, now: datetime) -> pki.Authority:
        """The drill root and intermediate, the client CA and the mTLS client certificate,
        written under ``ca/`` and ``client/``; returns the intermediate (the issuer of the sites)."""
        root = pki.make_root("certpager Drill Root CA", now)
        inter = pki.make_intermediate(root, "certpager Drill Intermediate CA R1", now)
        client_ca = pki.make_root("certpager Drill Client CA", now)
        pki.write_file(self.path("ca", "drill-root.pem"), pki.cert_pem(root.cert))
        pki.write_file(self.path("ca", "drill-root.key"), pki.key_pem(root.key), private=True)
        pki.write_file(self.path("ca", "drill-intermediate.pem"), pki.cert_pem(inter.cert))
        pki.write_file(self.path("ca", "drill-intermediate.key"), pki.key_pem(inter.key), private=True)
        pki.write_file(self.path("ca", "drill-client-ca.pem"), pki.cert_pem(client_ca.cert))
        client_cert, client_key = pki.issue(
            client_ca,
            [f"billing.{DOMAIN}"],
            not_before=now - timedelta(days=10),
            not_after=now + timedelta(days=80),
            client=True,
        )
        pki.write_file(self.path("client", "billing.pem"), pki.cert_pem(client_cert))
        pki.write_file(self.path("client", "billing.key"), pki.key_pem(client_key), private=True)
        return inter

    def _issue_lineages(
        self, inter: pki.Authority, now: datetime, aia_url: str
    ) -> dict[str, tuple[str, str]]:
        """Each listening scenario's certbot lineage; returns, for the scenarios whose
        certificate was renewed on disk but never reloaded, the files the site serves
        (what nginx loaded at its last reload)."""
        initial: dict[str, tuple[str, str]] = {}
        for sc in SCENARIOS:
            if not sc.listening:
                continue
            lineage = pki.Lineage(self.letsencrypt, sc.lineage)
            cert, key = pki.issue(
                inter,
                [sc.lineage],
                not_before=now + timedelta(days=sc.not_before_days),
                not_after=now + timedelta(days=sc.not_after_days),
                aia_url=aia_url,
            )
            version = pki.write_lineage(lineage, cert, key, [inter.cert])
            if sc.renewed_on_disk_days is None:
                continue
            # What nginx loaded at its last reload ...
            initial[sc.name] = (
                str(lineage.archive / f"{sc.serve}{version}.pem"),
                str(lineage.archive / f"privkey{version}.pem"),
            )
            # ... and what certbot renewed since (nginx never reloaded).
            renewed_at = now + timedelta(days=sc.renewed_on_disk_days)
            new_cert, new_key = pki.issue(
                inter,
                [sc.lineage],
                not_before=renewed_at,
                not_after=renewed_at + timedelta(days=pki.LIFETIME_DAYS),
                aia_url=aia_url,
            )
            pki.write_lineage(lineage, new_cert, new_key, [inter.cert])
        return initial

    def _start_sites(self, initial: dict[str, tuple[str, str]]) -> None:
        """Start every listening scenario's site (``initial``: files served instead of the
        lineage's current ones); reserve a refusing port for the others; write sites.json."""
        for sc in SCENARIOS:
            if not sc.listening:
                self.reserved[sc.name] = reserve_port()
                continue
            lineage = pki.Lineage(self.letsencrypt, sc.lineage)
            cfg = SiteConfig(
                name=sc.name,
                server_name=sc.server_name,
                certificate=str(lineage.path(sc.serve)),
                certificate_key=str(lineage.path("privkey")),
                protocols=list(sc.protocols),
                hsts=sc.hsts,
                redirect=sc.redirect,
                client_ca=str(self.path("ca", "drill-client-ca.pem")) if sc.mtls else None,
                http_listen=0 if sc.http_check else None,
            )
            site = Site(cfg)
            cert_file, key_file = initial.get(sc.name, (None, None))
            site.load(cfg, cert_file, key_file)
            site.start()
            self.sites[sc.name] = site
        write_sites(self.path("nginx", "sites.json"), [s.config for s in self.sites.values()])

    async def _start_sshd(self) -> Path:
        """Keys, stand-ins and the SSH host; writes ``ssh/known_hosts``; returns the client key file."""
        host_key = asyncssh.generate_private_key("ssh-ed25519", comment="certpager-drill-host")
        client_ssh_key = asyncssh.generate_private_key("ssh-ed25519", comment="certpager-drill-client")
        identity = self.path("ssh", "drill_ed25519")
        client_ssh_key.write_private_key(str(identity))
        identity.chmod(0o600)
        client_ssh_key.write_public_key(str(identity) + ".pub")
        self._write_standins()
        env = {
            "PATH": f"{self.path('bin')}:{SSH_PATH}",
            "HOME": str(self.path("home")),
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            LAB_ENV: str(self.dir),
        }
        self.sshd = DrillSSHServer(
            host_key=host_key,
            client_key=client_ssh_key,
            user=self.user,
            env=env,
            cwd=self.path("home"),
            pid_dir=self.path("run", "commands"),
        )
        await self.sshd.start()
        self.path("ssh", "known_hosts").write_text(self.sshd.known_hosts_line() + "\n", encoding="utf-8")
        return identity

    def _write_lab_json(self, control: Path, aia_url: str) -> None:
        """``lab.json``: the paths the stand-ins use."""
        lab_json = {
            "lab_dir": str(self.dir),
            "letsencrypt": str(self.letsencrypt),
            "sites_file": str(self.path("nginx", "sites.json")),
            "control_socket": str(control),
            "aia_url": aia_url,
            "intermediate_cert": str(self.path("ca", "drill-intermediate.pem")),
            "intermediate_key": str(self.path("ca", "drill-intermediate.key")),
            "root_cert": str(self.path("ca", "drill-root.pem")),
        }
        self.path("lab.json").write_text(json.dumps(lab_json, indent=2) + "\n", encoding="utf-8")

    def _endpoint_ports(self) -> dict[str, int]:
        out = {name: site.config.listen for name, site in self.sites.items()}
        out.update({name: sock.getsockname()[1] for name, sock in self.reserved.items()})
        return out

    def _write_standins(self) -> None:
        package_root = Path(certpager.__file__).resolve().parent.parent
        for name in STANDINS:
            script = self.path("bin", name)
            script.write_text(
                "#!/bin/sh\n"
                f"# certpager fire-drill stand-in for '{name}': acts on the lab in {self.dir}\n"
                f"PYTHONPATH={shlex.quote(str(package_root))}${{PYTHONPATH:+:$PYTHONPATH}} "
                f"exec {shlex.quote(sys.executable)} -m certpager.demo.standins "
                f'--lab {shlex.quote(str(self.dir))} {name} "$@"\n',
                encoding="utf-8",
            )
            script.chmod(0o755)

    def _write_config(self) -> None:
        ports = self._endpoint_ports()
        endpoints: list[dict[str, Any]] = []
        for sc in SCENARIOS:
            endpoints.append(self._endpoint_entry(sc, ports[sc.name]))
        doc = {
            # Run locks stay in the lab (not the machine-wide /run/lock/certpager).
            "settings": {"timeout": 5, "interval": 20, "lock_dir": "locks"},
            "endpoints": endpoints,
        }
        header = (
            "# certpager fire-drill lab config, written by `certpager demo`.\n"
            f"# Everything below lives in {self.dir} and on 127.0.0.1; it is all removed when the\n"
            "# demo stops. Names under .drill.test do not resolve: each endpoint connects to\n"
            "# 127.0.0.1 and sends its name as SNI. The SSH host is the lab's own asyncssh server,\n"
            "# whose host key is pinned in ssh/known_hosts; certbot, nginx and systemctl there are\n"
            "# the drill's stand-ins (see README.txt).\n"
        )
        body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)
        self.path(CONFIG_NAME).write_text(header + body, encoding="utf-8")

    def _endpoint_entry(self, sc: Scenario, port: int) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": sc.name,
            "host": "127.0.0.1",
            "port": port,
            "sni": sc.server_name,
            "tags": _tags(sc),
            "ca_file": "ca/drill-root.pem",
        }
        if sc.mtls:
            entry["client_cert"] = "client/billing.pem"
            entry["client_key"] = "client/billing.key"
        site = self.sites.get(sc.name)
        if sc.http_check and site is not None and site.config.http_listen:
            entry["http"] = {"port": site.config.http_listen, "redirect": True, "hsts": True}
        if sc.stored:
            entry["stored"] = {"path": str(pki.Lineage(self.letsencrypt, sc.lineage).path("cert"))}
        entry["ssh"] = {
            "host": "127.0.0.1",
            "port": self.sshd.port if self.sshd else 22,
            "user": self.user,
            "known_hosts": "ssh/known_hosts",
            "identity_files": ["ssh/drill_ed25519"],
        }
        if sc.runbooks:
            entry["runbooks"] = list(sc.runbooks)
        params = {"cert_name": sc.lineage, **dict(sc.params)}
        entry["params"] = params
        return entry

    def _write_readme(self) -> None:
        lines = [
            "certpager fire-drill lab",
            "========================",
            "",
            "Started by `certpager demo`; removed when it stops. Nothing here is real:",
            "the CA is the lab's own, the SSH host is an asyncssh server inside the lab",
            "process, and certbot/nginx/systemctl on its PATH are stand-ins that act on",
            "these files and servers and say so in their output.",
            "",
            "Scenarios:",
        ]
        ports = self._endpoint_ports()
        for sc in SCENARIOS:
            lines.append(f"  {sc.name:9} 127.0.0.1:{ports[sc.name]:<5}  {sc.summary}")
        lines += [
            "",
            f"Config:      {self.path(CONFIG_NAME)}",
            f"SSH:         ssh -p {self.sshd.port if self.sshd else 0} -i {self.path('ssh', 'drill_ed25519')} "
            f"-o UserKnownHostsFile={self.path('ssh', 'known_hosts')} {self.user}@127.0.0.1 CMD",
            f"Web config:  {self.path('nginx', 'sites.json')} (edit, then `nginx -t && systemctl reload nginx`)",
            f"certbot dir: {self.letsencrypt}",
        ]
        self.path("README.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ reload / control

    def reload(self) -> dict[str, Any]:
        """Re-read ``nginx/sites.json`` and every certificate file, as ``nginx -s reload``."""
        try:
            configs = read_sites(self.path("nginx", "sites.json"))
        except ValueError as exc:
            return {"ok": False, "error": str(exc), "sites": []}
        results: list[dict[str, Any]] = []
        ok = True
        seen: set[str] = set()
        for cfg in configs:
            seen.add(cfg.name)
            site = self.sites.get(cfg.name)
            if site is None:
                ok = False
                results.append({"name": cfg.name, "error": "new sites need a lab restart"})
                continue
            before = site.loaded.serial if site.loaded else None
            try:
                loaded = site.load(cfg)
            except (OSError, ValueError, ssl.SSLError) as exc:
                ok = False
                results.append(
                    {"name": cfg.name, "error": f"{exc} (still serving serial {before})", "serial": before}
                )
                continue
            results.append(
                {
                    "name": cfg.name,
                    "serial": loaded.serial,
                    "not_after": loaded.not_after,
                    "changed": loaded.serial != before,
                    "certificate": loaded.certificate,
                }
            )
        for name in sorted(set(self.sites) - seen):
            results.append({"name": name, "error": "missing from sites.json; keeps serving as before"})
        return {"ok": ok, "sites": results}

    def status(self) -> dict[str, Any]:
        """What each site serves now."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "sites": [
                {
                    "name": name,
                    "listen": site.config.listen,
                    "http_listen": site.config.http_listen,
                    "serial": site.loaded.serial if site.loaded else None,
                    "not_after": site.loaded.not_after if site.loaded else None,
                    "certificate": site.loaded.certificate if site.loaded else None,
                }
                for name, site in self.sites.items()
            ],
        }

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            try:
                request = json.loads(line or b"{}")
            except json.JSONDecodeError:
                request = {}
            op = request.get("op") if isinstance(request, dict) else None
            if op == "reload":
                reply = self.reload()
            elif op == "status":
                reply = self.status()
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop every server and command; idempotent."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.sshd is not None:
            await self.sshd.stop()
        for site in self.sites.values():
            site.stop()
        if self.aia is not None:
            self.aia.stop()
        for sock in self.reserved.values():
            sock.close()
        self.reserved.clear()


def _tags(sc: Scenario) -> list[str]:
    """Tags of a scenario's endpoint: the runbooks select by ``certbot``/``nginx``."""
    if not sc.listening:
        return ["drill"]
    if sc.mtls:
        return ["drill", "mtls", "nginx"]
    return ["drill", "web", "nginx", "certbot"]


# ---------------------------------------------------------------------- process entry


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the parent dies (belt and braces with the stdin EOF watch)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


async def serve(directory: Path, *, keep: bool, t0: float) -> int:
    """Run the lab until told to stop; remove ``directory`` afterwards unless ``keep``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason: list[str] = []

    def request_stop(why: str) -> None:
        reason.append(why)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, request_stop, signal.Signals(sig).name)
    # The parent holds our stdin open; EOF means it is gone (even if it was SIGKILLed).
    stdin_fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if stdin_fd >= 0 and not os.isatty(stdin_fd):
        os.set_blocking(stdin_fd, False)

        def on_stdin() -> None:
            try:
                data = os.read(stdin_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(stdin_fd)
                request_stop("parent gone (stdin closed)")

        loop.add_reader(stdin_fd, on_stdin)
    lab = Lab(directory)
    try:
        info = await lab.start(t0=t0)
        sys.stdout.write(json.dumps(asdict(info)) + "\n")
        sys.stdout.flush()
        print(f"lab ready in {info.started_in:.3f}s: {json.dumps(asdict(info))}", file=sys.stderr)
        await stop.wait()
        print(f"lab stopping: {', '.join(reason)}", file=sys.stderr)
        return 0
    finally:
        await lab.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m certpager.demo.lab --dir DIR [--keep]``."""
    t0 = time.monotonic()
    parser = argparse.ArgumentParser(prog="certpager.demo.lab", description="run the fire-drill lab")
    parser.add_argument("--dir", required=True, type=Path, help="lab directory (created if missing)")
    parser.add_argument("--keep", action="store_true", help="do not remove the directory on exit")
    args = parser.parse_args(argv)
    _die_with_parent()
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(serve(args.dir, keep=args.keep, t0=t0))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
