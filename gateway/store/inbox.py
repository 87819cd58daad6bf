"""The inbox: inbound messages written durably before they are acknowledged.

One writer thread takes whatever is queued and writes it in one transaction (group commit):
every message still gets its own fsync'd commit before its ACK, but concurrent senders share
the cost of the fsync. A repeat of an already accepted message (same sending application,
facility and MSH-10) is stored as a ``duplicate`` row pointing at the original.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import StoreError
from gateway.store.tables import messages

log = structlog.get_logger(__name__)

RECEIVED = "received"
WAITING = "waiting"  # the population register could not be asked yet; retried, never exposed
PROCESSED = "processed"
FAILED = "failed"
REJECTED = "rejected"
DUPLICATE = "duplicate"
STATES = (RECEIVED, WAITING, PROCESSED, FAILED, REJECTED, DUPLICATE)


@dataclass(slots=True)
class InboundRecord:
    received_at: datetime
    transport: str
    peer: str | None
    sending_application: str
    sending_facility: str
    control_id: str
    message_type: str
    trigger: str
    version: str
    charset: str
    patient: str | None
    raw: bytes
    state: str
    error: str | None
    ack_code: str
    ack: str

    @property
    def dedup_key(self) -> str | None:
        if self.state != RECEIVED:
            return None
        return f"{self.sending_application}|{self.sending_facility}|{self.control_id}"

    def row(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "transport": self.transport,
            "peer": self.peer,
            "sending_application": self.sending_application[:180],
            "sending_facility": self.sending_facility[:180],
            "control_id": self.control_id[:199],
            "message_type": self.message_type[:8],
            "trigger": self.trigger[:8],
            "version": self.version[:10],
            "charset": self.charset[:20],
            "patient": self.patient,
            "raw": self.raw,
            "state": self.state,
            "error": self.error,
            "ack_code": self.ack_code,
            "ack": self.ack,
            "dedup_key": self.dedup_key,
            "attempts": 0,
        }


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    duplicate_of: int | None


_Item = tuple[InboundRecord, asyncio.AbstractEventLoop, "asyncio.Future[Stored]"]


class Inbox:
    """Group-commit writer. ``await put(record)`` returns once the record is committed."""

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        dialect = engine.dialect.name
        self._insert_module: Any = postgresql if dialect == "postgresql" else sqlite

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the writer thread) after every commit with new work."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    async def put(self, record: InboundRecord) -> Stored:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()
        self._queue.put((record, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Item]) -> None:
        results: list[Stored] = []
        try:
            with self._engine.begin() as conn:
                for record, _, _ in batch:
                    results.append(self._insert(conn, record))
        except SQLAlchemyError as exc:
            log.error("inbox.write_failed", error=type(exc).__name__, batch=len(batch))
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_set_exception, future, StoreError("could not store the message"))
            return
        for (_, loop, future), stored in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_set_result, future, stored)
        if any(
            r.duplicate_of is None and rec.state == RECEIVED
            for (rec, _, _), r in zip(batch, results, strict=True)
        ):
            for listener in self._listeners:
                listener()

    def _insert(self, conn: Any, record: InboundRecord) -> Stored:
        row = record.row()
        key = row["dedup_key"]
        if key is None:
            new_id = conn.execute(insert(messages).values(**row).returning(messages.c.id)).scalar_one()
            return Stored(new_id, None)
        stmt = (
            self._insert_module.insert(messages)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(messages.c.id)
        )
        new_id = conn.execute(stmt).scalar_one_or_none()
        if new_id is not None:
            return Stored(new_id, None)
        original = conn.execute(select(messages.c.id).where(messages.c.dedup_key == key)).scalar_one()
        row.update(state=DUPLICATE, dedup_key=None, duplicate_of=original)
        dup_id = conn.execute(insert(messages).values(**row).returning(messages.c.id)).scalar_one()
        return Stored(dup_id, original)


def _set_result(future: asyncio.Future[Stored], value: Stored) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Stored], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
