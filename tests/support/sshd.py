"""Debian's OpenSSH sshd as a test fixture, on a random loopback port.

``/run/sshd`` must exist, the
binary is called by absolute path with ``-D -e`` (so the harness owns the
daemon's PID), ``StrictModes no`` (keys live under /tmp), key-only root
login, its own ed25519 host key, and a pinned ``known_hosts`` line (no TOFU).
Stopped by PID (SIGTERM, then SIGKILL), always reaped.

A missing binary fails the test loudly with the package to install.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from certpager.config import SSHTarget
from certpager.lab import process
from certpager.lab.ports import free_port

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "apt-get install -y openssh-server (Debian's OpenSSH server and client)"


def require_binary(path: str, hint: str) -> str:
    """``path`` if executable, else fail the test naming the package to install."""
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: {hint}", pytrace=False)
    return path


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> bool:
    """Wait until 127.0.0.1:``port`` accepts connections (False if ``proc`` died or timeout)."""
    return process.wait_ready(proc, process.ports_accepting([port]), timeout)


def keygen(path: Path, comment: str = "certpager-test") -> Path:
    """Make an ed25519 key pair at ``path`` / ``path.pub``."""
    require_binary("/usr/bin/ssh-keygen", INSTALL_HINT)
    subprocess.run(
        ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        timeout=30,
    )
    return path


def fingerprint(pub: Path) -> str:
    """``SHA256:...`` of a public key file, as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["/usr/bin/ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return out.split()[1]


@dataclass
class Sshd(process.Started):
    """A private sshd accepting key-only root logins on 127.0.0.1."""

    workdir: Path
    """Its directory (config, keys, known_hosts, log)."""
    port: int = 0
    """Listening port."""
    extra_config: str = ""
    """More sshd_config lines."""
    proc: subprocess.Popen[bytes] | None = None
    """The daemon (``-D``: the PID is the daemon's)."""
    _log: Path | None = field(default=None, repr=False)

    @property
    def host_key(self) -> Path:
        """The server's private host key."""
        return self.workdir / "host_ed25519"

    @property
    def client_key(self) -> Path:
        """The client's private key (authorized for root)."""
        return self.workdir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file pinning this server's host key."""
        return self.workdir / "known_hosts"

    @property
    def log(self) -> Path:
        """sshd's log (``-e``: everything on stderr)."""
        return self.workdir / "sshd.log"

    @property
    def host_fingerprint(self) -> str:
        """SHA256 fingerprint of the host key."""
        return fingerprint(self.host_key.with_suffix(".pub"))

    def known_hosts_line(self, pub: Path | None = None) -> str:
        """``[127.0.0.1]:PORT keytype base64`` for ``pub`` (default: the real host key)."""
        key = (pub or self.host_key.with_suffix(".pub")).read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {' '.join(key)}\n"

    def target(self, **changes: object) -> SSHTarget:
        """The SSH target certpager should use for this server."""
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "known_hosts": str(self.known_hosts),
            "identity_files": (str(self.client_key),),
            "connect_timeout": 20.0,
        }
        values.update(changes)
        return SSHTarget(**values)  # type: ignore[arg-type]

    def start(self) -> Sshd:
        """Make keys and config, check it with ``sshd -t``, start the daemon, wait for the port."""
        require_binary(SSHD, INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(
            mode=0o755, exist_ok=True
        )  # sshd refuses to start without its privilege separation dir
        if not self.host_key.exists():
            keygen(self.host_key, "certpager-test-host")
        if not self.client_key.exists():
            keygen(self.client_key, "certpager-test-client")
        (self.workdir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        for attempt in range(3):
            self.port = self.port or free_port()
            self.known_hosts.write_text(self.known_hosts_line())
            config = self.workdir / "sshd_config"
            config.write_text(
                f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.workdir}/sshd.pid
AuthorizedKeysFile {self.workdir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
Subsystem sftp internal-sftp
{self.extra_config}
"""
            )
            check = subprocess.run(
                [SSHD, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30
            )
            if check.returncode != 0:
                pytest.fail(f"sshd -t failed: {check.stderr}", pytrace=False)
            self.proc = process.spawn([SSHD, "-D", "-e", "-f", str(config)], log=self.log)
            if wait_port(self.port, self.proc):
                return self
            self.stop()
            self.port = 0
            if attempt == 2:
                break
        pytest.fail(f"sshd did not start:\n{self.log.read_text(errors='replace')}", pytrace=False)

    def ssh(
        self, command: str, *, timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the OpenSSH client (an independent witness of the target's state)."""
        argv = [
            "/usr/bin/ssh", "-n", "-F", "/dev/null", "-p", str(self.port), "-i", str(self.client_key),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "root@127.0.0.1", command,
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode not in (0, 1):
            raise AssertionError(f"ssh {shlex.quote(command)} failed ({result.returncode}): {result.stderr}")
        return result

    def processes_matching(self, token: str) -> list[str]:
        """``pid args`` of processes on the target whose command line contains ``token``."""
        # The pipeline's own shell and grep carry the token too; they all contain "grep".
        out = self.ssh(f"ps -eo pid=,args= | grep -F -- {shlex.quote(token)} | grep -v -- grep || true")
        return [line for line in out.stdout.splitlines() if line.strip()]

    def session_children(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the daemon)."""
        if self.proc is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the daemon, SIGKILL after ``grace``; reap it."""
        proc, self.proc = self.proc, None
        process.stop(proc, grace)

    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self.proc is not None
