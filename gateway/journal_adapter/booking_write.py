"""TakeCare XChange write operations for citizen self-service (issue 21, docs/self-service.md).

``GetTimeTypes``, ``GetAvailableDates``, ``GetAvailableTimeslots`` (reads; retried like
``GetBookings``), ``MakeBooking``,
``RescheduleBooking`` and ``CancelBooking`` on the same SOAP service and WSDL as
:class:`~gateway.journal_adapter.booking_service.JournalBookingService`, whose zeep proxy,
settings and error translation are reused. A write is sent **once**: a timeout or a lost answer
leaves as ``TransientUpstreamError`` and the use case (``gateway/service/self_service.py``) asks
the journal with ``GetBookings`` whether the change happened before it tries again, so a write
is never repeated blindly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import PermanentUpstreamError
from gateway.journal_adapter import takecare_booking_write as docs
from gateway.journal_adapter.booking_service import CALL_ERRORS, NAME, JournalBookingService, translate
from gateway.journal_adapter.takecare_booking_write import AvailableDate, FreeTimeslot, TimeType

T = TypeVar("T")


class JournalBookingWriter:
    """The write side of the journal's booking service, over a :class:`JournalBookingService`."""

    def __init__(self, service: JournalBookingService) -> None:
        self.service = service
        self.settings = service.settings
        #: TimeTypeId -> time-type code (the instance's table) and its reverse.
        self.time_type_ids: dict[str, str] = dict(service._time_type_ids)
        self.ids_by_code: dict[str, str] = {code: tt for tt, code in self.time_type_ids.items()}

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]:
        """``GetBookings`` (retried on transient failures; a read changes nothing)."""
        return await self.service.get_bookings(patient, unit=unit)

    def time_type_id(self, code: str) -> str:
        tt_id = self.ids_by_code.get(code)
        if tt_id is None:
            raise PermanentUpstreamError(f"{NAME}: time type {code!r} has no TimeTypeId in this instance")
        return tt_id

    async def available_timeslots(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[FreeTimeslot, ...]:
        """``GetAvailableTimeslots``: free times of ``time_type`` (a read: retried)."""
        xml = docs.timeslots_request(
            **self._header(unit), time_type_id=self.time_type_id(time_type), first=first, last=last
        )
        return await self._read("GetAvailableTimeslots", unit, xml, docs.read_timeslots)

    async def time_types(self, unit: str) -> tuple[TimeType, ...]:
        """``GetTimeTypes``: the unit's time types (a read: retried)."""
        xml = docs.time_types_request(**self._header(unit))
        return await self._read("GetTimeTypes", unit, xml, docs.read_time_types)

    async def available_dates(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[AvailableDate, ...]:
        """``GetAvailableDates``: the days with a free time of ``time_type`` (a read: retried)."""
        xml = docs.available_dates_request(
            **self._header(unit), time_type_id=self.time_type_id(time_type), first=first, last=last
        )
        return await self._read("GetAvailableDates", unit, xml, docs.read_available_dates)

    async def make_booking(
        self,
        patient: PersonId,
        *,
        unit: str,
        start: datetime,
        end: datetime,
        time_type: str,
        resource_id: str | None = None,
        reason: str | None = None,
    ) -> JournalBooking:
        xml = docs.make_booking_request(
            **self._header(unit),
            patient_id=patient.value,
            start=start,
            end=end,
            time_type_id=self.time_type_id(time_type),
            resource_id=resource_id,
            reason=reason,
        )
        what = f"{NAME}: MakeBooking"
        return _booked(await self._write("MakeBooking", unit, xml, patient, what), what)

    async def reschedule_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, start: datetime, end: datetime
    ) -> JournalBooking:
        what = f"{NAME}: RescheduleBooking {booking_id}"
        xml = docs.reschedule_request(
            **self._header(unit), patient_id=patient.value, booking_id=booking_id, start=start, end=end
        )
        return _booked(await self._write("RescheduleBooking", unit, xml, patient, what), what)

    async def cancel_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, reason: str | None
    ) -> None:
        what = f"{NAME}: CancelBooking {booking_id}"
        xml = docs.cancel_request(
            **self._header(unit), patient_id=patient.value, booking_id=booking_id, reason=reason
        )
        await self._write("CancelBooking", unit, xml, patient, what)

    # --- one request and answer ------------------------------------------------------------

    def _header(self, unit: str) -> dict[str, Any]:
        """What every inner request names: the unit, the invoking system and the time."""
        s = self.settings
        return {
            "unit_type": s.careunitidtype,
            "unit": unit,
            "invoking_system": s.invoking_system,
            "now": self.service._clock(),
        }

    async def _read(self, operation: str, unit: str, xml: str, read: Callable[..., T]) -> T:
        """A read: called, its answer read, retried on transient failures (it changes nothing)."""
        what = f"{NAME}: {operation}"

        async def once() -> T:
            reply = await self._call(operation, unit, xml, what)
            return read(
                reply, self.time_type_ids, transient_codes=self.settings.transient_error_codes, what=what
            )

        result: T = await self.service._retry.call(once)
        return result

    async def _write(
        self, operation: str, unit: str, xml: str, patient: PersonId, what: str
    ) -> JournalBooking | None:
        """A write: sent once (never retried here, see the module's text), its answer read."""
        reply = await self._call(operation, unit, xml, what)
        booking = docs.read_booking_answer(
            reply,
            patient,
            self.time_type_ids,
            transient_codes=self.settings.transient_error_codes,
            what=what,
        )
        return booking

    async def _call(self, operation: str, unit: str, xml: str, what: str) -> str:
        s = self.settings
        try:
            async with asyncio.timeout(s.timeout):
                proxy: Any = await self.service._load()
                reply = await getattr(proxy, operation)(
                    tcusername=s.tcusername.get_secret_value() if s.tcusername is not None else None,
                    tcpassword=s.tcpassword.get_secret_value() if s.tcpassword is not None else None,
                    externaluser=s.externaluser,
                    careunitidtype=s.careunitidtype,
                    careunitid=unit,
                    xml=xml,
                )
        except CALL_ERRORS as exc:
            raise translate(exc, what) from exc
        if not isinstance(reply, str):
            raise PermanentUpstreamError(f"{what}: answer has no {operation}Result string")
        return reply


def _booked(booking: JournalBooking | None, what: str) -> JournalBooking:
    """A booking or rebooking's answer must name the booking it made."""
    if booking is None:
        raise PermanentUpstreamError(f"{what}: the answer holds no booking")
    return booking
