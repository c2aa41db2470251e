"""The docs say what the code does: generated tables are current, links resolve, the README's commands hold.

- docs/findings.md and docs/tui.md carry tables generated from the finding catalogue and the
  TUI's key bindings by scripts/gen_docs.py; a new finding code or binding without a doc
  update fails here.
- Every relative link and image in README.md and docs/*.md points to a file of the
  repository, and every ``#anchor`` to a heading of that file.
- The README keeps the two commands a new user runs, and CI runs the test command.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCS]


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


def test_generated_docs_are_current() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in gen_docs.generated().items()
        if path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date, run `python scripts/gen_docs.py`: {', '.join(stale)}"


def test_every_finding_code_and_fixing_runbook_is_in_the_findings_table() -> None:
    from certpager.probe.findings import SPECS

    text = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    region = text.split("<!-- BEGIN GENERATED: findings -->")[1].split("<!-- END GENERATED -->")[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in region.splitlines() if line.startswith("| `")
    }
    assert set(rows) == set(SPECS)
    # Each row names exactly the shipped runbooks whose fixes: name its code.
    from certpager.runbook import load_runbook

    books = [load_runbook(path) for path in sorted((ROOT / "runbooks").glob("*.yaml"))]
    for code, row in rows.items():
        named = {part.strip("` ") for part in row.split("|")[6].split(",")} - {"", "-"}
        assert named == {rb.name for rb in books if code in rb.fixes}, code
    assert "nginx-reload" in rows["served_not_stored"].split("|")[6]


def test_every_binding_is_in_the_keys_table() -> None:
    from certpager.tui.screens.detail import DetailScreen

    text = (ROOT / "docs" / "tui.md").read_text(encoding="utf-8")
    region = text.split("<!-- BEGIN GENERATED: keys -->")[1].split("<!-- END GENERATED -->")[0]
    for binding in DetailScreen.BINDINGS:
        assert f"`{binding.action}`" in region  # type: ignore[union-attr]
    assert "| `Ctrl+Q` | Quit | `quit` |" in region


def test_generator_notices_a_new_binding_and_a_new_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a binding or a finding code added to the code changes the docs."""
    from textual.binding import Binding

    from certpager.probe import findings
    from certpager.probe.model import Severity
    from certpager.tui.screens.detail import DetailScreen

    before = gen_docs.generated()
    monkeypatch.setattr(
        DetailScreen, "BINDINGS", [*DetailScreen.BINDINGS, Binding("x", "explode", "Explode")]
    )
    spec = findings.FindingSpec("brand_new", Severity.WARNING, "a new problem", "Fix the new problem.")
    monkeypatch.setitem(findings.SPECS, "brand_new", spec)
    after = gen_docs.generated()
    assert "| `x` | Explode | `explode` |" in after[ROOT / "docs" / "tui.md"]
    assert (
        "| `brand_new` | warning | a new problem | Fix the new problem. | - | - |"
        in after[ROOT / "docs" / "findings.md"]
    )
    assert before != after


def test_region_without_markers_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="expected one '<!-- BEGIN GENERATED: keys -->'"):
        gen_docs.render("no markers here\n", "keys", "src", "table")


# --- links -------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"<[^>]+>", "", text)
    text = "".join(
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Mn"
    )
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.*)", line)
        if fenced or not match:
            continue
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slug_matches_github() -> None:
    assert slug("`certpager check`: the headless probe") == "certpager-check-the-headless-probe"
    assert slug("Host keys: policy and how to trust a host") == "host-keys-policy-and-how-to-trust-a-host"
    assert slug("Backends, pins, no-SNI certificate") == "backends-pins-no-sni-certificate"


def _links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("doc", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
            continue
        if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_checker_can_fail(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "# Title\n\n[ok](#title) [bad](#nope) `[code](#ignored)`\n\n```\n[fenced](#ignored)\n```\n"
    )
    assert _links(doc) == ["#title", "#nope"]
    assert "title" in anchors(doc) and "nope" not in anchors(doc)


def test_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in DOCS if f"(docs/{p.name}" not in readme]
    assert not missing, f"README.md does not link {', '.join(missing)}"


def test_no_document_points_outside_the_project() -> None:
    pattern = re.compile(r"\.\./shared|DESIGN\.md|STYLE\.md|\brecipes?\b|\bseeds?\b|/work/", re.IGNORECASE)
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in [*LINKED, ROOT / "bench" / "README.md"]
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, f"references to documents a user does not have: {', '.join(hits)}"


# --- the two commands ----------------------------------------------------------------------

DEMO = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/certpager demo"


def test_readme_has_the_two_commands_and_ci_runs_the_tests() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"\n{DEMO}\n" in readme
    assert "\nscripts/test.sh\n" in readme
    assert len(readme.splitlines()) <= 220
    assert (ROOT / "scripts" / "test.sh").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^\s*env .*scripts/test\.sh", ci, re.MULTILINE)


def _config_examples() -> list[tuple[str, str]]:
    out = []
    for doc in [ROOT / "README.md", *DOCS]:
        blocks = re.findall(r"^```yaml\n(.*?)^```", doc.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
        out += [
            (f"{doc.relative_to(ROOT)}#{i}", b)
            for i, b in enumerate(blocks)
            if b.startswith(("endpoints:", "settings:"))
        ]
    return out


@pytest.mark.parametrize(("where", "text"), _config_examples(), ids=lambda v: v if "#" in v else "")
def test_config_examples_load(where: str, text: str, tmp_path: Path) -> None:
    """Every example config in the README and docs is valid as written (the files it names are made)."""
    import trustme

    from certpager.config import load_config

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "internal-ca.pem"))
    client = ca.issue_cert("client.example.com")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    path = tmp_path / "endpoints.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.endpoints, where
