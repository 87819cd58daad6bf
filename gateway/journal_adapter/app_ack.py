"""Enhanced mode's application ACK (MSH-16; docs/hl7-profile.md 5.4): what it says, and its
delivery to the sender's MLLP endpoint.

The ACK is made from the stored message and its state after processing: AA when processed (or a
duplicate of one that was), AE with ERR naming what was wrong when the content was (found again
by the same translation the intake ran, so the ERR is the one an original-mode sender gets), AE
with ``207`` when processing failed. It asks the sender for a commit ACK (MSH-15 ``AL``,
MSH-16 ``NE``), so a ``CA`` (or an ``AA`` from a sender in original mode) confirms delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.errors import InboundError, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import AckCode, build_ack
from gateway.journal_adapter.header import Header, ack_wanted, check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.journal_adapter.mllp import MllpClient
from gateway.journal_adapter.senders import header_for_nack
from gateway.mappings import Mappings
from gateway.store.inbox import FAILED, REJECTED


@dataclass(frozen=True, slots=True)
class ApplicationAck:
    code: AckCode
    text: str
    codec: str
    #: MSH-16 of the message asks for this ACK (AL; ER for AE/AR; SU for AA).
    wanted: bool


def application_ack(
    raw: bytes, state: str, message_id: int, mappings: Mappings, now: datetime, sender: tuple[str, str]
) -> ApplicationAck | None:
    """The application ACK for a stored message in ``state``; None if its MSH cannot be read
    (it then got no CA, so none is owed)."""
    code: AckCode = "AA"
    error: InboundError | None = None
    declared = ""
    try:
        text, declared = er7.decode(raw)
        msg = er7.parse(text)
        header = read_header(msg)
    except InboundError as exc:
        # Bytes not in the declared character set, a broken later segment: the intake stored it
        # as rejected with CA, from its MSH line alone; the AE says what was wrong, as ever.
        found = header_for_nack(raw)
        if found is None:
            return None
        header, code, error = found, "AE", exc
    if error is None and state == REJECTED:
        code, error = _content_error(msg, header, mappings)
    elif error is None and state == FAILED:
        code = "AE"
        error = InboundError(
            "the message could not be processed; the region sees why in its message browser "
            f"(message {message_id})"
        )
    ack = build_ack(code, header, now, sender=sender, error=error, ask_commit=True)
    codec = er7.CHARSETS.get(declared.upper(), "utf-8")
    return ApplicationAck(code, ack, codec, ack_wanted(header.application_ack_type, code))


def _content_error(msg: er7.Message, header: Header, mappings: Mappings) -> tuple[AckCode, InboundError]:
    try:
        check_header(header)
        translate(msg, header, mappings)
    except UnsupportedMessage as exc:
        return "AR", exc
    except InboundError as exc:
        return "AE", exc
    return "AE", InboundError("the message was not taken")  # rejected for a reason no longer found


async def deliver(endpoint: str, payload: bytes, *, timeout: float) -> str:
    """Send one ACK to ``host:port`` over MLLP and return MSA-1 of the sender's answer."""
    host, _, port = endpoint.rpartition(":")
    async with MllpClient(host.strip("[]"), int(port), timeout=timeout) as client:
        reply = await client.send(payload)
    for line in reply.decode("latin-1").replace("\n", "\r").split("\r"):
        if line.startswith("MSA"):
            fields = line.split(line[3:4] or "|")
            return fields[1] if len(fields) > 1 else ""
    return ""
