"""The inbox: inbound messages written durably before they are acknowledged.

One writer thread takes whatever is queued and writes it in one transaction (group commit):
every message still gets its own fsync'd commit before its ACK, but concurrent senders share
the cost of the fsync. A repeat of an already accepted message (same sending application,
facility and MSH-10) is stored as a ``duplicate`` row pointing at the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import StoreError
from gateway.store.compiled import Compiled
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
            "duplicate_of": None,
            "attempts": 0,
            "restricted": False,
        }


#: The columns the inbox writes (the keys of ``InboundRecord.row()``).
_COLUMNS = (
    "received_at",
    "transport",
    "peer",
    "sending_application",
    "sending_facility",
    "control_id",
    "message_type",
    "trigger",
    "version",
    "charset",
    "patient",
    "raw",
    "state",
    "error",
    "ack_code",
    "ack",
    "dedup_key",
    "duplicate_of",
    "attempts",
    "restricted",
)


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    duplicate_of: int | None


#: Called on the submitter's event loop with the outcome once the record's batch has committed.
Settled = Callable[["Stored | StoreError"], None]
_Item = tuple[InboundRecord, asyncio.AbstractEventLoop, Settled]


class Inbox:
    """Group-commit writer. ``await put(record)`` returns once the record is committed."""

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        # The writer thread's own connection, kept between batches (no pool checkout and, on
        # PostgreSQL, no pre-ping round trip per batch); dropped after any error.
        self._conn: Any = None
        dialect = engine.dialect
        self._sqlite = dialect.name == "sqlite"
        self._errors: tuple[type[BaseException], ...] = (SQLAlchemyError, dialect.loaded_dbapi.Error)
        insert_module: Any = postgresql if dialect.name == "postgresql" else sqlite
        # Compiled once (gateway/store/compiled.py). A new accepted message goes in with ON CONFLICT
        # (dedup_key) DO NOTHING: no id back means a repeat of an accepted message.
        values: dict[str, Any] = {name: bindparam(name) for name in _COLUMNS}
        self._insert_plain = Compiled(
            insert(messages).values(values).returning(messages.c.id), dialect, _COLUMNS, messages
        )
        self._insert_new = Compiled(
            insert_module.insert(messages)
            .values(values)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(messages.c.id),
            dialect,
            _COLUMNS,
            messages,
        )
        marker = "?" if dialect.positional else "%(key)s"
        self._find_original = f"SELECT id FROM messages WHERE dedup_key = {marker}"
        self._key_params: Callable[[str], Any] = (
            (lambda key: (key,)) if dialect.positional else (lambda key: {"key": key})
        )

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
        self._drop_connection()

    def submit(self, record: InboundRecord, settled: Settled) -> None:
        """Queue ``record``; ``settled`` is called on this event loop's thread with the record's
        :class:`Stored` once its batch has committed, or with a :class:`StoreError`.

        The callback form is for the MLLP path, where a future and a coroutine per message cost
        more than the rest of the hand-over; :meth:`put` is the awaitable form."""
        self._queue.put((record, asyncio.get_running_loop(), settled))

    async def put(self, record: InboundRecord) -> Stored:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()

        def settled(outcome: Stored | StoreError) -> None:
            if future.done():
                return
            if isinstance(outcome, StoreError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        self._queue.put((record, loop, settled))
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
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            cursor = conn.cursor()
            try:
                if self._sqlite:
                    _begin_immediate(cursor)
                for record, _, _ in batch:
                    results.append(self._insert(cursor, record))
            finally:
                cursor.close()
            conn.commit()
        except self._errors as exc:
            log.error("inbox.write_failed", error=type(exc).__name__, batch=len(batch))
            self._drop_connection()
            _settle(batch, [StoreError("could not store the message") for _ in batch])
            return
        _settle(batch, results)
        if any(
            r.duplicate_of is None and rec.state == RECEIVED
            for (rec, _, _), r in zip(batch, results, strict=True)
        ):
            for listener in self._listeners:
                listener()

    def _connect(self) -> Any:
        conn = self._engine.raw_connection()
        if self._sqlite:
            # The writer waits for the write lock itself (_begin_immediate) instead of in
            # SQLite's busy handler, whose sleeps grow to 25-100 ms: a sender's ACK would wait
            # that long after the worker's transaction ended. Never handed back to the pool.
            cursor = conn.cursor()
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()
        return conn

    def _drop_connection(self) -> None:
        """After an error (or at stop): roll back and close, so the next batch starts afresh."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*self._errors):
            conn.rollback()
        conn.invalidate()  # closed, not returned to the pool (its settings are the writer's)

    def _insert(self, cursor: Any, record: InboundRecord) -> Stored:
        row = record.row()
        key = row["dedup_key"]
        if key is None:
            return Stored(_returned_id(cursor, self._insert_plain, row), None)
        new_id = _returned_id(cursor, self._insert_new, row)
        if new_id is not None:
            return Stored(new_id, None)
        cursor.execute(self._find_original, self._key_params(key))
        original = int(cursor.fetchall()[0][0])
        row.update(state=DUPLICATE, dedup_key=None, duplicate_of=original)
        return Stored(_returned_id(cursor, self._insert_plain, row), original)


#: How long the writer waits for SQLite's write lock before giving up (the engine's busy_timeout).
LOCK_TIMEOUT = 30.0


def _begin_immediate(cursor: Any) -> None:
    """Take SQLite's write lock, polling every 0.2 to 2 ms while another writer (the worker)
    holds it, so the batch goes in as soon as the lock is free."""
    import sqlite3

    deadline = time.monotonic() + LOCK_TIMEOUT
    delay = 0.0002
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.002)


def _returned_id(cursor: Any, stmt: Compiled, row: dict[str, Any]) -> Any:
    """The id an INSERT ... RETURNING id gave back, or None when it inserted nothing."""
    cursor.execute(stmt.sql, stmt.params(row))
    rows = cursor.fetchall()  # fetch all: the statement is finished before the next one
    return int(rows[0][0]) if rows else None


def _settle(batch: list[_Item], outcomes: Sequence[Stored | StoreError]) -> None:
    """Hand each sender its outcome: one wake-up per event loop per batch, not one per message."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Settled, Stored | StoreError]]] = {}
    for (_, loop, settled), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((settled, outcome))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there any more
            loop.call_soon_threadsafe(_settle_in_loop, pairs)


def _settle_in_loop(pairs: list[tuple[Settled, Stored | StoreError]]) -> None:
    for settled, outcome in pairs:
        try:
            settled(outcome)
        except Exception:  # one sender's fault must not keep the others from their outcomes
            log.exception("inbox.settle_failed")
