"""What operations read from the store: queue sizes and ages for /metrics, and readiness checks.

Everything here is counts and ages, never a row's content, so nothing personal leaves.
These are read from the database at scrape time, so they are the same whichever process (the
serving one, the worker's) or instance did the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, text

from gateway.domain.documents import Outcome
from gateway.store.inbox import RECEIVED, WAITING
from gateway.store.lease import WORKER_LOCK_KEY
from gateway.store.queries import count_by_state
from gateway.store.tables import documents, mailbox_outbox, messages, notifications, print_items


@dataclass(frozen=True, slots=True)
class StoreFigures:
    messages_by_state: dict[str, int]
    #: Accepted and not yet brought to a final state (``received`` and ``waiting``).
    backlog: int
    #: When the oldest message still in the backlog arrived (None: no backlog).
    oldest_unfinished: datetime | None
    outbox_by_state: dict[str, int]
    print_list_open: int
    held: int
    #: SMS reminders and notices by state (gateway/store/notifications.py STATES) and kind.
    notifications: dict[tuple[str, str], int]


def figures(conn: Connection) -> StoreFigures:
    by_state = count_by_state(conn)
    oldest = conn.execute(
        select(func.min(messages.c.received_at)).where(messages.c.state.in_((RECEIVED, WAITING)))
    ).scalar_one()
    outbox: dict[str, int] = {
        state: n
        for state, n in conn.execute(
            select(mailbox_outbox.c.state, func.count()).group_by(mailbox_outbox.c.state)
        ).all()
    }
    open_items = conn.execute(
        select(func.count()).select_from(print_items).where(print_items.c.handled_at.is_(None))
    ).scalar_one()
    held = conn.execute(
        select(func.count()).select_from(documents).where(documents.c.outcome == Outcome.HOLD.value)
    ).scalar_one()
    planned = {
        (state, kind): n
        for state, kind, n in conn.execute(
            select(notifications.c.state, notifications.c.kind, func.count()).group_by(
                notifications.c.state, notifications.c.kind
            )
        ).all()
    }
    return StoreFigures(
        messages_by_state=by_state,
        backlog=by_state.get(RECEIVED, 0) + by_state.get(WAITING, 0),
        oldest_unfinished=oldest,
        outbox_by_state=outbox,
        print_list_open=open_items,
        held=held,
        notifications=planned,
    )


def worker_lease_held(conn: Connection) -> bool:
    """Whether some instance holds the worker lease (``gateway/store/lease.py``).

    PostgreSQL: the advisory lock is in ``pg_locks``, whoever holds it. SQLite has no lease: the
    one process with the file runs its worker."""
    if conn.dialect.name != "postgresql":
        return True
    high, low = WORKER_LOCK_KEY >> 32, WORKER_LOCK_KEY & 0xFFFFFFFF
    held = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %(high)s AND objid = %(low)s AND objsubid = 1",
        {"high": high, "low": low},
    ).scalar_one()
    return bool(held)


def ping(engine: Engine) -> None:
    """Raise unless the database answers (liveness)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
