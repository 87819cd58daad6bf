"""The garbage collector tuned for a long-running server process.

CPython's cyclic collector runs a young collection every 700 net allocations and a full one,
over every tracked object, every 100 young ones: at thousands of messages a second, each
allocating dicts, lists and dataclasses, the full collections over the imported libraries'
objects (fhir.resources, pydantic, SQLAlchemy) took about a quarter of the processing worker's
time (bench/README.md, finding 8). So, once per process, what exists after start-up (mostly
there for good) is frozen out of every collection (``gc.freeze``), and collections run less
often: a full one every ~1,000,000 net allocations instead of every ~70,000. Reference counting
frees almost everything anyway; only reference cycles wait for the collector a little longer.
"""

from __future__ import annotations

import gc

#: Young collections after this many net allocations (CPython's default: 700); a middle one
#: every 10 young ones and a full one every 10 middle ones, as by default.
THRESHOLDS = (10_000, 10, 10)

_tuned = False


def tune_for_serving() -> None:
    """Call when the process is built and about to serve. Only the first call in a process
    freezes (tests and benchmarks start many gateways in one process; freezing again would
    keep every earlier one's garbage for good)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
