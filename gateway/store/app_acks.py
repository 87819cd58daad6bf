"""The application ACKs owed to senders in enhanced mode (``hl7_app_acks``; docs/hl7-profile.md 5.4).

SQL only: which messages given a commit ACK ``CA`` have no application ACK row yet, adding one,
claiming due rows and recording what became of each. ``gateway/service/app_acks.py`` runs the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.inbox import DUPLICATE, FAILED, PROCESSED, REJECTED
from gateway.store.tables import hl7_app_acks, messages

PENDING = "pending"
DELIVERED = "delivered"
REFUSED = "refused"
DEAD = "dead"
SKIPPED = "skipped"
UNROUTABLE = "unroutable"
STATES = (PENDING, DELIVERED, REFUSED, DEAD, SKIPPED, UNROUTABLE)
#: Message states after which the application ACK is known.
SETTLED = (PROCESSED, FAILED, REJECTED, DUPLICATE)


@dataclass(frozen=True, slots=True)
class Owed:
    """A message given a commit ACK CA, with no application ACK row yet."""

    message_id: int
    received_at: datetime
    state: str
    raw: bytes
    sending_application: str
    sending_facility: str
    charset: str


def owed(conn: Connection, after: int, limit: int) -> list[Owed]:
    """Messages after id ``after`` given CA (the partial index ``ix_messages_enhanced``) and not
    yet given an application ACK row, in id order, settled or not."""
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.received_at,
            messages.c.state,
            messages.c.raw,
            messages.c.sending_application,
            messages.c.sending_facility,
            messages.c.charset,
        )
        .where(
            messages.c.ack_code == "CA",
            messages.c.id > after,
            ~exists().where(hl7_app_acks.c.message_id == messages.c.id),
        )
        .order_by(messages.c.id)
        .limit(limit)
    )
    return [
        Owed(r.id, r.received_at, r.state, r.raw, r.sending_application, r.sending_facility, r.charset)
        for r in rows
    ]


def add(engine: Engine, values: dict[str, Any]) -> bool:
    """Add one row in a transaction of its own; False if another instance was first."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(hl7_app_acks).values(**values))
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    message_id: int
    endpoint: str
    ack: str
    charset: str
    attempts: int


def claim_due(conn: Connection, now: datetime, until: datetime, limit: int) -> list[Due]:
    """Pending rows due now, each claimed until ``until`` by a conditional update (one winner
    among several gateway instances), their attempt counted."""
    candidates = conn.execute(
        select(hl7_app_acks.c.id)
        .where(
            hl7_app_acks.c.state == PENDING,
            hl7_app_acks.c.next_attempt_at <= now,
            or_(hl7_app_acks.c.claimed_until.is_(None), hl7_app_acks.c.claimed_until < now),
        )
        .order_by(hl7_app_acks.c.next_attempt_at, hl7_app_acks.c.id)
        .limit(limit)
    ).scalars()
    claimed: list[Due] = []
    for row_id in list(candidates):
        won = conn.execute(
            update(hl7_app_acks)
            .where(
                hl7_app_acks.c.id == row_id,
                hl7_app_acks.c.state == PENDING,
                or_(hl7_app_acks.c.claimed_until.is_(None), hl7_app_acks.c.claimed_until < now),
            )
            .values(claimed_until=until, attempts=hl7_app_acks.c.attempts + 1, updated_at=now)
        ).rowcount
        if won != 1:
            continue
        row = conn.execute(select(hl7_app_acks).where(hl7_app_acks.c.id == row_id)).one()
        claimed.append(Due(row.id, row.message_id, row.endpoint or "", row.ack, row.charset, row.attempts))
    return claimed


def settle(
    conn: Connection,
    row_id: int,
    *,
    state: str,
    now: datetime,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """Record an attempt: delivered, refused or dead; or pending again from ``next_attempt_at``."""
    values: dict[str, Any] = {"state": state, "claimed_until": None, "last_error": error, "updated_at": now}
    if state == DELIVERED:
        values["delivered_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    conn.execute(update(hl7_app_acks).where(hl7_app_acks.c.id == row_id).values(**values))


def list_app_acks(conn: Connection, state: str | None = None) -> list[dict[str, Any]]:
    query = select(hl7_app_acks).order_by(hl7_app_acks.c.id)
    if state is not None:
        query = query.where(hl7_app_acks.c.state == state)
    return [dict(r._mapping) for r in conn.execute(query)]


def for_message(conn: Connection, message_id: int) -> dict[str, Any] | None:
    """The application ACK owed for one message (the message browser shows it), or None."""
    row = (
        conn.execute(
            select(
                hl7_app_acks.c.state,
                hl7_app_acks.c.ack_code,
                hl7_app_acks.c.endpoint,
                hl7_app_acks.c.attempts,
                hl7_app_acks.c.next_attempt_at,
                hl7_app_acks.c.last_error,
                hl7_app_acks.c.delivered_at,
            ).where(hl7_app_acks.c.message_id == message_id)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None
