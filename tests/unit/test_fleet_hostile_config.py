"""Hostile ``settings.alertmanager`` and ``prometheus`` sections: one line naming file and key,
never a traceback, never the password of a URL (the CLI's exit 3 is in
tests/integration/test_fleet_hostile_peers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.pki import Hierarchy

from certpager.config import check_api_url, load_config, redact_url
from certpager.errors import ConfigError
from certpager.inputs import InputValueError

SECRET = "s3cr3t-pw"


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text + "endpoints: [{name: a, host: 127.0.0.1}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:1: "), message
    return message


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        # a password in the URL: refused, and never echoed (before the fix the whole URL was)
        (f'settings: {{alertmanager: {{url: "http://admin:{SECRET}@127.0.0.1:9093"}}}}\n', "url", "***@"),
        (f'prometheus: {{url: "https://admin:{SECRET}@prom.test:9090/x"}}\n', "url", "***@"),
        (f'prometheus: {{url: "http://u:{SECRET}/x@127.0.0.1:9090"}}\n', "url", "***@127.0.0.1"),
        (f'prometheus: {{url: "http://u:{SECRET}#@127.0.0.1"}}\n', "url", "no user, query or fragment"),
        # an unclosed IPv6 bracket was a ValueError traceback out of urlsplit
        (f'settings: {{alertmanager: {{url: "http://u:{SECRET}@[::1"}}}}\n', "url", "is not a URL"),
        ('settings: {alertmanager: {url: "http://[::1:9093"}}\n', "url", "is not a URL"),
        # a path with a space would have broken the request line
        ('prometheus: {url: "http://127.0.0.1:9090/a b"}\n', "url", "spaces"),
        ('prometheus: {url: "http://127.0.0.1:9090/?q=1"}\n', "url", "no user, query or fragment"),
        ('prometheus: {url: "file:///etc/passwd"}\n', "url", "not an http:// or https:// URL"),
        ('prometheus: {url: "http://:9090"}\n', "url", "not a valid host name"),
        ('settings: {alertmanager: {url: "http://127.0.0.1:99999"}}\n', "url", "port"),
        ("settings: {alertmanager: {url: 5}}\n", "url", "not an http:// or https:// URL"),
        ("settings: {alertmanager: {url: [http://x]}}\n", "url", "expected a string"),
        ('settings: {alertmanager: "http://127.0.0.1:9093"}\n', "alertmanager", "expected a mapping"),
        ("prometheus: [http://x]\n", "prometheus", "expected a mapping"),
        ("settings: {alertmanager: {}}\n", "url", "is required"),
        ('settings: {alertmanager: {url: "http://x", timeout: 0}}\n', "timeout", "at least 0.1"),
        ('settings: {alertmanager: {url: "http://x", timeout: -1}}\n', "timeout", "at least 0.1"),
        ('settings: {alertmanager: {url: "http://x", timeout: 1.0e+308}}\n', "timeout", "at most"),
        ('settings: {alertmanager: {url: "http://x", timeout: .nan}}\n', "timeout", "finite"),
        (
            'settings: {alertmanager: {url: "http://x", timeout: "5"}}\n',
            "timeout",
            "'5' is not a number YAML reads (it is quoted): write 5",
        ),
        (
            'settings: {alertmanager: {url: "http://x", matchers: [5]}}\n',
            "matchers[0]",
            "not an Alertmanager",
        ),
        ('prometheus: {url: "http://x", timeout: 100000}\n', "timeout", "at most 300"),
        ('prometheus: {url: "http://x", timeout: -0.5}\n', "timeout", "at least 0.1"),
    ],
)
def test_bad_fleet_sections_are_one_located_line(tmp_path: Path, section: str, key: str, words: str) -> None:
    message = _load(tmp_path, section)
    assert f"{key}:" in message and words in message, message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:9093/x", "http://***@host:9093/x"),
        ("http://u:p/w@host", "http://***@host"),
        ("http://u:p://w@host", "http://***@host"),
        ("https://host/prefix", "https://host/prefix"),
        ("http://host\x1b[2J", "http://host\\x1b[2J"),
    ],
)
def test_redact_url_never_shows_a_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_check_api_url_message_never_holds_the_password() -> None:
    for url in (f"http://a:{SECRET}@h", f"http://a:{SECRET}@[::1", f"ftp://a:{SECRET}@h"):
        with pytest.raises(InputValueError) as info:
            check_api_url(url)
        assert SECRET not in str(info.value)


def test_ca_file_of_the_fleet_apis(tmp_path: Path, ca: Hierarchy) -> None:
    path = tmp_path / "c.yaml"
    root = ca.root_file
    path.write_text(
        f"settings: {{alertmanager: {{url: 'https://am.test:9093', ca_file: '{root}'}}}}\n"
        f"prometheus: {{url: 'https://prom.test', ca_file: '{root}'}}\nendpoints: []\n"
    )
    settings = load_config(path).settings
    assert settings.alertmanager is not None and settings.alertmanager.ca_file == str(root)
    assert settings.prometheus is not None and settings.prometheus.ca_file == str(root)


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("settings: {alertmanager: {url: 'http://127.0.0.1:9093', ca_file: ROOT}}\n", "https:// url only"),
        ("prometheus: {url: 'http://127.0.0.1:9090', ca_file: ROOT}\n", "https:// url only"),
        ("prometheus: {url: 'https://127.0.0.1:9090', ca_file: nowhere.pem}\n", "nowhere.pem"),
        ("prometheus: {url: 'https://127.0.0.1:9090', ca_file: c.yaml}\n", "ca_file"),
    ],
)
def test_bad_ca_file_of_the_fleet_apis(tmp_path: Path, ca: Hierarchy, section: str, words: str) -> None:
    message = _load(tmp_path, section.replace("ROOT", f"'{ca.root_file}'"))
    assert "ca_file:" in message and words in message, message
