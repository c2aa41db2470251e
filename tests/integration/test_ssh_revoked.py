"""A host key marked ``@revoked`` in known_hosts is reported as revoked (naming the file and
line), never as "unknown, add it": against a real OpenSSH sshd on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.sshd import Sshd

from certpager.errors import HostKeyError
from certpager.ssh import AsyncsshRunner

pytestmark = pytest.mark.sshd


def _revoked_line(sshd: Sshd, hosts: str) -> str:
    key = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    return f"@revoked {hosts} {' '.join(key)}\n"


@pytest.mark.parametrize(
    ("before", "hosts"),
    [
        pytest.param("", "[127.0.0.1]:{port}", id="only-line"),
        pytest.param("# comment\n\n", "*", id="wildcard-after-comments"),
        pytest.param("trusted", "[127.0.0.1]:{port}", id="also-trusted"),
    ],
)
async def test_revoked_host_key_is_reported_revoked(
    sshd: Sshd, tmp_path: Path, before: str, hosts: str
) -> None:
    kh = tmp_path / "known_hosts"
    head = sshd.known_hosts_line() if before == "trusted" else before
    kh.write_text(head + _revoked_line(sshd, hosts.format(port=sshd.port)))
    line = len(head.splitlines()) + 1
    with pytest.raises(HostKeyError) as info:
        await AsyncsshRunner(sshd.target(known_hosts=str(kh)), ssh_config=[]).connect()
    text = str(info.value)
    assert f"is REVOKED in {kh}:{line}" in text, text
    assert "do not connect" in text
    assert "not known" not in text and "add" not in text.lower().split("revoked")[0]
    assert "ssh-keygen -R" not in text  # never the advice to replace the entry
    assert info.value.fingerprint == sshd.host_fingerprint
    assert "Accepted publickey" not in sshd.log.read_text()
