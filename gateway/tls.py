"""TLS contexts shared within a process.

``ssl.create_default_context()`` reads the system's whole CA bundle each time (tens of
milliseconds); every outside client that trusts the system's CAs and presents no certificate of
its own can share one context, read once. A context with a client certificate or its own CA is
made per client by its adapter and never shared (it would change the shared one).
"""

from __future__ import annotations

import functools
import ssl

__all__ = ["system_trust"]


@functools.cache
def system_trust() -> ssl.SSLContext:
    """Verify servers against the system's CAs; no client certificate. Do not modify it."""
    return ssl.create_default_context()
