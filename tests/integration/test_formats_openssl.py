"""Serials are written the way ``openssl x509 -serial`` writes them (checked against the real
openssl binary), so a serial certpager prints can be grepped in openssl output."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certpager.formats import format_serial
from certpager.probe.analysis import parse_cert

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SERIALS = [
    1,
    0x0A,
    0xABC,  # odd number of hex digits: openssl writes 0ABC
    0x0A1B2C,
    0x80,  # high bit set: DER adds a zero byte, openssl does not print it
    0xFF00FF00FF,
    0x01_0000_0000_0000_0000_0000_0000_0000_0000_0001,
    x509.random_serial_number(),
]


def _cert(serial: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serial.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("serial", SERIALS, ids=lambda s: f"{s:x}"[:12])
def test_serials_match_openssl(serial: int, tmp_path: Path) -> None:
    der = _cert(serial)
    path = tmp_path / "cert.der"
    path.write_bytes(der)
    out = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", str(path), "-noout", "-serial"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert out == f"serial={format_serial(serial)}"
    assert out == f"serial={parse_cert(der).serial}"  # what check, JSON and runs print
