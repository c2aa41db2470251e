"""The fleet chain with real components: Debian's nginx serves a leaf without its
intermediate and a 2-day certificate; ``certpager exporter`` and Debian's blackbox
exporter probe them; Debian's Prometheus scrapes both every second and evaluates the
shipped rules (every ``for:`` rewritten to 0s by this test, the expressions untouched).
What is asserted is what Prometheus's HTTP API shows: the series and the firing alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.nginx import Nginx, Site
from tests.support.pki import PKI, Hierarchy
from tests.support.prometheus import Blackbox, CertpagerExporter, Prometheus, http_get, multi_target_job

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "certpager-rules.yml"


def rules_without_for(directory: Path) -> Path:
    """A copy of the shipped rules whose every ``for:`` is 0s (the expressions as shipped)."""
    doc = yaml.safe_load(RULES.read_text())
    count = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
                count += 1
    assert count >= 8
    path = directory / "certpager-rules.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def lab(pki: PKI, ca: Hierarchy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx: ``incomplete`` sends the leaf alone, ``soon`` a full chain expiring in 2 days."""
    leaf = ca.leaf("app.test", sans=["app.test"], not_after=80)
    soon = ca.leaf("soon.test", sans=["soon.test"], not_before=-30, not_after=2)
    sites = [
        Site("incomplete", *pki.write_chain("fleet-incomplete", [leaf], key_of=leaf), server_name="app.test"),
        Site(
            "soon",
            *pki.write_chain("fleet-soon", [soon, ca.intermediate], key_of=soon),
            server_name="soon.test",
        ),
    ]
    with Nginx(prefix=tmp_path_factory.mktemp("fleet-nginx"), sites=sites) as server:
        yield server


@pytest.fixture(scope="module")
def stack(lab: Nginx, ca: Hierarchy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """certpager exporter + blackbox exporter + Prometheus scraping both with the shipped rules."""
    top = tmp_path_factory.mktemp("fleet")
    config = top / "endpoints.yaml"
    endpoints = [
        {"name": name, "host": "127.0.0.1", "port": lab.port(name), "sni": sni, "ca_file": str(ca.root_file)}
        for name, sni in (("incomplete", "app.test"), ("soon", "soon.test"))
    ]
    # The protocol scan is off: each probe must fit the 1 s scrape (0.5 s after the margin) on a
    # busy machine; everything else certpager checks stays on.
    settings = {"timeout": 5, "check_protocols": False}
    config.write_text(yaml.safe_dump({"settings": settings, "endpoints": endpoints}))
    modules = {
        f"tls_{name}": {
            "prober": "tcp",
            "timeout": "5s",
            "tcp": {"tls": True, "tls_config": {"ca_file": str(ca.root_file), "server_name": sni}},
        }
        for name, sni in (("incomplete", "app.test"), ("soon", "soon.test"))
    }
    with (
        CertpagerExporter(top / "exporter", config=config) as exporter,
        Blackbox(top / "blackbox", modules=modules) as blackbox,
    ):
        bb_jobs = []
        for name in ("incomplete", "soon"):
            job = multi_target_job(f"blackbox-{name}", blackbox.port, [f"127.0.0.1:{lab.port(name)}"])
            job["params"] = {"module": [f"tls_{name}"]}
            bb_jobs.append(job)
        jobs = [
            multi_target_job("certpager", exporter.port, ["incomplete", "soon"], param="endpoint"),
            *bb_jobs,
        ]
        prometheus = Prometheus(top / "prometheus", scrape_configs=jobs, rule_files=[rules_without_for(top)])
        with prometheus:
            yield {"prometheus": prometheus, "exporter": exporter, "blackbox": blackbox}


def firing(prometheus: Prometheus) -> set[tuple[str, str, str]]:
    """(alertname, instance, job) of the alerts firing now."""
    alerts = prometheus.api("/api/v1/alerts")["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("instance", ""), a["labels"].get("job", ""))
        for a in alerts
        if a["state"] == "firing"
    }


def test_certpager_series_reach_prometheus(stack: dict[str, Any]) -> None:
    prometheus: Prometheus = stack["prometheus"]
    found = prometheus.wait_for(
        "certpager_finding{code=chain_incomplete}",
        lambda: prometheus.query('certpager_finding{job="certpager",code="chain_incomplete"}'),
    )
    assert {s["metric"]["instance"] for s in found} == {"incomplete"}
    assert found[0]["metric"]["severity"] == "critical"
    scraped = prometheus.wait_for(
        "both endpoints scraped",
        lambda: len(series := prometheus.query('probe_success{job="certpager"}')) == 2 and series,
    )
    success = {s["metric"]["instance"]: s["value"][1] for s in scraped}
    assert success == {"incomplete": "1", "soon": "1"}
    status = {
        s["metric"]["instance"]: s["value"][1] for s in prometheus.query('certpager_status{job="certpager"}')
    }
    assert status["incomplete"] == "2"  # critical
    days = prometheus.query('certpager_days_left{job="certpager",instance="soon"}')
    assert 1.9 < float(days[0]["value"][1]) <= 2.0
    chain = prometheus.query('certpager_chain_not_after_seconds{job="certpager",instance="soon"}')
    assert sorted(s["metric"]["position"] for s in chain) == ["0", "1", "2"]


def test_shipped_rules_fire(stack: dict[str, Any], lab: Nginx) -> None:
    prometheus: Prometheus = stack["prometheus"]
    soon_target = f"127.0.0.1:{lab.port('soon')}"
    expected = {
        ("CertificateChainIncomplete", "incomplete", "certpager"),
        ("CertificateExpiresIn3Days", "soon", "certpager"),
        ("CertificateExpiresIn3Days", soon_target, "blackbox-soon"),
        # blackbox cannot verify the leaf-only chain: to it, the probe failed.
        ("CertificateProbeFailed", f"127.0.0.1:{lab.port('incomplete')}", "blackbox-incomplete"),
    }
    seen: list[set[tuple[str, str, str]]] = [set()]

    def all_firing() -> bool:
        seen[0] = firing(prometheus)
        return expected <= seen[0]

    prometheus.wait_for(
        "the expected alerts firing", all_firing, message=lambda: f"firing: {sorted(seen[0])}"
    )
    got = seen[0]
    # The 2-day certificate fires the critical expiry rule only, not the 14- and 7-day warnings.
    assert not {a for a in got if a[0] in ("CertificateExpiresIn14Days", "CertificateExpiresIn7Days")}
    # certpager completed both handshakes (the alert only fires for blackbox's probe).
    assert {a for a in got if a[0] == "CertificateProbeFailed" and a[2] != "certpager"} == {
        ("CertificateProbeFailed", f"127.0.0.1:{lab.port('incomplete')}", "blackbox-incomplete")
    }


def test_blackbox_sees_a_failure_where_certpager_names_the_finding(stack: dict[str, Any], lab: Nginx) -> None:
    """blackbox reports the leaf-only server as a failed probe; certpager as chain_incomplete."""
    prometheus: Prometheus = stack["prometheus"]
    target = f"127.0.0.1:{lab.port('incomplete')}"
    prometheus.wait_for(
        "blackbox's probe_success for the incomplete chain",
        lambda: prometheus.query(f'probe_success{{job="blackbox-incomplete",instance="{target}"}} == 0'),
    )
    prometheus.wait_for(
        "CertificateProbeFailed firing for blackbox",
        lambda: ("CertificateProbeFailed", target, "blackbox-incomplete") in firing(prometheus),
    )
    # certpager's probe of the same server succeeded: over the last 30 s it was at least once 1.
    ok = prometheus.query('max_over_time(probe_success{job="certpager",instance="incomplete"}[30s])')
    assert ok[0]["value"][1] == "1"


def test_exporter_own_metrics_count_the_scrapes(stack: dict[str, Any]) -> None:
    exporter: CertpagerExporter = stack["exporter"]
    status, body = http_get(exporter.url + "/metrics")
    assert status == 200
    text = body.decode()
    assert 'certpager_exporter_requests_total{code="200",path="/probe"}' in text
    assert "process_resident_memory_bytes" in text
