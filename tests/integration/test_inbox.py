"""The inbox writer's own connection: a failed write is refused (never ACKed), the next one works;
on SQLite it waits for another writer's lock instead of failing."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, inspect, select, text

from gateway.errors import StoreError
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.inbox import DUPLICATE, RECEIVED, Inbox
from gateway.store.tables import messages
from tests.support import inbound_record, submit_all


def test_a_failed_write_is_refused_and_the_writer_recovers(engine: Engine) -> None:
    inbox = Inbox(engine)
    inbox.start()
    try:
        first = asyncio.run(inbox.put(inbound_record("C-1")))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE messages RENAME TO messages_away"))
        with pytest.raises(StoreError):
            asyncio.run(inbox.put(inbound_record("C-2")))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE messages_away RENAME TO messages"))
        second = asyncio.run(inbox.put(inbound_record("C-2")))
        again = asyncio.run(inbox.put(inbound_record("C-1")))
    finally:
        inbox.stop()
    assert second.duplicate_of is None and again.duplicate_of == first.id
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.control_id, messages.c.state).order_by(messages.c.id)).all()
    assert [tuple(r) for r in rows] == [("C-1", RECEIVED), ("C-2", RECEIVED), ("C-1", DUPLICATE)]


def test_on_sqlite_the_writer_waits_for_another_writers_lock(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single-writer lock")
    inbox = Inbox(engine)
    inbox.start()
    locked = threading.Event()

    def hold_the_lock() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(0.3)
            conn.exec_driver_sql("COMMIT")

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        locked.wait(5)
        started = time.monotonic()
        stored = asyncio.run(inbox.put(inbound_record("C-LOCK")))
        waited = time.monotonic() - started
    finally:
        holder.join()
        inbox.stop()
    assert stored.id > 0 and waited >= 0.1


@pytest.mark.parametrize("size", [7, 80])  # one statement; more rows than one statement takes
def test_one_batch_of_new_rejected_and_repeated_messages_keeps_arrival_order(
    engine: Engine, size: int
) -> None:
    """Everything queued before the writer starts goes in as one batch: new messages, rejected
    ones (no dedup key), a repeat of a message from an earlier batch and a repeat within the
    batch. Each gets its own id in arrival order; each repeat points at its original."""
    inbox = Inbox(engine)
    inbox.start()
    try:
        earlier = asyncio.run(inbox.put(inbound_record("EARLIER")))
    finally:
        inbox.stop()
    records = [
        inbound_record(f"N-{i}") if i % 3 else inbound_record(f"R-{i}", rejected=True)
        for i in range(size - 2)
    ]
    records.insert(2, inbound_record("EARLIER"))
    records.append(inbound_record("N-1"))  # N-1 is new earlier in this same batch

    stored = submit_all(Inbox(engine), records)
    by_control = {r.control_id: s for r, s in zip(records, stored, strict=True) if r.control_id != "N-1"}
    assert by_control["EARLIER"].duplicate_of == earlier.id
    first_n1, repeat_n1 = (s for r, s in zip(records, stored, strict=True) if r.control_id == "N-1")
    assert first_n1.duplicate_of is None and repeat_n1.duplicate_of == first_n1.id
    with engine.connect() as conn:
        rows = {
            row.id: row
            for row in conn.execute(
                select(messages.c.id, messages.c.control_id, messages.c.state, messages.c.duplicate_of)
            )
        }
    for record, outcome in zip(records, stored, strict=True):
        row = rows[outcome.id]
        assert row.control_id == record.control_id
        assert row.duplicate_of == outcome.duplicate_of
        expected = DUPLICATE if outcome.duplicate_of is not None else record.state
        assert row.state == expected
    # The messages that went in as they came have ids in arrival order.
    firsts = [s.id for s in stored if s.duplicate_of is None]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


def test_migration_0007_keeps_the_messages_and_their_deduplication(tmp_path: Path) -> None:
    """An existing SQLite database (batch mode copies the table) keeps its rows, and a repeat of
    a message accepted before the migration is still a duplicate of it."""
    engine = make_engine(f"sqlite:///{(tmp_path / 'before.db').as_posix()}")
    try:
        migrate.upgrade(engine, "0006")
        with engine.begin() as conn:
            key = conn.execute(insert(messages).values(inbound_record("OLD").row())).inserted_primary_key
        assert key is not None
        old_id = key[0]
        migrate.upgrade(engine)
        inbox = Inbox(engine)
        inbox.start()
        try:
            again = asyncio.run(inbox.put(inbound_record("OLD")))
            new = asyncio.run(inbox.put(inbound_record("NEW")))
        finally:
            inbox.stop()
        assert again.duplicate_of == old_id and new.duplicate_of is None
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("messages")}
        assert "uq_messages_control_dedup" in indexes and "ix_messages_control_id" not in indexes
    finally:
        engine.dispose()
