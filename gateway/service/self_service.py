"""Citizen self-service on bookings (issue 21): one use case behind both faces (FHIR, crm:scheduling).

It gathers what the rules need (the platform account, the register's record, the journal's own
view of the booking and of the free slots), lets the pure rules decide
(``gateway/domain/self_service.py``), and has the journal execute the change exactly once:

1. A command is stored with its idempotency key **before** the journal is called
   (``gateway/store/booking_commands.py``; the same key with another request is refused).
2. A write is sent once. A lost answer (timeout, 5xx) leaves the command pending and the caller
   gets a transient error (FHIR 503) to retry with the same key.
3. A retry of a pending command first asks the journal (``GetBookings``) whether the change
   already happened; only if it did not is the write sent again (with the rules checked again).
   So a lost answer never books twice or cancels the wrong time, and a gateway killed mid-call
   recovers the same way.
4. The result flows back as the journal's own SIU would: once the journal has answered, the
   use case writes the SIU for the change (S12/S13/S15, MSH-10 ``BC<command id>``) from the
   journal's answer and hands it to the intake, so the store shows the change without waiting
   for the journal's push, with the usual consequences (R-BK-2, R-BK-3, notifications).
5. The journal's own SIU for the same booking then agrees with it (same booking id and state):
   the worker takes it as the echo, marks the command ``echoed`` and makes no second version
   (``processing._echo``). Whichever of the two arrives first makes the change; a later SIU that
   differs (staff changed the booking in the journal since) is applied as any other.

Logs name command ids, actions, units and booking ids, never a personnummer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import Engine

from gateway.domain import self_service as rules
from gateway.domain.accounts import AccountDirectory
from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.domain.register import PopulationRegister
from gateway.errors import GatewayError, NotFound, Refused, TransientUpstreamError
from gateway.journal_adapter.siu_builder import build_siu
from gateway.journal_adapter.takecare_booking import JournalErrorAnswer
from gateway.journal_adapter.takecare_booking_write import AvailableDate, FreeTimeslot, TimeType
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.mappings import Mappings
from gateway.service.intake import Intake
from gateway.service.refresh import known_bookings, siu_content
from gateway.store import booking_commands as store

log = structlog.get_logger(__name__)


class Journal(Protocol):
    """The journal's booking service as the use case needs it (the XChange adapter implements it
    as ``JournalBookingService`` + ``JournalBookingWriter``; tests use fakes)."""

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]: ...

    async def available_timeslots(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[FreeTimeslot, ...]: ...

    async def available_dates(
        self, unit: str, time_type: str, first: date, last: date
    ) -> tuple[AvailableDate, ...]: ...

    async def time_types(self, unit: str) -> tuple[TimeType, ...]: ...

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
    ) -> JournalBooking: ...

    async def reschedule_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, start: datetime, end: datetime
    ) -> JournalBooking: ...

    async def cancel_booking(
        self, patient: PersonId, *, unit: str, booking_id: str, reason: str | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: int
    booking_id: str
    #: The booking as the journal answered it (None after a cancel, or on a replay of a done one).
    booking: JournalBooking | None
    #: True when the key had already been executed: nothing was sent to the journal this time.
    replayed: bool = False


_NOT_YET = object()


class SelfService:
    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        accounts: AccountDirectory,
        register: PopulationRegister,
        policy: rules.SelfServicePolicy,
        time_type_visible: Callable[[str | None], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        namespace: str = "TAKECARE",
        in_flight: timedelta = timedelta(seconds=60),
        intake: Intake | None = None,
        mappings: Mappings | None = None,
        facility: str = "SLL",
    ) -> None:
        #: Where a command's result goes as the journal's SIU would (None: wait for the journal's).
        self.intake = intake
        self.mappings = mappings
        self.facility = facility
        #: How long a ``pending`` command may still have a call in flight (longer than the
        #: journal's timeout): a retry within it is told to wait, so a slow answer is never
        #: overtaken by a second write; after it (a gateway killed mid-call) the journal is asked.
        self.in_flight = in_flight
        #: The journal's booking-id namespace (SCH-2.2): the FHIR face's Appointment ids.
        self.namespace = namespace
        self.engine = engine
        self.journal = journal
        self.accounts = accounts
        self.register = register
        self.policy = policy
        self.visible = time_type_visible
        self.clock = clock

    # --- reading ----------------------------------------------------------------------------
    async def list_bookings(self, actor: PersonId, patient: PersonId, unit: str) -> list[JournalBooking]:
        """R-BK-6, R-BK-10: the patient's bookings at the unit on visible time types."""
        await self._decide(rules.SelfServiceAction.LIST, actor, patient, unit)
        return [b for b in await self.journal.get_bookings(patient, unit=unit) if self.visible(b.time_type)]

    async def free_slots(
        self, actor: PersonId | None, unit: str, time_type: str, first: date, last: date
    ) -> list[FreeTimeslot]:
        """Free times on a visible time type (R-BK-7) that can still be booked (R-BK-9)."""
        if (refused := rules.check_time_type(self.visible(time_type))) is not None:
            raise _refused(refused)
        policy = self.policy.for_unit(unit)
        now = self.clock()
        slots = await self.journal.available_timeslots(unit, time_type, first, last)
        return [
            s
            for s in slots
            if s.time_type == time_type
            and rules.check_slot(rules.FreeSlot(unit, s.start, self.visible(s.time_type)), now, policy)
            is None
        ]

    async def booking_details(
        self, actor: PersonId, patient: PersonId, unit: str, booking_id: str
    ) -> JournalBooking:
        """One of the patient's bookings (R-BK-6, R-BK-10, R-BK-7: a hidden one is not found)."""
        for b in await self.list_bookings(actor, patient, unit):
            if b.booking_id == booking_id:
                return b
        raise NotFound(f"booking {booking_id} is not in the journal for this patient at unit {unit}")

    async def time_types(self, actor: PersonId | None, unit: str) -> list[TimeType]:
        """The unit's time types a citizen may see and book (R-BK-7: never a hidden one, nor an
        id the mapping does not know). With an actor, the rules for listing are checked first
        (R-BK-6, R-BK-10: a protected person gets nothing)."""
        if actor is not None:
            await self._decide(rules.SelfServiceAction.LIST, actor, actor, unit)
        return [
            t
            for t in await self.journal.time_types(unit)
            if t.time_type is not None and self.visible(t.time_type)
        ]

    async def available_dates(
        self, actor: PersonId | None, unit: str, time_type: str, first: date, last: date
    ) -> list[date]:
        """Days with a free time of a visible time type (R-BK-7) that can still be booked (R-BK-9):
        the journal's ``GetAvailableDates``; the days the unit's lead reaches into are checked
        slot by slot, as the Slot search does."""
        if (refused := rules.check_time_type(self.visible(time_type))) is not None:
            raise _refused(refused)
        if actor is not None:
            await self._decide(rules.SelfServiceAction.LIST, actor, actor, unit)
        now = self.clock()
        policy = self.policy.for_unit(unit)
        today = now.astimezone(STOCKHOLM).date()
        reach = max((now + policy.book_lead).astimezone(STOCKHOLM).date(), today)
        days = sorted(
            {
                d.day
                for d in await self.journal.available_dates(unit, time_type, first, last)
                if d.time_type == time_type
            }
        )
        soon = [d for d in days if d <= reach]
        if soon:
            bookable = {
                s.start.astimezone(STOCKHOLM).date()
                for s in await self.free_slots(None, unit, time_type, soon[0], soon[-1])
            }
            days = [d for d in days if d > reach or d in bookable]
        return [d for d in days if d >= today]

    # --- the commands -----------------------------------------------------------------------
    async def book(
        self,
        key: str,
        actor: PersonId,
        patient: PersonId,
        *,
        unit: str,
        start: datetime,
        end: datetime,
        time_type: str,
        reason: str | None = None,
    ) -> Outcome:
        async def check() -> None:
            slot = await self._slot(unit, time_type, start, end)
            await self._decide(rules.SelfServiceAction.BOOK, actor, patient, unit, slot=slot)

        async def write() -> JournalBooking:
            return await self.journal.make_booking(
                patient, unit=unit, start=start, end=end, time_type=time_type, reason=reason
            )

        def happened(bookings: list[JournalBooking]) -> JournalBooking | object | None:
            return _happened("book", None, start, end, time_type, bookings)

        outcome = await self._execute(
            key, "book", patient, unit, None, start, end, time_type, check, write, happened
        )
        await self._flow_back(outcome, "S12", patient, outcome.booking)
        return outcome

    async def reschedule(
        self,
        key: str,
        actor: PersonId,
        patient: PersonId,
        *,
        unit: str,
        booking_id: str,
        start: datetime,
        end: datetime,
    ) -> Outcome:
        async def check() -> None:
            existing = await self._existing(patient, unit, booking_id)
            slot = await self._slot(unit, existing.time_type or "", start, end)
            await self._decide(
                rules.SelfServiceAction.RESCHEDULE,
                actor,
                patient,
                unit,
                booking=self._view(existing, unit),
                slot=slot,
            )

        async def write() -> JournalBooking:
            return await self.journal.reschedule_booking(
                patient, unit=unit, booking_id=booking_id, start=start, end=end
            )

        def happened(bookings: list[JournalBooking]) -> JournalBooking | object | None:
            return _happened("reschedule", booking_id, start, end, None, bookings)

        outcome = await self._execute(
            key, "reschedule", patient, unit, booking_id, start, end, None, check, write, happened
        )
        await self._flow_back(outcome, "S13", patient, outcome.booking)
        return outcome

    async def cancel(
        self, key: str, actor: PersonId, patient: PersonId, *, unit: str, booking_id: str, reason: str | None
    ) -> Outcome:
        seen: list[JournalBooking] = []

        async def check() -> None:
            existing = await self._existing(patient, unit, booking_id)
            seen.append(existing)
            await self._decide(
                rules.SelfServiceAction.CANCEL, actor, patient, unit, booking=self._view(existing, unit)
            )

        async def write() -> None:
            await self.journal.cancel_booking(patient, unit=unit, booking_id=booking_id, reason=reason)

        def happened(bookings: list[JournalBooking]) -> JournalBooking | object | None:
            return _happened("cancel", booking_id, None, None, None, bookings)

        outcome = await self._execute(
            key, "cancel", patient, unit, booking_id, None, None, None, check, write, happened
        )
        before = seen[-1] if seen else await asyncio.to_thread(self._stored, booking_id, unit)
        if before is not None:
            await self._flow_back(
                outcome, "S15", patient, replace(before, status=JournalStatus.CANCELLED), reason
            )
        return outcome

    # --- exactly once -----------------------------------------------------------------------
    async def _execute(
        self,
        key: str,
        action: str,
        patient: PersonId,
        unit: str,
        booking_id: str | None,
        start: datetime | None,
        end: datetime | None,
        time_type: str | None,
        check: Callable[[], Awaitable[None]],
        write: Callable[[], Awaitable[JournalBooking | None]],
        happened: Callable[[list[JournalBooking]], JournalBooking | object | None],
    ) -> Outcome:
        if not key or len(key) > 200:
            raise Refused(
                "an idempotency key of 1..200 characters is required", rule="R-BK-11", kind="unprocessable"
            )
        digest = _hash(action, patient.value, unit, booking_id, start, end, time_type)
        with self.engine.begin() as conn:
            command = store.find(conn, key)
        if command is not None:
            if command.request_hash != digest:
                raise Refused(
                    "R-BK-11: this idempotency key was used for another request",
                    rule="R-BK-11",
                    kind="conflict",
                )
            if command.state == store.DONE:
                return Outcome(command.id, command.result_booking_id or "", None, replayed=True)
            if command.state == store.FAILED:
                raise Refused(
                    f"the journal refused this request: {command.detail}", rule="journal", kind="conflict"
                )
            if command.state == store.PENDING and self.clock() - command.updated_at < self.in_flight:
                raise Refused(
                    "R-BK-11: this request is still in progress in the journal; retry it later",
                    rule="R-BK-11",
                    kind="conflict",
                )
            # Unknown (an answer was lost) or pending long ago (the gateway stopped mid-call): ask.
            done = happened(await self.journal.get_bookings(patient, unit=unit))
            if done is not _NOT_YET:
                result = booking_id if done is None else done.booking_id  # type: ignore[attr-defined]
                self._finish(command.id, store.DONE, result, None)
                log.info(
                    "self_service.recovered",
                    command_id=command.id,
                    action=action,
                    unit=unit,
                    booking_id=result,
                )
                return Outcome(command.id, result or "", done if isinstance(done, JournalBooking) else None)
            await check()
        else:
            await check()
            with self.engine.begin() as conn:
                command = store.create(
                    conn,
                    key=key,
                    request_hash=digest,
                    action=action,
                    patient=patient.value,
                    unit=unit,
                    booking_id=booking_id,
                    start=start,
                    end=end,
                    time_type=time_type,
                    now=self.clock(),
                )
            if command is None:
                raise Refused(
                    "R-BK-11: a request with this idempotency key is in progress; retry it",
                    rule="R-BK-11",
                    kind="conflict",
                )
        with self.engine.begin() as conn:
            store.attempt(conn, command.id, self.clock())
        try:
            answered = await write()
        except JournalErrorAnswer as exc:
            self._finish(command.id, store.FAILED, None, str(exc))
            log.info("self_service.journal_refused", command_id=command.id, action=action, unit=unit)
            raise Refused(
                f"the journal refused this request: {exc}", rule="journal", kind="conflict"
            ) from exc
        except TransientUpstreamError as exc:
            # The change may or may not have been made: ``unknown``, and a retry with the same
            # key asks the journal first.
            self._finish(command.id, store.UNKNOWN, None, str(exc)[:500])
            log.warning("self_service.answer_lost", command_id=command.id, action=action, unit=unit)
            raise
        result = answered.booking_id if answered is not None else booking_id or ""
        self._finish(command.id, store.DONE, result, None)
        log.info("self_service.done", command_id=command.id, action=action, unit=unit, booking_id=result)
        return Outcome(command.id, result, answered)

    # --- commands a killed gateway left behind (R-BK-11) -------------------------------------
    async def resolve_stale(self, limit: int = 50) -> int:
        """Close the commands left ``pending`` by a gateway stopped mid-call, without waiting for
        the citizen's retry: each older than the in-flight window is looked up in the journal
        (``GetBookings``). Made: ``done``, and its result flows back as the SIU would. Not made:
        ``unknown``, so the citizen's retry checks the rules again and sends it. Returns how many
        were closed as ``done``. Nothing is ever written to the journal here."""
        now = self.clock()
        with self.engine.begin() as conn:
            stale = store.stale_pending(conn, now - self.in_flight, limit)
        resolved = 0
        for c in stale:
            if self.mappings is None:
                break
            patient = self.mappings.recognise(c.patient)
            try:
                done = _happened(
                    c.action,
                    c.booking_id,
                    c.start,
                    c.end,
                    c.time_type,
                    await self.journal.get_bookings(patient, unit=c.unit),
                )
            except NotFound:
                done = _NOT_YET
            if done is _NOT_YET:
                self._finish(c.id, store.UNKNOWN, None, "not made in the journal (found by the sweep)")
                log.info("self_service.stale_not_made", command_id=c.id, action=c.action, unit=c.unit)
                continue
            booking = done if isinstance(done, JournalBooking) else None
            result = booking.booking_id if booking is not None else c.booking_id
            self._finish(c.id, store.DONE, result, None)
            resolved += 1
            log.info(
                "self_service.recovered", command_id=c.id, action=c.action, unit=c.unit, booking_id=result
            )
            outcome = Outcome(c.id, result or "", booking)
            if c.action == "cancel":
                before = await asyncio.to_thread(self._stored, c.booking_id or "", c.unit)
                if before is not None:
                    before = replace(before, status=JournalStatus.CANCELLED)
                await self._flow_back(outcome, "S15", patient, before)
            else:
                await self._flow_back(outcome, "S12" if c.action == "book" else "S13", patient, booking)
        return resolved

    # --- the result flows back as the journal's SIU would (R-BK-11) -------------------------
    async def _flow_back(
        self,
        outcome: Outcome,
        trigger: str,
        patient: PersonId,
        booking: JournalBooking | None,
        reason: str | None = None,
    ) -> None:
        """The SIU the journal would push for this change, built from its answer and stored
        through the intake like any message (MSH-10 ``BC<command id>``: a retry stores it once).
        A failure here loses nothing: the journal's own SIU still comes."""
        if outcome.replayed or booking is None or self.intake is None or self.mappings is None:
            return
        content = siu_content(booking, patient, self.namespace, self.mappings)
        if trigger == "S15":
            content = replace(content, event_reason=reason)
        raw = build_siu(
            trigger,
            content,
            control_id=store.result_control_id(outcome.command_id),
            now=self.clock(),
            sending=(self.namespace, self.facility),
            charset="UNICODE UTF-8",
            filler_status="Cancelled" if trigger == "S15" else "Booked",
        )
        try:
            result = await self.intake.handle(raw, transport="command", peer="self-service")
        except GatewayError as exc:
            log.warning("self_service.result_not_stored", command_id=outcome.command_id, error=str(exc))
            return
        log.info(
            "self_service.result_stored",
            command_id=outcome.command_id,
            trigger=trigger,
            message_id=result.message_id,
            ack=result.ack_code,
        )

    def _stored(self, booking_id: str, unit: str) -> JournalBooking | None:
        """The booking as the gateway holds it (a cancel recovered after the journal forgot it)."""
        known = known_bookings(self.engine, self.namespace, [booking_id]).get(booking_id)
        if known is None:
            return None
        return JournalBooking(
            booking_id=booking_id,
            patient_id="",
            start=known.start,
            end=known.end,
            status=JournalStatus.BOOKED,
            time_type=known.time_type,
            time_type_name=None,
            reason=known.reason,
            practitioners=(known.practitioner,) if known.practitioner is not None else (),
            units=(known.unit,) if known.unit is not None else (Resource(unit, None),),
        )

    def _finish(self, command_id: int, state: str, result: str | None, detail: str | None) -> None:
        with self.engine.begin() as conn:
            store.finish(
                conn, command_id, state=state, result_booking_id=result, detail=detail, now=self.clock()
            )

    # --- gathering what the rules need ------------------------------------------------------
    async def _decide(
        self,
        action: rules.SelfServiceAction,
        actor: PersonId,
        patient: PersonId,
        unit: str,
        *,
        booking: rules.ExistingBooking | None = None,
        slot: rules.FreeSlot | None = None,
    ) -> None:
        now = self.clock()
        account = await self.accounts.account(patient)
        record = None if patient.is_reservnummer else await self.register.lookup(patient)
        refused = rules.decide(
            rules.Request(
                action=action,
                actor=actor,
                account=account,
                record=record,
                today=now.astimezone(STOCKHOLM).date(),
                now=now,
                policy=self.policy.for_unit(unit),
                booking=booking,
                slot=slot,
            )
        )
        if refused is not None:
            log.info("self_service.refused", action=action.value, unit=unit, rule=refused.rule)
            raise _refused(refused)

    async def _existing(self, patient: PersonId, unit: str, booking_id: str) -> JournalBooking:
        for b in await self.journal.get_bookings(patient, unit=unit):
            if b.booking_id == booking_id:
                return b
        raise NotFound(f"booking {booking_id} is not in the journal for this patient at unit {unit}")

    def _view(self, b: JournalBooking, unit: str) -> rules.ExistingBooking:
        return rules.ExistingBooking(
            b.booking_id, unit, b.start, self.visible(b.time_type), b.cancel_allowed, b.reschedule_allowed
        )

    async def _slot(self, unit: str, time_type: str, start: datetime, end: datetime) -> rules.FreeSlot:
        """The free slot asked for, as the journal offers it; hidden types are refused first."""
        if not self.visible(time_type):
            return rules.FreeSlot(unit, start, False)
        day = start.astimezone(STOCKHOLM).date()
        for s in await self.journal.available_timeslots(unit, time_type, day, day):
            if s.start == start and s.end == end:
                return rules.FreeSlot(unit, s.start, self.visible(s.time_type))
        raise Refused("the time asked for is not free in the journal", rule="R-BK-7", kind="conflict")


def _happened(
    action: str,
    booking_id: str | None,
    start: datetime | None,
    end: datetime | None,
    time_type: str | None,
    bookings: list[JournalBooking],
) -> JournalBooking | object | None:
    """Whether the journal's bookings show the command's change made (R-BK-11): the booking it
    made or moved, ``None`` for a cancellation made, or ``_NOT_YET``. Book: a booking at that
    start, end and time type; rebook: the booking at the new time; cancel: the booking gone."""
    if action == "book":
        found = [b for b in bookings if b.start == start and b.end == end and b.time_type == time_type]
        return found[0] if found else _NOT_YET
    if action == "cancel":
        return _NOT_YET if any(b.booking_id == booking_id for b in bookings) else None
    moved = next((b for b in bookings if b.booking_id == booking_id), None)
    if moved is None:
        raise NotFound(f"booking {booking_id} is no longer in the journal")
    return moved if moved.start == start and moved.end == end else _NOT_YET


def _refused(r: rules.Refusal) -> Refused:
    return Refused(str(r), rule=r.rule, kind=r.kind.value)


def _hash(*parts: object) -> str:
    text = "|".join(
        "" if p is None else (p.isoformat() if isinstance(p, datetime) else str(p)) for p in parts
    )
    return hashlib.sha256(text.encode()).hexdigest()
