"""The journal booking service adapter (R-BK-4) against respx: every failure is translated at the
edge into the gateway's tree; and the reconcile against a real store on both backends.

Answers are fixture files (``tests/fixtures/journal_ws/``, each naming where it came from); the
WSDL and XSD are the ones the simulated journal serves.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import zeep.exceptions
from lxml import etree
from sqlalchemy import Engine

from gateway import mappings as mapping_tables
from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.booking_service import (
    ZEEP_MAP,
    JournalBookingService,
    JournalServiceSettings,
    error_class,
)
from gateway.journal_adapter.intake import Intake
from gateway.refresh import TRANSPORT, refresh_bookings
from gateway.store.inbox import DUPLICATE, RECEIVED, Inbox
from gateway.store.queries import MessageFilter, list_messages
from mocks.journal.booking_ws import WSDL_FILE, XSD_FILE
from tests.fakes import pnr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "journal_ws"
URL = "http://journal.test/booking"
TOLVAN = pnr("191212121212")


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def soap() -> Iterator[respx.MockRouter]:
    """The service's address mocked; the WSDL and XSD served as the simulated journal serves them."""
    with respx.mock(assert_all_called=False) as router:
        router.get(URL, params={"wsdl": ""}).respond(200, content=WSDL_FILE.read_bytes())
        router.get("http://journal.test/booking.xsd").respond(200, content=XSD_FILE.read_bytes())
        yield router


@pytest.fixture
async def service() -> AsyncIterator[JournalBookingService]:
    async with httpx.AsyncClient() as http:
        settings = JournalServiceSettings(url=URL, timeout=1.0, retries=1, backoff=0)
        svc = JournalBookingService(settings, http, sleep=_no_sleep)
        yield svc
        await svc.aclose()


def _xml(content: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"Content-Type": "text/xml; charset=utf-8"})


async def test_r_bk_4_bookings_are_read_into_domain_objects_and_the_request_follows_the_xsd(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    route = soap.post(URL).mock(return_value=_xml(_fixture("get_bookings_tolvan.xml")))
    since = datetime(2026, 12, 1, tzinfo=UTC)

    booked, cancelled = await service.get_bookings(TOLVAN, unit="SE2321000016-15CQ", start=since)

    assert booked.booking_id == "B26120100001"
    assert booked.start == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert booked.end - booked.start == timedelta(minutes=45)
    assert (booked.status, booked.time_type, booked.time_type_name) == (
        JournalStatus.BOOKED,
        "NYB",
        "Nybesök",
    )
    assert booked.reason == "Kontroll av blodtryck & vikt"
    assert booked.practitioners == (Resource("SE2321000016-1A2B", "Anna Läkare"),)
    assert booked.units == (Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),)
    assert (cancelled.status, cancelled.reason) == (JournalStatus.CANCELLED, None)
    # What zeep sent is a valid GetBookings by the contract's own schema.
    request = etree.fromstring(route.calls.last.request.content)
    call = request.find(".//{urn:takecare:xchange:booking:1}GetBookings")
    assert etree.XMLSchema(etree.parse(str(XSD_FILE))).validate(call)
    assert call.findtext("{urn:takecare:xchange:booking:1}CareUnitId") == "SE2321000016-15CQ"


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (httpx.ReadTimeout("slow"), TransientUpstreamError, "ReadTimeout"),
        (httpx.ConnectError("refused"), TransientUpstreamError, "ConnectError"),
        (httpx.RemoteProtocolError("cut short"), TransientUpstreamError, "RemoteProtocolError"),
        (httpx.Response(503, html="<!DOCTYPE html><p>busy</p>"), TransientUpstreamError, "HTTP 503"),
        (httpx.Response(429, text="slow down"), TransientUpstreamError, "HTTP 429"),
        (httpx.Response(404, html="<!DOCTYPE html><p>no</p>"), PermanentUpstreamError, "HTTP 404"),
        (_xml(b"<soap:Envelope><unclosed>"), PermanentUpstreamError, "invalid XML"),
        (_xml(b"<?xml version='1.0'?><html/>"), PermanentUpstreamError, "XMLSyntaxError"),
        (_xml(_fixture("fault_client.xml"), 500), PermanentUpstreamError, "PatientId"),
        (
            _xml(_fixture("fault_client.xml").replace(b"soap:Client", b"soap:Server"), 500),
            TransientUpstreamError,
            "Fault",
        ),
        (_xml(_fixture("error_patient_not_found.xml")), PermanentUpstreamError, "PATIENT_NOT_FOUND"),
        (
            _xml(_fixture("error_patient_not_found.xml").replace(b"PATIENT_NOT_FOUND", b"INTERNAL_ERROR")),
            TransientUpstreamError,
            "INTERNAL_ERROR",
        ),
        (
            _xml(_fixture("get_bookings_tolvan.xml").replace(b">191212121212<", b">198001011230<")),
            PermanentUpstreamError,
            "another patient",
        ),
        (
            _xml(_fixture("get_bookings_tolvan.xml").replace(b">Booked<", b">Maybe<")),
            PermanentUpstreamError,
            "contract",
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
        await service.get_bookings(TOLVAN)
    assert type(caught.value) is error
    assert "191212121212" not in str(caught.value)  # no personnummer in error texts (logs)
    assert route.call_count == (2 if error is TransientUpstreamError else 1)  # retried once


async def test_r_bk_4_a_transient_failure_is_retried_then_answered(
    soap: respx.MockRouter, service: JournalBookingService
) -> None:
    route = soap.post(URL).mock(
        side_effect=[httpx.ConnectError("restarting"), _xml(_fixture("get_bookings_tolvan.xml"))]
    )
    assert len(await service.get_bookings(TOLVAN)) == 2
    assert route.call_count == 2


async def test_r_bk_4_an_unreachable_wsdl_is_transient_and_tried_again_next_time(
    service: JournalBookingService,
) -> None:
    with respx.mock() as router:
        wsdl = router.get(URL, params={"wsdl": ""}).mock(side_effect=httpx.ConnectError("down"))
        with pytest.raises(TransientUpstreamError, match="ConnectError"):
            await service.get_bookings(TOLVAN)
        assert wsdl.call_count == 2


def test_every_zeep_exception_has_an_explicit_mapping() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(zeep.exceptions, inspect.isclass)
        if issubclass(cls, Exception) and not issubclass(cls, Warning) and cls.__module__ == "zeep.exceptions"
    }
    assert defined - set(ZEEP_MAP) == set()


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
    assert error_class(transport("invalid XML", status_code=200)) is PermanentUpstreamError
    assert error_class(TimeoutError()) is TransientUpstreamError


# --- the reconcile against a real store (SQLite and PostgreSQL) -------------------------------


@dataclass
class FakeJournal:
    """The ``BookingSource`` port in memory."""

    bookings: list[JournalBooking]
    namespace: str = "TAKECARE"
    facility: str = "SLL"
    url: str = URL

    async def get_bookings(self, patient: PersonId, **_: Any) -> list[JournalBooking]:
        return [b for b in self.bookings if b.patient_id == patient.value]


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
