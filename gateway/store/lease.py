"""Which gateway instance runs the processing worker, when several share one PostgreSQL.

Every instance takes messages (MLLP/HTTP intake is safe to run in parallel: the database
dedups and orders them), but only one processes them at a time, so a booking's messages are
applied in order and exactly once. The worker holds a PostgreSQL session-level advisory lock
on a connection of its own: if the instance dies, its connection closes, the lock is released
and a standby takes over within one poll interval. SQLite is one process's database: no lease.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger(__name__)

#: Any fixed 64-bit number shared by every instance: the lock's name.
WORKER_LOCK_KEY = 0x6761746577617931  # "gateway1"


class WorkerLease:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._shared = engine.dialect.name == "postgresql"

    @property
    def held(self) -> bool:
        return not self._shared or self._conn is not None

    def acquire(self) -> bool:
        """True while this instance may process; cheap to call before every batch."""
        if not self._shared:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                log.warning("worker.lease_lost")
                self.release()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": WORKER_LOCK_KEY}).scalar_one()
        except SQLAlchemyError as exc:
            log.warning("worker.lease_unavailable", error=type(exc).__name__)
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("worker.lease_acquired")
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WORKER_LOCK_KEY})
        except SQLAlchemyError:
            pass  # the connection is gone, and the lock with it
        finally:
            self._conn.close()
            self._conn = None
