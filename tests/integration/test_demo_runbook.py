"""The shipped runbooks, unchanged, fix the lab's incidents through ``certpager run``
over the lab's real SSH host (host key checked against the lab's known_hosts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.demo.support import (
    DEADLINE,
    certpager,
    check_json,
    disk_serial,
    running_lab,
    served_serial,
    wait_until,
)

from certpager.demo.info import LabInfo


@pytest.fixture
def lab() -> Iterator[LabInfo]:
    """A fresh lab per test: these tests change it."""
    with running_lab() as (_proc, info):
        yield info


def _run(lab: LabInfo, *args: str) -> tuple[int, str, str, list[dict[str, object]]]:
    audit = Path(lab.dir) / "audit.jsonl"
    done = certpager("--config", lab.config, "run", *args, env={"CERTPAGER_AUDIT_LOG": str(audit)})
    records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    return done.returncode, done.stdout, done.stderr, records


def _paths(lab: LabInfo, name: str) -> tuple[int, str, str]:
    live = Path(lab.dir) / "letsencrypt" / "live" / name
    return (
        lab.endpoint_ports[name.split(".")[0]],
        str(live / "cert.pem"),
        str(Path(lab.dir) / "ca" / "drill-root.pem"),
    )


def test_certbot_force_renew_fixes_the_page(lab: LabInfo) -> None:
    port, cert_file, root = _paths(lab, "api.drill.test")
    before_served = served_serial(port, "api.drill.test", root)
    before_disk = disk_serial(cert_file)
    assert before_served == before_disk
    assert check_json(lab.config, "--endpoint", "api")["api"]["status"] == "page"

    code, out, err, audit = _run(lab, "certbot-force-renew", "--endpoint", "api", "--yes", "--confirm", "api")

    assert code == 0, out + err
    assert "[drill stand-in] certbot" in out  # the stand-in said what it is
    assert "Run SUCCEEDED" in out
    after_disk = disk_serial(cert_file)
    assert after_disk != before_disk, "certbot did not renew"
    assert served_serial(port, "api.drill.test", root) == after_disk, "nginx did not reload"
    report = check_json(lab.config, "--endpoint", "api")["api"]
    assert report["status"] == "ok", report["findings"]
    assert report["days_left"] > 80
    types = [r["type"] for r in audit]
    assert types[0] == "run_start" and types[-1] == "run_end", types
    assert "verification" in types
    intents = [r for r in audit if r["type"] == "step_intent"]
    assert [r["step_id"] for r in intents] == ["renew", "nginx-test", "reload", "verify"]


def test_nginx_reload_fixes_renewed_but_not_reloaded(lab: LabInfo) -> None:
    port, cert_file, root = _paths(lab, "auth.drill.test")
    assert served_serial(port, "auth.drill.test", root) != disk_serial(cert_file)

    code, out, err, _audit = _run(lab, "nginx-reload", "--endpoint", "auth", "--yes")

    assert code == 0, out + err
    assert served_serial(port, "auth.drill.test", root) == disk_serial(cert_file)


def test_certbot_dry_run_changes_nothing(lab: LabInfo) -> None:
    port, cert_file, root = _paths(lab, "api.drill.test")
    before = disk_serial(cert_file)
    archive = sorted(p.name for p in (Path(lab.dir) / "letsencrypt" / "archive" / "api.drill.test").iterdir())

    code, out, err, _audit = _run(lab, "certbot-dry-run", "--endpoint", "api", "--yes")

    assert code == 0, out + err
    assert "simulated renewals succeeded" in out
    assert disk_serial(cert_file) == before
    assert (
        sorted(p.name for p in (Path(lab.dir) / "letsencrypt" / "archive" / "api.drill.test").iterdir())
        == archive
    )
    assert served_serial(port, "api.drill.test", root) == before


def test_wrong_host_key_stops_before_any_command(lab: LabInfo) -> None:
    """Host-key checking is on: a known_hosts naming another key refuses to connect."""
    import asyncssh

    known = Path(lab.known_hosts)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()
    known.write_text(f"[127.0.0.1]:{lab.ssh_port} {other[0]} {other[1]}\n")
    _port, cert_file, _root = _paths(lab, "api.drill.test")
    before = disk_serial(cert_file)

    code, out, err, audit = _run(lab, "certbot-force-renew", "--endpoint", "api", "--yes", "--confirm", "api")

    assert code == 2, out + err
    assert "host key" in (out + err).lower()
    assert disk_serial(cert_file) == before
    assert not [r for r in audit if r["type"] == "step_intent"]


def test_broken_key_pair_fails_nginx_test_and_nothing_reloads(lab: LabInfo) -> None:
    """nginx -t really validates: a key that does not match its certificate stops the run."""
    port, _cert_file, root = _paths(lab, "api.drill.test")
    served_before = served_serial(port, "api.drill.test", root)
    sites = Path(lab.dir) / "nginx" / "sites.json"
    doc = json.loads(sites.read_text())
    for site in doc["sites"]:
        if site["name"] == "api":
            site["certificate_key"] = site["certificate_key"].replace("api.drill.test", "shop.drill.test")
    sites.write_text(json.dumps(doc))

    code, out, err, audit = _run(lab, "nginx-reload", "--endpoint", "api", "--yes")

    assert code == 2, out + err
    assert "test failed" in out
    assert [r["step_id"] for r in audit if r["type"] == "step_intent"] == ["nginx-test"]
    assert wait_until(lambda: served_serial(port, "api.drill.test", root) == served_before, DEADLINE)


def _edit_site(lab: LabInfo, name: str, **changes: object) -> None:
    """The operator's fix in the lab's web config (nginx/sites.json), not yet reloaded."""
    sites = Path(lab.dir) / "nginx" / "sites.json"
    doc = json.loads(sites.read_text())
    (site,) = [s for s in doc["sites"] if s["name"] == name]
    site.update(changes)
    sites.write_text(json.dumps(doc, indent=2))


def test_partners_full_chain_fix_is_verified_with_the_same_certificate(lab: LabInfo) -> None:
    sites = json.loads((Path(lab.dir) / "nginx" / "sites.json").read_text())["sites"]
    (site,) = [s for s in sites if s["name"] == "partners"]
    assert site["certificate"].endswith("/cert.pem")
    _edit_site(lab, "partners", certificate=site["certificate"].replace("/cert.pem", "/fullchain.pem"))

    code, out, err, audit = _run(lab, "nginx-reload", "--endpoint", "partners", "--yes")

    assert code == 0, out + err
    assert "Run SUCCEEDED" in out and "chain_incomplete gone on every backend" in out
    assert "still serves the certificate from before the run" not in out
    verification = next(r for r in audit if r["type"] == "verification")
    (backend,) = verification["backends"]  # type: ignore[misc]
    assert backend["before"]["sha256"] == backend["after"]["sha256"]  # type: ignore[has-type]  # the same certificate
    assert verification["gone"] == ["chain_incomplete"] and verification["remaining"] == []
    assert check_json(lab.config, "--endpoint", "partners")["partners"]["status"] == "ok"


def test_legacy_protocols_fix_is_verified(lab: LabInfo) -> None:
    _edit_site(lab, "legacy", protocols=["TLSv1.2", "TLSv1.3"])

    code, out, err, audit = _run(lab, "nginx-reload", "--endpoint", "legacy", "--yes")

    assert code == 0, out + err
    assert "This run is for: tls1_0_enabled, tls1_1_enabled" in out
    verification = next(r for r in audit if r["type"] == "verification")
    assert verification["gone"] == ["tls1_0_enabled", "tls1_1_enabled"], verification
    assert check_json(lab.config, "--endpoint", "legacy")["legacy"]["status"] == "ok"
