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
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]  # noqa: UP007 - readable alias

#: Key specs understood by :func:`generate_key`.
KEY_SPECS = ("rsa1024", "rsa2048", "rsa3072", "rsa4096", "ec224", "ec256", "ec384")

_CURVES: dict[str, ec.EllipticCurve] = {
    "ec224": ec.SECP224R1(),
    "ec256": ec.SECP256R1(),
    "ec384": ec.SECP384R1(),
}

# DER of the AlgorithmIdentifier OIDs swapped in for legacy signatures. They have the same
# length as sha256WithRSAEncryption's, so the certificate's outer lengths do not change.
_OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_LEGACY_RSA_OIDS = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),  # sha1WithRSAEncryption
    "md5": bytes.fromhex("06092a864886f70d010104"),  # md5WithRSAEncryption
}
_LEGACY_HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "md5": hashes.MD5()}
_MODERN_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

_PAD_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")

# RSA generation is slow; leaves may share a key per size (CA keys are always fresh so that
# subject key identifiers never collide between distinct CAs).
_LEAF_KEY_CACHE: dict[str, PrivateKey] = {}


def generate_key(spec: str = "ec256") -> PrivateKey:
    """A fresh private key: ``rsa<bits>`` or ``ec224``/``ec256``/``ec384``."""
    if spec in _CURVES:
        return ec.generate_private_key(_CURVES[spec])
    if spec.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(spec[3:]))
    raise ValueError(f"unknown key spec {spec!r}; use one of {KEY_SPECS}")


def leaf_key(spec: str) -> PrivateKey:
    """A key for a leaf, shared between leaves of the same spec (RSA is slow to make)."""
    if spec in _CURVES:
        return generate_key(spec)
    if spec not in _LEAF_KEY_CACHE:
        _LEAF_KEY_CACHE[spec] = generate_key(spec)
    return _LEAF_KEY_CACHE[spec]


def _der_octet_string(payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return b"\x04" + head + payload


def _resign_legacy(cert: x509.Certificate, key: PrivateKey, hash_name: str) -> x509.Certificate:
    """Re-sign an RSA/SHA-256 certificate with SHA-1 or MD5 (``cryptography`` refuses to)."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{hash_name} signatures need an RSA issuer key")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    legacy_oid = _LEGACY_RSA_OIDS[hash_name]
    assert tbs.count(_OID_SHA256_RSA) == 1, "expected one signature OID in the TBS"
    new_tbs = tbs.replace(_OID_SHA256_RSA, legacy_oid)
    signature = key.sign(new_tbs, padding.PKCS1v15(), _LEGACY_HASHES[hash_name])
    old_signature = cert.signature
    assert len(signature) == len(old_signature)
    assert der.endswith(old_signature)
    head = der[: -len(old_signature)]
    assert head.count(tbs) == 1 and head.count(_OID_SHA256_RSA) == 2
    new_der = head.replace(tbs, new_tbs).replace(_OID_SHA256_RSA, legacy_oid) + signature
    return x509.load_der_x509_certificate(new_der)


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

    def issue(
        self,
        cn: str | None,
        *,
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
        return self.pki.make_cert(
            issuer=self,
            cn=cn,
            sans=sans,
            ca=ca,
            path_length=path_length,
            not_before=not_before,
            not_after=not_after,
            key=key,
            hash=hash,
            aia_ca_issuers=aia_ca_issuers,
            pad_bytes=pad_bytes,
            subject=subject,
            server_auth=server_auth,
            signing_key=signing_key,
            permitted_dns=permitted_dns,
        )

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
        if subject is None:
            attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certpager tests")]
            if cn is not None:
                attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
            subject = x509.Name(attrs)
        signer_key = signing_key or (issuer.key if issuer is not None else private)
        issuer_name = issuer.cert.subject if issuer is not None else subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._at(not_before))
            .not_valid_after(self._at(not_after))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
            )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(private, rsa.RSAPrivateKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            if server_auth:
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
                )
        names = _general_names(sans)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
        if aia_ca_issuers:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(aia_ca_issuers),
                        )
                    ]
                ),
                False,
            )
        if permitted_dns is not None:
            builder = builder.add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.DNSName(d) for d in permitted_dns], excluded_subtrees=None
                ),
                True,
            )
        if pad_bytes:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(_PAD_OID, _der_octet_string(b"\x00" * pad_bytes)), False
            )
        if hash in _LEGACY_HASHES:
            cert = builder.sign(signer_key, hashes.SHA256())
            cert = _resign_legacy(cert, signer_key, hash)
        else:
            cert = builder.sign(signer_key, _MODERN_HASHES[hash])  # type: ignore[arg-type]
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


def _general_names(sans: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for san in sans:
        if san.startswith("DNS:"):
            out.append(x509.DNSName(san[4:]))
            continue
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            out.append(x509.DNSName(san))
    return out


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
