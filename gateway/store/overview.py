"""Counts for the console's overview (Översikt): what arrived, in which state, and what waits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from gateway.store.tables import mailbox_outbox, messages


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
