"""The simulated journal's booking web service: TakeCare XChange ``GetBookings`` as published (R-BK-4).

An ASMX-style SOAP 1.1 service in ``http://tempuri.org/`` (binding ``BookingSoap``, SOAPAction
``http://tempuri.org/GetBookings``), on the project's own WSDL
(``gateway/journal_adapter/wsdl/TakeCareBooking.wsdl``). The request's ``xml`` string carries an
escaped ``ProfdocHISMessage``; the answer's ``GetBookingsResult`` string holds another one:
``Bookings`` per care unit with numeric times (``yyyyMMddHHmm``, Swedish local time), numeric
time type ids (the ``SIM`` table of ``mappings/time_types.yaml``), numeric resource ids and no
status, or an error document (``MsgType="Error"``, ``Error Type`` / numeric ``Code`` / ``Msg``).

It checks what it receives as the real service would need it: the SOAPAction, the envelope
against the WSDL's schema, and the inner document (root, ``MsgType="Request"``, a 14-digit
``Time``, ``InvokingSystem``, ``CareUnitIdType`` and ``CareUnitId``); anything else gets a
``soap:Client`` fault saying what is wrong.

It answers from a :class:`~mocks.journal.book.JournalBook`, which the simulator keeps up to date
and tests change behind the gateway's back. A cancelled booking is not returned (the published
answer has no status: what it returns exists). ``switches`` make it slow, answer an error
document, fail with HTTP 500 or a SOAP fault, as a real journal sometimes does.

Serve it with ``mocks.runner.ServedApp(create_app(book, switches))``: ``POST`` takes the SOAP
request, ``GET ?wsdl`` gives the WSDL (with this server's address).
"""

from __future__ import annotations

import asyncio
import re
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import mappings as mapping_tables
from gateway.domain.booking import JournalBooking, JournalStatus
from gateway.journal_adapter.booking_service import WSDL_FILE
from gateway.journal_adapter.takecare_booking import NAMED_RESOURCE, local_stamp
from gateway.journal_adapter.timestamps import STOCKHOLM
from mocks.journal.book import JournalBook
from mocks.journal.calendar import CalendarError, JournalCalendar
from mocks.journal.simulator import TYPE_NAMES

NS = "http://tempuri.org/"
SOAP_ACTION = f"{NS}GetBookings"
#: The write operations the calendar answers (issue 21, docs/self-service.md), with the inner
#: request's children each may carry.
WRITE_CHILDREN = {
    "GetTimeTypes": set(),
    "GetAvailableDates": {"TimeTypeId", "StartDate", "EndDate"},
    "GetAvailableTimeslots": {"TimeTypeId", "StartDate", "EndDate"},
    "MakeBooking": {"PatientId", "StartTime", "EndTime", "TimeTypeId", "ResourceId", "PatientReason"},
    "RescheduleBooking": {"PatientId", "BookingId", "StartTime", "EndTime"},
    "CancelBooking": {"PatientId", "BookingId", "CancelReason"},
}
#: Called with the SIU messages a change made, to push them over MLLP as a journal does.
Pusher = Callable[[list[bytes]], Awaitable[None]]
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
INSTANCE = "SIM"  # the time-type id table this journal numbers by
CARE_UNIT_ID_TYPE = "HSAID"

# Error document Codes of this mock (the published contract lists none; docs/journal-ws.md).
PATIENT_NOT_FOUND = "1001"
INVALID_PATIENT_ID = "1002"
INVALID_CARE_UNIT = "1003"
INTERNAL_ERROR = "9001"
INVALID_REQUEST = "1004"

_PATIENT_ID = re.compile(r"^\d{12}$")
_TIME = re.compile(r"^\d{14}$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)


@dataclass
class ServiceSwitches:
    """How the service misbehaves; change the fields while it runs."""

    latency: float = 0.0  # seconds before every answer
    error: tuple[str, str] | None = None  # answer an error document (Code, Msg) instead of bookings
    http_500: bool = False  # answer HTTP 500 with an HTML page, as a crashed web server does
    fault: str | None = None  # answer a soap:Server fault with this faultstring (HTTP 500)
    #: Write operations whose answer is lost: the change is made, then HTTP 502 (a proxy's
    #: "bad gateway") answers instead; counts down per lost answer.
    lose_answers: int = 0
    #: Hold the answer of every write once the change is made (and its SIU pushed) until
    #: ``release`` is set: the caller's call is in flight for as long as a test wants (a gateway
    #: killed mid-call). ``held`` counts the answers waiting now.
    hold_answers: bool = False
    held: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    #: Every operation asked for, in order (SOAPAction's name): what a test counts.
    calls: list[str] = field(default_factory=list)


def time_type_ids() -> dict[str, str]:
    """This journal's numbering: time-type code -> TimeTypeId (the SIM table, reversed)."""
    table = mapping_tables.load().journal_time_type_ids(INSTANCE)
    return {code: tt_id for tt_id, code in table.items()}


def resource_id(hsa_id: str | None, name: str | None) -> str:
    """A practitioner's journal resource number: stable, numeric, not an HSA-id."""
    return str(zlib.crc32(f"{hsa_id}|{name}".encode()) % 900_000 + 100_000)


def request_schema() -> etree.XMLSchema:
    """The WSDL's own schema, to validate the SOAP body's ``GetBookings`` against."""
    wsdl = etree.parse(str(WSDL_FILE), _PARSER)
    schema = wsdl.find(f".//{{{XSD}}}schema")
    if schema is None:
        raise RuntimeError(f"{WSDL_FILE.name} holds no schema")
    return etree.XMLSchema(etree.fromstring(etree.tostring(schema), _PARSER))


def create_app(
    book: JournalBook,
    switches: ServiceSwitches | None = None,
    *,
    calendar: JournalCalendar | None = None,
    pusher: Pusher | None = None,
) -> Starlette:
    """``calendar``: also answer the write operations from it; ``pusher``: push each change's SIU."""
    switches = switches if switches is not None else ServiceSwitches()
    schema = request_schema()
    wsdl_template = WSDL_FILE.read_bytes()
    ids = time_type_ids()

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            if "wsdl" in {key.lower() for key in request.query_params}:
                return _xml(_wsdl_for(wsdl_template, str(request.url.replace(query=""))))
            return Response("GET ?wsdl for the service description", status_code=404)
        if switches.latency:
            await asyncio.sleep(switches.latency)
        if switches.http_500:
            page = "<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1></body></html>"
            return Response(page, status_code=500, media_type="text/html")
        if switches.fault is not None:
            return _fault("soap:Server", switches.fault)
        action = request.headers.get("SOAPAction", "").strip().strip('"')
        operation = action.removeprefix(NS)
        switches.calls.append(operation)
        if action != SOAP_ACTION and not (calendar is not None and operation in WRITE_CHILDREN):
            return _fault("soap:Client", f"SOAPAction {action!r} is not {SOAP_ACTION}")
        body = await request.body()
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as exc:
            return _fault("soap:Client", f"request is not well-formed XML: {exc}")
        call = envelope.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}{operation}")
        if call is None:
            return _fault("soap:Client", f"the body holds no {operation} in {NS}")
        if call.find(f"{{{NS}}}xml/*") is not None:
            return _fault(
                "soap:Client",
                f"{operation}/xml holds XML elements; the ProfdocHISMessage must be escaped text",
            )
        if not schema.validate(call):
            problem = str(schema.error_log).strip().splitlines()[-1:]
            return _fault("soap:Client", f"{operation} is invalid: {''.join(problem)}")
        inner, problem_text = _inner(call, WRITE_CHILDREN.get(operation, set()))
        if inner is None:
            return _fault("soap:Client", f"{operation}/xml: {problem_text}")
        user = call.findtext(f"{{{NS}}}externaluser") or ""
        unit_type = (inner.findtext("CareUnitIdType") or "").strip()
        unit = (inner.findtext("CareUnitId") or "").strip()
        head = {"User": user, "CareUnitType": unit_type, "CareUnit": unit, "Method": operation}
        if switches.error is not None:
            return _answer(_error_document(head, *switches.error), operation)
        if calendar is not None and operation in WRITE_CHILDREN:
            before = len(calendar.outbox)
            document = _answer_write(calendar, operation, inner, head, ids)
            made = calendar.outbox[before:]
            if made and pusher is not None:
                await pusher(list(made))
            if made and switches.hold_answers:
                switches.held += 1
                try:
                    await asyncio.to_thread(switches.release.wait)
                finally:
                    switches.held -= 1
            if made and switches.lose_answers > 0:
                switches.lose_answers -= 1
                return Response(
                    "<html><body>502 Bad Gateway</body></html>", status_code=502, media_type="text/html"
                )
            return _answer(document, operation)
        return _answer(_answer_call(book, inner, head, ids, calendar), operation)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def _inner(call: etree._Element, extra: set[str]) -> tuple[etree._Element | None, str]:
    """The escaped ``ProfdocHISMessage`` in ``xml``, checked; or None and what is wrong."""
    text = call.findtext(f"{{{NS}}}xml")
    if not text or not text.strip():
        return None, "missing (it carries the escaped ProfdocHISMessage)"
    try:
        inner = etree.fromstring(text.strip(), _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return None, f"is not a well-formed document: {exc}"
    if inner.tag != "ProfdocHISMessage":
        return None, f"root is {inner.tag!r}, not ProfdocHISMessage (no namespace)"
    if inner.get("MsgType") != "Request":
        return None, 'ProfdocHISMessage needs MsgType="Request"'
    if not _TIME.match(inner.get("Time") or ""):
        return None, "ProfdocHISMessage needs Time as yyyyMMddHHmmss"
    if not (inner.get("InvokingSystem") or "").strip():
        return None, "ProfdocHISMessage needs InvokingSystem"
    for required in ("CareUnitIdType", "CareUnitId"):
        if not (inner.findtext(required) or "").strip():
            return None, f"ProfdocHISMessage needs {required}"
    known = {"PatientId", "BookingId", "CareUnitIdType", "CareUnitId"} | extra
    for child in inner:
        if child.tag not in known:
            return None, f"ProfdocHISMessage has an unknown child {child.tag!r}"
    return inner, ""


def _answer_call(
    book: JournalBook,
    inner: etree._Element,
    head: dict[str, str],
    ids: dict[str, str],
    calendar: JournalCalendar | None = None,
) -> etree._Element:
    if head["CareUnitType"] != CARE_UNIT_ID_TYPE:
        return _error_document(head, INVALID_CARE_UNIT, f"CareUnitIdType {head['CareUnitType']} is not known")
    patient = (inner.findtext("PatientId") or "").strip()
    if not _PATIENT_ID.match(patient):
        return _error_document(head, INVALID_PATIENT_ID, "PatientId is not a 12-digit number")
    if not book.knows(patient):
        return _error_document(head, PATIENT_NOT_FOUND, "Patienten finns inte i journalen")
    found = [
        b for b in book.bookings(patient, unit=head["CareUnit"]) if b.status is not JournalStatus.CANCELLED
    ]
    booking_id = (inner.findtext("BookingId") or "").strip()
    if booking_id:
        found = [b for b in found if b.booking_id == booking_id]
    doc = _document("Response", head)
    unit_name = next((u.name for b in found for u in b.units if u.hsa_id == head["CareUnit"] and u.name), "")
    container = etree.SubElement(doc, "Bookings")
    container.set("CareUnitIdType", head["CareUnitType"])
    container.set("CareUnitId", head["CareUnit"])
    container.set("CareUnitName", unit_name)
    for b in found:
        _booking(container, b, ids, calendar)
    return doc


def _answer_write(
    calendar: JournalCalendar,
    operation: str,
    inner: etree._Element,
    head: dict[str, str],
    ids: dict[str, str],
) -> etree._Element:
    """A write operation against the calendar: its answer, or an error document (nothing changed)."""
    codes = {tt_id: code for code, tt_id in ids.items()}
    if head["CareUnitType"] != CARE_UNIT_ID_TYPE:
        return _error_document(head, INVALID_CARE_UNIT, f"CareUnitIdType {head['CareUnitType']} is not known")
    unit = head["CareUnit"]
    text = {child.tag: (child.text or "").strip() for child in inner}
    try:
        if operation == "GetTimeTypes":
            return _time_types(head, ids)
        if operation in ("GetAvailableTimeslots", "GetAvailableDates"):
            code = codes.get(text.get("TimeTypeId", ""), "")
            first = datetime.strptime(text.get("StartDate", ""), "%Y%m%d").date()
            last = datetime.strptime(text.get("EndDate", ""), "%Y%m%d").date()
            if operation == "GetAvailableDates":
                return _dates(head, calendar, unit, code, first, last, ids)
            return _timeslots(head, calendar, unit, code, first, last, ids)
        patient = text.get("PatientId", "")
        if not _PATIENT_ID.match(patient):
            return _error_document(head, INVALID_PATIENT_ID, "PatientId is not a 12-digit number")
        doc = _document("Response", head)
        container = etree.SubElement(doc, "Bookings")
        container.set("CareUnitIdType", head["CareUnitType"])
        container.set("CareUnitId", unit)
        if operation == "MakeBooking":
            b = calendar.make_booking(
                patient,
                unit,
                _local(text.get("StartTime", "")),
                _local(text.get("EndTime", "")),
                codes.get(text.get("TimeTypeId", ""), ""),
                text.get("PatientReason") or None,
            )
            _booking(container, b, ids, calendar)
        elif operation == "RescheduleBooking":
            b = calendar.reschedule(
                patient,
                text.get("BookingId", ""),
                _local(text.get("StartTime", "")),
                _local(text.get("EndTime", "")),
            )
            _booking(container, b, ids, calendar)
        else:
            calendar.cancel(patient, text.get("BookingId", ""), text.get("CancelReason") or None)
        return doc
    except CalendarError as exc:
        return _error_document(head, exc.code, exc.msg)
    except ValueError as exc:
        return _error_document(head, INVALID_REQUEST, f"{operation}: {exc}")


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=STOCKHOLM).astimezone(UTC)


def _unit_answer(head: dict[str, str], name: str, unit: str) -> tuple[etree._Element, etree._Element]:
    """A response document and its one container for ``unit`` (``Timeslots``, ``AvailableDates``)."""
    doc = _document("Response", head)
    container = etree.SubElement(doc, name)
    container.set("CareUnitIdType", head["CareUnitType"])
    container.set("CareUnitId", unit)
    return doc, container


def _timeslots(
    head: dict[str, str],
    calendar: JournalCalendar,
    unit: str,
    code: str,
    first: date,
    last: date,
    ids: dict[str, str],
) -> etree._Element:
    doc, container = _unit_answer(head, "Timeslots", unit)
    for slot in calendar.free(unit, code, first, last):
        el = etree.SubElement(container, "Timeslot")
        _text(el, "StartTime", local_stamp(slot.start.astimezone(STOCKHOLM), seconds=False))
        _text(el, "EndTime", local_stamp(slot.end.astimezone(STOCKHOLM), seconds=False))
        _text(el, "TimeTypeId", ids.get(slot.time_type, "0"))
        _text(el, "ResourceId", slot.resource_id)
        _text(el, "ResourceName", slot.resource_name)
    return doc


def _time_types(head: dict[str, str], ids: dict[str, str]) -> etree._Element:
    """Every time type of this journal, hidden ones too: the gateway decides what it shows."""
    doc = _document("Response", head)
    container = etree.SubElement(doc, "TimeTypes")
    for code, tt_id in sorted(ids.items(), key=lambda item: int(item[1])):
        el = etree.SubElement(container, "TimeType")
        _text(el, "TimeTypeId", tt_id)
        _text(el, "TimeTypeName", TYPE_NAMES.get(code, code))
    return doc


def _dates(
    head: dict[str, str],
    calendar: JournalCalendar,
    unit: str,
    code: str,
    first: date,
    last: date,
    ids: dict[str, str],
) -> etree._Element:
    doc, container = _unit_answer(head, "AvailableDates", unit)
    days = sorted({s.start.astimezone(STOCKHOLM).date() for s in calendar.free(unit, code, first, last)})
    for day in days:
        el = etree.SubElement(container, "AvailableDate")
        _text(el, "Date", day.strftime("%Y%m%d"))
        _text(el, "TimeTypeId", ids.get(code, "0"))
        _text(el, "TimeTypeName", TYPE_NAMES.get(code, code))
    return doc


def _document(msg_type: str, head: dict[str, str]) -> etree._Element:
    doc = etree.Element("ProfdocHISMessage")
    doc.set("MsgType", msg_type)
    doc.set("System", "TakeCare")
    doc.set("SystemInstance", "0")
    doc.set("Time", local_stamp(datetime.now(UTC), seconds=True))
    doc.set("User", head["User"])
    doc.set("CareUnitType", head["CareUnitType"])
    doc.set("CareUnit", head["CareUnit"])
    doc.set("Method", f"Booking.{head.get('Method', 'GetBookings')}")
    return doc


def _error_document(head: dict[str, str], code: str, msg: str) -> etree._Element:
    doc = _document("Error", head)
    error = etree.SubElement(doc, "Error")
    error.set("Type", "Error")
    etree.SubElement(error, "Code").text = code
    etree.SubElement(error, "Msg").text = msg
    return doc


def _booking(
    parent: etree._Element, b: JournalBooking, ids: dict[str, str], calendar: JournalCalendar | None = None
) -> None:
    el = etree.SubElement(parent, "Booking")
    _text(el, "BookingId", b.booking_id)
    _text(el, "BookingType", "0")
    _text(el, "StartTime", local_stamp(b.start.astimezone(STOCKHOLM), seconds=False))
    _text(el, "EndTime", local_stamp(b.end.astimezone(STOCKHOLM), seconds=False))
    # A numeric code in the book is already an id (tests use one the gateway does not know).
    tt_id = b.time_type if b.time_type and b.time_type.isdigit() else ids.get(b.time_type or "", "0")
    _text(el, "TimeTypeId", tt_id)
    _text(el, "TimeTypeName", b.time_type_name or "")
    resources = etree.SubElement(el, "Resources")
    for res in b.practitioners:
        r = etree.SubElement(resources, "Resource")
        _text(r, "ResourceType", NAMED_RESOURCE)
        _text(r, "ResourceId", resource_id(res.hsa_id, res.name))
        _text(r, "ResourceName", res.name or "")
    _text(el, "PatientId", b.patient_id)
    _text(el, "PatientReason", b.reason or "")
    allowed = calendar.allowed(b.booking_id) if calendar is not None else None
    _text(el, "CancelAllowed", "0" if allowed is not None and not allowed.cancel else "1")
    _text(el, "RescheduleAllowed", "0" if allowed is not None and not allowed.reschedule else "1")


def _text(parent: etree._Element, name: str, value: str) -> None:
    etree.SubElement(parent, name).text = value


def _answer(document: etree._Element, operation: str = "GetBookings") -> Response:
    """``<Operation>Response/<Operation>Result`` holding the document as (escaped) text."""
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    response = etree.SubElement(body, f"{{{NS}}}{operation}Response", nsmap={"tns": NS})
    result = etree.SubElement(response, f"{{{NS}}}{operation}Result")
    result.text = etree.tostring(document, encoding="unicode")
    return _xml(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _fault(code: str, message: str) -> Response:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = message
    return _xml(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), status=500)


def _wsdl_for(template: bytes, address: str) -> bytes:
    """The WSDL with the address the service is actually served on."""
    doc = etree.fromstring(template, _PARSER)
    for element in doc.iter(f"{{{WSDL_SOAP}}}address"):
        element.set("location", address)
    return bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))


def _xml(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="text/xml; charset=utf-8")
