"""What a running lab exposes (kept free of heavy imports: the demo parent reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONFIG_NAME = "endpoints.yaml"
"""File name of the lab config inside the lab dir."""

LAB_ENV = "CERTPAGER_DRILL_LAB"
"""Environment variable set to the lab dir in every SSH command (marks its processes)."""


@dataclass
class LabInfo:
    """What a running lab exposes; printed as one JSON line when ready."""

    dir: str
    """The lab directory."""
    config: str
    """The lab config file."""
    pid: int
    """PID of the lab process."""
    ssh_port: int
    """The lab SSH host's port on 127.0.0.1."""
    user: str
    """SSH login user."""
    known_hosts: str
    """known_hosts file holding the lab host key."""
    identity_file: str
    """The lab client key."""
    ports: dict[str, list[int]] = field(default_factory=dict)
    """Endpoint name -> ports it listens on (TLS first, then HTTP)."""
    endpoint_ports: dict[str, int] = field(default_factory=dict)
    """Endpoint name -> its TLS port in the config (the unreachable one included)."""
    aia_port: int = 0
    """The AIA (caIssuers) HTTP server's port."""
    control_socket: str = ""
    """Unix socket the stand-ins use."""
    started_in: float = 0.0
    """Seconds from process start to ready (as measured inside the lab process)."""

    @property
    def all_ports(self) -> list[int]:
        """Every port the lab holds (listening or reserved)."""
        out = {p for ports in self.ports.values() for p in ports}
        out.update(self.endpoint_ports.values())
        out.update({self.ssh_port, self.aia_port})
        out.discard(0)
        return sorted(out)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabInfo:
        """Parse the ready line."""
        return cls(**data)
