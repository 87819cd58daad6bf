"""The journal booking service adapter (R-BK-4) against respx, on TakeCare XChange ``GetBookings`` as
published: the request it sends checked against the facts (namespace, SOAPAction, the escaped
inner document), hand-built published-shape answers read through it, every failure translated at
the edge into the gateway's tree; and the reconcile against a real store on both backends.

Answers are fixture files (``tests/fixtures/journal_ws/``, each naming where it came from); the
WSDL is the project's own (``gateway/journal_adapter/wsdl/TakeCareBooking.wsdl``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
import zeep.exceptions
from lxml import etree
from sqlalchemy import Engine, select
from structlog.testing import capture_logs

from gateway import mappings as mapping_tables
from gateway import soap as soap_errors
from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.domain.register import Protection, RegisterRecord
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.booking_service import (
    WSDL_FILE,
    JournalBookingService,
    JournalServiceSettings,
    error_class,
)
from gateway.service.intake import Intake
from gateway.service.processing import Processor
from gateway.service.refresh import ABSENT_REASON, TRANSPORT, refresh_bookings
from gateway.store.inbox import DUPLICATE, RECEIVED, Inbox
from gateway.store.queries import MessageFilter, list_messages
from gateway.store.tables import appointments
from mocks.journal.booking_ws import request_schema
from tests.fakes import pnr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "journal_ws"
URL = "http://journal.test/TakeCare/Booking.asmx"
TEMPURI = "http://tempuri.org/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TOLVAN = pnr("191212121212")
UNIT = "SE2321000016-15CQ"
NOW = datetime(2026, 10, 20, 8, 15, 30, tzinfo=UTC)


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def soap() -> Iterator[respx.MockRouter]:
    """The service's address mocked (the WSDL is the project's file: no network for it)."""
    with respx.mock(assert_all_called=False) as router:
        yield router


def _settings(**changes: Any) -> JournalServiceSettings:
    base: dict[str, Any] = {
        "url": URL,
        "timeout": 1.0,
        "retries": 1,
        "backoff": 0,
        "tcusername": "gw-integration",
        "tcpassword": "s3cret-pw",
        "externaluser": "gateway-refresh",
    }
    return JournalServiceSettings(**{**base, **changes})


@pytest.fixture
async def service() -> AsyncIterator[JournalBookingService]:
    async with httpx.AsyncClient() as http:
        svc = JournalBookingService(_settings(), http, sleep=_no_sleep, clock=lambda: NOW)
        yield svc
        await svc.aclose()


def _xml(content: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"Content-Type": "text/xml; charset=utf-8"})


# --- conformance: the request as published ----------------------------------------------------


async def test_r_bk_4_the_request_is_getbookings_in_tempuri_with_the_escaped_inner_document(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    route = soap.post(URL).mock(return_value=_xml(_fixture("get_bookings_empty.xml")))

    await service.get_bookings(TOLVAN, unit=UNIT)

    sent = route.calls.last.request
    assert sent.headers["SOAPAction"].strip('"') == "http://tempuri.org/GetBookings"
    assert sent.headers["Content-Type"].startswith("text/xml")  # SOAP 1.1
    envelope = etree.fromstring(sent.content)
    assert envelope.tag == f"{{{SOAP_ENV}}}Envelope"
    call = envelope.find(f"{{{SOAP_ENV}}}Body/{{{TEMPURI}}}GetBookings")
    assert call is not None
    assert request_schema().validate(call)  # the WSDL's own types: names, order, strings
    assert [etree.QName(c).localname for c in call] == [
        "tcusername",
        "tcpassword",
        "externaluser",
        "careunitidtype",
        "careunitid",
        "xml",
    ]
    values = {etree.QName(c).localname: c.text for c in call}
    assert values["tcusername"] == "gw-integration"
    assert values["tcpassword"] == "s3cret-pw"
    assert (values["externaluser"], values["careunitidtype"], values["careunitid"]) == (
        "gateway-refresh",
        "HSAID",
        UNIT,
    )
    # The inner document travels as escaped text, not as XML elements.
    xml = call.find(f"{{{TEMPURI}}}xml")
    assert len(xml) == 0
    assert b"&lt;ProfdocHISMessage" in sent.content
    inner = etree.fromstring(xml.text)
    assert inner.tag == "ProfdocHISMessage" and inner.nsmap == {}
    assert inner.get("MsgType") == "Request"
    assert inner.get("Time") == "20261020101530"  # yyyyMMddHHmmss, Swedish local time
    assert inner.get("InvokingSystem") == "GATEWAY"
    assert [(c.tag, c.text) for c in inner] == [
        ("PatientId", "191212121212"),
        ("CareUnitIdType", "HSAID"),
        ("CareUnitId", UNIT),
    ]


def test_the_credentials_are_secret_settings() -> None:
    settings = _settings()
    assert "s3cret-pw" not in repr(settings) and "gw-integration" not in repr(settings)
    assert settings.tcpassword is not None and settings.tcpassword.get_secret_value() == "s3cret-pw"


def test_the_projects_wsdl_has_the_published_namespace_binding_and_actions() -> None:
    client = zeep.Client(str(WSDL_FILE))
    binding = client.wsdl.bindings[f"{{{TEMPURI}}}BookingSoap"]
    operations = binding._operations  # zeep keeps them by name
    assert set(operations) == {
        "GetBookings",
        "GetTimeTypes",
        "GetAvailableDates",
        "GetAvailableTimeslots",
        "MakeBooking",
        "RescheduleBooking",
        "CancelBooking",
    }
    assert {name: op.soapaction for name, op in operations.items()} == {
        name: f"http://tempuri.org/{name}" for name in operations
    }


# --- conformance: published-shape answers through the adapter ----------------------------------


async def test_r_bk_4_r_bk_1_a_published_answer_is_read_into_booked_domain_objects(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    soap.post(URL).mock(return_value=_xml(_fixture("get_bookings_tolvan.xml")))

    with capture_logs() as logs:
        visit, night, phone = await service.get_bookings(TOLVAN, unit=UNIT)

    assert {b.status for b in (visit, night, phone)} == {JournalStatus.BOOKED}
    # Numeric local times, DST correct: summer time, across the change, winter time.
    assert visit.start == datetime(2026, 10, 24, 8, 0, tzinfo=UTC)
    assert night.start == datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    assert night.end - night.start == timedelta(hours=3)
    assert phone.start == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    # Time types by numeric id: 11 is NYB, 13 TEL in the SIM table; 4711 is unknown, so hidden.
    assert (visit.time_type, phone.time_type, night.time_type) == ("NYB", "TEL", None)
    assert night.time_type_name == "Nattlig provtagning"
    assert visit.reason == "Kontroll av blodtryck & vikt"
    assert night.reason is None
    # Named resources only, by name (their ids are the journal's numbers, not HSA-ids).
    assert visit.practitioners == (Resource(None, "Anna Läkare"),)
    assert night.practitioners == (Resource(None, "Anna Läkare"), Resource(None, "Örjan Sjöström"))
    assert phone.practitioners == ()
    assert visit.units == (Resource(UNIT, "Vårdcentralen Tolvåsen"),)
    (warning,) = [e for e in logs if e["event"] == "journal_ws.unknown_time_type_ids"]
    assert warning["ids"] == ["4711"] and warning["instance"] == "SIM"
    assert "191212121212" not in repr(logs)


async def test_r_bk_4_a_known_patient_with_no_bookings_is_an_empty_list(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    soap.post(URL).mock(return_value=_xml(_fixture("get_bookings_empty.xml")))
    assert await service.get_bookings(TOLVAN, unit=UNIT) == []


async def test_r_bk_4_an_error_code_configured_transient_is_retried(soap: respx.MockRouter) -> None:
    route = soap.post(URL).mock(return_value=_xml(_fixture("error_patient_not_found.xml")))
    async with httpx.AsyncClient() as http:
        svc = JournalBookingService(_settings(transient_error_codes=["1001"]), http, sleep=_no_sleep)
        with pytest.raises(TransientUpstreamError, match="Error 1001"):
            await svc.get_bookings(TOLVAN, unit=UNIT)
        await svc.aclose()
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (httpx.ReadTimeout("slow"), TransientUpstreamError, "ReadTimeout"),
        (httpx.ConnectError("refused"), TransientUpstreamError, "ConnectError"),
        (httpx.RemoteProtocolError("cut short"), TransientUpstreamError, "RemoteProtocolError"),
        (httpx.Response(503, html="<!DOCTYPE html><p>busy</p>"), TransientUpstreamError, "HTTP 503"),
        (httpx.Response(429, text="slow down"), TransientUpstreamError, "HTTP 429"),
        (httpx.Response(404, html="<!DOCTYPE html><p>no</p>"), PermanentUpstreamError, "HTTP 404"),
        # a 2xx whose body is not XML: a damaged transfer, transient everywhere (gateway/soap.py)
        (_xml(b"<soap:Envelope><unclosed>"), TransientUpstreamError, "not XML"),
        # not a SOAP envelope: a channel failure, transient for every SOAP adapter (gateway/soap.py)
        (_xml(b"<?xml version='1.0'?><html/>"), TransientUpstreamError, "XMLSyntaxError"),
        (_xml(_fixture("fault_client.xml"), 500), PermanentUpstreamError, "careunitid is missing"),
        (
            _xml(_fixture("fault_client.xml").replace(b"soap:Client", b"soap:Server"), 500),
            TransientUpstreamError,
            "Fault",
        ),
        (_xml(_fixture("error_patient_not_found.xml")), PermanentUpstreamError, "Error 1001"),
        (
            _xml(
                _fixture("get_bookings_tolvan.xml").replace(b"&gt;191212121212&lt;", b"&gt;198001011230&lt;")
            ),
            PermanentUpstreamError,
            "another patient",
        ),
        (
            _xml(_fixture("get_bookings_tolvan.xml").replace(b"202610241000", b"2026-10-24T10:00")),
            PermanentUpstreamError,
            "contract",
        ),
        (
            _xml(
                _fixture("get_bookings_empty.xml").replace(b"&lt;Bookings", b"&lt;!DOCTYPE x&gt;&lt;Bookings")
            ),
            PermanentUpstreamError,
            "well-formed|DOCTYPE",
        ),
        (
            _xml(
                b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                b'<soap:Body><GetBookingsResponse xmlns="http://tempuri.org/"/></soap:Body></soap:Envelope>'
            ),
            PermanentUpstreamError,
            "no GetBookingsResult",
        ),
    ],
)
async def test_r_bk_4_each_failure_is_translated_at_the_edge(
    soap: respx.MockRouter,
    service: JournalBookingService,
    answer: httpx.Response | Exception,
    error: type[Exception],
    text: str,
) -> None:
    route = soap.post(URL)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    with pytest.raises(error, match=text) as caught:
        await service.get_bookings(TOLVAN, unit=UNIT)
    assert isinstance(caught.value, error)
    assert "191212121212" not in str(caught.value)  # no personnummer in error texts (logs)
    assert route.call_count == (2 if issubclass(type(caught.value), TransientUpstreamError) else 1)


async def test_r_bk_4_a_transient_failure_is_retried_then_answered(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    route = soap.post(URL).mock(
        side_effect=[httpx.ConnectError("restarting"), _xml(_fixture("get_bookings_tolvan.xml"))]
    )
    assert len(await service.get_bookings(TOLVAN, unit=UNIT)) == 3
    assert route.call_count == 2


async def test_r_bk_4_an_unreachable_remote_wsdl_is_transient_and_tried_again_next_time() -> None:
    async with httpx.AsyncClient() as http:
        svc = JournalBookingService(_settings(wsdl=f"{URL}?WSDL"), http, sleep=_no_sleep)
        with respx.mock() as router:
            wsdl = router.get(URL, params={"WSDL": ""}).mock(side_effect=httpx.ConnectError("down"))
            with pytest.raises(TransientUpstreamError, match="ConnectError"):
                await svc.get_bookings(TOLVAN, unit=UNIT)
            assert wsdl.call_count == 2
        await svc.aclose()


async def test_r_bk_4_a_wsdl_without_the_bookingsoap_binding_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.wsdl"
    other.write_text(
        WSDL_FILE.read_text(encoding="utf-8").replace('binding name="BookingSoap"', 'binding name="X"')
    )
    async with httpx.AsyncClient() as http:
        svc = JournalBookingService(_settings(wsdl=str(other)), http, sleep=_no_sleep)
        with pytest.raises(PermanentUpstreamError, match="no binding"):
            await svc.get_bookings(TOLVAN, unit=UNIT)
        await svc.aclose()


def test_every_zeep_exception_has_an_explicit_mapping() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(zeep.exceptions, inspect.isclass)
        if issubclass(cls, Exception) and not issubclass(cls, Warning) and cls.__module__ == "zeep.exceptions"
    }
    assert defined - set(soap_errors.DECISIONS) == set()


def test_every_httpx_exception_maps_to_the_gateway_tree() -> None:
    for name in httpx.__all__:
        cls = getattr(httpx, name)
        if inspect.isclass(cls) and issubclass(cls, Exception):
            exc = _instance(cls)
            assert error_class(exc) in (TransientUpstreamError, PermanentUpstreamError), name


def _instance(cls: type[Exception]) -> Exception:
    request = httpx.Request("POST", URL)
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("x", request=request, response=httpx.Response(500, request=request))
    try:
        return cls("x")
    except TypeError:
        return cls()  # type: ignore[call-arg]


def test_a_fault_is_judged_by_its_soap_code_and_a_transport_error_by_its_status() -> None:
    fault = zeep.exceptions.Fault
    transport = zeep.exceptions.TransportError
    assert error_class(fault("x", code="soap:Server")) is TransientUpstreamError
    assert error_class(fault("x", code="soap:Client")) is PermanentUpstreamError
    assert error_class(transport("x", status_code=502)) is TransientUpstreamError
    assert error_class(transport("x", status_code=400)) is PermanentUpstreamError
    # A 2xx whose body is not XML is a damaged transfer, as for every SOAP adapter (gateway/soap.py).
    assert error_class(transport("invalid XML", status_code=200)) is TransientUpstreamError
    assert error_class(TimeoutError()) is TransientUpstreamError


# --- the reconcile against a real store (SQLite and PostgreSQL) -------------------------------


@dataclass
class FakeJournal:
    """The ``BookingSource`` port in memory."""

    bookings: list[JournalBooking]
    namespace: str = "TAKECARE"
    facility: str = "SLL"
    url: str = URL
    care_units: tuple[str, ...] = (UNIT,)

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]:
        return [
            b
            for b in self.bookings
            if b.patient_id == patient.value and any(u.hsa_id == unit for u in b.units)
        ]


def _booking(booking_id: str = "BK-R1", **changes: Any) -> JournalBooking:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    base = JournalBooking(
        booking_id=booking_id,
        patient_id=TOLVAN.value,
        start=start,
        end=start + timedelta(minutes=30),
        status=JournalStatus.BOOKED,
        time_type="NYB",
        time_type_name="Nybesök",
        reason="Kontroll",
        practitioners=(Resource("SE2321000016-1A2B", "Anna Läkare"),),
        units=(Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),),
    )
    return replace(base, **changes)


async def test_r_bk_4_asking_twice_before_processing_stores_the_second_repair_as_a_duplicate(
    engine: Engine,
) -> None:
    mappings = mapping_tables.load()
    inbox = Inbox(engine)
    inbox.start()
    try:
        intake = Intake(mappings, inbox)
        journal = FakeJournal([_booking(), _booking("BK-R2", status=JournalStatus.CANCELLED)])
        kwargs: dict[str, Any] = {"client": journal, "intake": intake, "engine": engine, "mappings": mappings}

        first = await refresh_bookings(TOLVAN, None, **kwargs)
        second = await refresh_bookings(TOLVAN, None, **kwargs)
    finally:
        inbox.stop()

    assert (first.created, first.already_sent, second.created, second.already_sent) == (2, 0, 2, 2)
    with engine.connect() as conn:
        _, rows = list_messages(conn, MessageFilter(limit=10))
    by_id = {r["id"]: r for r in rows}
    assert [by_id[i]["state"] for i in first.message_ids] == [RECEIVED, RECEIVED]
    assert [by_id[i]["state"] for i in second.message_ids] == [DUPLICATE, DUPLICATE]
    assert {r["transport"] for r in rows} == {TRANSPORT}
    assert sorted(by_id[i]["trigger"] for i in first.message_ids) == ["S12", "S15"]


def _drain(processor: Processor) -> None:
    """The worker's loop, in a thread of its own (it runs its own event loop)."""
    while processor.run_once():
        pass


class _Everyone:
    """Everyone exists and nobody is protected."""

    async def lookup(self, person: PersonId) -> RegisterRecord | None:
        return RegisterRecord(person=person, protection=Protection.NONE)


async def test_r_bk_4_absent_future_bookings_are_cancelled_past_and_other_units_left_alone(
    engine: Engine,
) -> None:
    mappings = mapping_tables.load()
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    other_unit = (Resource("SE2321000016-7P3K", "Barnavårdscentralen Solängen"),)
    future = _booking("BK-F1")
    gone = _booking("BK-F2", start=future.start + timedelta(hours=2), end=future.end + timedelta(hours=2))
    past = _booking("BK-P1", start=now - timedelta(days=3), end=now - timedelta(days=3, minutes=-30))
    elsewhere = _booking("BK-O1", units=other_unit)
    journal = FakeJournal([future, gone, past, elsewhere], care_units=(UNIT, other_unit[0].hsa_id or ""))
    processor = Processor(engine, mappings, _Everyone(), clock=lambda: now)
    inbox = Inbox(engine)
    inbox.start()
    try:
        intake = Intake(mappings, inbox)
        kwargs: dict[str, Any] = {"client": journal, "intake": intake, "engine": engine, "mappings": mappings}
        first = await refresh_bookings(TOLVAN, None, clock=lambda: now, **kwargs)
        assert first.created == 4
        await asyncio.to_thread(_drain, processor)
        journal.bookings = [future]  # gone, past and elsewhere are no longer in the journal
        second = await refresh_bookings(TOLVAN, UNIT, clock=lambda: now, **kwargs)
        await asyncio.to_thread(_drain, processor)
    finally:
        inbox.stop()

    assert (second.unchanged, second.cancelled) == (1, 1)  # only the future one at the asked unit
    with engine.connect() as conn:
        rows = {
            r.booking_id: r
            for r in conn.execute(
                select(appointments.c.booking_id, appointments.c.status, appointments.c.resource)
            )
        }
    assert {b: r.status for b, r in rows.items()} == {
        "BK-F1": "booked",
        "BK-F2": "cancelled",
        "BK-P1": "booked",  # past: left alone
        "BK-O1": "booked",  # another unit, not asked
    }
    assert orjson.loads(rows["BK-F2"].resource)["cancelationReason"] == {"text": ABSENT_REASON}
