"""The garbage collector tuned for a long-running server process.

CPython's cyclic collector runs a young collection every 700 net allocations and, every 100 of
those, a full one over every tracked object: at thousands of messages a second, each allocating
dicts, lists and dataclasses, the full collections over the imported libraries' objects
(fhir.resources, pydantic, SQLAlchemy) took about a quarter of the processing worker's time
(bench/README.md). Once the process has started, what exists is mostly there for good, so it
is frozen out of every collection (``gc.freeze``), and collections run less often. Reference
counting frees almost everything anyway; only reference cycles wait for the collector, and
these thresholds keep them to a few megabytes.
"""

from __future__ import annotations

import gc

#: Young collections after this many net allocations (CPython's default: 700)...
YOUNG = 50_000
#: ... a middle one every 50 young ones, a full one every 100 middle ones (defaults: 10, 10).
MIDDLE = 50
OLD = 100


def tune_for_serving() -> None:
    """Call once the process is built and about to serve (idempotent)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
