"""The floor server: the least an MLLP receiver with the gateway's durability guarantee must do.

Read a frame, store the raw bytes durably, acknowledge. Nothing else: no decoding, parsing,
checking, deduplication or logging. Durability and commit strategy are the gateway's own
(``gateway/store/db.py``, ``gateway/store/inbox.py``): SQLite in WAL mode with
``synchronous=FULL`` (PostgreSQL with its default ``synchronous_commit=on``), and one writer
thread that commits whatever is queued in one transaction (group commit), answering each
sender only after the commit that holds its message. So the gap between the gateway and this
floor is the gateway's own work, not a different durability bargain.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

START = b"\x0b"
END = b"\x1c\x0d"
MAX_BATCH = 500  # the same as gateway.store.inbox.Inbox

_Item = tuple[bytes, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class FloorStore:
    """Group-commit writer over a raw DB-API connection (no SQLAlchemy)."""

    def __init__(self, connect: Callable[[], Any], insert_sql: str, *, max_batch: int = MAX_BATCH) -> None:
        self._connect = connect
        self._insert_sql = insert_sql
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.stored = 0

    @classmethod
    def sqlite(cls, path: Path) -> FloorStore:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS floor_messages ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, raw BLOB NOT NULL)"
            )
            return conn

        return cls(connect, "INSERT INTO floor_messages (received_at, raw) VALUES (?, ?)")

    @classmethod
    def postgresql(cls, url: str) -> FloorStore:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)

        def connect() -> Any:
            conn = psycopg.connect(dsn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS floor_messages ("
                "id BIGSERIAL PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, raw BYTEA NOT NULL)"
            )
            conn.commit()
            return conn

        return cls(connect, "INSERT INTO floor_messages (received_at, raw) VALUES (%s, %s)")

    def start(self) -> None:
        conn = self._connect()  # open before serving, as the gateway migrates before serving
        self._thread = threading.Thread(target=self._run, args=(conn,), name="floor-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    async def put(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((raw, loop, future))
        await future

    def _run(self, conn: Any) -> None:
        try:
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
                self._write(conn, batch)
                if stopping:
                    return
        finally:
            conn.close()

    def _write(self, conn: Any, batch: list[_Item]) -> None:
        now = datetime.now(UTC)
        rows = [
            (now.isoformat() if isinstance(conn, sqlite3.Connection) else now, raw) for raw, _, _ in batch
        ]
        try:
            if isinstance(conn, sqlite3.Connection):
                conn.execute("BEGIN")
                conn.executemany(self._insert_sql, rows)
                conn.execute("COMMIT")
            else:
                with conn.cursor() as cur:
                    cur.executemany(self._insert_sql, rows)
                conn.commit()
        except Exception as exc:
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_fail, future, exc)
            return
        self.commits += 1
        self.stored += len(batch)
        for _, loop, future in batch:
            loop.call_soon_threadsafe(_done, future)


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def control_id(message: bytes) -> bytes:
    """MSH-10, for the ACK's MSA-2: the tenth field of the first segment."""
    end = message.find(b"\r")
    fields = (message if end < 0 else message[:end]).split(b"|")
    return fields[9] if len(fields) > 9 else b""


def ack(message: bytes) -> bytes:
    ctl = control_id(message)
    return b"MSH|^~\\&|FLOOR|BENCH|||" + ctl + b"||ACK|F" + ctl + b"|P|2.5.1\rMSA|AA|" + ctl + b"\r"


class FloorServer:
    """A minimal asyncio MLLP listener: frame, store durably, ACK; in order per connection."""

    def __init__(self, store: FloorStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=2**20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readuntil(END)
                start = data.find(START)
                message = data[start + 1 : -2] if start >= 0 else data[:-2]
                await self.store.put(message)
                writer.write(START + ack(message) + END)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class FloorThread:
    """The floor server on its own loop in a background thread, as GatewayThread runs the gateway."""

    def __init__(self, store: FloorStore) -> None:
        self.store = store
        self.server = FloorServer(store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> FloorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def mllp_address(self) -> tuple[str, int]:
        return self.server.host, self.server.port

    def start(self, timeout: float = 30.0) -> None:
        self.store.start()
        started = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def run() -> None:
                self._stop = asyncio.Event()
                try:
                    await self.server.start()
                finally:
                    started.set()
                await self._stop.wait()
                await self.server.stop()

            try:
                loop.run_until_complete(run())
            except BaseException as exc:
                errors.append(exc)
                started.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="floor", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or errors:
            raise RuntimeError("floor server did not start") from (errors[0] if errors else None)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
        self.store.stop()
