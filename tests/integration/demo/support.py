"""Helpers for the fire-drill lab tests: run the real CLI, handshake, prove cleanup.

Everything here talks to real processes on 127.0.0.1; waits are bounded loops
with generous deadlines, never timed assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509

from certpager.demo.info import LabInfo
from certpager.demo.process import LabProcess

DEADLINE = 30.0
"""Generous upper bound for anything to happen (a loaded 2-core CI box)."""


@contextlib.contextmanager
def running_lab() -> Iterator[tuple[LabProcess, LabInfo]]:
    """A lab child process, stopped (and proven gone) afterwards."""
    lab = LabProcess()
    info = lab.start()
    try:
        yield lab, info
    finally:
        report = lab.stop()
        assert report.dir_removed, f"lab dir {info.dir} left behind"
        assert wait_until(lambda: not pid_alive(info.pid)), f"lab pid {info.pid} still alive"


def certpager(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``certpager`` CLI (this interpreter) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "certpager", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def check_json(config: str, *extra: str) -> dict[str, dict[str, Any]]:
    """``certpager check --config CONFIG --json``, as endpoint name -> report."""
    done = certpager("check", "--config", config, "--json", *extra)
    assert done.returncode in (0, 1, 2), done.stderr
    reports = json.loads(done.stdout)
    return {r["name"]: r for r in reports}


def served_cert(port: int, sni: str, cafile: str) -> x509.Certificate:
    """The leaf a lab site serves now (verified against the lab root, name checked)."""
    ctx = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def served_serial(port: int, sni: str, cafile: str) -> int:
    """Serial of the served leaf."""
    return served_cert(port, sni, cafile).serial_number


def disk_serial(path: str | Path) -> int:
    """Serial of the first certificate in a PEM file."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_listening(port: int) -> bool:
    """Whether something LISTENs on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[1].upper() == want and fields[3] == "0A":  # 0A = LISTEN
                    return True
    return False


def port_bindable(port: int) -> bool:
    """Whether a new listener can take 127.0.0.1:``port`` (SO_REUSEADDR, like any server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
    return True


def wait_until(predicate: Any, deadline: float = DEADLINE, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or the deadline passes (bounded)."""
    end = time.monotonic() + deadline
    while True:
        if predicate():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(interval)


def lab_ports(info: LabInfo) -> list[int]:
    """Every port the lab held."""
    return info.all_ports


def assert_lab_gone(pid: int, ports: list[int], directory: str, extra_pids: tuple[int, ...] = ()) -> None:
    """The lab process (and any listed child) is gone, its ports are free, its dir removed."""
    assert wait_until(lambda: not pid_alive(pid)), f"lab pid {pid} still alive"
    for child in extra_pids:
        assert wait_until(lambda c=child: not pid_alive(c)), f"child pid {child} still alive"
    busy = [p for p in ports if port_listening(p)]
    assert not busy, f"ports still listening: {busy}"
    assert all(port_bindable(p) for p in ports), "a lab port cannot be bound again"
    assert wait_until(lambda: not Path(directory).exists()), f"{directory} still exists"


def signal_name(sig: int) -> str:
    """``SIGTERM`` ... for test ids."""
    return signal.Signals(sig).name


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` (from /proc)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


_REMOTE_SLEEP = """
import asyncio, sys, asyncssh
async def main():
    port, user, key, known, seconds = sys.argv[1:6]
    conn = await asyncssh.connect("127.0.0.1", int(port), username=user, client_keys=[key],
                                  known_hosts=known, config=None)
    await conn.create_process("sleep " + seconds, encoding=None)
    print("started", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


@contextlib.contextmanager
def remote_sleep(ssh_port: int, user: str, key: str, known_hosts: str, lab_dir: str) -> Iterator[int]:
    """Run ``sleep 300`` on the lab's SSH host from a helper client process that stays
    connected; yield the command's PGID (from ``run/commands``). The helper is killed
    (by PID) on exit, after the caller has checked what the lab's cleanup did."""
    commands = Path(lab_dir) / "run" / "commands"
    before = set(os.listdir(commands))
    helper = subprocess.Popen(
        [sys.executable, "-c", _REMOTE_SLEEP, str(ssh_port), user, key, known_hosts, "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        new: set[str] = set()

        def started() -> bool:
            new.update(set(os.listdir(commands)) - before)
            return bool(new)

        assert wait_until(started), "the remote sleep never started"
        yield int(new.pop())
    finally:
        helper.kill()
        helper.wait(DEADLINE)
        if helper.stdout is not None:
            helper.stdout.close()


def demo_ports(config: str) -> list[int]:
    """Every port named in a lab config (TLS, HTTP, SSH) plus its AIA server."""
    import yaml

    doc = yaml.safe_load(Path(config).read_text())
    ports: set[int] = set()
    for ep in doc["endpoints"]:
        ports.add(ep["port"])
        if "http" in ep:
            ports.add(ep["http"]["port"])
        ports.add(ep["ssh"]["port"])
    lab_json = json.loads((Path(config).parent / "lab.json").read_text())
    ports.add(int(lab_json["aia_url"].split(":")[2].split("/")[0]))
    return sorted(ports)
