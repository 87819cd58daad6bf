"""The intake journal (SQLite only): where the inbox stores inbound messages before their ACK.

SQLite has one write lock per database file. With the inbox writing ``messages`` in the same
file as the processing worker writes bookings, every ACK waited out the worker's transactions
(``bench/README.md``, findings 9 and 10). So on SQLite the inbox appends to a second file
beside the database, ``<database>-intake``, with the same durability (WAL, ``synchronous=FULL``:
the commit is on disk before the ACK), one table, no index but its key. The processing worker
moves the entries into ``messages`` in its own transactions on the main database, where
deduplication happens as it always has (one unique index on control id and key), and then
processes them. The two writers no longer share a lock. PostgreSQL has no such lock and keeps
the direct path (``gateway/store/inbox.py``).

* **Ids.** An entry's id is its message's id for good: the journal hands it out
  (``AUTOINCREMENT``, started above the largest message id when the inbox opens the journal),
  and the move inserts the row under the same id. Messages keep their arrival order.
* **Progress.** Entries are moved in id order, each move one transaction, so an entry has been
  moved exactly when its id is at most ``max(messages.id)``: the progress record is the moved
  rows themselves, committed with them. Moved entries are deleted from the journal after the
  move commits; a crash in between leaves entries the next move skips and deletes.
* **Repeats.** An accepted message whose key is already in ``messages`` (or earlier in the same
  move) is stored under its own id as a ``duplicate`` row pointing at the original, as the
  direct path does. Its ACK was ``AA`` either way.
* **Reading.** Until it is moved an entry is shown as it was stored (``received`` or
  ``rejected``) by ``GET /messages``, the CLI and the counts (``gateway/store/queries.py``).
  A reader reads the journal first and the database second: an entry gone from the journal by
  then was moved before, so the database read sees it; one in both is shown once, from the
  database.
* **Recovery.** The worker moves before every claim, so after a crash the first claim moves
  whatever was acknowledged and not yet moved.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateTable

from gateway.errors import StoreError
from gateway.store.tables import messages

log = structlog.get_logger(__name__)

#: The message columns an entry carries: what the inbox writes (``InboundRecord.row()``); the
#: rest start empty.
COLUMNS = (
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

entries = Table(
    "entries",
    MetaData(),
    Column("id", Integer, primary_key=True),
    *(Column(name, messages.c[name].type, nullable=messages.c[name].nullable) for name in COLUMNS),
    sqlite_autoincrement=True,  # ids are never handed out twice, even after the moved are deleted
)

_CREATE = str(CreateTable(entries, if_not_exists=True).compile(dialect=sqlite_dialect.dialect()))
_NAMES = ", ".join(f'"{name}"' for name in ("id", *COLUMNS))
#: Entries moved per transaction of the mover.
MOVE_LIMIT = 5000
#: How long a writer waits for a lock held by another writer.
LOCK_TIMEOUT = 30.0


def beside(engine: Engine) -> IntakeJournal | None:
    """The journal of this database: a file SQLite database has one; others have none."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return _journal(str(Path(url.database).resolve()) + "-intake")


@functools.lru_cache(maxsize=64)
def _journal(path: str) -> IntakeJournal:
    return IntakeJournal(Path(path))


class IntakeJournal:
    """One journal file: its schema, the inbox's connection to it, and the readers' engine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Engine | None = None

    def connect(self) -> sqlite3.Connection:
        """A writer's connection: autocommit (a statement outside BEGIN is its own transaction),
        WAL, ``synchronous=FULL``; the schema made if it is not there yet. The caller waits for
        the write lock itself (:func:`when_unlocked`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_CREATE)
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    def start_ids_above(self, conn: sqlite3.Connection, engine: Engine) -> None:
        """Hand out ids above every message id already in the database (a database kept before
        the journal existed, or a journal file lost): an entry's id is its message's id."""
        with engine.connect() as main:
            top = main.exec_driver_sql("SELECT coalesce(max(id), 0) FROM messages").scalar_one()
        when_unlocked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'entries', 0 WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = 'entries')"
            )
            conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'entries' AND seq < ?", (top, top))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reader(self) -> Engine | None:
        """An engine for reading the entries (None while the journal file does not exist)."""
        if self._reader is None:
            if not self.path.exists():
                return None
            engine = create_engine(
                f"sqlite:///{self.path.as_posix()}",
                poolclass=NullPool,  # read now and then; no connections kept per journal
                connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT},
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute("PRAGMA query_only=ON")

            self._reader = engine
        return self._reader


def when_unlocked(statement: Callable[[], object], timeout: float = LOCK_TIMEOUT) -> None:
    """Run a statement that takes SQLite's write lock, polling every 0.2 to 2 ms while another
    writer holds it, so it runs as soon as the lock is free. (SQLite's own busy handler sleeps
    25 to 100 ms between tries: a sender's ACK would wait that long after the lock was free.)"""
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.002)


class Mover:
    """Moves journal entries into ``messages``: in the worker before each claim, and for the HTTP
    transport, whose reply says whether the message repeated an earlier one.

    It keeps its own connection to the main database with the journal attached; calls are
    serialized (one move at a time per mover; movers in other processes wait for the lock)."""

    def __init__(self, journal: IntakeJournal, engine: Engine) -> None:
        self._journal = journal
        self._engine = engine
        self._raw: Any = None  # the pool's wrapper, invalidated on close (it has the attachment)
        self._conn: Any = None
        self._deleted = 0  # entries up to this id are known to be gone from the journal
        self._lock = threading.Lock()

    def move(self, *, through: int | None = None) -> int:
        """Move what the journal holds (at most ``MOVE_LIMIT`` entries, or everything up to and
        including id ``through``). Returns how many entries this call moved."""
        with self._lock:
            moved = 0
            while True:
                count, done = self._guarded(self._move_some, through)
                moved += count
                if through is None or done:
                    return moved

    def duplicate_of(self, message_id: int) -> int | None:
        """The original of a moved message, if it was a repeat."""
        with self._lock:
            row = self._guarded(
                lambda: (
                    self._connection()
                    .execute("SELECT duplicate_of FROM main.messages WHERE id = ?", (message_id,))
                    .fetchone()
                )
            )
        return int(row[0]) if row is not None and row[0] is not None else None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _guarded(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run ``call``; after a database error drop the connection, so the next call starts
        afresh. The entries stay in the journal until a move succeeds."""
        try:
            return call(*args)
        except sqlite3.Error as exc:
            self._drop()
            log.error("intake_journal.move_failed", error=type(exc).__name__, detail=str(exc))
            raise StoreError(f"could not move messages from the intake journal: {exc}") from exc

    def _drop(self) -> None:
        raw, self._raw, self._conn = self._raw, None, None
        if raw is not None:
            raw.invalidate()  # closed, never back in the pool with the journal attached

    def _connection(self) -> Any:
        if self._conn is None:
            self._journal.connect().close()  # the file and its table exist before they are attached
            raw = self._engine.raw_connection()  # WAL, synchronous=FULL, busy_timeout (store/db.py)
            driver = raw.driver_connection
            assert driver is not None
            driver.isolation_level = None  # the transactions below are explicit
            driver.execute("ATTACH DATABASE ? AS intake", (str(self._journal.path),))
            # Deleting moved entries needs no fsync of its own: lost in a crash, the next move
            # deletes them again (and skips them: their ids are taken).
            driver.execute("PRAGMA intake.synchronous=NORMAL")
            self._raw, self._conn = raw, driver
        return self._conn

    def _move_some(self, through: int | None) -> tuple[int, bool]:
        """One transaction: the next entries into ``messages``; then the moved ones deleted from
        the journal. Returns (entries moved, whether everything up to ``through`` is moved)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            moved = conn.execute("SELECT coalesce(max(id), 0) FROM main.messages").fetchone()[0]
            count = 0
            if through is None or moved < through:
                upper, count = conn.execute(_NEXT, (moved, MOVE_LIMIT)).fetchone()
            if count:
                inserted = conn.execute(_MOVE, (moved, upper)).rowcount
                if inserted < count:
                    _store_repeats(conn, moved, upper)
                moved = upper
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if moved > self._deleted:
            conn.execute("DELETE FROM intake.entries WHERE id <= ?", (moved,))
            self._deleted = moved
        return count, through is None or moved >= through


_T = TypeVar("_T")
_NEXT = "SELECT max(id), count(*) FROM (SELECT id FROM intake.entries WHERE id > ? ORDER BY id LIMIT ?)"
_MOVE = (
    f"INSERT INTO main.messages ({_NAMES}) SELECT {_NAMES} FROM intake.entries "
    "WHERE id > ? AND id <= ? ORDER BY id ON CONFLICT (control_id, dedup_key) DO NOTHING"
)
_REPEATS = (
    "SELECT e.id, e.control_id, e.dedup_key FROM intake.entries AS e WHERE e.id > ? AND e.id <= ? "
    "AND NOT EXISTS (SELECT 1 FROM main.messages AS m WHERE m.id = e.id) ORDER BY e.id"
)
_ORIGINAL = "SELECT id FROM main.messages WHERE control_id = ? AND dedup_key = ?"
_AS_DUPLICATE = {"state": "'duplicate'", "dedup_key": "NULL", "duplicate_of": "?"}
_MOVE_REPEAT = (
    f"INSERT INTO main.messages ({_NAMES}) SELECT id, "
    + ", ".join(_AS_DUPLICATE.get(name, f'"{name}"') for name in COLUMNS)
    + " FROM intake.entries WHERE id = ?"
)


def _store_repeats(conn: Any, moved: int, upper: int) -> None:
    """The entries the move's insert left out repeat an accepted message (stored earlier, or
    earlier in this move): each goes in under its own id as a duplicate of the original."""
    for entry_id, control_id, key in conn.execute(_REPEATS, (moved, upper)).fetchall():
        (original,) = conn.execute(_ORIGINAL, (control_id, key)).fetchone()
        conn.execute(_MOVE_REPEAT, (original, entry_id))
