"""The benchmark's server side: N certificates and one nginx with N TLS server blocks.

Everything lives under one temporary prefix directory; nginx runs in the
foreground (``daemon off``) so its master PID is ours, and :class:`NginxStack`
stops the master and any worker it spawned by PID.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certpager.lab import certs, nginx, process

NGINX = nginx.find_nginx() or "/usr/sbin/nginx"

#: All leaves share this notBefore so that their lifetimes differ only by notAfter.
NOT_BEFORE_DAYS_AGO = 60


@dataclass(frozen=True)
class Leaf:
    """One endpoint's certificate and where it is served."""

    index: int
    """0-based endpoint number."""
    name: str
    """DNS name in the SAN (and the SNI the clients send)."""
    port: int
    """Loopback port nginx serves it on."""
    not_after: dt.datetime
    """notAfter written into the certificate (whole seconds, UTC)."""
    cert_path: Path
    """leaf + intermediate PEM (what nginx serves)."""
    key_path: Path
    """PEM private key."""

    @property
    def target(self) -> str:
        """``certpager check`` target form: IP (no DNS), port, SNI."""
        return f"127.0.0.1:{self.port}@{self.name}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return certs.key_pem(key)


def _ca(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    path_len: int | None,
) -> x509.Certificate:
    return certs.build_cert(
        subject=certs.name(subject),
        key=key,
        issuer=None if issuer is None else (issuer, issuer_key),
        not_before=now - dt.timedelta(days=365),
        not_after=now + dt.timedelta(days=3650),
        ca=True,
        path_length=path_len,
        authority_key_id=False,
    )


def expected_not_after(index: int, now: dt.datetime) -> dt.datetime:
    """The distinct notAfter of leaf ``index``: from 5 days ago onwards, one hour
    and a few seconds apart, so that the set spans expired, page, critical,
    warning and ok endpoints and no two share a date."""
    base = now.replace(microsecond=0) - dt.timedelta(days=5)
    return base + dt.timedelta(hours=index, seconds=(index * 7) % 60)


def make_certs(
    directory: Path, ports: list[int], *, shared_key: bool = False, now: dt.datetime | None = None
) -> tuple[Path, list[Leaf]]:
    """Write a root, an intermediate and one leaf per port into ``directory``.

    All keys are EC P-256. With ``shared_key`` every leaf uses one key (faster
    to generate and to load); otherwise each leaf has its own.

    Returns:
        The root CA file (what ``--ca-file`` gets) and the leaves.
    """
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca("certpager bench root", root_key, None, root_key, now, None)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca("certpager bench intermediate", inter_key, root.subject, root_key, now, 0)
    root_path = directory / "root.pem"
    root_path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    inter_pem = inter.public_bytes(serialization.Encoding.PEM)
    not_before = now.replace(microsecond=0) - dt.timedelta(days=NOT_BEFORE_DAYS_AGO)

    common_key = ec.generate_private_key(ec.SECP256R1()) if shared_key else None
    common_key_path = directory / "leaf-shared.key"
    if common_key is not None:
        common_key_path.write_bytes(_pem_key(common_key))

    leaves: list[Leaf] = []
    for i, port in enumerate(ports):
        name = f"ep{i:05d}.bench.test"
        key = common_key or ec.generate_private_key(ec.SECP256R1())
        not_after = expected_not_after(i, now)
        cert = certs.build_cert(
            subject=certs.name(name),
            key=key,
            issuer=(inter.subject, inter_key),
            not_before=not_before,
            not_after=not_after,
            sans=[x509.DNSName(name)],
            key_usage=False,
            subject_key_id=False,
        )
        cert_path = directory / f"ep{i:05d}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + inter_pem)
        if common_key is None:
            key_path = directory / f"ep{i:05d}.key"
            key_path.write_bytes(_pem_key(key))
        else:
            key_path = common_key_path
        leaves.append(Leaf(i, name, port, not_after, cert_path, key_path))
    return root_path, leaves


def nginx_conf(prefix: Path, leaves: list[Leaf], workers: int) -> str:
    """The nginx configuration: one ``server`` per leaf on its own port."""
    connections = max(1024, 4 * len(leaves))
    lines = [
        "daemon off;",
        f"worker_processes {workers};",
        f"worker_rlimit_nofile {connections * 2 + len(leaves) + 64};",
        "pid nginx.pid;",
        "error_log logs/error.log warn;",
        f"events {{ worker_connections {connections}; }}",
        "http {",
        "    access_log off;",
        f"    {nginx.TEMP_PATHS}",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache off;",
        "    ssl_session_tickets off;",
    ]
    for leaf in leaves:
        lines.append(
            f"    server {{ listen 127.0.0.1:{leaf.port} ssl; server_name {leaf.name}; "
            f"ssl_certificate {leaf.cert_path}; ssl_certificate_key {leaf.key_path}; "
            'return 200 "ok\\n"; }'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (via /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) comes after the ")" that closes the command name.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _is_nginx(pid: int) -> bool:
    try:
        return b"nginx" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class NginxStack(process.Started):
    """nginx serving ``leaves`` from ``prefix``; a context manager that always stops it."""

    def __init__(self, prefix: Path, leaves: list[Leaf], *, workers: int = 2):
        self.prefix = prefix
        self.leaves = leaves
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_pids: list[int] = []

    def start(self, ready_timeout: float = 30.0) -> None:
        """Write the config, test it, start nginx and wait until every port accepts."""
        for sub in ("logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_conf(self.prefix, self.leaves, self.workers))
        (self.prefix / "logs" / "stdout.log").unlink(missing_ok=True)
        deadline = time.monotonic() + ready_timeout
        # Own session: a Ctrl-C in the terminal reaches us, and we stop nginx ourselves.
        # nginx.NginxError is a RuntimeError: run.py reports it like before.
        self.proc = nginx.start(
            NGINX,
            self.prefix,
            [leaf.port for leaf in self.leaves],
            timeout=ready_timeout,
            daemon_off=False,  # the config says so
            log_name="stdout.log",
            new_session=True,
            config_timeout=120,
        )
        # The listening sockets accept before the workers exist: wait for them too.
        while True:
            self.worker_pids = [p for p in _children(self.proc.pid) if _is_nginx(p)]
            if len(self.worker_pids) >= self.workers:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx workers did not start: {self.error_log_tail()}")
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise when the master or a worker has gone (the machine is shared)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"nginx master exited: {self.error_log_tail()}")
        gone = [p for p in self.worker_pids if not _is_nginx(p)]
        if gone:
            raise RuntimeError(f"nginx workers {gone} exited: {self.error_log_tail()}")

    def error_log_tail(self, lines: int = 5) -> str:
        """The last lines of nginx's error log."""
        return nginx.error_log_tail(self.prefix, lines)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the master, SIGKILL after ``grace``; then any worker left over."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        workers = sorted(set(self.worker_pids) | set(_children(proc.pid)))
        process.stop(proc, grace)
        # Workers are reparented if the master died hard: end only those we saw.
        for pid in workers:
            if _is_nginx(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
