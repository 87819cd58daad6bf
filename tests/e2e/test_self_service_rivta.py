"""RIV-TA crm:scheduling 1.1 producer (issue 21): the same use case as the FHIR face. A citizen
lists free times, books, rebooks and cancels over SOAP with a RIVTABP21 LogicalAddress; the
journal mock's calendar shows each change once; GetSubjectOfCareSchedule and the FHIR
Appointment agree; refusals answer resultCode ERROR naming the rule and change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from lxml import etree

from gateway.api.rivta_scheduling import ADDRESSING, CORE, PATH, SOAP_ENV, responder
from gateway.fhir.appointment import appointment_id
from gateway.journal_adapter.timestamps import STOCKHOLM
from tests.conftest import wait_processed
from tests.e2e.test_self_service_fhir import FIRST, SKYDDAD, TOLVAN, UNIT, World, world  # noqa: F401

NYB_ID = "11"


def _call(w: World, name: str, body: str, address: str = UNIT) -> etree._Element:
    envelope = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ADDRESSING}" xmlns:r="{responder(name)}" '
        f'xmlns:c="{CORE}"><soap:Header><a:LogicalAddress>{address}</a:LogicalAddress></soap:Header>'
        f"<soap:Body><r:{name}>{body}</r:{name}></soap:Body></soap:Envelope>"
    )
    r = w.http.post(PATH, content=envelope.encode(), headers={"Content-Type": "text/xml; charset=utf-8"})
    assert r.status_code in (200, 400), r.text  # a caller's fault is a 400, never a 5xx
    return etree.fromstring(r.content)


def _texts(doc: etree._Element, name: str) -> list[str]:
    return [
        el.text or ""
        for el in doc.iter()
        if isinstance(el.tag, str) and etree.QName(el.tag).localname == name
    ]


def _ts(moment: datetime) -> str:
    return moment.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S")


def test_rivta_book_rebook_cancel_and_schedule_agrees_with_fhir(world: World) -> None:  # noqa: F811
    w = world
    day = FIRST.astimezone(STOCKHOLM).strftime("%Y%m%d")
    free = _call(
        w,
        "GetAvailableTimeslots",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:startDateInclusive>{day}</r:startDateInclusive>"
        f"<r:endDateInclusive>{day}</r:endDateInclusive><r:timeTypeID>{NYB_ID}</r:timeTypeID>",
    )
    starts = _texts(free, "startTimeInclusive")
    ends = _texts(free, "endTimeExclusive")
    assert len(starts) == 6
    booked = _call(
        w,
        "MakeBooking",
        f"<r:healthcare_facility_med>{UNIT}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{starts[0]}</c:startTimeInclusive><c:endTimeExclusive>{ends[0]}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{UNIT}</c:healthcare_facility><c:subject_of_care>{TOLVAN}</c:subject_of_care>"
        f"<c:timeTypeID>{NYB_ID}</c:timeTypeID></r:requestedTimeslot>"
        "<r:subject_of_care_info><firstName>T</firstName><lastName>T</lastName></r:subject_of_care_info>",
    )
    assert _texts(booked, "resultCode") == ["OK"], etree.tostring(booked)
    [booking_id] = _texts(booked, "bookingId")
    # Rebook, then the schedule and FHIR agree on the new time.
    updated = _call(
        w,
        "UpdateBooking",
        f"<r:requestedTimeslot><c:startTimeInclusive>{starts[3]}</c:startTimeInclusive>"
        f"<c:endTimeExclusive>{ends[3]}</c:endTimeExclusive><c:healthcare_facility>{UNIT}</c:healthcare_facility>"
        f"<c:bookingId>{booking_id}</c:bookingId></r:requestedTimeslot>",
    )
    assert _texts(updated, "resultCode") == ["OK"], etree.tostring(updated)
    schedule = _call(
        w,
        "GetSubjectOfCareSchedule",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{TOLVAN}</r:subject_of_care>",
    )
    assert _texts(schedule, "bookingId") == [booking_id]
    assert _texts(schedule, "startTimeInclusive") == [starts[3]]
    wait_processed(w.http)
    fhir = w.http.get(f"/fhir/Appointment/{appointment_id('TAKECARE', booking_id)}").json()
    assert _ts(datetime.fromisoformat(fhir["start"])) == starts[3]
    # Cancel.
    cancelled = _call(
        w,
        "CancelBooking",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:bookingId>{booking_id}</r:bookingId>"
        "<r:message>Förhindrad</r:message>",
    )
    assert _texts(cancelled, "resultCode") == ["OK"]
    assert [c.trigger for c in w.calendar.changes] == ["S12", "S13", "S15"]
    assert (
        _texts(
            _call(
                w,
                "GetSubjectOfCareSchedule",
                f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{TOLVAN}</r:subject_of_care>",
            ),
            "bookingId",
        )
        == []
    )


def test_rivta_refusals_and_logical_address(world: World) -> None:  # noqa: F811
    w = world
    before = w.calendar.snapshot()
    protected = _call(
        w,
        "GetSubjectOfCareSchedule",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{SKYDDAD}</r:subject_of_care>",
    )
    assert _texts(protected, "faultcode") == ["soap:Client"] and "R-ID-3" in "".join(
        _texts(protected, "faultstring")
    )
    start = _ts(FIRST)
    hidden = _call(
        w,
        "MakeBooking",
        f"<r:healthcare_facility_med>{UNIT}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{start}</c:startTimeInclusive><c:endTimeExclusive>{start}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{UNIT}</c:healthcare_facility><c:subject_of_care>{TOLVAN}</c:subject_of_care>"
        "<c:timeTypeID>90</c:timeTypeID></r:requestedTimeslot>",
    )
    assert _texts(hidden, "resultCode") == ["ERROR"] and "R-BK-1" in "".join(_texts(hidden, "resultText"))
    wrong = _call(
        w,
        "GetSubjectOfCareSchedule",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{TOLVAN}</r:subject_of_care>",
        address="SE2321000016-7P3K",
    )
    assert "LogicalAddress" in etree.tostring(wrong).decode()
    assert w.calendar.snapshot() == before


def test_rivta_answers_follow_the_own_schemas_and_the_wsdls_load(world: World) -> None:  # noqa: F811
    import zeep

    from gateway.api.rivta_scheduling import INTERACTIONS, SCHEMAS, schema

    w = world
    answer = _call(
        w,
        "GetSubjectOfCareSchedule",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{TOLVAN}</r:subject_of_care>",
    )
    body = answer.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    assert schema("GetSubjectOfCareSchedule").validate(body[0])
    bad = _call(w, "MakeBooking", "<r:nonsense/>")
    assert _texts(bad, "faultcode") == ["soap:Client"] and "contract" in "".join(_texts(bad, "faultstring"))
    for name in INTERACTIONS:
        client = zeep.Client(str(SCHEMAS / f"{name}Interaction_1.1_RIVTABP21.wsdl"))
        assert name in client.service._binding._operations
        served = w.http.get(PATH, params={"wsdl": name})
        assert served.status_code == 200 and b"ResponderBinding" in served.content


def _schedule(w: World, person: str = TOLVAN) -> list[tuple[str, str, str]]:
    doc = _call(
        w,
        "GetSubjectOfCareSchedule",
        f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{person}</r:subject_of_care>",
    )
    assert _texts(doc, "faultcode") == [], etree.tostring(doc)
    ids = [appointment_id("TAKECARE", b) for b in _texts(doc, "bookingId")]
    return sorted(zip(ids, _texts(doc, "startTimeInclusive"), _texts(doc, "endTimeExclusive"), strict=True))


def _fhir_booked(w: World, person: str = TOLVAN) -> list[tuple[str, str, str]]:
    """The citizen's Appointments the platform shows as booked, as (Appointment id, start, end)."""
    wait_processed(w.http)
    bundle = w.http.get("/fhir/Appointment", params={"patient:identifier": person}).json()
    out = []
    for entry in bundle.get("entry", []):
        a = entry["resource"]
        if a["status"] == "booked":
            out.append(
                (a["id"], _ts(datetime.fromisoformat(a["start"])), _ts(datetime.fromisoformat(a["end"])))
            )
    return sorted(out)


def test_fhir_appointments_and_get_subject_of_care_schedule_agree_after_book_rebook_cancel(
    world: World,  # noqa: F811
) -> None:
    """Issue 21 done-when: the FHIR face and crm:scheduling agree for the same citizen after each
    change, whichever face made it."""
    w = world
    assert _schedule(w) == _fhir_booked(w) == []
    day = FIRST.date().isoformat()
    slots = w.http.get(
        "/fhir/Slot",
        params={"schedule.actor": UNIT, "service-type": "NYB", "start": f"ge{day}"},
        headers={"X-Acting-Person": TOLVAN},
    ).json()["entry"]
    body = {
        "resourceType": "Appointment",
        "slot": [{"reference": f"Slot/{slots[0]['resource']['id']}"}],
        "participant": [{"actor": {"type": "Patient", "identifier": {"value": TOLVAN}}}],
    }
    headers = {"X-Acting-Person": TOLVAN, "Content-Type": "application/fhir+json", "Idempotency-Key": "agree"}
    made = w.http.post("/fhir/Appointment", json=body, headers=headers)
    assert made.status_code == 201, made.text
    after_book = _schedule(w)
    assert len(after_book) == 1 and after_book == _fhir_booked(w)
    # Rebook through crm:scheduling, then both faces show the new time.
    [(appointment, _, _)] = after_book
    assert appointment == made.json()["id"]
    booking_id = w.calendar.changes[0].booking_id
    start = datetime.fromisoformat(slots[3]["resource"]["start"])
    end = datetime.fromisoformat(slots[3]["resource"]["end"])
    moved = _call(
        w,
        "UpdateBooking",
        f"<r:requestedTimeslot><c:startTimeInclusive>{_ts(start)}</c:startTimeInclusive>"
        f"<c:endTimeExclusive>{_ts(end)}</c:endTimeExclusive><c:healthcare_facility>{UNIT}</c:healthcare_facility>"
        f"<c:bookingId>{booking_id}</c:bookingId></r:requestedTimeslot>",
    )
    assert _texts(moved, "resultCode") == ["OK"], etree.tostring(moved)
    assert _schedule(w) == _fhir_booked(w) == [(appointment, _ts(start), _ts(end))]
    # Cancel through FHIR: neither face shows it booked any more.
    r = w.http.patch(
        f"/fhir/Appointment/{made.json()['id']}",
        json={"status": "cancelled", "cancelationReason": {"text": "Förhindrad"}},
        headers={**headers, "Idempotency-Key": "agree-cancel"},
    )
    assert r.status_code == 200, r.text
    assert _schedule(w) == _fhir_booked(w) == []
    assert [c.trigger for c in w.calendar.changes] == ["S12", "S13", "S15"]


def _answer(doc: etree._Element, name: str) -> etree._Element:
    body = doc.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None and len(body), etree.tostring(doc)
    from gateway.api.rivta_scheduling import schema

    assert schema(name).validate(body[0]), schema(name).error_log
    return body[0]


def test_r_bk_7_get_all_time_types_available_dates_and_booking_details(world: World) -> None:  # noqa: F811
    """The remaining crm:scheduling reads, on the journal's GetTimeTypes/GetAvailableDates: hidden
    time types are never listed (R-BK-7), a protected person gets nothing (R-ID-3)."""
    w = world
    facility = f"<r:healthcare_facility>{UNIT}</r:healthcare_facility>"
    types = _answer(
        _call(w, "GetAllTimeTypes", f"{facility}<r:subject_of_care>{TOLVAN}</r:subject_of_care>"),
        "GetAllTimeTypes",
    )
    ids = _texts(types, "timeTypeId")
    assert {"11", "12", "13"} <= set(ids)  # NYB, ATB, TEL
    assert not {"90", "91", "92"} & set(ids)  # ADM, KONF, DOLD: hidden (R-BK-7)
    assert "Nybesök" in _texts(types, "timeTypeName")
    protected = _call(w, "GetAllTimeTypes", f"{facility}<r:subject_of_care>{SKYDDAD}</r:subject_of_care>")
    assert _texts(protected, "timeTypeId") == [] and "R-ID-3" in "".join(_texts(protected, "faultstring"))

    day = FIRST.astimezone(STOCKHOLM).strftime("%Y%m%d")
    week = (FIRST + timedelta(days=7)).astimezone(STOCKHOLM).strftime("%Y%m%d")
    span = (
        f"<r:startDateInclusive>{day}</r:startDateInclusive><r:endDateInclusive>{week}</r:endDateInclusive>"
    )
    dates = _answer(
        _call(w, "GetAvailableDates", f"{facility}{span}<r:timeTypeID>{NYB_ID}</r:timeTypeID>"),
        "GetAvailableDates",
    )
    assert _texts(dates, "date") == [day] and _texts(dates, "timeTypeID") == [NYB_ID]
    every = _answer(_call(w, "GetAvailableDates", f"{facility}{span}"), "GetAvailableDates")
    assert set(_texts(every, "timeTypeID")) == {NYB_ID}  # the ADM slots that day are never offered
    hidden = _call(w, "GetAvailableDates", f"{facility}{span}<r:timeTypeID>90</r:timeTypeID>")
    assert _texts(hidden, "date") == [] and "R-BK-1" in "".join(_texts(hidden, "faultstring"))

    free = _call(
        w,
        "GetAvailableTimeslots",
        f"{facility}<r:startDateInclusive>{day}</r:startDateInclusive>"
        f"<r:endDateInclusive>{day}</r:endDateInclusive><r:timeTypeID>{NYB_ID}</r:timeTypeID>",
    )
    start, end = _texts(free, "startTimeInclusive")[0], _texts(free, "endTimeExclusive")[0]
    booked = _call(
        w,
        "MakeBooking",
        f"<r:healthcare_facility_med>{UNIT}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{start}</c:startTimeInclusive><c:endTimeExclusive>{end}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{UNIT}</c:healthcare_facility><c:subject_of_care>{TOLVAN}</c:subject_of_care>"
        f"<c:timeTypeID>{NYB_ID}</c:timeTypeID></r:requestedTimeslot>",
    )
    [booking_id] = _texts(booked, "bookingId")
    wait_processed(w.http)
    details = _answer(
        _call(w, "GetBookingDetails", f"{facility}<r:bookingId>{booking_id}</r:bookingId>"),
        "GetBookingDetails",
    )
    assert _texts(details, "bookingId") == [booking_id]
    assert _texts(details, "startTimeInclusive") == [start] and _texts(details, "timeTypeID") == [NYB_ID]
    assert _texts(details, "cancel_booking_allowed") == ["true"]
    unknown = _call(w, "GetBookingDetails", f"{facility}<r:bookingId>NOPE</r:bookingId>")
    assert _texts(unknown, "faultcode") == ["soap:Client"]


def test_r_acc_3_a_new_time_at_a_health_centre_only_for_its_listed_citizens(world: World) -> None:  # noqa: F811
    """R-ACC-3 (seed 000): Tolvan is listed at another health centre, so a new booking at
    Vårdcentralen Tolvåsen is refused on both faces with the rule named, and nothing changes in
    the journal; once listed there, the same request books."""
    from gateway.domain.accounts import Account, AccountStatus
    from tests.fakes import pnr

    w = world
    listed_here = w.accounts.accounts[TOLVAN]
    w.accounts.accounts[TOLVAN] = Account(pnr(TOLVAN), AccountStatus.ACTIVE, "SE2321000016-7P3K")
    before = w.calendar.snapshot()
    day = FIRST.date().isoformat()
    [slot, *_] = w.http.get(
        "/fhir/Slot",
        params={"schedule.actor": UNIT, "service-type": "NYB", "start": f"ge{day}"},
        headers={"X-Acting-Person": TOLVAN},
    ).json()["entry"]
    body = {
        "resourceType": "Appointment",
        "slot": [{"reference": f"Slot/{slot['resource']['id']}"}],
        "participant": [{"actor": {"type": "Patient", "identifier": {"value": TOLVAN}}}],
    }
    headers = {"X-Acting-Person": TOLVAN, "Content-Type": "application/fhir+json", "Idempotency-Key": "acc3"}
    r = w.http.post("/fhir/Appointment", json=body, headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["resourceType"] == "OperationOutcome" and "R-ACC-3" in r.json()["issue"][0]["diagnostics"]
    start = _ts(datetime.fromisoformat(slot["resource"]["start"]))
    end = _ts(datetime.fromisoformat(slot["resource"]["end"]))
    make = (
        f"<r:healthcare_facility_med>{UNIT}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{start}</c:startTimeInclusive><c:endTimeExclusive>{end}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{UNIT}</c:healthcare_facility><c:subject_of_care>{TOLVAN}</c:subject_of_care>"
        f"<c:timeTypeID>{NYB_ID}</c:timeTypeID></r:requestedTimeslot>"
    )
    refused = _call(w, "MakeBooking", make)
    assert _texts(refused, "resultCode") == ["ERROR"] and "R-ACC-3" in "".join(_texts(refused, "resultText"))
    assert _texts(refused, "bookingId") == []
    assert w.calendar.snapshot() == before and w.calendar.changes == []

    w.accounts.accounts[TOLVAN] = listed_here
    booked = _call(w, "MakeBooking", make)
    assert _texts(booked, "resultCode") == ["OK"], etree.tostring(booked)
    assert [c.trigger for c in w.calendar.changes] == ["S12"]
