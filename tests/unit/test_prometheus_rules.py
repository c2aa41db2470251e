"""The shipped Prometheus files, checked by Debian's promtool: the rules parse
(`promtool check rules`), behave as their unit tests say (`promtool test rules
deploy/prometheus/tests.yml`), and the scrape config example is a valid Prometheus config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus", pytrace=False)
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_rules_parse() -> None:
    run = promtool("check", "rules", "certpager-rules.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_rules_unit_tests_pass() -> None:
    run = promtool("test", "rules", "tests.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_scrape_config_is_valid(tmp_path: Path) -> None:
    for name in ("scrape.yml", "certpager-rules.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    run = promtool("check", "config", "scrape.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests catch a threshold changed by mistake (here 3 days -> 1 day)."""
    rules = (DEPLOY / "certpager-rules.yml").read_text()
    assert "< 3 * 24 * 3600\n" in rules
    (tmp_path / "certpager-rules.yml").write_text(rules.replace("< 3 * 24 * 3600\n", "< 1 * 24 * 3600\n"))
    shutil.copy(DEPLOY / "tests.yml", tmp_path / "tests.yml")
    run = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert run.returncode != 0
    assert "CertificateExpiresIn3Days" in run.stdout + run.stderr
