"""Numbers YAML reads as text: PyYAML follows YAML 1.1, where ``1e308`` (no dot) and
``1E5`` are strings, and a quoted ``"5"`` is one too. Every numeric key of the config and
of a runbook refuses them with one line saying how to write the number (``write
1.0e+308``), instead of "expected a number, got a string"."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from certpager.config import load_config
from certpager.errors import ConfigError, RunbookError
from certpager.runbook import load_runbook
from certpager.yamlfile import number_spelling

#: Every numeric key of the config: (YAML with {v} for the value, the key path, integer?).
CONFIG_KEYS = [
    ("settings: {timeout: {v}}", "settings.timeout", False),
    ("settings: {dns_timeout: {v}}", "settings.dns_timeout", False),
    ("settings: {interval: {v}}", "settings.interval", False),
    ("settings: {concurrency: {v}}", "settings.concurrency", True),
    ("settings: {thresholds: {warning_days: {v}}}", "settings.thresholds.warning_days", False),
    ("settings: {thresholds: {critical_days: {v}}}", "settings.thresholds.critical_days", False),
    ("settings: {thresholds: {page_days: {v}}}", "settings.thresholds.page_days", False),
    (
        "settings: {alertmanager: {url: 'http://127.0.0.1:9093', interval: {v}}}",
        "settings.alertmanager.interval",
        False,
    ),
    (
        "settings: {alertmanager: {url: 'http://127.0.0.1:9093', timeout: {v}}}",
        "settings.alertmanager.timeout",
        False,
    ),
    ("prometheus: {url: 'http://127.0.0.1:9090', timeout: {v}}", "prometheus.timeout", False),
    ("endpoints: [{name: a, host: a.test, timeout: {v}}]", "endpoints[0].timeout", False),
    ("endpoints: [{name: a, host: a.test, port: {v}}]", "endpoints[0].port", True),
    ("endpoints: [{name: a, host: a.test, http: {port: {v}}}]", "endpoints[0].http.port", True),
    (
        "endpoints: [{name: a, host: a.test, http: {hsts_min_days: {v}}}]",
        "endpoints[0].http.hsts_min_days",
        False,
    ),
    (
        "endpoints: [{name: a, host: a.test, ssh: {host: a.test, connect_timeout: {v}}}]",
        "endpoints[0].ssh.connect_timeout",
        False,
    ),
    (
        "endpoints: [{name: a, host: a.test, ssh: {host: a.test, port: {v}}}]",
        "endpoints[0].ssh.port",
        True,
    ),
]


def _load(tmp_path: Path, doc: str) -> str:
    path = tmp_path / "endpoints.yaml"
    if "endpoints:" not in doc:
        doc += "\nendpoints: [{name: a, host: a.test}]"
    path.write_text(doc + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("doc", "key", "integer"), CONFIG_KEYS, ids=[k for _, k, _ in CONFIG_KEYS])
def test_every_numeric_config_key_says_how_to_write_the_number(
    tmp_path: Path, doc: str, key: str, integer: bool
) -> None:
    written, spelled, why = (
        ("1e2", "100", "an integer is written in decimal digits")
        if integer
        else (
            "1e2",
            "1.0e+2",
            "YAML 1.1 needs a dot in the mantissa and a sign in the exponent",
        )
    )
    message = _load(tmp_path, doc.replace("{v}", written))
    assert message.endswith(f": {key}: '{written}' is not a number YAML reads ({why}): write {spelled}"), (
        message
    )
    message = _load(tmp_path, doc.replace("{v}", '"20"'))
    assert message.endswith(f": {key}: '20' is not a number YAML reads (it is quoted): write 20"), message
    message = _load(tmp_path, doc.replace("{v}", "abc"))
    expected = "an integer" if integer else "a number"
    assert message.endswith(f": {key}: expected {expected}, got a string"), message


def test_the_spelling_yaml_reads_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "settings: {timeout: 1.5e+1, thresholds: {warning_days: 2.0e+1}}\nendpoints: [{name: a, host: a.test}]\n"
    )
    config = load_config(path)
    assert config.settings.timeout == 15.0 and config.settings.thresholds.warning_days == 20.0
    path.write_text("settings: {timeout: 1.0e+308}\nendpoints: [{name: a, host: a.test}]\n")
    with pytest.raises(ConfigError, match=r"settings\.timeout: must be at most 300, got 1e\+308$"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "integer", "spelled"),
    [
        ("1e308", False, "1.0e+308"),
        ("1E5", False, "1.0e+5"),
        ("-2.5e-3", False, "-2.5e-3"),  # a number to YAML: the string was quoted
        ("1.0e308", False, "1.0e+308"),
        ("5", False, "5"),
        (" 5 ", False, "5"),
        ("443", True, "443"),
        ("1e3", True, "1000"),
        ("1.5", True, None),
        ("abc", False, None),
        ("inf", False, None),
        ("nan", False, None),
        ("1_0", False, None),
        ("\u0665", False, None),  # an Arabic-Indic five: a number to float(), not to YAML
        ("1e400", False, None),
    ],
)
def test_number_spelling(text: str, integer: bool, spelled: str | None) -> None:
    assert number_spelling(text, integer=integer) == spelled


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("  - id: one\n    run: [echo, hi]\n    timeout: {v}\n", "steps[0].timeout"),
        ("  - id: check\n    verify: {deadline: {v}}\n", "steps[0].verify.deadline"),
        ("  - id: check\n    verify: {interval: {v}}\n", "steps[0].verify.interval"),
    ],
)
def test_runbook_numbers_too(tmp_path: Path, where: str, key: str) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(textwrap.dedent("name: rb\ntitle: A runbook\nsteps:\n") + where.replace("{v}", "3e1"))
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    assert str(info.value).endswith(
        f"{key}: '3e1' is not a number YAML reads "
        "(YAML 1.1 needs a dot in the mantissa and a sign in the exponent): write 3.0e+1"
    ), str(info.value)
