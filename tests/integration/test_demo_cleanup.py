"""The fire-drill lab leaves no process, port or file behind: after a normal stop,
after SIGTERM/SIGINT/SIGHUP of ``certpager demo --no-tui``, after its parent is
SIGKILLed, and when it fails to start. Two labs run side by side."""

from __future__ import annotations

import contextlib
import os
import re
import select
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.integration.demo.support import (
    DEADLINE,
    assert_lab_gone,
    check_json,
    demo_ports,
    group_members,
    remote_sleep,
    served_serial,
)

from certpager.demo.process import LabError, LabProcess


def test_stop_ends_lab_commands_ports_and_files() -> None:
    lab = LabProcess()
    info = lab.start()
    ports = info.all_ports
    assert len(ports) == len(set(ports)) >= 10
    with remote_sleep(info.ssh_port, info.user, info.identity_file, info.known_hosts, info.dir) as pgid:
        assert group_members(pgid), "the remote command is not running"
        report = lab.stop()
        assert report.exit_code == 0, lab.read_log_tail()
        assert not report.killed
        assert report.dir_removed
        assert_lab_gone(info.pid, ports, info.dir)
        assert not group_members(pgid), "the SSH command outlived the lab"


def _read_line(stream: object, deadline: float) -> str:
    """One line from a pipe, with a deadline (bounded)."""
    assert hasattr(stream, "fileno")
    fd = stream.fileno()
    buf = b""
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = end - time.monotonic()
            assert left > 0, f"no line within {deadline} s (got {buf!r})"
            if sel.select(min(left, 0.5)):
                chunk = os.read(fd, 4096)
                assert chunk, f"stream closed (got {buf!r})"
                buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _start_demo() -> tuple[subprocess.Popen[bytes], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "certpager", "demo", "--no-tui"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    config = _read_line(proc.stdout, DEADLINE)
    summary = _read_line(proc.stderr, DEADLINE)
    match = re.search(r"\(pid (\d+)\)", summary)
    assert match, summary
    assert config.endswith("/endpoints.yaml") and Path(config).is_file(), config
    return proc, config, int(match.group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_demo_no_tui_cleans_up_on_signal(sig: signal.Signals) -> None:
    proc, config, lab_pid = _start_demo()
    lab_dir = str(Path(config).parent)
    ports = demo_ports(config)
    info_json = Path(lab_dir) / "lab.json"
    assert info_json.is_file()
    try:
        # The lab answers (the demo really started it) ...
        assert served_serial(
            _port(config, "shop"), "shop.drill.test", str(Path(lab_dir) / "ca" / "drill-root.pem")
        )
        user, key, known, ssh_port = _ssh(config)
        with remote_sleep(ssh_port, user, key, known, lab_dir) as pgid:
            # ... and a command runs on its SSH host when the signal arrives.
            proc.send_signal(sig)
            assert proc.wait(DEADLINE) == 0
            assert_lab_gone(lab_pid, ports, lab_dir)
            assert not group_members(pgid), "the SSH command outlived the demo"
        _, err = proc.communicate(timeout=DEADLINE)
        assert b"lab stopped" in err and b"removed" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)


def test_lab_removes_itself_when_demo_is_killed() -> None:
    """SIGKILL cannot be caught: the lab sees its stdin pipe close and cleans up alone."""
    proc, config, lab_pid = _start_demo()
    lab_dir = str(Path(config).parent)
    ports = demo_ports(config)
    user, key, known, ssh_port = _ssh(config)
    try:
        with remote_sleep(ssh_port, user, key, known, lab_dir) as pgid:
            proc.kill()
            proc.wait(DEADLINE)
            assert_lab_gone(lab_pid, ports, lab_dir)
            assert not group_members(pgid)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_two_labs_at_once() -> None:
    with LabProcess() as one, LabProcess() as two:
        assert one.info is not None and two.info is not None
        assert one.info.dir != two.info.dir
        assert not set(one.info.all_ports) & set(two.info.all_ports)
        a = check_json(one.info.config, "--endpoint", "shop")
        b = check_json(two.info.config, "--endpoint", "shop")
        assert a["shop"]["status"] == b["shop"]["status"] == "ok"
        # Each lab has its own CA: a lab's certificate does not verify against the other's root.
        assert a["shop"]["chain"][0]["sha256"] != b["shop"]["chain"][0]["sha256"]
    for lab in (one, two):
        assert lab.info is not None
        assert_lab_gone(lab.info.pid, lab.info.all_ports, lab.info.dir)


def test_start_failure_is_clear_and_cleans_up() -> None:
    lab = LabProcess(start_timeout=0.01)
    with pytest.raises(LabError, match="did not start: not ready after"):
        lab.start()
    assert lab.pid is not None and lab.dir is not None
    assert_lab_gone(lab.pid, [], str(lab.dir))


def test_lab_that_exits_at_start_is_reported_with_its_log() -> None:
    lab = LabProcess(python="/bin/false")
    with pytest.raises(LabError, match="did not start: the lab process exited with status 1"):
        lab.start()
    assert lab.pid is not None and lab.dir is not None
    assert_lab_gone(lab.pid, [], str(lab.dir))


def test_unwritable_lab_parent_is_one_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    with pytest.raises(LabError, match="cannot create its directory in"):
        LabProcess(base_dir=str(blocked)).start()


def test_demo_cli_reports_a_broken_lab_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from certpager.__main__ import main

    def broken(self: LabProcess) -> None:
        raise LabError("the fire-drill lab did not start: (simulated)")

    monkeypatch.setattr(LabProcess, "spawn", broken)
    assert main(["demo", "--no-tui"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "certpager demo: the fire-drill lab did not start: (simulated)"


def _port(config: str, name: str) -> int:
    import yaml

    doc = yaml.safe_load(Path(config).read_text())
    return int(next(e["port"] for e in doc["endpoints"] if e["name"] == name))


def _ssh(config: str) -> tuple[str, str, str, int]:
    import yaml

    doc = yaml.safe_load(Path(config).read_text())
    ssh = doc["endpoints"][0]["ssh"]
    base = Path(config).parent
    return ssh["user"], str(base / ssh["identity_files"][0]), str(base / ssh["known_hosts"]), int(ssh["port"])


class _Pty:
    """``certpager demo`` (with the TUI) on a pseudo-terminal."""

    def __init__(self) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.environ["TERM"] = "xterm-256color"
            os.execv(sys.executable, [sys.executable, "-m", "certpager", "demo"])
        self.out = b""

    def read_until(self, pattern: bytes, deadline: float = DEADLINE) -> bool:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if re.search(pattern, re.sub(rb"\x1b\[[0-9;?<>]*[A-Za-z]", b"", self.out)):
                return True
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                self.out += chunk
        return False

    def wait(self, deadline: float = DEADLINE) -> int | None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.read_until(rb"(?!)", 0.1)  # keep draining so the child never blocks on output
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        return None

    def close(self) -> None:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.mark.parametrize("how", ["q", "SIGTERM"])
def test_demo_with_tui_cleans_up_on_quit(how: str) -> None:
    demo = _Pty()
    try:
        assert demo.read_until(rb"files in (\S+); all removed on exit"), demo.out[-2000:]
        text = demo.out.decode("utf-8", "replace")
        lab_dir = re.search(r"files in (\S+);", text).group(1)  # type: ignore[union-attr]
        lab_pid = int(re.search(r"\(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]
        ports = demo_ports(str(Path(lab_dir) / "endpoints.yaml"))
        # The TUI is up and has probed the lab: the summary bar counts the page.
        assert demo.read_until(rb"1 PAGE"), demo.out[-2000:]
        if how == "q":
            os.write(demo.fd, b"q")
        else:
            os.kill(demo.pid, signal.SIGTERM)
        # q is a normal exit; SIGTERM leaves through the app's normal exit too, with 128+15.
        assert demo.wait() == (0 if how == "q" else 128 + signal.SIGTERM), demo.out[-2000:]
        assert b"lab stopped" in demo.out
        assert_lab_gone(lab_pid, ports, lab_dir)
    finally:
        demo.close()


def test_crash_in_the_tui_still_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception escaping the TUI propagates (a crash), but the lab is gone first."""
    pytest.importorskip("certpager.tui.cli")
    import certpager.tui.cli
    from certpager.__main__ import main

    seen: dict[str, str] = {}

    def crash(config_path: Path, *, readonly: bool = False) -> int:
        seen["config"] = str(config_path)
        seen["ports"] = ",".join(str(p) for p in demo_ports(str(config_path)))
        summary = (config_path.parent / "lab.log").read_text()
        seen["pid"] = re.search(r'"pid": (\d+)', summary).group(1)  # type: ignore[union-attr]
        raise RuntimeError("simulated TUI crash")

    monkeypatch.setattr(certpager.tui.cli, "run_tui", crash)
    with pytest.raises(RuntimeError, match="simulated TUI crash"):
        main(["demo"])
    ports = [int(p) for p in seen["ports"].split(",")]
    assert_lab_gone(int(seen["pid"]), ports, str(Path(seen["config"]).parent))
