"""Counts for the console's overview (Översikt): what arrived, in which state, and what waits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from gateway.store.tables import audit_events, mailbox_outbox, messages

#: The routes that fetch a person's bookings again (R-BK-4).
REFRESH_ROUTES = ("/patients/{person_id}/refresh-bookings", "/console/person/uppdatera")


def messages_by_type_and_state(conn: Connection, since: datetime) -> dict[tuple[str, str], int]:
    """Messages received at or after ``since`` by (``TYPE^TRIGGER``, state)."""
    rows = conn.execute(
        select(messages.c.message_type, messages.c.trigger, messages.c.state, func.count())
        .where(messages.c.received_at >= since)
        .group_by(messages.c.message_type, messages.c.trigger, messages.c.state)
    ).all()
    return {(f"{t or '?'}^{trig or '?'}", state): n for t, trig, state, n in rows}


def outbox_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(mailbox_outbox.c.state, func.count()).group_by(mailbox_outbox.c.state)).all()
    return {state: n for state, n in rows}


def last_refresh(conn: Connection, patients: list[str]) -> datetime | None:
    """When a person's bookings were last fetched again (R-BK-4), by the API or the console.

    Read from the audit trail: every refresh is there, also one that found nothing to repair
    (which stores no message).
    """
    if not patients:
        return None
    value: datetime | None = conn.execute(
        select(func.max(audit_events.c.at)).where(
            audit_events.c.patient.in_(patients),
            audit_events.c.route.in_(REFRESH_ROUTES),
            audit_events.c.result < 400,
        )
    ).scalar_one()
    return value
