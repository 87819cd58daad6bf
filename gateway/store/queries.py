"""Read-side queries: appointment search for the FHIR API, and the message browser."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, false, func, or_, select

from gateway.fhir.appointment import BOOKING_ID_SYSTEM
from gateway.fhir.search import AppointmentQuery, DateFilter, Token
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
    for system, value in q.patients:  # repeated parameters are AND
        where.append(appointments.c.patient_value == value)
        if system is not None:
            where.append(appointments.c.patient_system == system)
    for token in q.identifiers:
        where.append(_booking_id_clause(token))
    for f in q.dates:
        where.append(_date_clause(appointments.c.start, f))
    for f in q.last_updated:
        where.append(_date_clause(appointments.c.last_updated, f))
    if q.statuses is not None:  # empty: the status parameters have no value in common
        where.append(appointments.c.status.in_(q.statuses))
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


def list_messages(conn: Connection, f: MessageFilter) -> tuple[int, list[dict[str, Any]]]:
    where: list[ColumnElement[bool]] = []
    if f.state:
        where.append(messages.c.state == f.state)
    if f.message_type:
        where.append(messages.c.message_type == f.message_type)
    if f.trigger:
        where.append(messages.c.trigger == f.trigger)
    if f.control_id:
        where.append(messages.c.control_id == f.control_id)
    if f.patient:
        where.append(messages.c.patient == f.patient.replace("-", ""))
    if f.since:
        where.append(messages.c.received_at >= f.since)
    if f.until:
        where.append(messages.c.received_at < f.until)
    total = conn.execute(select(func.count()).select_from(messages).where(*where)).scalar_one()
    rows = (
        conn.execute(
            select(*MESSAGE_SUMMARY_COLUMNS)
            .where(*where)
            .order_by(messages.c.id.desc())
            .limit(f.limit)
            .offset(f.offset)
        )
        .mappings()
        .all()
    )
    return total, [dict(r) for r in rows]


def get_message(conn: Connection, message_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
    return dict(row) if row is not None else None


def count_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all()
    return {state: n for state, n in rows}
