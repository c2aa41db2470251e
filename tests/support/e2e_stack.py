"""The real "2 AM" stack on loopback: nginx + sshd (+ pebble + certbot).

How it is set up:

- nginx runs with its own prefix (``-p``), ``daemon off`` (the harness owns the
  master PID), a ``pid`` directive, every temp path under the prefix, and
  ``user root`` (pytest's temp dirs are 0700, so www-data workers could not read
  the HTTP-01 webroot). It serves ``app.test`` over TLS from an include file
  (``tls-app.conf``) and the ACME webroot over plain HTTP.
- The incident: the served certificate expires in 2 days. With pebble, it is
  the *current* certificate of a real certbot lineage (issued by pebble first,
  then the lineage's files replaced by a 2-day certificate from a "Legacy
  Internal CA"), so ``certbot renew --force-renewal --cert-name app.test`` works
  against pebble exactly as it would against Let's Encrypt.
- certbot runs with explicit ``--config-dir/--work-dir/--logs-dir`` and
  ``REQUESTS_CA_BUNDLE`` pointing at pebble's listener CA (the machine exports
  a global one; over SSH the environment is clean, so the runbook's
  ``ca_bundle`` parameter sets it).

Everything is stopped by PID in :meth:`E2EStack.stop`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shlex
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.support.cli import isolated_env
from tests.support.pebble import Pebble, key_pem, make_ca, make_leaf, pem
from tests.support.sshd import Sshd, require_binary

from certpager.formats import format_serial
from certpager.lab import nginx, process
from certpager.lab.ports import free_ports

DOMAIN = "app.test"
NGINX = "/usr/sbin/nginx"
NGINX_HINT = "apt-get install -y nginx"
CERTBOT_HINT = "apt-get install -y certbot"


@dataclass(frozen=True)
class Served:
    """The leaf nginx serves right now."""

    serial: str
    """Upper-case hex."""
    sha256: str
    """Lower-case hex of the DER."""
    not_after: dt.datetime
    """Expiry (UTC)."""
    issuer: str
    """Issuer DN."""


def served_leaf(port: int, sni: str = DOMAIN, timeout: float = 10.0) -> Served:
    """One fresh handshake (no verification): the leaf served for ``sni``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return Served(
        serial=format_serial(cert.serial_number),
        sha256=hashlib.sha256(der).hexdigest(),
        not_after=cert.not_valid_after_utc,
        issuer=cert.issuer.rfc4514_string(),
    )


def file_leaf(path: Path) -> Served:
    """The first certificate of a PEM file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    return Served(
        format_serial(cert.serial_number),
        hashlib.sha256(der).hexdigest(),
        cert.not_valid_after_utc,
        cert.issuer.rfc4514_string(),
    )


@dataclass
class E2EStack(process.Started):
    """nginx + sshd (+ pebble + a certbot lineage) in one temp dir."""

    workdir: Path
    """Everything lives here."""
    with_pebble: bool = True
    """Start pebble and create a certbot lineage."""
    sshd: Sshd | None = None
    """The SSH target (root@127.0.0.1)."""
    pebble: Pebble | None = None
    """The ACME CA."""
    https_port: int = 0
    """nginx TLS port for app.test."""
    http_port: int = 0
    """nginx plain HTTP port (HTTP-01 webroot)."""
    nginx_proc: subprocess.Popen[bytes] | None = None
    """The nginx master."""
    legacy_ca: Any = None
    """``(cert, key)`` of the Legacy Internal CA."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per setup phase."""

    # ---------------------------------------------------------------- paths

    @property
    def nginx_prefix(self) -> Path:
        """nginx's prefix directory."""
        return self.workdir / "nginx"

    @property
    def webroot(self) -> Path:
        """ACME HTTP-01 webroot."""
        return self.workdir / "webroot"

    @property
    def certbot_dir(self) -> Path:
        """certbot's config/work/logs parent."""
        return self.workdir / "certbot"

    @property
    def live(self) -> Path:
        """``live/app.test`` of the lineage."""
        return self.certbot_dir / "config" / "live" / DOMAIN

    @property
    def legacy_ca_file(self) -> Path:
        """PEM of the Legacy Internal CA."""
        return self.nginx_prefix / "ssl" / "legacy-ca.pem"

    def nginx_words(self) -> list[str]:
        """``-p PREFIX/ -c nginx.conf -e logs/error.log``."""
        return nginx.prefix_args(self.nginx_prefix)

    def nginx_test_command(self) -> str:
        """The nginx test for this prefix, as a command line."""
        return shlex.join([NGINX, "-t", *self.nginx_words()])

    def nginx_reload_command(self) -> str:
        """The nginx reload for this prefix (no systemd here), as a command line."""
        return shlex.join([NGINX, "-s", "reload", *self.nginx_words()])

    def certbot_dirs_args(self) -> str:
        """``--config-dir ... --work-dir ... --logs-dir ...`` as a command line."""
        c = self.certbot_dir
        return shlex.join(
            ["--config-dir", str(c / "config"), "--work-dir", str(c / "work"), "--logs-dir", str(c / "logs")]
        )

    # ---------------------------------------------------------------- nginx

    def _nginx(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [NGINX, *args, *self.nginx_words()], capture_output=True, text=True, timeout=30
        )
        if check and result.returncode != 0:
            raise AssertionError(f"nginx {' '.join(args)} failed: {result.stderr}")
        return result

    def point_tls(self, chain: Path, key: Path) -> None:
        """Rewrite the include file nginx reads its certificate from (no reload)."""
        (self.nginx_prefix / "tls-app.conf").write_text(
            f"ssl_certificate {chain};\nssl_certificate_key {key};\n"
        )

    def reload_nginx(self, expect_sha256: str | None = None, timeout: float = 30.0) -> None:
        """Test, SIGHUP the master, and (optionally) wait until the new leaf is served."""
        self._nginx("-t", "-q")
        assert self.nginx_proc is not None
        os.kill(self.nginx_proc.pid, signal.SIGHUP)
        if expect_sha256:
            self.wait_served(expect_sha256, timeout)

    def wait_served(self, sha256: str, timeout: float = 30.0, in_a_row: int = 3) -> Served:
        """Poll handshakes until the leaf with ``sha256`` is served on ``in_a_row`` handshakes
        in a row (a reload is asynchronous, and old workers keep accepting for a moment: one
        handshake on a new worker proves nothing)."""
        end = time.monotonic() + timeout
        last: Served | None = None
        seen = 0
        while time.monotonic() < end:
            try:
                last = served_leaf(self.https_port)
                seen = seen + 1 if last.sha256 == sha256 else 0
                if seen >= in_a_row:
                    return last
            except OSError:
                seen = 0
            time.sleep(0.1)
        raise AssertionError(f"nginx still serves {last} instead of sha256 {sha256}")

    def served(self) -> Served:
        """The leaf served now."""
        return served_leaf(self.https_port)

    def _write_nginx_conf(self) -> None:
        temp = nginx.TEMP_PATHS
        (self.nginx_prefix / "nginx.conf").write_text(
            f"""user root;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log logs/access.log;
  {temp}
  server {{
    listen 127.0.0.1:{self.http_port};
    server_name {DOMAIN};
    location /.well-known/acme-challenge/ {{ root {self.webroot}; default_type text/plain; }}
    location / {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:{self.https_port} ssl;
    server_name {DOMAIN};
    ssl_session_tickets off;
    include tls-app.conf;
    location / {{ default_type text/plain; return 200 "{DOMAIN} ok\\n"; }}
  }}
}}
"""
        )

    def issue_legacy(self, days: float, name: str) -> tuple[Path, Path, x509.Certificate]:
        """A leaf for app.test from the Legacy Internal CA: ``(fullchain, key, cert)`` files."""
        cert, key = make_leaf(self.legacy_ca, [DOMAIN], days=days)
        ssl_dir = self.nginx_prefix / "ssl"
        chain = ssl_dir / f"{name}.pem"
        key_file = ssl_dir / f"{name}.key"
        chain.write_bytes(pem(cert) + pem(self.legacy_ca[0]))
        key_file.write_bytes(key_pem(key))
        return chain, key_file, cert

    def _start_nginx(self) -> None:
        require_binary(NGINX, NGINX_HINT)
        for sub in ("logs", "tmp", "ssl"):
            (self.nginx_prefix / sub).mkdir(parents=True, exist_ok=True)
        self.webroot.mkdir(parents=True, exist_ok=True)
        self.legacy_ca = make_ca("Legacy Internal CA", days=60)
        self.legacy_ca_file.write_bytes(pem(self.legacy_ca[0]))
        chain, key, _ = self.issue_legacy(2, "old")
        self.point_tls(chain, key)
        for attempt in range(3):
            self.https_port, self.http_port = free_ports(2)
            self._write_nginx_conf()
            try:
                self.nginx_proc = nginx.start(
                    NGINX, self.nginx_prefix, [self.https_port, self.http_port], timeout=20
                )
                return
            except nginx.NginxError as exc:
                if attempt == 2:
                    pytest.fail(f"nginx did not start: {exc}\n{self.nginx_log()}", pytrace=False)

    def nginx_log(self) -> str:
        """nginx's error log."""
        path = self.nginx_prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _stop_nginx(self) -> None:
        proc, self.nginx_proc = self.nginx_proc, None
        process.stop(proc, 5)

    # ---------------------------------------------------------------- certbot

    def certbot_env(self) -> dict[str, str]:
        """certbot's environment: trust pebble's listener (override the machine's global bundle)."""
        assert self.pebble is not None
        return {**os.environ, "REQUESTS_CA_BUNDLE": str(self.pebble.listener_ca)}

    def certbot(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run certbot locally with this stack's directories (setup only; runs go through certpager)."""
        require_binary("/usr/bin/certbot", CERTBOT_HINT)
        argv = ["/usr/bin/certbot", *args, *shlex.split(self.certbot_dirs_args())]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.certbot_env())
        if result.returncode != 0:
            raise AssertionError(f"certbot {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def _make_lineage(self) -> None:
        """Issue from pebble, then make the lineage's current certificate the 2-day legacy one."""
        assert self.pebble is not None
        self.certbot(
            "certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
            "--server", self.pebble.directory, "--webroot", "-w", str(self.webroot),
            "-d", DOMAIN, "--cert-name", DOMAIN,
        )  # fmt: skip
        archive = self.certbot_dir / "config" / "archive" / DOMAIN
        cert, key = make_leaf(self.legacy_ca, [DOMAIN], days=2)
        (archive / "cert1.pem").write_bytes(pem(cert))
        (archive / "chain1.pem").write_bytes(pem(self.legacy_ca[0]))
        (archive / "fullchain1.pem").write_bytes(pem(cert) + pem(self.legacy_ca[0]))
        (archive / "privkey1.pem").write_bytes(key_pem(key))
        self.point_tls(self.live / "fullchain.pem", self.live / "privkey.pem")
        self.reload_nginx(expect_sha256=file_leaf(self.live / "cert.pem").sha256)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> E2EStack:
        """Start nginx, pebble (+ the lineage) and sshd."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        self._start_nginx()
        self.timings["nginx"] = time.monotonic() - t
        if self.with_pebble:
            t = time.monotonic()
            self.pebble = Pebble(self.workdir / "pebble", http_port=self.http_port).start()
            self.timings["pebble"] = time.monotonic() - t
            t = time.monotonic()
            self._make_lineage()
            self.timings["certbot lineage"] = time.monotonic() - t
        t = time.monotonic()
        self.sshd = Sshd(self.workdir / "ssh").start()
        self.timings["sshd"] = time.monotonic() - t
        return self

    def stop(self) -> None:
        """Stop every process started, by PID."""
        if self.sshd is not None:
            self.sshd.stop()
        if self.pebble is not None:
            self.pebble.stop()
        self._stop_nginx()

    # ---------------------------------------------------------------- certpager

    def endpoint_config(
        self, *, name: str = "app", params: dict[str, str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """An endpoint entry for this stack (SSH target pinned to the test sshd)."""
        assert self.sshd is not None
        ca_file = self.pebble.root if self.pebble is not None else self.legacy_ca_file
        entry: dict[str, Any] = {
            "name": name,
            "host": "127.0.0.1",
            "port": self.https_port,
            "sni": DOMAIN,
            "ca_file": str(ca_file),
            "tags": ["certbot", "nginx"],
            "ssh": {
                "host": "127.0.0.1",
                "port": self.sshd.port,
                "user": "root",
                "known_hosts": str(self.sshd.known_hosts),
                "identity_files": [str(self.sshd.client_key)],
            },
            "params": {"nginx_test": self.nginx_test_command(), **(params or {})},
        }
        if self.pebble is not None:
            entry["stored"] = {"path": str(self.live / "cert.pem")}
            entry["params"].update(
                certbot_args=self.certbot_dirs_args(), ca_bundle=str(self.pebble.listener_ca)
            )
        entry.update(extra)
        return entry

    def write_config(self, path: Path, *endpoints: dict[str, Any]) -> Path:
        """Write an endpoints.yaml with ``endpoints`` (default: :meth:`endpoint_config`)."""
        data = {"endpoints": list(endpoints) or [self.endpoint_config()]}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def cli_env(self, home: Path) -> dict[str, str]:
        """Environment for a ``certpager`` subprocess: private HOME/XDG dirs, no agent."""
        return isolated_env(home)
