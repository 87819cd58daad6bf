"""RIV-TA crm:scheduling 1.1 producer (issue 21): the national platform's face of self-service.

SOAP 1.1 on ``POST /rivta/crm/scheduling`` (one address; the body's element says the
interaction). RIVTABP21: the header ``LogicalAddress`` (``urn:riv:itintegration:registry:1``)
names the care unit's HSA-id and must be the unit the request is about. The national platform
(1177) acts for the citizen it authenticated, so the subject of care is the actor. Interactions
(namespaces ``urn:riv:crm:scheduling:<Name>Responder:1``, core types ``urn:riv:crm:scheduling:1``):

- ``GetSubjectOfCareSchedule`` (``healthcare_facility``, ``subject_of_care``) -> ``timeslotDetail``*
- ``GetBookingDetails`` (``healthcare_facility``, ``bookingId``) -> ``timeslotDetail``
- ``GetAllTimeTypes`` (``healthcare_facility``, ``subject_of_care``?) -> ``listOfTimeTypes``*
  (``timeTypeId``, ``timeTypeName``): visible time types only (R-BK-7)
- ``GetAvailableDates`` (``healthcare_facility``, ``startDateInclusive``, ``endDateInclusive``,
  ``timeTypeID``?) -> ``performerAvailabilityByDate``* (``healthcare_facility``, ``date``,
  ``timeTypeID``, ``timeTypeName``); without ``timeTypeID``, every visible time type
- ``GetAvailableTimeslots`` (``healthcare_facility``, ``startDateInclusive``, ``endDateInclusive``,
  ``timeTypeID``) -> ``timeslotDetail``*
- ``MakeBooking`` (``healthcare_facility_med``, ``requestedTimeslot``, ``subject_of_care_info``)
  -> ``bookingId``, ``resultCode``, ``resultText``
- ``UpdateBooking`` (``requestedTimeslot`` with ``bookingId`` and new times) -> ``resultCode``
- ``CancelBooking`` (``healthcare_facility``, ``bookingId``, ``message``) -> ``resultCode``

The contract's own result codes: ``OK``; ``ERROR`` with ``resultText`` naming the rule for a
refusal (the same rules as the FHIR face: one use case, ``gateway/service/self_service.py``); a journal
that cannot be reached is a ``soap:Server`` fault (worth a retry; the same request is the same
command, so a retry never books twice). Time types travel as the journal's ``TimeTypeId``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project
from starlette.responses import Response

from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import GatewayError, InboundError, InvalidRequest, NotFound, Refused, UpstreamError
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.service.self_service import SelfService
from gateway.store import booking_commands

router = APIRouter(tags=["RIV-TA crm:scheduling"])

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING = "urn:riv:itintegration:registry:1"
CORE = "urn:riv:crm:scheduling:1"
PATH = "/rivta/crm/scheduling"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
#: The project's own WSDL/XSD subset of the contract (same namespaces and names).
SCHEMAS = Path(__file__).resolve().parent / "rivta_schemas"
INTERACTIONS = (
    "GetSubjectOfCareSchedule",
    "GetBookingDetails",
    "GetAllTimeTypes",
    "GetAvailableDates",
    "GetAvailableTimeslots",
    "MakeBooking",
    "UpdateBooking",
    "CancelBooking",
)
#: Interactions whose answer has no resultCode: a refusal is a soap:Client fault naming the rule.
_READS = (
    "GetSubjectOfCareSchedule",
    "GetBookingDetails",
    "GetAllTimeTypes",
    "GetAvailableDates",
    "GetAvailableTimeslots",
)


@cache
def schema(name: str) -> etree.XMLSchema:
    """The responder schema a request and an answer are checked against."""
    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{name}Responder_1.1.xsd")))


def responder(name: str) -> str:
    return f"urn:riv:crm:scheduling:{name}Responder:1"


def _ts(moment: datetime) -> str:
    """``TS``: ``yyyyMMddHHmmss`` in Swedish local time."""
    return moment.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S")


def _parse_ts(text: str, name: str) -> datetime:
    try:
        local = datetime.strptime(text.strip(), "%Y%m%d%H%M%S").replace(tzinfo=STOCKHOLM)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {text.strip()[:20]!r} is not yyyyMMddHHmmss") from exc
    return local.astimezone(UTC)


def _parse_dt(text: str, name: str) -> date:
    try:
        return datetime.strptime(text.strip()[:8], "%Y%m%d").date()
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {text.strip()[:20]!r} is not yyyyMMdd") from exc


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child.tag).localname == name:
            return child
    return None


def _text(parent: etree._Element | None, name: str) -> str:
    if parent is None:
        return ""
    el = _child(parent, name)
    return (el.text or "").strip() if el is not None else ""


def _sub(parent: etree._Element, ns: str, name: str, value: str | None) -> None:
    if value:
        etree.SubElement(parent, f"{{{ns}}}{name}").text = value


def _envelope(name: str, build: Callable[[etree._Element], None]) -> Response:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    ns = responder(name)
    answer = etree.SubElement(body, f"{{{ns}}}{name}Response", nsmap={None: ns, "core": CORE})  # type: ignore[dict-item]
    build(answer)
    return Response(
        etree.tostring(env, xml_declaration=True, encoding="UTF-8"), media_type="text/xml; charset=utf-8"
    )


def _fault(code: str, text: str, status: int | None = None) -> Response:
    """A SOAP fault. HTTP 400 for the caller's fault (soap:Client), as SOAP 1.2 answers a Sender
    fault, so bad input is never a 5xx; 503 when the journal cannot be asked now; 500 else."""
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    fault = etree.SubElement(etree.SubElement(env, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = text
    return Response(
        etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
        status_code=status or (400 if code == "soap:Client" else 500),
        media_type="text/xml",
    )


def _result(name: str, code: str, text: str | None, booking_id: str | None = None) -> Response:
    ns = responder(name)

    def build(answer: etree._Element) -> None:
        if name == "MakeBooking":
            _sub(answer, ns, "bookingId", booking_id)
        _sub(answer, ns, "resultCode", code)
        if name != "CancelBooking":
            _sub(answer, ns, "resultText", text)

    return _envelope(name, build)


def _timeslot(parent: etree._Element, ns: str, b: JournalBooking | None, **fields: str | None) -> None:
    slot = etree.SubElement(parent, f"{{{ns}}}timeslotDetail")
    core_fields: list[tuple[str, str | None]] = [
        ("startTimeInclusive", fields.get("start")),
        ("endTimeExclusive", fields.get("end")),
        ("healthcare_facility", fields.get("unit")),
        ("bookingId", fields.get("booking_id")),
        ("subject_of_care", fields.get("patient")),
        ("reason", b.reason if b else None),
        ("healthcare_facility_name", next((u.name for u in b.units if u.name), None) if b else None),
        ("performerName", b.practitioners[0].name if b and b.practitioners else None),
        ("timeTypeName", fields.get("time_type_name")),
        ("timeTypeID", fields.get("time_type_id")),
        ("cancel_booking_allowed", fields.get("cancel")),
        ("rebooking_allowed", fields.get("rebook")),
    ]
    for name, value in core_fields:
        _sub(slot, CORE, name, value)


def _flag(value: bool | None) -> str:
    return "true" if value else "false"


def _person(request: Request, text: str) -> PersonId:
    try:
        person: PersonId = request.app.state.mappings.recognise(text)
    except InboundError as exc:
        raise InvalidRequest(f"subject_of_care: {exc}") from exc
    return person


def _patient_of(request: Request, service: SelfService, booking_id: str) -> str:
    """The patient the gateway holds a booking for (the requests about one booking name no subject
    of care; the national platform has authenticated that person)."""
    if not booking_id:
        raise InvalidRequest("bookingId is required")
    with request.app.state.engine.connect() as conn:
        found = booking_commands.patient_of_booking(conn, service.namespace, booking_id)
    if found is None:
        raise NotFound(f"booking {booking_id} is not known")
    return found


def _key(*parts: object) -> str:
    return "rivta:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


@router.get(PATH, summary="The WSDL of one interaction: ?wsdl=<Interaction>")
async def wsdl(request: Request) -> Response:
    name = request.query_params.get("wsdl", "")
    if name not in INTERACTIONS:
        return _fault("soap:Client", f"?wsdl=<one of {', '.join(INTERACTIONS)}>")
    doc = etree.parse(str(SCHEMAS / f"{name}Interaction_1.1_RIVTABP21.wsdl"), _PARSER)
    for address in doc.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address"):
        address.set("location", str(request.url.replace(query="")))
    return Response(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"), media_type="text/xml")


@router.post(PATH, summary="RIV-TA crm:scheduling 1.1 (SOAP, RIVTABP21)", include_in_schema=True)
async def scheduling(request: Request) -> Response:
    service: SelfService | None = getattr(request.app.state, "self_service", None)
    try:
        env = etree.fromstring(await request.body(), _PARSER)
    except etree.XMLSyntaxError as exc:
        return _fault("soap:Client", f"not well-formed XML: {exc}")
    header = env.find(f"{{{SOAP_ENV}}}Header")
    address = (header.findtext(f"{{{ADDRESSING}}}LogicalAddress") or "").strip() if header is not None else ""
    body = env.find(f"{{{SOAP_ENV}}}Body")
    call = body[0] if body is not None and len(body) else None
    if call is None or not isinstance(call.tag, str):
        return _fault("soap:Client", "the SOAP body holds no request")
    qname = etree.QName(call.tag)
    name = qname.localname
    if name not in INTERACTIONS or qname.namespace != responder(name):
        return _fault(
            "soap:Client",
            f"{name} in {qname.namespace!r}: not a crm:scheduling 1 request this producer offers",
        )
    checker = schema(name)
    if not checker.validate(call):
        problem = "".join(str(checker.error_log).strip().splitlines()[-1:]) or "invalid"
        return _fault("soap:Client", f"{name} does not follow the contract: {problem}")
    if not address:
        return _fault("soap:Client", f"RIVTABP21: header LogicalAddress ({ADDRESSING}) is required")
    if service is None:
        return _fault("soap:Server", "self-service is not configured (no XChange journal service)", 503)
    try:
        return await _dispatch(request, service, name, call, address)
    except (Refused, NotFound, InvalidRequest) as exc:
        if name in _READS:
            return _fault("soap:Client", str(exc))
        return _result(name, "ERROR", str(exc))
    except UpstreamError as exc:
        return _fault("soap:Server", f"the journal could not be reached, try again: {exc}", 503)
    except GatewayError:
        return _fault("soap:Server", "internal error")


async def _dispatch(request: Request, service: SelfService, name: str, call: Any, address: str) -> Response:
    ns = responder(name)
    writer = service.journal
    ids: dict[str, str] = getattr(writer, "ids_by_code", {})
    codes: dict[str, str] = getattr(writer, "time_type_ids", {})

    def unit_of(value: str) -> str:
        if value and value != address:
            raise InvalidRequest(
                f"RIVTABP21: LogicalAddress {address} is not the care unit {value} asked about"
            )
        return value or address

    if name == "GetSubjectOfCareSchedule":
        unit = unit_of(_text(call, "healthcare_facility"))
        patient = _person(request, _text(call, "subject_of_care"))
        bookings = await service.list_bookings(patient, patient, unit)

        def build(answer: etree._Element) -> None:
            for b in bookings:
                _timeslot(
                    answer, ns, b, start=_ts(b.start), end=_ts(b.end), unit=unit, booking_id=b.booking_id,
                    patient=patient.value, time_type_name=b.time_type_name,
                    time_type_id=ids.get(b.time_type or ""), cancel=_flag(b.cancel_allowed),
                    rebook=_flag(b.reschedule_allowed),
                )  # fmt: skip

        return _envelope(name, build)
    if name == "GetBookingDetails":
        unit = unit_of(_text(call, "healthcare_facility"))
        booking_id = _text(call, "bookingId")
        patient = _person(request, _patient_of(request, service, booking_id))
        b = await service.booking_details(patient, patient, unit, booking_id)

        def build_details(answer: etree._Element) -> None:
            _timeslot(
                answer, ns, b, start=_ts(b.start), end=_ts(b.end), unit=unit, booking_id=b.booking_id,
                patient=patient.value, time_type_name=b.time_type_name,
                time_type_id=ids.get(b.time_type or ""), cancel=_flag(b.cancel_allowed),
                rebook=_flag(b.reschedule_allowed),
            )  # fmt: skip

        return _envelope(name, build_details)
    if name == "GetAllTimeTypes":
        unit = unit_of(_text(call, "healthcare_facility"))
        subject = _text(call, "subject_of_care")
        types = await service.time_types(_person(request, subject) if subject else None, unit)

        def build_types(answer: etree._Element) -> None:
            for t in types:
                item = etree.SubElement(answer, f"{{{ns}}}listOfTimeTypes")
                _sub(item, CORE, "timeTypeId", t.time_type_id)
                _sub(item, CORE, "timeTypeName", t.name)

        return _envelope(name, build_types)
    if name == "GetAvailableDates":
        unit = unit_of(_text(call, "healthcare_facility"))
        first = _parse_dt(_text(call, "startDateInclusive"), "startDateInclusive")
        last = _parse_dt(_text(call, "endDateInclusive"), "endDateInclusive")
        asked = _text(call, "timeTypeID")
        if asked:
            code = codes.get(asked, "")
            if not code:
                raise InvalidRequest(f"timeTypeID {asked!r} is not a known time type")
            wanted: list[tuple[str, str, str | None]] = [(code, asked, None)]
        else:
            wanted = [
                (t.time_type or "", t.time_type_id, t.name) for t in await service.time_types(None, unit)
            ]
        found: list[tuple[date, str, str | None]] = []
        for code, tt_id, tt_name in wanted:
            for day in await service.available_dates(None, unit, code, first, last):
                found.append((day, tt_id, tt_name))
        found.sort()

        def build_dates(answer: etree._Element) -> None:
            for day, tt_id, tt_name in found:
                item = etree.SubElement(answer, f"{{{ns}}}performerAvailabilityByDate")
                _sub(item, ns, "healthcare_facility", unit)
                _sub(item, ns, "date", day.strftime("%Y%m%d"))
                _sub(item, ns, "timeTypeName", tt_name)
                _sub(item, ns, "timeTypeID", tt_id)

        return _envelope(name, build_dates)
    if name == "GetAvailableTimeslots":
        unit = unit_of(_text(call, "healthcare_facility"))
        code = codes.get(_text(call, "timeTypeID"), "")
        if not code:
            raise InvalidRequest(f"timeTypeID {_text(call, 'timeTypeID')!r} is not a known time type")
        first = _parse_dt(_text(call, "startDateInclusive"), "startDateInclusive")
        last = _parse_dt(_text(call, "endDateInclusive"), "endDateInclusive")
        slots = await service.free_slots(None, unit, code, first, last)

        def build_slots(answer: etree._Element) -> None:
            for s in slots:
                _timeslot(
                    answer, ns, None, start=_ts(s.start), end=_ts(s.end), unit=unit,
                    time_type_id=s.time_type_id, time_type_name=s.time_type_name,
                )  # fmt: skip

        return _envelope(name, build_slots)
    if name == "MakeBooking":
        unit = unit_of(_text(call, "healthcare_facility_med"))
        slot = _child(call, "requestedTimeslot")
        patient = _person(request, _text(slot, "subject_of_care"))
        start = _parse_ts(_text(slot, "startTimeInclusive"), "startTimeInclusive")
        end = _parse_ts(_text(slot, "endTimeExclusive"), "endTimeExclusive")
        code = codes.get(_text(slot, "timeTypeID"), "")
        if not code:
            raise InvalidRequest(f"timeTypeID {_text(slot, 'timeTypeID')!r} is not a known time type")
        reason = _text(slot, "reason") or None
        outcome = await service.book(
            _key(name, patient.value, unit, start, end, code), patient, patient,
            unit=unit, start=start, end=end, time_type=code, reason=reason,
        )  # fmt: skip
        return _result(name, "OK", None, outcome.booking_id)
    if name in ("UpdateBooking", "CancelBooking"):
        slot = _child(call, "requestedTimeslot") if name == "UpdateBooking" else call
        unit = unit_of(_text(slot, "healthcare_facility"))
        booking_id = _text(slot, "bookingId")
        patient = _person(request, _patient_of(request, service, booking_id))
        if name == "CancelBooking":
            reason = _text(call, "message") or "Avbokad av invånaren"
            await service.cancel(
                _key(name, unit, booking_id),
                patient,
                patient,
                unit=unit,
                booking_id=booking_id,
                reason=reason,
            )
            return _result(name, "OK", None)
        start = _parse_ts(_text(slot, "startTimeInclusive"), "startTimeInclusive")
        end = _parse_ts(_text(slot, "endTimeExclusive"), "endTimeExclusive")
        await service.reschedule(
            _key(name, unit, booking_id, start, end), patient, patient,
            unit=unit, booking_id=booking_id, start=start, end=end,
        )  # fmt: skip
        return _result(name, "OK", None)
    return _result(name, "ERROR", f"{name} is not offered by this producer")
