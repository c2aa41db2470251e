"""``certpager check`` as a subprocess, the way cron jobs and the on-call engineer run it.

Exit codes follow Nagios (0 ok, 1 warning, 2 critical/page/error, 3 unknown);
bad input is one line on stderr naming what and where, never a traceback.
Servers are Python TLS servers on loopback serving generated chains. The CLI
reads the real clock, so validity margins here are hours or days.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.codes import ANALYSIS_CODES, ERROR_CODES
from tests.support.pki import PKI, Hierarchy
from tests.support.tls_server import TLSServer

from certpager.lab.ports import free_port

ANALYSIS_AND_ERROR_CODES = {*ANALYSIS_CODES, *ERROR_CODES}


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("certpager")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certpager"]


def certpager(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``certpager`` script."""
    return subprocess.run(
        [*_cli(), *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        cwd=cwd,
    )


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    """Exit 3, nothing on stdout, exactly one line on stderr, no traceback."""
    assert run.returncode == 3, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert run.stdout == ""
    return lines[0]


@dataclass
class Lab:
    ca: Hierarchy
    ports: dict[str, int]
    files: dict[str, Path]

    def target(self, name: str, sni: str = "app.test") -> str:
        return f"127.0.0.1:{self.ports[name]}@{sni}"


@pytest.fixture(scope="module")
def lab(pki: PKI, ca: Hierarchy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One server per verdict: ok, warning, critical, page; plus a port that refuses."""
    chains = {
        "ok": [ca.leaf("app.test", not_before=-10, not_after=80), ca.intermediate],
        "warning": [ca.leaf("app.test", not_before=-355, not_after=10), ca.intermediate],
        "critical": [ca.leaf("app.test", not_before=-10, not_after=80)],
        "page": [ca.leaf("app.test", not_before=-91, not_after=-1), ca.intermediate],
    }
    servers: list[TLSServer] = []
    ports: dict[str, int] = {}
    files: dict[str, Path] = {}
    try:
        for name, chain in chains.items():
            chain_file, key_file = pki.write_chain(f"cli-{name}", chain, key_of=chain[0])
            server = TLSServer(chain_file, key_file, max_connections=10_000)
            server.start()
            servers.append(server)
            ports[name] = server.port
            files[name] = chain_file
        ports["error"] = free_port()
        yield Lab(ca, ports, files)
    finally:
        for server in servers:
            server.stop()


def _table_status(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[1:] if line and not line.startswith(" ")][:-1]


# --- exit codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("ok", 0, "OK"),
        ("warning", 1, "WARNING"),
        ("critical", 2, "CRITICAL"),
        ("page", 2, "PAGE"),
        ("error", 2, "ERROR"),
    ],
)
def test_exit_code_per_status(lab: Lab, name: str, code: int, status: str) -> None:
    run = certpager("check", "--ca-file", str(lab.ca.root_file), "--timeout", "5", lab.target(name))
    assert run.returncode == code, run.stdout + run.stderr
    assert _table_status(run.stdout) == [status]
    assert "Traceback" not in run.stderr


def test_worst_status_decides_and_table_is_worst_first(lab: Lab) -> None:
    ok_warn = certpager("check", "--ca-file", str(lab.ca.root_file), lab.target("ok"), lab.target("warning"))
    assert ok_warn.returncode == 1
    everything = certpager(
        "check",
        "--ca-file",
        str(lab.ca.root_file),
        "--timeout",
        "5",
        *(lab.target(n) for n in ("ok", "warning", "critical", "page", "error")),
    )
    assert everything.returncode == 2
    assert _table_status(everything.stdout) == ["PAGE", "ERROR", "CRITICAL", "WARNING", "OK"]
    assert everything.stdout.rstrip().endswith("5 endpoint(s): 1 page, 1 error, 1 critical, 1 warning, 1 ok")


def test_table_has_every_finding_in_plain_words_with_fix(lab: Lab) -> None:
    run = certpager(
        "check", "--ca-file", str(lab.ca.root_file), lab.target("warning"), lab.target("critical")
    )
    out = run.stdout
    assert "expires_soon: certificate expires in" in out
    assert "renewal_overdue:" in out
    assert "chain_incomplete: the server did not send the intermediate certificate" in out
    assert out.count("fix: ") >= 3
    assert "\x1b[" not in out  # NO_COLOR and not a terminal


# --- bad input: exit 3, one line --------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("127.0.0.1:99999", "out of range"),
        ("example.test:https", "is not a number"),
        ("bad host:443", "not a valid host name"),
        ("example.test@10.0.0.1", "SNI"),
        ("[::1", "unclosed"),
        ("", "empty"),
    ],
)
def test_bad_target_is_one_line_exit_3(target: str, words: str) -> None:
    line = one_line_error(certpager("check", target))
    assert words in line
    assert line.startswith("certpager: ")


def test_bad_line_in_targets_file_names_file_and_line(tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("# prod endpoints\nexample.test:443\n\n127.0.0.1:70000  # typo\n")
    line = one_line_error(certpager("check", "--targets", str(targets)))
    assert f"{targets}:4:" in line
    assert "70000" in line


def test_missing_targets_file(tmp_path: Path) -> None:
    line = one_line_error(certpager("check", "--targets", str(tmp_path / "nope.txt")))
    assert "nope.txt" in line


def test_missing_ca_file(tmp_path: Path) -> None:
    line = one_line_error(certpager("check", "--ca-file", str(tmp_path / "ca.pem"), "example.test"))
    assert "--ca-file" in line and "ca.pem" in line


def test_no_targets_and_no_default_config(tmp_path: Path) -> None:
    line = one_line_error(certpager("check", env={"XDG_CONFIG_HOME": str(tmp_path)}))
    assert "no targets" in line


@pytest.mark.parametrize(
    "args",
    [
        ("--concurrency", "0", "x.test"),
        ("--timeout", "soon", "x.test"),
        ("--frobnicate",),
        ("--timeout", "0", "x.test"),
    ],
)
def test_bad_option_is_one_line_exit_3(args: tuple[str, ...]) -> None:
    line = one_line_error(certpager("check", *args))
    assert "certpager" in line


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    return path


def test_config_typo_in_key_is_one_line_naming_file_line_key(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "endpoints:\n  - name: app\n    host: app.example.test\n    prot: 8443\n",
    )
    line = one_line_error(certpager("check", "--config", str(path)))
    assert line.startswith(f"certpager: {path}:4: endpoints[0].prot: unknown key")
    assert "did you mean 'port'" in line


def test_config_typo_via_global_config_option(tmp_path: Path) -> None:
    path = _config(tmp_path, "settings:\n  timout: 5\nendpoints: []\n")
    line = one_line_error(certpager("--config", str(path), "check"))
    assert f"{path}:2: settings.timout:" in line and "did you mean 'timeout'" in line


def test_config_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "endpoints:\n  - name: app\n    host: [unclosed\n")
    line = one_line_error(certpager("check", "--config", str(path)))
    assert f"{path}:" in line and "invalid YAML" in line


def test_config_missing_file(tmp_path: Path) -> None:
    line = one_line_error(certpager("check", "--config", str(tmp_path / "missing.yaml")))
    assert "missing.yaml" in line and "not found" in line


def test_config_unknown_endpoint_filter(tmp_path: Path, lab: Lab) -> None:
    path = _config(tmp_path, f"endpoints:\n  - name: app\n    host: 127.0.0.1\n    port: {lab.ports['ok']}\n")
    line = one_line_error(certpager("check", "--config", str(path), "--endpoint", "nope"))
    assert "nope" in line and "app" in line


# --- JSON -----------------------------------------------------------------------------------

TOP_KEYS = {
    "name",
    "host",
    "port",
    "sni",
    "status",
    "days_left",
    "not_after",
    "tls_version",
    "cipher",
    "chain_length",
    "chain",
    "findings",
    "backends",
    "error",
    "timings",
}
CERT_KEYS = {"subject", "issuer", "not_before", "not_after", "sha256", "serial", "key", "signature_algorithm"}
FINDING_KEYS = {"code", "severity", "message"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_json_shape(lab: Lab, pki: PKI) -> None:
    run = certpager(
        "check",
        "--json",
        "--ca-file",
        str(lab.ca.root_file),
        "--timeout",
        "5",
        lab.target("ok"),
        lab.target("warning"),
        lab.target("error"),
    )
    assert run.returncode == 2
    ok, warning, error = json.loads(run.stdout)  # input order
    for report in (ok, warning, error):
        assert set(report) >= TOP_KEYS, TOP_KEYS - set(report)
        for f in report["findings"]:
            assert set(f) >= FINDING_KEYS and f["severity"] in {
                "info",
                "warning",
                "critical",
                "page",
                "error",
            }
        assert isinstance(report["backends"], list) and len(report["backends"]) == 1
    assert ok["name"] == lab.target("ok")
    assert ok["host"] == "127.0.0.1" and ok["port"] == lab.ports["ok"] and ok["sni"] == "app.test"
    assert ok["status"] == "ok" and ok["error"] is None
    assert ok["tls_version"] == "TLSv1.3" and ok["cipher"]
    assert ok["chain_length"] == 2 == len(ok["chain"])
    assert 79 < ok["days_left"] <= 80
    assert ISO_Z.match(ok["not_after"])
    leaf, inter = ok["chain"]
    for cert in (leaf, inter):
        assert set(cert) >= CERT_KEYS, CERT_KEYS - set(cert)
        assert ISO_Z.match(cert["not_before"]) and ISO_Z.match(cert["not_after"])
        assert re.fullmatch(r"[0-9a-f]{64}", cert["sha256"])
        assert re.fullmatch(r"[0-9A-F]+", cert["serial"])
    assert leaf["subject"] == "CN=app.test,O=certpager tests"
    assert leaf["issuer"] == inter["subject"] == lab.ca.intermediate.subject
    assert leaf["key"] == "EC P-256" and inter["key"] == "RSA 2048"
    assert inter["signature_algorithm"] == "sha256WithRSAEncryption"
    assert inter["sha256"] == lab.ca.intermediate.sha256
    assert ok["not_after"] == leaf["not_after"]
    timings = ok["timings"]
    assert {"dns_ms", "connect_ms", "handshake_ms"} <= set(timings)
    assert timings["connect_ms"] is not None and timings["handshake_ms"] is not None
    (backend,) = ok["backends"]
    assert backend["address"] == "127.0.0.1" and backend["port"] == lab.ports["ok"]

    assert warning["status"] == "warning"
    codes = {f["code"]: f for f in warning["findings"]}
    assert codes["expires_soon"]["severity"] == "warning"
    assert "renewal_overdue" in codes

    assert error["status"] == "error"
    assert [f["code"] for f in error["findings"]] == ["connect_refused"]
    assert error["error"] and error["days_left"] is None and error["not_after"] is None
    assert error["chain"] == [] and error["chain_length"] == 0


def test_json_is_only_json_on_stdout(lab: Lab) -> None:
    run = certpager("check", "--json", "--ca-file", str(lab.ca.root_file), lab.target("critical"))
    assert run.returncode == 2
    data = json.loads(run.stdout)
    assert [f["code"] for f in data[0]["findings"] if f["code"] in ANALYSIS_AND_ERROR_CODES] == [
        "chain_incomplete"
    ]


# --- several endpoints, targets file, config, backends ---------------------------------------


def test_targets_file_with_comments(lab: Lab, tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text(
        "# cron: certpager check --targets targets.txt\n"
        f"{lab.target('ok')}   # the healthy one\n"
        "\n"
        f"   {lab.target('warning')}\n"
        f"127.0.0.1:{lab.ports['error']}\n"
    )
    run = certpager(
        "check", "--json", "--targets", str(targets), "--ca-file", str(lab.ca.root_file), "--concurrency", "1"
    )
    assert run.returncode == 2
    reports = json.loads(run.stdout)
    assert [r["status"] for r in reports] == ["ok", "warning", "error"]
    assert reports[2]["sni"] is None  # an IP target sends no SNI


def test_config_endpoints_filter_and_settings(lab: Lab, tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "settings:\n"
        "  timeout: 5\n"
        "  thresholds: {warning_days: 100, critical_days: 7, page_days: 3}\n"
        "endpoints:\n"
        f"  - name: healthy\n    host: 127.0.0.1\n    port: {lab.ports['ok']}\n    sni: app.test\n"
        f"    ca_file: {lab.ca.root_file}\n"
        f"  - name: missing-intermediate\n    host: 127.0.0.1\n    port: {lab.ports['critical']}\n"
        f"    sni: app.test\n    ca_file: {lab.ca.root_file}\n",
    )
    both = certpager("check", "--json", "--config", str(path))
    assert both.returncode == 2
    healthy, missing = json.loads(both.stdout)
    assert healthy["name"] == "healthy" and missing["name"] == "missing-intermediate"
    # the config's thresholds apply: 80 days left is under warning_days 100
    assert healthy["status"] == "warning"
    assert "expires_soon" in {f["code"] for f in healthy["findings"]}
    only = certpager("check", "--json", "--config", str(path), "--endpoint", "healthy")
    assert only.returncode == 1
    assert [r["name"] for r in json.loads(only.stdout)] == ["healthy"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_explicit_backends_each_get_a_result(
    lab: Lab, tmp_path: Path, pki: PKI, serve: Callable[..., TLSServer]
) -> None:
    second = serve(lab.files["ok"], lab.files["ok"].with_name("cli-ok.key.pem"), host="127.0.0.2")
    backends = [
        f"127.0.0.1:{lab.ports['ok']}",
        f"127.0.0.2:{second.port}",
        f"127.0.0.1:{lab.ports['critical']}",
    ]
    if _ipv6_loopback():
        third = serve(lab.files["ok"], lab.files["ok"].with_name("cli-ok.key.pem"), host="::1")
        backends.append(f"[::1]:{third.port}")
    path = _config(
        tmp_path,
        "endpoints:\n"
        "  - name: app\n    host: app.test\n"
        f"    ca_file: {lab.ca.root_file}\n"
        "    backends:\n" + "".join(f'      - "{b}"\n' for b in backends),
    )
    run = certpager("check", "--json", "--config", str(path))
    assert run.returncode == 2, run.stderr
    (report,) = json.loads(run.stdout)
    got = [(b["address"], b["port"]) for b in report["backends"]]
    want = [(b.rsplit(":", 1)[0].strip("[]"), int(b.rsplit(":", 1)[1])) for b in backends]
    assert got == want
    assert [b["status"] for b in report["backends"]][:3] == ["ok", "ok", "critical"]
    incomplete = [f for f in report["findings"] if f["code"] == "chain_incomplete"]
    assert incomplete and incomplete[0]["backends"] == [backends[2]]
    assert report["sni"] == "app.test"


def test_every_address_of_localhost_is_probed(pki: PKI, ca: Hierarchy) -> None:
    """``localhost`` resolves to whatever this machine says (127.0.0.1, and ::1 where
    /etc/hosts lists it): one server per address on one port, one backend result each."""
    infos = socket.getaddrinfo("localhost", None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    addresses = sorted({str(i[4][0]) for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)})
    assert addresses, "localhost does not resolve"
    chain_file, key_file = pki.write_chain("cli-localhost", [ca.leaf("app.test"), ca.intermediate])
    servers: list[TLSServer] = []
    try:
        port = 0
        for address in addresses:
            server = TLSServer(chain_file, key_file, host=address, port=port)
            server.start()
            servers.append(server)
            port = server.port
        run = certpager("check", "--json", "--ca-file", str(ca.root_file), f"localhost:{port}@app.test")
    finally:
        for server in servers:
            server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    (report,) = json.loads(run.stdout)
    assert sorted(b["address"] for b in report["backends"]) == addresses
    assert all(b["status"] == "ok" for b in report["backends"])
    assert all(server.handshakes >= 1 for server in servers)


def test_dns_failure_is_an_error_finding_not_a_crash() -> None:
    # A 64-character label cannot be encoded for DNS: it fails locally, nothing is sent.
    run = certpager("check", "--json", "--timeout", "3", f"{'a' * 64}.test:443")
    assert run.returncode == 2, run.stderr
    (report,) = json.loads(run.stdout)
    assert [f["code"] for f in report["findings"]] == ["dns_error"]
    assert "Traceback" not in run.stderr


def test_hostile_names_do_not_reach_the_terminal(
    pki: PKI, ca: Hierarchy, serve: Callable[..., TLSServer]
) -> None:
    """Certificate text is printed with control characters replaced, never raw."""
    evil = ca.root.intermediate("Evil \x1b[2J\x1b]0;pwned\x07 CA")
    chain_file, key_file = pki.write_chain("cli-evil", [evil.leaf("app.test"), evil, ca.root])
    server = serve(chain_file, key_file)
    run = certpager("check", "--ca-file", str(ca.root_file), f"127.0.0.1:{server.port}@app.test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "Evil" in run.stdout and "pwned" in run.stdout
    as_json = certpager(
        "check", "--json", "--ca-file", str(ca.root_file), f"127.0.0.1:{server.port}@app.test"
    )
    assert "\x1b" not in as_json.stdout
    (report,) = json.loads(as_json.stdout)
    assert "\x1b" in report["chain"][1]["subject"]  # the data itself is kept, escaped by JSON
