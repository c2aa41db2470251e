"""A verification passes only when its pass holds: the round after the first passing one
(``confirm_wait`` later) must pass too, so one lucky handshake on a new nginx worker while
old workers still serve the old certificate is not VERIFIED. Real nginx:
tests/integration/test_verify_confirm_nginx.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.unit.test_runbook_engine import Probe, cert, endpoint, report

from certpager.errors import RunbookError
from certpager.probe.model import EndpointReport
from certpager.runbook import parse_runbook
from certpager.runbook.events import ServedCert
from certpager.runbook.model import CONFIRM_WAIT, VerifyExpect, VerifySpec
from certpager.runbook.verify import served_certs, verify_endpoint

OLD, NEW = cert("0A", days=2), cert("0B")


def spec(deadline: float = 5, confirm_wait: float = 0) -> VerifySpec:
    return VerifySpec(
        deadline=deadline, interval=0.2, expect=VerifyExpect.CHANGED_OR_STORED, confirm_wait=confirm_wait
    )


async def run(probe: Probe, s: VerifySpec) -> tuple[list[bool], str, bool]:
    attempts: list[bool] = []
    before: dict[str, ServedCert] = served_certs(report(OLD))
    result = await verify_endpoint(
        endpoint(),
        s,
        before=before,
        stored=None,
        probe=probe,
        on_attempt=lambda n, verdicts: attempts.append(all(v.passed for v in verdicts)),
    )
    assert result.attempts == len(attempts)
    return attempts, result.message, result.passed


async def test_a_pass_followed_by_a_failure_is_not_verified_until_two_passes_in_a_row() -> None:
    probe = Probe(report(NEW), report(OLD), report(NEW), report(NEW))
    attempts, message, passed = await run(probe, spec())
    assert attempts == [True, False, True, True]
    assert passed and "held on a second round" in message, message


async def test_a_pass_that_never_holds_is_not_verified_at_the_deadline() -> None:
    probe = Probe(report(NEW), report(OLD))  # then the old certificate until the deadline
    attempts, message, passed = await run(probe, spec(deadline=1))
    assert not passed and attempts[0] and not any(attempts[1:]) and len(attempts) >= 3
    assert "attempt 1 passed, the next round did not" in message, message
    assert "still serves the certificate from before the run" in message


async def test_the_confirming_round_waits_and_runs_even_past_the_deadline() -> None:
    probe = Probe(report(OLD), report(NEW))  # passes first at ~0.1 s, deadline 1 s
    started = time.monotonic()
    attempts, message, passed = await run(probe, spec(deadline=1, confirm_wait=1.5))
    elapsed = time.monotonic() - started
    assert passed and attempts == [False, True, True]
    assert 1.5 <= elapsed < 3, elapsed  # one wait past the deadline, not cut short by it
    assert "held on a second round" in message, message


async def test_cancel_during_the_confirm_wait_is_not_verified() -> None:
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, cancel.set)

    async def probe(ep: object) -> EndpointReport:
        return report(NEW)

    result = await verify_endpoint(
        endpoint(), spec(confirm_wait=10), before=served_certs(report(OLD)), stored=None,
        probe=probe, cancel=cancel,
    )  # fmt: skip
    assert not result.passed and result.message == "verification cancelled" and result.attempts == 1


def parse(verify: str) -> VerifySpec:
    text = f"name: rb\ntitle: t\nsteps:\n  - id: verify\n    verify: {verify}\n"
    step = parse_runbook(text, file="rb.yaml").steps[0]
    assert step.verify is not None
    return step.verify


def test_confirm_wait_is_read_from_the_verify_step_and_defaults_to_half_a_second() -> None:
    assert parse("true").confirm_wait == CONFIRM_WAIT == 0.5
    assert parse("{deadline: 5}").confirm_wait == 0.5
    assert parse("{confirm_wait: 2}").confirm_wait == 2.0
    assert parse("{confirm_wait: 0}").confirm_wait == 0.0


@pytest.mark.parametrize("value", ["-1", "61", "soon", "[1]"])
def test_a_bad_confirm_wait_names_the_key_and_line(value: str) -> None:
    with pytest.raises(RunbookError) as info:
        parse(f"{{confirm_wait: {value}}}")
    text = str(info.value)
    assert "confirm_wait" in text and "rb.yaml" in text and ":5" in text, text
    assert "\n" not in text
