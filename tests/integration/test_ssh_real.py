"""AsyncsshRunner against a real OpenSSH sshd on loopback: host-key policy (T1-T3), the exit
matrix (T8), never interactive (T10, T16), a clear message per failure (refused, auth, timeout,
dropped mid-step), timeout and cancel end the remote process (proven with an independent
OpenSSH client), SFTP, and the quoting round trip through the real login shell (T22)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import signal
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.sshd import Sshd, fingerprint, keygen

from certpager.errors import HostKeyError, SSHConnectError, SSHError
from certpager.ssh import AsyncsshRunner, RemoteState

pytestmark = pytest.mark.sshd


def runner(sshd: Sshd, **changes: object) -> AsyncsshRunner:
    return AsyncsshRunner(sshd.target(**changes), ssh_config=[])


async def test_connects_with_the_pinned_key_and_reports_the_fingerprint(sshd: Sshd) -> None:
    r = runner(sshd)
    try:
        info = await r.connect()
        assert info.host_key_fingerprint == sshd.host_fingerprint
        assert info.address == "127.0.0.1" and info.user == "root" and info.port == sshd.port
        assert r.label == f"root@127.0.0.1:{sshd.port}"
    finally:
        await r.close()


@pytest.mark.parametrize(
    ("command", "status", "signal_name", "out"),
    [
        ("exit 0", 0, None, []),
        ("exit 1", 1, None, []),
        ("exit 2", 2, None, []),
        ("no-such-command-xyz", 127, None, []),
        ("exit 255", 255, None, []),
        ("sh -c 'kill -TERM $$'", None, "TERM", []),
        ("sh -c 'kill -KILL $$'", None, "KILL", []),
        ("sh -c 'kill -SEGV $$'", None, "SEGV", []),
        ("true", 0, None, []),
        ("printf 'no newline'", 0, None, ["no newline"]),
    ],
)
async def test_exit_status_and_signal_matrix(
    sshd: Sshd, command: str, status: int | None, signal_name: str | None, out: list[str]
) -> None:
    r = runner(sshd)
    lines: list[str] = []
    try:
        result = await r.run(
            command,
            timeout=30,
            on_output=lambda stream, line: lines.append(line) if stream == "stdout" else None,
        )
    finally:
        await r.close()
    assert (result.exit_status, result.exit_signal) == (status, signal_name)
    assert lines == out


async def test_never_interactive_even_when_ssh_config_asks_for_a_tty(sshd: Sshd, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  RequestTTY force\n  ForwardAgent yes\n")
    r = AsyncsshRunner(sshd.target(), ssh_config=[str(config)])
    lines: list[str] = []
    try:
        result = await r.run(
            "test -t 0 && echo tty || echo no-tty; echo agent=${SSH_AUTH_SOCK:-none}",
            timeout=30,
            on_output=lambda s, line: lines.append(line),
        )
        assert result.ok and lines == ["no-tty", "agent=none"]
        started = time.monotonic()
        prompt = await r.run("read answer", timeout=30)
        assert prompt.exit_status == 1 and time.monotonic() - started < 10  # stdin at EOF: fails fast
    finally:
        await r.close()


async def test_unknown_host_key(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "kh"
    empty.write_text("")
    for _ in range(3):
        with pytest.raises(HostKeyError) as info:
            await runner(sshd, known_hosts=str(empty)).connect()
        assert info.value.fingerprint == sshd.host_fingerprint
        assert "is not known" in str(info.value) and f"[127.0.0.1]:{sshd.port} ssh-ed25519" in str(info.value)
    assert "Accepted publickey" not in sshd.log.read_text()


async def test_changed_host_key(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other")
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line(other.with_suffix(".pub")))
    with pytest.raises(HostKeyError) as info:
        await runner(sshd, known_hosts=str(kh)).connect()
    text = str(info.value)
    assert (
        "CHANGED" in text and fingerprint(other.with_suffix(".pub")) in text and sshd.host_fingerprint in text
    )
    # Each fingerprint once (the pinned key matches by name and by address alike).
    assert text.count(fingerprint(other.with_suffix(".pub"))) == 1 and text.count(sshd.host_fingerprint) == 1
    assert "Accepted publickey" not in sshd.log.read_text()


@pytest.mark.parametrize(
    ("lines", "expect"),
    [
        ("UserKnownHostsFile none", "turns host-key checking off"),
        ("UserKnownHostsFile /dev/null", "is not known"),
        ("UserKnownHostsFile {tmp}/missing_known_hosts", "is not known"),
        ("StrictHostKeyChecking no", "is not known"),
        ("StrictHostKeyChecking accept-new\n  UserKnownHostsFile {tmp}/kh_new", "is not known"),
    ],
)
async def test_ssh_config_cannot_turn_verification_off(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str, expect: str
) -> None:
    """T3: no configuration connects without a verified host key (and accept-new adds nothing)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  {lines.format(tmp=tmp_path)}\n")
    r = AsyncsshRunner(sshd.target(known_hosts=None), ssh_config=[str(config)])
    with pytest.raises((HostKeyError, SSHConnectError)) as info:
        await r.connect()
    assert expect in str(info.value)
    assert not (tmp_path / "kh_new").exists()
    assert "Accepted publickey" not in sshd.log.read_text()


async def test_openssh_default_known_hosts_is_used(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(sshd.known_hosts.read_text())
    r = AsyncsshRunner(sshd.target(known_hosts=None), ssh_config=[])
    try:
        assert (await r.connect()).host_key_fingerprint == sshd.host_fingerprint
    finally:
        await r.close()


async def test_clear_messages_for_auth_refused_and_timeout(sshd: Sshd, tmp_path: Path) -> None:
    wrong = keygen(tmp_path / "wrong")
    with pytest.raises(SSHConnectError, match=r"authentication failed for root@127\.0\.0\.1") as info:
        await runner(sshd, identity_files=(str(wrong),)).connect()
    assert info.value.phase == "auth"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(SSHConnectError, match="refused") as info:
        await runner(sshd, port=closed).connect()
    assert info.value.phase == "connect"
    with socket.socket() as tarpit:  # accepts TCP (kernel backlog), never says a word
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(5)
        started = time.monotonic()
        with pytest.raises(SSHConnectError, match=r"timed out after 2 s") as info:
            await runner(sshd, port=tarpit.getsockname()[1], connect_timeout=2.0).connect()
        assert time.monotonic() - started < 2 + 5  # generous bound: timeout + 5 s
    with pytest.raises(SSHConnectError, match=r"(identity file not found|cannot load SSH identity)"):
        await runner(sshd, identity_files=(str(tmp_path / "nope"),)).connect()


@pytest.mark.parametrize("ignore_term", [False, True], ids=["plain", "ignores-TERM"])
async def test_timeout_ends_the_remote_command(sshd: Sshd, tmp_path: Path, ignore_term: bool) -> None:
    token = f"certpager-step-{secrets.token_hex(4)}"
    marker = str(tmp_path / f"{token}.marker")
    trap = "trap '' TERM; " if ignore_term else ""
    r = runner(sshd)
    command = shlex.join(["sh", "-c", f"{trap}echo started; sleep 300; touch {marker}", token])
    try:
        started = time.monotonic()
        result = await r.run(command, timeout=2)
        elapsed = time.monotonic() - started
    finally:
        await r.close()
    assert result.timed_out and not result.ok
    assert result.remote_state is RemoteState.ENDED, result.remote_note
    assert elapsed < 2 + 20
    assert sshd.processes_matching(token) == []
    await asyncio.sleep(1)
    assert sshd.ssh(f"test -e {marker} && echo present || echo absent").stdout.strip() == "absent"


async def test_cancel_mid_step_ends_the_remote_command_every_time(sshd: Sshd) -> None:
    r = runner(sshd)
    durations = []
    survivors = 0
    try:
        for _ in range(10):
            token = f"certpager-cancel-{secrets.token_hex(4)}"
            cancel = asyncio.Event()
            lines: list[str] = []

            def on_output(
                stream: str, line: str, lines: list[str] = lines, cancel: asyncio.Event = cancel
            ) -> None:
                lines.append(line)
                cancel.set()

            command = shlex.join(["sh", "-c", "echo started; sleep 300; :", token])
            result = await r.run(command, timeout=120, on_output=on_output, cancel=cancel)
            assert result.cancelled and lines == ["started"]
            assert result.remote_state is RemoteState.ENDED, result.remote_note
            durations.append(result.duration)
            survivors += len(sshd.processes_matching(token))
    finally:
        await r.close()
    assert survivors == 0
    print(
        f"\n10 cancels over real sshd: 0 surviving remote processes; time to end: max {max(durations):.2f} s"
    )


async def test_dropped_connection_mid_step_reports_unknown_and_the_remote_guard_ends_it(sshd: Sshd) -> None:
    token = f"certpager-drop-{secrets.token_hex(4)}"
    r = runner(sshd)
    dropped = asyncio.Event()

    def on_output(stream: str, line: str) -> None:
        for pid in sshd.session_children():
            os.kill(pid, signal.SIGKILL)  # the per-connection sshd: the link dies mid-step
        dropped.set()

    command = shlex.join(["sh", "-c", "echo started; sleep 300; :", token])
    try:
        result = await r.run(command, timeout=3, on_output=on_output)
    finally:
        await r.close()
    assert dropped.is_set()
    assert result.error == "the SSH connection dropped mid-step"
    assert result.remote_state is RemoteState.UNKNOWN
    assert "remote timeout stops it by" in result.remote_note
    # The command survived the drop; the remote `timeout` (3 + 5 s) ends it without us.
    assert sshd.processes_matching(token), "expected the orphaned command to be running right after the drop"
    for _ in range(40):  # generous: the guard fires 8 s after the start
        if not sshd.processes_matching(token):
            break
        await asyncio.sleep(1)
    assert sshd.processes_matching(token) == []


async def test_sftp_read_file(sshd: Sshd, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    r = runner(sshd)
    try:
        assert await r.read_file(str(tmp_path / "cert.pem")) == b"-----BEGIN CERTIFICATE-----\n"
        with pytest.raises(SSHError, match="no such file"):
            await r.read_file(str(tmp_path / "missing.pem"))
    finally:
        await r.close()


VISIBLE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
    | st.just(" "),
    min_size=1,
    max_size=40,
)


def test_property_quoting_round_trips_through_the_real_login_shell(sshd: Sshd) -> None:
    """T22: whatever validated text goes in, the remote argv is exactly that (bash login shell)."""
    loop = asyncio.new_event_loop()
    r = runner(sshd)
    loop.run_until_complete(r.connect())
    checked = 0
    try:
        # Each example is one SSH exec (~0.7 s here: root's .bashrc runs pyenv init), so
        # each carries up to 10 values: ~400 values through the real login shell.
        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(values=st.lists(VISIBLE, min_size=1, max_size=10))
        def check(values: list[str]) -> None:
            nonlocal checked
            lines: list[str] = []
            command = shlex.join(["printf", "%s\\n", *values])
            result = loop.run_until_complete(
                r.run(command, timeout=30, on_output=lambda s, line: lines.append(line))
            )
            assert result.ok
            assert lines == values
            checked += len(values)

        check()
    finally:
        loop.run_until_complete(r.close())
        loop.close()
    assert checked >= 100
    print(f"\n{checked} hypothesis values round-tripped byte-exact through the real login shell")
