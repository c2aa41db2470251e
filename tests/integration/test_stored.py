"""Renewed but not reloaded, with real nginx and sshd: the stored certificate (read over SFTP)
differs from the served one -> ``served_not_stored`` with both fingerprints and dates and the
nginx-reload runbook; after ``certpager run nginx-reload`` the verification passes because the
served certificate equals the stored one, and the finding is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.support.cli import certpager_cli
from tests.support.e2e_stack import E2EStack, file_leaf

from certpager.check.stored import compare_stored
from certpager.config import load_config, with_overrides
from certpager.probe import check_endpoint
from certpager.probe.model import Severity

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]


async def test_stored_vs_served_before_and_after_reload(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ssl_dir = web.nginx_prefix / "ssl"
    live_chain, live_key = ssl_dir / "live.pem", ssl_dir / "live.key"
    shutil.copy(ssl_dir / "old.pem", live_chain)
    shutil.copy(ssl_dir / "old.key", live_key)
    web.point_tls(live_chain, live_key)
    web.reload_nginx(expect_sha256=file_leaf(live_chain).sha256)
    old = web.served()
    # The renewal lands on disk (as certbot would), nobody reloads nginx.
    # 50 days: within the 60-day Legacy CA (a leaf outliving its CA is a finding of its own,
    # which the verification would rightly call "got worse").
    new_chain, new_key, _ = web.issue_legacy(50, "renewed")
    shutil.copy(new_chain, live_chain)
    shutil.copy(new_key, live_key)
    stored = file_leaf(live_chain)
    assert stored.sha256 != old.sha256
    config_path = web.write_config(
        tmp_path / "endpoints.yaml", web.endpoint_config(stored={"path": str(live_chain)})
    )
    endpoint = load_config(config_path).endpoint("app")
    assert endpoint is not None

    report = await check_endpoint(with_overrides(endpoint, check_protocols=False))
    comparison = await compare_stored(endpoint, report)
    assert comparison.error is None
    finding = comparison.finding
    assert finding is not None and finding.code == "served_not_stored"
    assert finding.severity is Severity.CRITICAL and finding.runbook == "nginx-reload"
    assert comparison.differing == (f"127.0.0.1:{web.https_port}",) and finding.backends == ()
    for text in (
        old.serial,
        old.sha256[:16],
        stored.serial,
        stored.sha256[:16],
        f"{old.not_after:%Y-%m-%d}",
        f"{stored.not_after:%Y-%m-%d}",
    ):
        assert text in finding.message, (text, finding.message)
    assert str(live_chain) in finding.message and "newer" in finding.message

    result = certpager_cli(
        ["--config", str(config_path), "run", "nginx-reload", "--endpoint", "app", "--yes",
         "--param", f"reload_command={web.nginx_reload_command()}"],
        cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stored: serial {stored.serial[:16]}" in result.stdout and "PASS" in result.stdout
    assert web.served().sha256 == stored.sha256

    report = await check_endpoint(with_overrides(endpoint, check_protocols=False))
    after = await compare_stored(endpoint, report)
    assert after.error is None and after.finding is None and after.stored is not None
    assert after.stored.sha256 == stored.sha256


async def test_compare_stored_reports_why_it_could_not_compare(web: E2EStack, tmp_path: Path) -> None:
    config_path = web.write_config(
        tmp_path / "endpoints.yaml",
        web.endpoint_config(stored={"path": str(tmp_path / "missing.pem")}),
        web.endpoint_config(name="nossh", ssh=None, stored={"path": "/etc/ssl/x.pem"}),
        web.endpoint_config(name="plain"),
    )
    config = load_config(config_path)
    app, nossh, plain = (config.endpoint(n) for n in ("app", "nossh", "plain"))
    assert app is not None and nossh is not None and plain is not None
    report = await check_endpoint(with_overrides(app, check_protocols=False))
    missing = await compare_stored(app, report)
    assert missing.error is not None and "no such file" in missing.error
    assert missing.finding is not None and missing.finding.code == "stored_unreadable"
    assert missing.finding.severity is Severity.WARNING and "no such file" in missing.finding.message
    no_ssh = await compare_stored(nossh, report)
    assert no_ssh.error is not None and "no ssh target" in no_ssh.error
    assert no_ssh.finding is not None and no_ssh.finding.code == "stored_unreadable"
    not_configured = await compare_stored(plain, report)
    assert not not_configured.configured and not_configured.error is None and not_configured.finding is None
