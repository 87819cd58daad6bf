"""The MSH of an inbound message: what it says (:class:`Header`) and whether it is taken at all.

:func:`check_header` decides AR (not taken) before the content is looked at, for every message
type the profile takes (``docs/hl7-profile.md``): SIU bookings and MDM e-documents. Which
trigger means what is here too, so the AR check and the translators (``siu.py``, ``mdm.py``)
cannot disagree about which events are taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.domain.booking import BookingAction
from gateway.domain.letter import DocumentAction
from gateway.errors import Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter.er7 import DEFAULT_DELIMITERS, Message, reencode

#: The versions named in the profile; any other v2.3-v2.9 minor version (2.8.2, 2.9.1) is taken
#: too, by :data:`READABLE_VERSION`: HL7 v2 is read forward-compatibly (what a later version adds
#: is ignored), and the fields the profile reads mean the same from 2.3 to 2.9.
SUPPORTED_VERSIONS = (
    "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9",
)  # fmt: skip
READABLE_VERSION = re.compile(r"2\.[3-9](?:\.[0-9]{1,2})?")
#: MSH-15/MSH-16 (HL7 table 0155): AL always, NE never, ER on error/reject only, SU on success only.
ACK_CONDITIONS = ("AL", "NE", "ER", "SU")
_CONDITIONS_OR_EMPTY = frozenset((*ACK_CONDITIONS, ""))
#: MSH-11.1 (HL7 table 0103) taken: a production gateway takes production messages only, not
#: T (training/test) or D (debugging).
PROCESSING_ID = "P"

#: SIU trigger events (MSH-9.2) taken, and what each does to a booking.
SIU_TRIGGERS: dict[str, BookingAction] = {
    "S12": BookingAction.NEW,
    "S13": BookingAction.RESCHEDULE,
    "S14": BookingAction.MODIFY,
    "S15": BookingAction.CANCEL,
    "S16": BookingAction.DISCONTINUE,
    "S17": BookingAction.DELETE,
    "S26": BookingAction.NOSHOW,
}

#: MDM trigger events taken: T02 a new document, T10 a new version of one (same TXA-12).
MDM_TRIGGERS: dict[str, DocumentAction] = {
    "T02": DocumentAction.NEW,
    "T10": DocumentAction.REPLACE,
}

#: Message types (MSH-9.1) taken, each with its trigger events.
TAKEN: dict[str, tuple[str, ...]] = {"SIU": tuple(SIU_TRIGGERS), "MDM": tuple(MDM_TRIGGERS)}


@dataclass(frozen=True, slots=True)
class Header:
    """What the MSH tells about a message; read before anything else can fail."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str
    trigger: str
    version: str
    processing_id: str
    charset: str
    #: MSH-3 and MSH-4 whole (every HD component), in the gateway's own delimiters, for the
    #: ACK's MSH-5/MSH-6 to echo.
    sending_application_whole: str = ""
    sending_facility_whole: str = ""
    #: MSH-15 accept and MSH-16 application acknowledgment type ('' when not sent: original mode).
    accept_ack_type: str = ""
    application_ack_type: str = ""

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: the sender filled MSH-15 or MSH-16 from table 0155.
        A value outside it gets an original-mode AE (:func:`check_header`)."""
        accept, application = self.accept_ack_type, self.application_ack_type
        valid = accept in _CONDITIONS_OR_EMPTY and application in _CONDITIONS_OR_EMPTY
        return valid and bool(accept or application)


def ack_wanted(condition: str, code: str) -> bool:
    """Whether an enhanced-mode ACK with ``code`` is sent under MSH-15/MSH-16 ``condition``
    (table 0155): AL always, NE never, ER only for an error or reject, SU only for success. An
    empty MSH-15 beside a filled MSH-16 is read as AL (the sender is in enhanced mode)."""
    if condition in ("", "AL"):
        return True
    if condition == "NE":
        return False
    success = code in ("AA", "CA")
    return success if condition == "SU" else not success


def version_taken(version: str) -> bool:
    return READABLE_VERSION.fullmatch(version) is not None


def read_header(msg: Message) -> Header:
    msh = msg.msh
    return Header(
        sending_application=msh.get(3),
        sending_facility=msh.get(4),
        receiving_application=msh.get(5),
        receiving_facility=msh.get(6),
        control_id=msh.get(10),
        message_type=msh.get(9, 1),
        trigger=msh.get(9, 2),
        version=msh.get(12, 1),
        processing_id=msh.get(11, 1) or "P",
        charset=msh.get(18, 1),
        sending_application_whole=reencode(msh.raw(3), msg.delimiters, DEFAULT_DELIMITERS),
        sending_facility_whole=reencode(msh.raw(4), msg.delimiters, DEFAULT_DELIMITERS),
        accept_ack_type=msh.get(15).strip().upper(),
        application_ack_type=msh.get(16).strip().upper(),
    )


def check_header(header: Header) -> None:
    """Checks that decide AR (not taken at all) before the content is looked at."""
    if not header.control_id:
        raise MalformedMessage("MSH-10 message control id is missing", Location("MSH", 10), code="101")
    if not version_taken(header.version):
        raise UnsupportedMessage(
            f"HL7 version {header.version!r} is not supported (2.3 to 2.9)",
            Location("MSH", 12),
            code="203",
        )
    for number, value in ((15, header.accept_ack_type), (16, header.application_ack_type)):
        if value and value not in ACK_CONDITIONS:
            raise MalformedMessage(
                f"MSH-{number} acknowledgment type {value!r} is not AL, NE, ER or SU",
                Location("MSH", number),
                code="103",
            )
    if header.processing_id != PROCESSING_ID:
        raise UnsupportedMessage(
            f"processing id {header.processing_id!r} is not taken here (P, production, only)",
            Location("MSH", 11),
            code="202",
        )
    triggers = TAKEN.get(header.message_type)
    if triggers is None:
        raise UnsupportedMessage(
            f"message type {header.message_type or '(empty)'} is not taken here (SIU or MDM only)",
            Location("MSH", 9, 1),
            code="200",
        )
    if header.trigger not in triggers:
        raise UnsupportedMessage(
            f"trigger event {header.trigger or '(empty)'} is not taken ({', '.join(triggers)})",
            Location("MSH", 9, 2),
            code="201",
        )
