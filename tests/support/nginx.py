"""Debian's nginx as a test fixture: N TLS server blocks on random loopback ports.

Runs this way (proved on Debian): its own
prefix in a temp dir (``-p``), its own config (``-c``), the pre-config error log
moved there (``-e``), ``daemon off`` so the harness owns the master PID, a ``pid``
directive, and every ``*_temp_path`` under the prefix (the compiled-in defaults
point at /var/lib/nginx). Stopped by PID: SIGTERM to the master, then SIGKILL
after a grace period, always reaped.

A missing binary fails the test loudly: it is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from certpager.lab import nginx, process
from certpager.lab.nginx import INSTALL_HINT
from certpager.lab.ports import free_ports


def nginx_binary() -> str:
    """Path of Debian's nginx, or fail the test saying how to install it."""
    found = nginx.find_nginx()
    if found is None:
        pytest.fail(f"nginx is not installed: {INSTALL_HINT}", pytrace=False)
    return found


@dataclass
class Site:
    """One TLS server block."""

    name: str
    """Label (also the include file name)."""
    chain_file: Path
    """``ssl_certificate``: the chain exactly as it will be sent."""
    key_file: Path
    """``ssl_certificate_key``."""
    server_name: str = "_"
    """``server_name``."""
    protocols: str = "TLSv1.2 TLSv1.3"
    """``ssl_protocols``."""
    default_server: bool = False
    """Mark the block ``default_server`` on its port."""
    port: int = 0
    """Listening port; 0 picks a free one at start."""
    extra: str = ""
    """More directives inside the server block."""


@dataclass
class Nginx(process.Started):
    """A private nginx master with one server block per :class:`Site`."""

    prefix: Path
    """Its prefix directory (config, logs, pid, temp paths)."""
    sites: list[Site] = field(default_factory=list)
    """The server blocks."""
    host: str = "127.0.0.1"
    """Loopback address every block listens on."""
    proc: subprocess.Popen[bytes] | None = None
    """The master process (``daemon off``)."""

    @property
    def conf(self) -> Path:
        """``nginx.conf`` under the prefix."""
        return self.prefix / "nginx.conf"

    @property
    def pid(self) -> int:
        """PID of the master."""
        assert self.proc is not None
        return self.proc.pid

    def site(self, name: str) -> Site:
        """The site called ``name``."""
        return next(s for s in self.sites if s.name == name)

    def port(self, name: str) -> int:
        """Port of the site called ``name``."""
        return self.site(name).port

    def _args(self) -> list[str]:
        return [nginx_binary(), *nginx.prefix_args(self.prefix)]

    def write_config(self) -> None:
        """Write ``nginx.conf`` for the current sites (ports chosen if unset)."""
        for sub in ("logs", "tmp", "conf.d"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        unset = [site for site in self.sites if not site.port]
        for site, port in zip(unset, free_ports(len(unset), self.host), strict=True):
            site.port = port  # distinct: chosen together
        blocks = []
        for site in self.sites:
            default = " default_server" if site.default_server else ""
            blocks.append(
                f"""
    server {{
        listen {self.host}:{site.port} ssl{default};
        server_name {site.server_name};
        ssl_certificate {site.chain_file};
        ssl_certificate_key {site.key_file};
        ssl_protocols {site.protocols};
        ssl_session_tickets off;
        {site.extra}
        location / {{ return 200 "{site.name}\\n"; }}
    }}"""
            )
        temp = f"    {nginx.TEMP_PATHS}"
        self.conf.write_text(
            f"""worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log logs/access.log;
{temp}
{"".join(blocks)}
}}
"""
        )

    def test_config(self) -> None:
        """``nginx -t``: fail the test with nginx's own words when the config is bad."""
        try:
            nginx.check_config(nginx_binary(), self.prefix)
        except nginx.NginxError as exc:
            pytest.fail(f"{exc}\n{self.conf.read_text()}", pytrace=False)

    def start(self, timeout: float = 10.0) -> Nginx:
        """Write the config, check it, start the master and wait for every port."""
        for attempt in range(3):
            self.write_config()
            self.test_config()
            ports = [s.port for s in self.sites]
            try:
                self.proc = nginx.start(nginx_binary(), self.prefix, ports, host=self.host, timeout=timeout)
                return self
            except nginx.NginxError:
                pass  # most likely a port taken between picking and binding (other jobs share the machine)
            for site in self.sites:
                site.port = 0
            if attempt == 2:
                break
        pytest.fail(f"nginx did not start:\n{self.error_log()}", pytrace=False)

    def reload(self) -> None:
        """Rewrite the config, check it, and SIGHUP the master (reload is asynchronous:
        poll the handshake for the change)."""
        self.write_config()
        self.test_config()
        os.kill(self.pid, signal.SIGHUP)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the master (it stops its workers), SIGKILL after ``grace``; reap it."""
        proc, self.proc = self.proc, None
        process.stop(proc, grace)

    def error_log(self) -> str:
        """The error log and the master's stderr, for failure messages."""
        out = []
        for name in ("error.log", "stderr.log"):
            path = self.prefix / "logs" / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')}")
        return "\n".join(out)

    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self.proc is not None
