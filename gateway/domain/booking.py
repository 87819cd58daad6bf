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
    DISCONTINUE = "discontinue"
    DELETE = "delete"
    NOSHOW = "noshow"


class ResourceKind(StrEnum):
    """What a booked resource is, which decides its FHIR participant (Practitioner, Device,
    Location)."""

    PERSON = "person"
    EQUIPMENT = "equipment"
    LOCATION = "location"


@dataclass(frozen=True, slots=True)
class Resource:
    """A practitioner, a unit/location, equipment or other personnel, known by id and/or name.

    ``hsa_id`` only holds a value of the HSA-id form (:func:`gateway.domain.identity.is_hsa_id`);
    any other id the journal sends is ``local_id``, in the sender's own ``local_system``.
    ``room_id``/``room_name`` are a location's room (PL.2), so a change of room is a change.
    """

    hsa_id: str | None
    name: str | None
    local_id: str | None = None
    local_system: str | None = None
    kind: ResourceKind = ResourceKind.PERSON
    room_id: str | None = None
    room_name: str | None = None


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
    #: AIG resources of kind equipment (FHIR Device participants).
    devices: tuple[Resource, ...] = field(default_factory=tuple)
    #: NTE with comment type PI (patient instructions), the only notes the citizen sees.
    patient_instruction: str | None = None

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
    #: ``CancelAllowed`` / ``RescheduleAllowed`` as the journal said them (None: not said);
    #: self-service obeys them (R-BK-8, docs/self-service.md).
    cancel_allowed: bool | None = None
    reschedule_allowed: bool | None = None
