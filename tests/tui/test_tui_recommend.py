"""Which runbooks the chooser recommends, and which comes first, for one incident.

Renewed but not reloaded: the expiry findings' advice is the reload (the renewed
certificate is on disk), so nothing may recommend a forced renewal, whichever finding
is marked; without a stored certificate the same codes recommend the renewal.
"""

from __future__ import annotations

from pathlib import Path

from certpager.config import Endpoint
from certpager.probe.findings import make, readvise
from certpager.runbook import Runbook, load_runbook
from certpager.tui.runbooks import advised_runbook, recommendations
from certpager.tui.screens.runbook import RunbookChooser

SHIPPED = Path(__file__).resolve().parents[2] / "runbooks"


def shipped() -> list[Runbook]:
    return [
        load_runbook(SHIPPED / f"{name}.yaml")
        for name in ("certbot-force-renew", "nginx-reload", "certbot-dry-run")
    ]


def reload_advice(code: str, message: str):  # type: ignore[no-untyped-def]
    return readvise(make(code, message), hint="Already renewed on disk: reload.", runbook="nginx-reload")


def test_renewed_but_not_reloaded_recommends_only_the_reload() -> None:
    runbooks = shipped()
    findings = [
        make("served_not_stored", "served differs from stored"),
        reload_advice("expires_soon", "expires in 12 days"),
        reload_advice("renewal_overdue", "renewed on disk, not reloaded"),
    ]
    recommended = recommendations(findings, runbooks)
    assert recommended == {"nginx-reload": ["served_not_stored", "expires_soon", "renewal_overdue"]}
    endpoint = Endpoint(name="auth", host="auth.example")
    # served_not_stored keeps the catalogue's advice (the reload); the expiry findings were
    # re-advised to it for this incident.
    for selected, expected in (
        ("served_not_stored", None),
        ("expires_soon", "nginx-reload"),
        ("renewal_overdue", "nginx-reload"),
    ):
        advised = advised_runbook(findings, selected, runbooks)
        assert advised == expected
        chooser = RunbookChooser(endpoint, runbooks, recommended, selected=selected, advised=advised)
        assert chooser.runbooks[0].name == "nginx-reload"
        # The forced renewal is still offered (last resort), but says it fixes nothing seen now.
        force = next(rb for rb in chooser.runbooks if rb.name == "certbot-force-renew")
        assert "(this finding)" not in chooser._fixes_line(force)
        assert "none seen now" in chooser._fixes_line(force)


def test_without_a_renewal_on_disk_expiry_recommends_the_renewal() -> None:
    runbooks = shipped()
    findings = [
        make("expires_soon", "expires in 2 days"),
        make("renewal_overdue", "automation did not renew"),
    ]
    recommended = recommendations(findings, runbooks)
    assert recommended["certbot-force-renew"] == ["expires_soon", "renewal_overdue"]
    assert "nginx-reload" not in recommended
    advised = advised_runbook(findings, "expires_soon", runbooks)
    assert advised is None  # the catalogue's advice: every runbook whose fixes: name it
    chooser = RunbookChooser(
        Endpoint(name="api", host="api.example"),
        runbooks,
        recommended,
        selected="expires_soon",
        advised=advised,
    )
    assert chooser.runbooks[0].name == "certbot-force-renew"
