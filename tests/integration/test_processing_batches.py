"""The worker's batched writes (bench/README.md, finding 7) leave exactly what one message at a
time leaves: same rows, versions, resources and message states, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from gateway import mappings as mapping_tables
from gateway.domain.identity import PersonId
from gateway.domain.register import Protection, RegisterRecord
from gateway.service.intake import Intake
from gateway.service.processing import Processor
from gateway.store.inbox import Inbox
from gateway.store.tables import appointments, messages
from mocks.journal.simulator import JournalSimulator

MAPPINGS = mapping_tables.load()
NOW = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)


class Everyone:
    """Everyone exists and nobody is protected (the simulator's persons are many)."""

    async def lookup(self, person: PersonId) -> RegisterRecord | None:
        return RegisterRecord(person=person, protection=Protection.NONE)


def _store_journal_traffic(engine: Engine) -> int:
    sim = JournalSimulator(seed=3, run_id="B")
    data = [m.data for day in range(3) for m in sim.day(date(2027, 1, 4) + timedelta(days=day), bookings=25)]
    # The first 40 again under new control ids (a journal sending a booking's state again):
    # content that repeats, in the same batch and across batches.
    data += [raw.replace(b"|TCB", b"|TCR", 1) for raw in data[:40]]

    async def put_all() -> None:
        inbox = Inbox(engine)
        inbox.start()
        try:
            intake = Intake(MAPPINGS, inbox)
            for raw in data:
                await intake.handle(raw, transport="mllp")
        finally:
            inbox.stop()

    asyncio.run(put_all())
    return len(data)


def _process(engine: Engine, batch: int) -> None:
    processor = Processor(engine, MAPPINGS, Everyone(), batch_size=batch, clock=lambda: NOW)
    while processor.run_once():
        pass


def _snapshot(engine: Engine) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(appointments).order_by(appointments.c.id)).mappings()]
        states = [
            tuple(r)
            for r in conn.execute(
                select(messages.c.id, messages.c.state, messages.c.error, messages.c.attempts).order_by(
                    messages.c.id
                )
            )
        ]
    return rows, states


def _again(engine: Engine, *, forget_bookings: bool) -> None:
    with engine.begin() as conn:
        if forget_bookings:
            conn.execute(appointments.delete())
        conn.execute(
            update(messages)
            .where(messages.c.state.in_(("processed", "failed")))
            .values(state="received", attempts=0, processed_at=None, error=None)
        )


def test_a_batch_writes_what_one_message_at_a_time_writes(engine: Engine) -> None:
    stored = _store_journal_traffic(engine)
    _process(engine, batch=1)
    one_by_one = _snapshot(engine)
    assert len(one_by_one[1]) == stored and {s[1] for s in one_by_one[1]} == {"processed"}
    assert max(r["version_id"] for r in one_by_one[0]) > 1  # changes and repeats were there

    _again(engine, forget_bookings=True)
    _process(engine, batch=500)
    assert _snapshot(engine) == one_by_one

    # Processing everything once more changes no booking (versions move with content only).
    _again(engine, forget_bookings=False)
    _process(engine, batch=37)
    rows, _ = _snapshot(engine)
    assert rows == one_by_one[0]
