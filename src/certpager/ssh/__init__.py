"""Command execution on runbook targets: the :class:`CommandRunner` protocol and its runners.

- :class:`AsyncsshRunner`: over SSH, host keys always verified against known_hosts.
- :class:`LocalRunner`: on this machine (an SSH target of ``local``).
- :class:`FakeRunner`: in memory, for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable

from certpager.config import SSHTarget
from certpager.ssh.asyncssh_runner import AsyncsshRunner
from certpager.ssh.base import (
    CommandResult,
    CommandRunner,
    ConnectionInfo,
    OutputCallback,
    RemoteState,
    describe_exit,
    guarded_command,
)
from certpager.ssh.fake import FakeResponse, FakeRunner
from certpager.ssh.local import LocalRunner

RunnerFactory = Callable[[SSHTarget], CommandRunner]
"""Builds the runner for an endpoint's SSH target (inject a fake in tests)."""


def runner_for(target: SSHTarget) -> CommandRunner:
    """The real runner for ``target``: :class:`LocalRunner` for ``local``, else asyncssh."""
    if target.is_local:
        return LocalRunner()
    return AsyncsshRunner(target)


__all__ = [
    "AsyncsshRunner",
    "CommandResult",
    "CommandRunner",
    "ConnectionInfo",
    "FakeResponse",
    "FakeRunner",
    "LocalRunner",
    "OutputCallback",
    "RemoteState",
    "RunnerFactory",
    "describe_exit",
    "guarded_command",
    "runner_for",
]
