"""certpager.lab: the one free-port and process start/stop helper the demo, tests and bench share."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certpager.lab import certs, process
from certpager.lab.ports import free_port, free_ports, reserve_port

IGNORES_TERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_reserved_port_refuses_connections_and_cannot_be_taken() -> None:
    with reserve_port() as held:
        port = held.getsockname()[1]
        assert not process.port_accepts(port)
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port))
            except OSError:
                pass
            else:
                raise AssertionError(f"port {port} was taken while reserved")


def test_ports_accepting_waits_for_every_port() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = listening.getsockname()[1]
        assert process.ports_accepting([up])()
        assert not process.ports_accepting([up, free_port()])()


def test_wait_ready_gives_up_when_the_child_exits(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    proc = process.spawn(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"], log=log
    )
    assert process.wait_ready(proc, lambda: False, timeout=600) is False
    assert proc.wait(30) == 3
    assert log.read_text() == "boom\n"


def _says_up(log: Path) -> Callable[[], bool]:
    return lambda: log.read_text() == "up\n"


def test_stop_terminates_then_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    polite = process.spawn(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        log=tmp_path / "polite.log",
    )
    stubborn = process.spawn([sys.executable, "-c", IGNORES_TERM], log=tmp_path / "stubborn.log")
    for proc, name in ((polite, "polite"), (stubborn, "stubborn")):
        assert process.wait_ready(proc, _says_up(tmp_path / f"{name}.log"), 60), name
    assert process.stop(polite) is False
    assert polite.returncode == -signal.SIGTERM
    assert process.stop(stubborn, grace=0.5) is True
    assert stubborn.returncode == -signal.SIGKILL
    assert process.stop(None) is False
    assert process.stop(stubborn) is False  # already reaped: nothing to signal


def test_certificate_factory_root_and_leaf_options() -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = certs.generate_key("rsa2048")
    assert isinstance(root_key, rsa.RSAPrivateKey)
    root = certs.build_cert(
        subject=certs.name("Lab Root", org="certpager"), key=root_key, issuer=None,
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=10), ca=True,
    )  # fmt: skip
    assert root.issuer == root.subject
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = certs.build_cert(
        subject=certs.name("client.test"), key=certs.generate_key(), issuer=(root.subject, root_key),
        not_before=now, not_after=now + dt.timedelta(days=1),
        sans=certs.general_names(["client.test", "127.0.0.1"]), eku=certs.CLIENT,
        aia_ca_issuers="http://127.0.0.1:1/root.der", hash="sha1",
    )  # fmt: skip
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == "sha1"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["client.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    # the issuer's key verifies the hand-made legacy signature (raises if not)
    root_key.public_key().verify(
        leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1()
    )
    bare = certs.build_cert(
        subject=certs.name("bare.test"), key=certs.generate_key(), issuer=(root.subject, root_key),
        not_before=now, not_after=now + dt.timedelta(days=1), key_usage=False, subject_key_id=False,
    )  # fmt: skip
    present = {type(e.value) for e in bare.extensions}
    assert present == {x509.BasicConstraints, x509.AuthorityKeyIdentifier, x509.ExtendedKeyUsage}


def test_spawn_pty_gives_the_child_a_terminal() -> None:
    proc, master = process.spawn_pty(
        [sys.executable, "-c", "import os, sys; print('tty' if os.isatty(1) and os.isatty(0) else 'pipe')"]
    )
    try:
        out = b""
        assert process.wait_ready(None, lambda: proc.poll() is not None, 60)
        with contextlib.suppress(OSError):  # EIO once the child closed the terminal
            while chunk := os.read(master, 4096):
                out += chunk
    finally:
        process.stop(proc)
        os.close(master)
    assert out.strip() == b"tty"
    assert proc.returncode == 0


def test_stop_group_ends_the_whole_session_of_an_asyncio_child(tmp_path: Path) -> None:
    # A shell that ignores TERM with a grandchild in its group: both must go.
    pid_file = tmp_path / "grandchild.pid"
    script = f"trap '' TERM; sleep 600 & echo $! > {pid_file}; wait"

    async def run() -> int | None:
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", script, start_new_session=True)
        assert process.wait_ready(None, lambda: pid_file.exists() and pid_file.read_text().strip() != "", 60)
        await process.stop_group(proc, grace=0.5)
        return proc.returncode

    assert asyncio.run(run()) == -signal.SIGKILL
    grandchild = int(pid_file.read_text())
    assert process.wait_ready(None, lambda: not Path(f"/proc/{grandchild}").exists(), 10), "grandchild left"
