"""The one certificate factory the demo, the tests and the benchmark share.

:func:`build_cert` makes any certificate they need: a root (``issuer=None``,
``ca=True``), an intermediate, a leaf with DNS/IP SANs (or none), any validity,
RSA or EC keys (:func:`generate_key`), AIA caIssuers, name constraints, a
client-auth EKU, padding to make huge certificates, SHA-256/384/512 or the
legacy SHA-1/MD5 signatures (``cryptography`` refuses to sign those, so the
certificate is re-signed by hand: same TBS with the algorithm identifier swapped).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]  # noqa: UP007 - readable alias

KEY_SPECS = ("rsa1024", "rsa2048", "rsa3072", "rsa4096", "ec224", "ec256", "ec384")
"""Key specs understood by :func:`generate_key`."""

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
_MODERN_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

PAD_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
"""OID of the opaque extension ``pad_bytes`` adds."""

SERVER = "server"
"""``eku``: serverAuth."""
CLIENT = "client"
"""``eku``: clientAuth."""


def generate_key(spec: str = "ec256") -> PrivateKey:
    """A fresh private key: ``rsa<bits>`` or ``ec224``/``ec256``/``ec384``."""
    if spec in _CURVES:
        return ec.generate_private_key(_CURVES[spec])
    if spec.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(spec[3:]))
    raise ValueError(f"unknown key spec {spec!r}; use one of {KEY_SPECS}")


def name(common_name: str | None, org: str | None = None) -> x509.Name:
    """A subject: ``O=org`` (if given) then ``CN=common_name`` (if given)."""
    attrs = []
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if common_name is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def general_names(sans: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries: IP addresses become iPAddress, the rest (or ``DNS:x``) dNSName."""
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


def _key_usage(*, ca: bool, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


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


def build_cert(
    *,
    subject: x509.Name,
    key: PrivateKey,
    issuer: tuple[x509.Name, PrivateKey] | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool = False,
    path_length: int | None = None,
    sans: Sequence[x509.GeneralName] = (),
    eku: str | None = SERVER,
    key_usage: bool = True,
    subject_key_id: bool = True,
    authority_key_id: bool = True,
    aia_ca_issuers: str | None = None,
    permitted_dns: Iterable[str] | None = None,
    pad_bytes: int = 0,
    hash: str = "sha256",
    signing_key: PrivateKey | None = None,
) -> x509.Certificate:
    """Build and sign one certificate.

    Args:
        subject: its subject name.
        key: its key (the public half goes in the certificate).
        issuer: ``(name, key)`` of the issuing CA; None: self-signed with ``key``.
        not_before: start of validity.
        not_after: end of validity.
        ca: basicConstraints CA flag (and keyCertSign/cRLSign usage).
        path_length: basicConstraints pathLen for CAs.
        sans: subjectAltName entries (see :func:`general_names`); empty: no SAN extension.
        eku: leaves: :data:`SERVER`, :data:`CLIENT` or None (no extendedKeyUsage).
        key_usage: add a critical keyUsage.
        subject_key_id: add the subject key identifier.
        authority_key_id: add the authority key identifier (issued certificates only).
        aia_ca_issuers: a caIssuers URL for authorityInfoAccess.
        permitted_dns: CAs: a critical nameConstraints extension permitting only these DNS subtrees.
        pad_bytes: size of an opaque non-critical extension, to make huge certificates.
        hash: ``sha256``, ``sha384``, ``sha512``, or legacy ``sha1``/``md5`` (RSA signer only).
        signing_key: sign with this key instead of the issuer's (a forged, unverifiable signature).
    """
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True)
    )
    if subject_key_id:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if issuer is not None and authority_key_id:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, False)
    builder = _add_usage(builder, key, ca=ca, key_usage=key_usage, eku=eku)
    builder = _add_names(builder, sans=sans, aia_ca_issuers=aia_ca_issuers, permitted_dns=permitted_dns)
    if pad_bytes:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PAD_OID, _der_octet_string(b"\x00" * pad_bytes)), False
        )
    signer = signing_key or issuer_key
    if hash in _LEGACY_HASHES:
        return _resign_legacy(builder.sign(signer, hashes.SHA256()), signer, hash)
    return builder.sign(signer, _MODERN_HASHES[hash])


def _add_usage(
    builder: x509.CertificateBuilder, key: PrivateKey, *, ca: bool, key_usage: bool, eku: str | None
) -> x509.CertificateBuilder:
    """keyUsage (critical) and, for leaves, extendedKeyUsage."""
    if key_usage:
        builder = builder.add_extension(
            _key_usage(ca=ca, key_encipherment=isinstance(key, rsa.RSAPrivateKey)), True
        )
    if not ca and eku is not None:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if eku == CLIENT else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
    return builder


def _add_names(
    builder: x509.CertificateBuilder,
    *,
    sans: Sequence[x509.GeneralName],
    aia_ca_issuers: str | None,
    permitted_dns: Iterable[str] | None,
) -> x509.CertificateBuilder:
    """subjectAltName, authorityInfoAccess caIssuers and nameConstraints (critical)."""
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
    if aia_ca_issuers:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_ca_issuers)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
    if permitted_dns is not None:
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(d) for d in permitted_dns], excluded_subtrees=None
        )
        builder = builder.add_extension(constraints, True)
    return builder


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


__all__ = [
    "CLIENT",
    "KEY_SPECS",
    "PAD_OID",
    "SERVER",
    "PrivateKey",
    "build_cert",
    "cert_pem",
    "general_names",
    "generate_key",
    "key_pem",
    "name",
]
