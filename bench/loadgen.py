"""The journals: N senders, each on its own persistent MLLP connection, one message in flight.

Runs in a separate (spawned) process so the senders do not share the server's GIL; the same
load goes to the floor server and to the gateway. Each sender is a simulated journal
(``mocks/journal/simulator.py``) with its own seed and run id (unique control ids), sends its
next message when the ACK for the previous one has come, and notes the time from writing the
frame to reading the whole ACK.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from gateway.journal_adapter.mllp import MllpClient
from mocks.journal.simulator import JournalSimulator


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    senders: int
    warmup_s: float
    duration_s: float
    run_id: str  # makes control ids unique per run (a fresh database each time anyway)
    seed: int = 1
    pregenerate: int = 2000  # messages per sender made before the clock starts


class _Journal:
    """An endless, deterministic stream of one journal's messages (a day of bookings at a time)."""

    def __init__(self, seed: int, run_id: str) -> None:
        self.sim = JournalSimulator(seed=seed, run_id=run_id)
        self.day = date(2027, 1, 4)
        self.pending: deque[bytes] = deque()
        self.sizes = 0
        self.made = 0

    def fill(self, at_least: int) -> None:
        while len(self.pending) < at_least:
            for m in self.sim.day(self.day, bookings=40):
                self.pending.append(m.data)
                self.sizes += len(m.data)
                self.made += 1
            self.day += timedelta(days=1)

    def next(self) -> bytes:
        if not self.pending:
            self.fill(200)
        return self.pending.popleft()


def drive(spec: LoadSpec) -> dict[str, Any]:
    """Entry point in the load process: run the senders, return what they saw."""
    return asyncio.run(_drive(spec))


def _ack_code(ack: bytes) -> str:
    at = ack.find(b"MSA|")
    return ack[at + 4 : at + 6].decode("ascii", "replace") if at >= 0 else "??"


async def _drive(spec: LoadSpec) -> dict[str, Any]:
    journals = [_Journal(spec.seed + i, f"{spec.run_id}{i}") for i in range(spec.senders)]
    for j in journals:
        j.fill(spec.pregenerate)
    clients = [MllpClient(spec.host, spec.port, timeout=60) for _ in journals]
    for c in clients:
        await c.connect()
    epoch0, t0 = time.time(), time.perf_counter()
    window_start = t0 + spec.warmup_s
    window_end = window_start + spec.duration_s
    latencies: list[list[float]] = [[] for _ in journals]
    codes: dict[str, int] = {}
    sent = [0] * len(journals)

    async def sender(i: int) -> None:
        client, journal, lat = clients[i], journals[i], latencies[i]
        while True:
            message = journal.next()
            start = time.perf_counter()
            if start >= window_end:
                return
            ack = await client.send(message)
            done = time.perf_counter()
            sent[i] += 1
            if window_start <= start and done <= window_end:
                lat.append((done - start) * 1000.0)
                code = _ack_code(ack)
                codes[code] = codes.get(code, 0) + 1

    try:
        await asyncio.gather(*(sender(i) for i in range(len(journals))))
    finally:
        for c in clients:
            await c.close()
    made = sum(j.made for j in journals)
    return {
        "window_s": spec.duration_s,
        # The window on the wall clock, to count what the gateway's worker finished within it.
        "window_epoch": [epoch0 + spec.warmup_s, epoch0 + spec.warmup_s + spec.duration_s],
        "latencies_ms": [x for lat in latencies for x in lat],
        "per_sender": [len(lat) for lat in latencies],
        "sent_total": sum(sent),
        "ack_codes": codes,
        "mean_message_bytes": sum(j.sizes for j in journals) / made if made else 0.0,
    }
