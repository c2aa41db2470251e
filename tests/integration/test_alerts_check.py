"""``certpager check`` with an Alertmanager configured: paged endpoints in the table and the
JSON, ad-hoc endpoints for alerts about targets the config does not hold, blackbox's
expiry against the verified path, and a down Alertmanager as one line on stderr.

Real components: prometheus-alertmanager and Python TLS servers on loopback, the CLI as
a subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.alertmanager import Alertmanager
from tests.support.cli import certpager_cli, isolated_env
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import TLSServer

from certpager.lab.ports import reserve_port


@pytest.fixture
def servers(
    pki: PKI, ca: Hierarchy, other_ca: Hierarchy, serve: Callable[..., TLSServer]
) -> dict[str, TLSServer]:
    """``app``: a good chain plus an unrelated CA certificate that expires in 3 days (what
    blackbox counts); ``adhoc``: a plain good chain nobody configured."""
    leaf = ca.leaf("app.test", not_after=80)
    stray = other_ca.root.intermediate("Stray Cross-Sign CA", not_before=-300, not_after=3)
    app = serve(*ca.serve_files("alerts-app", leaf, extra=[stray]))
    adhoc = serve(*ca.serve_files("alerts-adhoc", ca.leaf("app.test", not_after=60)))
    return {"app": app, "adhoc": adhoc}


def _config(tmp_path: Path, url: str, ca: Hierarchy, port: int) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "settings:\n"
        f"  alertmanager: {{url: '{url}', matchers: ['team=\"web\"'], timeout: 2}}\n"
        "  check_http: false\n"
        "endpoints:\n"
        f"  - {{name: app, host: 127.0.0.1, port: {port}, sni: app.test, ca_file: {ca.root_file}}}\n"
        "  - {name: quiet, host: 127.0.0.1, port: 1, sni: quiet.test, timeout: 1}\n"
    )
    return path


def test_check_json_and_table_show_pages(tmp_path: Path, am: Alertmanager, ca: Hierarchy, servers) -> None:
    app, adhoc = servers["app"].port, servers["adhoc"].port
    am.post_alerts(
        [
            {
                "labels": {
                    "alertname": "CertificateExpiringSoon",
                    "instance": f"https://app.test:{app}",
                    "job": "blackbox",
                    "team": "web",
                    "severity": "page",
                },
                "annotations": {"summary": "TLS certificate expires in less than 7 days"},
            },
            {
                "labels": {
                    "alertname": "CertificateExpiringSoon",
                    "instance": f"127.0.0.1:{adhoc}@app.test",
                    "team": "web",
                }
            },
            {"labels": {"alertname": "CertificateExpiringSoon", "instance": "db.test:443", "team": "db"}},
        ]
    )
    config = _config(tmp_path, am.url, ca, app)
    env = isolated_env(tmp_path / "home")
    run = certpager_cli(
        ["check", "--config", str(config), "--json", "--no-protocols", "--no-aia"], env, timeout=120
    )
    assert run.stderr == ""
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    assert set(reports) == {"app", "quiet", f"127.0.0.1:{adhoc}@app.test"}  # db.test is team db
    (alert,) = reports["app"]["alerts"]
    assert alert["alertname"] == "CertificateExpiringSoon"
    assert alert["severity"] == "page"
    assert alert["labels"]["instance"] == f"https://app.test:{app}"
    assert set(alert) == {"alertname", "severity", "starts_at", "labels", "fingerprint"}
    assert reports["quiet"]["alerts"] == []
    assert reports[f"127.0.0.1:{adhoc}@app.test"]["status"] != "error"  # the ad-hoc endpoint was probed
    fact = reports["app"]["blackbox_expiry"]
    assert fact["certificate"]["subject"].startswith("CN=Stray Cross-Sign CA")
    assert fact["certificate"]["position"] == 3
    assert fact["on_verified_path"] is False
    assert fact["clients_affected"] is False
    assert fact["probe_ssl_earliest_cert_expiry"] < fact["verified_path_not_after"]

    table = certpager_cli(["check", "--config", str(config), "--no-protocols", "--no-aia"], env, timeout=120)
    lines = table.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["app"])
    assert lines[row + 1].startswith("    PAGED    paged by CertificateExpiringSoon since ")
    assert "certificate #3 sent" in lines[row + 2] and "is not on the path clients verify" in lines[row + 2]
    assert lines[row + 2].endswith("clients are not affected: the cause of blackbox's page")


def test_alertmanager_down_is_one_line_and_endpoints_still_checked(
    tmp_path: Path, ca: Hierarchy, servers
) -> None:
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        config = _config(tmp_path, url, ca, servers["app"].port)
        run = certpager_cli(
            ["check", "--config", str(config), "--json", "--no-protocols", "--no-aia"],
            isolated_env(tmp_path / "home"),
            timeout=120,
        )
    assert run.stderr.splitlines() == [
        f"certpager: alertmanager {url}: nothing listens on port {port} (connection refused) "
        "(checking without its alerts)"
    ]
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    assert reports["app"]["alerts"] == [] and reports["app"]["status"] != "error"


def test_bad_alertmanager_config_is_one_line_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        "settings:\n  alertmanager:\n    url: http://127.0.0.1:9093\n    matchers: ['team=web', 'team ~ x']\n"
        "endpoints: [{name: a, host: 127.0.0.1}]\n"
    )
    run = certpager_cli(["check", "--config", str(config)], isolated_env(tmp_path / "home"))
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"certpager: {config}:4: settings.alertmanager.matchers[1]: 'team ~ x' is not an Alertmanager matcher "
        '(label="value", label!="value", label=~"regex" or label!~"regex")'
    ]


def test_check_json_lists_only_adhoc_endpoints_with_a_firing_alert(
    tmp_path: Path, am: Alertmanager, ca: Hierarchy, servers
) -> None:
    """An alert that resolved (Prometheus sent its endsAt) names no endpoint any more: its
    target is not checked nor listed; the target of a firing one is."""
    import datetime as dt

    app, adhoc = servers["app"].port, servers["adhoc"].port
    firing = {
        "labels": {
            "alertname": "CertificateExpiringSoon",
            "instance": f"127.0.0.1:{adhoc}@app.test",
            "team": "web",
        }
    }
    ended = {
        "labels": {"alertname": "CertificateExpiringSoon", "instance": "127.0.0.1:1@gone.test", "team": "web"}
    }
    am.post_alerts([firing, ended])
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    am.post_alerts([{**ended, "startsAt": past, "endsAt": past}])
    config = _config(tmp_path, am.url, ca, app)
    run = certpager_cli(
        ["check", "--config", str(config), "--json", "--no-protocols", "--no-aia"],
        isolated_env(tmp_path / "home"),
        timeout=120,
    )
    assert run.stderr == ""
    reports = {r["name"]: r for r in json.loads(run.stdout)}
    assert set(reports) == {"app", "quiet", f"127.0.0.1:{adhoc}@app.test"}
    assert [a["labels"]["instance"] for a in reports[f"127.0.0.1:{adhoc}@app.test"]["alerts"]] == [
        f"127.0.0.1:{adhoc}@app.test"
    ]
