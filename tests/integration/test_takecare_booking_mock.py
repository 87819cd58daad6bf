"""The simulated journal's ``GetBookings`` (``mocks/journal/booking_ws.py``) in-process: it answers
exactly as published (R-BK-4) and refuses a request of any other shape with a clear
``soap:Client`` fault, so a gateway that drifts from the contract fails against its own mock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

import httpx
import pytest
from lxml import etree

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.journal_adapter.takecare_booking import build_request, read_answer
from mocks.journal.book import JournalBook
from mocks.journal.booking_ws import PATIENT_NOT_FOUND, ServiceSwitches, create_app, time_type_ids
from tests.fakes import pnr

TEMPURI = "http://tempuri.org/"
ACTION = {"SOAPAction": '"http://tempuri.org/GetBookings"', "Content-Type": "text/xml; charset=utf-8"}
UNIT = "SE2321000016-15CQ"
TOLVAN = "191212121212"
START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def _booking(booking_id: str, status: JournalStatus = JournalStatus.BOOKED) -> JournalBooking:
    return JournalBooking(
        booking_id=booking_id,
        patient_id=TOLVAN,
        start=START,
        end=START + timedelta(minutes=30),
        status=status,
        time_type="ATB",
        time_type_name="Återbesök",
        reason="Kontroll",
        practitioners=(Resource("SE2321000016-1A2B", "Anna Läkare"),),
        units=(Resource(UNIT, "Vårdcentralen Tolvåsen"),),
    )


@pytest.fixture
async def mock() -> AsyncIterator[tuple[httpx.AsyncClient, JournalBook, ServiceSwitches]]:
    book = JournalBook(["198001011230"])
    book.put(_booking("1"))
    book.put(_booking("2", JournalStatus.CANCELLED))
    switches = ServiceSwitches()
    transport = httpx.ASGITransport(app=create_app(book, switches))
    async with httpx.AsyncClient(transport=transport, base_url="http://journal.test") as client:
        yield client, book, switches


def _inner(patient: str = TOLVAN, unit: str = UNIT) -> str:
    return build_request(
        patient, care_unit_id_type="HSAID", care_unit_id=unit, invoking_system="TEST", now=datetime.now(UTC)
    )


def _envelope(inner: str | None, *, escaped: bool = True, extra: str = "") -> bytes:
    xml = "" if inner is None else f"<t:xml>{escape(inner) if escaped else inner}</t:xml>"
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<t:GetBookings xmlns:t="{TEMPURI}"><t:tcusername>u</t:tcusername><t:tcpassword>p</t:tcpassword>'
        f"<t:externaluser>gw</t:externaluser><t:careunitidtype>HSAID</t:careunitidtype>"
        f"<t:careunitid>{UNIT}</t:careunitid>{extra}{xml}</t:GetBookings></s:Body></s:Envelope>"
    ).encode()


def _result(response: httpx.Response) -> str:
    doc = etree.fromstring(response.content)
    text = doc.findtext(f".//{{{TEMPURI}}}GetBookingsResponse/{{{TEMPURI}}}GetBookingsResult")
    assert text is not None
    return text


async def test_r_bk_4_the_mock_answers_the_published_shape_without_cancelled_bookings(
    mock: tuple[httpx.AsyncClient, JournalBook, ServiceSwitches],
) -> None:
    client, _, _ = mock
    response = await client.post("/booking", content=_envelope(_inner()), headers=ACTION)
    assert response.status_code == 200
    assert b"&lt;ProfdocHISMessage" in response.content  # the answer is a string holding the document
    inner = etree.fromstring(_result(response))
    assert inner.tag == "ProfdocHISMessage" and inner.get("MsgType") == "Response"
    (booking,) = inner.findall("Bookings/Booking")  # the cancelled one exists no more
    assert booking.findtext("StartTime") == "202612101000"  # local time, yyyyMMddHHmm
    assert booking.findtext("TimeTypeId") == time_type_ids()["ATB"]
    assert booking.findtext("Resources/Resource/ResourceId", "").isdigit()
    assert booking.find("Status") is None
    (read,) = read_answer(_result(response), pnr(TOLVAN), {v: k for k, v in time_type_ids().items()}).bookings
    assert (read.booking_id, read.time_type, read.start) == ("1", "ATB", START)


async def test_r_bk_4_the_mock_answers_empty_bookings_and_error_documents(
    mock: tuple[httpx.AsyncClient, JournalBook, ServiceSwitches],
) -> None:
    client, _, switches = mock
    empty = await client.post("/booking", content=_envelope(_inner("198001011230")), headers=ACTION)
    container = etree.fromstring(_result(empty)).find("Bookings")
    assert container is not None and len(container) == 0 and container.get("CareUnitId") == UNIT
    unknown = await client.post("/booking", content=_envelope(_inner("190101010101")), headers=ACTION)
    error = etree.fromstring(_result(unknown))
    assert error.get("MsgType") == "Error"
    assert (error.findtext("Error/Code"), error.find("Error").get("Type")) == (PATIENT_NOT_FOUND, "Error")  # type: ignore[union-attr]
    switches.error = ("9001", "Tillfälligt fel")
    forced = etree.fromstring(
        _result(await client.post("/booking", content=_envelope(_inner()), headers=ACTION))
    )
    assert forced.findtext("Error/Code") == "9001"


@pytest.mark.parametrize(
    ("body", "headers", "complaint"),
    [
        (_envelope(_inner()), {**ACTION, "SOAPAction": '"urn:other/GetBookings"'}, "SOAPAction"),
        (_envelope(_inner(), escaped=False), ACTION, "escaped"),
        (_envelope(None), ACTION, "GetBookings/xml: missing"),
        (
            _envelope(_inner().replace("<CareUnitId>", "<X>").replace("</CareUnitId>", "</X>")),
            ACTION,
            "CareUnitId",
        ),
        (_envelope(_inner().replace('MsgType="Request"', 'MsgType="Response"')), ACTION, "MsgType"),
        (_envelope(_inner().replace('Time="', 'Time="x')), ACTION, "Time"),
        (_envelope(_inner().replace("ProfdocHISMessage", "Message")), ACTION, "root"),
        (_envelope(_inner(), extra="<t:FromDate>2026-12-01</t:FromDate>"), ACTION, "invalid"),
        (_envelope(_inner()).replace(TEMPURI.encode(), b"urn:takecare:xchange:booking:1"), ACTION, "tempuri"),
        (b"<not-xml", ACTION, "well-formed"),
    ],
)
async def test_r_bk_4_the_mock_refuses_any_other_request_shape_with_a_clear_client_fault(
    mock: tuple[httpx.AsyncClient, JournalBook, ServiceSwitches],
    body: bytes,
    headers: dict[str, str],
    complaint: str,
) -> None:
    client, _, _ = mock
    response = await client.post("/booking", content=body, headers=headers)
    assert response.status_code == 500
    fault = etree.fromstring(response.content)
    assert fault.findtext(".//faultcode") == "soap:Client"
    assert complaint in (fault.findtext(".//faultstring") or "")


async def test_the_mock_serves_the_projects_wsdl_at_its_own_address(
    mock: tuple[httpx.AsyncClient, JournalBook, ServiceSwitches],
) -> None:
    client, _, _ = mock
    wsdl = etree.fromstring((await client.get("/booking", params={"WSDL": ""})).content)
    assert wsdl.get("targetNamespace") == TEMPURI
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None and address.get("location") == "http://journal.test/booking"
