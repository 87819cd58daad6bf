"""TakeCare XChange ``GetBookings``: the inner ``ProfdocHISMessage`` documents, as pure functions.

The SOAP operation (``booking_service.py``) carries an XML document *as text* in its ``xml``
parameter and answers a string holding another one (``docs/journal-ws.md``; the facts in
``../shared/contracts/takecare-xchange-booking/FACTS.md``). This module builds the request
document and reads the answer, with no I/O:

- request: ``ProfdocHISMessage MsgType="Request" Time="yyyyMMddHHmmss" InvokingSystem=...`` with
  ``PatientId``, ``CareUnitIdType``, ``CareUnitId`` (no namespace, no date range);
- answer: ``MsgType="Response"`` with ``Bookings`` (any number of ``Booking``), or
  ``MsgType="Error"`` with ``Error Type=...`` / ``Code`` (a number) / ``Msg``.

The answer is read leniently (no namespace expected, element order free, unknown elements
ignored) but never trusted: a DOCTYPE or entity is refused, times must be the published numbers
(``yyyyMMddHHmm``, Swedish local time, DST by ``Europe/Stockholm``), a booking for another patient
is refused, and a time type id missing from the instance's table maps to no time type (hidden,
R-BK-1). The answer has no booking status: every booking it holds is booked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.timestamps import STOCKHOLM

ROOT = "ProfdocHISMessage"

#: ``Resource/ResourceType`` of a named resource (a person: "namngiven resurs"); the other
#: published kinds (0 inactive, 2 position, 3 bed, 4 room) are not practitioners.
NAMED_RESOURCE = "1"

# Safe parser: no DTD, no entities resolved, no network, no huge trees.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)
_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")
_LOCAL_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?$")


class AnswerError(PermanentUpstreamError):
    """The answer document breaks the published contract (asking again gets the same)."""


@dataclass(frozen=True, slots=True)
class JournalErrorEntry:
    """One ``Error`` of an error document: ``Type`` attribute, numeric ``Code``, ``Msg``."""

    type: str
    code: str
    msg: str


class JournalErrorAnswer(PermanentUpstreamError):
    """The journal answered an error document; ``errors`` as it said them."""

    def __init__(self, message: str, errors: tuple[JournalErrorEntry, ...]) -> None:
        super().__init__(message)
        self.errors = errors


class TransientJournalErrorAnswer(TransientUpstreamError):
    """An error document whose every code is configured as transient (worth asking again)."""

    def __init__(self, message: str, errors: tuple[JournalErrorEntry, ...]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True, slots=True)
class BookingsAnswer:
    """What one ``GetBookings`` answer said."""

    bookings: tuple[JournalBooking, ...]
    system: str | None
    system_instance: str | None
    #: TimeTypeIds the instance's table does not know (their bookings stay hidden, R-BK-1).
    unknown_time_type_ids: tuple[str, ...] = ()


def local_stamp(moment: datetime, *, seconds: bool) -> str:
    """``yyyyMMddHHmm[ss]`` in Swedish local time, as the service writes and reads times."""
    local = moment.astimezone(STOCKHOLM) if moment.tzinfo is not None else moment
    return local.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M")


def parse_local_time(text: str) -> datetime:
    """``yyyyMMddHHmm`` (seconds tolerated) in Swedish local time -> an aware UTC datetime.

    Converted to UTC at once: arithmetic on datetimes sharing a zone is wall-clock arithmetic in
    Python, so a duration across a DST change would be an hour off. In the autumn's repeated
    hour the first (summer time) reading is taken, as ``zoneinfo`` does with ``fold=0``.
    """
    match = _LOCAL_TIME.match(text.strip())
    if match is None:
        raise ValueError(f"time {text.strip()[:20]!r} is not yyyyMMddHHmm")
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    local = datetime(year, month, day, hour, minute, second, tzinfo=STOCKHOLM)
    return local.astimezone(UTC)


def build_request(
    patient_id: str | None,
    *,
    care_unit_id_type: str,
    care_unit_id: str,
    invoking_system: str,
    now: datetime,
) -> str:
    """The ``GetBookings`` request document as text (the SOAP layer escapes it into ``xml``)."""
    root = etree.Element(ROOT)
    root.set("MsgType", "Request")
    root.set("Time", local_stamp(now, seconds=True))
    root.set("InvokingSystem", invoking_system)
    if patient_id is not None:
        etree.SubElement(root, "PatientId").text = patient_id
    etree.SubElement(root, "CareUnitIdType").text = care_unit_id_type
    etree.SubElement(root, "CareUnitId").text = care_unit_id
    return str(etree.tostring(root, encoding="unicode"))


def parse_document(text: str) -> etree._Element:
    """A ``ProfdocHISMessage`` from text: safe, lenient about an XML declaration and a namespace."""
    if not text or not text.strip():
        raise AnswerError("the answer is empty")
    # lxml refuses a str with an encoding declaration; the text is already decoded, so drop it.
    body = _DECLARATION.sub("", text, count=1)
    try:
        doc = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise AnswerError(f"the answer is not well-formed XML ({exc})") from exc
    tree = doc.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.system_url or tree.docinfo.public_id:
        raise AnswerError("the answer holds a DOCTYPE (refused: no DTDs or entities)")
    if _local(doc) != ROOT:
        raise AnswerError(f"the answer's root is {_local(doc)!r}, not {ROOT}")
    return doc


def read_answer(
    text: str,
    patient: PersonId,
    time_type_ids: Mapping[str, str],
    *,
    transient_codes: Collection[str] = (),
    what: str = "journal-ws: GetBookings",
) -> BookingsAnswer:
    """The bookings of a ``GetBookings`` answer, or its error document as a gateway error.

    Raises :class:`JournalErrorAnswer` (permanent) or :class:`TransientJournalErrorAnswer` (every
    code in ``transient_codes``) for an error document, :class:`AnswerError` for a document that
    breaks the contract. Error texts name codes and booking ids, never the personnummer.
    """
    doc = parse_document(text)
    msg_type = (doc.get("MsgType") or "").strip()
    errors = [el for el in doc if _local(el) == "Error"]
    if msg_type.lower() == "error" or errors:
        raise _error_answer(errors, transient_codes, what)
    if msg_type.lower() != "response":
        raise AnswerError(f"{what}: answer MsgType {msg_type!r} is neither Response nor Error")
    bookings: list[JournalBooking] = []
    unknown: list[str] = []
    try:
        for container in (el for el in doc if _local(el) == "Bookings"):
            unit = _unit(container)
            for item in (el for el in container if _local(el) == "Booking"):
                booking, unknown_id = _booking(item, patient, unit, time_type_ids)
                bookings.append(booking)
                if unknown_id is not None and unknown_id not in unknown:
                    unknown.append(unknown_id)
    except (ValueError, TypeError) as exc:
        raise AnswerError(f"{what}: a booking breaks the contract ({exc})") from exc
    return BookingsAnswer(
        bookings=tuple(bookings),
        system=doc.get("System"),
        system_instance=doc.get("SystemInstance"),
        unknown_time_type_ids=tuple(unknown),
    )


def _error_answer(
    errors: list[etree._Element], transient_codes: Collection[str], what: str
) -> JournalErrorAnswer | TransientJournalErrorAnswer:
    entries = tuple(
        JournalErrorEntry(
            type=(el.get("Type") or "").strip(),
            code=(_child_text(el, "Code") or "").strip(),
            msg=" ".join((_child_text(el, "Msg") or "").split())[:200],
        )
        for el in errors
    )
    if not entries:
        return JournalErrorAnswer(f"{what}: journal answered an error document without Error", ())
    said = "; ".join(
        f"Error {e.code or '(no code)'}"
        + (f" ({e.type})" if e.type else "")
        + (f": {e.msg}" if e.msg else "")
        for e in entries
    )
    message = f"{what}: journal answered {said}"
    if all(e.code and e.code in transient_codes for e in entries):
        return TransientJournalErrorAnswer(message, entries)
    return JournalErrorAnswer(message, entries)


def _said(entry: JournalErrorEntry) -> str:
    kind = f" ({entry.type})" if entry.type else ""
    return f"Error {entry.code or '(no code)'}{kind}" + (f": {entry.msg}" if entry.msg else "")


def _unit(container: etree._Element) -> Resource | None:
    unit_id = (container.get("CareUnitId") or "").strip() or None
    name = (container.get("CareUnitName") or "").strip() or None
    if unit_id is None and name is None:
        return None
    return Resource(unit_id, name)


def _booking(
    item: etree._Element, patient: PersonId, unit: Resource | None, time_type_ids: Mapping[str, str]
) -> tuple[JournalBooking, str | None]:
    booking_id = (_child_text(item, "BookingId") or "").strip()
    if not booking_id:
        raise ValueError("a booking has no BookingId")
    answered_patient = (_child_text(item, "PatientId") or "").strip().replace("-", "")
    if answered_patient and answered_patient != patient.value:
        # Never file someone else's booking under this patient.
        raise ValueError(f"booking {booking_id} is for another patient")
    start = parse_local_time(_required(item, "StartTime", booking_id))
    end = parse_local_time(_required(item, "EndTime", booking_id))
    if end <= start:
        raise ValueError(f"booking {booking_id} ends before it starts")
    raw_type = (_child_text(item, "TimeTypeId") or "").strip()
    time_type: str | None = None
    unknown: str | None = None
    if raw_type:
        if not raw_type.lstrip("-").isdigit():
            raise ValueError(f"booking {booking_id} has a TimeTypeId that is not a number")
        time_type = time_type_ids.get(str(int(raw_type)))
        if time_type is None:
            unknown = raw_type
    practitioners: list[Resource] = []
    for resources in (el for el in item if _local(el) == "Resources"):
        for res in (el for el in resources if _local(el) == "Resource"):
            kind = (_child_text(res, "ResourceType") or "").strip()
            name = " ".join((_child_text(res, "ResourceName") or "").split()) or None
            if kind == NAMED_RESOURCE and name:
                # ResourceId is the journal's own number, not an HSA-id: the name alone travels.
                practitioners.append(Resource(None, name))
    reason = (_child_text(item, "PatientReason") or "").strip() or None
    booking = JournalBooking(
        booking_id=booking_id,
        patient_id=answered_patient or patient.value,
        start=start,
        end=end,
        status=JournalStatus.BOOKED,  # no status in the answer: a returned booking exists
        time_type=time_type,
        time_type_name=(_child_text(item, "TimeTypeName") or "").strip() or None,
        reason=reason,
        practitioners=tuple(practitioners),
        units=(unit,) if unit is not None else (),
        cancel_allowed=_flag(_child_text(item, "CancelAllowed")),
        reschedule_allowed=_flag(_child_text(item, "RescheduleAllowed")),
    )
    return booking, unknown


def _flag(text: str | None) -> bool | None:
    """``0``/``1`` (also ``true``/``false``); absent or anything else: not said."""
    value = (text or "").strip().lower()
    return {"1": True, "true": True, "0": False, "false": False}.get(value)


def _required(item: etree._Element, name: str, booking_id: str) -> str:
    text = (_child_text(item, name) or "").strip()
    if not text:
        raise ValueError(f"booking {booking_id} has no {name}")
    return text


def _child_text(parent: etree._Element, name: str) -> str | None:
    for child in parent:
        if _local(child) == name:
            return str(child.text) if child.text is not None else ""
    return None


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # a comment or processing instruction
        return ""
    return str(etree.QName(tag).localname)
