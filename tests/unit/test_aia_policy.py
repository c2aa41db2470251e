"""Where an AIA fetch may go (certpager.probe.aia.fetch_refusal): the URL is chosen by the
monitored server, so loopback, link-local and private addresses are refused unless the
endpoint itself is in that same class; unspecified, multicast and reserved ones always.
Decided on addresses, so that no test sends traffic anywhere but loopback."""

from __future__ import annotations

import pytest

from certpager.probe.aia import address_class, fetch_refusal

#: (address the AIA host resolved to, its class)
ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),  # with a zone id
    ("::ffff:169.254.169.254", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),  # unique local
    ("100.64.0.1", "private"),  # carrier-grade NAT: not globally reachable
    ("::ffff:10.1.2.3", "private"),
    ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("not-an-address", "reserved"),
    ("93.184.216.34", "public"),
    ("2606:4700::1111", "public"),
    ("::ffff:8.8.8.8", "public"),
]


def test_corpus_is_large() -> None:
    assert len(ADDRESSES) >= 15


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_address_class(address: str, kind: str) -> None:
    assert address_class(address) == kind


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_public_endpoint_fetches_only_from_public_addresses(address: str, kind: str) -> None:
    why = fetch_refusal(address, "93.184.216.34", "auto")
    if kind == "public":
        assert why is None
    else:
        assert why is not None and kind in why and address in why


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_loopback_endpoint_may_fetch_from_loopback_only(address: str, kind: str) -> None:
    why = fetch_refusal(address, "127.0.0.1", "auto")
    assert (why is None) == (kind in ("loopback", "public"))


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_private_endpoint_may_fetch_from_private_only(address: str, kind: str) -> None:
    why = fetch_refusal(address, "10.9.8.7", "auto")
    assert (why is None) == (kind in ("private", "public"))


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_refuse_and_allow(address: str, kind: str) -> None:
    refused = fetch_refusal(address, "127.0.0.1", "refuse")
    allowed = fetch_refusal(address, "93.184.216.34", "allow")
    assert (refused is None) == (kind == "public")
    assert (allowed is None) == (kind in ("public", "loopback", "link-local", "private"))


def test_unknown_endpoint_address_is_not_a_licence() -> None:
    assert fetch_refusal("127.0.0.1", None, "auto") is not None
