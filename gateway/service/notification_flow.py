"""The notification plan kept in step with bookings and documents, in the caller's transaction.

The processing worker calls :func:`replan_bookings` with the bookings a batch changed, on the
connection that writes them, and ``document_flow`` calls :func:`plan_document` when a document
reaches the platform. So a move (S13), a cancellation (S15) or a deletion (S17) and its re-plan
commit together or not at all. The rules are :mod:`gateway.domain.notifications`; the SQL is
:mod:`gateway.store.notifications`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from gateway.domain.booking import BookingAction
from gateway.domain.identity import PersonId
from gateway.domain.notifications import Booking, DeliveredDocument, Kind, Policy, plan_booking
from gateway.domain.notifications import plan_document as plan_document_notices
from gateway.store import notifications as store

_WHY = {
    BookingAction.NEW: "the journal sent the booking again",
    BookingAction.RESCHEDULE: "the booking was moved; planned again for the new time",
    BookingAction.MODIFY: "the booking was changed; planned again",
    BookingAction.CANCEL: "the booking was cancelled",
    BookingAction.DELETE: "the booking was deleted in the journal",
    BookingAction.NOSHOW: "the patient did not come",
}


@dataclass(frozen=True, slots=True)
class BookingChange:
    booking: Booking
    action: BookingAction
    patient_system: str


def replan_bookings(
    conn: Connection, changes: Sequence[BookingChange], policy: Policy, now: datetime
) -> None:
    """Cancel what is still planned for each changed booking and plan its current state."""
    if not changes:
        return
    latest: dict[str, BookingChange] = {}
    for change in changes:  # several messages about one booking in a batch: its last state
        latest[change.booking.appointment_id] = change
    rows = store.existing(conn, store.APPOINTMENT, list(latest))
    new_rows: list[store.NewRow] = []
    for appt_id, change in latest.items():
        mine = [r for r in rows if r.subject_id == appt_id]
        booked = change.booking.status == "booked"
        notice = [r for r in mine if r.kind is Kind.VIDEO_BOOKED and r.state in (*store.OPEN, store.SENT)]
        # A booked-notice still waiting stays when the booking stays booked (it says only that
        # a video booking was made); everything else planned is planned again.
        keep = {r.id for r in notice if r.state == store.PLANNED and booked}
        store.cancel(
            conn,
            (r.id for r in mine if r.state == store.PLANNED and r.id not in keep),
            _WHY.get(change.action, "the booking changed; planned again"),
            now,
        )
        booking = replace(change.booking, notice_exists=bool(notice))
        for decision in plan_booking(booking, policy, now):
            new_rows.append(
                store.NewRow(
                    store.APPOINTMENT,
                    appt_id,
                    change.patient_system,
                    booking.patient.value,
                    change.patient_system,
                    decision,
                    booking.start,
                )
            )
    store.add(conn, new_rows, now)


def plan_document(
    conn: Connection,
    document: DeliveredDocument,
    policy: Policy,
    now: datetime,
    system_of: Callable[[PersonId], str],
    *,
    new: bool,
) -> None:
    """R-NOT-2 for a document just routed. A new version of a document (MDM^T10) is no new
    message for the citizen: what is planned stays and nothing more is planned."""
    if not new:
        return
    decisions = plan_document_notices(document, policy, now)
    store.add(
        conn,
        [
            store.NewRow(
                store.DOCUMENT,
                document.document_id,
                system_of(document.patient),
                document.patient.value,
                system_of(d.recipient),
                d,
                None,
            )
            for d in decisions
        ],
        now,
    )
