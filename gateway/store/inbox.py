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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, bindparam, insert, select
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
        insert_module: Any = postgresql if dialect == "postgresql" else sqlite
        # Built once: the values come as execute() parameters, so SQLAlchemy compiles each
        # statement once instead of building a new statement (and its cache key) per message.
        self._insert_plain = insert(messages).returning(messages.c.id)
        self._insert_new = (
            insert_module.insert(messages)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(messages.c.id)
        )
        self._find_original = select(messages.c.id).where(messages.c.dedup_key == bindparam("key"))

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
            _settle(batch, [StoreError("could not store the message") for _ in batch])
            return
        _settle(batch, results)
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
            return Stored(conn.execute(self._insert_plain, row).scalar_one(), None)
        new_id = conn.execute(self._insert_new, row).scalar_one_or_none()
        if new_id is not None:
            return Stored(new_id, None)
        original = conn.execute(self._find_original, {"key": key}).scalar_one()
        row.update(state=DUPLICATE, dedup_key=None, duplicate_of=original)
        return Stored(conn.execute(self._insert_plain, row).scalar_one(), original)


def _settle(batch: list[_Item], outcomes: Sequence[Stored | StoreError]) -> None:
    """Hand each sender its outcome: one wake-up per event loop per batch, not one per message."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Stored | StoreError]]] = {}
    for (_, loop, future), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, pairs in by_loop.items():
        loop.call_soon_threadsafe(_settle_in_loop, pairs)


def _settle_in_loop(pairs: list[tuple[asyncio.Future[Stored], Stored | StoreError]]) -> None:
    for future, outcome in pairs:
        if isinstance(outcome, BaseException):
            _set_exception(future, outcome)
        else:
            _set_result(future, outcome)


def _set_result(future: asyncio.Future[Stored], value: Stored) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Stored], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
