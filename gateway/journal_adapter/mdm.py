"""MDM document messages (T02 new, T10 replacement) to domain DocumentEvents.

The profile is in ``docs/hl7-profile.md`` (section 10). Segments read: PID (the patient, as
for SIU), PV1 (optional: the unit), TXA (the document's identity), OBX (text and attachments,
in message order). Every problem raises a MalformedMessage naming the segment and field (and,
for OBX, which one), so the journal gets an AE with an ERR segment it can act on.
"""

from __future__ import annotations

import base64
import binascii

from gateway.domain.identity import is_hsa_id
from gateway.domain.letter import Attachment, DocumentEvent, JournalDocumentType
from gateway.errors import Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter.er7 import Message, Segment, component_of, unescape
from gateway.journal_adapter.header import MDM_TRIGGERS, Header
from gateway.journal_adapter.siu import read_patient
from gateway.journal_adapter.timestamps import parse_dtm
from gateway.mappings import Mappings

#: OBX-2 value types that carry the letter's text.
TEXT_TYPES = ("TX", "FT")
#: OBX-2 value type of an attachment (bilaga).
ATTACHMENT_TYPE = "ED"
PDF = "application/pdf"
_PDF_SUBTYPES = ("PDF", "APPLICATION/PDF")
_DEFAULT_TITLES = {JournalDocumentType.KALLELSE: "Kallelse", JournalDocumentType.BREV: "Brev"}


def _require(segment: Segment | None, name: str) -> Segment:
    if segment is None:
        raise MalformedMessage(f"segment {name} is missing", Location(name), code="100")
    return segment


def to_document_event(msg: Message, header: Header, mappings: Mappings) -> DocumentEvent:
    """Translate a checked MDM message to a DocumentEvent, or raise naming what is wrong."""
    action = MDM_TRIGGERS.get(header.trigger)
    if header.message_type != "MDM" or action is None:
        raise UnsupportedMessage(
            f"{header.message_type}^{header.trigger} is not an MDM document message",
            Location("MSH", 9),
            code="200",
        )
    pid = _require(msg.first("PID"), "PID")
    txa = _require(msg.first("TXA"), "TXA")

    document_type = _document_type(txa)
    document_number = txa.get(12, 1)
    if not document_number:
        raise MalformedMessage("TXA-12 unique document number is missing", Location("TXA", 12, 1), code="101")
    # As SCH-2 for bookings: EI.3 if sent, else EI.2, else MSH-3, so that a kallelse's TXA-13
    # and its booking's SCH-2 name the booking the same way.
    namespace = txa.get(12, 3) or txa.get(12, 2) or header.sending_application
    booking_id = _booking_id(txa, namespace) if document_type is JournalDocumentType.KALLELSE else None
    patient = read_patient(pid, mappings)

    written_at = None
    for field in (6, 4):  # origination date/time, else activity date/time
        if txa.get(field, 1):
            written_at = parse_dtm(txa.get(field, 1), Location("TXA", field))
            break
    author = " ".join(p for p in (txa.get(9, 3), txa.get(9, 2)) if p) or None

    pv1 = msg.first("PV1")
    # Only a value of the HSA-id form is the unit's HSA-id (it reaches the Communication as one,
    # and unit exceptions are keyed on it); the sender's own unit codes are not (issue 17).
    unit_id = pv1.get(3, 1) if pv1 is not None else ""
    unit_hsa_id = unit_id if is_hsa_id(unit_id) else None
    unit_name = (pv1.get(3, 9) or None) if pv1 is not None else None

    obx = msg.all("OBX")
    title, text = _text(obx)
    return DocumentEvent(
        action=action,
        namespace=namespace,
        document_number=document_number,
        document_type=document_type,
        patient=patient,
        title=title or _DEFAULT_TITLES[document_type],
        text=text,
        written_at=written_at,
        booking_id=booking_id,
        unit_hsa_id=unit_hsa_id,
        unit_name=unit_name,
        author=author,
        attachments=_attachments(obx),
    )


def _document_type(txa: Segment) -> JournalDocumentType:
    value = txa.get(2, 1)
    if not value:
        raise MalformedMessage(
            "TXA-2 document type is missing (KALLELSE or BREV)", Location("TXA", 2), code="101"
        )
    try:
        return JournalDocumentType(value.strip().upper())
    except ValueError:
        raise MalformedMessage(
            f"TXA-2 document type {value!r} is not taken (KALLELSE or BREV)", Location("TXA", 2), code="103"
        ) from None


def _booking_id(txa: Segment, namespace: str) -> str:
    """TXA-13, the booking a kallelse is about: its SCH-2 booking id, in the document's namespace."""
    booking_id = txa.get(13, 1)
    if not booking_id:
        raise MalformedMessage(
            "TXA-13 booking id (the booking's SCH-2) is missing; a KALLELSE needs it",
            Location("TXA", 13, 1),
            code="101",
        )
    stated = txa.get(13, 3) or txa.get(13, 2)
    if stated and stated != namespace:
        # The domain keys a kallelse's booking by the document's namespace; a different one
        # would silently point at no booking (or the wrong one).
        raise MalformedMessage(
            f"TXA-13 names namespace {stated!r} but TXA-12 {namespace!r}; send both the same way",
            Location("TXA", 13, 2),
            code="102",
        )
    return booking_id


def _text(obx: list[Segment]) -> tuple[str | None, str]:
    """The letter's title and text from every TX/FT OBX in order. Each OBX and each OBX-5
    repetition starts a new line; in FT, ``\\.br\\`` and ``\\.sp\\`` break lines too."""
    title: str | None = None
    lines: list[str] = []
    for seg in obx:
        value_type = seg.get(2, 1).upper()
        if value_type not in TEXT_TYPES:
            continue
        if title is None:
            title = seg.get(3, 2) or None
            if title is not None:
                title = title.strip() or None
        # The whole repetition, not component 1: text is one value, and a stray unescaped
        # ^ or & from a sender is kept as text rather than cutting the letter short.
        formatted = value_type == "FT"
        lines.extend(unescape(rep, seg.delimiters, formatted=formatted) for rep in _reps(seg, 5))
    text = "\n".join(lines)
    if not text.strip():
        raise MalformedMessage(
            "the document has no text (no OBX with value type TX or FT and a value in OBX-5)",
            Location("OBX", 5),
            code="101",
        )
    return title, text


def _reps(seg: Segment, field: int) -> list[str]:
    raw = seg.raw(field)
    return raw.split(seg.delimiters.repetition) if raw else [""]


def _attachments(obx: list[Segment]) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    for sequence, seg in enumerate(obx, start=1):
        if seg.get(2, 1).upper() != ATTACHMENT_TYPE:
            continue
        out.append(_attachment(seg, sequence, len(out) + 1))
    return tuple(out)


def _attachment(seg: Segment, sequence: int, number: int) -> Attachment:
    """OBX-5 ED: source^type^subtype^encoding^data; only a base64 PDF is taken."""

    def where(component: int | None = None) -> Location:
        return Location("OBX", 5, component, sequence=sequence)

    raw = seg.raw(5).split(seg.delimiters.repetition, 1)[0]
    if not raw:
        raise MalformedMessage(f"OBX {sequence}: OBX-5 attachment (ED) is empty", where(), code="101")
    d = seg.delimiters
    subtype = component_of(raw, d, 3).strip()
    if subtype.upper() not in _PDF_SUBTYPES:
        raise MalformedMessage(
            f"OBX {sequence}: attachment subtype {subtype or '(empty)'!r} is not taken (PDF only)",
            where(3),
            code="103",
        )
    encoding = component_of(raw, d, 4).strip()
    if encoding.upper() != "BASE64":
        raise MalformedMessage(
            f"OBX {sequence}: attachment encoding {encoding or '(empty)'!r} is not taken (Base64 only)",
            where(4),
            code="103",
        )
    encoded = component_of(raw, d, 5)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedMessage(
            f"OBX {sequence}: attachment is not valid base64", where(5), code="102"
        ) from exc
    if not data.startswith(b"%PDF-"):
        raise MalformedMessage(
            f"OBX {sequence}: attachment is not a PDF (does not start with %PDF-)", where(5), code="102"
        )
    filename = seg.get(3, 2).strip() or f"bilaga-{number}.pdf"
    return Attachment(filename=filename, content_type=PDF, data=data)
