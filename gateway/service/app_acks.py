"""Enhanced acknowledgement mode's application ACKs, delivered durably (docs/hl7-profile.md 5.4).

A sender that fills MSH-15/MSH-16 gets a commit ACK (CA/CE/CR) from the intake once its message
is stored. The application ACK (AA/AE/AR) follows after processing, to the sender's own MLLP
endpoint (``GATEWAY_HL7_APP_ACK_ENDPOINTS``, per ``APP|FACILITY``). Like the mailbox outbox
(``gateway/service/outbox.py``), it is a row before it is sent, so nothing is lost across restarts:

- **Owed**: every message given CA gets one row once it is settled (processed, failed, rejected,
  duplicate), made by :meth:`AppAckSender.collect`: ``pending``, or ``skipped`` when MSH-16 asks
  for none (NE; ER and AA; SU and AE), or ``unroutable`` when no endpoint is configured for the
  sender. The unique ``message_id`` makes two gateway instances agree.
- **Claimed** by a conditional update, so one instance sends each row; a claim that outlives its
  sender expires.
- **Retried** with exponential backoff (kept in ``next_attempt_at``) on a timeout, a refused
  connection or a ``CE``/``AE`` answer; ``refused`` on ``CR``/``AR`` (the sender will not take
  it); ``dead`` after ``max_attempts``. Original mode (no MSH-15/16) owes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine

from gateway.journal_adapter.app_ack import application_ack, deliver
from gateway.mappings import Mappings
from gateway.store import app_acks as store

log = structlog.get_logger(__name__)

_DELIVERED = ("CA", "AA")
_REFUSED = ("CR", "AR")


class AppAckSender:
    def __init__(
        self,
        engine: Engine,
        mappings: Mappings,
        endpoints: dict[str, str],
        *,
        sender: tuple[str, str] = ("GATEWAY", "REGION"),
        max_attempts: int = 10,
        backoff_initial: float = 5.0,
        backoff_max: float = 900.0,
        timeout: float = 10.0,
        batch_size: int = 50,
    ) -> None:
        self._engine = engine
        self._mappings = mappings
        self._endpoints = endpoints
        self._sender = sender
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.batch_size = batch_size
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        #: Every message up to this id has its row (or is not owed one): where collect starts.
        #: It passes a message only once that is settled and older than ``settle_lag``, so a
        #: message with a lower id committed later (PostgreSQL sequences) is not passed over.
        self._after = 0
        self.settle_lag = timedelta(seconds=60)

    def _endpoint(self, application: str, facility: str) -> str | None:
        return self._endpoints.get(f"{application}|{facility}") or self._endpoints.get(f"{application}|*")

    def collect(self) -> int:
        """Make the rows of settled messages given CA; return how many were made."""
        now = self.clock()
        made = 0
        with self._engine.connect() as conn:
            owed = store.owed(conn, self._after, self.batch_size)
        held = False  # the watermark stays before the first message not settled, or too recent
        for item in owed:
            settled = item.state in store.SETTLED
            held = held or not settled or item.received_at > now - self.settle_lag
            if not settled:
                continue  # still in processing: its ACK is not known yet
            ack = application_ack(item.raw, item.state, item.message_id, self._mappings, now, self._sender)
            endpoint = self._endpoint(item.sending_application, item.sending_facility)
            state = store.PENDING
            if ack is None or not ack.wanted:
                state = store.SKIPPED
            elif endpoint is None:
                state = store.UNROUTABLE
            made += store.add(
                self._engine,
                {
                    "message_id": item.message_id,
                    "sending_application": item.sending_application[:180],
                    "sending_facility": item.sending_facility[:180],
                    "endpoint": endpoint,
                    "ack_code": ack.code if ack else "",
                    "ack": ack.text if ack else "",
                    "charset": ack.codec if ack else "utf-8",
                    "state": state,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": "no endpoint configured for this sender"
                    if state == store.UNROUTABLE
                    else None,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if state == store.UNROUTABLE:
                log.warning(
                    "app_ack.unroutable",
                    message_id=item.message_id,
                    sender=f"{item.sending_application}|{item.sending_facility}",
                )
            if not held:
                self._after = item.message_id
        return made

    async def send_due(self) -> int:
        """Send the due rows; return how many were delivered."""
        now = self.clock()
        with self._engine.begin() as conn:
            due = store.claim_due(conn, now, now + timedelta(seconds=self.timeout * 3), self.batch_size)
        delivered = 0
        for row in due:
            delivered += await self._send(row)
        return delivered

    async def _send(self, row: store.Due) -> int:
        try:
            answer = await deliver(
                row.endpoint, row.ack.encode(row.charset, errors="replace"), timeout=self.timeout
            )
            error = None if answer in _DELIVERED else f"the sender answered {answer or 'without MSA'}"
        except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
            answer, error = "", f"{type(exc).__name__}: {exc}"
        now = self.clock()
        with self._engine.begin() as conn:
            if error is None:
                store.settle(conn, row.id, state=store.DELIVERED, now=now)
                log.info("app_ack.delivered", message_id=row.message_id, attempts=row.attempts)
                return 1
            if answer in _REFUSED:
                store.settle(conn, row.id, state=store.REFUSED, now=now, error=error)
            elif row.attempts >= self.max_attempts:
                store.settle(conn, row.id, state=store.DEAD, now=now, error=error)
            else:
                wait = min(self.backoff_max, self.backoff_initial * 2 ** (row.attempts - 1))
                store.settle(
                    conn,
                    row.id,
                    state=store.PENDING,
                    now=now,
                    error=error,
                    next_attempt_at=now + timedelta(seconds=wait),
                )
        log.warning("app_ack.not_delivered", message_id=row.message_id, attempts=row.attempts, error=error)
        return 0

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 0.5) -> None:
        """Collect and send until ``stop``; a fault of ours is logged and tried again next round."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.collect)
                await self.send_due()
            except Exception:
                log.exception("app_ack.round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
