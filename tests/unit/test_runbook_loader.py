"""Runbook loading: the shipped runbooks, the search path, and one clear file:line:key message
for every kind of mistake (before anything runs)."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from certpager.config import Endpoint, Settings
from certpager.errors import RunbookError
from certpager.runbook import (
    ConfirmKind,
    StepKind,
    find_runbook,
    list_runbooks,
    load_runbook,
    runbook_dirs,
    runbooks_for,
    shipped_runbook_dir,
)
from certpager.runbook.model import ParamType, VerifyExpect

SHIPPED_NAMES = {"certbot-force-renew", "nginx-reload", "certbot-dry-run", "cert-manager-reissue"}
MESSAGE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<key>[^:]+): (?P<message>.+)$", re.S)


def write(tmp_path: Path, text: str, name: str = "rb") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = """
name: rb
title: A runbook
params:
  cert_name: {type: cert_name, default: "{sni}"}
  reload: {type: command, default: systemctl reload nginx}
steps:
  - id: one
    run: [echo, "{cert_name}"]
  - id: two
    run: ["{reload}"]
"""


def test_shipped_runbooks_load_and_have_the_names_findings_refer_to() -> None:
    shipped = shipped_runbook_dir()
    assert shipped is not None
    names = {p.stem for p in shipped.glob("*.yaml")}
    assert names >= SHIPPED_NAMES
    for name in SHIPPED_NAMES:
        rb = find_runbook(name, [shipped])
        assert rb.name == name and rb.sha256 and rb.path == shipped / f"{name}.yaml"
    from certpager.probe.findings import SPECS

    referenced = {s.runbook for s in SPECS.values() if s.runbook}
    assert referenced <= names


def test_shipped_certbot_force_renew_shape() -> None:
    rb = find_runbook("certbot-force-renew", runbook_dirs())
    kinds = [(s.id, s.kind, s.confirm) for s in rb.steps]
    assert kinds == [
        ("renew", StepKind.RUN, ConfirmKind.TYPED),
        ("nginx-test", StepKind.RUN, ConfirmKind.NONE),
        ("reload", StepKind.RUN, ConfirmKind.PLAIN),
        ("verify", StepKind.VERIFY, ConfirmKind.NONE),
    ]
    reload = rb.param("reload_command")
    assert reload is not None and reload.type is ParamType.COMMAND
    assert reload.default == ("systemctl reload nginx",)
    assert rb.steps[3].verify is not None and rb.steps[3].verify.expect is VerifyExpect.CHANGED_OR_STORED


def test_cert_manager_delete_secret_is_a_typed_fallback_with_the_ingress_warning() -> None:
    rb = find_runbook("cert-manager-reissue", runbook_dirs())
    assert rb.steps[0].argv[0] == (rb.steps[0].argv[0][0],)  # cmctl first
    wait = rb.steps[1]
    assert wait.continue_on_error
    delete = wait.on_failure[0]
    assert delete.id == "delete-secret" and delete.confirm is ConfirmKind.TYPED
    message = "".join(p if isinstance(p, str) else "{" + p.name + "}" for p in delete.message)
    assert "default certificate" in message and "ingress" in message


def test_installed_wheel_layout_is_found(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "certpager"
    (package / "_runbooks").mkdir(parents=True)
    assert shipped_runbook_dir(package) == package / "_runbooks"
    checkout = tmp_path / "repo"
    (checkout / "src" / "certpager").mkdir(parents=True)
    (checkout / "runbooks").mkdir()
    assert shipped_runbook_dir(checkout / "src" / "certpager") == checkout / "runbooks"


def test_search_path_order_user_dirs_shadow_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "certpager" / "runbooks"
    user.mkdir(parents=True)
    extra = tmp_path / "conf" / "mine"
    extra.mkdir(parents=True)
    dirs = runbook_dirs(Settings(runbook_dirs=("mine",)), config_dir=tmp_path / "conf")
    assert dirs[:2] == [extra, user]
    assert dirs[-1] == shipped_runbook_dir()
    write(user, GOOD.replace("name: rb", "name: nginx-reload"), "nginx-reload")
    assert find_runbook("nginx-reload", dirs).path == user / "nginx-reload.yaml"
    entries = list_runbooks(dirs)
    shadowed = [e for e in entries if e.path.stem == "nginx-reload" and e.shadowed]
    assert shadowed and shadowed[0].path.parent == shipped_runbook_dir()
    (extra / "broken.yaml").write_text("name: [\n")
    assert any(e.error is not None and e.path.name == "broken.yaml" for e in list_runbooks(dirs))


def test_unknown_runbook_lists_what_exists() -> None:
    with pytest.raises(RunbookError, match=r"no runbook named 'nope'.*available: .*certbot-force-renew"):
        find_runbook("nope", runbook_dirs())


def test_runbooks_for_endpoint() -> None:
    entries = list_runbooks(runbook_dirs())
    ep = Endpoint(name="app", host="a.example", tags=("nginx",), runbooks=("certbot-dry-run",))
    names = [r.name for r in runbooks_for(ep, entries)]
    assert names[0] == "certbot-dry-run" and "nginx-reload" in names
    assert "cert-manager-reissue" not in names


def test_good_runbook(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, GOOD))
    assert [s.id for s in rb.steps] == ["one", "two"]
    assert rb.steps[0].timeout == 120.0


def test_run_as_one_line_is_split_before_substitution(tmp_path: Path) -> None:
    rb = load_runbook(
        write(tmp_path, GOOD.replace('run: [echo, "{cert_name}"]', "run: echo --name={cert_name} 'a b'"))
    )
    assert rb.steps[0].argv[2] == ("a b",)


BAD = [
    ("name: rb\ntitle: t\nstep:\n  - id: x\n", 3, "step", "unknown key (did you mean 'steps'?)"),
    (GOOD.replace("  - id: one\n", "  - id: one\n    timout: 5\n"), 8, "steps[0].timout", "did you mean 'timeout'?"),
    (GOOD.replace('"{cert_name}"]', '"{cert_nme}"]'), 8, "steps[0].run[1]", "unknown variable {cert_nme} (did you mean {cert_name}?)"),
    (GOOD.replace('"{cert_name}"]', '"{cert.subject}"]'), 8, "steps[0].run[1]", "observed from the server"),
    (GOOD.replace('"{cert_name}"]', '"{sans}"]'), 8, "steps[0].run[1]", "never substituted"),
    (GOOD.replace('run: ["{reload}"]', 'run: ["x{reload}"]'), 10, "steps[1].run[0]", "can only fill a whole argument"),
    (GOOD.replace('run: [echo, "{cert_name}"]', "run: [nginx, -t, '&&', reload]"), 8, "steps[0].run[2]", "shell operator"),
    (GOOD.replace("  - id: two", "  - id: one"), 9, "steps[1].id", "duplicate step id 'one' (first on line 7)"),
    (GOOD.replace("type: cert_name", "type: certname"), 4, "params.cert_name.type", "unknown type 'certname'"),
    (GOOD.replace("  - id: one\n", "  - id: one\n    confirm: maybe\n"), 8, "steps[0].confirm", "expected true, false or typed"),
    (GOOD.replace("title: A runbook", 'title: "unclosed'), None, None, "invalid YAML"),
    (GOOD.replace("title: A runbook", "title: no"), 2, "title", "expected a string, got a boolean"),
    (GOOD.replace("title: A runbook", "title: !!python/object/apply:os.system [id]"), 2, "title", "YAML tag"),
    (GOOD.replace("title: A runbook", "title: !!python/name:os.system ''"), None, None, "invalid YAML"),
    (GOOD + "extra: &a {x: 1}\nmore:\n  <<: *a\n", 13, None, "YAML aliases"),
    (GOOD.replace("name: rb", "name: Bad Name"), 1, "name", "lower-case"),
    (GOOD.replace('  reload: {type: command, default: systemctl reload nginx}', '  serial: {default: x}'), 5, "params.serial", "observed"),
    (
        GOOD.replace('  reload: {type: command, default: systemctl reload nginx}', '  api_token: {secret: true, default: ""}')
        .replace('run: ["{reload}"]', 'run: [curl, "{api_token}"]'),
        10, "steps[1].run[1]", "secret",
    ),
    (GOOD.replace('run: ["{reload}"]', "script: 'echo {cert_name}'"), 10, "steps[1].script", "constant text"),
    (GOOD.replace('run: [echo, "{cert_name}"]', 'run: ["-rf"]'), 8, "steps[0].run[0]", "cannot start with '-'"),
    (GOOD.replace('    run: ["{reload}"]', "    verify: {expect: newer}"), 10, "steps[1].verify.expect", "one of"),
    (GOOD.replace('default: "{sni}"', 'default: "{reload}"'), 4, "params.cert_name.default", "only use built-in"),
    (GOOD.replace("  - id: two\n", "  - id: two\n    on_failure:\n      - id: x\n        run: [a]\n        on_failure: [{id: y, run: [b]}]\n"), 13, "steps[1].on_failure[0].on_failure", "cannot have their own"),
    (GOOD.replace('    run: ["{reload}"]', "    confirm: true"), 9, "steps[1].message", "needs a message"),
    (GOOD.split("steps:")[0] + "steps: []\n", 6, "steps", "is required"),
    (GOOD.replace('  - id: one\n', '  - id: one\n    timeout: 99999\n'), 8, "steps[0].timeout", "at most 3600"),
    (GOOD.replace('  - id: one\n', '  - id: one\n    env: {"BAD-NAME": x}\n'), 8, "steps[0].env.BAD-NAME", "not an environment variable name"),
    (GOOD.replace('  - id: one\n', '  - id: one\n    where: remote\n'), 8, "steps[0].where", "'target'"),
    (GOOD.replace("  cert_name:", "  host:"), 4, "params.host", "built-in variable"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "key", "fragment"), BAD, ids=[b[3][:40] for b in BAD])
def test_bad_runbooks_name_file_line_key(
    tmp_path: Path, text: str, line: int | None, key: str | None, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    message = str(info.value)
    assert "\n" not in message.split(": ", 2)[0]
    assert message.startswith(str(path)), message
    assert fragment in message, message
    if line is not None:
        assert info.value.line == line, message
    if key is not None:
        assert info.value.key == key, message
        assert MESSAGE.match(message), message


def test_name_must_match_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "other")
    with pytest.raises(RunbookError, match=r"name the file rb\.yaml"):
        load_runbook(path)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="file not found"):
        load_runbook(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(RunbookError, match="not UTF-8"):
        load_runbook(tmp_path / "bin.yaml")
    with pytest.raises(RunbookError, match="is a directory"):
        load_runbook(tmp_path)


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(6)
    )
    path = write(tmp_path, "name: rb\ntitle: t\n" + lol + "steps: [{id: a, run: [x]}]\n")
    started = time.monotonic()
    with pytest.raises(RunbookError, match=r"rb.yaml:4: YAML aliases"):
        load_runbook(path)
    assert time.monotonic() - started < 30  # generous: it is linear, not 9**7
