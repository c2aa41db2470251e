"""The endpoint config loader: a valid file becomes typed endpoints, and every kind of
mistake becomes one ``ConfigError`` naming the file, the line and the key.

Also the ``HOST[:PORT][@SNI]`` targets of ``certpager check`` and ``--targets`` files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certpager.config import (
    Backend,
    Config,
    Settings,
    Thresholds,
    default_config_path,
    load_config,
    parse_target,
    read_targets_file,
)
from certpager.errors import ConfigError, TargetError, UserError


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "endpoints.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def load(write, text: str) -> Config:
    return load_config(write(text))


def error(write, text: str) -> ConfigError:
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    rendered = str(err)
    assert "\n" not in rendered
    assert rendered.startswith(f"{path}:")
    return err


# --- a valid file ---------------------------------------------------------------------


def test_full_example_loads(write, tmp_path: Path) -> None:
    import datetime as dt

    from tests.support.pki import PKI

    pki = PKI(dt.datetime.now(dt.UTC), tmp_path / "pki")
    (tmp_path / "internal-ca.pem").write_bytes(pki.root().pem)
    (tmp_path / "client.pem").write_text("x")
    (tmp_path / "client.key").write_text("x")
    config = load(
        write,
        """\
settings:
  timeout: 7
  dns_timeout: 2
  concurrency: 50
  interval: 30
  thresholds: {warning_days: 21, critical_days: 10, page_days: 2}
endpoints:
  - name: app
    host: app.example.com
    port: 8443
    sni: www.example.com
    backends: [10.0.0.1, "10.0.0.2:9443", "[2001:db8::1]:443"]
    tags: [prod, web]
    ca_file: internal-ca.pem
    client_cert: client.pem
    client_key: client.key
    http: {port: 8080, redirect: true, hsts: false}
    pins: ["sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
    stored: {path: /etc/letsencrypt/live/app.example.com/cert.pem}
    ssh: {host: app.example.com, user: root, port: 2222}
    runbooks: [certbot-force-renew]
    params: {cert_name: app.example.com, retries: 3}
    thresholds: {warning_days: 30}
  - name: plain
    host: plain.example.com
""",
    )
    settings = config.settings
    assert settings.thresholds == Thresholds(21, 10, 2)
    assert (settings.timeout, settings.dns_timeout, settings.concurrency, settings.interval) == (7, 2, 50, 30)
    app, plain = config.endpoints
    assert app.name == "app" and app.host == "app.example.com" and app.port == 8443
    assert app.server_name == "www.example.com" and app.verify_name == "www.example.com"
    assert app.backends == (
        Backend("10.0.0.1", 8443),
        Backend("10.0.0.2", 9443),
        Backend("2001:db8::1", 443),
    )
    assert app.tags == ("prod", "web")
    assert app.ca_file == str(tmp_path / "internal-ca.pem")  # relative to the config file
    assert app.client_cert == str(tmp_path / "client.pem")
    assert app.http is not None and app.http.port == 8080 and app.http.hsts is False
    assert app.stored is not None and app.stored.kind == "file"
    assert app.ssh is not None and app.ssh.port == 2222 and app.ssh.user == "root"
    assert app.params == {"cert_name": "app.example.com", "retries": "3"}
    # per-endpoint thresholds override the global ones key by key
    assert app.thresholds == Thresholds(30, 10, 2)
    assert app.timeout == 7
    assert plain.port == 443 and plain.sni is None and plain.server_name == "plain.example.com"
    assert plain.thresholds == Thresholds(21, 10, 2)
    assert config.endpoint("plain") is plain and config.endpoint("nope") is None


def test_defaults(write) -> None:
    config = load(write, "endpoints:\n  - name: a\n    host: a.test\n")
    (ep,) = config.endpoints
    assert ep.port == 443 and ep.timeout == 10 and ep.thresholds == Thresholds(14, 7, 3)
    assert config.settings.concurrency == 100


def test_host_with_port_and_ip_hosts(write) -> None:
    config = load(
        write,
        "endpoints:\n"
        "  - {name: a, host: 'a.test:8443'}\n"
        "  - {name: b, host: 10.1.2.3}\n"
        "  - {name: c, host: '[::1]:9443'}\n"
        "  - {name: d, host: 'd.test', sni: false}\n",
    )
    a, b, c, d = config.endpoints
    assert (a.host, a.port) == ("a.test", 8443)
    assert b.server_name is None and b.verify_name == "10.1.2.3"  # no SNI for an IP
    assert (c.host, c.port) == ("::1", 9443) and c.address == "[::1]:9443"
    assert d.server_name is None  # sni: false sends none


def test_empty_endpoint_list_is_valid(write) -> None:
    assert load(write, "endpoints: []\n").endpoints == ()


def test_default_config_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "certpager" / "endpoints.yaml"


# --- every kind of mistake: file, line, key ------------------------------------------------

MISTAKES = [
    # (id, yaml, line, key, words)
    (
        "unknown-key",
        "endpoints:\n  - name: a\n    host: a.test\n    prot: 1\n",
        4,
        "endpoints[0].prot",
        "did you mean 'port'",
    ),
    ("unknown-top-key", "endpoints: []\nsetings: {}\n", 2, "setings", "did you mean 'settings'"),
    (
        "unknown-settings-key",
        "settings:\n  timout: 5\nendpoints: []\n",
        2,
        "settings.timout",
        "did you mean 'timeout'",
    ),
    (
        "unknown-threshold-key",
        "endpoints:\n  - name: a\n    host: a.test\n    thresholds:\n      critcal_days: 2\n",
        5,
        "endpoints[0].thresholds.critcal_days",
        "did you mean 'critical_days'",
    ),
    (
        "unknown-http-key",
        "endpoints:\n  - name: a\n    host: a.test\n    http: {redirct: true}\n",
        4,
        "endpoints[0].http.redirct",
        "did you mean 'redirect'",
    ),
    (
        "unknown-ssh-key",
        "endpoints:\n  - name: a\n    host: a.test\n    ssh: {host: h, usr: root}\n",
        4,
        "endpoints[0].ssh.usr",
        "did you mean 'user'",
    ),
    (
        "unknown-key-no-suggestion",
        "endpoints:\n  - name: a\n    host: a.test\n    zzzqqq: 1\n",
        4,
        "endpoints[0].zzzqqq",
        "valid keys here",
    ),
    (
        "port-string",
        "endpoints:\n  - name: a\n    host: a.test\n    port: https\n",
        4,
        "endpoints[0].port",
        "expected an integer, got a string",
    ),
    (
        "port-bool",
        "endpoints:\n  - name: a\n    host: a.test\n    port: true\n",
        4,
        "endpoints[0].port",
        "got a boolean",
    ),
    (
        "port-float",
        "endpoints:\n  - name: a\n    host: a.test\n    port: 443.5\n",
        4,
        "endpoints[0].port",
        "expected an integer",
    ),
    (
        "port-zero",
        "endpoints:\n  - name: a\n    host: a.test\n    port: 0\n",
        4,
        "endpoints[0].port",
        "at least 1",
    ),
    (
        "port-too-big",
        "endpoints:\n  - name: a\n    host: a.test\n    port: 70000\n",
        4,
        "endpoints[0].port",
        "at most 65535",
    ),
    (
        "port-in-host",
        "endpoints:\n  - name: a\n    host: 'a.test:99999'\n",
        3,
        "endpoints[0].host",
        "out of range",
    ),
    (
        "bad-backend-port",
        "endpoints:\n  - name: a\n    host: a.test\n    backends: ['10.0.0.1:0']\n",
        4,
        "endpoints[0].backends",
        "out of range",
    ),
    (
        "bad-ssh-port",
        "endpoints:\n  - name: a\n    host: a.test\n    ssh: root@h:99999\n",
        4,
        "endpoints[0].ssh",
        "out of range",
    ),
    (
        "timeout-string",
        "settings:\n  timeout: fast\nendpoints: []\n",
        2,
        "settings.timeout",
        "expected a number",
    ),
    ("timeout-negative", "settings:\n  timeout: -1\nendpoints: []\n", 2, "settings.timeout", "at least 0.1"),
    (
        "concurrency-zero",
        "settings:\n  concurrency: 0\nendpoints: []\n",
        2,
        "settings.concurrency",
        "at least 1",
    ),
    ("bell-string", "settings:\n  bell: loud\nendpoints: []\n", 2, "settings.bell", "true/false"),
    (
        "tags-int",
        "endpoints:\n  - name: a\n    host: a.test\n    tags: 5\n",
        4,
        "endpoints[0].tags",
        "list of strings",
    ),
    (
        "tags-item-map",
        "endpoints:\n  - name: a\n    host: a.test\n    tags:\n      - x\n      - {a: 1}\n",
        6,
        "endpoints[0].tags[1]",
        "expected a string",
    ),
    ("endpoints-mapping", "endpoints:\n  name: a\n", 1, "endpoints", "expected a list"),
    ("endpoint-string", "endpoints:\n  - a.test\n", 2, "endpoints[0]", "expected a mapping"),
    ("missing-name", "endpoints:\n  - host: a.test\n", 2, "endpoints[0].name", "is required"),
    ("missing-host", "endpoints:\n  - name: a\n", 2, "endpoints[0].host", "is required"),
    ("missing-endpoints", "settings: {}\n", 1, "endpoints", "is required"),
    ("name-with-space", "endpoints:\n  - name: a b\n    host: a.test\n", 2, "endpoints[0].name", "no spaces"),
    (
        "bad-host",
        "endpoints:\n  - name: a\n    host: 'bad host'\n",
        3,
        "endpoints[0].host",
        "not a valid host name",
    ),
    (
        "sni-ip",
        "endpoints:\n  - name: a\n    host: a.test\n    sni: 10.0.0.1\n",
        4,
        "endpoints[0].sni",
        "not a DNS name",
    ),
    (
        "bad-pin",
        "endpoints:\n  - name: a\n    host: a.test\n    pins: [abc]\n",
        4,
        "endpoints[0].pins",
        "SPKI pin",
    ),
    (
        "threshold-order",
        "settings:\n  thresholds: {warning_days: 3, critical_days: 7}\nendpoints: []\n",
        2,
        "settings.thresholds.warning_days",
        "warning_days >= critical_days >= page_days",
    ),
    (
        "threshold-negative",
        "settings:\n  thresholds:\n    page_days: -1\nendpoints: []\n",
        3,
        "settings.thresholds.page_days",
        "at least 0",
    ),
    (
        "duplicate-name",
        "endpoints:\n  - name: a\n    host: a.test\n  - name: b\n    host: b.test\n  - name: a\n    host: c.test\n",
        6,
        "endpoints[2].name",
        "first on line 2",
    ),
    (
        "ca-file-missing",
        "endpoints:\n  - name: a\n    host: a.test\n    ca_file: nope.pem\n",
        4,
        "endpoints[0].ca_file",
        "file not found",
    ),
    (
        "client-key-missing",
        "endpoints:\n  - name: a\n    host: a.test\n    client_key: nope.key\n",
        4,
        "endpoints[0].client_key",
        "file not found",
    ),
    (
        "params-list",
        "endpoints:\n  - name: a\n    host: a.test\n    params: {a: [1]}\n",
        4,
        "endpoints[0].params.a",
        "strings or numbers",
    ),
    (
        "stored-both",
        "endpoints:\n  - name: a\n    host: a.test\n    stored: {path: /x, secret: ns/y}\n",
        4,
        "endpoints[0].stored.secret",
        "not both",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_mistake_names_file_line_key(write, text: str, line: int, key: str, words: str) -> None:
    err = error(write, text)
    assert (err.line, err.key) == (line, key), str(err)
    assert words in err.message, str(err)
    assert str(err) == f"{err.file}:{line}: {key}: {err.message}"


def test_client_cert_without_key(write, tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    err = error(write, "endpoints:\n  - name: a\n    host: a.test\n    client_cert: c.pem\n")
    assert err.key == "endpoints[0].client_key" and "go together" in err.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("endpoints:\n  - name: a\n    host: [a.test\n", None, "invalid YAML"),
        ("endpoints:\n\t- name: a\n", 2, "invalid YAML"),
        ("endpoints:\n  - name: 'a\n", None, "invalid YAML"),
        ("x: &x {name: a}\nendpoints:\n  - <<: *x\n    host: a.test\n", 3, "merge keys"),
        ("- a\n- b\n", 1, "expected a mapping"),
    ],
    ids=["unclosed-bracket", "tab", "unclosed-quote", "merge-key", "top-level-list"],
)
def test_invalid_yaml(write, text: str, line: int | None, words: str) -> None:
    err = error(write, text)
    assert words in err.message
    assert err.line is not None
    if line is not None:
        assert err.line == line
    assert err.line >= 2 or line == 1


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("endpoints:\n  - name: a\n    host: a.test\n    host: b.test\n", 4, "host"),
        ("endpoints: []\nendpoints: []\n", 2, "endpoints"),
        ("settings:\n  timeout: 1\n  timeout: 2\nendpoints: []\n", 3, "timeout"),
    ],
    ids=["endpoint-key", "top-key", "settings-key"],
)
def test_duplicate_keys(write, text: str, line: int, key: str) -> None:
    err = error(write, text)
    assert err.line == line and err.key is not None and err.key.endswith(key)
    assert "duplicate key" in err.message


def test_duplicate_key_names_its_full_path(write) -> None:
    err = error(write, "endpoints:\n  - name: a\n    host: a.test\n    host: b.test\n")
    assert err.key == "endpoints[0].host"


def test_typo_of_endpoints_key_is_named(write) -> None:
    err = error(write, "settings: {}\nendpoint:\n  - name: a\n    host: a.test\n")
    assert err.key == "endpoint" and err.line == 2
    assert "did you mean 'endpoints'" in err.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.file == str(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_not_utf8(write, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"endpoints:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_empty_file(write) -> None:
    err = error(write, "")
    assert err.key == "endpoints"


def test_config_error_is_a_user_error(write) -> None:
    assert isinstance(error(write, "endpoints: 5\n"), UserError)


# --- HOST[:PORT][@SNI] targets --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "server_name"),
    [
        ("example.com", "example.com", 443, "example.com"),
        ("example.com:8443", "example.com", 8443, "example.com"),
        ("10.0.0.1:8443@api.example.com", "10.0.0.1", 8443, "api.example.com"),
        ("10.0.0.1", "10.0.0.1", 443, None),
        ("[::1]:9443", "::1", 9443, None),
        ("[::1]", "::1", 443, None),
        ("::1", "::1", 443, None),
        ("[2001:db8::1]:443@www.example.com", "2001:db8::1", 443, "www.example.com"),
        ("  example.com  ", "example.com", 443, "example.com"),
        ("example.com.", "example.com.", 443, "example.com"),
    ],
)
def test_parse_target(text: str, host: str, port: int, server_name: str | None) -> None:
    ep = parse_target(text)
    assert (ep.host, ep.port, ep.server_name) == (host, port, server_name)
    assert ep.name == text.strip()
    assert ep.verify_name == (server_name or host)


def test_parse_target_uses_settings_and_ca_file() -> None:
    settings = Settings(thresholds=Thresholds(30, 10, 1), timeout=4)
    ep = parse_target("example.com", settings, ca_file="/tmp/ca.pem")
    assert ep.thresholds == Thresholds(30, 10, 1) and ep.timeout == 4 and ep.ca_file == "/tmp/ca.pem"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("example.com:0", "out of range"),
        ("example.com:65536", "out of range"),
        ("example.com:https", "not a number"),
        ("example.com:-1", "not a number"),
        ("bad host", "not a valid host name"),
        ("example.com@", "SNI"),
        ("example.com@10.0.0.1", "SNI"),
        ("example.com@bad sni", "SNI"),
        ("[example.com]:443", "not an IPv6 address"),
        ("[::1", "unclosed"),
        ("[::1]x", "unexpected"),
        ("1:2:3:zz", "not a valid IPv6"),
    ],
)
def test_bad_targets(text: str, words: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(text)
    message = str(info.value)
    assert words in message and "\n" not in message
    assert isinstance(info.value, UserError)


def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text(
        "# production\n"
        "example.com\n"
        "   \n"
        "api.example.com:8443   # API\n"
        "10.0.0.1@www.example.com\n"
        "#disabled.example.com\n"
    )
    eps = read_targets_file(path, ca_file="/ca.pem")
    assert [(e.host, e.port, e.server_name) for e in eps] == [
        ("example.com", 443, "example.com"),
        ("api.example.com", 8443, "api.example.com"),
        ("10.0.0.1", 443, "www.example.com"),
    ]
    assert all(e.ca_file == "/ca.pem" for e in eps)


def test_targets_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("example.com\n\n# x\nexample.com:99999\n")
    with pytest.raises(TargetError) as info:
        read_targets_file(path)
    assert str(info.value).startswith(f"{path}:4: ")


def test_targets_file_missing_or_binary(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="file not found"):
        read_targets_file(tmp_path / "nope.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TargetError, match="UTF-8"):
        read_targets_file(binary)


def test_yaml_aliases_are_refused_fast(tmp_path: Path) -> None:
    """A "billion laughs" file must be refused at once, not expanded."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    lines.append("endpoints: *g")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases") as info:
        load_config(path)
    assert info.value.line is not None


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tag.yaml"
    path.write_text("endpoints: !!python/object:os.system [1]\n")
    with pytest.raises(ConfigError, match="tag"):
        load_config(path)


def test_config_after_the_subcommand(tmp_path: Path) -> None:
    """`certpager check --config F` and `certpager --config F check` are the same."""
    from certpager.__main__ import build_parser

    parser = build_parser()
    for argv in (["check", "--config", "x.yaml"], ["--config", "x.yaml", "check"]):
        args = parser.parse_args(argv)
        assert (getattr(args, "sub_config", None) or args.config) == "x.yaml"
