"""The runbook core never imports Textual or certpager.tui (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_core_modules_do_not_import_the_tui() -> None:
    code = (
        "import json, sys\n"
        "import certpager.runbook, certpager.runbook.cli, certpager.runbook.engine, certpager.ssh\n"
        "import certpager.runbook.audit, certpager.check.stored\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'certpager.tui')))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout) == []
