"""XChange write operations (issue 21): the gateway's writer against the journal mock's calendar,
in-process. Free slots, MakeBooking, RescheduleBooking, CancelBooking; each change once in the
calendar and as one SIU in its outbox; refusals as error documents change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.booking_service import JournalBookingService, JournalServiceSettings
from gateway.journal_adapter.booking_write import JournalBookingWriter
from gateway.journal_adapter.takecare_booking import JournalErrorAnswer
from mocks.journal.booking_ws import ServiceSwitches, create_app
from mocks.journal.calendar import NOT_ALLOWED, SLOT_NOT_FREE, JournalCalendar
from tests.fakes import pnr

UNIT = "SE2321000016-15CQ"
TOLVAN = pnr("191212121212")
FIRST = datetime(2026, 12, 14, 8, 0, tzinfo=UTC)


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def journal() -> AsyncIterator[tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches]]:
    calendar = JournalCalendar()
    calendar.know(TOLVAN.value)
    calendar.open_slots(UNIT, "NYB", FIRST, 4)
    calendar.open_slots(UNIT, "ADM", FIRST, 2)
    switches = ServiceSwitches()
    app = create_app(calendar.book, switches, calendar=calendar)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journal.test"
    ) as http:
        settings = JournalServiceSettings(url="http://journal.test/Booking.asmx", retries=0)  # type: ignore[arg-type]
        service = JournalBookingService(settings, http, sleep=_no_sleep)
        yield JournalBookingWriter(service), calendar, switches
        await service.aclose()


async def test_r_bk_7_free_slots_per_unit_and_time_type(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    writer, _, _ = journal
    slots = await writer.available_timeslots(UNIT, "NYB", FIRST.date(), FIRST.date())
    assert [s.start for s in slots] == [FIRST + i * timedelta(minutes=30) for i in range(4)]
    assert {s.time_type for s in slots} == {"NYB"}
    assert (
        await writer.available_timeslots(
            UNIT, "NYB", FIRST.date() + timedelta(days=1), FIRST.date() + timedelta(days=2)
        )
        == ()
    )


async def test_get_time_types_and_available_dates_from_the_journal(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    """GetTimeTypes answers every time type of the journal, hidden ones too (the use case filters,
    R-BK-7), mapped to the gateway's codes; GetAvailableDates the days with a free time."""
    writer, _, switches = journal
    types = {t.time_type: t for t in await writer.time_types(UNIT)}
    assert types["NYB"].time_type_id == "11" and types["NYB"].name == "Nybesök"
    assert "ADM" in types
    days = await writer.available_dates(UNIT, "NYB", FIRST.date(), FIRST.date() + timedelta(days=3))
    assert [(d.day, d.time_type) for d in days] == [(FIRST.date(), "NYB")]
    assert await writer.available_dates(UNIT, "TEL", FIRST.date(), FIRST.date()) == ()
    assert switches.calls == ["GetTimeTypes", "GetAvailableDates", "GetAvailableDates"]


async def test_r_bk_11_book_rebook_cancel_each_once_with_its_siu(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    writer, calendar, _ = journal
    booked = await writer.make_booking(
        TOLVAN,
        unit=UNIT,
        start=FIRST,
        end=FIRST + timedelta(minutes=30),
        time_type="NYB",
        reason="Ont i knät",
    )
    assert booked.time_type == "NYB" and booked.start == FIRST
    [seen] = await writer.service.get_bookings(TOLVAN, unit=UNIT)
    assert seen.booking_id == booked.booking_id
    later = FIRST + timedelta(minutes=60)
    moved = await writer.reschedule_booking(
        TOLVAN, unit=UNIT, booking_id=booked.booking_id, start=later, end=later + timedelta(minutes=30)
    )
    assert moved.start == later
    free = await writer.available_timeslots(UNIT, "NYB", FIRST.date(), FIRST.date())
    assert FIRST in {s.start for s in free} and later not in {s.start for s in free}
    await writer.cancel_booking(TOLVAN, unit=UNIT, booking_id=booked.booking_id, reason="Förhindrad")
    assert await writer.service.get_bookings(TOLVAN, unit=UNIT) == []
    assert [c.trigger for c in calendar.changes] == ["S12", "S13", "S15"]
    assert [m.split(b"|")[8] for m in calendar.outbox] == [
        b"SIU^S12^SIU_S12",
        b"SIU^S13^SIU_S12",
        b"SIU^S15^SIU_S12",
    ]


async def test_r_bk_8_journal_refusals_change_nothing(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    writer, calendar, _ = journal
    booked = await writer.make_booking(
        TOLVAN, unit=UNIT, start=FIRST, end=FIRST + timedelta(minutes=30), time_type="NYB"
    )
    calendar.allow(booked.booking_id, cancel=False, reschedule=False)
    before = calendar.snapshot()
    with pytest.raises(JournalErrorAnswer, match=NOT_ALLOWED):
        await writer.cancel_booking(TOLVAN, unit=UNIT, booking_id=booked.booking_id, reason=None)
    with pytest.raises(JournalErrorAnswer, match=SLOT_NOT_FREE):
        await writer.make_booking(
            TOLVAN, unit=UNIT, start=FIRST, end=FIRST + timedelta(minutes=30), time_type="NYB"
        )
    assert calendar.snapshot() == before
    assert len(calendar.changes) == 1


async def test_r_bk_11_lost_answer_is_transient_and_the_change_was_made(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    writer, calendar, switches = journal
    switches.lose_answers = 1
    with pytest.raises(TransientUpstreamError):
        await writer.make_booking(
            TOLVAN, unit=UNIT, start=FIRST, end=FIRST + timedelta(minutes=30), time_type="NYB"
        )
    assert len(calendar.changes) == 1
    assert len(await writer.service.get_bookings(TOLVAN, unit=UNIT)) == 1


async def test_unknown_time_type_code_is_refused_before_the_call(
    journal: tuple[JournalBookingWriter, JournalCalendar, ServiceSwitches],
) -> None:
    writer, calendar, _ = journal
    with pytest.raises(PermanentUpstreamError, match="no TimeTypeId"):
        await writer.available_timeslots(UNIT, "NOPE", FIRST.date(), FIRST.date())
    assert calendar.changes == []
