"""Trust stores: the system bundle or an endpoint's own CA file, loaded once.

Verification itself is OpenSSL's (``X509StoreContext``); this module only
builds the stores and remembers which certificates are anchors.
"""

from __future__ import annotations

import os
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from certpager.errors import TrustStoreError as TrustStoreError
from certpager.inputs import PEM_MAX_BYTES, InputFileError, read_input_file
from certpager.text import printable

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: trust is judged apart from validity
#: dates, which analysis reports as their own findings (expired leaf, expired
#: intermediate) instead of hiding them behind a generic "verify failed".
NO_CHECK_TIME = 0x200000


@dataclass
class TrustStore:
    """An OpenSSL X509 store plus the anchors it holds."""

    name: str
    """``system`` or the CA file path."""
    store: crypto.X509Store
    """The OpenSSL store (used read-only after construction)."""
    source: str = ""
    """Where the certificates came from (file path)."""
    anchors: frozenset[bytes] = field(default_factory=frozenset)
    """DER of every anchor certificate."""
    anchor_subjects: frozenset[bytes] = field(default_factory=frozenset)
    """DER-encoded subject names of the anchors."""
    certs: tuple[crypto.X509, ...] = ()
    """The anchors as OpenSSL objects (empty for OpenSSL's default paths)."""
    roots: tuple[crypto.X509, ...] = ()
    """Those of :attr:`certs` that are self-issued: where a full path ends."""

    def load_into(self, ctx: SSL.Context) -> None:
        """Give a TLS context the same anchors and flags as :attr:`store`, so that
        verification during a handshake judges exactly as this store does."""
        if self.certs:
            store = ctx.get_cert_store()
            if store is None:  # pragma: no cover - OpenSSL always has one
                raise TrustStoreError(f"{self.name}: the TLS context has no certificate store")
            for cert in self.certs:
                store.add_cert(cert)
        else:
            ctx.set_default_verify_paths()
        store = ctx.get_cert_store()
        if store is not None:
            store.set_flags(NO_CHECK_TIME)

    def is_anchor(self, der: bytes) -> bool:
        """Whether ``der`` is one of this store's anchors."""
        return der in self.anchors

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> TrustStore:
        """A store holding every certificate of a PEM bundle."""
        shown = printable(name)
        if not pem.strip():
            raise TrustStoreError(f"{shown}: the CA bundle is empty")
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise TrustStoreError(f"{shown}: not a PEM CA bundle (no -----BEGIN CERTIFICATE----- block)")
        try:
            with warnings.catch_warnings():
                # Some system roots have non-positive serials; they are still roots.
                warnings.simplefilter("ignore")
                certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            reason = " ".join(str(exc).split())[:200]
            raise TrustStoreError(
                f"{shown}: the CA bundle holds no readable PEM certificate ({reason})"
            ) from None
        if not certs:
            raise TrustStoreError(f"{shown}: the CA bundle holds no certificate")
        store = crypto.X509Store()
        anchors: set[bytes] = set()
        subjects: set[bytes] = set()
        loaded: list[crypto.X509] = []
        roots: list[crypto.X509] = []
        for cert in certs:
            der = cert.public_bytes(Encoding.DER)
            if der in anchors:
                continue
            anchors.add(der)
            subject = cert.subject.public_bytes()
            subjects.add(subject)
            loaded.append(crypto.X509.from_cryptography(cert))
            store.add_cert(loaded[-1])
            if subject == cert.issuer.public_bytes():
                roots.append(loaded[-1])
        store.set_flags(NO_CHECK_TIME)
        return cls(
            name=name,
            store=store,
            source=name,
            anchors=frozenset(anchors),
            anchor_subjects=frozenset(subjects),
            certs=tuple(loaded),
            roots=tuple(roots),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustStore:
        """A store from a PEM CA bundle file."""
        try:
            pem = read_input_file(path, cap=PEM_MAX_BYTES)
        except InputFileError as exc:
            raise TrustStoreError(f"{exc} (CA file)") from None
        return cls.from_pem(str(path), pem)

    @classmethod
    def system(cls) -> TrustStore:
        """The system trust store (``SSL_CERT_FILE`` or OpenSSL's default bundle)."""
        paths = ssl.get_default_verify_paths()
        candidates = [
            os.environ.get("SSL_CERT_FILE"),
            paths.cafile,
            paths.openssl_cafile,
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ]
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                found = cls.from_file(candidate)
                found.name, found.source = "system", candidate
                return found
        store = crypto.X509Store()
        store.set_default_paths()  # type: ignore[attr-defined]
        store.set_flags(NO_CHECK_TIME)
        return cls(name="system", store=store, source="OpenSSL default paths")


_CACHE: dict[str | None, TrustStore] = {}
_LOCK = threading.Lock()


def get_trust_store(ca_file: str | None) -> TrustStore:
    """The store for ``ca_file`` (None: system), built once per process."""
    with _LOCK:
        store = _CACHE.get(ca_file)
        if store is None:
            store = TrustStore.system() if ca_file is None else TrustStore.from_file(ca_file)
            _CACHE[ca_file] = store
        return store
