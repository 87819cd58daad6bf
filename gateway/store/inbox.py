"""The inbox: inbound messages written durably before they are acknowledged.

One writer thread takes whatever is queued and writes it in one transaction (group commit):
every message still gets its own fsync'd commit before its ACK, but concurrent senders share
the cost of the fsync. A repeat of an already accepted message (same sending application,
facility and MSH-10) is stored as a ``duplicate`` row pointing at the original.

On SQLite the batch is committed to the intake journal, a file of its own beside the database,
and the processing worker moves it into ``messages`` (``gateway/store/intake_journal.py``): an
ACK never waits for the worker's transactions. On PostgreSQL it goes into ``messages`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
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
from gateway.store.intake_journal import COLUMNS, IntakeJournal, Mover, entries, when_unlocked
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


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    duplicate_of: int | None


#: Called on the submitter's event loop with the outcome once the record's batch has committed.
Settled = Callable[["Stored | StoreError"], None]
_Item = tuple[InboundRecord, asyncio.AbstractEventLoop, Settled]


class Inbox:
    """Group-commit writer. ``await put(record)`` returns once the record is committed.

    With an intake journal (SQLite, ``gateway/store/intake_journal.py``) the batch is committed
    to the journal, and the worker moves it into ``messages``; without one (PostgreSQL) it is
    written to ``messages`` directly."""

    def __init__(self, engine: Engine, *, max_batch: int = 500, journal: IntakeJournal | None = None) -> None:
        self._engine = engine
        self._journal = journal
        # Moves for put() (the HTTP transport), whose caller learns whether it was a repeat.
        self._mover = Mover(journal, engine) if journal is not None else None
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        # Per event loop: what this turn of it has submitted (handed over at the turn's end).
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        # The writer thread's own connection, kept between batches (no pool checkout and, on
        # PostgreSQL, no pre-ping round trip per batch); dropped after any error.
        self._conn: Any = None
        dialect = engine.dialect
        self._sqlite = dialect.name == "sqlite"
        self._errors: tuple[type[BaseException], ...] = (SQLAlchemyError, dialect.loaded_dbapi.Error)
        self._dialect = dialect
        self._insert_module: Any = postgresql if dialect.name == "postgresql" else sqlite
        # Compiled once (gateway/store/compiled.py): the batch's rows in one statement
        # (_batch_insert, per number of rows), and a repeat of an accepted message on its own.
        values: dict[str, Any] = {name: bindparam(name) for name in COLUMNS}
        self._insert_plain = Compiled(
            insert(messages).values(values).returning(messages.c.id), dialect, COLUMNS, messages
        )
        # The journal's rows are the same values in the same order (positional, on SQLite).
        self._append_one = Compiled(insert(entries).values(values), dialect, COLUMNS, entries)
        self._appends: dict[int, Compiled] = {}
        self._batch_inserts: dict[tuple[int, bool], Compiled] = {}
        self._positional = bool(dialect.positional)
        self._find_original = (
            "SELECT id FROM messages WHERE control_id = ? AND dedup_key = ?"
            if self._positional
            else "SELECT id FROM messages WHERE control_id = %(c)s AND dedup_key = %(k)s"
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
            for loop in list(self._gathering):  # submitted in a turn that has not ended yet
                self._hand_over(loop)
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        self._drop_connection()
        if self._mover is not None:
            self._mover.close()

    def submit(self, record: InboundRecord, settled: Settled) -> None:
        """Queue ``record``; ``settled`` is called on this event loop's thread with the record's
        :class:`Stored` once its batch has committed, or with a :class:`StoreError`.

        The callback form is for the MLLP path, where a future and a coroutine per message cost
        more than the rest of the hand-over; :meth:`put` is the awaitable form.

        What one turn of the event loop submits goes to the writer together, at the end of the
        turn: one wake-up of the writer thread instead of one per message, and the writer does
        not start a commit with the first of several messages that arrived together."""
        loop = asyncio.get_running_loop()
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append((record, loop, settled))

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        gathered = self._gathering.pop(loop, None)
        if gathered:
            self._queue.put(gathered)

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

        self.submit(record, settled)
        stored = await future
        if self._mover is None or stored.duplicate_of is not None:
            return stored
        # In the journal: moved into ``messages`` now (with whatever came before it), so the
        # caller learns whether it repeated an accepted message. Rare (HTTP); the worker moves
        # the rest. A failed move is a StoreError: the sender gets AR and sends it again.
        await asyncio.to_thread(self._mover.move, through=stored.id)
        return Stored(stored.id, await asyncio.to_thread(self._mover.duplicate_of, stored.id))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            stopping = False
            while len(batch) < self._max_batch:  # a turn's messages are never split
                try:
                    items = self._queue.get_nowait()
                except queue.Empty:
                    break
                if items is None:
                    stopping = True
                    break
                batch += items
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Item]) -> None:
        records = [record for record, _, _ in batch]
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            if self._journal is not None:
                results = self._append(conn, records)
            elif self._sqlite and len(records) <= _ROWS_PER_STATEMENT:
                results = self._insert_one_statement(conn, records)
            else:
                cursor = conn.cursor()
                try:
                    if self._sqlite:
                        when_unlocked(lambda: cursor.execute("BEGIN IMMEDIATE"))
                    results = self._insert(records, cursor)
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
            r.duplicate_of is None and rec.state == RECEIVED for rec, r in zip(records, results, strict=True)
        ):
            for listener in self._listeners:
                listener()

    def _insert_one_statement(self, conn: Any, records: list[InboundRecord]) -> list[Stored]:
        """SQLite: the batch as one INSERT in autocommit mode, so taking the write lock, the
        inserts and the commit (fsync) are one call into SQLite: the writer thread gives up and
        waits to get back the interpreter lock once per batch instead of once per statement.

        The rows take consecutive ids (the lock is held for the statement), so when every row
        went in the ids follow from the last one. When some did not (repeats of accepted
        messages) a second transaction reads back which did and stores the repeats."""
        rows = [record.row() for record in records]
        statement = self._batch_insert(len(rows), returning=False)
        params = self._rows_params(statement, rows)
        cursor = conn.cursor()
        try:
            when_unlocked(lambda: cursor.execute(statement.sql, params))
            inserted, last = cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()
        if inserted == len(rows):
            first = last - inserted + 1
            return [Stored(first + i, None) for i in range(inserted)]
        cursor = conn.cursor()
        try:
            when_unlocked(lambda: cursor.execute("BEGIN IMMEDIATE"))
            returned: list[tuple[int, str | None]] = []
            if inserted > 0:
                cursor.execute(
                    "SELECT id, dedup_key FROM messages WHERE id BETWEEN ? AND ?", (last - inserted + 1, last)
                )
                returned = [(int(id_), key) for id_, key in cursor.fetchall()]
            results: list[Stored | None] = [None] * len(rows)
            new_ids: dict[str, int] = {}
            _take(rows, 0, returned, results, new_ids)
            stored = self._store_repeats(cursor, rows, results, new_ids)
        finally:
            cursor.close()
        conn.commit()
        return stored

    def _append(self, conn: Any, records: list[InboundRecord]) -> list[Stored]:
        """The batch into the intake journal: up to ``_ROWS_PER_STATEMENT`` rows as one statement
        in autocommit mode (the lock, the inserts and the commit in one call into SQLite), more in
        one transaction. Nothing conflicts there; the rows take consecutive ids, so each
        statement's ids follow from its last one."""
        rows = [record.row() for record in records]
        if len(rows) <= _ROWS_PER_STATEMENT:
            return self._append_chunk(conn, rows, when_unlocked)
        when_unlocked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            stored: list[Stored] = []
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                stored += self._append_chunk(conn, rows[start : start + _ROWS_PER_STATEMENT], _now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return stored

    def _append_chunk(
        self, conn: Any, rows: list[dict[str, Any]], run: Callable[[Callable[[], object]], None]
    ) -> list[Stored]:
        sql = self._append_sql(len(rows))
        single = self._append_one.params
        params = tuple(itertools.chain.from_iterable(single(row) for row in rows))
        cursor = conn.cursor()
        try:
            run(lambda: cursor.execute(sql, params))
            last = int(cursor.lastrowid)
        finally:
            cursor.close()
        return [Stored(id_, None) for id_ in range(last - len(rows) + 1, last + 1)]

    def _append_sql(self, n: int) -> str:
        found = self._appends.get(n)
        if found is None:
            values = [
                {name: bindparam(f"{name}_m{i}", type_=entries.c[name].type) for name in COLUMNS}
                for i in range(n)
            ]
            keys = [f"{name}_m{i}" for i in range(n) for name in COLUMNS]
            found = Compiled(insert(entries).values(values), self._dialect, keys, entries)
            single = self._append_one.names
            assert found.names == [f"{name}_m{i}" for i in range(n) for name in single]
            self._appends[n] = found
        return found.sql

    def _connect(self) -> Any:
        if self._journal is not None:
            journal = self._journal.connect()
            self._journal.start_ids_above(journal, self._engine)
            return journal
        conn = self._engine.raw_connection()
        if self._sqlite:
            # The writer waits for the write lock itself (when_unlocked) instead of in SQLite's
            # busy handler, whose sleeps grow to 25-100 ms: a sender's ACK would wait that long
            # after the worker's transaction ended. Autocommit: a statement outside
            # BEGIN is its own transaction (_insert_one_statement). Never handed back to the pool.
            cursor = conn.cursor()
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()
            driver = conn.driver_connection
            assert driver is not None
            driver.isolation_level = None
        return conn

    def _drop_connection(self) -> None:
        """After an error (or at stop): roll back and close, so the next batch starts afresh."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._journal is not None:
            conn.close()  # sqlite3's own: an open transaction is rolled back
            return
        with contextlib.suppress(*self._errors):
            conn.rollback()
        conn.invalidate()  # closed, not returned to the pool (its settings are the writer's)

    def _insert(self, records: list[InboundRecord], cursor: Any) -> list[Stored]:
        """Insert a batch in as few statements as it takes, in arrival order.

        One INSERT carries up to ``_ROWS_PER_STATEMENT`` rows: ON CONFLICT (dedup_key) DO
        NOTHING, RETURNING id and dedup_key. An accepted message whose key comes back is new; one
        whose key does not is a repeat of an accepted message (earlier, or earlier in this batch)
        and is stored after the others as a ``duplicate`` row pointing at the original. A row
        without a key (rejected) never conflicts; ids follow the order of the VALUES, so those
        rows take the returned keyless ids in ascending order.

        Per statement, not per row: on SQLite each statement gives up the interpreter lock and
        waits to get it back behind the event loop; on PostgreSQL it is a round trip."""
        rows = [record.row() for record in records]
        results: list[Stored | None] = [None] * len(rows)
        new_ids: dict[str, int] = {}
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            statement = self._batch_insert(len(chunk), returning=True)
            cursor.execute(statement.sql, self._rows_params(statement, chunk))
            returned = [(int(id_), key) for id_, key in cursor.fetchall()]
            _take(chunk, start, returned, results, new_ids)
        return self._store_repeats(cursor, rows, results, new_ids)

    def _store_repeats(
        self, cursor: Any, rows: list[dict[str, Any]], results: list[Stored | None], new_ids: dict[str, int]
    ) -> list[Stored]:
        """Store each repeat of an accepted message (no id yet in ``results``) as a duplicate."""
        repeats = [at for at, stored in enumerate(results) if stored is None]
        if repeats:
            earlier = [rows[at] for at in repeats if rows[at]["dedup_key"] not in new_ids]
            originals = self._originals(cursor, earlier)
            originals.update(new_ids)
            for at in repeats:
                row = rows[at]
                original = originals[row["dedup_key"]]
                row.update(state=DUPLICATE, dedup_key=None, duplicate_of=original)
                results[at] = Stored(_returned_id(cursor, self._insert_plain, row), original)
        return [stored for stored in results if stored is not None]

    def _batch_insert(self, n: int, *, returning: bool) -> Compiled:
        found = self._batch_inserts.get((n, returning))
        if found is None:
            values = [
                {name: bindparam(f"{name}_m{i}", type_=messages.c[name].type) for name in COLUMNS}
                for i in range(n)
            ]
            stmt = (
                self._insert_module.insert(messages)
                .values(values)
                .on_conflict_do_nothing(index_elements=["control_id", "dedup_key"])
            )
            if returning:
                stmt = stmt.returning(messages.c.id, messages.c.dedup_key)
            keys = [f"{name}_m{i}" for i in range(n) for name in COLUMNS]
            found = Compiled(stmt, self._dialect, keys, messages)
            if self._positional:
                # Row after row, each in the single-row statement's column order: so the
                # parameters are the single-row ones chained (_rows_params).
                single = self._insert_plain.names
                assert found.names == [f"{name}_m{i}" for i in range(n) for name in single]
            self._batch_inserts[n, returning] = found
        return found

    def _rows_params(self, statement: Compiled, rows: list[dict[str, Any]]) -> Any:
        if self._positional:
            single = self._insert_plain.params
            return tuple(itertools.chain.from_iterable(single(row) for row in rows))
        return statement.params(_numbered(rows))

    def _originals(self, cursor: Any, rows: list[dict[str, Any]]) -> dict[str, int]:
        """The ids of the accepted messages stored earlier under these rows' keys (by the
        unique index on control id and key; repeats are rare, so one lookup each)."""
        found: dict[str, int] = {}
        for row in rows:
            key = row["dedup_key"]
            if key in found:
                continue
            params = (row["control_id"], key) if self._positional else {"c": row["control_id"], "k": key}
            cursor.execute(self._find_original, params)
            found[key] = int(cursor.fetchall()[0][0])
        return found


#: Rows per INSERT: a statement compiled for each size up to this (20 parameters a row, well
#: inside SQLite's and PostgreSQL's limits).
_ROWS_PER_STATEMENT = 64


def _numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows' values under the multi-row statement's bind names (``name_m<i>``)."""
    return {f"{name}_m{i}": value for i, row in enumerate(rows) for name, value in row.items()}


def _now(statement: Callable[[], object]) -> None:
    """Run the statement at once (the transaction holds the lock already)."""
    statement()


def _take(
    chunk: list[dict[str, Any]],
    start: int,
    returned: list[tuple[int, str | None]],
    results: list[Stored | None],
    new_ids: dict[str, int],
) -> None:
    """Give the chunk's rows the ids of the rows that went in (``returned``: id, dedup_key).

    An accepted row whose key came back is new (the first such row, if the key is twice in the
    batch); one whose key did not is a repeat and keeps None. Rows without a key never conflict;
    ids follow the order of the VALUES, so they take the keyless ids in ascending order."""
    ordered = sorted(returned)
    keyless = iter([id_ for id_, key in ordered if key is None])
    keyed = {key: id_ for id_, key in ordered if key is not None}
    for offset, row in enumerate(chunk):
        key = row["dedup_key"]
        if key is None:
            results[start + offset] = Stored(next(keyless), None)
        elif key in keyed and key not in new_ids:
            new_ids[key] = keyed[key]
            results[start + offset] = Stored(keyed[key], None)


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
