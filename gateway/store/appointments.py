"""The gateway's bookings as the journal refresh compares them with the journal's (R-BK-6)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from gateway.store.tables import appointments


def _patient_rows(namespace: str, person_value: str) -> Any:
    return (appointments.c.namespace == namespace) & (
        (appointments.c.patient_value == person_value)
        | (appointments.c.journal_patient_value == person_value)
    )


def known(engine: Engine, namespace: str, booking_ids: Sequence[str]) -> list[Any]:
    """The stored bookings among ``booking_ids``."""
    query = select(
        appointments.c.booking_id,
        appointments.c.status,
        appointments.c.start,
        appointments.c.end,
        appointments.c.time_type,
        appointments.c.resource,
        appointments.c.last_message_id,
    ).where(appointments.c.namespace == namespace, appointments.c.booking_id.in_(booking_ids))
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def resources_of(engine: Engine, namespace: str, person_value: str) -> list[bytes]:
    """The stored FHIR resource of every booking of the patient."""
    query = select(appointments.c.resource).where(_patient_rows(namespace, person_value))
    with engine.connect() as conn:
        return list(conn.execute(query).scalars().all())


def future_active(
    engine: Engine, namespace: str, person_value: str, now: datetime, statuses: Sequence[str]
) -> list[Any]:
    """The patient's bookings after ``now`` in one of ``statuses``, earliest first."""
    query = (
        select(
            appointments.c.booking_id,
            appointments.c.start,
            appointments.c.end,
            appointments.c.time_type,
            appointments.c.resource,
            appointments.c.last_message_id,
        )
        .where(
            _patient_rows(namespace, person_value),
            appointments.c.start > now,
            appointments.c.status.in_(statuses),
        )
        .order_by(appointments.c.start, appointments.c.booking_id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).all())
