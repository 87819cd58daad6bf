"""Read-side queries: appointment search for the FHIR API, and the message browser."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, false, func, null, or_, select

from gateway.domain.query import BOOKING_ID_SYSTEM, AppointmentQuery, DateFilter, Token
from gateway.store import intake_journal
from gateway.store.identifier_links import patient_clause
from gateway.store.intake_journal import entries
from gateway.store.tables import appointments, messages


def _date_clause(column: ColumnElement[datetime], f: DateFilter) -> ColumnElement[bool]:
    if f.prefix == "eq":
        return and_(column >= f.low, column < f.high)
    if f.prefix == "ne":
        return or_(column < f.low, column >= f.high)
    if f.prefix == "ge":
        return column >= f.low
    if f.prefix == "gt":
        return column >= f.high
    if f.prefix == "le":
        return column < f.high
    return column < f.low  # lt


def _booking_id_clause(token: Token) -> ColumnElement[bool]:
    """The booking identifier is stored as system BOOKING_ID_SYSTEM, value NAMESPACE|ID.

    ``SYSTEM|NAMESPACE|ID`` matches system and value; ``|VALUE`` (no system) matches nothing;
    ``ID`` or ``NAMESPACE|ID`` alone is the value with any system (the second form is read that
    way because its first part is not our system).
    """
    system, value = token
    full = appointments.c.namespace + "|" + appointments.c.booking_id
    if system is None:
        return or_(appointments.c.booking_id == value, full == value)
    if system == "":
        return false()
    if system == BOOKING_ID_SYSTEM:
        return full == value
    return full == f"{system}|{value}"


def search_appointments(conn: Connection, q: AppointmentQuery) -> tuple[int | None, list[bytes]]:
    """Visible appointments only (R-BK-1): hidden time types are never returned."""
    where: list[ColumnElement[bool]] = [appointments.c.visible.is_(True)]
    for system, value in q.patients:  # repeated parameters are AND; an old number finds the new (R-ID-5)
        where.append(
            patient_clause(appointments.c.patient_system, appointments.c.patient_value, system, value)
        )
    for token in q.identifiers:
        where.append(_booking_id_clause(token))
    for f in q.dates:
        where.append(_date_clause(appointments.c.start, f))
    for f in q.last_updated:
        where.append(_date_clause(appointments.c.last_updated, f))
    if q.statuses is not None:  # empty: the status parameters have no value in common
        where.append(appointments.c.status.in_(q.statuses))
    if q.left_out:  # R-BK-2: entered-in-error only in the sync or when asked for by status
        where.append(appointments.c.status.not_in(q.left_out))
    total = None
    if q.total:
        total = conn.execute(select(func.count()).select_from(appointments).where(*where)).scalar_one()
    if q.count == 0:
        return total, []
    order: list[Any] = []
    for key, desc in q.sort:
        col = appointments.c.start if key == "date" else appointments.c.last_updated
        order.append(col.desc() if desc else col.asc())
    order.append(appointments.c.id.asc())
    rows = (
        conn.execute(
            select(appointments.c.resource).where(*where).order_by(*order).limit(q.count).offset(q.offset)
        )
        .scalars()
        .all()
    )
    return total, list(rows)


@dataclass(frozen=True, slots=True)
class StoredResource:
    resource: bytes
    version_id: int
    last_updated: datetime


def get_appointment(conn: Connection, appointment_id: str) -> StoredResource | None:
    row = conn.execute(
        select(appointments.c.resource, appointments.c.version_id, appointments.c.last_updated).where(
            appointments.c.id == appointment_id, appointments.c.visible.is_(True)
        )
    ).first()
    if row is None:
        return None
    return StoredResource(row.resource, row.version_id, row.last_updated)


@dataclass(slots=True)
class MessageFilter:
    state: str | None = None
    message_type: str | None = None
    trigger: str | None = None
    control_id: str | None = None
    patient: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


MESSAGE_SUMMARY_COLUMNS = (
    messages.c.id,
    messages.c.received_at,
    messages.c.transport,
    messages.c.sending_application,
    messages.c.sending_facility,
    messages.c.control_id,
    messages.c.message_type,
    messages.c.trigger,
    messages.c.state,
    messages.c.ack_code,
    messages.c.error,
    messages.c.duplicate_of,
    messages.c.processed_at,
)


def _message_where(table: Table, f: MessageFilter) -> list[ColumnElement[bool]]:
    c = table.c
    where: list[ColumnElement[bool]] = []
    if f.state:
        where.append(c.state == f.state)
    if f.message_type:
        where.append(c.message_type == f.message_type)
    if f.trigger:
        where.append(c.trigger == f.trigger)
    if f.control_id:
        where.append(c.control_id == f.control_id)
    if f.patient:
        where.append(c.patient == f.patient.replace("-", ""))
    if f.since:
        where.append(c.received_at >= f.since)
    if f.until:
        where.append(c.received_at < f.until)
    return where


# Messages still in the intake journal (SQLite; gateway/store/intake_journal.py) are shown as
# they were stored. A journal is read before the database: an entry gone from it by then was
# moved before, so the database read sees it; one seen in both is shown from the database (its
# id is at most the database's largest, read in the same statement as the rest).
_UNMOVED_SUMMARY = [
    entries.c[column.name] if column.name in entries.c else null().label(column.name)
    for column in MESSAGE_SUMMARY_COLUMNS
]
_UNMOVED_MESSAGE = [entries.c[c.name] if c.name in entries.c else null().label(c.name) for c in messages.c]
_MOVED_THROUGH = select(func.coalesce(func.max(messages.c.id), 0)).scalar_subquery()


def _unmoved(
    conn: Connection, columns: list[Any], *where: ColumnElement[bool]
) -> list[dict[str, Any]] | None:
    """The journal's entries (newest first) that match, or None when this database has no journal."""
    journal = intake_journal.beside(conn.engine)
    if journal is None:
        return None
    reader = journal.reader()
    if reader is None:
        return []
    with reader.connect() as jconn:
        return [
            dict(r)
            for r in jconn.execute(select(*columns).where(*where).order_by(entries.c.id.desc())).mappings()
        ]


def list_messages(conn: Connection, f: MessageFilter) -> tuple[int, list[dict[str, Any]]]:
    unmoved = _unmoved(conn, _UNMOVED_SUMMARY, *_message_where(entries, f))
    where = _message_where(messages, f)
    count = select(func.count()).select_from(messages).where(*where)
    if unmoved is None:
        total = conn.execute(count).scalar_one()
        moved, page = None, []
    else:
        total, moved = conn.execute(select(count.scalar_subquery(), _MOVED_THROUGH)).one()
        unmoved = [r for r in unmoved if r["id"] > moved]
        total += len(unmoved)
        page = unmoved[f.offset : f.offset + f.limit]
    query = select(*MESSAGE_SUMMARY_COLUMNS).where(*where).order_by(messages.c.id.desc())
    if moved is not None:
        query = query.where(messages.c.id <= moved)  # newer ones were counted from the journal
    wanted = f.limit - len(page)
    offset = max(0, f.offset - len(unmoved or []))
    rows = conn.execute(query.limit(wanted).offset(offset)).mappings().all() if wanted > 0 else []
    return total, page + [dict(r) for r in rows]


def get_message(conn: Connection, message_id: int) -> dict[str, Any] | None:
    unmoved = _unmoved(conn, _UNMOVED_MESSAGE, entries.c.id == message_id)
    row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
    if row is not None:
        return dict(row)
    return unmoved[0] if unmoved else None


def count_by_state(conn: Connection) -> dict[str, int]:
    unmoved = _unmoved(conn, [entries.c.id, entries.c.state])
    query = select(messages.c.state, func.count(), _MOVED_THROUGH).group_by(messages.c.state)
    rows = conn.execute(query).all()
    counts = {state: n for state, n, _ in rows}
    moved = rows[0][2] if rows else 0
    for r in unmoved or []:
        if r["id"] > moved:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
    return counts
