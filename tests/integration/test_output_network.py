"""Hostile text and broken output, end to end with the installed ``certpager`` script and
real loopback servers: what a terminal receives never holds a raw control, bidi or
invisible character (certificate fields, config values, remote output, error lines); a
report that cannot be written is one line and exit 3; an AIA URL that the policy refuses
is never connected to, and an AIA server's bytes are never repeated."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.support.aia import aia_endpoint, aia_url, chain_incomplete, leaf_only
from tests.support.deep_servers import HttpServer, http_response
from tests.support.hostile_text import CORPUS, unsafe_bytes
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import LoopbackServer, TLSServer

from certpager.config import Endpoint
from certpager.probe.engine import check_endpoint

QUICK = ["--no-http", "--no-protocols", "--no-sni-check", "--no-aia"]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("certpager")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certpager"]


def certpager(
    *args: str, stdout: Any = subprocess.PIPE, cwd: Path | None = None, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", **kw.pop("env", {})}
    return subprocess.run(
        [*_cli(), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env=env,
        cwd=cwd,
        **kw,
    )


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert unsafe_bytes(stderr) == []
    return lines[0]


# --- certificate fields ---------------------------------------------------------------

CHUNKS = [CORPUS[i : i + 8] for i in range(0, len(CORPUS), 8)]


@pytest.mark.parametrize("chunk", CHUNKS, ids=[f"corpus{i}" for i in range(len(CHUNKS))])
def test_hostile_certificate_fields_reach_the_table_escaped(
    chunk: list[tuple[str, str]], pki: PKI, ca: Hierarchy, serve: Callable[..., TLSServer], tmp_path: Path
) -> None:
    """Each corpus string is an issuer CN (shown in the table) and the leaf's subject
    attributes; the name mismatch finding quotes the leaf's names."""
    targets = []
    for i, (case, text) in enumerate(chunk):
        issuer = ca.root.intermediate(f"{text} CA")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, text),
                x509.NameAttribute(NameOID.COMMON_NAME, f"cn {text}"),
            ]
        )
        leaf = issuer.leaf("other.test", ["other.test"], subject=subject)
        chain_file, key_file = pki.write_chain(f"out-{case}-{i}", [leaf, issuer], key_of=leaf)
        targets.append(f"127.0.0.1:{serve(chain_file, key_file).port}@app.test")
    run = certpager("check", "--ca-file", str(ca.root_file), *QUICK, *targets)
    assert run.returncode == 2, run.stderr  # hostname mismatch: critical
    assert unsafe_bytes(run.stdout) == []
    assert b"Traceback" not in run.stderr
    shown = run.stdout.decode()
    assert shown.count("CRITICAL  ") == len(chunk)
    assert "\\x" in shown or "\\u" in shown or "\\U" in shown  # shown, as visible escapes
    as_json = certpager("check", "--json", "--ca-file", str(ca.root_file), *QUICK, *targets)
    assert as_json.stdout.isascii()  # JSON escapes every non-ASCII character: still valid JSON
    reports = json.loads(as_json.stdout)
    assert len(reports) == len(chunk)


# --- config fields --------------------------------------------------------------------


@pytest.mark.parametrize(("case", "text"), CORPUS[:12], ids=[c for c, _ in CORPUS[:12]])
def test_hostile_config_values_are_refused_or_escaped(case: str, text: str, tmp_path: Path) -> None:
    """An endpoint name and tag holding the string: the loader may refuse it (one line,
    exit 3) or the table shows it escaped; either way the terminal gets no raw byte."""
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        yaml.safe_dump(
            {"endpoints": [{"name": f"n{text}", "host": "127.0.0.1", "port": 1, "tags": [text]}]},
            allow_unicode=False,
        )
    )
    run = certpager("check", "--config", str(config), *QUICK)
    if run.returncode == 3:
        assert str(config) in one_line(run.stderr)
        assert run.stdout == b""
    else:
        assert run.returncode == 2, run.stderr
        assert unsafe_bytes(run.stdout) == [] and unsafe_bytes(run.stderr) == []
        assert b"\\x" in run.stdout or b"\\u" in run.stdout or b"\\U" in run.stdout


# --- remote output and the run console ------------------------------------------------


def _runbook_env(tmp_path: Path, name: str = "k") -> tuple[Path, dict[str, str]]:
    rb = tmp_path / "runbooks"
    rb.mkdir()
    printed = "".join(text for _c, text in CORPUS).encode("utf-8")
    (tmp_path / "payload.bin").write_bytes(printed)
    (rb / "evil-output.yaml").write_text(
        "name: evil-output\n"
        "title: Print hostile bytes\n"
        "applies_to:\n  tags: [evil]\n"
        "steps:\n"
        "  - id: print\n"
        "    title: Print hostile bytes\n"
        f"    run: [cat, {json.dumps(str(tmp_path / 'payload.bin'))}]\n"
        "    timeout: 10\n"
    )
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "settings": {"runbook_dirs": ["runbooks"]},
                "endpoints": [
                    {"name": name, "host": "127.0.0.1", "port": 1, "tags": ["evil"], "ssh": "local"}
                ],
            }
        )
    )
    env = {
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    return config, env


def test_remote_output_reaches_the_run_console_escaped(tmp_path: Path) -> None:
    config, env = _runbook_env(tmp_path)
    run = certpager("run", "evil-output", "--endpoint", "k", "--yes", "--config", str(config), env=env)
    assert b"Traceback" not in run.stderr
    assert unsafe_bytes(run.stdout) == [] and unsafe_bytes(run.stderr) == []
    out = run.stdout.decode()
    assert "out| a\\x1b[2Jb" in out and "\\u202e" in out and "\\x9b2J" in out
    assert "Run SUCCEEDED" in out


# --- a report that cannot be written --------------------------------------------------


def _closed_pipe() -> int:
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.fixture
def ok_target(pki: PKI, ca: Hierarchy, serve: Callable[..., TLSServer]) -> list[str]:
    chain_file, key_file = pki.write_chain("out-ok", [ca.leaf("app.test"), ca.intermediate], key_of=None)
    return ["--ca-file", str(ca.root_file), f"127.0.0.1:{serve(chain_file, key_file).port}@app.test"]


@pytest.mark.parametrize("how", ["closed", "dev-full", "reader-gone"])
@pytest.mark.parametrize("fmt", ["table", "json"])
@pytest.mark.parametrize("status", ["ok", "error"])
def test_report_that_cannot_be_written_is_one_line_and_exit_3(
    how: str, fmt: str, status: str, ok_target: list[str]
) -> None:
    target = ok_target if status == "ok" else ["127.0.0.1:1"]
    args = ["check", *QUICK, *target, *(["--json"] if fmt == "json" else [])]
    if how == "closed":
        run = certpager(*args, stdout=None, preexec_fn=lambda: os.close(1))
    elif how == "dev-full":
        with open("/dev/full", "wb") as full:
            run = certpager(*args, stdout=full)
    else:
        fd = _closed_pipe()
        try:
            run = certpager(*args, stdout=fd)
        finally:
            os.close(fd)
    assert run.returncode == 3, run.stderr
    line = one_line(run.stderr)
    assert line.startswith("certpager: could not write the report: ")
    assert {"closed": "closed", "dev-full": "No space left on device", "reader-gone": "broken pipe"}[
        how
    ] in line


@pytest.mark.parametrize("how", ["dev-full", "reader-gone"])
def test_plan_that_cannot_be_written_is_one_line_and_exit_3(how: str, tmp_path: Path) -> None:
    config, env = _runbook_env(tmp_path)
    args = ["run", "evil-output", "--endpoint", "k", "--plan", "--config", str(config)]
    if how == "dev-full":
        with open("/dev/full", "wb") as full:
            run = certpager(*args, stdout=full, env=env)
    else:
        fd = _closed_pipe()
        try:
            run = certpager(*args, stdout=fd, env=env)
        finally:
            os.close(fd)
    assert run.returncode == 3, run.stderr
    assert "could not write the output" in one_line(run.stderr)


def test_run_whose_plan_cannot_be_written_runs_nothing(tmp_path: Path) -> None:
    config, env = _runbook_env(tmp_path)
    with open("/dev/full", "wb") as full:
        run = certpager(
            "run", "evil-output", "--endpoint", "k", "--yes", "--config", str(config), stdout=full, env=env
        )
    assert run.returncode == 3, run.stderr
    assert "could not write the output: No space left on device" in one_line(run.stderr)
    assert all("print" not in audit.read_text() for audit in tmp_path.rglob("audit.jsonl"))


def test_run_whose_reader_leaves_mid_run_finishes_and_exits_3(tmp_path: Path) -> None:
    """The reader reads the plan and leaves; the step (which waits for that) then prints:
    the run is not broken off halfway, and the one line names the outcome and the audit log."""
    config, env = _runbook_env(tmp_path)
    gate = tmp_path / "gate"
    runbook = tmp_path / "runbooks" / "evil-output.yaml"
    payload = tmp_path / "payload.bin"
    runbook.write_text(
        runbook.read_text().replace(
            f"run: [cat, {json.dumps(str(payload))}]",
            "run: [sh, -c, " + json.dumps(f"while [ ! -e {gate} ]; do sleep 0.05; done; cat {payload}") + "]",
        )
    )
    proc = subprocess.Popen(
        [*_cli(), "run", "evil-output", "--endpoint", "k", "--yes", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **env},
    )
    assert proc.stdout is not None and proc.stderr is not None
    seen = b""
    while b"$ sh -c" not in seen.split(b"[1/1]")[-1]:  # the step has started
        chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
        assert chunk, seen
        seen += chunk
    proc.stdout.close()  # the reader leaves
    gate.touch()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 3, err
    line = one_line(err)
    assert "could not write the run's output" in line and "broken pipe" in line
    assert "the run succeeded" in line and "audit log" in line
    audit = Path(line.rsplit("audit log ", 1)[1])
    assert "succeeded" in audit.read_text()


# --- AIA: the policy, and bytes never echoed -------------------------------------------


def _aia_endpoint(port: int, root_file: object, policy: str) -> Endpoint:
    return aia_endpoint(port, root_file, timeout=3.0, aia_private=policy)


HOST_FORMS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "localhost",
    "[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("host", HOST_FORMS)
async def test_refused_aia_fetch_sends_nothing(
    host: str,
    pki: PKI,
    ca: Hierarchy,
    zoo: Callable[[LoopbackServer], LoopbackServer],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    aia = zoo(HttpServer(routes={"/i.der": http_response(200, {}, ca.intermediate.der)}))
    url = f"http://{host}:{aia.port}/i.der"
    server = serve(*leaf_only(pki, ca.intermediate, url, f"aia-refused-{host.strip('[]').replace(':', '_')}"))
    report = await check_endpoint(_aia_endpoint(server.port, ca.root_file, "refuse"), now=now)
    facts = report.deep.as_json()["aia"]
    assert isinstance(facts, dict) and facts["state"] == "refused", facts
    finding = chain_incomplete(report)
    assert "refused by policy" in finding.message and "loopback" in finding.message
    assert aia.requests == [] and aia.accepted == 0  # type: ignore[attr-defined]  # not even a TCP connection
    # The same URL with the default policy and a loopback endpoint is fetched (the lab works).
    report = await check_endpoint(_aia_endpoint(server.port, ca.root_file, "auto"), now=now)
    assert report.deep.as_json()["aia"]["state"] == "completes_chain"  # type: ignore[index]


async def test_redirect_to_a_refused_address_is_not_followed(
    pki: PKI,
    ca: Hierarchy,
    zoo: Callable[[LoopbackServer], LoopbackServer],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    aia = zoo(
        HttpServer(
            routes={"/i.der": http_response(302, {"Location": "http://169.254.169.254/latest/meta-data/"})}
        )
    )
    server = serve(*leaf_only(pki, ca.intermediate, aia_url(aia.port, "/i.der"), "aia-redirect-metadata"))
    report = await check_endpoint(_aia_endpoint(server.port, ca.root_file, "auto"), now=now)
    facts = report.deep.as_json()["aia"]
    assert isinstance(facts, dict) and facts["state"] == "refused", facts
    assert "169.254.169.254 is a link-local address" in str(facts["detail"])


@pytest.mark.parametrize(
    "body",
    [
        b"\x1b[2J\x1b]0;pwned\x07 not a certificate",
        b"\xe2\x80\xae\xc2\x9bpwned",
        b"<html>" + b"A" * 5000,
    ],
)
async def test_aia_response_bytes_are_never_repeated(
    body: bytes,
    pki: PKI,
    ca: Hierarchy,
    zoo: Callable[[LoopbackServer], LoopbackServer],
    serve: Callable[..., TLSServer],
    now: dt.datetime,
) -> None:
    aia = zoo(HttpServer(routes={"/i.der": http_response(200, {}, body)}))
    server = serve(*leaf_only(pki, ca.intermediate, aia_url(aia.port, "/i.der"), f"aia-bytes-{len(body)}"))
    report = await check_endpoint(_aia_endpoint(server.port, ca.root_file, "auto"), now=now)
    text = json.dumps(report.deep.as_json()["aia"]) + " ".join(f.message for f in report.findings)
    assert f"not a certificate (DER, PEM or PKCS#7; {len(body)} bytes)" in text
    assert "pwned" not in text and "AAAA" not in text and "html" not in text
    assert body[:8].hex() not in text
