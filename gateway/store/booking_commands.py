"""Self-service booking commands (issue 21): stored with their idempotency key before the
journal is called, so a lost answer or a killed gateway is recovered by asking the journal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.tables import booking_commands as t

#: Sent to the journal (or about to be): a call may be in flight.
PENDING = "pending"
#: The journal's answer was lost: whether the change happened is unknown until asked.
UNKNOWN = "unknown"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    idempotency_key: str
    request_hash: str
    action: str
    patient: str
    unit: str
    booking_id: str | None
    start: datetime | None
    end: datetime | None
    time_type: str | None
    state: str
    result_booking_id: str | None
    detail: str | None
    attempts: int
    updated_at: datetime


def _row(r: object) -> Command:
    m = r._mapping  # type: ignore[attr-defined]
    return Command(**{k: m[k] for k in Command.__slots__})


def find(conn: Connection, key: str) -> Command | None:
    row = conn.execute(select(*(t.c[k] for k in Command.__slots__)).where(t.c.idempotency_key == key)).first()
    return _row(row) if row is not None else None


def create(
    conn: Connection,
    *,
    key: str,
    request_hash: str,
    action: str,
    patient: str,
    unit: str,
    booking_id: str | None,
    start: datetime | None,
    end: datetime | None,
    time_type: str | None,
    now: datetime,
) -> Command | None:
    """The new pending command, or None when the key is taken (a concurrent twin won)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(t).values(
                    idempotency_key=key,
                    request_hash=request_hash,
                    action=action,
                    patient=patient,
                    unit=unit,
                    booking_id=booking_id,
                    start=start,
                    end=end,
                    time_type=time_type,
                    state=PENDING,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return None
    return find(conn, key)


def stale_pending(conn: Connection, before: datetime, limit: int) -> list[Command]:
    """Commands still ``pending`` whose call started before ``before``: no call can still be in
    flight (the window is longer than the journal's timeout), so the gateway stopped mid-call."""
    rows = conn.execute(
        select(*(t.c[k] for k in Command.__slots__))
        .where(t.c.state == PENDING, t.c.updated_at < before)
        .order_by(t.c.id)
        .limit(limit)
    ).all()
    return [_row(r) for r in rows]


def attempt(conn: Connection, command_id: int, now: datetime) -> None:
    """A call to the journal starts now (``pending`` again, ``updated_at`` = now)."""
    conn.execute(
        update(t).where(t.c.id == command_id).values(attempts=t.c.attempts + 1, state=PENDING, updated_at=now)
    )


def finish(
    conn: Connection,
    command_id: int,
    *,
    state: str,
    result_booking_id: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(t)
        .where(t.c.id == command_id)
        .values(state=state, result_booking_id=result_booking_id, detail=detail, updated_at=now)
    )


#: MSH-10 of the SIU the gateway writes for a command's result (R-BK-11): ``BC`` and the command's
#: id, so the worker knows that message as a command's own and the journal's SIU as its echo.
_CONTROL_PREFIX = "BC"


def result_control_id(command_id: int) -> str:
    return f"{_CONTROL_PREFIX}{command_id:012d}"


def command_of(control_id: str | None) -> int | None:
    """The command whose result the message with this MSH-10 carries, or None (a journal's own)."""
    if not control_id or not control_id.startswith(_CONTROL_PREFIX):
        return None
    digits = control_id[len(_CONTROL_PREFIX) :]
    return int(digits) if len(digits) == 12 and digits.isdigit() else None


def echoed(conn: Connection, command_id: int, booking_id: str, now: datetime) -> bool:
    """The journal's SIU for the booking a command changed agrees with the command's result: mark
    the command (first time only). True when it was marked now, so the SIU is that echo."""
    result = conn.execute(
        update(t)
        .where(
            t.c.id == command_id,
            t.c.result_booking_id == booking_id,
            t.c.state == DONE,
            t.c.echoed_at.is_(None),
        )
        .values(echoed_at=now)
    )
    return bool(result.rowcount)


def echoed_at(conn: Connection, key: str) -> datetime | None:
    """When the command with this key was echoed by the journal's SIU (tests, the docs)."""
    found = conn.execute(select(t.c.echoed_at).where(t.c.idempotency_key == key)).scalar()
    return found if isinstance(found, datetime) else None


@dataclass(frozen=True, slots=True)
class AppointmentRef:
    """What the self-service face needs of a stored Appointment (visible or not: the rules
    decide, so a protected person's booking is refused by R-ID-3, not hidden as unknown)."""

    namespace: str
    booking_id: str
    patient_value: str
    resource: bytes


def appointment_ref(conn: Connection, appointment_id: str) -> AppointmentRef | None:
    from gateway.store.tables import appointments as a

    row = conn.execute(
        select(a.c.namespace, a.c.booking_id, a.c.patient_value, a.c.resource).where(a.c.id == appointment_id)
    ).first()
    if row is None:
        return None
    return AppointmentRef(row.namespace, row.booking_id, row.patient_value, bytes(row.resource))


def patient_of_booking(conn: Connection, namespace: str, booking_id: str) -> str | None:
    """The patient number of a journal booking the gateway knows (its Appointment, or the
    command that made it)."""
    from gateway.store.tables import appointments as a

    found = conn.execute(
        select(a.c.patient_value).where(a.c.namespace == namespace, a.c.booking_id == booking_id)
    ).scalar()
    if found is None:
        found = conn.execute(
            select(t.c.patient).where(t.c.result_booking_id == booking_id, t.c.state == DONE).limit(1)
        ).scalar()
    return str(found) if found is not None else None
