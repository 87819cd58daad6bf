"""Bookings (R-BK): the domain's view of an appointment pushed by a journal system."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.domain.identity import PersonId


class BookingAction(StrEnum):
    NEW = "new"
    RESCHEDULE = "reschedule"
    MODIFY = "modify"
    CANCEL = "cancel"
    DELETE = "delete"
    NOSHOW = "noshow"


@dataclass(frozen=True, slots=True)
class Resource:
    """A practitioner, a unit/location or other personnel, known by HSA-id and/or name."""

    hsa_id: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class BookingEvent:
    """One change to a booking as the journal told it. Carries the full current state."""

    action: BookingAction
    namespace: str
    booking_id: str
    patient: PersonId
    status: str
    start: datetime
    end: datetime
    reason: str | None
    time_type: str | None
    time_type_display: str | None
    cancelation_reason: str | None = None
    practitioners: tuple[Resource, ...] = field(default_factory=tuple)
    locations: tuple[Resource, ...] = field(default_factory=tuple)
    personnel: tuple[Resource, ...] = field(default_factory=tuple)

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


class JournalStatus(StrEnum):
    """A booking's status as the journal's booking service tells it (R-BK-4)."""

    BOOKED = "booked"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"


@dataclass(frozen=True, slots=True)
class JournalBooking:
    """A booking as the journal holds it now, read back from its booking service (R-BK-4).

    ``patient_id`` is the number as the journal wrote it; the caller checks it is the patient it
    asked about before anything is filed under that patient.
    """

    booking_id: str
    patient_id: str
    start: datetime
    end: datetime
    status: JournalStatus
    time_type: str | None = None
    time_type_name: str | None = None
    reason: str | None = None
    practitioners: tuple[Resource, ...] = field(default_factory=tuple)
    units: tuple[Resource, ...] = field(default_factory=tuple)
