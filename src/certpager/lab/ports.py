"""Free loopback TCP ports (the one implementation the demo, tests and bench share)."""

from __future__ import annotations

import contextlib
import socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports on ``host`` the kernel says are free right now.

    All sockets are held open until every port is chosen, so the kernel never
    hands the same port out twice; another process may still take one before the
    caller binds it (the caller's server then fails to start and it retries).
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(_family(host), socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` nothing listens on right now (bound, then released)."""
    return free_ports(1, host)[0]


def reserve_port(host: str = "127.0.0.1") -> socket.socket:
    """A bound TCP socket on ``host`` that never listens: connections to it are refused,
    and no other process can take the port while the caller keeps the socket open."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


__all__ = ["free_port", "free_ports", "reserve_port"]
