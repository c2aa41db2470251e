"""certpager.lab: the one free-port and process start/stop helper the demo, tests and bench share."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from certpager.lab import process
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
