"""The durable outbox to the digital mailboxes (R-DOC-4, R-DOC-5): nothing lost, nothing doubled.

A delivery is a row in ``mailbox_outbox``, written in the same transaction as the routing
decision that chose the mailbox (``document_flow``), so a document routed to Kivra is either
both decided and queued or neither. Workers here claim due rows, deliver them through the
:class:`gateway.domain.mailbox.MailboxDelivery` port and record the outcome:

- **Pipelined** (``run``, ``drain``): a batch is claimed as soon as the letters claimed and not
  yet delivered drop to twice ``concurrency``: a round in flight and a round waiting, so the next
  batch's ``isReachable`` is answered before the slots run dry (no batch barrier either: a slow
  letter holds its own slot, not the batch). The batch's persons are asked for in one
  ``isReachable`` (``prefetch``, when the port has it), then up to ``concurrency`` letters are in
  flight; outcomes are written in batches: while letters are still in flight the writer lets
  finished ones gather for up to ``record_gather`` seconds (or a batch), then writes them in one
  transaction (a transaction's fixed cost was most of a receipt's CPU when each held one or two
  letters); claiming waits while more than a batch of them are still unwritten.
- **Claiming** marks rows ``claimed_by``/``claimed_until`` in one short transaction; on
  PostgreSQL the candidate rows are picked ``FOR UPDATE SKIP LOCKED``, so several gateway
  processes drain one outbox without waiting on each other; on SQLite (one process) the
  claiming UPDATE repeats the "not claimed" condition, which SQLite's single writer makes
  atomic. A worker that dies leaves its claim to expire (``claim_seconds``), then another
  takes the row again.
- **Idempotent**: the row's ``message_id`` is the operator's key. A crash between the send and
  the commit of its receipt re-sends the same letter after the claim expires, and the operator
  answers with the first delivery's receipt: the citizen gets one copy.
- **Retries**: the adapter retries a call a few times at once (tenacity); when that is not
  enough, the row is tried again later with exponential backoff and jitter, kept in the row
  (``next_attempt_at``) so it survives restarts. After ``max_attempts`` it is ``dead``.
- **Outcomes**: delivered: the receipt goes on the document and its Communication. Refused by
  the operator (a permanent error: under 18, no longer reachable, sender not accepted) or dead:
  the document goes to the print list with the reason (R-DOC-5: nothing falls between the
  chairs). Staff can retry a refused or dead row (``retry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from gateway.domain.documents import MailboxProvider
from gateway.domain.mailbox import (
    MailboxDelivery,
    MailboxReceipt,
    OutgoingLetter,
    PrefetchingMailboxDelivery,
)
from gateway.errors import GatewayError, InvalidRequest, NotFound, TransientUpstreamError
from gateway.mappings import Mappings
from gateway.service import communications
from gateway.store import documents as store
from gateway.store import outbox as outbox_store
from gateway.store.outbox import CANCELLED, DEAD, DELIVERED, PENDING, REFUSED, STATES

log = structlog.get_logger(__name__)

__all__ = [
    "CANCELLED",
    "DEAD",
    "DELIVERED",
    "PENDING",
    "REFUSED",
    "STATES",
    "Outbox",
    "enqueue",
    "list_outbox",
    "retry",
]


def enqueue(
    conn: Connection,
    *,
    document_id: str,
    message_id: str,
    provider: MailboxProvider,
    recipient_system: str,
    recipient_value: str,
    now: datetime,
) -> None:
    """Queue one letter for a mailbox, in the caller's transaction. A letter still waiting for
    the same document is cancelled: only the newest version goes out."""
    outbox_store.enqueue(
        conn,
        document_id=document_id,
        message_id=message_id,
        provider=provider,
        recipient_system=recipient_system,
        recipient_value=recipient_value,
        now=now,
    )


_Claim = outbox_store.ClaimedLetter
#: Seconds finished letters may wait for others before their outcomes are written (only while
#: letters are still in flight): a receipt is written at most this much later, in fewer,
#: larger transactions. A crash in between re-sends them under the same message id, and the
#: operator answers with the first receipt.
RECORD_GATHER = 0.05


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one claimed letter went: ``receipt``, or a transient or permanent ``error``."""

    claim: _Claim
    receipt: MailboxReceipt | None = None
    error: str | None = None
    transient: bool = False


class _Flow:
    """One pipelined drain's state: letters claimed but not yet recorded (``outstanding``), of
    them those not yet delivered (``undelivered``), and finished ones waiting to be written."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.undelivered = 0
        self.finished: list[_Outcome] = []
        self.have_finished = asyncio.Event()
        #: Set when outcomes were written; ``delivered`` also when a letter finished.
        self.changed = asyncio.Event()
        self.delivered = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.done = 0
        #: Set when the flow is ending: finished letters are written without gathering.
        self.stopping = False


class Outbox:
    def __init__(
        self,
        engine: Engine,
        delivery: MailboxDelivery,
        mappings: Mappings,
        *,
        batch_size: int = 20,
        concurrency: int = 8,
        max_attempts: int = 8,
        backoff_initial: float = 5.0,
        backoff_max: float = 600.0,
        claim_seconds: float = 120.0,
        record_gather: float = RECORD_GATHER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        worker_id: str | None = None,
    ) -> None:
        self._engine = engine
        self._delivery = delivery
        self._mappings = mappings
        self._batch = batch_size
        self._width = concurrency
        self._concurrency = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._claim_for = timedelta(seconds=claim_seconds)
        self._gather = record_gather
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set; woken when a document is queued, else every poll.
        Letters in flight when ``stop`` comes are finished and recorded first."""
        while not stop.is_set():
            try:
                await self._flow(stop=stop, wake=wake, poll_interval=poll_interval)
            except GatewayError as exc:
                log.error("outbox.batch_failed", error=str(exc))
            except Exception as exc:  # a database hiccup must not end delivery for good
                log.error("outbox.batch_failed", error=type(exc).__name__)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)

    async def drain(self) -> int:
        """Deliver until nothing is due and nothing in flight (pipelined as ``run``); returns
        how many letters were tried."""
        return await self._flow(stop=None, wake=None, poll_interval=0.0)

    async def drain_once(self) -> int:
        """Claim one batch of due letters, deliver them, record the outcomes in one transaction;
        returns how many were tried."""
        claims = await asyncio.to_thread(self._claim)
        if not claims:
            return 0
        await self._prefetch(claims)
        outcomes = await asyncio.gather(*(self._deliver(claim) for claim in claims))
        await asyncio.to_thread(self._record, list(outcomes))
        return len(claims)

    async def _flow(
        self, *, stop: asyncio.Event | None, wake: asyncio.Event | None, poll_interval: float
    ) -> int:
        flow = _Flow()
        writer = asyncio.create_task(self._writer(flow))
        try:
            while stop is None or not stop.is_set():
                unwritten = flow.outstanding - flow.undelivered
                if flow.undelivered > 2 * self._width or unwritten > self._batch:
                    flow.delivered.clear()
                    await self._wait(flow.delivered, stop)
                    continue
                if wake is not None:
                    wake.clear()
                claims = await asyncio.to_thread(self._claim)
                if claims:
                    flow.outstanding += len(claims)
                    flow.undelivered += len(claims)
                    task = asyncio.create_task(self._run_batch(flow, claims))
                    flow.tasks.add(task)
                    task.add_done_callback(flow.tasks.discard)
                    continue
                if stop is None and flow.outstanding == 0:
                    break  # drained
                flow.changed.clear()
                waits = [flow.changed] + ([wake] if wake is not None else [])
                await self._wait_any(waits, stop, None if stop is None else poll_interval)
        finally:
            # Finish and record what is in flight (on stop too: a receipt is never thrown away).
            flow.stopping = True
            while flow.tasks:
                await asyncio.gather(*list(flow.tasks), return_exceptions=True)
            while flow.outstanding > 0 and not writer.done():
                flow.changed.clear()
                flow.have_finished.set()
                await flow.changed.wait()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return flow.done

    @staticmethod
    async def _wait(event: asyncio.Event, stop: asyncio.Event | None) -> None:
        await Outbox._wait_any([event], stop, None)

    @staticmethod
    async def _wait_any(
        events: list[asyncio.Event], stop: asyncio.Event | None, timeout: float | None
    ) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in [*events, *([stop] if stop is not None else [])]]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _run_batch(self, flow: _Flow, claims: list[_Claim]) -> None:
        """One claimed batch: one isReachable for all, then each letter as a slot frees; each
        outcome is handed to the writer as soon as it is known."""
        try:
            await self._prefetch(claims)
        except Exception as exc:  # a bug must not lose the batch: each letter asks for itself
            log.error("outbox.prefetch_failed", letters=len(claims), error=type(exc).__name__)

        async def one(claim: _Claim) -> None:
            try:
                outcome = await self._deliver(claim)
            except Exception as exc:  # not an outside failure (a bug): try again later, say why
                log.error("outbox.deliver_failed", document_id=claim.document_id, error=type(exc).__name__)
                outcome = _Outcome(claim, error=f"unexpected {type(exc).__name__}", transient=True)
            flow.finished.append(outcome)
            flow.undelivered -= 1
            flow.have_finished.set()
            flow.delivered.set()

        await asyncio.gather(*(one(claim) for claim in claims))

    async def _writer(self, flow: _Flow) -> None:
        """Record finished letters in batches: whatever finished while the last write ran."""
        while True:
            await flow.have_finished.wait()
            await self._gather_finished(flow)
            flow.have_finished.clear()
            batch, flow.finished = flow.finished, []
            if batch:
                try:
                    await asyncio.to_thread(self._record, batch)
                except Exception as exc:  # the rows stay claimed; retried when the claim expires
                    log.error("outbox.record_failed", letters=len(batch), error=type(exc).__name__)
                flow.done += len(batch)
                flow.outstanding -= len(batch)
            flow.changed.set()
            flow.delivered.set()

    async def _gather_finished(self, flow: _Flow) -> None:
        """Let more letters finish (up to a batch, at most ``record_gather`` seconds) while some
        are still in flight; at once when none are (the end of a drain, a stop)."""
        deadline = asyncio.get_running_loop().time() + self._gather
        while flow.undelivered > 0 and len(flow.finished) < self._batch and not flow.stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            flow.have_finished.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flow.have_finished.wait(), left)

    async def _prefetch(self, claims: list[_Claim]) -> None:
        """One isReachable for the batch, when the port can; a failure here is not the letters'
        (each then asks for itself when delivered)."""
        if not isinstance(self._delivery, PrefetchingMailboxDelivery):
            return
        letters = []
        for claim in claims:
            with contextlib.suppress(ValueError):  # a bad row fails in _deliver, with its reason
                letters.append(self._letter(claim))
        if not letters:
            return
        try:
            await self._delivery.prefetch(letters)
        except GatewayError as exc:
            log.warning("outbox.prefetch_failed", letters=len(letters), error=str(exc))

    def _letter(self, claim: _Claim) -> OutgoingLetter:
        return OutgoingLetter(
            message_id=claim.message_id,
            recipient=self._mappings.recognise(claim.recipient_value),
            provider=claim.provider,
            text=claim.text,
            attachments=claim.attachments,
        )

    def _claim(self) -> list[_Claim]:
        now = self._now()
        with self._engine.begin() as conn:
            return outbox_store.claim(
                conn, worker_id=self.worker_id, now=now, until=now + self._claim_for, limit=self._batch
            )

    async def _deliver(self, claim: _Claim) -> _Outcome:
        async with self._concurrency:
            try:
                receipt = await self._delivery.deliver(self._letter(claim))
            except TransientUpstreamError as exc:
                return _Outcome(claim, error=str(exc), transient=True)
            except (GatewayError, ValueError) as exc:
                return _Outcome(claim, error=str(exc))
            return _Outcome(claim, receipt=receipt)

    def _record(self, outcomes: list[_Outcome]) -> None:
        """Every outcome in one transaction (receipts written in batches)."""
        now = self._now()
        documents = [outcome.claim.document_id for outcome in outcomes]
        with self._engine.begin() as conn:
            if len(set(documents)) < len(documents):
                # Two letters of one document (a newer version queued while the older was in
                # flight): one by one, in order, as each sees what the one before wrote.
                for outcome in outcomes:
                    self._record_one(conn, outcome, now)
                return
            # Each document once: the receipts' statements go together, the rest one by one.
            self._delivered_together(conn, [o for o in outcomes if o.receipt is not None], now)
            for outcome in outcomes:
                if outcome.receipt is None:
                    self._record_one(conn, outcome, now)

    def _record_one(self, conn: Connection, outcome: _Outcome, now: datetime) -> None:
        if outcome.receipt is not None:
            self._delivered_together(conn, [outcome], now)
        elif outcome.transient:
            self._failed_for_now(conn, outcome.claim, outcome.error or "", now)
        else:
            self._refused(conn, outcome.claim, outcome.error or "", now)

    def _backoff(self, attempts: int) -> timedelta:
        """Exponential with equal jitter: half the step fixed, half random."""
        step = min(self._backoff_max, self._backoff_initial * 2 ** max(0, attempts - 1))
        return timedelta(seconds=step / 2 + random.uniform(0, step / 2))

    def _delivered_together(self, conn: Connection, outcomes: list[_Outcome], now: datetime) -> None:
        """Receipts of letters of different documents: each row settled, then the documents'
        receipts, events and Communications written together."""
        settled: list[tuple[_Claim, MailboxReceipt]] = []
        for outcome in outcomes:
            claim, receipt = outcome.claim, outcome.receipt
            assert receipt is not None
            # The operator's receipt settles the letter whoever holds the claim now: a claim
            # that expired while the letter was in flight is taken by another worker, which
            # sends the same message id again and gets this same receipt. The first to come
            # back records it; the others change nothing (without this, two workers whose
            # claims keep expiring take the row from each other for ever, each adding a
            # "mailbox-delivered").
            if outbox_store.mark_delivered(
                conn,
                claim.id,
                worker_id=self.worker_id,
                transaction_id=receipt.transaction_id,
                delivered_at=receipt.delivered_at,
                now=now,
            ):
                settled.append((claim, receipt))
            else:  # another worker recorded it already (or gave up on it)
                log.info("outbox.recorded_elsewhere", document_id=claim.document_id, attempts=claim.attempts)
        if not settled:
            return
        outbox_store.note_documents_delivered(
            conn,
            [
                outbox_store.DocumentReceipt(
                    claim.document_id, receipt.provider, receipt.delivered_at, receipt.transaction_id
                )
                for claim, receipt in settled
            ],
        )
        store.add_events(
            conn,
            [
                store.Event(
                    claim.document_id,
                    now,
                    "mailbox-delivered",
                    detail=f"{receipt.provider.value}, transaction {receipt.transaction_id}",
                )
                for claim, receipt in settled
            ],
        )
        communications.rebuild_many(conn, [claim.document_id for claim, _ in settled], now)
        for claim, receipt in settled:
            log.info(
                "outbox.delivered",
                document_id=claim.document_id,
                provider=receipt.provider.value,
                attempts=claim.attempts,
            )

    def _failed_for_now(self, conn: Connection, claim: _Claim, error: str, now: datetime) -> None:
        if claim.attempts >= self._max_attempts:
            self._give_up(
                conn,
                claim,
                DEAD,
                f"{claim.provider.value} could not be reached in {claim.attempts} attempts: {error}",
                now,
            )
            return
        retry_at = now + self._backoff(claim.attempts)
        outbox_store.retry_later(
            conn, claim.id, worker_id=self.worker_id, retry_at=retry_at, error=error, now=now
        )
        log.warning(
            "outbox.retry_later",
            document_id=claim.document_id,
            attempts=claim.attempts,
            retry_at=retry_at.isoformat(),
            error=error,
        )

    def _refused(self, conn: Connection, claim: _Claim, error: str, now: datetime) -> None:
        self._give_up(conn, claim, REFUSED, f"{claim.provider.value} refused the letter: {error}", now)

    def _give_up(self, conn: Connection, claim: _Claim, state: str, reason: str, now: datetime) -> None:
        """The mailbox will not get it: the document goes to the print list with the reason."""
        if not outbox_store.give_up(
            conn, claim.id, worker_id=self.worker_id, state=state, reason=reason, now=now
        ):
            return
        unit, kind = outbox_store.unit_and_kind(conn, claim.document_id)
        outbox_store.drop_mailbox_recipient(conn, claim.document_id)
        store.add_event(conn, claim.document_id, now, f"mailbox-{state}", detail=reason)
        store.put_on_print_list(
            conn,
            claim.document_id,
            unit=unit,
            kind=kind,
            rules=("R-DOC-5",),
            reason=f"not delivered to the digital mailbox: {reason}",
            now=now,
        )
        communications.rebuild(conn, claim.document_id, now)
        log.warning("outbox.gave_up", document_id=claim.document_id, state=state, attempts=claim.attempts)


def list_outbox(
    engine: Engine, *, state: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    if state is not None and state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    with engine.connect() as conn:
        total, items = outbox_store.list_items(conn, state=state, limit=limit, offset=offset)
    return total, [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in item.items()} for item in items
    ]


def retry(engine: Engine, outbox_id: int, *, by: str, now: datetime) -> None:
    """Staff try a refused or dead letter again, from the first attempt."""
    if not by.strip():
        raise InvalidRequest("'by' (who retries) is required")
    with engine.begin() as conn:
        found = outbox_store.find(conn, outbox_id)
        if found is None:
            raise NotFound(f"outbox item {outbox_id} is not known")
        document_id, state = found
        if state not in (REFUSED, DEAD):
            raise InvalidRequest(
                f"outbox item {outbox_id} is {state}; only refused or dead items are retried"
            )
        outbox_store.reset(conn, outbox_id, now=now)
        store.add_event(conn, document_id, now, "mailbox-retry", actor=by, detail=f"outbox item {outbox_id}")
