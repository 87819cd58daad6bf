"""TakeCare XChange ``GetBookings``: the inner ``ProfdocHISMessage`` built and read as pure functions
(R-BK-4, R-BK-1). Answers are hand-built in the published shape (FACTS.md), no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway import mappings as mapping_tables
from gateway.domain.booking import JournalStatus, Resource
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.takecare_booking import (
    AnswerError,
    JournalErrorAnswer,
    TransientJournalErrorAnswer,
    build_request,
    local_stamp,
    parse_local_time,
    read_answer,
)
from tests.fakes import pnr

TOLVAN = pnr("191212121212")
IDS = mapping_tables.load().journal_time_type_ids("SIM")
HEAD = (
    'MsgType="Response" System="ProfdocHIS" SystemInstance="0" Time="20261207101500" User="gw" '
    'CareUnitType="HSAID" CareUnit="SE2321000016-15CQ" Method="Booking.GetBookings"'
)


def _answer(*bookings: str, unit: str = "SE2321000016-15CQ") -> str:
    inner = "".join(bookings)
    return (
        f'<ProfdocHISMessage {HEAD}><Bookings CareUnitIdType="HSAID" CareUnitId="{unit}" '
        f'CareUnitName="Vårdcentralen Tolvåsen">{inner}</Bookings></ProfdocHISMessage>'
    )


def _booking(
    booking_id: str = "1",
    start: str = "202612101000",
    end: str = "202612101030",
    time_type: str = "11",
    patient: str = "191212121212",
    resources: str = "",
) -> str:
    return (
        f"<Booking><BookingId>{booking_id}</BookingId><BookingType>0</BookingType>"
        f"<StartTime>{start}</StartTime><EndTime>{end}</EndTime><TimeTypeId>{time_type}</TimeTypeId>"
        f"<TimeTypeName>Namn</TimeTypeName><Resources>{resources}</Resources>"
        f"<PatientId>{patient}</PatientId><PatientReason>Orsak &amp; mer</PatientReason></Booking>"
    )


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("202603290130", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),  # winter time, +01:00
        ("202603290330", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # summer time, +02:00
        ("202610250130", datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),  # still summer time
        ("202610250330", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),  # winter time again
        ("20261201090000", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),  # seconds tolerated
    ],
)
def test_r_bk_4_numeric_times_are_swedish_local_time_dst_correct(local: str, utc: datetime) -> None:
    assert parse_local_time(local) == utc
    assert parse_local_time(local).utcoffset() == timedelta(0)


def test_r_bk_4_a_duration_across_the_autumn_dst_change_counts_real_hours() -> None:
    start, end = parse_local_time("202610250130"), parse_local_time("202610250330")
    assert end - start == timedelta(hours=3)


@pytest.mark.parametrize("bad", ["2026-12-01T09:00", "20261201", "2026120109000", "", "20261301090000"])
def test_r_bk_4_a_time_not_in_the_published_form_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_local_time(bad)


def test_r_bk_4_the_request_document_has_the_published_root_attributes_and_children() -> None:
    now = datetime(2026, 7, 1, 10, 0, 5, tzinfo=UTC)
    text = build_request(
        "191212121212",
        care_unit_id_type="HSAID",
        care_unit_id="SE2321000016-15CQ",
        invoking_system="GW",
        now=now,
    )
    doc = etree.fromstring(text)
    assert doc.tag == "ProfdocHISMessage" and doc.nsmap == {}
    assert (doc.get("MsgType"), doc.get("Time"), doc.get("InvokingSystem")) == (
        "Request",
        "20260701120005",
        "GW",
    )
    assert [(c.tag, c.text) for c in doc] == [
        ("PatientId", "191212121212"),
        ("CareUnitIdType", "HSAID"),
        ("CareUnitId", "SE2321000016-15CQ"),
    ]
    assert local_stamp(now, seconds=False) == "202607011200"


def test_r_bk_4_a_returned_booking_is_booked_with_its_unit_and_named_resources() -> None:
    resources = (
        "<Resource><ResourceType>1</ResourceType><ResourceId>10234</ResourceId>"
        "<ResourceName>Anna Läkare</ResourceName></Resource>"
        "<Resource><ResourceType>4</ResourceType><ResourceId>20017</ResourceId>"
        "<ResourceName>Rum 3</ResourceName></Resource>"
        "<Resource><ResourceType>1</ResourceType><ResourceId>10577</ResourceId>"
        "<ResourceName>Örjan Sjöström</ResourceName></Resource>"
    )
    answer = read_answer(_answer(_booking(resources=resources)), TOLVAN, IDS)
    (booking,) = answer.bookings
    assert booking.status is JournalStatus.BOOKED  # no status in the answer: it exists
    assert booking.start == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    assert booking.reason == "Orsak & mer"
    # Resource ids are the journal's numbers, not HSA-ids: only the names travel; a room is no person.
    assert booking.practitioners == (Resource(None, "Anna Läkare"), Resource(None, "Örjan Sjöström"))
    assert booking.units == (Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),)
    assert (answer.system, answer.system_instance) == ("ProfdocHIS", "0")


def test_r_bk_1_a_known_time_type_id_maps_to_its_code_and_an_unknown_one_stays_hidden() -> None:
    answer = read_answer(_answer(_booking("1", time_type="11"), _booking("2", time_type="4711")), TOLVAN, IDS)
    known, unknown = answer.bookings
    assert known.time_type == "NYB"
    assert unknown.time_type is None  # no code: hidden (R-BK-1), the safe default
    assert unknown.time_type_name == "Namn"
    assert answer.unknown_time_type_ids == ("4711",)
    assert mapping_tables.load().time_type_visible(unknown.time_type) is False


def test_r_bk_1_time_type_ids_are_per_journal_instance() -> None:
    other = {"11": "DOLD"}  # another region's TakeCare numbers its time types otherwise
    (booking,) = read_answer(_answer(_booking(time_type="11")), TOLVAN, other).bookings
    assert booking.time_type == "DOLD"


@pytest.mark.parametrize(
    "document",
    [
        _answer(),  # one empty Bookings
        f"<ProfdocHISMessage {HEAD}><Bookings/></ProfdocHISMessage>",
        f"<ProfdocHISMessage {HEAD}/>",  # no Bookings at all
        f'<?xml version="1.0" encoding="utf-16"?>\n{_answer()}',  # .NET's declaration in a str
    ],
)
def test_r_bk_4_a_known_patient_without_bookings_is_an_empty_answer(document: str) -> None:
    assert read_answer(document, TOLVAN, IDS).bookings == ()


def test_r_bk_4_several_bookings_containers_are_read_in_order() -> None:
    doc = _answer(_booking("1")).replace(
        "</ProfdocHISMessage>",
        '<Bookings CareUnitIdType="HSAID" CareUnitId="SE2321000016-7P3K">' + _booking("2") + "</Bookings>"
        "</ProfdocHISMessage>",
    )
    first, second = read_answer(doc, TOLVAN, IDS).bookings
    assert first.units[0].hsa_id == "SE2321000016-15CQ"
    assert (second.booking_id, second.units) == ("2", (Resource("SE2321000016-7P3K", None),))


def _error(*codes: str) -> str:
    errors = "".join(f'<Error Type="Error"><Code>{c}</Code><Msg>Fel {c}</Msg></Error>' for c in codes)
    return f"<ProfdocHISMessage {HEAD.replace('Response', 'Error')}>{errors}</ProfdocHISMessage>"


def test_r_bk_4_an_error_document_is_permanent_and_names_its_numeric_code() -> None:
    with pytest.raises(JournalErrorAnswer, match=r"Error 1001 \(Error\): Fel 1001") as caught:
        read_answer(_error("1001"), TOLVAN, IDS)
    assert isinstance(caught.value, PermanentUpstreamError)
    assert [(e.type, e.code) for e in caught.value.errors] == [("Error", "1001")]


def test_r_bk_4_an_error_document_is_transient_only_when_every_code_is_configured_so() -> None:
    with pytest.raises(TransientJournalErrorAnswer) as caught:
        read_answer(_error("9001"), TOLVAN, IDS, transient_codes={"9001"})
    assert isinstance(caught.value, TransientUpstreamError)
    with pytest.raises(JournalErrorAnswer):
        read_answer(_error("9001", "1001"), TOLVAN, IDS, transient_codes={"9001"})


@pytest.mark.parametrize(
    ("document", "text"),
    [
        (_answer(_booking(patient="198001011230")), "another patient"),
        (_answer(_booking(start="2026-12-10T10:00")), "yyyyMMddHHmm"),
        (_answer(_booking(end="202612100900")), "ends before it starts"),
        (_answer(_booking(time_type="NYB")), "not a number"),
        (_answer(_booking().replace("<BookingId>1</BookingId>", "")), "no BookingId"),
        (f"<ProfdocHISMessage {HEAD.replace('Response', 'Status')}/>", "neither Response nor Error"),
        ("<Other/>", "not ProfdocHISMessage"),
        ("<ProfdocHISMessage", "well-formed"),
        ("", "empty"),
        ('<!DOCTYPE x [<!ENTITY e "boom">]><ProfdocHISMessage MsgType="Response"/>', "DOCTYPE"),
    ],
)
def test_r_bk_4_an_answer_breaking_the_contract_is_a_permanent_error(document: str, text: str) -> None:
    with pytest.raises(AnswerError, match=text) as caught:
        read_answer(document, TOLVAN, IDS)
    assert "191212121212" not in str(caught.value)  # no personnummer in error texts (logs)


# --- issue 21: the write operations' documents and the journal's permissions (R-BK-8) ---------


def test_r_bk_8_cancel_and_reschedule_allowed_are_read() -> None:
    from gateway.domain.identity import IdKind, PersonId
    from gateway.journal_adapter.takecare_booking import read_answer as read

    person = PersonId(IdKind.PERSONNUMMER, "191212121212", "1.2.752.129.2.1.3.1")
    doc = (
        '<ProfdocHISMessage MsgType="Response"><Bookings CareUnitId="U">'
        "<Booking><BookingId>1</BookingId><StartTime>202612141000</StartTime><EndTime>202612141030</EndTime>"
        "<TimeTypeId>11</TimeTypeId><PatientId>191212121212</PatientId><CancelAllowed>0</CancelAllowed>"
        "<RescheduleAllowed>1</RescheduleAllowed></Booking>"
        "<Booking><BookingId>2</BookingId><StartTime>202612141000</StartTime><EndTime>202612141030</EndTime>"
        "<TimeTypeId>11</TimeTypeId></Booking></Bookings></ProfdocHISMessage>"
    )
    first, second = read(doc, person, {"11": "NYB"}).bookings
    assert (first.cancel_allowed, first.reschedule_allowed) == (False, True)
    assert (second.cancel_allowed, second.reschedule_allowed) == (None, None)


def test_write_requests_carry_the_published_envelope_and_local_times() -> None:
    from datetime import UTC, date, datetime

    from lxml import etree as et

    from gateway.journal_adapter import takecare_booking_write as w

    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    start = datetime(2026, 12, 14, 9, 0, tzinfo=UTC)
    text = w.make_booking_request(
        unit_type="HSAID", unit="U", patient_id="191212121212", start=start, end=start.replace(minute=30),
        time_type_id="11", resource_id=None, reason="Ont", invoking_system="GW", now=now,
    )  # fmt: skip
    doc = et.fromstring(text)
    assert (doc.tag, doc.get("MsgType"), doc.get("Time")) == (
        "ProfdocHISMessage",
        "Request",
        "20261207100000",
    )
    assert [c.tag for c in doc] == [
        "CareUnitIdType", "CareUnitId", "PatientId", "StartTime", "EndTime", "TimeTypeId", "PatientReason",
    ]  # fmt: skip
    assert doc.findtext("StartTime") == "202612141000"  # Swedish local time
    slots = w.timeslots_request(
        unit_type="HSAID", unit="U", time_type_id="11", first=date(2026, 12, 14), last=date(2026, 12, 15),
        invoking_system="GW", now=now,
    )  # fmt: skip
    assert et.fromstring(slots).findtext("StartDate") == "20261214"
    answer = (
        '<ProfdocHISMessage MsgType="Response"><Timeslots CareUnitId="U"><Timeslot>'
        "<StartTime>202612141000</StartTime><EndTime>202612141030</EndTime><TimeTypeId>90</TimeTypeId>"
        "</Timeslot></Timeslots></ProfdocHISMessage>"
    )
    [slot] = w.read_timeslots(answer, {"11": "NYB"})
    assert slot.time_type is None  # an unknown id: hidden (R-BK-1)
