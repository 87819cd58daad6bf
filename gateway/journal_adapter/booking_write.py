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
from datetime import date, datetime
from typing import Any

from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import PermanentUpstreamError
from gateway.journal_adapter import takecare_booking_write as docs
from gateway.journal_adapter.booking_service import CALL_ERRORS, NAME, JournalBookingService, translate
from gateway.journal_adapter.takecare_booking_write import AvailableDate, FreeTimeslot, TimeType


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
        what = f"{NAME}: GetAvailableTimeslots"
        s = self.settings
        xml = docs.timeslots_request(
            unit_type=s.careunitidtype,
            unit=unit,
            time_type_id=self.time_type_id(time_type),
            first=first,
            last=last,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )

        async def once() -> tuple[FreeTimeslot, ...]:
            reply = await self._call("GetAvailableTimeslots", unit, xml, what)
            return docs.read_timeslots(
                reply, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
            )

        return await self.service._retry.call(once)

    async def time_types(self, unit: str) -> tuple[TimeType, ...]:
        """``GetTimeTypes``: the unit's time types (a read: retried)."""
        what = f"{NAME}: GetTimeTypes"
        s = self.settings
        xml = docs.time_types_request(
            unit_type=s.careunitidtype,
            unit=unit,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )

        async def once() -> tuple[TimeType, ...]:
            reply = await self._call("GetTimeTypes", unit, xml, what)
            return docs.read_time_types(
                reply, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
            )

        return await self.service._retry.call(once)

    async def available_dates(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[AvailableDate, ...]:
        """``GetAvailableDates``: the days with a free time of ``time_type`` (a read: retried)."""
        what = f"{NAME}: GetAvailableDates"
        s = self.settings
        xml = docs.available_dates_request(
            unit_type=s.careunitidtype,
            unit=unit,
            time_type_id=self.time_type_id(time_type),
            first=first,
            last=last,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )

        async def once() -> tuple[AvailableDate, ...]:
            reply = await self._call("GetAvailableDates", unit, xml, what)
            return docs.read_available_dates(
                reply, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
            )

        return await self.service._retry.call(once)

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
        what = f"{NAME}: MakeBooking"
        s = self.settings
        xml = docs.make_booking_request(
            unit_type=s.careunitidtype,
            unit=unit,
            patient_id=patient.value,
            start=start,
            end=end,
            time_type_id=self.time_type_id(time_type),
            resource_id=resource_id,
            reason=reason,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )
        reply = await self._call("MakeBooking", unit, xml, what)
        booking = docs.read_booking_answer(
            reply, patient, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
        )
        if booking is None:
            raise PermanentUpstreamError(f"{what}: the answer holds no booking")
        return booking

    async def reschedule_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, start: datetime, end: datetime
    ) -> JournalBooking:
        what = f"{NAME}: RescheduleBooking {booking_id}"
        s = self.settings
        xml = docs.reschedule_request(
            unit_type=s.careunitidtype,
            unit=unit,
            patient_id=patient.value,
            booking_id=booking_id,
            start=start,
            end=end,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )
        reply = await self._call("RescheduleBooking", unit, xml, what)
        booking = docs.read_booking_answer(
            reply, patient, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
        )
        if booking is None:
            raise PermanentUpstreamError(f"{what}: the answer holds no booking")
        return booking

    async def cancel_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, reason: str | None
    ) -> None:
        what = f"{NAME}: CancelBooking {booking_id}"
        s = self.settings
        xml = docs.cancel_request(
            unit_type=s.careunitidtype,
            unit=unit,
            patient_id=patient.value,
            booking_id=booking_id,
            reason=reason,
            invoking_system=s.invoking_system,
            now=self.service._clock(),
        )
        reply = await self._call("CancelBooking", unit, xml, what)
        docs.read_booking_answer(
            reply, patient, self.time_type_ids, transient_codes=s.transient_error_codes, what=what
        )

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
