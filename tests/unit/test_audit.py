"""The audit log: permissions, append-only durability, torn lines, "outcome unknown",
multi-process appends, and redaction (T51, T57-T59)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from certpager.errors import AuditError
from certpager.runbook.audit import (
    REDACTED,
    AuditLog,
    LineRedactor,
    OutputCapture,
    RunAudit,
    default_audit_path,
    redact,
    redact_params,
)


def test_default_path_follows_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTPAGER_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_audit_path() == tmp_path / "certpager" / "audit.jsonl"
    monkeypatch.setenv("CERTPAGER_AUDIT_LOG", str(tmp_path / "x.jsonl"))
    assert default_audit_path() == tmp_path / "x.jsonl"


def test_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "state" / "certpager" / "audit.jsonl")
    log.append({"type": "hello"})
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log.path.parent).st_mode) == 0o700
    (record,) = log.read().records
    assert record["type"] == "hello" and record["v"] == 1 and record["ts"].endswith("Z")


def test_refuses_symlink_group_writable_foreign_owner_and_open_directory(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "a" / "audit.jsonl"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(AuditError, match="symbolic link"):
        AuditLog(link).append({"type": "x"})
    loose = tmp_path / "b" / "audit.jsonl"
    loose.parent.mkdir()
    loose.write_text("")
    loose.chmod(0o664)
    with pytest.raises(AuditError, match="chmod 600"):
        AuditLog(loose).append({"type": "x"})
    if os.getuid() == 0:
        foreign = tmp_path / "c" / "audit.jsonl"
        foreign.parent.mkdir()
        foreign.write_text("")
        foreign.chmod(0o600)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(AuditError, match="owned by uid 65534"):
            AuditLog(foreign).append({"type": "x"})
    open_dir = tmp_path / "d"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(AuditError, match=r"writable by group or others .*chmod 700"):
        AuditLog(open_dir / "audit.jsonl").append({"type": "x"})
    assert target.read_text() == ""


def test_torn_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(50):
        log.append({"type": "n", "i": i, "pad": "x" * i})
    data = log.path.read_bytes()
    for cut in (2, 7, 30):
        log.path.write_bytes(data[:-cut])
        read = log.read()
        assert [r["i"] for r in read.records] == list(range(49))
        assert len(read.torn) == 1 and read.torn[0][0] == 50
    log.path.write_bytes(data + b"\xff\xfe garbage\n")
    read = log.read()
    assert len(read.records) == 50 and len(read.torn) == 1


def test_unfinished_runs_are_reported_once_and_active_ones_skipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    done = RunAudit(log, "run-done")
    done.write("run_start", endpoint="a", runbook="r", pid=1)
    done.write("step_intent", step_id="s", command="true")
    done.write("step_result", step_id="s", outcome="ok")
    done.write("run_end", outcome="succeeded")
    crashed = RunAudit(log, "run-crashed")
    crashed.write("run_start", endpoint="b", runbook="certbot-force-renew", pid=4242)
    crashed.write("step_intent", step_id="renew", command="certbot renew --force-renewal")
    active = RunAudit(log, "run-active")
    active.write("run_start", endpoint="c", runbook="r", pid=os.getpid())
    found = log.unfinished(is_active=lambda start: start["endpoint"] == "c")
    assert [u.run_id for u in found] == ["run-crashed"]
    (unknown,) = found
    assert unknown.open_steps == ("renew",)
    text = unknown.describe()
    assert (
        "outcome unknown" in text
        and "certbot renew --force-renewal" in text
        and "may or may not have run" in text
    )
    log.acknowledge(unknown)
    assert log.unfinished(is_active=lambda start: start["endpoint"] == "c") == []
    assert [u.run_id for u in log.unfinished()] == ["run-active"]


def _writer(path: str, tag: str, count: int) -> None:
    log = AuditLog(Path(path))
    for i in range(count):
        log.append({"type": "load", "tag": tag, "i": i, "blob": tag * 8192})


def test_two_processes_append_without_interleaving(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    procs = [ctx.Process(target=_writer, args=(str(path), tag, 300)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    elapsed = time.monotonic() - started
    read = AuditLog(path).read()
    assert read.torn == []
    assert len(read.records) == 600
    for tag in "ab":
        assert [r["i"] for r in read.records if r["tag"] == tag] == list(range(300))
    print(f"600 appends of 8 KiB with fsync from 2 processes: {elapsed:.2f} s")


def test_output_capture_keeps_head_and_tail_with_a_marker() -> None:
    capture = OutputCapture(cap=1000, head=200)
    for i in range(500):
        capture.add(f"line {i:04d}")
    text = capture.text()
    assert text.startswith("line 0000") and text.endswith("line 0499")
    assert capture.truncated and "characters left out" in text
    assert len(text) < 1100


# ------------------------------------------------------------------ redaction (T57)

RSA = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAcanaryRSA\n-----END RSA PRIVATE KEY-----"
EC = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIcanaryEC\n-----END EC PRIVATE KEY-----"
PKCS8 = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAcanaryPKCS8\n-----END PRIVATE KEY-----"
OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktcanaryOSSH\n-----END OPENSSH PRIVATE KEY-----"

LEAKS = [
    ("dns_cloudflare_api_token = canaryCFTOKEN0123456789abcdefghijklmn", "canaryCFTOKEN"),
    ("dns_cloudflare_api_key = canaryGLOBALKEY", "canaryGLOBALKEY"),
    ("dns_cloudflare_email = ops@example.com\ndns_cloudflare_api_key=canaryKEY2", "canaryKEY2"),
    (RSA, "canaryRSA"),
    (EC, "canaryEC"),
    (PKCS8, "canaryPKCS8"),
    (OPENSSH, "canaryOSSH"),
    ("  tls.key: LS0tcanaryTLSKEY", "canaryTLSKEY"),
    ('{"data": {"tls.crt": "LS0t", "tls.key": "LS0tcanaryJSON"}}', "canaryJSON"),
    ("Authorization: Bearer canaryBEARER", "canaryBEARER"),
    ("authorization: Basic canaryBASIC==", "canaryBASIC"),
    ("fetching https://admin:canaryURLPASS@git.example.com/repo", "canaryURLPASS"),
    ("export X_TOKEN=canaryEXPORT", "canaryEXPORT"),
    ("PASSWORD='canaryQUOTED'", "canaryQUOTED"),
    ("mysql --password=canaryFLAG -u root", "canaryFLAG"),
    ("vault login --token canarySPACEFLAG", "canarySPACEFLAG"),
    ("client_secret: canaryCLIENT", "canaryCLIENT"),
]


@pytest.mark.parametrize(("text", "canary"), LEAKS, ids=[c for _, c in LEAKS])
def test_redaction_corpus(text: str, canary: str) -> None:
    out = redact(text)
    assert canary not in out, out
    assert REDACTED in out or "[REDACTED" in out


BENIGN = [
    "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
    "Renewing an existing certificate for app.example.com",
    "Congratulations, all renewals succeeded:",
    "  /etc/letsencrypt/live/app.example.com/fullchain.pem (success)",
    "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok",
    'nginx: [emerg] cannot load certificate key "/etc/ssl/app.key": BIO_new_file() failed',
    "certificate.cert-manager.io/app renewed",
    'secret "app-tls" deleted',
    "secretName: app-tls",
    "tokenizer=fast mode=strict",
    "Cert not yet due for renewal",
    "key: value",
    "ssl_certificate_key /etc/ssl/private/app.key;",
    "--password-file /etc/app/pass.txt",
]


def test_benign_output_is_untouched() -> None:
    changed = [line for line in BENIGN if redact(line) != line]
    assert changed == []


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_token", True), ("X_TOKEN", True), ("tls.key", True), ("clientSecret", True), ("--password", True),
        ("dns_cloudflare_api_key", True), ("secretName", False), ("tokenizer", False), ("password_file", False),
        ("key", False), ("ssl_certificate_key", False), ("cert_name", False),
    ],
)  # fmt: skip
def test_secret_key_names(key: str, secret: bool) -> None:
    from certpager.runbook.audit import is_secret_key

    assert is_secret_key(key) is secret


def test_exact_secret_values_are_redacted() -> None:
    assert redact("value is hunter2-canary here", ["hunter2-canary"]) == f"value is {REDACTED} here"
    assert redact_params({"api_token": "x", "cert_name": "app", "pw": "p"}, ["pw"]) == {
        "api_token": REDACTED,
        "cert_name": "app",
        "pw": REDACTED,
    }


def test_line_redactor_hides_a_key_block_streamed_line_by_line() -> None:
    redactor = LineRedactor(["canary-secret"])
    lines = ["before", *PKCS8.splitlines(), "after canary-secret"]
    out = [redactor(line) for line in lines]
    assert out[0] == "before"
    assert out[1] == "[REDACTED PRIVATE KEY]"
    assert out[2] is None and out[3] is None
    assert out[4] == f"after {REDACTED}"


def test_redaction_is_linear_on_hostile_lines() -> None:
    started = time.monotonic()
    for text in ("A" * 16384, "a=b " * 4096, "x://" + "a" * 16384, "--" + "a" * 16384, "token" * 3000):
        redact(text)
    assert time.monotonic() - started < 5  # generous; quadratic backtracking took ~30 s


def test_records_are_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"type": "x", "text": "line\nbreak\x1b[31m é"})
    raw = log.path.read_text()
    assert raw.count("\n") == 1
    assert json.loads(raw)["text"] == "line\nbreak\x1b[31m é"
