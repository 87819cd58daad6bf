"""The inbox writer's own connection: a failed write is refused (never ACKed), the next one works;
on SQLite it waits for another writer's lock instead of failing."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text

from gateway.errors import StoreError
from gateway.store.inbox import DUPLICATE, RECEIVED, InboundRecord, Inbox
from gateway.store.tables import messages


def _record(control_id: str) -> InboundRecord:
    return InboundRecord(
        received_at=datetime.now(UTC),
        transport="mllp",
        peer="test",
        sending_application="APP",
        sending_facility="FAC",
        control_id=control_id,
        message_type="SIU",
        trigger="S12",
        version="2.5.1",
        charset="",
        patient=None,
        raw=b"MSH|^~\\&|APP|FAC",
        state=RECEIVED,
        error=None,
        ack_code="AA",
        ack="MSH|...",
    )


def test_a_failed_write_is_refused_and_the_writer_recovers(engine: Engine) -> None:
    inbox = Inbox(engine)
    inbox.start()
    try:
        first = asyncio.run(inbox.put(_record("C-1")))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE messages RENAME TO messages_away"))
        with pytest.raises(StoreError):
            asyncio.run(inbox.put(_record("C-2")))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE messages_away RENAME TO messages"))
        second = asyncio.run(inbox.put(_record("C-2")))
        again = asyncio.run(inbox.put(_record("C-1")))
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
        stored = asyncio.run(inbox.put(_record("C-LOCK")))
        waited = time.monotonic() - started
    finally:
        holder.join()
        inbox.stop()
    assert stored.id > 0 and waited >= 0.1
