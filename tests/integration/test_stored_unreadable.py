"""What certpager could not check is never reported as fine, with real nginx and sshd.

``certpager check`` (the real CLI) on an endpoint whose served certificate is fine but
whose stored certificate cannot be read: an unknown SSH host key is a warning (exit 1),
a changed one critical (exit 2), a wrong path a warning, a silent SSH port times out
within the check's own ``--timeout``; each with the reason in the table. And a good read
of a renewed-but-not-reloaded certificate turns the expiry advice to the reload.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import CliResult, certpager_cli
from tests.support.e2e_stack import E2EStack, file_leaf
from tests.support.sshd import keygen

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]

QUIET = ["--no-http", "--no-protocols", "--no-sni-check", "--no-aia"]
"""Only the handshake and the stored comparison: nothing else can raise a finding."""


def serve_fine_certificate(web: E2EStack) -> Path:
    """Point nginx at a 50-day certificate (nothing wrong with it); its chain file."""
    chain, key, _ = web.issue_legacy(50, "fine")
    web.point_tls(chain, key)
    web.reload_nginx(expect_sha256=file_leaf(chain).sha256)
    return chain


def check(web: E2EStack, tmp_path: Path, env: dict[str, str], *extra: str, **endpoint: Any) -> CliResult:
    config = web.write_config(tmp_path / "endpoints.yaml", web.endpoint_config(**endpoint))
    return certpager_cli(["check", "--config", str(config), *QUIET, *extra], env, timeout=120)


def finding_lines(stdout: str, code: str) -> str:
    """The finding line of ``code`` and its fix line, from the table."""
    lines = stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if f" {code}" in line)
    return lines[i] + "\n" + lines[i + 1]


def ssh_with(web: E2EStack, known_hosts: Path, port: int | None = None) -> dict[str, Any]:
    assert web.sshd is not None
    return {
        "host": "127.0.0.1",
        "port": port or web.sshd.port,
        "user": "root",
        "known_hosts": str(known_hosts),
        "identity_files": [str(web.sshd.client_key)],
    }


def test_the_control_a_readable_stored_certificate_equal_to_the_served_one_is_ok(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    chain = serve_fine_certificate(web)
    result = check(web, tmp_path, cli_env, stored={"path": str(chain)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[1].startswith("OK ") and "stored_unreadable" not in result.stdout


def test_unknown_host_key_is_a_warning_with_the_reason(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    chain = serve_fine_certificate(web)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    result = check(web, tmp_path, cli_env, stored={"path": str(chain)}, ssh=ssh_with(web, empty))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[1].startswith("WARNING ")
    text = finding_lines(result.stdout, "stored_unreadable")
    assert "warning  stored_unreadable: could not read the stored certificate" in text
    assert f"root@127.0.0.1:{chain}" in text and "is not known" in text
    assert web.sshd is not None and web.sshd.host_fingerprint in text
    assert "fix: Add the host key" in text and "ssh-keyscan" in text
    assert result.stderr == ""

    as_json = certpager_cli(
        ["check", "--json", "--config", str(tmp_path / "endpoints.yaml"), *QUIET], cli_env, timeout=120
    )
    assert as_json.returncode == 1
    (report,) = json.loads(as_json.stdout)
    assert report["status"] == "warning"
    assert [f["code"] for f in report["findings"] if f["severity"] != "info"] == ["stored_unreadable"]
    assert report["stored"]["state"] == "not compared" and report["stored"]["reason"] == "host_key_unknown"


def test_changed_host_key_is_critical(web: E2EStack, cli_env: dict[str, str], tmp_path: Path) -> None:
    chain = serve_fine_certificate(web)
    assert web.sshd is not None
    other = keygen(tmp_path / "other_host_key")
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(web.sshd.known_hosts_line(other.with_suffix(".pub")))
    result = check(web, tmp_path, cli_env, stored={"path": str(chain)}, ssh=ssh_with(web, changed))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.splitlines()[1].startswith("CRITICAL ")
    text = finding_lines(result.stdout, "stored_unreadable")
    assert "critical stored_unreadable" in text and "has CHANGED" in text
    assert "man-in-the-middle" in text


def test_wrong_path_is_a_warning(web: E2EStack, cli_env: dict[str, str], tmp_path: Path) -> None:
    serve_fine_certificate(web)
    missing = tmp_path / "no" / "such" / "cert.pem"
    result = check(web, tmp_path, cli_env, stored={"path": str(missing)})
    assert result.returncode == 1, result.stdout + result.stderr
    text = finding_lines(result.stdout, "stored_unreadable")
    assert f"{missing}: no such file" in text and "fix: Check stored.path" in text


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback TCP port that accepts connections and never says a word (no SSH banner)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_silent_ssh_host_costs_no_more_than_the_checks_timeout(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path, silent_port: int
) -> None:
    chain = serve_fine_certificate(web)
    assert web.sshd is not None
    ssh = ssh_with(web, web.sshd.known_hosts, port=silent_port)
    ssh["connect_timeout"] = 30  # the check's deadline caps it
    result = check(web, tmp_path, cli_env, "--timeout", "2", stored={"path": str(chain)}, ssh=ssh)
    assert result.returncode == 1, result.stdout + result.stderr
    text = finding_lines(result.stdout, "stored_unreadable")
    assert "timed out" in text and f"127.0.0.1:{silent_port}" in text
    # About a hang, not speed: 2 s of deadline, plus the interpreter's start on a loaded machine.
    assert result.seconds < 2 + 4, result.seconds


def test_renewed_but_not_reloaded_recommends_the_reload_everywhere(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # nginx serves the 2-day certificate; the renewal landed on disk, nobody reloaded.
    ssl_dir = web.nginx_prefix / "ssl"
    live = ssl_dir / "live.pem"
    shutil.copy(ssl_dir / "old.pem", live)
    web.point_tls(live, ssl_dir / "old.key")
    web.reload_nginx(expect_sha256=file_leaf(live).sha256)
    new_chain, _, _ = web.issue_legacy(45, "renewed")
    shutil.copy(new_chain, live)
    stored = file_leaf(live)

    result = check(web, tmp_path, cli_env, stored={"path": str(live)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "served_not_stored" in result.stdout
    soon = finding_lines(result.stdout, "expires_soon")
    assert "fix: Already renewed on disk" in soon and stored.serial[:16] in soon
    assert "(runbook: nginx-reload)" in soon
    assert "certbot-force-renew" not in result.stdout and "certbot-dry-run" not in result.stdout

    as_json = certpager_cli(
        ["check", "--json", "--config", str(tmp_path / "endpoints.yaml"), *QUIET], cli_env, timeout=120
    )
    (report,) = json.loads(as_json.stdout)
    advice = {f["code"]: f["runbook"] for f in report["findings"]}
    assert advice["served_not_stored"] == "nginx-reload" and advice["expires_soon"] == "nginx-reload"
    assert report["stored"]["state"] == "differs (renewed but not reloaded)"
