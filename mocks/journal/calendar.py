"""The simulated journal's calendar: free slots per unit and time type, and the bookings in them.

Answers the XChange write operations (``booking_ws.py``): ``GetAvailableTimeslots``,
``MakeBooking``, ``RescheduleBooking``, ``CancelBooking``. Bookings live in the journal's
:class:`~mocks.journal.book.JournalBook` (so ``GetBookings`` sees them), each with the journal's
own ``CancelAllowed``/``RescheduleAllowed``. Every change is written to ``changes`` (what tests
count: each change exactly once) and becomes the SIU message a journal pushes after it
(``S12`` booked, ``S13`` rescheduled, ``S15`` cancelled), kept in ``outbox`` for a pusher.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.journal_adapter.siu_builder import Practitioner, SiuBooking, build_siu
from gateway.journal_adapter.timestamps import STOCKHOLM
from mocks.journal.book import JournalBook
from mocks.journal.simulator import NAMESPACE, TYPE_NAMES, UNITS

PNR_OID = "1.2.752.129.2.1.3.1"

# Error document Codes of the calendar (the mock's numbers, not TakeCare's).
SLOT_NOT_FREE = "2001"
BOOKING_NOT_FOUND = "2002"
NOT_ALLOWED = "2003"


class CalendarError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class Slot:
    unit: str
    start: datetime
    end: datetime
    time_type: str
    resource_id: str
    resource_name: str


@dataclass(frozen=True, slots=True)
class Change:
    trigger: str  # S12, S13, S15
    booking_id: str
    start: datetime


@dataclass(frozen=True, slots=True)
class Allowed:
    cancel: bool = True
    reschedule: bool = True


class JournalCalendar:
    """Free slots and bookings. Thread-safe: the web service runs in its own thread."""

    def __init__(self, book: JournalBook | None = None) -> None:
        self.book = book if book is not None else JournalBook()
        self._lock = threading.Lock()
        self._free: set[Slot] = set()
        self._slot_of: dict[str, Slot] = {}
        self._allowed: dict[str, Allowed] = {}
        self._seq = 0
        self.changes: list[Change] = []
        self.outbox: list[bytes] = []
        #: Where a pusher sends the SIU messages (the gateway's MLLP host and port).
        self.push_to: tuple[str, int] | None = None

    # --- set-up ---------------------------------------------------------------------------
    def open_slots(
        self, unit: str, time_type: str, first: datetime, count: int, *, minutes: int = 30
    ) -> list[Slot]:
        u = next(x for x in UNITS if x.hsa_id == unit)
        pr_hsa, family, given = u.practitioners[0]
        slots = [
            Slot(
                unit,
                first + i * timedelta(minutes=minutes),
                first + (i + 1) * timedelta(minutes=minutes),
                time_type,
                _resource_number(pr_hsa),
                f"{given} {family}",
            )
            for i in range(count)
        ]
        with self._lock:
            self._free.update(slots)
        return slots

    def allow(self, booking_id: str, *, cancel: bool = True, reschedule: bool = True) -> None:
        with self._lock:
            self._allowed[booking_id] = Allowed(cancel, reschedule)

    def allowed(self, booking_id: str) -> Allowed:
        with self._lock:
            return self._allowed.get(booking_id, Allowed())

    def know(self, patient_id: str) -> None:
        self.book._patients.add(patient_id)

    # --- reading --------------------------------------------------------------------------
    def free(self, unit: str, time_type: str, first: date, last: date) -> list[Slot]:
        with self._lock:
            found = [
                s
                for s in self._free
                if s.unit == unit
                and s.time_type == time_type
                and first <= s.start.astimezone(STOCKHOLM).date() <= last
            ]
        return sorted(found, key=lambda s: s.start)

    def snapshot(self) -> tuple[frozenset[Slot], tuple[tuple[str, datetime, datetime], ...]]:
        """Free slots and (booking id, start, end) of every booking: equal before and after a refusal."""
        with self._lock:
            free = frozenset(self._free)
        bookings = tuple(sorted((b.booking_id, b.start, b.end) for b in self.book.all()))
        return free, bookings

    # --- the write operations -------------------------------------------------------------
    def make_booking(
        self, patient_id: str, unit: str, start: datetime, end: datetime, time_type: str, reason: str | None
    ) -> JournalBooking:
        with self._lock:
            slot = self._take(unit, start, end, time_type)
            self._seq += 1
            booking_id = f"WB{self._seq:06d}"
            booking = JournalBooking(
                booking_id=booking_id,
                patient_id=patient_id,
                start=slot.start,
                end=slot.end,
                status=JournalStatus.BOOKED,
                time_type=time_type,
                time_type_name=TYPE_NAMES.get(time_type),
                reason=reason,
                practitioners=(Resource(None, slot.resource_name),),
                units=(Resource(unit, _unit_name(unit)),),
            )
            self._slot_of[booking_id] = slot
            self.book.put(booking)
            self._changed("S12", booking)
        return booking

    def reschedule(self, patient_id: str, booking_id: str, start: datetime, end: datetime) -> JournalBooking:
        with self._lock:
            old = self._own(patient_id, booking_id)
            if not self._allowed.get(booking_id, Allowed()).reschedule:
                raise CalendarError(NOT_ALLOWED, "Bokningen får inte ombokas")
            unit = old.units[0].hsa_id or ""
            slot = self._take(unit, start, end, old.time_type or "")
            freed = self._slot_of.pop(booking_id, None)
            if freed is not None:
                self._free.add(freed)
            self._slot_of[booking_id] = slot
            booking = replace(
                old, start=slot.start, end=slot.end, practitioners=(Resource(None, slot.resource_name),)
            )
            self.book.put(booking)
            self._changed("S13", booking)
        return booking

    def cancel(self, patient_id: str, booking_id: str, reason: str | None) -> JournalBooking:
        with self._lock:
            old = self._own(patient_id, booking_id)
            if not self._allowed.get(booking_id, Allowed()).cancel:
                raise CalendarError(NOT_ALLOWED, "Bokningen får inte avbokas")
            freed = self._slot_of.pop(booking_id, None)
            if freed is not None:
                self._free.add(freed)
            self.book.remove(booking_id)
            self._changed("S15", old, reason)
        return old

    def _take(self, unit: str, start: datetime, end: datetime, time_type: str) -> Slot:
        for slot in self._free:
            if slot.unit == unit and slot.start == start and slot.end == end and slot.time_type == time_type:
                self._free.discard(slot)
                return slot
        raise CalendarError(SLOT_NOT_FREE, "Tiden är inte ledig")

    def _own(self, patient_id: str, booking_id: str) -> JournalBooking:
        booking = self.book.get(booking_id)
        if booking is None or booking.patient_id != patient_id:
            raise CalendarError(BOOKING_NOT_FOUND, "Bokningen finns inte")
        return booking

    def _changed(self, trigger: str, b: JournalBooking, event_reason: str | None = None) -> None:
        self.changes.append(Change(trigger, b.booking_id, b.start))
        pr = b.practitioners[0].name if b.practitioners else None
        siu = build_siu(
            trigger,
            SiuBooking(
                booking_id=b.booking_id,
                namespace=NAMESPACE,
                patient_id=b.patient_id,
                patient_oid=PNR_OID,
                start=b.start,
                minutes=int((b.end - b.start).total_seconds() // 60),
                time_type=b.time_type,
                time_type_name=b.time_type_name,
                reason=b.reason,
                unit=b.units[0] if b.units else None,
                practitioner=Practitioner(
                    _unit_practitioner(b.units[0].hsa_id if b.units else None), pr or ""
                )
                if pr
                else None,
                event_reason=event_reason,
            ),
            control_id=f"WB{len(self.changes):08d}",
            now=datetime.now(UTC),
            filler_status="Cancelled" if trigger == "S15" else "Booked",
        )
        self.outbox.append(siu)


def _resource_number(hsa_id: str) -> str:
    return str(sum(ord(c) for c in hsa_id) * 97 % 900_000 + 100_000)


def _unit_name(unit: str) -> str:
    return next((u.name for u in UNITS if u.hsa_id == unit), unit)


def _unit_practitioner(unit: str | None) -> str:
    return next((u.practitioners[0][0] for u in UNITS if u.hsa_id == unit), "")
