"""The simulated journal's booking web service: SOAP 1.1 ``GetBookings`` over HTTP (R-BK-4).

Modelled on the shape of TakeCare's XChange booking service (see ``wsdl/booking.xsd``): a
patient's bookings at a unit as the journal holds them now, errors in-band as ``Error`` with
``Code`` and ``Msg``. It answers from a :class:`~mocks.journal.book.JournalBook`, which the
simulator keeps up to date and tests change behind the gateway's back. ``switches`` make it
slow, answer an error, fail with HTTP 500 or a SOAP fault, as a real journal sometimes does.

Serve it with ``mocks.runner.ServedApp(create_app(book, switches))``: ``POST`` takes the SOAP
request, ``GET ?wsdl`` gives the WSDL (with this server's address), ``GET /booking.xsd`` the types.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.domain.booking import JournalBooking, JournalStatus
from gateway.journal_adapter.timestamps import STOCKHOLM
from mocks.journal.book import JournalBook

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_FILE = WSDL_DIR / "booking.wsdl"
XSD_FILE = WSDL_DIR / "booking.xsd"
NS = "urn:takecare:xchange:booking:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"

# Error codes in GetBookingsResponse/Error/Code (documented in docs/journal-ws.md).
PATIENT_NOT_FOUND = "PATIENT_NOT_FOUND"
INVALID_PATIENT_ID = "INVALID_PATIENT_ID"
INVALID_DATE_RANGE = "INVALID_DATE_RANGE"
INTERNAL_ERROR = "INTERNAL_ERROR"

_STATUS = {
    JournalStatus.BOOKED: "Booked",
    JournalStatus.CANCELLED: "Cancelled",
    JournalStatus.NOSHOW: "NoShow",
}
# 12 digits (personnummer, samordningsnummer, Region Stockholm's reservnummer "99..."), dash allowed.
_PATIENT_ID = re.compile(r"^\d{8}-?\d{4}$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


@dataclass
class ServiceSwitches:
    """How the service misbehaves; change the fields while it runs."""

    latency: float = 0.0  # seconds before every answer
    error: tuple[str, str] | None = None  # answer Error (Code, Msg) instead of bookings
    http_500: bool = False  # answer HTTP 500 with an HTML page, as a crashed web server does
    fault: str | None = None  # answer a soap:Server fault with this faultstring (HTTP 500)


def create_app(book: JournalBook, switches: ServiceSwitches | None = None) -> Starlette:
    switches = switches if switches is not None else ServiceSwitches()
    schema = etree.XMLSchema(etree.parse(str(XSD_FILE), _PARSER))
    wsdl_template = WSDL_FILE.read_bytes()

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            if "wsdl" in {key.lower() for key in request.query_params}:
                return _xml(_wsdl_for(wsdl_template, str(request.url.replace(query=""))))
            if request.url.path.endswith(XSD_FILE.name):
                return _xml(XSD_FILE.read_bytes())
            return Response("GET ?wsdl for the service description", status_code=404)
        if switches.latency:
            await asyncio.sleep(switches.latency)
        if switches.http_500:
            page = "<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1></body></html>"
            return Response(page, status_code=500, media_type="text/html")
        if switches.fault is not None:
            return _fault("soap:Server", switches.fault)
        body = await request.body()
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as exc:
            return _fault("soap:Client", f"request is not well-formed XML: {exc}")
        call = envelope.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}GetBookings")
        if call is None:
            return _fault("soap:Client", "the body holds no GetBookings request")
        if not schema.validate(call):
            problem = str(schema.error_log).strip().splitlines()[-1:]
            return _fault("soap:Client", f"GetBookings is invalid: {''.join(problem)}")
        if switches.error is not None:
            return _answer(error=switches.error)
        return _answer_call(book, call)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def _answer_call(book: JournalBook, call: etree._Element) -> Response:
    patient = (call.findtext(f"{{{NS}}}PatientId") or "").strip()
    unit = call.findtext(f"{{{NS}}}CareUnitId")
    if not _PATIENT_ID.match(patient):
        return _answer(error=(INVALID_PATIENT_ID, f"PatientId {patient!r} is not a 12-digit number"))
    patient = patient.replace("-", "")
    if not book.knows(patient):
        return _answer(error=(PATIENT_NOT_FOUND, f"no patient {patient} in the journal"))
    start = _when(call.findtext(f"{{{NS}}}FromDate"))
    end = _when(call.findtext(f"{{{NS}}}ToDate"))
    if start is not None and end is not None and end < start:
        return _answer(error=(INVALID_DATE_RANGE, "ToDate is before FromDate"))
    return _answer(bookings=book.bookings(patient, unit=unit or None, start=start, end=end))


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=STOCKHOLM)


def _answer(
    *, bookings: list[JournalBooking] | None = None, error: tuple[str, str] | None = None
) -> Response:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "b": NS})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    response = etree.SubElement(body, f"{{{NS}}}GetBookingsResponse")
    if error is not None:
        err = etree.SubElement(response, f"{{{NS}}}Error")
        _text(err, "Code", error[0])
        _text(err, "Msg", error[1])
    else:
        container = etree.SubElement(response, f"{{{NS}}}Bookings")
        for b in bookings or []:
            _booking(container, b)
    return _xml(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _booking(parent: etree._Element, b: JournalBooking) -> None:
    el = etree.SubElement(parent, f"{{{NS}}}Booking")
    _text(el, "BookingId", b.booking_id)
    _text(el, "PatientId", b.patient_id)
    _text(el, "StartTime", b.start.astimezone(STOCKHOLM).isoformat())
    _text(el, "EndTime", b.end.astimezone(STOCKHOLM).isoformat())
    if b.time_type:
        _text(el, "TimeTypeId", b.time_type)
    if b.time_type_name:
        _text(el, "TimeTypeName", b.time_type_name)
    _text(el, "Status", _STATUS[b.status])
    if b.reason:
        _text(el, "PatientReason", b.reason)
    resources = etree.SubElement(el, f"{{{NS}}}Resources")
    for kind, items in (("User", b.practitioners), ("CareUnit", b.units)):
        for res in items:
            r = etree.SubElement(resources, f"{{{NS}}}Resource")
            _text(r, "Type", kind)
            if res.hsa_id:
                _text(r, "HsaId", res.hsa_id)
            if res.name:
                _text(r, "Name", res.name)


def _text(parent: etree._Element, name: str, value: str) -> None:
    etree.SubElement(parent, f"{{{NS}}}{name}").text = value


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
