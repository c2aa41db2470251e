"""A certificate factory built on ``cryptography``.

Roots, intermediates, leaves and cross-signs with every knob the analysis
cares about: SANs (DNS, wildcard, IP) or none at all (CN only), validity
relative to a fixed ``now``, RSA 1024..4096 and EC P-224/P-256/P-384 keys,
SHA-256/384 and the legacy SHA-1/MD5 signatures (``cryptography`` refuses to
sign those, so the certificate is re-signed by hand: same TBS with the
algorithm identifier swapped), AIA URLs, padding to make certificates huge.

Chain files are written exactly in the order given, so a test can serve a
leaf-only chain, a reversed one, one with the root, a duplicate or an
unrelated extra certificate.

Example::

    pki = PKI(now, tmp_path)
    root = pki.root("Test Root")
    inter = root.intermediate("Test Intermediate")
    leaf = inter.leaf("app.test", sans=["app.test"], not_after=20)
    chain, key = pki.write_chain("app", [leaf, inter], key_of=leaf)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certpager.lab.certs import SERVER, PrivateKey, build_cert, general_names, generate_key, name

# RSA generation is slow; leaves may share a key per size (CA keys are always fresh so that
# subject key identifiers never collide between distinct CAs).
_LEAF_KEY_CACHE: dict[str, PrivateKey] = {}


def leaf_key(spec: str) -> PrivateKey:
    """A key for a leaf, shared between leaves of the same spec (RSA is slow to make)."""
    if spec.startswith("ec"):
        return generate_key(spec)
    if spec not in _LEAF_KEY_CACHE:
        _LEAF_KEY_CACHE[spec] = generate_key(spec)
    return _LEAF_KEY_CACHE[spec]


class CertOptions(TypedDict, total=False):
    """The options of :meth:`Issued.issue` and :meth:`PKI.make_cert` (documented there)."""

    sans: Iterable[str]
    ca: bool
    path_length: int | None
    not_before: float
    not_after: float
    key: str | PrivateKey
    hash: str
    aia_ca_issuers: str | None
    pad_bytes: int
    subject: x509.Name | None
    server_auth: bool
    signing_key: PrivateKey | None
    permitted_dns: Iterable[str] | None


@dataclass(eq=False)
class Issued:
    """A certificate with its private key, able to issue more when it is a CA."""

    cert: x509.Certificate
    """The certificate."""
    key: PrivateKey
    """Its private key."""
    pki: PKI = field(repr=False)
    """The factory it belongs to (for ``now``)."""
    issuer: Issued | None = field(default=None, repr=False)
    """Who signed it (None: self-signed)."""

    @property
    def der(self) -> bytes:
        """DER bytes."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """PEM bytes."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM of the private key."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def not_after(self) -> dt.datetime:
        """End of validity (UTC)."""
        return self.cert.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        """Start of validity (UTC)."""
        return self.cert.not_valid_before_utc

    @property
    def subject(self) -> str:
        """RFC 4514 subject."""
        return self.cert.subject.rfc4514_string()

    @property
    def sha256(self) -> str:
        """SHA-256 fingerprint, lower-case hex (as certpager reports it)."""
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def issue(self, cn: str | None, **options: Unpack[CertOptions]) -> Issued:
        """Issue a certificate signed by this one.

        Args:
            cn: subject common name (None: no CN).
            sans: DNS names (``*.x`` wildcards allowed) and IP addresses; empty: no SAN
                extension at all (a CN-only certificate).
            ca: basicConstraints CA flag.
            path_length: basicConstraints pathLen for CAs.
            not_before: start of validity, days relative to ``pki.now``.
            not_after: end of validity, days relative to ``pki.now``.
            key: a key spec (see :data:`KEY_SPECS`) or a ready key.
            hash: ``sha256``, ``sha384``, ``sha512``, or legacy ``sha1``/``md5`` (RSA issuer only).
            aia_ca_issuers: a caIssuers URL to put in authorityInfoAccess.
            pad_bytes: size of an opaque non-critical extension, to make huge certificates.
            subject: a full subject name (overrides ``cn``).
            server_auth: give leaves the serverAuth extended key usage.
            signing_key: sign with this key instead (a forged, unverifiable signature).
            permitted_dns: CAs: a critical nameConstraints extension permitting only
                these DNS subtrees.
        """
        return self.pki.make_cert(issuer=self, cn=cn, **options)

    def intermediate(self, cn: str, **kw: object) -> Issued:
        """Issue a CA certificate (default: RSA 2048 so it can sign legacy hashes, 10 years)."""
        kw.setdefault("key", "rsa2048")
        kw.setdefault("not_before", -365.0)
        kw.setdefault("not_after", 3650.0)
        return self.issue(cn, ca=True, **kw)  # type: ignore[arg-type]

    def leaf(self, cn: str | None, sans: Iterable[str] | None = None, **kw: object) -> Issued:
        """Issue a server certificate; ``sans`` defaults to ``[cn]``."""
        if sans is None:
            sans = [cn] if cn else []
        return self.issue(cn, sans=sans, ca=False, **kw)  # type: ignore[arg-type]

    def cross_sign(self, other: Issued, *, not_before: float = -365.0, not_after: float = 3650.0) -> Issued:
        """A copy of CA ``other`` (same subject and key) issued by this CA: a cross-sign."""
        cert = self.pki.make_cert(
            issuer=self,
            cn=None,
            subject=other.cert.subject,
            key=other.key,
            ca=True,
            not_before=not_before,
            not_after=not_after,
        )
        return cert


class PKI:
    """Makes certificates relative to a fixed ``now`` and writes PEM files into ``directory``."""

    def __init__(self, now: dt.datetime, directory: Path):
        self.now = now.replace(microsecond=0)
        """The instant validity offsets are measured from (UTC)."""
        self.directory = directory
        """Where PEM files go."""
        directory.mkdir(parents=True, exist_ok=True)

    # -- making certificates -------------------------------------------------------

    def _at(self, days: float) -> dt.datetime:
        return self.now + dt.timedelta(days=days)

    def make_cert(
        self,
        *,
        issuer: Issued | None,
        cn: str | None,
        sans: Iterable[str] = (),
        ca: bool = False,
        path_length: int | None = None,
        not_before: float = -10.0,
        not_after: float = 80.0,
        key: str | PrivateKey = "ec256",
        hash: str = "sha256",
        aia_ca_issuers: str | None = None,
        pad_bytes: int = 0,
        subject: x509.Name | None = None,
        server_auth: bool = True,
        signing_key: PrivateKey | None = None,
        permitted_dns: Iterable[str] | None = None,
    ) -> Issued:
        """Build one certificate (see :meth:`Issued.issue` for the arguments).

        ``issuer=None`` makes a self-signed certificate: a root when ``ca`` is true,
        else a self-signed server certificate. ``signing_key`` signs with another key
        than the issuer's while keeping the issuer's name and key identifier: a forged
        certificate whose signature does not verify.
        """
        private = (generate_key(key) if ca else leaf_key(key)) if isinstance(key, str) else key
        cert = build_cert(
            subject=subject if subject is not None else name(cn, org="certpager tests"),
            key=private,
            issuer=(issuer.cert.subject, issuer.key) if issuer is not None else None,
            not_before=self._at(not_before),
            not_after=self._at(not_after),
            ca=ca,
            path_length=path_length,
            sans=general_names(sans),
            eku=SERVER if server_auth else None,
            aia_ca_issuers=aia_ca_issuers,
            permitted_dns=permitted_dns,
            pad_bytes=pad_bytes,
            hash=hash,
            signing_key=signing_key,
        )
        return Issued(cert=cert, key=private, pki=self, issuer=issuer)

    def root(self, cn: str = "certpager Test Root", **kw: object) -> Issued:
        """A self-signed CA (default RSA 2048, valid from a year ago for 20 years)."""
        kw.setdefault("key", "rsa2048")
        kw.setdefault("not_before", -365.0)
        kw.setdefault("not_after", 7300.0)
        return self.make_cert(issuer=None, cn=cn, ca=True, **kw)  # type: ignore[arg-type]

    def self_signed(self, cn: str, sans: Iterable[str] | None = None, **kw: object) -> Issued:
        """A self-signed server certificate (CA:FALSE), as ``openssl req -x509`` makes for a quick fix."""
        if sans is None:
            sans = [cn]
        return self.make_cert(issuer=None, cn=cn, sans=sans, ca=False, **kw)  # type: ignore[arg-type]

    # -- writing files ---------------------------------------------------------------

    def write_pem(self, name: str, *certs: Issued | bytes) -> Path:
        """Write certificates (``Issued`` or PEM bytes) into ``<dir>/<name>``, in the order given."""
        path = self.directory / name
        path.write_bytes(b"".join(c.pem if isinstance(c, Issued) else c for c in certs))
        return path

    def write_key(self, name: str, owner: Issued) -> Path:
        """Write ``owner``'s private key into ``<dir>/<name>`` (mode 0600)."""
        path = self.directory / name
        path.write_bytes(owner.key_pem)
        path.chmod(0o600)
        return path

    def write_chain(
        self, name: str, certs: Sequence[Issued | bytes], *, key_of: Issued | None = None
    ) -> tuple[Path, Path]:
        """Write ``<name>.chain.pem`` exactly in the order given and ``<name>.key.pem``.

        ``key_of`` defaults to the first certificate (the leaf).
        """
        owner = key_of if key_of is not None else certs[0]
        if not isinstance(owner, Issued):
            raise TypeError("key_of is needed when the first certificate is raw PEM")
        chain = self.write_pem(f"{name}.chain.pem", *certs)
        key = self.write_key(f"{name}.key.pem", owner)
        return chain, key


@dataclass
class Hierarchy:
    """The usual shape: root -> intermediate -> leaves."""

    pki: PKI
    """The factory."""
    root: Issued
    """Self-signed root CA."""
    intermediate: Issued
    """Intermediate CA signed by the root."""
    root_file: Path
    """PEM file holding only the root (the ``ca_file``/``-CAfile``)."""

    def leaf(self, cn: str = "app.test", sans: Iterable[str] | None = None, **kw: object) -> Issued:
        """A leaf issued by the intermediate."""
        return self.intermediate.leaf(cn, sans, **kw)

    def serve_files(
        self, name: str, leaf: Issued, order: str = "full", extra: Sequence[Issued] = ()
    ) -> tuple[Path, Path]:
        """Chain file + key for ``leaf`` in a named order.

        ``full`` (leaf, intermediate), ``leaf`` (leaf only), ``with_root`` (leaf,
        intermediate, root), ``reversed`` (leaf, root, intermediate); ``extra`` is appended.
        """
        orders: dict[str, list[Issued]] = {
            "full": [leaf, self.intermediate],
            "leaf": [leaf],
            "with_root": [leaf, self.intermediate, self.root],
            "reversed": [leaf, self.root, self.intermediate],
        }
        return self.pki.write_chain(name, [*orders[order], *extra], key_of=leaf)


def hierarchy(pki: PKI, label: str = "certpager Test") -> Hierarchy:
    """A fresh root and intermediate, the root written to ``<label>-root.pem``."""
    root = pki.root(f"{label} Root CA")
    inter = root.intermediate(f"{label} Intermediate CA")
    slug = label.lower().replace(" ", "-")
    return Hierarchy(pki, root, inter, pki.write_pem(f"{slug}-root.pem", root))
