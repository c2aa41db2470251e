"""Start a private nginx master on loopback (the one launcher the tests and the bench share).

It runs with its own prefix (``-p``), its own config (``-c nginx.conf``), the
pre-config error log moved there (``-e logs/error.log``), in the foreground so the
caller owns the master PID (stop it with :func:`certpager.lab.process.stop`). The
caller writes ``nginx.conf``; :data:`TEMP_PATHS` keeps nginx's temp files under
the prefix (the compiled-in defaults point at /var/lib/nginx).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from certpager.errors import NginxError as NginxError
from certpager.lab import process

INSTALL_HINT = "apt-get install -y nginx (Debian's nginx; .ci/run and scripts/test.sh install it)"
"""How to get the binary, for the message when it is missing."""

TEMP_PATHS = " ".join(
    f"{kind}_temp_path tmp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
)
"""``http`` block directives that keep nginx's temp files under the prefix."""


def find_nginx() -> str | None:
    """Path of the nginx binary, or None."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def prefix_args(prefix: Path) -> list[str]:
    """``-p PREFIX/ -c nginx.conf -e logs/error.log``."""
    return ["-p", f"{prefix}/", "-c", "nginx.conf", "-e", "logs/error.log"]


def error_log_tail(prefix: Path, lines: int = 5) -> str:
    """The last lines of the error log, joined with `` | `` ("" when there is none)."""
    try:
        text = (prefix / "logs" / "error.log").read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def check_config(binary: str, prefix: Path, timeout: float = 30.0) -> None:
    """``nginx -t`` on ``PREFIX/nginx.conf``; :class:`NginxError` with nginx's words if it fails."""
    run = subprocess.run(
        [binary, *prefix_args(prefix), "-t", "-q"], capture_output=True, text=True, timeout=timeout
    )
    if run.returncode != 0:
        raise NginxError(f"nginx -t failed: {run.stderr.strip()}")


def start(
    binary: str,
    prefix: Path,
    ports: Sequence[int],
    *,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    daemon_off: bool = True,
    log_name: str = "stderr.log",
    new_session: bool = False,
    config_timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Check ``PREFIX/nginx.conf``, start the master and wait until every port accepts.

    ``daemon_off``: add ``-g "daemon off;"`` (False when the config says so itself).
    The master's own output is appended to ``PREFIX/logs/LOG_NAME``; ``config_timeout``
    bounds ``nginx -t`` (thousands of server blocks take a while). On failure the
    master is stopped and :class:`NginxError` says why (most often a port taken
    between picking and binding: the caller may pick new ports and retry).
    """
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    check_config(binary, prefix, config_timeout)
    argv = [binary, *prefix_args(prefix), *(["-g", "daemon off;"] if daemon_off else [])]
    proc = process.spawn(argv, log=prefix / "logs" / log_name, new_session=new_session)
    if process.wait_ready(proc, process.ports_accepting(ports, host), timeout):
        return proc
    exited = proc.poll()
    pending = [p for p in ports if not process.port_accepts(p, host)] if exited is None else list(ports)
    process.stop(proc)
    if exited is not None:
        raise NginxError(f"nginx exited with {exited}: {error_log_tail(prefix)}")
    raise NginxError(
        f"nginx: {len(pending)} ports not accepting after {timeout:g} s: {error_log_tail(prefix)}"
    )


__all__ = [
    "INSTALL_HINT",
    "TEMP_PATHS",
    "NginxError",
    "check_config",
    "error_log_tail",
    "find_nginx",
    "prefix_args",
    "start",
]
