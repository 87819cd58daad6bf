"""R-BK-4 "Uppdatera nu": fetch a patient's bookings again from the journal and repair the gap.

The journal's booking service says what the journal holds now; the ``appointments`` table says
what the gateway made of the messages it got. For each booking the journal has and the gateway
is missing, or holds differently (start, end, time type, reason, status), one SIU message is
written with the shared builder and fed through the one intake pipeline, exactly as if the
journal had pushed it: stored durably, shown in ``GET /messages``, processed by the worker
with its register checks (R-ID-3 and the rest). Bookings that agree produce nothing.

Which trigger a repair uses (the message always carries the booking's full current state):

- the journal says cancelled -> S15, no-show -> S26 (so the Appointment reads as if the
  journal's own message had arrived, cancelation reason included);
- missing in the gateway -> S12;
- a different start or end -> S13;
- anything else that differs -> S14.

A repair's MSH-10 is derived from what it says and from the gateway's state of the booking,
so asking twice before the worker has caught up stores the second as a ``duplicate`` of the
first instead of a second change, and asking again later, when all agrees, sends nothing.

Reconciliation by absence: TakeCare's ``GetBookings`` answers a patient's bookings at one care
unit, with no status (a booking it returns exists; one it no longer returns was cancelled or
deleted there). So a booking the gateway holds as active for that patient at an asked unit,
starting in the future, that the answer does not hold is no longer booked: an S15 cancels it
with the reason :data:`ABSENT_REASON` (SCH-6), naming the refresh. Past bookings are left as they
are (the contract does not say whether the answer holds them), and so are bookings at units not
asked. A returned booking counts as booked: a gateway state of arrived, fulfilled or no-show
(later facts the answer has no words for) agrees with it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.errors import InvalidRequest, StoreError
from gateway.journal_adapter.siu_builder import Practitioner, SiuBooking, build_siu
from gateway.mappings import Mappings
from gateway.service.intake import Intake
from gateway.store import appointments as appointment_store

log = structlog.get_logger(__name__)

#: ``messages.transport`` of a repair (the column holds 8 characters).
TRANSPORT = "refresh"

_FILLER_STATUS = {
    JournalStatus.BOOKED: "Booked",
    JournalStatus.CANCELLED: "Cancelled",
    JournalStatus.NOSHOW: "Noshow",
}
#: Appointment statuses the journal's service reports as plain "Booked" (it has no words for
#: arrived or fulfilled, so those are not a difference to repair).
_ACTIVE = frozenset({"proposed", "pending", "booked", "arrived", "fulfilled", "checked-in", "waitlist"})
#: What a returned booking agrees with (the answer cannot tell a no-show either).
_RETURNED_AGREES = _ACTIVE | {"noshow"}
#: Gateway states a booking absent from the journal's answer is cancelled from (R-BK-4).
_CANCELLABLE = frozenset({"proposed", "pending", "booked", "checked-in", "waitlist"})
#: SCH-6 of the S15 that cancels a future booking the journal no longer returns.
ABSENT_REASON = "Avbokad: finns inte längre i journalen (Uppdatera nu)"


class BookingSource(Protocol):
    """The port: what the journal holds now. ``JournalBookingService`` is the real adapter."""

    @property
    def namespace(self) -> str:
        """The journal's booking-id namespace (SCH-2.2), also MSH-3 of the repairs."""
        ...

    @property
    def facility(self) -> str:
        """MSH-4 of the repairs."""
        ...

    @property
    def url(self) -> str: ...

    @property
    def care_units(self) -> tuple[str, ...]:
        """Units a refresh without a unit asks (besides those the gateway knows for the patient)."""
        ...

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]:
        """The patient's bookings at ``unit`` as the journal holds them now."""
        ...


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one refresh did. ``message_ids`` are the stored repairs, in the order sent."""

    created: int
    updated: int
    unchanged: int
    message_ids: tuple[int, ...]
    #: Repairs an earlier refresh had already sent and the worker had not yet applied.
    already_sent: int = 0
    #: Booking ids whose repair the intake refused (AE/AR), with its reason, for staff to see.
    refused: tuple[str, ...] = ()
    #: Future bookings the journal no longer returned, cancelled by absence.
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class _Known:
    """The gateway's current state of one booking."""

    status: str
    start: datetime
    end: datetime
    time_type: str | None
    reason: str | None
    last_message_id: int
    #: The practitioner and unit as pushed (with HSA-ids the service's answer does not carry).
    practitioner: Resource | None = None
    unit: Resource | None = None


@dataclass(frozen=True, slots=True)
class _Absent:
    """A future booking the gateway holds at an asked unit, with what an S15 must repeat."""

    booking_id: str
    start: datetime
    end: datetime
    time_type: str | None
    reason: str | None
    unit: Resource | None
    practitioner: Resource | None
    last_message_id: int


async def refresh_bookings(
    person: PersonId,
    unit: str | None,
    *,
    client: BookingSource,
    intake: Intake,
    engine: Engine,
    mappings: Mappings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RefreshResult:
    """Bring the gateway in line with the journal for ``person`` at ``unit``.

    Without ``unit``: every unit the gateway knows the patient's bookings at, and the source's
    configured ``care_units``. Raises ``InvalidRequest`` when there is no unit to ask,
    ``TransientUpstreamError``/``PermanentUpstreamError`` when the journal cannot be asked
    (every unit is asked before anything changes, so nothing is changed then), ``StoreError``
    when a repair could not be stored.
    """
    now = clock()
    if unit:
        units = [unit]
    else:
        known_units = await asyncio.to_thread(_units_of, engine, client.namespace, person)
        units = sorted(set(client.care_units) | known_units)
        if not units:
            raise InvalidRequest("refresh: no care unit to ask the journal about; give unit=")
    journal: list[JournalBooking] = []
    seen: set[str] = set()
    for asked in units:
        for booking in await client.get_bookings(person, unit=asked):
            if booking.booking_id not in seen:
                seen.add(booking.booking_id)
                journal.append(booking)
    known = await asyncio.to_thread(known_bookings, engine, client.namespace, [b.booking_id for b in journal])
    absent = await asyncio.to_thread(_absent, engine, client.namespace, person, units, seen, now)
    peer = (urlsplit(client.url).netloc or client.url)[:64]
    created = updated = unchanged = already_sent = cancelled = 0
    ids: list[int] = []
    refused: list[str] = []

    async def submit(raw: bytes, booking_id: str, what: str) -> bool:
        """Hand one repair to the intake like any journal message; True when it was accepted."""
        nonlocal already_sent
        result = await intake.handle(raw, transport=TRANSPORT, peer=peer)
        if result.message_id is None:
            raise StoreError(f"refresh: the {what} of booking {booking_id} could not be stored")
        ids.append(result.message_id)
        if result.ack_code != "AA":
            refused.append(booking_id)
            return False
        if result.duplicate_of is not None:
            already_sent += 1
        return True

    for booking in journal:
        current = known.get(booking.booking_id)
        trigger = _trigger(booking, current)
        if trigger is None:
            unchanged += 1
            continue
        raw = build_siu(
            trigger,
            siu_content(booking, person, client.namespace, mappings, current),
            control_id=_control_id(client.namespace, booking, trigger, current),
            now=now,
            sending=(client.namespace, client.facility),
            charset="UNICODE UTF-8",
            filler_status=_FILLER_STATUS[booking.status],
        )
        if not await submit(raw, booking.booking_id, "repair"):
            continue
        if current is None:
            created += 1
        else:
            updated += 1
    for gone in absent:
        raw = build_siu(
            "S15",
            _absent_content(gone, person, client.namespace, mappings),
            control_id=_absent_control_id(client.namespace, gone),
            now=now,
            sending=(client.namespace, client.facility),
            charset="UNICODE UTF-8",
            filler_status="Cancelled",
        )
        if await submit(raw, gone.booking_id, "cancellation"):
            cancelled += 1
    outcome = RefreshResult(created, updated, unchanged, tuple(ids), already_sent, tuple(refused), cancelled)
    log.info(
        "refresh.done",
        unit=unit,
        units_asked=len(units),
        journal_bookings=len(journal),
        cancelled_absent=cancelled,
        created=created,
        updated=updated,
        unchanged=unchanged,
        already_sent=already_sent,
        refused=len(refused),
        message_ids=list(ids),
    )
    return outcome


def _trigger(booking: JournalBooking, current: _Known | None) -> str | None:
    """The SIU trigger that repairs the gateway's state, or None when it agrees."""
    if current is not None and _agrees(booking, current):
        return None
    if booking.status is JournalStatus.CANCELLED:
        return "S15"
    if booking.status is JournalStatus.NOSHOW:
        return "S26"
    if current is None:
        return "S12"
    if _second(booking.start) != current.start or _second(booking.end) != current.end:
        return "S13"
    return "S14"


def _agrees(booking: JournalBooking, current: _Known) -> bool:
    if booking.status is JournalStatus.BOOKED:
        same_status = current.status in _RETURNED_AGREES
    else:
        same_status = current.status == booking.status.value
    return (
        same_status
        and _second(booking.start) == current.start
        and _second(booking.end) == current.end
        and booking.time_type == current.time_type
        and (booking.reason or None) == current.reason
    )


def _second(moment: datetime) -> datetime:
    """SIU times carry whole seconds, so that is what the gateway can hold."""
    return moment.replace(microsecond=0)


def siu_content(
    booking: JournalBooking,
    person: PersonId,
    namespace: str,
    mappings: Mappings,
    current: _Known | None = None,
) -> SiuBooking:
    minutes = int((_second(booking.end) - _second(booking.start)).total_seconds() // 60)
    practitioner = booking.practitioners[0] if booking.practitioners else None
    unit = booking.units[0] if booking.units else None
    if current is not None:
        # The service names resources by the journal's own numbers: keep the HSA-ids the push
        # gave rather than replace a known practitioner or unit with a bare name.
        if (
            current.practitioner is not None
            and current.practitioner.hsa_id
            and (practitioner is None or not practitioner.hsa_id)
        ):
            practitioner = current.practitioner
        if current.unit is not None and current.unit.hsa_id and (unit is None or not unit.hsa_id):
            unit = current.unit
    return SiuBooking(
        booking_id=booking.booking_id,
        namespace=namespace,
        patient_id=person.value,
        patient_oid=person.authority,
        start=booking.start,
        minutes=max(minutes, 1),
        time_type=booking.time_type,
        time_type_name=booking.time_type_name or _display(mappings, booking.time_type),
        reason=booking.reason,
        unit=unit,
        # The service names a practitioner whole; AIG and AIP then read the same name back.
        practitioner=Practitioner(practitioner.hsa_id or "", practitioner.name or "")
        if practitioner is not None
        else None,
    )


def _display(mappings: Mappings, code: str | None) -> str | None:
    found = mappings.time_types.time_types.get(code or "")
    return found.display if found is not None else None


def _control_id(namespace: str, booking: JournalBooking, trigger: str, current: _Known | None) -> str:
    """MSH-10 from the repair's content and the gateway's state it repairs (20 characters)."""
    basis = "|".join(
        (
            namespace,
            booking.booking_id,
            trigger,
            booking.start.isoformat(),
            booking.end.isoformat(),
            booking.time_type or "",
            booking.reason or "",
            booking.status.value,
            str(current.last_message_id if current is not None else 0),
        )
    )
    return "RF" + hashlib.sha256(basis.encode()).hexdigest()[:18].upper()


def known_bookings(engine: Engine, namespace: str, booking_ids: Iterable[str]) -> dict[str, _Known]:
    ids = list(booking_ids)
    if not ids:
        return {}
    try:
        rows = appointment_store.known(engine, namespace, ids)
    except SQLAlchemyError as exc:
        raise StoreError(f"refresh: could not read the gateway's bookings ({type(exc).__name__})") from exc
    out: dict[str, _Known] = {}
    for row in rows:
        resource: dict[str, Any] = orjson.loads(row.resource)
        out[row.booking_id] = _Known(
            status=row.status,
            start=row.start,
            end=row.end,
            time_type=row.time_type,
            reason=resource.get("description"),
            last_message_id=row.last_message_id,
            practitioner=_practitioner(resource),
            unit=_location(resource),
        )
    return out


def _absent_content(gone: _Absent, person: PersonId, namespace: str, mappings: Mappings) -> SiuBooking:
    minutes = int((_second(gone.end) - _second(gone.start)).total_seconds() // 60)
    practitioner = gone.practitioner
    return SiuBooking(
        booking_id=gone.booking_id,
        namespace=namespace,
        patient_id=person.value,
        patient_oid=person.authority,
        start=gone.start,
        minutes=max(minutes, 1),
        time_type=gone.time_type,
        time_type_name=_display(mappings, gone.time_type),
        reason=gone.reason,
        unit=gone.unit,
        practitioner=Practitioner(practitioner.hsa_id or "", practitioner.name or "")
        if practitioner is not None
        else None,
        event_reason=ABSENT_REASON,
    )


def _absent_control_id(namespace: str, gone: _Absent) -> str:
    """MSH-10 of a cancellation by absence: the same until the gateway's state of it changes."""
    basis = "|".join((namespace, gone.booking_id, "S15-absent", str(gone.last_message_id)))
    return "RF" + hashlib.sha256(basis.encode()).hexdigest()[:18].upper()


def _location(resource: dict[str, Any]) -> Resource | None:
    for participant in resource.get("participant", []):
        actor = participant.get("actor", {})
        if actor.get("type") == "Location":
            return Resource((actor.get("identifier") or {}).get("value"), actor.get("display"))
    return None


def _practitioner(resource: dict[str, Any]) -> Resource | None:
    for participant in resource.get("participant", []):
        actor = participant.get("actor", {})
        if actor.get("type") == "Practitioner":
            return Resource((actor.get("identifier") or {}).get("value"), actor.get("display"))
    return None


def _units_of(engine: Engine, namespace: str, person: PersonId) -> set[str]:
    """The units (location ids) of every booking the gateway holds for the patient."""
    try:
        rows = appointment_store.resources_of(engine, namespace, person.value)
    except SQLAlchemyError as exc:
        raise StoreError(f"refresh: could not read the gateway's bookings ({type(exc).__name__})") from exc
    units: set[str] = set()
    for resource in rows:
        location = _location(orjson.loads(resource))
        if location is not None and location.hsa_id:
            units.add(location.hsa_id)
    return units


def _absent(
    engine: Engine,
    namespace: str,
    person: PersonId,
    units: list[str],
    returned: set[str],
    now: datetime,
) -> list[_Absent]:
    """Active future bookings of the patient at the asked units that the journal did not return."""
    try:
        rows = appointment_store.future_active(engine, namespace, person.value, now, sorted(_CANCELLABLE))
    except SQLAlchemyError as exc:
        raise StoreError(f"refresh: could not read the gateway's bookings ({type(exc).__name__})") from exc
    asked = set(units)
    out: list[_Absent] = []
    for row in rows:
        if row.booking_id in returned:
            continue
        resource: dict[str, Any] = orjson.loads(row.resource)
        location = _location(resource)
        if location is None or location.hsa_id not in asked:
            continue  # another unit's booking: that unit was not asked
        out.append(
            _Absent(
                booking_id=row.booking_id,
                start=row.start,
                end=row.end,
                time_type=row.time_type,
                reason=resource.get("description"),
                unit=location,
                practitioner=_practitioner(resource),
                last_message_id=row.last_message_id,
            )
        )
    return out
