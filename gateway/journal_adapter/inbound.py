"""One entry for every message the journal sends: a checked message to its domain event.

The intake (before the ACK) and the processing worker (from the stored bytes) both translate
through :func:`translate`, so they cannot disagree about what a message means.
"""

from __future__ import annotations

from gateway.domain.booking import BookingEvent
from gateway.domain.letter import DocumentEvent
from gateway.errors import Location, UnsupportedMessage
from gateway.journal_adapter.er7 import Message
from gateway.journal_adapter.header import Header
from gateway.journal_adapter.mdm import to_document_event
from gateway.journal_adapter.siu import to_booking_event
from gateway.mappings import Mappings

InboundEvent = BookingEvent | DocumentEvent


def translate(msg: Message, header: Header, mappings: Mappings) -> InboundEvent:
    """SIU to a BookingEvent, MDM to a DocumentEvent; the header must have passed check_header.

    Raises MalformedMessage (AE) naming what is wrong, or UnsupportedMessage (AR) for a message
    type neither takes.
    """
    if header.message_type == "SIU":
        return to_booking_event(msg, header, mappings)
    if header.message_type == "MDM":
        return to_document_event(msg, header, mappings)
    raise UnsupportedMessage(
        f"message type {header.message_type or '(empty)'} is not taken here (SIU or MDM only)",
        Location("MSH", 9, 1),
        code="200",
    )
