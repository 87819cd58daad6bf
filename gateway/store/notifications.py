"""The notification plan's statements (table ``notifications``); no rules here.

Planning runs in the caller's transaction (the processing worker's, with the booking or document
change it follows); the sender's steps each commit on their own so a crash leaves a row in the
state it had reached: ``planned`` (nothing sent), ``sending`` (the provider may have it: ask by
the key), ``sent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from gateway.domain.notifications import Decision, Kind, Role
from gateway.store.tables import appointments, documents
from gateway.store.tables import notifications as table

PLANNED = "planned"
SKIPPED = "skipped"
CANCELLED = "cancelled"
SENDING = "sending"
SENT = "sent"
DEAD = "dead"
STATES = (PLANNED, SKIPPED, CANCELLED, SENDING, SENT, DEAD)
#: Still to go (or possibly gone): a re-plan cancels only PLANNED.
OPEN = (PLANNED, SENDING)

APPOINTMENT = "appointment"
DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class Existing:
    id: int
    subject_id: str
    kind: Kind
    state: str


def existing(conn: Connection, subject: str, ids: Sequence[str]) -> list[Existing]:
    if not ids:
        return []
    rows = conn.execute(
        select(table.c.id, table.c.subject_id, table.c.kind, table.c.state).where(
            table.c.subject == subject, table.c.subject_id.in_(list(ids))
        )
    ).all()
    return [Existing(r.id, r.subject_id, Kind(r.kind), r.state) for r in rows]


def cancel(conn: Connection, ids: Iterable[int], reason: str, now: datetime) -> None:
    ids = list(ids)
    if ids:
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.state == PLANNED)
            .values(state=CANCELLED, last_error=None, reason=reason, next_attempt_at=None, updated_at=now)
        )


@dataclass(frozen=True, slots=True)
class NewRow:
    subject: str
    subject_id: str
    patient_system: str
    patient_value: str
    recipient_system: str
    decision: Decision
    visit_start: datetime | None


def add(conn: Connection, rows: Sequence[NewRow], now: datetime) -> None:
    if not rows:
        return
    values: list[dict[str, Any]] = []
    for r in rows:
        d = r.decision
        values.append(
            {
                "kind": d.kind.value,
                "subject": r.subject,
                "subject_id": r.subject_id,
                "patient_system": r.patient_system,
                "patient_value": r.patient_value,
                "recipient_system": r.recipient_system,
                "recipient_value": d.recipient.value,
                "role": d.role.value,
                "state": PLANNED if d.planned else SKIPPED,
                "due_at": d.due_at,
                "visit_start": r.visit_start,
                "rules": " ".join(d.rules),
                "reason": d.why,
                # The provider's idempotency key, fixed before anything is sent.
                "idempotency_key": uuid.uuid4().hex if d.planned else None,
                "attempts": 0,
                "next_attempt_at": d.due_at,
                "sending_since": None,
                "provider_id": None,
                "sent_at": None,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    conn.execute(insert(table), values)


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    kind: Kind
    subject: str
    subject_id: str
    patient_system: str
    patient_value: str
    recipient_system: str
    recipient_value: str
    role: Role
    state: str
    visit_start: datetime | None
    idempotency_key: str
    attempts: int
    sending_since: datetime | None
    #: The row's version as read: the sender's step to ``sending`` is a compare-and-set on it, so
    #: of two gateway instances that read the same row only one sends it.
    updated_at: datetime


def due(conn: Connection, now: datetime, limit: int) -> list[Due]:
    """Planned rows whose time has come, and rows left ``sending`` (a crash, or a retry)."""
    rows = conn.execute(
        select(table)
        .where(table.c.state.in_(OPEN), table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    ).all()
    return [
        Due(
            r.id,
            Kind(r.kind),
            r.subject,
            r.subject_id,
            r.patient_system,
            r.patient_value,
            r.recipient_system,
            r.recipient_value,
            Role(r.role),
            r.state,
            r.visit_start,
            r.idempotency_key,
            r.attempts,
            r.sending_since,
            r.updated_at,
        )
        for r in rows
    ]


def _open(row_id: int) -> Any:
    return and_(table.c.id == row_id, table.c.state.in_(OPEN))


def mark_sending(
    conn: Connection, row_id: int, read_at_version: datetime, now: datetime, hold_until: datetime
) -> bool:
    """Planned -> sending before the provider call; False when the row changed since it was read
    (cancelled by a re-plan, or taken by another instance). Not due again before ``hold_until``:
    another instance leaves an SMS in flight alone; after a crash the row is taken up then."""
    return bool(
        conn.execute(
            update(table)
            .where(_open(row_id), table.c.updated_at == read_at_version)
            .values(
                state=SENDING,
                next_attempt_at=hold_until,
                sending_since=func.coalesce(table.c.sending_since, now),
                updated_at=now,
            )
        ).rowcount
    )


def mark_sent(conn: Connection, row_id: int, provider_id: str, now: datetime) -> None:
    conn.execute(
        update(table)
        .where(_open(row_id))
        .values(
            state=SENT,
            provider_id=provider_id,
            sent_at=now,
            next_attempt_at=None,
            last_error=None,
            updated_at=now,
        )
    )


def mark_not_sent(
    conn: Connection,
    row_id: int,
    state: str,
    rules: str,
    reason: str,
    now: datetime,
    *,
    attempted: bool = False,
) -> None:
    """Cancelled at the last check (consent, read meanwhile) or dead (the provider gave up);
    ``attempted``: this was one more failed attempt."""
    conn.execute(
        update(table)
        .where(_open(row_id))
        .values(
            state=state,
            rules=rules,
            reason=reason,
            next_attempt_at=None,
            attempts=table.c.attempts + (1 if attempted else 0),
            updated_at=now,
        )
    )


def retry_later(conn: Connection, row_id: int, at: datetime, error: str, now: datetime) -> None:
    conn.execute(
        update(table)
        .where(_open(row_id))
        .values(attempts=table.c.attempts + 1, next_attempt_at=at, last_error=error, updated_at=now)
    )


def for_patient(conn: Connection, values: Sequence[str]) -> list[dict[str, Any]]:
    """Every notification about the person (or to them), newest first, for the staff view."""
    rows = conn.execute(
        select(table)
        .where(or_(table.c.patient_value.in_(list(values)), table.c.recipient_value.in_(list(values))))
        .order_by(table.c.id.desc())
    ).all()
    return [dict(r._mapping) for r in rows]


def planned_between(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(table)
        .where(table.c.state.in_(OPEN), table.c.due_at >= start, table.c.due_at < end)
        .order_by(table.c.due_at, table.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def appointment_now(conn: Connection, appointment_id: str) -> tuple[str, datetime] | None:
    """The booking's status and start as stored now (the last check before a reminder)."""
    row = conn.execute(
        select(appointments.c.status, appointments.c.start).where(appointments.c.id == appointment_id)
    ).first()
    return (row.status, row.start) if row is not None else None


def document_read(conn: Connection, document_id: str) -> bool:
    """Whether the citizen opened the document (R-NOT-2: a notice is dropped then)."""
    row = conn.execute(select(documents.c.read_at).where(documents.c.id == document_id)).first()
    return row is not None and row.read_at is not None


def summary() -> Any:
    """(state, rules, count) over every notification: the demo's and an operator's overview."""
    return select(table.c.state, table.c.rules, func.count()).group_by(table.c.state, table.c.rules)
