"""One intake pipeline for both transports (MLLP and HTTP).

decode -> parse -> sender allowed (AR) -> check header (AR) -> translate (AE) -> store durably -> ACK.
Translation runs before the ACK so a journal learns at once what is wrong with a message;
the slower work (the FHIR resource, later the register lookup) runs in the processing worker
from the stored raw bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway import metrics
from gateway.errors import InboundError, StoreError, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import AckCode, build_ack
from gateway.journal_adapter.header import Header, ack_wanted, check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.journal_adapter.senders import SenderAllowlist, header_for_nack
from gateway.mappings import Mappings
from gateway.store.inbox import RECEIVED, REJECTED, InboundRecord, Inbox, Stored

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    ack: bytes
    ack_code: AckCode
    message_id: int | None
    duplicate_of: int | None
    codec: str


class Intake:
    def __init__(
        self,
        mappings: Mappings,
        inbox: Inbox,
        *,
        sender: tuple[str, str] = ("GATEWAY", "REGION"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        allowed_senders: Iterable[str] = (),
    ) -> None:
        self._mappings = mappings
        self._inbox = inbox
        self._sender = sender
        self._clock = clock
        senders = list(allowed_senders)
        self._allowed = SenderAllowlist(senders) if senders else None

    async def handle(self, raw: bytes, *, transport: str, peer: str | None = None) -> IntakeResult:
        """Check, store durably and acknowledge one message (the HTTP transport, refresh)."""
        prepared = self._prepare(raw, transport, peer)
        try:
            stored: Stored | StoreError = await self._inbox.put(prepared.record)
        except StoreError as exc:
            stored = exc
        return self._finish(prepared, stored)

    def submit(
        self,
        raw: bytes,
        *,
        transport: str,
        peer: str | None,
        done: Callable[[IntakeResult | BaseException], None],
    ) -> None:
        """:meth:`handle` without a coroutine (the MLLP listener): ``done`` is called on this
        event loop's thread with the result once the message is stored, or with the exception
        that kept it from an ACK (a fault of ours; the connection ends, nothing was promised)."""
        prepared = self._prepare(raw, transport, peer)

        def settled(outcome: Stored | StoreError) -> None:
            try:
                result: IntakeResult | BaseException = self._finish(prepared, outcome)
            except Exception as exc:
                result = exc
            done(result)

        self._inbox.submit(prepared.record, settled)

    def _prepare(self, raw: bytes, transport: str, peer: str | None) -> _Prepared:
        """Everything before the store: decode, parse, check, translate, and the ACK to send."""
        started = time.perf_counter()
        now = self._clock()
        header: Header | None = None
        codec = "utf-8"
        patient: str | None = None
        try:
            text, declared = er7.decode(raw)
            codec = er7.CHARSETS.get(declared.upper(), "utf-8")
            msg = er7.parse(text)
            header = read_header(msg)
            if self._allowed is not None:
                self._allowed.check(header)
            check_header(header)
            event = translate(msg, header, self._mappings)  # a BookingEvent or a DocumentEvent
            patient = event.patient.value
            code: AckCode = "AA"
            error: InboundError | None = None
        except UnsupportedMessage as exc:
            code, error = "AR", exc
        except InboundError as exc:
            code, error = "AE", exc
            if header is None:
                header = header_for_nack(raw)
                if header is not None and self._allowed is not None:
                    try:
                        self._allowed.check(header)
                    except UnsupportedMessage as refused:  # whoever it is, it may not send here
                        code, error = "AR", refused
        stored_code: AckCode = code
        send = True
        if header is not None and header.enhanced:
            # Enhanced mode (docs/hl7-profile.md 5.4): the answer now is a commit ACK, CA once
            # stored (a content error too: its AE follows as the application ACK) or CR for a
            # message not taken; AA/AE come later, after processing, to the sender's endpoint.
            stored_code = "CR" if code == "AR" else "CA"
            ack_text = build_ack(
                stored_code, header, now, sender=self._sender, error=error if stored_code == "CR" else None
            )
            # MLLP sends nothing when MSH-15 asks for none; HTTP must answer, and always does.
            send = transport != "mllp" or ack_wanted(header.accept_ack_type, stored_code)
        else:
            ack_text = build_ack(code, header, now, sender=self._sender, error=error)
        record = InboundRecord(
            received_at=now,
            transport=transport,
            peer=peer,
            sending_application=header.sending_application if header else "",
            sending_facility=header.sending_facility if header else "",
            control_id=header.control_id if header else "",
            message_type=header.message_type if header else "",
            trigger=header.trigger if header else "",
            version=header.version if header else "",
            charset=header.charset if header else "",
            patient=patient,
            raw=raw,
            state=RECEIVED if error is None else REJECTED,
            error=str(error) if error is not None else None,
            ack_code=stored_code,
            ack=ack_text,
        )
        metrics.message_received(transport, record.message_type, record.trigger)
        return _Prepared(record, header, code, codec, now, started, stored_code, send)

    def _finish(self, prepared: _Prepared, stored: Stored | StoreError) -> IntakeResult:
        record, code, codec = prepared.record, prepared.code, prepared.codec
        if isinstance(stored, StoreError):
            # Not stored, so not accepted. AR, not AE: the failure is ours, not the content's
            # (HL7 table 0008), so the journal sends the same message again.
            failure = InboundError(f"{stored}; send the message again")  # HL7 0357 code 207
            header = prepared.header
            failed: AckCode = "CE" if header is not None and header.enhanced else "AR"
            ack_text = build_ack(failed, header, prepared.now, sender=self._sender, error=failure)
            log.error("intake.store_failed", transport=record.transport, control_id=record.control_id)
            quiet = failed == "CE" and header is not None and not ack_wanted(header.accept_ack_type, failed)
            self._count(prepared, failed)
            if quiet and record.transport == "mllp":
                return IntakeResult(b"", failed, None, None, codec)
            return IntakeResult(_encode(ack_text, codec), failed, None, None, codec)
        # Every message and its ACK are stored and shown by GET /messages; the log line for
        # an accepted one is DEBUG, so a busy journal's traffic does not flood the log. What
        # needs someone's attention (AE, AR) stays INFO.
        # message_id joins this line to the worker's lines about the message (its own process).
        with structlog.contextvars.bound_contextvars(message_id=stored.id, control_id=record.control_id):
            (log.debug if code == "AA" else log.info)(
                "intake.acknowledged",
                transport=record.transport,
                trigger=record.trigger,
                ack=prepared.sent_code,
                duplicate_of=stored.duplicate_of,
                error=record.error,
            )
        self._count(prepared, prepared.sent_code)
        # An empty answer: enhanced mode, and MSH-15 asks for no commit ACK (MLLP sends none).
        ack = _encode(record.ack, codec) if prepared.send else b""
        return IntakeResult(ack, prepared.sent_code, stored.id, stored.duplicate_of, codec)

    @staticmethod
    def _count(prepared: _Prepared, code: str) -> None:
        record = prepared.record
        seconds = time.perf_counter() - prepared.started
        metrics.message_acknowledged(record.transport, record.message_type, record.trigger, code, seconds)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A message checked and ready to store, with what its ACK needs afterwards."""

    record: InboundRecord
    header: Header | None
    code: AckCode
    codec: str
    now: datetime
    started: float  # perf_counter when read, for the ACK latency
    #: The ACK code answered now (a commit code in enhanced mode), and whether it is sent.
    sent_code: AckCode = "AA"
    send: bool = True


def _encode(text: str, codec: str) -> bytes:
    return text.encode(codec, errors="replace")
