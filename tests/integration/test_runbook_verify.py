"""Verification proves that the incident is gone, for every kind of fix, against real nginx
and a real sshd, through the real ``certpager run``:

- a config fix that keeps the certificate (full chain; TLS 1.0 off) ends VERIFIED, naming the
  finding gone, although the served certificate is the same as before;
- a reload that fixes nothing ends NOT VERIFIED at the deadline, naming the finding that remains;
- ``--for`` names what the run is for; a code the runbook does not fix is bad input (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import audit_path, certpager_cli
from tests.support.e2e_stack import DOMAIN, E2EStack, file_leaf, served_leaf
from tests.support.pki import Hierarchy

from certpager.runbook.loader import shipped_runbook_dir

pytestmark = [pytest.mark.sshd, pytest.mark.nginx]

OLD_PROTOCOLS = "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\nssl_ciphers DEFAULT:@SECLEVEL=0;\n"
"""A legacy nginx: TLS 1.0 and 1.1 really negotiated (Debian's OpenSSL 3 needs SECLEVEL 0)."""


def records(env: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in audit_path(env).read_text().splitlines()]


def serve(web: E2EStack, chain: Path, key: Path, extra: str = "") -> None:
    """Point nginx's site at ``chain``/``key`` (plus ``extra`` directives), reload it and
    wait until it is applied (a reload is asynchronous; the leaf differs from the stack's)."""
    web.point_tls(chain, key)
    if extra:
        conf = web.nginx_prefix / "tls-app.conf"
        conf.write_text(conf.read_text() + extra)
    web.reload_nginx(expect_sha256=file_leaf(chain).sha256)


def edit(web: E2EStack, chain: Path, key: Path, extra: str = "") -> None:
    """The operator's fix in the nginx config, not yet applied (the runbook reloads)."""
    web.point_tls(chain, key)
    if extra:
        conf = web.nginx_prefix / "tls-app.conf"
        conf.write_text(conf.read_text() + extra)


def run(
    web: E2EStack, env: dict[str, str], config: Path, *extra: str
) -> tuple[int, str, list[dict[str, object]]]:
    result = certpager_cli(
        ["--config", str(config), "run", "nginx-reload", "--endpoint", "app", "--yes",
         "--param", f"reload_command={web.nginx_reload_command()}", *extra],
        env,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr, records(env)


def verification(recs: list[dict[str, object]]) -> dict[str, object]:
    return next(r for r in recs if r["type"] == "verification")


@pytest.fixture
def files(web: E2EStack, ca: Hierarchy) -> dict[str, Path]:
    """A 60-day leaf for app.test from the test hierarchy: leaf only and full chain."""
    leaf = ca.leaf(DOMAIN, not_after=60.0)
    full, key = ca.serve_files("verify-full", leaf, "full")
    only, _ = ca.serve_files("verify-leaf", leaf, "leaf")
    return {"full": full, "leaf": only, "key": key, "root": ca.root_file}


def write_config(web: E2EStack, tmp_path: Path, root: Path) -> Path:
    return web.write_config(tmp_path / "endpoints.yaml", web.endpoint_config(ca_file=str(root)))


def test_full_chain_fix_is_verified_by_the_finding_gone(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path, files: dict[str, Path]
) -> None:
    serve(web, files["leaf"], files["key"])  # the incident: cert.pem instead of fullchain.pem
    before = served_leaf(web.https_port)
    config = write_config(web, tmp_path, files["root"])
    edit(web, files["full"], files["key"])

    code, out, recs = run(web, cli_env, config)

    assert code == 0, out
    assert "This run is for: chain_incomplete" in out
    assert "gone:    chain_incomplete" in out
    assert "Run SUCCEEDED" in out and "chain_incomplete gone on every backend" in out
    assert served_leaf(web.https_port).sha256 == before.sha256  # the same certificate: no renewal
    result = verification(recs)
    assert result["passed"] is True
    assert result["targets"] == ["chain_incomplete"] and result["gone"] == ["chain_incomplete"]
    assert result["remaining"] == [] and result["new"] == []
    baseline = next(r for r in recs if r["type"] == "baseline")
    assert baseline["targets"] == ["chain_incomplete"]
    assert any("chain_incomplete" in codes for codes in baseline["findings"].values())  # type: ignore[attr-defined, union-attr]
    print(f"\nnginx reload -> verified in {result['elapsed']} s, {result['attempts']} attempt(s)")


def test_protocol_fix_is_verified_by_tls1_0_refused(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path, files: dict[str, Path]
) -> None:
    serve(web, files["full"], files["key"], OLD_PROTOCOLS)
    config = write_config(web, tmp_path, files["root"])
    edit(web, files["full"], files["key"], "ssl_protocols TLSv1.2 TLSv1.3;\n")

    code, out, recs = run(web, cli_env, config, "--for", "tls1_0_enabled")

    assert code == 0, out
    assert "This run is for: tls1_0_enabled (TLS 1.0 accepted)" in out  # the plan says it
    assert "Run SUCCEEDED" in out and "tls1_0_enabled gone on every backend" in out
    result = verification(recs)
    assert result["targets"] == ["tls1_0_enabled"] and result["gone"] == ["tls1_0_enabled"]
    start = recs[0]
    assert start["type"] == "run_start" and start["for_findings"] == ["tls1_0_enabled"]
    assert start["plan"]["for"] == ["tls1_0_enabled"]  # type: ignore[index]


def test_a_reload_that_fixes_nothing_is_not_verified_at_the_deadline(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path, files: dict[str, Path]
) -> None:
    serve(web, files["leaf"], files["key"])
    config = write_config(web, tmp_path, files["root"])
    # The shipped runbook with a short deadline (a user runbook of the same name wins).
    shipped = shipped_runbook_dir()
    assert shipped is not None
    user_dir = Path(cli_env["XDG_CONFIG_HOME"]) / "certpager" / "runbooks"
    user_dir.mkdir(parents=True, exist_ok=True)
    text = (shipped / "nginx-reload.yaml").read_text()
    assert "deadline: 60" in text
    (user_dir / "nginx-reload.yaml").write_text(text.replace("deadline: 60", "deadline: 3"))

    code, out, recs = run(web, cli_env, config)  # no config change: the chain is still incomplete

    assert code == 2, out
    assert "Run FAILED" in out
    assert "chain_incomplete remains" in out
    assert "remain:  chain_incomplete" in out
    result = verification(recs)
    assert result["passed"] is False
    assert result["remaining"] == ["chain_incomplete"] and result["gone"] == []
    assert float(result["elapsed"]) >= 3.0  # type: ignore[arg-type]
    assert int(result["attempts"]) > 3  # type: ignore[call-overload]  # polled quickly at first
    assert recs[-1]["type"] == "run_end" and recs[-1]["outcome"] == "failed"


def test_for_a_code_the_runbook_does_not_fix_is_bad_input(
    web: E2EStack, cli_env: dict[str, str], tmp_path: Path, files: dict[str, Path]
) -> None:
    config = write_config(web, tmp_path, files["root"])
    for code_name, words in (
        ("cert_expired", "runbook nginx-reload does not fix cert_expired (its fixes: served_not_stored"),
        ("chain_incomplet", "'chain_incomplet' is not a finding code (did you mean 'chain_incomplete'?)"),
    ):
        result = certpager_cli(
            [
                "--config",
                str(config),
                "run",
                "nginx-reload",
                "--endpoint",
                "app",
                "--yes",
                "--for",
                code_name,
            ],
            cli_env,
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not audit_path(cli_env).exists()  # nothing ran
