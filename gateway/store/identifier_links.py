"""R-ID-5 both ways: old numbers the register says were replaced, and the number now in use.

The worker records a link whenever the register follows a changed number (``Hanvisning`` Till
from the old number) or names the old numbers of a current one (``Fran``). Searches by a
patient identifier then match the person under the number now in use as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.store.tables import identifier_links

#: (old system, old value, current system, current value)
Link = tuple[str, str, str, str]


def remember(conn: Connection, links: Iterable[Link], now: datetime) -> None:
    """Record (or move) each old number's link to the number now in use."""
    rows = [
        {"old_system": a, "old_value": b, "current_system": c, "current_value": d, "learned_at": now}
        for a, b, c, d in dict.fromkeys(links)
        if b != d
    ]
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(identifier_links)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[identifier_links.c.old_value],
            set_={
                "old_system": statement.excluded.old_system,
                "current_system": statement.excluded.current_system,
                "current_value": statement.excluded.current_value,
                "learned_at": statement.excluded.learned_at,
            },
        ),
        rows,
    )


def patient_clause(
    system_column: ColumnElement[str],
    value_column: ColumnElement[str],
    system: str | None,
    value: str,
) -> ColumnElement[bool]:
    """The person asked for by ``system|value``: under that number, or under the number now in
    use when ``value`` is an old one (R-ID-5)."""
    same = value_column == value
    if system is not None:
        same = and_(same, system_column == system)
    linked = [identifier_links.c.old_value == value, identifier_links.c.current_value == value_column]
    if system is not None:
        linked.append(identifier_links.c.old_system == system)
    linked.append(identifier_links.c.current_system == system_column)
    return or_(same, exists().where(*linked))


def current_of(conn: Connection, value: str) -> tuple[str, str] | None:
    """The number now in use for an old number, as (system, value), if the register said so."""
    row = conn.execute(
        select(identifier_links.c.current_system, identifier_links.c.current_value).where(
            identifier_links.c.old_value == value
        )
    ).first()
    return (row.current_system, row.current_value) if row else None


def former_of(conn: Connection, value: str) -> list[tuple[str, str]]:
    """The old numbers known to have been replaced by ``value``, as (system, value)."""
    rows = conn.execute(
        select(identifier_links.c.old_system, identifier_links.c.old_value)
        .where(identifier_links.c.current_value == value)
        .order_by(identifier_links.c.old_value)
    )
    return [(r.old_system, r.old_value) for r in rows]
