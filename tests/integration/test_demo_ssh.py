"""The lab's SSH host through certpager's own runner: host key pinned in the lab's
known_hosts, commands in a real shell with the stand-ins first on PATH, streamed
output, exit status, SFTP, cancellation that ends the remote command, and the
"renewed but not reloaded" comparison over SFTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.demo.support import (
    DEADLINE,
    disk_serial,
    group_members,
    running_lab,
    served_serial,
)

from certpager.check.monitor import check_full
from certpager.check.stored import compare_stored
from certpager.config import Config, load_config
from certpager.demo.info import LabInfo
from certpager.errors import SSHError
from certpager.probe.engine import check_endpoint
from certpager.ssh import AsyncsshRunner, RemoteState


@pytest.fixture(scope="module")
def lab() -> Iterator[LabInfo]:
    with running_lab() as (_proc, info):
        yield info


@pytest.fixture(scope="module")
def config(lab: LabInfo) -> Config:
    return load_config(Path(lab.config))


def _runner(config: Config, name: str = "api") -> AsyncsshRunner:
    endpoint = config.endpoint(name)
    assert endpoint is not None and endpoint.ssh is not None
    return AsyncsshRunner(endpoint.ssh, ssh_config=[])


async def test_commands_run_in_a_real_shell_with_the_stand_ins(config: Config, lab: LabInfo) -> None:
    runner = _runner(config)
    lines: list[tuple[str, str]] = []
    try:
        info = await runner.connect()
        assert info.host_key_fingerprint and info.host_key_fingerprint.startswith("SHA256:")
        result = await runner.run(
            # The runner runs one command under `timeout`; a compound one goes through sh -c.
            "sh -c 'for t in certbot nginx systemctl; do command -v $t; done; echo to-stderr >&2; exit 7'",
            timeout=30,
            on_output=lambda stream, line: lines.append((stream, line)),
        )
    finally:
        await runner.close()
    assert result.exit_status == 7
    bin_dir = str(Path(lab.dir) / "bin")
    assert [line for s, line in lines if s == "stdout"] == [
        f"{bin_dir}/{t}" for t in ("certbot", "nginx", "systemctl")
    ]
    assert ("stderr", "to-stderr") in lines


async def test_sftp_reads_the_stored_certificate(config: Config, lab: LabInfo) -> None:
    runner = _runner(config)
    path = Path(lab.dir) / "letsencrypt" / "live" / "auth.drill.test" / "cert.pem"
    try:
        data = await runner.read_file(str(path))
    finally:
        await runner.close()
    assert data == path.read_bytes()


async def test_cancel_ends_the_remote_command(config: Config, lab: LabInfo) -> None:
    runner = _runner(config)
    cancel = asyncio.Event()
    commands = Path(lab.dir) / "run" / "commands"
    try:
        await runner.connect()
        before = set(os.listdir(commands))
        task = asyncio.create_task(runner.run("sleep 300", timeout=600, cancel=cancel))
        started: set[str] = set()
        for _ in range(int(DEADLINE / 0.05)):  # bounded poll for the PID file
            started = set(os.listdir(commands)) - before
            if started:
                break
            await asyncio.sleep(0.05)
        assert started, "the command never started"
        pgid = int(started.pop())
        cancel.set()
        result = await asyncio.wait_for(task, DEADLINE)
    finally:
        await runner.close()
    assert result.cancelled
    assert result.remote_state is RemoteState.ENDED, result.remote_note
    assert not group_members(pgid)


async def test_unknown_host_key_is_refused(lab: LabInfo, config: Config, tmp_path: Path) -> None:
    endpoint = config.endpoint("api")
    assert endpoint is not None and endpoint.ssh is not None
    from dataclasses import replace

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = AsyncsshRunner(replace(endpoint.ssh, known_hosts=str(empty)), ssh_config=[])
    try:
        with pytest.raises(SSHError, match=r"(?i)host key"):
            await runner.connect()
    finally:
        await runner.close()


async def test_renewed_but_not_reloaded_is_detected_over_sftp(config: Config, lab: LabInfo) -> None:
    auth = config.endpoint("auth")
    assert auth is not None
    report = await check_endpoint(auth)
    comparison = await compare_stored(auth, report)
    assert comparison.error is None, comparison.error
    assert comparison.finding is not None and comparison.finding.code == "served_not_stored"
    # One incident, one recommendation: the expiry findings of the drill recommend the reload.
    full = await check_full(auth)
    advice = {f.code: f.runbook for f in full.findings}
    assert (
        advice["served_not_stored"] == advice["expires_soon"] == advice["renewal_overdue"] == "nginx-reload"
    )
    assert not {"certbot-force-renew", "certbot-dry-run"} & set(advice.values())
    overdue = next(f for f in full.findings if f.code == "renewal_overdue")
    assert "did not happen" not in overdue.message and "happened on disk" in overdue.message

    shop = config.endpoint("shop")
    assert shop is not None
    comparison = await compare_stored(shop, await check_endpoint(shop))
    assert comparison.error is None and comparison.finding is None


async def test_stand_in_renewal_then_reload_changes_what_is_served(config: Config, lab: LabInfo) -> None:
    """certbot writes a new lineage version; only the reload makes the server serve it."""
    root = str(Path(lab.dir) / "ca" / "drill-root.pem")
    cert = Path(lab.dir) / "letsencrypt" / "live" / "shop.drill.test" / "cert.pem"
    port = lab.endpoint_ports["shop"]
    served_before = served_serial(port, "shop.drill.test", root)
    runner = _runner(config, "shop")
    out: list[str] = []
    try:
        renew = await runner.run(
            "certbot certonly --force-renewal --cert-name shop.drill.test -d shop.drill.test --webroot -w /x",
            timeout=60,
            on_output=lambda _s, line: out.append(line),
        )
        assert renew.exit_status == 0, out
        assert disk_serial(cert) != served_before
        assert served_serial(port, "shop.drill.test", root) == served_before  # not reloaded yet
        reload = await runner.run(
            "sh -c 'nginx -t && nginx -s reload'", timeout=60, on_output=lambda _s, line: out.append(line)
        )
        assert reload.exit_status == 0, out
    finally:
        await runner.close()
    assert served_serial(port, "shop.drill.test", root) == disk_serial(cert), "\n".join(out)
    assert any("[drill stand-in] certbot" in line for line in out)
    assert not [line for line in out if "ignoring" in line]  # --webroot/-w/-d are understood
