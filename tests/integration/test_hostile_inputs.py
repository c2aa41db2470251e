"""Hostile and broken input files and values, through the installed ``certpager`` command.

One corpus per class of input (files, broken runbooks, numbers, strings, patterns,
ports, built-in values, trust bundles, flag policies). Every case must end the same
way: exit 3, exactly one line on stderr that names the file (and line and key where
there is one), nothing on stdout, no traceback, and no hang (a FIFO or ``/dev/zero``
ends well inside the subprocess timeout, which is only a guard: nothing is timed).
Each class also has positive controls, so a corpus that passes because everything
is refused would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import pytest
from tests.support.pki import PKI

from certpager.config import load_config
from certpager.errors import ConfigError

HANG_GUARD = 60
"""Seconds after which a case counts as hung (never reached by a passing run)."""


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("certpager")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certpager"]


@dataclass
class Home:
    """An isolated $HOME / $XDG_CONFIG_HOME with a user runbook directory."""

    root: Path

    @property
    def runbooks(self) -> Path:
        return self.root / "config" / "certpager" / "runbooks"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "NO_COLOR": "1",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [*_cli(), *args],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=HANG_GUARD,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.root,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"certpager {' '.join(args)} hung (no answer in {HANG_GUARD} s)")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path)
    h.runbooks.mkdir(parents=True)
    return h


def bad_input(run: subprocess.CompletedProcess[str], *where: str) -> str:
    """Exit 3, one line on stderr naming every part of ``where``, no traceback, no stdout."""
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    assert run.returncode == 3, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    lines = run.stderr.strip("\n").split("\n")
    assert len(lines) == 1, run.stderr
    line = lines[0]
    assert line.startswith("certpager: "), line
    assert line.isprintable(), repr(line)  # nothing invisible reaches the terminal
    for part in where:
        assert part in line, (part, line)
    assert run.stdout == ""
    return line


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


ENDPOINT = "endpoints:\n  - name: app\n    host: 127.0.0.1\n    port: 9\n"


# =================================================================== files

FIFO, DEVZERO, DIRECTORY, SOCKET = "fifo", "/dev/zero", "directory", "socket"


def _special(home: Home, kind: str, name: str) -> Path:
    path = home.root / name
    if kind == FIFO:
        os.mkfifo(path)
    elif kind == DEVZERO:
        path.symlink_to("/dev/zero")
    elif kind == DIRECTORY:
        path.mkdir()
    elif kind == SOCKET:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    return path


FILE_CASES: list[tuple[str, bytes | str, str, str]] = [
    # (id, content or special kind, expected words, where: 'L' = a line number is named)
    ("fifo", FIFO, "not a regular file (a FIFO)", ""),
    ("dev-zero", DEVZERO, "not a regular file (a character device)", ""),
    ("directory", DIRECTORY, "is a directory", ""),
    ("socket", SOCKET, "not a regular file (a socket)", ""),
    ("too-large", b"#" * (4 * 1024 * 1024 + 1), "the limit is 4194304 bytes", ""),
    ("not-utf8", b"endpoints:\n  - name: \xff\xfe\n", "not UTF-8 text", ":2"),
    ("latin1", "endpoints:\n  - name: caf\u00e9\n".encode("latin-1"), "not UTF-8 text", ":2"),
    ("nul-byte", b"endpoints:\n  - name: a\x00b\n", "contains a NUL byte", ":2"),
    ("deep-flow", "endpoints: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels deep", ":1"),
    (
        "deep-block",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
        "nested more than 64 levels deep",
        ":64",
    ),
    ("deep-mixed", "a: " + "{b: [" * 100 + "]}" * 100 + "\n", "nested more than 64 levels deep", ":1"),
    ("huge-int", "settings:\n  concurrency: " + "9" * 5000 + "\n", "too many to be a number", ":2"),
    ("python-tag", "endpoints: !!python/object:os.system [1]\n", "not supported", ":1"),
    ("bad-yaml", "endpoints: [\n", "invalid YAML", ":2"),
    ("control-char", "endpoints:\n  - name: a\x1bb\n", "invalid YAML", ":2"),
    ("alias-bomb", "a: &a [x, x]\nb: &b [*a, *a]\nendpoints: *b\n", "aliases", ""),
    ("key-with-escape", 'endpoints:\n  - name: a\n    host: h\n    "\\e[31mx": 1\n', "ESCAPE", ":4"),
    ("key-with-bidi", 'endpoints:\n  - name: a\n    "ho\\u202est": h\n', "RIGHT-TO-LEFT", ":3"),
]


@pytest.mark.parametrize(
    ("content", "words", "line"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_config_file_class(home: Home, content: bytes | str, words: str, line: str) -> None:
    if content in (FIFO, DEVZERO, DIRECTORY, SOCKET):
        path = _special(home, str(content), "endpoints.yaml")
    else:
        path = write(home.root / "endpoints.yaml", content)
    msg = bad_input(home.run("check", "--config", str(path)), f"{path}{line}", words)
    if line:
        assert f"{path}{line}:" in msg or f"{path}{line} " in msg, msg


@pytest.mark.parametrize("kind", [FIFO, DEVZERO, DIRECTORY, SOCKET, "large", "binary", "nul"])
def test_targets_file_class(home: Home, kind: str) -> None:
    if kind == "large":
        path = write(home.root / "targets.txt", b"127.0.0.1\n" * 500_000)
    elif kind == "binary":
        path = write(home.root / "targets.txt", b"127.0.0.1\n\xff\n")
    elif kind == "nul":
        path = write(home.root / "targets.txt", b"127.0.0.1\n\x00\n")
    else:
        path = _special(home, kind, "targets.txt")
    bad_input(home.run("check", "--targets", str(path)), str(path))


@pytest.mark.parametrize("kind", [FIFO, DEVZERO, DIRECTORY])
def test_runbook_file_given_by_path(home: Home, kind: str) -> None:
    config = write(home.root / "endpoints.yaml", ENDPOINT)
    path = _special(home, kind, "rb.yaml")
    bad_input(home.run("run", str(path), "--config", str(config), "-e", "app", "--plan"), str(path))


@pytest.mark.parametrize("key", ["known_hosts", "identity_files", "client_cert"])
@pytest.mark.parametrize("kind", [FIFO, DEVZERO, DIRECTORY])
def test_files_named_in_the_config(home: Home, key: str, kind: str) -> None:
    path = _special(home, kind, "special")
    if key == "client_cert":
        body = f"    client_cert: {path}\n    client_key: {path}\n"
    else:
        value = f"[{path}]" if key == "identity_files" else str(path)
        body = f"    ssh: {{host: 127.0.0.1, {key}: {value}}}\n"
    config = write(home.root / "endpoints.yaml", ENDPOINT + body)
    bad_input(home.run("check", "--config", str(config)), f"{config}:5: endpoints[0]", str(path))


def test_files_positive_controls(home: Home) -> None:
    """A BOM, CRLF line ends and a config just under the cap are all accepted."""
    config = write(home.root / "endpoints.yaml", "\ufeff" + ENDPOINT.replace("\n", "\r\n"))
    run = home.run("run", "--list", "--config", str(config))
    assert run.returncode == 0, run.stderr
    padded = ENDPOINT + "#" * (4 * 1024 * 1024 - len(ENDPOINT) - 2) + "\n"
    write(config, padded)
    assert home.run("run", "--list", "--config", str(config)).returncode == 0


# ======================================================== broken runbook files

GOOD_RUNBOOK = "name: {name}\ntitle: fine\nsteps:\n  - id: a\n    run: [echo, hi]\n    where: local\n"

BROKEN_RUNBOOKS: list[tuple[str, bytes | str, str]] = [
    ("deep", "name: deep\ntitle: t\nsteps: " + "[" * 800 + "]" * 800 + "\n", "nested more than 64"),
    ("fifo", FIFO, "a FIFO"),
    ("zero", DEVZERO, "character device"),
    ("adir", DIRECTORY, "is a directory"),
    ("binary", b"name: binary\ntitle: \xff\n", "not UTF-8"),
    ("nulbyte", b"name: nulbyte\x00\n", "NUL byte"),
    ("nantimeout", "name: nantimeout\ntitle: t\nsteps:\n  - {id: a, run: [x], timeout: .nan}\n", "finite"),
    ("infdeadline", "name: infdeadline\ntitle: t\nsteps:\n  - {id: v, verify: {deadline: .inf}}\n", "finite"),
    (
        "nandays",
        "name: nandays\ntitle: t\nsteps:\n  - {id: v, verify: {min_days_left: -.inf}}\n",
        "finite",
    ),
    (
        "badpattern",
        'name: badpattern\ntitle: t\nparams:\n  p: {pattern: "[z-a]"}\nsteps:\n  - {id: a, run: [x, "{p}"]}\n',
        "invalid regular expression",
    ),
    (
        "hugepattern",
        "name: hugepattern\ntitle: t\nparams:\n  p: {pattern: '"
        + "(a)" * 600
        + "'}\nsteps:\n  - {id: a, run: [x]}\n",
        "the limit is 1024",
    ),
    (
        "repeat",
        "name: repeat\ntitle: t\nparams:\n  p: {pattern: 'a{99999999999}'}\nsteps:\n  - {id: a, run: [x]}\n",
        "invalid regular expression",
    ),
    (
        "bigint",
        "name: bigint\ntitle: t\nsteps:\n  - {id: a, run: [x], timeout: " + "7" * 5000 + "}\n",
        "too many",
    ),
    ("biditle", 'name: biditle\ntitle: "ok\\u202eevil"\nsteps:\n  - {id: a, run: [x]}\n', "RIGHT-TO-LEFT"),
    ("stepnl", 'name: stepnl\ntitle: t\nsteps:\n  - {id: "a\\n", run: [x]}\n', "LINE FEED"),
    ("escarg", 'name: escarg\ntitle: t\nsteps:\n  - {id: a, run: [echo, "\\e[2J"]}\n', "ESCAPE"),
    ("aliases", "name: aliases\ntitle: t\nx: &x [1]\nsteps: *x\n", "aliases"),
    ("pytag", "name: pytag\ntitle: t\nsteps: !!python/object:os.system [x]\n", "not supported"),
    (
        "badflags",
        "name: badflags\ntitle: t\nparams:\n  a: {type: args, allow_flags: {--x: nope}}\nsteps:\n  - {id: a, run: [x, '{a}']}\n",
        "allow_flags",
    ),
]


def _broken(home: Home, name: str, content: bytes | str) -> Path:
    if content in (FIFO, DEVZERO, DIRECTORY):
        path = home.runbooks / f"{name}.yaml"
        if content == FIFO:
            os.mkfifo(path)
        elif content == DEVZERO:
            path.symlink_to("/dev/zero")
        else:
            path.mkdir()
        return path
    return write(home.runbooks / f"{name}.yaml", content)


@pytest.mark.parametrize(("name", "content", "words"), BROKEN_RUNBOOKS, ids=[b[0] for b in BROKEN_RUNBOOKS])
def test_one_broken_runbook_never_hides_the_others(
    home: Home, name: str, content: bytes | str, words: str
) -> None:
    config = write(home.root / "endpoints.yaml", ENDPOINT + "    ssh: local\n")
    write(home.runbooks / "aaa-good.yaml", GOOD_RUNBOOK.format(name="aaa-good"))
    write(home.runbooks / "zzz-good.yaml", GOOD_RUNBOOK.format(name="zzz-good"))
    path = _broken(home, name, content)
    listing = home.run("run", "--list", "--config", str(config))
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert "INVALID" in rows[name] and str(path) in rows[name] and words in rows[name], rows.get(name)
    assert "fine" in rows["aaa-good"] and "fine" in rows["zzz-good"]
    assert "certbot-force-renew" in rows  # the shipped ones too
    bad_input(home.run("run", name, "--config", str(config), "-e", "app", "--plan"), str(path), words)


# ====================================================================== numbers

NUMBER_KEYS = [
    # (id, config with {v} where the number goes, expected line, expected key)
    ("settings.timeout", "settings:\n  timeout: {v}\n" + ENDPOINT, 2, "settings.timeout"),
    ("settings.dns_timeout", "settings:\n  dns_timeout: {v}\n" + ENDPOINT, 2, "settings.dns_timeout"),
    ("settings.interval", "settings:\n  interval: {v}\n" + ENDPOINT, 2, "settings.interval"),
    ("settings.concurrency", "settings:\n  concurrency: {v}\n" + ENDPOINT, 2, "settings.concurrency"),
    (
        "thresholds",
        "settings:\n  thresholds:\n    warning_days: {v}\n" + ENDPOINT,
        3,
        "settings.thresholds.warning_days",
    ),
    ("endpoint.timeout", ENDPOINT + "    timeout: {v}\n", 5, "endpoints[0].timeout"),
    (
        "hsts_min_days",
        ENDPOINT + "    http:\n      hsts_min_days: {v}\n",
        6,
        "endpoints[0].http.hsts_min_days",
    ),
    (
        "ssh.connect_timeout",
        ENDPOINT + "    ssh:\n      host: 127.0.0.1\n      connect_timeout: {v}\n",
        7,
        "endpoints[0].ssh.connect_timeout",
    ),
    (
        "endpoint.thresholds",
        ENDPOINT + "    thresholds: {{page_days: {v}}}\n",
        5,
        "endpoints[0].thresholds.page_days",
    ),
]
NON_FINITE = [".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1.0e+400", "-1.0e+400", "!!float nan"]


def config_error(path: Path, *where: str) -> str:
    """The loader's error for ``path``: one printable line naming every part of ``where``."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text and text.isprintable(), repr(text)
    for part in where:
        assert part in text, (part, text)
    return text


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(
    ("text", "line", "key"), [k[1:] for k in NUMBER_KEYS], ids=[k[0] for k in NUMBER_KEYS]
)
def test_config_numbers_are_finite(tmp_path: Path, text: str, line: int, key: str, value: str) -> None:
    path = write(tmp_path / "endpoints.yaml", text.format(v=value))
    config_error(path, f"{path}:{line}: {key}:", "finite")


@pytest.mark.parametrize(
    ("text", "line", "key", "value"),
    [(*k[1:], v) for k, v in zip(NUMBER_KEYS, cycle(NON_FINITE), strict=False)],
    ids=[k[0] for k in NUMBER_KEYS],
)
def test_config_numbers_are_finite_cli(home: Home, text: str, line: int, key: str, value: str) -> None:
    path = write(home.root / "endpoints.yaml", text.format(v=value))
    bad_input(home.run("check", "--config", str(path)), f"{path}:{line}: {key}:", "finite")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("settings:\n  interval: 1.0e+300\n" + ENDPOINT, 2, "settings.interval"),
        (
            "settings:\n  thresholds: {warning_days: 1.0e+300}\n" + ENDPOINT,
            2,
            "settings.thresholds.warning_days",
        ),
        (ENDPOINT + "    http: {hsts_min_days: 1.0e+300}\n", 5, "endpoints[0].http.hsts_min_days"),
        ("settings:\n  timeout: 0.0000001\n" + ENDPOINT, 2, "settings.timeout"),
    ],
)
def test_config_numbers_are_bounded(home: Home, text: str, line: int, key: str) -> None:
    path = write(home.root / "endpoints.yaml", text)
    bad_input(home.run("check", "--config", str(path)), f"{path}:{line}: {key}:", "must be at")


RUNBOOK_NUMBERS = [
    ("step-timeout", "  - {{id: a, run: [x], timeout: {v}}}\n", "steps[0].timeout"),
    ("verify-deadline", "  - {{id: v, verify: {{deadline: {v}}}}}\n", "steps[0].verify.deadline"),
    ("verify-interval", "  - {{id: v, verify: {{interval: {v}}}}}\n", "steps[0].verify.interval"),
    ("min-days-left", "  - {{id: v, verify: {{min_days_left: {v}}}}}\n", "steps[0].verify.min_days_left"),
    (
        "on-failure-timeout",
        "  - {{id: a, run: [x], on_failure: [{{id: b, run: [y], timeout: {v}}}]}}\n",
        "steps[0].on_failure[0].timeout",
    ),
]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+999"])
@pytest.mark.parametrize(
    ("step", "key"), [r[1:] for r in RUNBOOK_NUMBERS], ids=[r[0] for r in RUNBOOK_NUMBERS]
)
def test_runbook_numbers_are_finite(home: Home, step: str, key: str, value: str) -> None:
    config = write(home.root / "endpoints.yaml", ENDPOINT + "    ssh: local\n")
    rb = write(home.root / "num.yaml", "name: num\ntitle: t\nsteps:\n" + step.format(v=value))
    bad_input(
        home.run("run", str(rb), "--config", str(config), "-e", "app", "--plan"), f"{rb}:4: {key}:", "finite"
    )


CLI_NUMBERS = [
    ("--timeout", "nan"),
    ("--timeout", "inf"),
    ("--timeout", "-inf"),
    ("--timeout", "1e400"),
    ("--timeout", "1e-300"),
    ("--timeout", "\uff15"),  # fullwidth 5
    ("--timeout", "5\u0660"),  # arabic-indic zero
    ("--timeout", "0x10"),
    ("--timeout", " 5"),
    ("--concurrency", "\uff11\uff10"),  # fullwidth 10
    ("--concurrency", "1_0"),
    ("--concurrency", "+10"),
    ("--concurrency", "1e3"),
    ("--concurrency", "\u00b9"),  # superscript one
    ("--workers", "nan"),
    ("--workers", "\u0968"),  # devanagari two
    ("--http-port", "\uff18\uff10"),
    ("--http-port", "\u00b2"),
]


@pytest.mark.parametrize(("flag", "value"), CLI_NUMBERS)
def test_cli_numbers_are_ascii_and_finite(home: Home, flag: str, value: str) -> None:
    bad_input(home.run("check", "127.0.0.1:9", f"{flag}={value}"), f"argument {flag}")


def test_numbers_positive_controls(home: Home) -> None:
    path = write(
        home.root / "endpoints.yaml",
        "settings:\n  timeout: 2.5\n  interval: 30\n  thresholds: {warning_days: 20.5}\n"
        + ENDPOINT
        + "    timeout: 3\n    ssh: local\n",
    )
    assert home.run("run", "--list", "--config", str(path)).returncode == 0
    rb = write(
        home.root / "num.yaml",
        "name: num\ntitle: t\nsteps:\n  - {id: a, run: [x], timeout: 30.5, where: local}\n",
    )
    run = home.run("run", str(rb), "--config", str(path), "-e", "app", "--plan")
    assert run.returncode == 0 and "timeout 30.5 s" in run.stdout, run.stderr


# ====================================================================== strings

HOSTILE_CHARS = {
    "escape": "\\e[31m",
    "newline": "\\n",
    "carriage-return": "\\r",
    "tab": "\\t",
    "delete": "\\x7f",
    "nul": "\\0",
    "c1-next-line": "\\N",
    "c1-csi": "\\x9b",
    "bidi-rlo": "\\u202e",
    "bidi-lre": "\\u202a",
    "bidi-rli": "\\u2067",
    "bidi-pdi": "\\u2069",
    "zero-width-space": "\\u200b",
    "zero-width-joiner": "\\u200d",
    "lrm": "\\u200e",
    "bom": "\\ufeff",
    "line-separator": "\\L",
    "paragraph-separator": "\\P",
    "no-break-space": "\\_",
    "soft-hyphen": "\\xad",
}

STRING_KEYS = [
    # (id, config with {s} inside a double-quoted YAML scalar, line, key)
    ("name", 'endpoints:\n  - name: "app{s}x"\n    host: 127.0.0.1\n', 2, "endpoints[0].name"),
    ("host", 'endpoints:\n  - name: app\n    host: "ho{s}st.test"\n', 3, "endpoints[0].host"),
    ("ipv6-zone", 'endpoints:\n  - name: app\n    host: "fe80::1%eth{s}0"\n', 3, "endpoints[0].host"),
    ("backend", ENDPOINT + '    backends: ["10.0.0.1", "b{s}e"]\n', 5, "endpoints[0].backends[1]"),
    ("tag", ENDPOINT + '    tags: [prod, "we{s}b"]\n', 5, "endpoints[0].tags[1]"),
    ("ssh.user", ENDPOINT + '    ssh: {{host: 127.0.0.1, user: "ro{s}ot"}}\n', 5, "endpoints[0].ssh.user"),
    ("ssh.host", ENDPOINT + '    ssh: {{host: "ho{s}st"}}\n', 5, "endpoints[0].ssh.host"),
    ("ssh-string", ENDPOINT + '    ssh: "root@ho{s}st"\n', 5, "endpoints[0].ssh"),
    ("sni", ENDPOINT + '    sni: "app{s}.test"\n', 5, "endpoints[0].sni"),
    ("param", ENDPOINT + '    params: {{cert_name: "a{s}b"}}\n', 5, "endpoints[0].params.cert_name"),
    ("runbooks", ENDPOINT + '    runbooks: ["ngi{s}nx"]\n', 5, "endpoints[0].runbooks[0]"),
    ("stored.path", ENDPOINT + '    stored: {{path: "/etc/{s}cert.pem"}}\n', 5, "endpoints[0].stored.path"),
    ("stored.secret", ENDPOINT + '    stored: {{secret: "ns/na{s}me"}}\n', 5, "endpoints[0].stored.secret"),
    ("http.path", ENDPOINT + '    http: {{path: "/he{s}alth"}}\n', 5, "endpoints[0].http.path"),
    ("ca_file", ENDPOINT + '    ca_file: "ca{s}.pem"\n', 5, "endpoints[0].ca_file"),
    ("runbook_dirs", 'settings:\n  runbook_dirs: ["r{s}b"]\n' + ENDPOINT, 2, "settings.runbook_dirs[0]"),
]


@pytest.mark.parametrize("char", list(HOSTILE_CHARS.values()), ids=list(HOSTILE_CHARS))
@pytest.mark.parametrize(
    ("text", "line", "key"), [k[1:] for k in STRING_KEYS], ids=[k[0] for k in STRING_KEYS]
)
def test_config_strings_are_printable(tmp_path: Path, text: str, line: int, key: str, char: str) -> None:
    """Every key that reaches a terminal or a command, with every kind of invisible character."""
    path = write(tmp_path / "endpoints.yaml", text.format(s=char))
    config_error(path, f"{path}:{line}: {key}:")


@pytest.mark.parametrize(
    ("text", "line", "key", "char"),
    [(*k[1:], c) for k, c in zip(STRING_KEYS, cycle(HOSTILE_CHARS.values()), strict=False)],
    ids=[k[0] for k in STRING_KEYS],
)
def test_config_strings_are_printable_cli(home: Home, text: str, line: int, key: str, char: str) -> None:
    path = write(home.root / "endpoints.yaml", text.format(s=char))
    bad_input(home.run("check", "--config", str(path)), f"{path}:{line}: {key}:")


@pytest.mark.parametrize(
    "target",
    [
        "app\x1b[2J.test",
        "app.test\n",
        "fe80::1%eth0\x1b",
        "[fe80::1%\u202e]:443",
        "app.test@sni\u200b.test",
        "app\u2028.test:443",
    ],
)
def test_cli_targets_are_printable(home: Home, target: str) -> None:
    line = bad_input(home.run("check", target))
    assert "\x1b" not in line and "\u202e" not in line


def test_strings_positive_controls(home: Home) -> None:
    """Printable Unicode in a tag, an IPv6 zone id, a multi-line runbook description."""
    path = write(
        home.root / "endpoints.yaml",
        ENDPOINT + '    tags: ["caf\u00e9", prod]\n    ssh: local\n  - name: v6\n    host: "fe80::1%eth0"\n',
    )
    assert home.run("run", "--list", "--config", str(path)).returncode == 0
    rb = write(
        home.root / "ok.yaml",
        "name: ok\ntitle: t\ndescription: |\n  two\n  lines\n"
        'steps:\n  - {id: a, run: [printf, "%s\\n", x], where: local}\n',
    )
    assert home.run("run", str(rb), "--config", str(path), "-e", "app", "--plan").returncode == 0


# ==================================================== patterns (`$` and newlines)

PATTERN_CASES = [
    ("name-newline", 'endpoints:\n  - name: "app\\n"\n    host: 127.0.0.1\n', 2, "endpoints[0].name"),
    ("sni-newline", ENDPOINT + '    sni: "app.test\\n"\n', 5, "endpoints[0].sni"),
    (
        "pin-newline",
        ENDPOINT + '    pins: ["sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\\n"]\n',
        5,
        "endpoints[0].pins[0]",
    ),
    ("host-newline", 'endpoints:\n  - name: app\n    host: "app.test\\nx"\n', 3, "endpoints[0].host"),
]


@pytest.mark.parametrize(
    ("text", "line", "key"), [c[1:] for c in PATTERN_CASES], ids=[c[0] for c in PATTERN_CASES]
)
def test_config_patterns_do_not_accept_a_trailing_newline(home: Home, text: str, line: int, key: str) -> None:
    path = write(home.root / "endpoints.yaml", text)
    bad_input(home.run("check", "--config", str(path)), f"{path}:{line}: {key}:")


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("^[a-z]+$", "abc\n"),
        ("[a-z]+$", "abc\n"),
        ("^[a-z]+\\Z", "abc\r"),
        ("[a-z]+", "abc\u2028"),
        (".*", "abc\x1b[0m"),
        ("[^/]+", "ab\u202ecd"),
    ],
)
def test_param_patterns_match_the_whole_value(home: Home, pattern: str, value: str) -> None:
    config = write(home.root / "endpoints.yaml", ENDPOINT + "    ssh: local\n")
    rb = write(
        home.root / "pat.yaml",
        f"name: pat\ntitle: t\nparams:\n  p: {{pattern: '{pattern}'}}\nsteps:\n  - {{id: a, run: [echo, '{{p}}'], where: local}}\n",
    )
    bad_input(
        home.run("run", str(rb), "--config", str(config), "-e", "app", "--plan", "-p", f"p={value}"),
        f"{rb}:4: params.p:",
    )
    ok = home.run("run", str(rb), "--config", str(config), "-e", "app", "--plan", "-p", "p=abc")
    assert ok.returncode == 0, ok.stderr


# ======================================================================== ports

PORT_CASES = [
    ("fullwidth", 'host: "127.0.0.1:\uff14\uff14\uff13"', 3, "endpoints[0].host"),
    ("superscript", 'host: "127.0.0.1:4\u00b2"', 3, "endpoints[0].host"),
    ("arabic-indic", 'host: "127.0.0.1:\u0664\u0664\u0663"', 3, "endpoints[0].host"),
    ("plus", 'host: "127.0.0.1:+443"', 3, "endpoints[0].host"),
    ("underscore", 'host: "127.0.0.1:4_43"', 3, "endpoints[0].host"),
    ("space", 'host: "127.0.0.1: 443"', 3, "endpoints[0].host"),
    ("v6-fullwidth", 'host: "[::1]:\uff18\uff10"', 3, "endpoints[0].host"),
    ("backend", 'host: 127.0.0.1\n    backends: ["10.0.0.1:\uff18\uff10"]', 4, "endpoints[0].backends"),
    ("yaml-hex", "host: 127.0.0.1\n    port: 0x1bb", 4, "endpoints[0].port"),
    ("yaml-octal", "host: 127.0.0.1\n    port: 0o777", 4, "endpoints[0].port"),
    ("yaml-sexagesimal", "host: 127.0.0.1\n    port: 7:23", 4, "endpoints[0].port"),
    ("yaml-underscore", "host: 127.0.0.1\n    port: 4_43", 4, "endpoints[0].port"),
    ("http-port-hex", "host: 127.0.0.1\n    http: {port: 0x50}", 4, "endpoints[0].http.port"),
    ("ssh-port", 'host: 127.0.0.1\n    ssh: "root@127.0.0.1:\uff12\uff12"', 4, "endpoints[0].ssh"),
    ("out-of-range", 'host: "127.0.0.1:65536"', 3, "endpoints[0].host"),
]


@pytest.mark.parametrize(("body", "line", "key"), [c[1:] for c in PORT_CASES], ids=[c[0] for c in PORT_CASES])
def test_ports_are_ascii_digits(home: Home, body: str, line: int, key: str) -> None:
    path = write(home.root / "endpoints.yaml", f"endpoints:\n  - name: app\n    {body}\n")
    bad_input(home.run("check", "--config", str(path)), f"{path}:{line}: {key}:")


@pytest.mark.parametrize(
    "target", ["127.0.0.1:\uff14\uff14\uff13", "127.0.0.1:4\u00b2", "[::1]:\u0664\u0664", "127.0.0.1:+443"]
)
def test_cli_target_ports_are_ascii_digits(home: Home, target: str) -> None:
    bad_input(home.run("check", target), "port")


# ============================================================ built-in values

BUILTIN_CONFIG_CASES = [
    ("relative-path", "stored: {path: etc/cert.pem}", "endpoints[0].stored.path", "absolute"),
    ("dotdot-path", "stored: {path: /etc/../root/x}", "endpoints[0].stored.path", "'..'"),
    ("upper-namespace", "stored: {secret: NS/name}", "endpoints[0].stored.secret", "namespace"),
    ("dash-namespace", "stored: {secret: -n/name}", "endpoints[0].stored.secret", "namespace"),
    ("bad-secret", "stored: {secret: ns/Bad_Name}", "endpoints[0].stored.secret", "Kubernetes name"),
    (
        "option-secret",
        "stored: {namespace: ns, secret: --all}",
        "endpoints[0].stored.secret",
        "Kubernetes name",
    ),
    (
        "long-namespace",
        "stored: {namespace: " + "a" * 64 + ", secret: x}",
        "endpoints[0].stored.namespace",
        "namespace",
    ),
    ("dash-user", "ssh: {host: 127.0.0.1, user: -oProxyCommand=x}", "endpoints[0].ssh.user", "user"),
    ("option-host", "ssh: {host: -oProxyCommand=x}", "endpoints[0].ssh.host", "host"),
]


@pytest.mark.parametrize(
    ("body", "key", "words"), [c[1:] for c in BUILTIN_CONFIG_CASES], ids=[c[0] for c in BUILTIN_CONFIG_CASES]
)
def test_builtin_sources_are_validated_in_the_config(home: Home, body: str, key: str, words: str) -> None:
    path = write(home.root / "endpoints.yaml", ENDPOINT + f"    {body}\n")
    bad_input(home.run("check", "--config", str(path)), f"{path}:5: {key}:", words)


@pytest.mark.parametrize(
    ("host", "variable"),
    [("under_score.test", "host"), ("under_score.test", "sni"), ("-x.test", "host")],
)
def test_builtin_values_are_validated_before_any_step(home: Home, host: str, variable: str) -> None:
    marker = home.root / "ran"
    config = write(
        home.root / "endpoints.yaml", f"endpoints:\n  - name: app\n    host: '{host}'\n    ssh: local\n"
    )
    rb = write(
        home.root / "bi.yaml",
        "name: bi\ntitle: t\nsteps:\n"
        f"  - {{id: a, run: [touch, '{marker}'], where: local}}\n"
        f"  - {{id: b, run: [echo, '{{{variable}}}'], where: local}}\n",
    )
    if host.startswith("-"):
        bad_input(home.run("run", str(rb), "--config", str(config), "-e", "app", "--yes"), str(config))
    else:
        bad_input(
            home.run("run", str(rb), "--config", str(config), "-e", "app", "--yes"),
            str(rb),
            f"{{{variable}}}",
        )
    assert not marker.exists()


# =============================================================== trust bundles


@pytest.fixture
def pem_files(home: Home) -> dict[str, Path]:
    import datetime as dt

    pki = PKI(dt.datetime.now(dt.UTC), home.root / "pki")
    root = pki.root()
    files = {
        "good": write(home.root / "good.pem", root.pem),
        "empty": write(home.root / "empty.pem", b""),
        "blank": write(home.root / "blank.pem", b"\n\n   \n"),
        "garbage": write(home.root / "garbage.pem", b"not a certificate at all\n"),
        "key-only": write(home.root / "key.pem", root.key_pem),
        "der": write(home.root / "der.pem", root.der),
        "truncated": write(home.root / "trunc.pem", root.pem[: len(root.pem) // 2]),
        "bad-base64": write(
            home.root / "b64.pem", b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
        ),
        "binary": write(home.root / "bin.pem", os.urandom(2048)),
        "fifo": _special(home, FIFO, "fifo.pem"),
        "dev-zero": _special(home, DEVZERO, "zero.pem"),
        "directory": _special(home, DIRECTORY, "dir.pem"),
        "missing": home.root / "missing.pem",
    }
    return files


BAD_BUNDLES = [
    "empty",
    "blank",
    "garbage",
    "key-only",
    "der",
    "truncated",
    "bad-base64",
    "binary",
    "fifo",
    "dev-zero",
    "directory",
    "missing",
]


@pytest.mark.parametrize("bundle", BAD_BUNDLES)
def test_unusable_ca_file_argument(home: Home, pem_files: dict[str, Path], bundle: str) -> None:
    path = pem_files[bundle]
    bad_input(home.run("check", "127.0.0.1:9", "--ca-file", str(path)), "--ca-file", str(path))


@pytest.mark.parametrize("bundle", BAD_BUNDLES)
def test_unusable_ca_file_in_config(home: Home, pem_files: dict[str, Path], bundle: str) -> None:
    path = pem_files[bundle]
    config = write(home.root / "endpoints.yaml", ENDPOINT + f"    ca_file: {path}\n")
    bad_input(home.run("check", "--config", str(config)), f"{config}:5: endpoints[0].ca_file:", str(path))


@pytest.mark.parametrize("flag", ["--client-cert", "--client-key"])
@pytest.mark.parametrize("bundle", ["fifo", "dev-zero", "directory", "missing", "garbage"])
def test_unusable_client_files(home: Home, pem_files: dict[str, Path], flag: str, bundle: str) -> None:
    other = "--client-key" if flag == "--client-cert" else "--client-cert"
    run = home.run("check", "127.0.0.1:9", flag, str(pem_files[bundle]), other, str(pem_files["good"]))
    bad_input(run, "--client-")


def test_trust_positive_control(home: Home, pem_files: dict[str, Path]) -> None:
    """A good bundle is accepted: the probe runs (nothing listens on port 9: an error, exit 2)."""
    run = home.run(
        "check",
        "127.0.0.1:9",
        "--ca-file",
        str(pem_files["good"]),
        "--no-http",
        "--no-protocols",
        "--timeout",
        "5",
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr


# ================================================================ flag policies

FLAG_CASES = [
    "--server=https://evil.test/dir",
    "--server https://evil.test/dir",
    "--serv=https://evil.test/dir",
    "--se https://evil.test/dir",
    "--staging",
    "--stag",
    "--test-cert",
    "--config-dir /etc/letsencrypt --server=https://evil.test",
    "--config-dir=--server",
    "--config-dir --server",
    "--config-dir ../etc",
    "--config-dir relative/dir",
    "--config-dir /etc/../root",
    "--work-dir",
    "--logs-dir=",
    "--config-dir=/a=b --",
    "-c /etc/evil.ini",
    "positional",
    "--config-dir /a --config-dir /b --dry-run",
    "--Config-dir /a",
    "--config-dir /tmp/x\u202e",
]


@pytest.mark.parametrize("runbook", ["certbot-dry-run", "certbot-force-renew"])
@pytest.mark.parametrize("args", FLAG_CASES)
def test_flag_policies_are_allow_lists(home: Home, runbook: str, args: str) -> None:
    config = write(
        home.root / "endpoints.yaml", ENDPOINT + "    sni: app.test\n    tags: [certbot]\n    ssh: local\n"
    )
    run = home.run(
        "run", runbook, "--config", str(config), "-e", "app", "--plan", "-p", f"certbot_args={args}"
    )
    bad_input(run, f"{runbook}.yaml", "params.certbot_args:")


@pytest.mark.parametrize("runbook", ["certbot-dry-run", "certbot-force-renew"])
def test_flag_policy_positive_control(home: Home, runbook: str) -> None:
    config = write(
        home.root / "endpoints.yaml", ENDPOINT + "    sni: app.test\n    tags: [certbot]\n    ssh: local\n"
    )
    args = "--config-dir /srv/le/config --work-dir=/srv/le/work --logs-dir /srv/le/logs"
    run = home.run(
        "run", runbook, "--config", str(config), "-e", "app", "--plan", "-p", f"certbot_args={args}"
    )
    assert run.returncode == 0, run.stderr
    assert "--config-dir /srv/le/config --work-dir=/srv/le/work --logs-dir /srv/le/logs" in run.stdout


def test_corpus_sizes() -> None:
    """The review asked for many cases per class; keep the counts honest."""
    sizes = {
        "files": len(FILE_CASES) + 7 + 3 + 9,
        "runbooks": len(BROKEN_RUNBOOKS),
        "numbers": len(NUMBER_KEYS) * len(NON_FINITE) + 4 + len(RUNBOOK_NUMBERS) * 4 + len(CLI_NUMBERS),
        "strings": len(STRING_KEYS) * len(HOSTILE_CHARS) + 6,
        "patterns": len(PATTERN_CASES) + 6,
        "ports": len(PORT_CASES) + 4,
        "builtins": len(BUILTIN_CONFIG_CASES) + 3,
        "trust": 2 * len(BAD_BUNDLES) + 10,
        "flags": 2 * len(FLAG_CASES),
    }
    assert min(sizes.values()) >= 10, sizes
