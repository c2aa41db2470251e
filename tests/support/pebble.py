"""Debian's pebble (an ACME CA) and pebble-challtestsrv (as its DNS server) on loopback.

The package ships no listener
certificates, so a throwaway CA and a ``localhost``/``127.0.0.1`` certificate
are made here; ``PEBBLE_VA_NOSLEEP=1`` (no random 0-15 s validation sleep),
``PEBBLE_WFE_NONCEREJECT=0`` (no injected badNonce) and ``PEBBLE_AUTHZREUSE=0``
(every order really does HTTP-01). challtestsrv answers every A query with
127.0.0.1, so pebble's validator fetches ``http://app.test:HTTP_PORT/...`` from
the test's nginx. The roots are regenerated on every start and fetched from the
management API. Stopped by PID.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support.sshd import require_binary, wait_port

from certpager.lab import certs, process
from certpager.lab.ports import free_port

INSTALL_HINT = "apt-get install -y pebble certbot (Debian's pebble ships pebble-challtestsrv too)"


def make_ca(cn: str, days: int = 30) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed EC CA certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = certs.build_cert(
        subject=certs.name(cn),
        key=key,
        issuer=None,
        not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=days),
        ca=True,
    )
    return cert, key


def make_leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[str],
    *,
    days: float,
    ips: list[str] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serverAuth leaf for ``names`` issued by ``ca``, valid for ``days`` from now."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = certs.build_cert(
        subject=certs.name(names[0]),
        key=key,
        issuer=(ca_cert.subject, ca_key),
        not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=days),
        sans=certs.general_names([*(f"DNS:{n}" for n in names), *(ips or [])]),
        key_usage=False,
        subject_key_id=False,
    )
    return cert, key


pem = certs.cert_pem
key_pem = certs.key_pem


@dataclass
class Pebble:
    """A private pebble ACME CA plus challtestsrv as its DNS server."""

    workdir: Path
    """Its directory (listener certs, config, logs, fetched root)."""
    http_port: int
    """Port pebble's validator fetches HTTP-01 challenges from (the test's nginx)."""
    validity: int = 90 * 86400
    """Validity in seconds of every certificate it issues."""
    acme_port: int = 0
    """ACME API port."""
    mgmt_port: int = 0
    """Management API port (roots)."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """Processes started (challtestsrv, pebble)."""

    @property
    def directory(self) -> str:
        """ACME directory URL."""
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def listener_ca(self) -> Path:
        """CA of pebble's own HTTPS listeners (what certbot must trust: REQUESTS_CA_BUNDLE)."""
        return self.workdir / "minica.pem"

    @property
    def root(self) -> Path:
        """The root that signs issued certificates (fetched after start)."""
        return self.workdir / "root.pem"

    def _spawn(self, argv: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = process.spawn(argv, log=self.workdir / log, env=env)
        self.procs.append(proc)
        return proc

    def start(self) -> Pebble:
        """Start challtestsrv and pebble, wait for their ports, fetch the root."""
        pebble = require_binary("/usr/bin/pebble", INSTALL_HINT)
        cts = require_binary("/usr/bin/pebble-challtestsrv", INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = make_ca("certpager pebble listener CA", days=7)
        leaf, key = make_leaf(ca, ["localhost"], days=7, ips=["127.0.0.1", "::1"])
        self.listener_ca.write_bytes(pem(ca[0]))
        (self.workdir / "cert.pem").write_bytes(pem(leaf))
        (self.workdir / "key.pem").write_bytes(key_pem(key))
        self.acme_port, self.mgmt_port = free_port(), free_port()
        dns_port, cts_port, tlsalpn = free_port(), free_port(), free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                "certificate": str(self.workdir / "cert.pem"),
                "privateKey": str(self.workdir / "key.pem"),
                "httpPort": self.http_port,
                "tlsPort": tlsalpn,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": self.validity,
            }
        }
        (self.workdir / "config.json").write_text(json.dumps(config))
        proc = self._spawn(
            [cts, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{cts_port}"],
            "challtestsrv.log",
        )  # fmt: skip
        if not wait_port(cts_port, proc):
            raise AssertionError(f"pebble-challtestsrv did not start: {self.log('challtestsrv.log')}")
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
        }
        proc = self._spawn(
            [
                pebble,
                "-config",
                str(self.workdir / "config.json"),
                "-strict=false",
                "-dnsserver",
                f"127.0.0.1:{dns_port}",
            ],
            "pebble.log",
            env,
        )
        if not (wait_port(self.acme_port, proc) and wait_port(self.mgmt_port, proc)):
            raise AssertionError(f"pebble did not start: {self.log('pebble.log')}")
        context = ssl.create_default_context(cafile=str(self.listener_ca))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        with opener.open(f"https://127.0.0.1:{self.mgmt_port}/roots/0", timeout=20) as response:
            self.root.write_bytes(response.read())
        return self

    def log(self, name: str = "pebble.log") -> str:
        """A log file's text."""
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop everything started, by PID."""
        procs, self.procs = self.procs, []
        process.stop_all(procs, 5)
