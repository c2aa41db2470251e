"""End to end, with real components only: nginx serves a certificate that expires in 2 days;
``certpager run certbot-force-renew --endpoint app`` (the real CLI, confirmations typed on its
terminal) renews it against pebble over SSH, reloads nginx (reload overridden for a host
without systemd), and the verification passes with a new serial; the audit log holds every step.
Also: the plan touches nothing; unknown and changed host keys are refused with the fingerprint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.support.cli import audit_path, certpager_cli, run_in_pty
from tests.support.e2e_stack import DOMAIN, E2EStack, file_leaf
from tests.support.sshd import Sshd, fingerprint, keygen

from certpager.runbook.audit import AuditLog

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]


def records(env: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in audit_path(env).read_text().splitlines()]


@pytest.mark.pebble
@pytest.mark.slow
def test_certbot_force_renew_end_to_end_on_a_terminal(
    e2e: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = e2e.served()
    assert before.issuer == "CN=Legacy Internal CA"
    assert (before.not_after.timestamp() - time.time()) / 86400 < 2.1  # the incident: 2 days left
    config = e2e.write_config(tmp_path / "endpoints.yaml")
    args = [
        "--config", str(config), "run", "certbot-force-renew", "--endpoint", "app",
        "--param", f"reload_command={e2e.nginx_reload_command()}",
    ]  # fmt: skip
    result = run_in_pty(
        args,
        cli_env,
        answers=[(r"Type 'app' to run this step", "app"), (r"Run this step\? \[y/N\]", "y")],
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out
    print(
        f"\ne2e certpager run (pty, confirmations typed): {result.seconds:.1f} s; stack setup {e2e.timings}"
    )
    after = e2e.served()
    stored = file_leaf(e2e.live / "cert.pem")
    assert after.serial != before.serial and after.sha256 == stored.sha256
    assert after.issuer.startswith("CN=Pebble Intermediate CA")
    assert (after.not_after.timestamp() - time.time()) / 86400 > 80
    # What the operator saw: host key, before/after, verdict.
    assert e2e.sshd is not None and e2e.sshd.host_fingerprint in out
    assert f"before: serial {before.serial[:16]}" in out and f"after:  serial {after.serial[:16]}" in out
    assert "Run SUCCEEDED" in out and "PASS" in out
    assert "Congratulations, all renewals succeeded" in out
    # The audit log holds every step, each intent before its result.
    recs = records(cli_env)
    kinds = [(r["type"], r.get("step_id")) for r in recs]
    assert kinds[0] == ("run_start", None) and kinds[-1] == ("run_end", None)
    for step in ("renew", "nginx-test", "reload", "verify"):
        assert kinds.index(("step_intent", step)) < kinds.index(("step_result", step)), step
    results = {r["step_id"]: r for r in recs if r["type"] == "step_result"}
    assert all(results[s]["outcome"] == "ok" for s in ("renew", "nginx-test", "reload", "verify"))
    assert results["renew"]["exit_status"] == 0 and "Congratulations" in str(results["renew"]["stdout"])
    intents = {r["step_id"]: r for r in recs if r["type"] == "step_intent" and "argv" in r}
    assert intents["reload"]["argv"][:3] == ["/usr/sbin/nginx", "-s", "reload"]  # type: ignore[index]
    assert intents["renew"]["host_key_fingerprint"] == e2e.sshd.host_fingerprint
    assert "timeout --kill-after=5s" in str(intents["renew"]["wire"])
    confirmations = [(r["step_id"], r["answer"], r["detail"]) for r in recs if r["type"] == "confirmation"]
    assert confirmations == [("renew", "yes", "typed 'app'"), ("reload", "yes", "yes")]
    verification = next(r for r in recs if r["type"] == "verification")
    (backend,) = verification["backends"]  # type: ignore[misc]
    assert backend["before"]["serial"] == before.serial and backend["after"]["serial"] == after.serial  # type: ignore[has-type]
    # A renewal is verified by the stored certificate served and its finding gone.
    assert verification["stored"]["sha256"] == stored.sha256  # type: ignore[index]
    assert verification["targets"] == ["expires_soon"] and verification["gone"] == ["expires_soon"]
    assert verification["remaining"] == [] and verification["new"] == []
    assert "gone:    expires_soon" in out
    assert recs[-1]["outcome"] == "succeeded"
    assert AuditLog(audit_path(cli_env)).unfinished() == []


@pytest.mark.pebble
@pytest.mark.slow
def test_headless_run_with_yes_and_confirm(e2e: E2EStack, cli_env: dict[str, str], tmp_path: Path) -> None:
    config = e2e.write_config(tmp_path / "endpoints.yaml")
    base = ["--config", str(config), "run", "certbot-force-renew", "--endpoint", "app",
            "--param", f"reload_command={e2e.nginx_reload_command()}"]  # fmt: skip
    refused = certpager_cli([*base, "--yes"], cli_env)
    assert refused.returncode == 3 and "needs the typed name 'app'" in refused.stderr
    assert not audit_path(cli_env).exists()
    before = e2e.served()
    result = certpager_cli([*base, "--yes", "--confirm", "app"], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert e2e.served().serial != before.serial
    print(f"\nheadless certpager run --yes --confirm app: {result.seconds:.1f} s")


def test_plan_prints_commands_and_touches_nothing(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        f"""endpoints:
  - name: app
    host: 127.0.0.1
    port: 9
    sni: {DOMAIN}
    tags: [certbot]
    ssh: {{host: 127.0.0.1, port: {sshd.port}, user: root, known_hosts: {sshd.known_hosts}, identity_files: [{sshd.client_key}]}}
"""
    )
    time.sleep(1.0)  # let sshd log the readiness probe's connection first
    connections = sshd.log.read_text().count("Connection from")
    result = certpager_cli(
        ["--config", str(config), "run", "certbot-force-renew", "--endpoint", "app", "--plan"], cli_env
    )
    assert result.returncode == 0, result.stderr
    assert f"Target root@127.0.0.1:{sshd.port}" in result.stdout
    assert (
        "$ certbot renew --non-interactive --force-renewal --no-random-sleep-on-renew --cert-name app.test"
        in result.stdout
    )
    assert "$ systemctl reload nginx" in result.stdout
    time.sleep(0.5)
    assert sshd.log.read_text().count("Connection from") == connections  # no connection reached sshd
    assert not audit_path(cli_env).exists()


def _config_for(sshd: Sshd, path: Path, known_hosts: Path) -> Path:
    path.write_text(
        f"""endpoints:
  - name: app
    host: 127.0.0.1
    port: 9
    tags: [nginx]
    ssh: {{host: 127.0.0.1, port: {sshd.port}, user: root, known_hosts: {known_hosts}, identity_files: [{sshd.client_key}]}}
    params: {{reload_command: "touch {path.parent / "reload-ran"}"}}
"""
    )
    return path


def test_unknown_host_key_is_refused_with_fingerprint_and_how_to_trust_it(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    config = _config_for(sshd, tmp_path / "endpoints.yaml", empty)
    for _ in range(5):
        result = certpager_cli(
            ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--yes"], cli_env
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert sshd.host_fingerprint in result.stderr
        assert "is not known" in result.stderr and "never trusts a first key" in result.stderr
        assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in result.stderr  # the exact line to add
        assert str(empty) in result.stderr
    log = sshd.log.read_text()
    assert "Accepted publickey" not in log and "Postponed publickey" not in log  # no authentication attempt
    assert "session opened" not in log.lower()
    recs = records(cli_env)
    assert sum(r["type"] == "connect_failed" for r in recs) == 5
    assert all(
        r["host_key_fingerprint"] == sshd.host_fingerprint for r in recs if r["type"] == "connect_failed"
    )
    assert not any(r["type"] == "step_intent" for r in recs)
    # Trusting it the way the message says makes it work.
    line = next(
        x.strip() for x in result.stderr.splitlines() if x.strip().startswith(f"[127.0.0.1]:{sshd.port} ")
    )
    empty.write_text(line + "\n")
    ok = certpager_cli(
        ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--plan"], cli_env
    )
    assert ok.returncode == 0


def test_changed_host_key_is_refused_showing_both_fingerprints(
    sshd: Sshd, cli_env: dict[str, str], tmp_path: Path
) -> None:
    other = keygen(tmp_path / "other_host_key")
    pinned = tmp_path / "pinned_known_hosts"
    pinned.write_text(sshd.known_hosts_line(other.with_suffix(".pub")))
    config = _config_for(sshd, tmp_path / "endpoints.yaml", pinned)
    result = certpager_cli(
        ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--yes"], cli_env
    )
    assert result.returncode == 2
    assert "CHANGED" in result.stderr
    assert fingerprint(other.with_suffix(".pub")) in result.stderr and sshd.host_fingerprint in result.stderr
    assert "ssh-keygen -R" in result.stderr
    log = sshd.log.read_text()
    assert "Accepted publickey" not in log
    assert not (tmp_path / "reload-ran").exists()
