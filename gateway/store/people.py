"""A person's rows as the staff patient view shows them: bookings and e-documents under any of
the person's numbers (the asked one, the current one and former ones, R-ID-5)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, or_, select

from gateway.store.tables import appointments, documents


def bookings_of(store: Engine, numbers: Collection[str]) -> list[Any]:
    """Every booking under the numbers, earliest first."""
    with store.connect() as conn:
        return list(
            conn.execute(
                select(
                    appointments.c.id,
                    appointments.c.booking_id,
                    appointments.c.status,
                    appointments.c.start,
                    appointments.c.time_type,
                    appointments.c.visible,
                    appointments.c.withheld_reason,
                )
                .where(
                    or_(
                        appointments.c.patient_value.in_(numbers),
                        appointments.c.journal_patient_value.in_(numbers),
                    )
                )
                .order_by(appointments.c.start)
            ).all()
        )


def documents_of(store: Engine, numbers: Collection[str]) -> list[Any]:
    """Every e-document under the numbers, newest first."""
    with store.connect() as conn:
        return list(
            conn.execute(
                select(
                    documents.c.id,
                    documents.c.kind,
                    documents.c.title,
                    documents.c.outcome,
                    documents.c.rules,
                    documents.c.mailbox_provider,
                    documents.c.sent_at,
                    documents.c.read_at,
                    documents.c.outdated_at,
                    documents.c.outdated_reason,
                    documents.c.booking_id,
                )
                .where(
                    or_(
                        documents.c.patient_value.in_(numbers), documents.c.journal_patient_value.in_(numbers)
                    )
                )
                .order_by(documents.c.created_at.desc())
            ).all()
        )
