"""Every use of pyOpenSSL's private bindings, in one place.

pyOpenSSL does not wrap a few OpenSSL calls the probe uses on every handshake
(``SSL_CTX_set_cert_cb``, ``SSL_CTX_set1_curves_list``, the chains' own stacks), so
these functions reach ``OpenSSL._util`` and the ``_context``, ``_ssl`` and ``_x509``
attributes of pyOpenSSL objects. Nothing else in
certpager does. Each function says what it falls back to when the bindings are not
what it expects (False, None, or the public API): a pyOpenSSL that changes them costs
speed, never a verdict. The pyOpenSSL versions this is tested with are bounded in
``pyproject.toml``; ``tests/unit/test_openssl_fast_path.py`` fails when the installed
one silently loses a fast path. Why each is worth it: docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto


def _bindings() -> tuple[Any, Any] | None:
    """pyOpenSSL's cffi ``(ffi, lib)``, or None when it no longer has them there."""
    try:
        from OpenSSL._util import ffi, lib
    except Exception:
        return None
    return ffi, lib


def available() -> bool:
    """Whether pyOpenSSL's private bindings can be reached at all."""
    return _bindings() is not None


#: cffi callbacks handed to OpenSSL, kept alive with their contexts (cached for the
#: life of the process by the caller).
_CERT_CALLBACKS: dict[int, Any] = {}


def on_certificate_request(ctx: SSL.Context, note: Callable[[SSL.Connection], None]) -> bool:
    """Call ``note(conn)`` when a server asks ``conn`` for a client certificate, through
    OpenSSL's certificate callback (which OpenSSL runs on a client only then).

    Returns False (nothing installed; the caller keeps pyOpenSSL's info callback) when
    the bindings are not what this expects.
    """
    bindings = _bindings()
    if bindings is None:
        return False
    ffi, lib = bindings
    try:
        set_cert_cb = lib.SSL_CTX_set_cert_cb
        raw_ctx = ctx._context
        connections = SSL.Connection._reverse_mapping

        def on_request(ssl: Any, _arg: Any) -> int:
            conn = connections.get(ssl)
            if conn is not None:
                note(conn)
            return 1  # go on: OpenSSL sends the configured certificate, or none

        callback = ffi.callback("int (*)(SSL *, void *)", on_request, onerror=lambda *_: 1)
        set_cert_cb(raw_ctx, callback, ffi.NULL)
    except Exception:
        return False
    _CERT_CALLBACKS[id(ctx)] = callback
    return True


def set_groups(ctx: SSL.Context, groups: str) -> bool:
    """``SSL_CTX_set1_curves_list(ctx, groups)``: the groups offered and which get a key
    share. False (library defaults kept) when OpenSSL or the bindings cannot take it."""
    bindings = _bindings()
    if bindings is None:
        return False
    try:
        return bool(bindings[1].SSL_CTX_set1_curves_list(ctx._context, groups.encode()) == 1)
    except Exception:
        return False


def pointer(cert: crypto.X509) -> Any:
    """The OpenSSL object behind ``cert`` (None if pyOpenSSL hides it): it identifies
    the certificate in OpenSSL's chains and stores."""
    return getattr(cert, "_x509", None)


def wrap(obj: Any) -> crypto.X509:
    """A pyOpenSSL certificate owning a new reference to the OpenSSL object ``obj`` (a
    :func:`pointer`); raises ``SSL.Error`` when that is not possible."""
    bindings = _bindings()
    if bindings is None:
        raise SSL.Error("pyOpenSSL's bindings are not available")
    if bindings[1].X509_up_ref(obj) != 1:
        raise SSL.Error("X509_up_ref failed")
    return crypto.X509._from_raw_x509_ptr(obj)


class RawChains:
    """A finished connection's chains read straight from OpenSSL: the stacks' own
    pointers, each certificate encoded through a memory BIO, no wrapper objects (the
    public API wraps and reference-counts every certificate of both chains).

    Same interface as the public reader in :mod:`certpager.probe.handshake`, which
    only switches to this one after it read a connection's chains identically.
    """

    def __init__(self, ffi: Any, lib: Any):
        self.ffi, self.lib = ffi, lib

    @classmethod
    def create(cls) -> RawChains | None:
        """A reader, or None when pyOpenSSL's bindings are not available."""
        bindings = _bindings()
        return cls(*bindings) if bindings is not None else None

    def sent(self, conn: SSL.Connection) -> tuple[list[Any], tuple[bytes, ...]]:
        """The certificates the peer sent: their OpenSSL objects and DER, in order."""
        objects = self._stack(self.lib.SSL_get_peer_cert_chain(conn._ssl))
        return objects, tuple(self._der(x) for x in objects)

    def verified(self, conn: SSL.Connection) -> list[Any]:
        """The OpenSSL objects of the verified path, leaf first (empty: none)."""
        return self._stack(self.lib.SSL_get0_verified_chain(conn._ssl))

    def keep(self, obj: Any) -> tuple[Any, bytes]:
        """``(owner, DER)`` of an object of :meth:`verified`; the owner keeps it alive."""
        if self.lib.X509_up_ref(obj) != 1:
            raise SSL.Error("X509_up_ref failed")
        return self.ffi.gc(obj, self.lib.X509_free), self._der(obj)

    def _stack(self, stack: Any) -> list[Any]:
        if stack == self.ffi.NULL:
            return []
        value = self.lib.sk_X509_value
        return [value(stack, i) for i in range(self.lib.sk_X509_num(stack))]

    def _der(self, obj: Any) -> bytes:
        lib = self.lib
        bio = lib.BIO_new(lib.BIO_s_mem())
        if bio == self.ffi.NULL:
            raise SSL.Error("BIO_new failed")
        try:
            if lib.i2d_X509_bio(bio, obj) != 1:
                raise SSL.Error("i2d_X509_bio failed")
            data = self.ffi.new("char **")
            size = lib.BIO_get_mem_data(bio, data)
            return bytes(self.ffi.buffer(data[0], size))
        finally:
            lib.BIO_free(bio)
