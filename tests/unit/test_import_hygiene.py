"""The core never imports the TUI: importing the probe, the config or ``certpager check``
must not load ``textual`` or ``certpager.tui`` (checked in a fresh interpreter's ``sys.modules``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "certpager.probe",
    "certpager.config",
    "certpager.check.cli",
    "certpager.check.report",
    "certpager.errors",
]

PROGRAM = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
loaded = sorted(m for m in sys.modules
                if m == "textual" or m.startswith("textual.")
                or m == "certpager.tui" or m.startswith("certpager.tui."))
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_does_not_load_the_tui(module: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [], f"importing {module} loaded the TUI"


def test_check_help_does_not_load_the_tui() -> None:
    """``certpager check`` (the cron path) starts without Textual."""
    program = (
        "import sys, json\n"
        "from certpager.__main__ import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textual' "
        "or m.startswith('certpager.tui'))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_building_the_parser_stays_light() -> None:
    """``certpager check --help`` (and every start) builds the whole parser: registering the
    subcommands must not import their machinery (asyncssh, pyOpenSSL, the probe, the lab)."""
    program = (
        "import sys, json\n"
        "from certpager.__main__ import build_parser\n"
        "build_parser()\n"
        "heavy = ('asyncssh', 'OpenSSL', 'cryptography', 'yaml', 'certpager.probe', "
        "'certpager.runbook', 'certpager.demo', 'certpager.ssh', 'certpager.check.cli')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []
