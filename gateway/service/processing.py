"""The processing worker: stored messages -> register lookup -> current booking state.

Takes messages in the order they were received and re-reads them from the raw bytes (the raw
message is the truth, so a reprocess behaves the same). Every patient is looked up in the
population register before anything about them can be exposed (R-ID-3, R-ID-7); a changed
number is followed to the current one (R-ID-5). When the register cannot be asked, the message
and every later one wait (state ``waiting``, with the reason) and are retried: order is kept
and nothing is exposed unchecked. A booking's version only changes when its content changes,
so processing a message twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway import metrics
from gateway.domain.accounts import Account, AccountDirectory, no_account
from gateway.domain.booking import BookingAction, BookingEvent
from gateway.domain.documents import (
    NO_EXCEPTIONS,
    NO_MAILBOX,
    MailboxDirectory,
    MailboxReachability,
    UnitExceptions,
)
from gateway.domain.identity import PersonId
from gateway.domain.letter import DocumentEvent
from gateway.domain.notifications import Booking, Policy
from gateway.domain.register import PopulationRegister, RegisterRecord, Resolved, resolve
from gateway.domain.rules import Exposure, booking_exposure
from gateway.errors import GatewayError, StoreError, TransientUpstreamError
from gateway.fhir.appointment import build_appointment, check, content_hash, render
from gateway.journal_adapter import er7
from gateway.journal_adapter.header import check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.mappings import Mappings
from gateway.recording.context import correlate
from gateway.service import document_flow, notification_flow
from gateway.store import batch, booking_commands, identifier_links
from gateway.store.compiled import CompiledCache
from gateway.store.inbox import FAILED, PROCESSED, WAITING
from gateway.store.intake_journal import IntakeJournal, Mover
from gateway.store.lease import WorkerLease

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Everything about one message's booking that needs no database: built and validated
    before the write transaction opens, so the store is locked only for the writes."""

    appt_id: str
    patient: PersonId
    exposure: Exposure
    resource: dict[str, Any]
    digest: str
    record: RegisterRecord | None = None


@dataclass(slots=True)
class _Current:
    """An appointment's row as the batch has left it so far (read once, then kept here)."""

    version_id: int
    content_hash: str
    last_message_id: int
    #: The booking's state (status, start, end, time type) and the MSH-10 that last set it: a
    #: self-service command's result and the journal's SIU for it are one change (R-BK-11).
    state: tuple[object, ...] = ()
    last_control_id: str = ""


@dataclass(slots=True)
class _Pending:
    """The one write a batch makes to an appointment: an INSERT or an UPDATE of its final state.

    Several messages about one booking in a batch end in one statement with the same result as
    one statement each, all inside the one transaction (nothing sees the steps between)."""

    insert: bool
    values: dict[str, Any]
    resource: dict[str, Any] | None = None  # rendered at the flush, with the final version


class _Writes:
    """A batch's writes, kept in message order and sent with ``executemany`` per statement.

    ``flush`` runs them; the worker flushes before a document is routed (it may read the
    bookings and messages written before it) and at the end of the batch."""

    def __init__(self, conn: Any, now: datetime, statements: CompiledCache) -> None:
        self.conn = conn
        self.now = now
        self.statements = statements
        self.current: dict[str, _Current] | None = None
        self.appointments: dict[str, _Pending] = {}
        self.changed: list[tuple[str, BookingAction, int]] = []  # may outdate kallelser (R-BK-3)
        self.finished: list[dict[str, Any]] = []
        self.waiting: list[dict[str, Any]] = []
        self.restricted: list[dict[str, Any]] = []
        #: Each message's state this batch, for the metrics once committed (flush keeps them).
        self.outcomes: list[tuple[int, str]] = []
        # Bookings whose notifications are planned again in this transaction (R-NOT-1, R-BK-5).
        self.policy: Policy | None = None
        self.replans: list[notification_flow.BookingChange] = []

    def load(self, ids: list[str]) -> dict[str, _Current]:
        """The current rows of the batch's appointments: one ``SELECT ... IN`` per 500."""
        if self.current is None:
            self.current = {}
            for row in batch.current_appointments(self.conn, list(dict.fromkeys(ids))):
                self.current[row.id] = _Current(
                    row.version_id,
                    row.content_hash,
                    row.last_message_id,
                    (row.status, row.start, row.end, row.time_type),
                    row.last_control_id or "",
                )
        return self.current

    def finish(self, message_id: int, state: str, error: str | None) -> None:
        self.finished.append({"b_id": message_id, "state": state, "error": error, "processed_at": self.now})
        self.outcomes.append((message_id, state))
        log.debug("processing.finished", state=state)  # message_id from the log context (_bound)
        if state == FAILED:
            log.warning("processing.failed", message_id=message_id, error=error)

    def flush(self) -> None:
        # Everything Python first: the resources rendered and every row's driver parameters
        # made, then the statements one after another on the DB-API cursor. On SQLite the first
        # statement takes the one write lock, which the inbox needs for every batch it
        # acknowledges, so the lock is held for the statements and the commit only.
        for p in self.appointments.values():
            if p.resource is not None:
                p.values["resource"] = render(p.resource, p.values["version_id"], self.now)
        inserts = [p.values for p in self.appointments.values() if p.insert]
        full = [p.values for p in self.appointments.values() if not p.insert and p.resource is not None]
        touched = [p.values for p in self.appointments.values() if p.resource is None]
        booked = batch.prepare_bookings(self.statements, inserts=inserts, full=full, touched=touched)
        handled = batch.prepare_messages(
            self.statements, restricted=self.restricted, waiting=self.waiting, finished=self.finished
        )
        self.appointments = {}
        self.restricted, self.waiting, self.finished = [], [], []
        batch.run(self.conn, booked)
        if self.replans and self.policy is not None:
            notification_flow.replan_bookings(self.conn, self.replans, self.policy, self.now)
        self.replans = []
        if self.changed:
            document_flow.outdate_changed(self.conn, self.changed, self.now)
            self.changed = []
        batch.run(self.conn, handled)


def _bound(items: list[_Item]) -> Iterator[_Item]:
    """Each item with its message id bound to the log context while it is worked on, so the
    worker's lines join the intake's (``intake.acknowledged``) by ``message_id``."""
    try:
        for item in items:
            structlog.contextvars.bind_contextvars(message_id=item.message_id)
            yield item
    finally:
        structlog.contextvars.unbind_contextvars("message_id")


@dataclass(slots=True)
class _Item:
    message_id: int
    received_at: datetime
    attempts: int
    event: BookingEvent | DocumentEvent | None = None
    error: str | None = None
    control_id: str = ""


# What the account service, the mailbox directory and the register (about the account's
# guardians and proxies, R-ID-3) said of a document's person.
_Reach = tuple[Account, MailboxReachability, Mapping[PersonId, Resolved]]


def _needs_reach(resolved: Resolved) -> bool:
    """Whether routing can get as far as the recipients (R-DOC-4): only then are the account
    service and the mailbox directory asked. Held, refused and reservnummer documents never go
    to the platform or a mailbox by themselves."""
    record = resolved.record
    if record is None or record.protected or record.deceased:
        return False
    return record.deregistration is None or record.emigrated


class Processor:
    def __init__(
        self,
        engine: Engine,
        mappings: Mappings,
        register: PopulationRegister,
        *,
        accounts: AccountDirectory | None = None,
        mailbox: MailboxDirectory | None = None,
        units: Callable[[str | None], UnitExceptions] = lambda _unit: NO_EXCEPTIONS,
        batch_size: int = 200,
        booking_wait: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        journal: IntakeJournal | None = None,
        notifications: Policy | None = None,
    ) -> None:
        self._engine = engine
        self._notifications = notifications
        # SQLite: what the inbox acknowledged is in the intake journal until moved into
        # ``messages``, before each claim (gateway/store/intake_journal.py).
        self._mover = Mover(journal, engine) if journal is not None else None
        self._mappings = mappings
        self._register = register
        self._accounts = accounts
        self._mailbox = mailbox
        self._units = units
        self._batch = batch_size
        self._booking_wait = timedelta(seconds=booking_wait)
        self._clock = clock
        self._statements = CompiledCache(engine.dialect)

    def run_once(self) -> int:
        """Synchronous form of :meth:`process_batch` (tests, command line)."""
        return asyncio.run(self.process_batch())

    def close(self) -> None:
        """Let go of the connection the journal's mover keeps (the engine's are the engine's)."""
        if self._mover is not None:
            self._mover.close()

    async def process_batch(self) -> int:
        """Process one batch; return how many messages reached a final state."""
        items = await asyncio.to_thread(self._claim)
        if not items:
            return 0
        # Each person's lookup is recorded as made for the batch's messages about them.
        about: dict[PersonId, list[int]] = {}
        for item in items:
            if item.event is not None:
                about.setdefault(item.event.patient, []).append(item.message_id)
        patients = list(about)
        answers = await asyncio.gather(
            *(correlate(about[p], resolve(self._register, p)) for p in patients), return_exceptions=True
        )
        lookups: dict[PersonId, Resolved | BaseException] = dict(zip(patients, answers, strict=True))
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, GatewayError):
                raise answer  # a bug, not an outside failure: let it surface
        reach = await self._reach(items, lookups)
        return await asyncio.to_thread(self._apply_batch, items, lookups, reach)

    async def _reach(
        self, items: list[_Item], lookups: dict[PersonId, Resolved | BaseException]
    ) -> dict[PersonId, _Reach | GatewayError]:
        """Ask the account service and the mailbox directory about the persons documents may be
        delivered to; an outside failure is kept per person (their documents wait or fail)."""
        about: dict[PersonId, list[int]] = {}  # for the recording (gateway/recording/context.py)
        for item in items:
            if isinstance(item.event, DocumentEvent):
                answer = lookups.get(item.event.patient)
                if isinstance(answer, Resolved) and _needs_reach(answer):
                    about.setdefault(answer.current, []).append(item.message_id)
        persons = list(about)
        if not persons:
            return {}
        if self._accounts is None or self._mailbox is None:
            raise RuntimeError("documents need the account service and the mailbox directory")
        accounts = self._accounts
        found = await asyncio.gather(
            *(correlate(about[p], accounts.account(p)) for p in persons), return_exceptions=True
        )
        mailboxes: Mapping[PersonId, MailboxReachability] | GatewayError
        try:
            everyone = [i for ids in about.values() for i in ids]
            mailboxes = await correlate(everyone, self._mailbox.reachability(persons))
        except GatewayError as exc:
            mailboxes = exc
        for account in found:
            if isinstance(account, BaseException) and not isinstance(account, GatewayError):
                raise account
        proxies = await self._proxies(about, persons, found)
        out: dict[PersonId, _Reach | GatewayError] = {}
        for person, account in zip(persons, found, strict=True):
            if isinstance(account, GatewayError):
                out[person] = account
            elif isinstance(mailboxes, GatewayError):
                out[person] = mailboxes
            else:
                assert isinstance(account, Account)
                checked: dict[PersonId, Resolved] = {}
                failed: TransientUpstreamError | None = None
                for proxy in account.proxies:
                    answer = proxies.get(proxy.person)
                    if isinstance(answer, Resolved):
                        checked[proxy.person] = answer
                    elif isinstance(answer, TransientUpstreamError):
                        failed = answer
                # A guardian not yet checked is never named: the document waits for the register.
                out[person] = failed or (account, mailboxes.get(person, NO_MAILBOX), checked)
        return out

    async def _proxies(
        self,
        about: dict[PersonId, list[int]],
        persons: list[PersonId],
        found: list[Account | BaseException],
    ) -> dict[PersonId, Resolved | GatewayError]:
        """R-ID-3: the register's answer for every guardian and proxy the accounts name, asked
        together; a permanent failure leaves that one unchecked (it gets no copy)."""
        named: dict[PersonId, list[int]] = {}
        for person, account in zip(persons, found, strict=True):
            if isinstance(account, Account):
                for proxy in account.proxies:
                    if not proxy.blocked:
                        named.setdefault(proxy.person, []).extend(about[person])
        wanted = list(named)
        answers = await asyncio.gather(
            *(correlate(named[p], resolve(self._register, p)) for p in wanted), return_exceptions=True
        )
        out: dict[PersonId, Resolved | GatewayError] = {}
        for number, answer in zip(wanted, answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, GatewayError):
                raise answer
            out[number] = answer
        return out

    def _claim(self) -> list[_Item]:
        if self._mover is not None:
            self._mover.move()
        now = self._clock()
        rows = batch.claim(self._engine, now, limit=self._batch)
        items: list[_Item] = []
        for row in rows:
            item = _Item(row.id, row.received_at, row.attempts)
            try:
                text, _ = er7.decode(row.raw)
                msg = er7.parse(text)
                header = read_header(msg)
                check_header(header)
                item.control_id = header.control_id
                item.event = translate(msg, header, self._mappings)
            except (GatewayError, ValueError) as exc:
                item.error = str(exc)
            items.append(item)
        return items

    def _apply_batch(
        self,
        items: list[_Item],
        lookups: dict[PersonId, Resolved | BaseException],
        reach: dict[PersonId, _Reach | GatewayError] | None = None,
    ) -> int:
        done = 0
        now = self._clock()
        # meta.lastUpdated shows milliseconds; store the same so `_lastUpdated=gt<seen>` is exact.
        # One `now` for the whole batch: every write of it shares the transaction anyway.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        prepared: dict[int, _Prepared | GatewayError | ValueError] = {}
        for item in items:
            answer = lookups.get(item.event.patient) if item.event is not None else None
            if not isinstance(item.event, BookingEvent) or not isinstance(answer, Resolved):
                continue
            try:
                prepared[item.message_id] = self._prepare(item.event, answer)
            except (GatewayError, ValueError) as exc:
                prepared[item.message_id] = exc
        booked = [p.appt_id for p in prepared.values() if isinstance(p, _Prepared)]
        with self._engine.begin() as conn:
            identifier_links.remember(conn, self._links(lookups), now)
            writes = _Writes(conn, now, self._statements)
            writes.policy = self._notifications
            for index, item in enumerate(_bound(items)):
                if item.event is None:
                    writes.finish(item.message_id, FAILED, item.error)
                    done += 1
                    continue
                answer = lookups[item.event.patient]
                if isinstance(answer, TransientUpstreamError):
                    reason = f"waiting for the population register: {answer}"
                    writes.waiting += [{"b_id": later.message_id, "error": reason} for later in items[index:]]
                    writes.outcomes += [(later.message_id, WAITING) for later in items[index:]]
                    log.warning(
                        "processing.waiting_for_register", waiting=len(items) - index, error=str(answer)
                    )
                    break
                if isinstance(answer, BaseException):
                    writes.finish(item.message_id, FAILED, f"population register: {answer}")
                    done += 1
                    continue
                if answer.record is not None and answer.record.protected:
                    writes.restricted.append({"b_id": item.message_id})
                if isinstance(item.event, DocumentEvent):
                    writes.flush()  # the document sees every booking and message before it
                    done += self._document(conn, writes, item, item.event, answer, (reach or {}))
                    continue
                ready = prepared[item.message_id]
                if isinstance(ready, _Prepared):
                    self._apply(writes, writes.load(booked), item, item.event, ready)
                    writes.finish(item.message_id, PROCESSED, None)
                else:
                    writes.finish(item.message_id, FAILED, str(ready))
                done += 1
            writes.flush()
        received = {item.message_id: item.received_at for item in items}
        metrics.messages_processed(((state, received.get(i)) for i, state in writes.outcomes), self._clock())
        return done

    def _links(self, lookups: Mapping[PersonId, Resolved | BaseException]) -> list[identifier_links.Link]:
        """R-ID-5 both ways: each old number the register named, linked to the one now in use."""
        system = self._mappings.fhir_system_for
        out: list[identifier_links.Link] = []
        for asked, answer in lookups.items():
            if not isinstance(answer, Resolved):
                continue
            current = answer.current
            olds = [asked] if asked != current else []
            if answer.record is not None:
                olds += answer.record.referred_from
            out += [(system(o.authority), o.value, system(current.authority), current.value) for o in olds]
        return out

    def _document(
        self,
        conn: Any,
        writes: _Writes,
        item: _Item,
        event: DocumentEvent,
        resolved: Resolved,
        reach: dict[PersonId, _Reach | GatewayError],
    ) -> int:
        """Route one document; returns 1 when its message reached a final state."""
        now = writes.now
        found = reach.get(resolved.current)
        if isinstance(found, TransientUpstreamError):
            handled = document_flow.wait_or_fail(
                item.received_at,
                now,
                self._booking_wait,
                item.attempts,
                f"waiting for an outside system: {found}",
            )
        elif isinstance(found, GatewayError):
            handled = document_flow.Handled(
                document_flow.Result.FAILED, f"an outside system refused: {found}"
            )
        else:
            account, mailbox, proxies = (
                found if found is not None else (no_account(resolved.current), NO_MAILBOX, {})
            )
            who = document_flow.Circumstances(
                resolved.current, resolved.record, account, mailbox, self._units(event.unit_hsa_id), proxies
            )
            try:  # validates before it writes: a failure leaves nothing half written
                handled = document_flow.process_document(
                    conn,
                    item.message_id,
                    event,
                    who,
                    self._mappings,
                    now=now,
                    received_at=item.received_at,
                    attempts=item.attempts,
                    booking_wait=self._booking_wait,
                    notifications=self._notifications,
                )
            except (GatewayError, ValueError) as exc:
                handled = document_flow.Handled(document_flow.Result.FAILED, str(exc))
        if handled.result is document_flow.Result.WAITING:
            batch.wait(conn, item.message_id, reason=handled.reason, retry_at=handled.retry_at)
            writes.outcomes.append((item.message_id, WAITING))
            return 0
        state = PROCESSED if handled.result is document_flow.Result.PROCESSED else FAILED
        writes.finish(item.message_id, state, handled.reason)
        return 1

    def run_timers(self) -> int:
        """The worker's timers: the 48-hour unread rule (R-DOC-5). Returns documents changed."""
        now = self._clock()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        with self._engine.begin() as conn:
            return document_flow.print_unread(conn, now)

    def _prepare(self, event: BookingEvent, resolved: Resolved) -> _Prepared:
        patient = resolved.current
        exposure = booking_exposure(
            self._mappings.time_type_visible(event.time_type), patient, resolved.record
        )
        filed = event if patient == event.patient else _refile(event, patient)
        resource = build_appointment(filed, self._mappings)
        check(resource)
        digest = content_hash({"visible": exposure.visible, "why": exposure.reason, "resource": resource})
        return _Prepared(resource["id"], patient, exposure, resource, digest, resolved.record)

    def _apply(
        self,
        writes: _Writes,
        current: dict[str, _Current],
        item: _Item,
        event: BookingEvent,
        ready: _Prepared,
    ) -> None:
        """One message's change to its booking, against the row as the batch has left it;
        written by ``writes.flush``. A version only changes when the content does, or for the
        journal's echo of a self-service command, when the state does (R-BK-11)."""
        appt_id, patient, exposure, digest = ready.appt_id, ready.patient, ready.exposure, ready.digest
        message_id = item.message_id
        now = writes.now
        row = current.get(appt_id)
        pending = writes.appointments.get(appt_id)
        if row is not None and row.last_message_id > message_id:
            return  # an older message reprocessed: the booking has moved on since
        state = (event.status, event.start, event.end, event.time_type)
        echo = row is not None and _echo(writes, row, item, event, state)
        if row is not None and (row.content_hash == digest or echo):
            row.last_message_id = message_id
            row.last_control_id = item.control_id
            if pending is None:
                writes.appointments[appt_id] = _Pending(
                    False, {"b_id": appt_id, "last_message_id": message_id}
                )
            else:
                pending.values["last_message_id"] = message_id
            return
        version = 1 if row is None else row.version_id + 1
        values = {
            "patient_system": self._mappings.fhir_system_for(patient.authority),
            "patient_value": patient.value,
            "journal_patient_value": event.patient.value if patient != event.patient else None,
            "status": event.status,
            "start": event.start,
            "end": event.end,
            "time_type": event.time_type,
            "visible": exposure.visible,
            "withheld_reason": exposure.reason,
            "last_message_id": message_id,
            "content_hash": digest,
            "version_id": version,
            "last_updated": now,
        }
        if row is None or (pending is not None and pending.insert):
            # New, or made earlier in this batch: still one INSERT, of the latest state.
            values.update(id=appt_id, namespace=event.namespace, booking_id=event.booking_id)
            writes.appointments[appt_id] = _Pending(True, values, ready.resource)
        else:
            values["b_id"] = appt_id
            writes.appointments[appt_id] = _Pending(False, values, ready.resource)
        if writes.policy is not None:
            writes.replans.append(self._booking_change(event, ready, new=row is None))
        if row is None:
            current[appt_id] = _Current(version, digest, message_id, state, item.control_id)
        else:
            row.version_id, row.content_hash, row.last_message_id = version, digest, message_id
            row.state, row.last_control_id = state, item.control_id
            writes.changed.append((appt_id, event.action, message_id))

    def _booking_change(
        self, event: BookingEvent, ready: _Prepared, *, new: bool
    ) -> notification_flow.BookingChange:
        time_type = self._mappings.time_types.time_types.get(event.time_type or "")
        record = ready.record
        booking = Booking(
            appointment_id=ready.appt_id,
            patient=ready.patient,
            status=event.status,
            start=event.start,
            contact=time_type.kind if time_type is not None else None,
            time_type=event.time_type,
            unit=next((r.hsa_id for r in event.locations if r.hsa_id), None),
            visible=ready.exposure.visible,
            withheld=ready.exposure.reason,
            hidden_time_type=not self._mappings.time_type_visible(event.time_type),
            protected=record is not None and record.protected,
            deceased=record is not None and record.deceased,
            new=new,
        )
        return notification_flow.BookingChange(
            booking, event.action, self._mappings.fhir_system_for(ready.patient.authority)
        )

    async def run(
        self,
        stop: asyncio.Event,
        wake: asyncio.Event,
        *,
        poll_interval: float = 1.0,
        timer_interval: float = 60.0,
        gather: float = 0.0,
    ) -> None:
        """Work until ``stop`` is set; woken by new messages or every ``poll_interval``.

        After a batch that was not full, the next claim waits ``gather`` seconds: under load the
        inbox commits a few messages at a time and wakes the worker after each commit, and a
        batch per wake-up means a write transaction (and on SQLite an fsync under the one write
        lock the inbox needs too) for every handful of messages. Waiting lets a larger batch
        gather; a full batch is followed at once, so a backlog drains at full speed.

        With several instances on one PostgreSQL, only the holder of the worker lease processes;
        the others stand by and take over when it goes away (``gateway/store/lease.py``).
        """
        lease = WorkerLease(self._engine)
        timers_due = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                wake.clear()  # before looking, so a commit during the batch is not missed
                handled = 0
                if await asyncio.to_thread(lease.acquire):
                    try:
                        handled = await self.process_batch()
                        if loop.time() >= timers_due:
                            timers_due = loop.time() + timer_interval
                            await asyncio.to_thread(self.run_timers)
                    except (SQLAlchemyError, StoreError) as exc:
                        log.error("processing.batch_failed", error=type(exc).__name__)
                if handled:
                    if gather > 0 and handled < self._batch:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), gather)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_interval)
        finally:
            await asyncio.to_thread(lease.release)
            await asyncio.to_thread(self.close)


def _echo(
    writes: _Writes, row: _Current, item: _Item, event: BookingEvent, state: tuple[object, ...]
) -> bool:
    """R-BK-11: one of the two messages is a self-service command's result (``BC`` MSH-10), the
    other the journal's own SIU for the same change, and they agree on the booking's state: the
    second is the first's echo (the command is marked ``echoed``) and makes no new version, so
    no second notification and no R-BK-3 outdating. Their details may differ (the journal's
    push names the practitioner's HSA-id, its XChange answer does not); a state that differs is
    a change made in the journal since, and is applied as any other."""
    mine = booking_commands.command_of(item.control_id)
    theirs = booking_commands.command_of(row.last_control_id)
    if (mine is None) == (theirs is None) or row.state != state:
        return False
    command = mine if mine is not None else theirs
    assert command is not None
    marked = booking_commands.echoed(writes.conn, command, event.booking_id, writes.now)
    if marked:
        log.info("processing.command_echoed", command_id=command, booking_id=event.booking_id)
    return marked


def _refile(event: BookingEvent, current: PersonId) -> BookingEvent:
    """R-ID-5: a booking made under an old number is filed under the current one."""
    return replace(event, patient=current)
