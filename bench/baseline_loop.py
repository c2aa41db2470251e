"""The baseline: the least a client can do for N fresh TLS handshakes.

Reads the same targets file as ``certpager check --targets`` (``IP:PORT@SNI``
lines), opens one fresh TCP + TLS connection per target, at most
``--concurrency`` at a time, and does nothing else: no verification (except in
``stdlib`` mode), no analysis, no output but one JSON summary line.

Modes:
    pyopenssl  asyncio + pyOpenSSL over a memory BIO (what certpager does), no
               verification; the chain is fetched as DER, nothing is parsed.
    stdlib     ``asyncio.open_connection(ssl=ctx)`` with the stdlib ``ssl``
               module, verifying chain and hostname against ``--ca-file``.
    s_client   one ``openssl s_client`` process per target (tool comparison).

``--key-shares one`` (pyopenssl mode): offer the key exchange groups the way
certpager's client does (OpenSSL's default groups, one key share: X25519) instead
of OpenSSL's default (X25519MLKEM768 + X25519 shares). The benchmark runs it as an
extra row, for transparency: the target compares with the default loop.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable

from OpenSSL import SSL

_READ = 65536
NO_CHECK_TIME = 0x200000
#: The same string as certpager.probe.handshake.KEY_EXCHANGE_GROUPS (kept apart: the
#: baseline imports nothing from certpager).
ONE_SHARE_GROUPS = (
    "?X25519MLKEM768:?SecP256r1MLKEM768:?curveSM2MLKEM768:?*X25519:?secp256r1:?X448"
    ":?secp384r1:?secp521r1:?curveSM2:?ffdhe2048:?ffdhe3072"
)


def read_targets(path: str) -> list[tuple[str, int, str]]:
    """``[(ip, port, sni)]`` from an ``IP:PORT@SNI`` file (``#`` comments)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            hostport, sni = text.rsplit("@", 1)
            host, port = hostport.rsplit(":", 1)
            out.append((host, int(port), sni))
    return out


def _pending(conn: SSL.Connection) -> bytes:
    """Everything OpenSSL has queued for the peer."""
    chunks = []
    while True:
        try:
            data = conn.bio_read(_READ)
        except SSL.WantReadError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


async def pyopenssl_handshake(ctx: SSL.Context, host: str, port: int, sni: str) -> int:
    """One fresh handshake over a memory BIO; returns the number of certificates sent."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        conn.set_tlsext_host_name(sni.encode())
        while True:
            try:
                conn.do_handshake()
                done = True
            except SSL.WantReadError:
                done = False
            out = _pending(conn)
            if out:
                await loop.sock_sendall(sock, out)
            if done:
                break
            data = await loop.sock_recv(sock, _READ)
            if not data:
                raise ConnectionError("closed during handshake")
            conn.bio_write(data)
        chain = conn.get_peer_cert_chain() or []
        return len(chain)
    finally:
        sock.close()


async def stdlib_handshake(ctx: ssl.SSLContext, host: str, port: int, sni: str) -> int:
    """One fresh, verified handshake with the stdlib; returns 1 when it completed."""
    _reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni)
    writer.transport.abort()  # like the other modes: no close_notify, just close
    return 1


async def s_client(host: str, port: int, sni: str) -> int:
    """One ``openssl s_client`` process; returns 1 on exit status 0."""
    proc = await asyncio.create_subprocess_exec(
        "openssl",
        "s_client",
        "-connect",
        f"{host}:{port}",
        "-servername",
        sni,
        "-brief",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return 1 if await proc.wait() == 0 else 0


async def run(
    targets: list[tuple[str, int, str]],
    mode: str,
    concurrency: int,
    ca_file: str | None,
    key_shares: str = "default",
) -> dict:
    limit = asyncio.Semaphore(concurrency)
    one_handshake: Callable[[str, int, str], Awaitable[int]]
    if mode == "pyopenssl":
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_verify(SSL.VERIFY_NONE)
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if key_shares == "one":
            from OpenSSL._util import lib

            if lib.SSL_CTX_set1_curves_list(ctx._context, ONE_SHARE_GROUPS.encode()) != 1:
                raise SystemExit("this OpenSSL does not take the one-share groups list")
        one_handshake = functools.partial(pyopenssl_handshake, ctx)
    elif mode == "stdlib":
        sctx = ssl.create_default_context(cafile=ca_file)
        # Like certpager, judge trust apart from dates (X509_V_FLAG_NO_CHECK_TIME):
        # some benchmark leaves are expired on purpose.
        sctx.verify_flags |= NO_CHECK_TIME
        one_handshake = functools.partial(stdlib_handshake, sctx)
    else:
        one_handshake = s_client

    ok = 0
    certs = 0
    errors: dict[str, int] = {}

    async def one(target: tuple[str, int, str]) -> None:
        nonlocal ok, certs
        async with limit:
            try:
                async with asyncio.timeout(10):
                    n = await one_handshake(*target)
            except Exception as exc:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                return
            if n:
                ok += 1
                certs += n
            else:
                errors["failed"] = errors.get("failed", 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(one(t) for t in targets))
    return {
        "mode": mode,
        "targets": len(targets),
        "ok": ok,
        "certs_received": certs,
        "errors": errors,
        "loop_s": round(time.perf_counter() - start, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", required=True, help="IP:PORT@SNI per line")
    parser.add_argument("--mode", choices=("pyopenssl", "stdlib", "s_client"), default="pyopenssl")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--ca-file", help="root CA (stdlib mode verifies against it)")
    parser.add_argument(
        "--key-shares",
        choices=("default", "one"),
        default="default",
        help="pyopenssl mode: OpenSSL's default key shares, or one (X25519) as certpager sends",
    )
    args = parser.parse_args(argv)
    summary = asyncio.run(
        run(read_targets(args.targets), args.mode, args.concurrency, args.ca_file, args.key_shares)
    )
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0 if summary["ok"] == summary["targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
