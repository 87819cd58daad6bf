"""Sends the planned SMS when due, each at most once (R-NOT-1..5, R-BK-5).

One pass takes the due rows of ``notifications`` and, for each:

1. the last check (:func:`gateway.domain.notifications.decide_send`): the booking still booked
   at the planned time, the document not yet read, and the recipient's account as the account
   service says *now* -- consent (R-NOT-1, ``sms_reminder_allowed``), mobile number, not locked.
   A no is recorded as ``cancelled`` with the rule and the reason;
2. ``sending`` committed, with the idempotency key fixed when the row was planned;
3. the provider call with that key, then ``sent`` with the provider's id.

After a crash between 2 and 3 the row is still ``sending``: the next pass first asks the
provider whether it has the SMS (``find_sent``) and only sends again, with the same key, if it
has not. Transient failures are retried with exponential backoff and jitter (kept in the row,
so a restart keeps them); after ``max_attempts``, or on a permanent refusal, the row is ``dead``
with the reason. Logs carry the row id, kind and state: never a number, a name or the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.domain.accounts import AccountDirectory
from gateway.domain.notifications import STOCKHOLM, DontSend, Kind, Policy, decide_send, render
from gateway.domain.sms import OutgoingSms, SmsSender
from gateway.errors import GatewayError, TransientUpstreamError
from gateway.mappings import Mappings
from gateway.store import notifications as store

log = structlog.get_logger(__name__)

#: Clock skew allowed between us and the provider when asking its history after a crash.
HISTORY_SKEW = timedelta(minutes=10)


class Notifier:
    def __init__(
        self,
        engine: Engine,
        sms: SmsSender,
        accounts: AccountDirectory,
        policy: Policy,
        mappings: Mappings,
        *,
        sender: str,
        batch_size: int = 20,
        max_attempts: int = 8,
        backoff_initial: float = 10.0,
        backoff_max: float = 900.0,
        claim_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._sms = sms
        self._accounts = accounts
        self._policy = policy
        self._mappings = mappings
        self._sender = sender
        self._batch = batch_size
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._claim = timedelta(seconds=claim_seconds)
        self.clock = clock

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                done = await self.send_due()
            except Exception as exc:  # a database hiccup must not end sending for good
                log.error("notifier.pass_failed", error=type(exc).__name__)
                done = 0
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)

    async def send_due(self) -> int:
        """One pass over the due notifications; returns how many were handled."""
        now = self._now()
        with self._engine.connect() as conn:
            rows = store.due(conn, now, self._batch)
        for row in rows:
            try:
                await self._one(row)
            except SQLAlchemyError:
                raise  # the store: the whole pass is tried again
            except Exception as exc:
                # One row that cannot be handled (a bug, an identifier the tables no longer
                # know) must not hold up every SMS after it: it is dead, with the reason.
                log.error("notifier.row_failed", notification=row.id, error=type(exc).__name__)
                self._finish(row, store.DEAD, "", f"cannot be sent: {type(exc).__name__}", attempted=True)
        return len(rows)

    async def _one(self, row: store.Due) -> None:
        now = self._now()
        subject = self._mappings.recognise(row.patient_value)
        recipient = self._mappings.recognise(row.recipient_value)
        booked, read = True, False
        with self._engine.connect() as conn:
            if row.subject == store.APPOINTMENT:
                current = store.appointment_now(conn, row.subject_id)
                booked = current is not None and current[0] == "booked" and current[1] == row.visit_start
            else:
                read = store.document_read(conn, row.subject_id)
        try:
            account = await self._accounts.account(recipient)
        except TransientUpstreamError as exc:
            self._later(row, f"account service: {exc}")
            return
        except GatewayError as exc:
            self._finish(row, store.DEAD, "R-NOT-1", f"account service refused: {exc}")
            return
        today = now.astimezone(STOCKHOLM).date()
        decision = decide_send(row.kind, row.role, subject, account, today, booked=booked, read=read)
        if isinstance(decision, DontSend):
            self._finish(row, store.CANCELLED, " ".join(decision.rules), f"not sent: {decision.why}")
            return
        sms = OutgoingSms(
            to=decision.to,
            sender=self._sender,
            text=render(self._policy, row.kind, row.visit_start if row.kind is not Kind.DOCUMENT else None),
            idempotency_key=row.idempotency_key,
        )
        try:
            if row.state == store.SENDING and row.sending_since is not None:
                found = await self._sms.find_sent(sms, row.sending_since - HISTORY_SKEW)
                if found is not None:
                    self._sent(row, found.provider_id, recovered=True)
                    return
            with self._engine.begin() as conn:
                if not store.mark_sending(conn, row.id, row.updated_at, now, now + self._claim):
                    return  # cancelled by a re-plan meanwhile, or another instance has it
            receipt = await self._sms.send(sms)
        except TransientUpstreamError as exc:
            self._later(row, str(exc))
            return
        except GatewayError as exc:
            self._finish(row, store.DEAD, "", f"the SMS provider refused: {exc}", attempted=True)
            return
        self._sent(row, receipt.provider_id, recovered=False)

    def _sent(self, row: store.Due, provider_id: str, *, recovered: bool) -> None:
        with self._engine.begin() as conn:
            store.mark_sent(conn, row.id, provider_id, self._now())
        log.info("notifier.sent", notification=row.id, kind=row.kind.value, recovered=recovered)

    def _finish(
        self, row: store.Due, state: str, rules: str, reason: str, *, attempted: bool = False
    ) -> None:
        with self._engine.begin() as conn:
            store.mark_not_sent(conn, row.id, state, rules, reason, self._now(), attempted=attempted)
        log.info("notifier.not_sent", notification=row.id, kind=row.kind.value, state=state, rules=rules)

    def _later(self, row: store.Due, error: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            self._finish(row, store.DEAD, "", f"gave up after {attempts} attempts: {error}", attempted=True)
            return
        step = min(self._backoff_max, self._backoff_initial * 2 ** (attempts - 1))
        now = self._now()
        at = now + timedelta(seconds=step / 2 + random.uniform(0, step / 2))
        with self._engine.begin() as conn:
            store.retry_later(conn, row.id, at, error, now)
        log.warning("notifier.retry_later", notification=row.id, attempts=attempts, error=error)
