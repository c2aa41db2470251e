"""The lab's certificate authority and a certbot-style file layout.

Everything uses EC P-256 keys so a whole lab is generated in milliseconds.
The CA plays Let's Encrypt: a root (trusted through the lab config's
``ca_file``) and an intermediate that signs every server certificate.
:func:`write_lineage` stores certificates the way certbot does
(``archive/NAME/cert1.pem`` ... and ``live/NAME/*.pem`` symlinks into it), so
a server pointed at ``live/`` picks up a renewal on reload alone.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certpager.lab import certs

PrivateKey = ec.EllipticCurvePrivateKey

LIFETIME_DAYS = 90
"""Lifetime of the certificates the lab CA issues, like Let's Encrypt."""

RENEW_BEFORE_DAYS = 30
"""certbot's default ``renew_before_expiry``: a lineage is due with fewer days left."""

_LINEAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def new_key() -> PrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, org: str = "certpager fire drill") -> x509.Name:
    return certs.name(common_name, org=org)


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its key."""

    cert: x509.Certificate
    """The CA certificate."""
    key: PrivateKey
    """Its private key."""


def make_root(common_name: str, now: datetime) -> Authority:
    """A self-signed root CA valid from a year ago for ten years."""
    key = new_key()
    cert = certs.build_cert(
        subject=_name(common_name),
        key=key,
        issuer=None,
        not_before=now - timedelta(days=365),
        not_after=now + timedelta(days=3650),
        ca=True,
    )
    return Authority(cert, key)


def make_intermediate(root: Authority, common_name: str, now: datetime) -> Authority:
    """An intermediate CA signed by ``root``, valid for five years (outlives every leaf)."""
    key = new_key()
    cert = certs.build_cert(
        subject=_name(common_name),
        key=key,
        issuer=(root.cert.subject, root.key),
        not_before=now - timedelta(days=365),
        not_after=now + timedelta(days=5 * 365),
        ca=True,
        path_length=0,
    )
    return Authority(cert, key)


def issue(
    issuer: Authority,
    names: list[str],
    *,
    not_before: datetime,
    not_after: datetime,
    key: PrivateKey | None = None,
    aia_url: str | None = None,
    client: bool = False,
) -> tuple[x509.Certificate, PrivateKey]:
    """Issue an end-entity certificate for ``names`` (DNS SANs; the first is the CN).

    Args:
        issuer: the signing CA.
        names: DNS names; ``client=True`` certificates may use a single plain name.
        not_before: start of validity.
        not_after: end of validity.
        key: reuse this key (certbot ``--reuse-key``); None makes a new one.
        aia_url: caIssuers URL of the issuer certificate (DER), as public CAs add.
        client: a TLS client certificate (EKU clientAuth) instead of a server one.
    """
    key = key or new_key()
    cert = certs.build_cert(
        subject=certs.name(names[0]),
        key=key,
        issuer=(issuer.cert.subject, issuer.key),
        not_before=not_before,
        not_after=not_after,
        sans=[x509.DNSName(n) for n in names],
        eku=certs.CLIENT if client else certs.SERVER,
        aia_ca_issuers=aia_url,
    )
    return cert, key


cert_pem = certs.cert_pem
key_pem = certs.key_pem


def load_key(path: Path) -> PrivateKey:
    """Load an EC private key PEM written by :func:`key_pem`."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    """Load a CA written by the lab."""
    return Authority(x509.load_pem_x509_certificate(cert_path.read_bytes()), load_key(key_path))


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` atomically (temp file + rename); mode 0600 when ``private``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def utcnow() -> datetime:
    """Now, timezone-aware UTC, without microseconds."""
    return datetime.now(UTC).replace(microsecond=0)


# ------------------------------------------------------------------ certbot-style lineages


LINEAGE_FILES = ("cert", "chain", "fullchain", "privkey")
"""The four files of a certbot lineage, in ``live/NAME/`` and ``archive/NAME/``."""


@dataclass(frozen=True)
class Lineage:
    """One certbot certificate lineage under a config dir (``/etc/letsencrypt`` style)."""

    config_dir: Path
    """The certbot config dir (holds ``live/``, ``archive/``, ``renewal/``)."""
    name: str
    """The ``--cert-name``."""

    @property
    def live(self) -> Path:
        """``live/NAME``."""
        return self.config_dir / "live" / self.name

    @property
    def archive(self) -> Path:
        """``archive/NAME``."""
        return self.config_dir / "archive" / self.name

    @property
    def renewal_conf(self) -> Path:
        """``renewal/NAME.conf``."""
        return self.config_dir / "renewal" / f"{self.name}.conf"

    def path(self, kind: str) -> Path:
        """``live/NAME/<kind>.pem``."""
        return self.live / f"{kind}.pem"

    def exists(self) -> bool:
        """Whether the lineage has been issued."""
        return self.renewal_conf.is_file() and self.path("cert").exists()

    def versions(self) -> list[int]:
        """Archive versions present (``cert3.pem`` -> 3), ascending."""
        out: list[int] = []
        if self.archive.is_dir():
            for p in self.archive.glob("cert*.pem"):
                digits = p.stem[len("cert") :]
                if digits.isdigit():
                    out.append(int(digits))
        return sorted(out)

    def current(self) -> x509.Certificate:
        """The certificate ``live/NAME/cert.pem`` points at."""
        return x509.load_pem_x509_certificate(self.path("cert").read_bytes())

    def current_key(self) -> PrivateKey:
        """The key ``live/NAME/privkey.pem`` points at."""
        return load_key(self.path("privkey"))


def valid_lineage_name(name: str) -> bool:
    """Whether ``name`` is a safe lineage directory name."""
    return bool(_LINEAGE_RE.match(name)) and ".." not in name


def write_lineage(
    lineage: Lineage, cert: x509.Certificate, key: PrivateKey, chain: list[x509.Certificate]
) -> int:
    """Store a new version of ``lineage`` and point ``live/`` at it, as certbot does.

    Returns:
        The new archive version number.
    """
    if not valid_lineage_name(lineage.name):
        raise ValueError(f"invalid certificate name {lineage.name!r}")
    version = (lineage.versions() or [0])[-1] + 1
    chain_pem = b"".join(cert_pem(c) for c in chain)
    contents = {
        "cert": cert_pem(cert),
        "chain": chain_pem,
        "fullchain": cert_pem(cert) + chain_pem,
        "privkey": key_pem(key),
    }
    lineage.archive.mkdir(parents=True, exist_ok=True)
    lineage.live.mkdir(parents=True, exist_ok=True)
    for kind in LINEAGE_FILES:
        write_file(lineage.archive / f"{kind}{version}.pem", contents[kind], private=kind == "privkey")
    for kind in LINEAGE_FILES:
        link = lineage.path(kind)
        tmp = link.with_name(f".{kind}.pem.tmp{os.getpid()}")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(f"../../archive/{lineage.name}/{kind}{version}.pem", tmp)
        os.replace(tmp, link)
    if not lineage.renewal_conf.is_file():
        _write_renewal_conf(lineage)
    return version


def _write_renewal_conf(lineage: Lineage) -> None:
    conf = configparser.ConfigParser()
    conf["DEFAULT"] = {
        "version": "certpager-drill",
        "archive_dir": str(lineage.archive),
        "cert": str(lineage.path("cert")),
        "privkey": str(lineage.path("privkey")),
        "chain": str(lineage.path("chain")),
        "fullchain": str(lineage.path("fullchain")),
        "renew_before_expiry": f"{RENEW_BEFORE_DAYS} days",
    }
    conf["renewalparams"] = {"authenticator": "drill-lab-ca", "server": "certpager drill lab CA"}
    lineage.renewal_conf.parent.mkdir(parents=True, exist_ok=True)
    with lineage.renewal_conf.open("w", encoding="utf-8") as fh:
        fh.write("# certbot-style renewal config written by certpager's fire-drill lab\n")
        conf.write(fh)


def list_lineages(config_dir: Path) -> list[Lineage]:
    """Every lineage with a ``renewal/NAME.conf``, sorted by name."""
    renewal = config_dir / "renewal"
    if not renewal.is_dir():
        return []
    return [Lineage(config_dir, p.stem) for p in sorted(renewal.glob("*.conf"))]


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS SANs of ``cert`` (the CN when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names
