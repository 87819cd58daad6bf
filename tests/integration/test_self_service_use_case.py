"""The self-service use case (issue 21, R-BK-11 exactly once; R-BK-6..9, R-ACC-1, R-ID-3 refusals)
against the journal mock's calendar through a fake journal that loses one answer, on SQLite and
PostgreSQL. Each change is in the calendar exactly once; a refusal changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from gateway.domain.accounts import Account, AccountStatus
from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import NotFound, Refused, TransientUpstreamError
from gateway.journal_adapter.takecare_booking import JournalErrorAnswer, JournalErrorEntry
from gateway.journal_adapter.takecare_booking_write import AvailableDate, FreeTimeslot, TimeType
from gateway.mappings import load
from gateway.self_service_mappings import load_self_service
from gateway.service.self_service import SelfService
from gateway.store.tables import booking_commands
from mocks.journal.calendar import CalendarError, JournalCalendar
from tests.fakes import FakeAccounts, FakeRegister, pnr

UNIT = "SE2321000016-15CQ"
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
FIRST = datetime(2026, 12, 14, 8, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)
TOLVAN = pnr("191212121212")
SKYDDAD = pnr("198203152452")


@dataclass
class FakeJournal:
    """The calendar in-process; ``lose`` makes the next write happen but its answer get lost
    (``before``: the request is lost before the journal sees it). Counts write calls."""

    calendar: JournalCalendar
    lose: str | None = None  # "after" | "before"
    writes: list[str] = field(default_factory=list)

    def _maybe_lose(self, change: Callable[[], object]) -> object:
        lose, self.lose = self.lose, None
        if lose == "before":
            raise TransientUpstreamError("journal-ws: timeout (fake, before)")
        try:
            result = change()
        except CalendarError as exc:
            raise JournalErrorAnswer(
                f"Error {exc.code}: {exc.msg}", (JournalErrorEntry("Error", exc.code, exc.msg),)
            ) from exc
        if lose == "after":
            raise TransientUpstreamError("journal-ws: timeout (fake, answer lost)")
        if lose == "killed":
            # The gateway stops mid-call: the task is cancelled after the journal made the change.
            raise asyncio.CancelledError
        return result

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]:
        from dataclasses import replace

        return [
            replace(
                b,
                cancel_allowed=self.calendar.allowed(b.booking_id).cancel,
                reschedule_allowed=self.calendar.allowed(b.booking_id).reschedule,
            )
            for b in self.calendar.book.bookings(patient.value, unit=unit)
        ]

    async def available_timeslots(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[FreeTimeslot, ...]:
        return tuple(
            FreeTimeslot(unit, s.start, s.end, "0", s.time_type, None, s.resource_id, s.resource_name)
            for s in self.calendar.free(unit, time_type, first, last)
        )

    async def available_dates(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[AvailableDate, ...]:
        days = sorted({s.start.date() for s in self.calendar.free(unit, time_type, first, last)})
        return tuple(AvailableDate(unit, d, "0", time_type, None) for d in days)

    async def time_types(self, unit: str) -> tuple[TimeType, ...]:
        return tuple(TimeType(str(i), code, code) for i, code in enumerate(("NYB", "ADM")))

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
        self.writes.append("make")
        b = self._maybe_lose(
            lambda: self.calendar.make_booking(patient.value, unit, start, end, time_type, reason)
        )
        assert isinstance(b, JournalBooking)
        return b

    async def reschedule_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, start: datetime, end: datetime
    ) -> JournalBooking:
        self.writes.append("reschedule")
        b = self._maybe_lose(lambda: self.calendar.reschedule(patient.value, booking_id, start, end))
        assert isinstance(b, JournalBooking)
        return b

    async def cancel_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, reason: str | None
    ) -> None:
        self.writes.append("cancel")
        self._maybe_lose(lambda: self.calendar.cancel(patient.value, booking_id, reason))


@pytest.fixture
def world(engine: Engine) -> tuple[SelfService, FakeJournal, FakeAccounts]:
    calendar = JournalCalendar()
    calendar.open_slots(UNIT, "NYB", FIRST, 6)
    calendar.open_slots(UNIT, "ADM", FIRST, 2)
    journal = FakeJournal(calendar)
    accounts = FakeAccounts(
        {
            TOLVAN.value: Account(TOLVAN, AccountStatus.ACTIVE, UNIT),
            SKYDDAD.value: Account(SKYDDAD, AccountStatus.ACTIVE, UNIT),
        }
    )
    m = load()
    service = SelfService(
        engine, journal, accounts, FakeRegister(), load_self_service(), m.time_type_visible, clock=lambda: NOW
    )
    return service, journal, accounts


async def test_r_bk_11_book_rebook_cancel_each_once(
    world: tuple[SelfService, FakeJournal, FakeAccounts],
) -> None:
    service, journal, _ = world
    booked = await service.book(
        "k1", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    moved = await service.reschedule(
        "k2",
        TOLVAN,
        TOLVAN,
        unit=UNIT,
        booking_id=booked.booking_id,
        start=FIRST + 2 * HALF,
        end=FIRST + 3 * HALF,
    )
    assert moved.booking is not None and moved.booking.start == FIRST + 2 * HALF
    await service.cancel("k3", TOLVAN, TOLVAN, unit=UNIT, booking_id=booked.booking_id, reason="Förhindrad")
    assert [c.trigger for c in journal.calendar.changes] == ["S12", "S13", "S15"]
    # The same key again: replayed, nothing sent.
    again = await service.book(
        "k1", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    assert again.replayed and again.booking_id == booked.booking_id
    assert journal.writes == ["make", "reschedule", "cancel"]


@pytest.mark.parametrize("lost", ["after", "before"])
async def test_r_bk_11_lost_answer_on_book_never_books_twice(
    world: tuple[SelfService, FakeJournal, FakeAccounts], engine: Engine, lost: str
) -> None:
    service, journal, _ = world
    journal.lose = lost
    with pytest.raises(TransientUpstreamError):
        await service.book(
            "lost-1", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
        )
    with engine.begin() as conn:
        assert conn.execute(select(booking_commands.c.state)).scalar_one() == "unknown"
    result = await service.book(
        "lost-1", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    assert [c.trigger for c in journal.calendar.changes] == ["S12"]
    assert len(journal.calendar.book.bookings(TOLVAN.value)) == 1
    assert result.booking_id == journal.calendar.changes[0].booking_id
    # after: the journal had booked, the retry only asked; before: the retry wrote it.
    assert journal.writes == (["make"] if lost == "after" else ["make", "make"])


async def test_r_bk_11_lost_answer_on_rebook_and_cancel(
    world: tuple[SelfService, FakeJournal, FakeAccounts],
) -> None:
    service, journal, _ = world
    booked = await service.book(
        "b", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    journal.lose = "after"
    with pytest.raises(TransientUpstreamError):
        await service.reschedule(
            "r",
            TOLVAN,
            TOLVAN,
            unit=UNIT,
            booking_id=booked.booking_id,
            start=FIRST + HALF,
            end=FIRST + 2 * HALF,
        )
    await service.reschedule(
        "r", TOLVAN, TOLVAN, unit=UNIT, booking_id=booked.booking_id, start=FIRST + HALF, end=FIRST + 2 * HALF
    )
    journal.lose = "after"
    with pytest.raises(TransientUpstreamError):
        await service.cancel("c", TOLVAN, TOLVAN, unit=UNIT, booking_id=booked.booking_id, reason=None)
    await service.cancel("c", TOLVAN, TOLVAN, unit=UNIT, booking_id=booked.booking_id, reason=None)
    assert [c.trigger for c in journal.calendar.changes] == ["S12", "S13", "S15"]
    assert journal.writes == ["make", "reschedule", "cancel"]


async def test_r_bk_11_a_key_reused_for_another_request_is_refused(
    world: tuple[SelfService, FakeJournal, FakeAccounts],
) -> None:
    service, journal, _ = world
    await service.book("same", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB")
    with pytest.raises(Refused) as refused:
        await service.book(
            "same", TOLVAN, TOLVAN, unit=UNIT, start=FIRST + HALF, end=FIRST + 2 * HALF, time_type="NYB"
        )
    assert refused.value.status == 409 and refused.value.rule == "R-BK-11"
    assert len(journal.calendar.changes) == 1


async def _refused_without_change(
    service: SelfService, journal: FakeJournal, call: Callable[[], object], rule: str, status: int
) -> None:
    before = journal.calendar.snapshot()
    changes = len(journal.calendar.changes)
    with pytest.raises(Refused) as refused:
        await call()  # type: ignore[misc]
    assert (refused.value.rule, refused.value.status) == (rule, status), str(refused.value)
    assert "191212121212" not in str(refused.value)
    assert journal.calendar.snapshot() == before and len(journal.calendar.changes) == changes


async def test_refusals_change_nothing(world: tuple[SelfService, FakeJournal, FakeAccounts]) -> None:
    service, journal, accounts = world
    booked = await service.book(
        "b", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    bid = booked.booking_id
    # R-BK-1 hidden time type
    await _refused_without_change(
        service,
        journal,
        lambda: service.book("h", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="ADM"),
        "R-BK-1",
        422,
    )
    # R-BK-8 not allowed by the journal
    journal.calendar.allow(bid, cancel=False, reschedule=False)
    await _refused_without_change(
        service,
        journal,
        lambda: service.cancel("n", TOLVAN, TOLVAN, unit=UNIT, booking_id=bid, reason=None),
        "R-BK-8",
        409,
    )
    journal.calendar.allow(bid)
    # R-BK-9 deadline passed
    late = SelfService(
        service.engine,
        journal,
        accounts,
        service.register,
        service.policy,
        service.visible,
        clock=lambda: FIRST - timedelta(hours=23),
    )
    await _refused_without_change(
        service,
        journal,
        lambda: late.cancel("d", TOLVAN, TOLVAN, unit=UNIT, booking_id=bid, reason=None),
        "R-BK-9",
        409,
    )
    # R-ID-3 protected person
    await _refused_without_change(
        service,
        journal,
        lambda: service.book(
            "p", SKYDDAD, SKYDDAD, unit=UNIT, start=FIRST + HALF, end=FIRST + 2 * HALF, time_type="NYB"
        ),
        "R-ID-3",
        403,
    )
    # R-ACC-1 locked account
    accounts.accounts[TOLVAN.value] = Account(TOLVAN, AccountStatus.LOCKED, UNIT)
    await _refused_without_change(
        service,
        journal,
        lambda: service.cancel("l", TOLVAN, TOLVAN, unit=UNIT, booking_id=bid, reason=None),
        "R-ACC-1",
        403,
    )
    assert journal.writes == ["make"]


async def test_r_bk_6_unknown_booking_is_not_found(
    world: tuple[SelfService, FakeJournal, FakeAccounts],
) -> None:
    service, _, _ = world
    with pytest.raises(NotFound):
        await service.cancel("x", TOLVAN, TOLVAN, unit=UNIT, booking_id="NOPE", reason=None)


async def test_r_bk_7_free_slots_visible_and_not_too_soon(
    world: tuple[SelfService, FakeJournal, FakeAccounts],
) -> None:
    service, _, _ = world
    slots = await service.free_slots(TOLVAN, UNIT, "NYB", FIRST.date(), FIRST.date())
    assert len(slots) == 6
    with pytest.raises(Refused) as refused:
        await service.free_slots(TOLVAN, UNIT, "ADM", FIRST.date(), FIRST.date())
    assert refused.value.rule == "R-BK-1"


async def test_r_bk_11_gateway_killed_mid_call_recovers_on_retry(
    world: tuple[SelfService, FakeJournal, FakeAccounts], engine: Engine
) -> None:
    service, journal, accounts = world
    journal.lose = "killed"
    with pytest.raises(asyncio.CancelledError):
        await service.book(
            "killed", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
        )
    # A new gateway process: only the database survived. Within the in-flight window a retry is
    # told to wait (a slow call could still be running); after it, the journal is asked.
    with pytest.raises(Refused, match="in progress"):
        await service.book(
            "killed", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
        )
    restarted = SelfService(
        engine,
        journal,
        accounts,
        service.register,
        service.policy,
        service.visible,
        clock=lambda: NOW + service.in_flight,
    )
    result = await restarted.book(
        "killed", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    assert [c.trigger for c in journal.calendar.changes] == ["S12"]
    assert journal.writes == ["make"]
    assert result.booking_id == journal.calendar.changes[0].booking_id


async def test_r_bk_11_the_sweep_resolves_a_command_a_killed_gateway_left_pending(
    world: tuple[SelfService, FakeJournal, FakeAccounts], engine: Engine
) -> None:
    """Without the citizen's retry: a pending command older than the in-flight window is looked up
    in the journal (GetBookings) and closed as done, never written again; one whose change the
    journal does not have becomes unknown (the retry checks and sends it); a fresh one is left."""
    service, journal, accounts = world
    journal.lose = "killed"
    with pytest.raises(asyncio.CancelledError):
        await service.book("made", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB")
    journal.lose = "before"  # the request never reached the journal
    with pytest.raises(TransientUpstreamError):
        await service.book(
            "lost", TOLVAN, TOLVAN, unit=UNIT, start=FIRST + HALF, end=FIRST + 2 * HALF, time_type="NYB"
        )
    with engine.begin() as conn:  # as a killed gateway leaves it: pending, not unknown
        conn.execute(booking_commands.update().values(state="pending"))
    early = SelfService(
        engine,
        journal,
        accounts,
        service.register,
        service.policy,
        service.visible,
        clock=lambda: NOW,
        mappings=load(),
    )
    assert await early.resolve_stale() == 0  # within the window: a call may still be in flight
    assert journal.writes == ["make", "make"]

    restarted = SelfService(
        engine,
        journal,
        accounts,
        service.register,
        service.policy,
        service.visible,
        clock=lambda: NOW + service.in_flight + timedelta(seconds=1),
        mappings=load(),
    )
    assert await restarted.resolve_stale() == 1
    with engine.begin() as conn:
        states = dict(
            conn.execute(select(booking_commands.c.idempotency_key, booking_commands.c.state)).all()
        )
    assert states == {"made": "done", "lost": "unknown"}
    assert journal.writes == ["make", "make"]  # the two first attempts; nothing written by the sweep
    assert [c.trigger for c in journal.calendar.changes] == ["S12"]
    replay = await restarted.book(
        "made", TOLVAN, TOLVAN, unit=UNIT, start=FIRST, end=FIRST + HALF, time_type="NYB"
    )
    assert replay.replayed and replay.booking_id == journal.calendar.changes[0].booking_id
