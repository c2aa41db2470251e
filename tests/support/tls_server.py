"""The lab's TLS server under the names the tests import (:mod:`certpager.lab.tls`).

One implementation for the demo, the tests and the bench; the test-only hostile
variants live in :mod:`tests.support.hostile` and :mod:`tests.support.deep_servers`.
"""

from __future__ import annotations

from certpager.lab.tls import IO_TIMEOUT, JOIN_TIMEOUT, LoopbackServer, TLSServer, server_context

__all__ = ["IO_TIMEOUT", "JOIN_TIMEOUT", "LoopbackServer", "TLSServer", "server_context"]
