"""The worker's batch writes and claims on the inbox and the appointments.

Statements are built once: a statement built per message cost the worker a third of its time
(bench/README). The SET columns of the updates and the insert come from each execution's
parameter names. A batch's writes go out with executemany, one statement per kind (finding 7),
compiled once per column set (:class:`~gateway.store.compiled.CompiledCache`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, or_, select, update
from sqlalchemy.sql.dml import UpdateBase

from gateway.store.compiled import CompiledCache
from gateway.store.inbox import RECEIVED, WAITING
from gateway.store.tables import appointments, messages

_FINISH = update(messages).where(messages.c.id == bindparam("b_id")).values(attempts=messages.c.attempts + 1)
_WAIT = (
    update(messages)
    .where(messages.c.id == bindparam("b_id"))
    .values(state=WAITING, attempts=messages.c.attempts + 1)
)
_RESTRICT = update(messages).where(messages.c.id == bindparam("b_id")).values(restricted=True)
#: With the booking's state and the MSH-10 of the message that last set it: a command's own SIU
#: and the journal's echo of it are told apart by it (R-BK-11, ``booking_commands.command_of``).
_CURRENT = (
    select(
        appointments.c.id,
        appointments.c.version_id,
        appointments.c.content_hash,
        appointments.c.last_message_id,
        appointments.c.status,
        appointments.c.start,
        appointments.c.end,
        appointments.c.time_type,
        messages.c.control_id.label("last_control_id"),
    )
    .select_from(appointments.outerjoin(messages, messages.c.id == appointments.c.last_message_id))
    .where(appointments.c.id.in_(bindparam("ids", expanding=True)))
)
_INSERT = appointments.insert()
_UPDATE = update(appointments).where(appointments.c.id == bindparam("b_id"))
#: Ids per ``IN (...)``: well under every backend's limit on bound parameters.
_IN_CHUNK = 500

#: Compiled statements with their rows' driver parameters, ready for :func:`run`.
Prepared = list[tuple[str, list[Any]]]


def claim(engine: Engine, now: datetime, *, limit: int) -> list[Any]:
    """The next messages to work on, oldest first: received ones, and waiting ones now due."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(messages.c.id, messages.c.raw, messages.c.received_at, messages.c.attempts)
                .where(
                    or_(
                        messages.c.state == RECEIVED,
                        (messages.c.state == WAITING)
                        & or_(messages.c.retry_at.is_(None), messages.c.retry_at <= now),
                    )
                )
                .order_by(messages.c.id)
                .limit(limit)
            ).all()
        )


def current_appointments(conn: Connection, ids: list[str]) -> Iterator[Any]:
    """The current rows of the appointments ``ids``: one ``SELECT ... IN`` per 500."""
    for at in range(0, len(ids), _IN_CHUNK):
        yield from conn.execute(_CURRENT, {"ids": ids[at : at + _IN_CHUNK]})


def wait(conn: Connection, message_id: int, *, reason: str | None, retry_at: datetime | None) -> None:
    """Put a message back to wait (a document waiting for its booking) until ``retry_at``."""
    conn.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(state=WAITING, error=reason, retry_at=retry_at, attempts=messages.c.attempts + 1)
    )


def prepare_bookings(
    statements: CompiledCache,
    *,
    inserts: list[dict[str, Any]],
    full: list[dict[str, Any]],
    touched: list[dict[str, Any]],
) -> Prepared:
    """New appointments, changed ones (with their resource) and touched ones (columns only)."""
    return _prepared(statements, ((_INSERT, inserts), (_UPDATE, full), (_UPDATE, touched)), appointments)


def prepare_messages(
    statements: CompiledCache,
    *,
    restricted: list[dict[str, Any]],
    waiting: list[dict[str, Any]],
    finished: list[dict[str, Any]],
) -> Prepared:
    """The messages' final (or waiting) states, and which concern a protected person."""
    return _prepared(statements, ((_RESTRICT, restricted), (_WAIT, waiting), (_FINISH, finished)), messages)


def _prepared(
    statements: CompiledCache, groups: tuple[tuple[UpdateBase, list[dict[str, Any]]], ...], table: Table
) -> list[tuple[str, list[Any]]]:
    out: list[tuple[str, list[Any]]] = []
    for statement, rows in groups:
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_keys.setdefault(tuple(row), []).append(row)
        for keys, same in by_keys.items():
            compiled = statements.get(statement, keys, table)
            out.append((compiled.sql, [compiled.params(row) for row in same]))
    return out


def run(conn: Connection, prepared: list[tuple[str, list[Any]]]) -> None:
    if not prepared:
        return
    cursor = conn.connection.cursor()  # the DB-API cursor of this transaction
    try:
        for sql, params in prepared:
            cursor.executemany(sql, params)
    finally:
        cursor.close()
