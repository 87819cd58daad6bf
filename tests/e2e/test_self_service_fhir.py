"""Citizen self-service through the FHIR face (issue 21) against the journal mock's calendar on a
real port, with a running gateway: free Slots, book, rebook, cancel; the journal pushes each
change's SIU over MLLP and the Appointment follows it. A lost answer books once. Refused cases
(deadline passed, hidden time type, locked account, protected person, not allowed by the journal)
answer an OperationOutcome naming the rule and leave the calendar as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.domain.accounts import Account, AccountStatus
from gateway.store import booking_commands, tables
from gateway.testing import GatewayThread
from mocks.journal.booking_ws import ServiceSwitches, create_app
from mocks.journal.calendar import JournalCalendar
from mocks.journal.simulator import push
from mocks.runner import ServedApp
from tests.conftest import _settings, wait_processed
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister, pnr

UNIT = "SE2321000016-15CQ"
TOLVAN = "191212121212"
SKYDDAD = "198203152452"
HSA = "urn:oid:1.2.752.29.4.19"
#: A week ahead, on the half hour: the slots the calendar offers.
FIRST = (datetime.now(UTC) + timedelta(days=7)).replace(hour=8, minute=0, second=0, microsecond=0)


@dataclass
class World:
    http: httpx.Client
    calendar: JournalCalendar
    switches: ServiceSwitches
    accounts: FakeAccounts
    gw: GatewayThread | None = None
    #: While not None, the journal's SIU pushes wait here (the test pushes them itself).
    held: list[bytes] | None = None


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    calendar = JournalCalendar()
    calendar.open_slots(UNIT, "NYB", FIRST, 6)
    calendar.open_slots(UNIT, "ADM", FIRST, 2)
    for person in (TOLVAN, SKYDDAD):
        calendar.know(person)
    soon = (datetime.now(UTC) + timedelta(hours=10)).replace(minute=0, second=0, microsecond=0)
    calendar.open_slots(UNIT, "ATB", soon, 1)
    switches = ServiceSwitches()
    target: dict[str, tuple[str, int]] = {}

    worlds: list[World] = []

    async def pusher(messages: list[bytes]) -> None:
        if worlds and worlds[0].held is not None:
            worlds[0].held.extend(messages)
            return
        host, port = target["mllp"]
        await push(messages, host, port)

    accounts = FakeAccounts(
        {
            TOLVAN: Account(pnr(TOLVAN), AccountStatus.ACTIVE, UNIT, sms_consent=True, mobile="+46701234567"),
            SKYDDAD: Account(pnr(SKYDDAD), AccountStatus.ACTIVE, UNIT),
        }
    )
    with ServedApp(create_app(calendar.book, switches, calendar=calendar, pusher=pusher)) as served:
        monkeypatch.setenv("GATEWAY_JOURNAL_WS_URL", f"{served.url}/booking")
        monkeypatch.setenv("GATEWAY_JOURNAL_WS_RETRIES", "0")
        with GatewayThread(
            _settings(tmp_path), register=FakeRegister(), accounts=accounts, mailbox=FakeMailbox()
        ) as gw:
            target["mllp"] = gw.mllp_address
            with httpx.Client(base_url=gw.http_url, timeout=15) as http:
                worlds.append(World(http, calendar, switches, accounts, gw))
                yield worlds[0]


def _as(person: str = TOLVAN, key: str | None = None) -> dict[str, str]:
    headers = {"X-Acting-Person": person, "Content-Type": "application/fhir+json"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


def _slots(w: World, time_type: str = "NYB") -> list[dict[str, Any]]:
    day = FIRST.date().isoformat()
    r = w.http.get(
        "/fhir/Slot",
        params=[
            ("schedule.actor", f"{HSA}|{UNIT}"),
            ("service-type", time_type),
            ("start", f"ge{day}"),
            ("start", f"le{day}"),
        ],
        headers=_as(),
    )
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json()["entry"]]


def _book(w: World, slot: dict[str, Any], person: str = TOLVAN, key: str = "book-1") -> httpx.Response:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "participant": [
            {"actor": {"type": "Patient", "identifier": {"value": person}}, "status": "accepted"}
        ],
    }
    return w.http.post("/fhir/Appointment", json=body, headers=_as(person, key))


def _stored(w: World, appointment_id: str) -> dict[str, Any]:
    wait_processed(w.http)
    r = w.http.get(f"/fhir/Appointment/{appointment_id}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_r_bk_11_book_rebook_cancel_through_fhir(world: World) -> None:
    w = world
    slots = _slots(w)
    assert len(slots) == 6 and all(s["status"] == "free" for s in slots)
    r = _book(w, slots[0])
    assert r.status_code == 201, r.text
    appointment = r.json()
    assert appointment["start"] == slots[0]["start"]
    assert _stored(w, appointment["id"])["status"] == "booked"
    assert len(_slots(w)) == 5
    # Rebook to another free slot.
    r = w.http.patch(
        f"/fhir/Appointment/{appointment['id']}",
        json={"slot": [{"reference": f"Slot/{slots[2]['id']}"}]},
        headers=_as(key="move-1"),
    )
    assert r.status_code == 200, r.text
    moved = datetime.fromisoformat(slots[2]["start"])
    assert datetime.fromisoformat(_stored(w, appointment["id"])["start"]) == moved
    assert datetime.fromisoformat(r.json()["start"]) == moved
    # Cancel with a reason.
    r = w.http.patch(
        f"/fhir/Appointment/{appointment['id']}",
        json={"status": "cancelled", "cancelationReason": {"text": "Förhindrad"}},
        headers=_as(key="cancel-1"),
    )
    assert r.status_code == 200, r.text
    assert _stored(w, appointment["id"])["status"] == "cancelled"
    assert [c.trigger for c in w.calendar.changes] == ["S12", "S13", "S15"]
    # The same POST again: the same booking, nothing new in the journal.
    again = _book(w, slots[0])
    assert again.status_code == 200 and again.json()["id"] == appointment["id"]
    assert len(w.calendar.changes) == 3


def test_r_bk_11_lost_answer_books_once(world: World) -> None:
    w = world
    slot = _slots(w)[0]
    w.switches.lose_answers = 1
    r = _book(w, slot, key="lost")
    assert r.status_code == 503, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    r = _book(w, slot, key="lost")
    assert r.status_code == 201, r.text
    assert [c.trigger for c in w.calendar.changes] == ["S12"]
    assert len(w.calendar.book.bookings(TOLVAN)) == 1


def _version(w: World, appointment_id: str) -> str:
    return str(_stored(w, appointment_id)["meta"]["versionId"])


def _facts(w: World, appointment_id: str, key: str) -> tuple[int, int, datetime | None]:
    """(messages stored, the booking's notifications, when its command was echoed)."""
    assert w.gw is not None
    with w.gw.gateway.engine.begin() as conn:
        messages = conn.execute(select(func.count()).select_from(tables.messages)).scalar_one()
        notices = conn.execute(
            select(func.count())
            .select_from(tables.notifications)
            .where(tables.notifications.c.subject_id == appointment_id)
        ).scalar_one()
        echoed = booking_commands.echoed_at(conn, key)
    return messages, notices, echoed


def test_r_bk_11_the_journals_siu_for_a_command_is_its_echo(world: World) -> None:
    """The command's result is in the store before the journal pushes anything; the journal's
    SIU for the same change then marks the command echoed and makes no second version and no
    second notification. A later SIU that differs (staff moved the booking) is applied."""
    w = world
    slots = _slots(w)
    w.held = []
    r = _book(w, slots[0], key="echo-book")
    assert r.status_code == 201, r.text
    appointment_id = r.json()["id"]
    assert _version(w, appointment_id) == "1"  # shown without the journal's push
    messages, notices, echoed = _facts(w, appointment_id, "echo-book")
    assert (messages, echoed) == (1, None) and notices > 0  # the command's own SIU, reminders planned
    held, w.held = w.held, None
    assert [m.split(b"|")[8] for m in held] == [b"SIU^S12^SIU_S12"]
    push_now(held, w)
    wait_processed(w.http)
    assert _version(w, appointment_id) == "1"
    messages, again, echoed = _facts(w, appointment_id, "echo-book")
    assert messages == 2 and again == notices and echoed is not None

    # The journal first (as the mock answers: push, then the answer): one new version only.
    r = w.http.patch(
        f"/fhir/Appointment/{appointment_id}",
        json={"slot": [{"reference": f"Slot/{slots[2]['id']}"}]},
        headers=_as(key="echo-move"),
    )
    assert r.status_code == 200, r.text
    assert _version(w, appointment_id) == "2"
    assert _facts(w, appointment_id, "echo-move")[2] is not None

    # Staff move it in the journal afterwards: that SIU differs, and is applied as any other.
    booking_id = w.calendar.changes[0].booking_id
    w.calendar.reschedule(
        TOLVAN, booking_id, datetime.fromisoformat(slots[4]["start"]), datetime.fromisoformat(slots[4]["end"])
    )
    push_now(w.calendar.outbox[-1:], w)
    wait_processed(w.http)
    stored = _stored(w, appointment_id)
    assert stored["meta"]["versionId"] == "3"
    assert datetime.fromisoformat(stored["start"]) == datetime.fromisoformat(slots[4]["start"])
    assert [c.trigger for c in w.calendar.changes] == ["S12", "S13", "S13"]


def push_now(messages: list[bytes], w: World) -> None:
    assert w.gw is not None
    host, port = w.gw.mllp_address
    asyncio.run(push(messages, host, port))


def _refused(w: World, response: httpx.Response, status: int, rule: str, before: object) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert rule in body["issue"][0]["diagnostics"]
    assert TOLVAN not in response.text
    assert w.calendar.snapshot() == before


def test_refused_cases_change_nothing(world: World) -> None:
    w = world
    slots = _slots(w)
    r = _book(w, slots[0])
    assert r.status_code == 201, r.text
    appointment_id = r.json()["id"]
    _stored(w, appointment_id)
    [booked] = w.calendar.book.bookings(TOLVAN)
    before = w.calendar.snapshot()
    cancel = {"status": "cancelled", "cancelationReason": {"text": "Förhindrad"}}

    # Hidden time type: neither listed nor bookable (R-BK-1).
    day = FIRST.date().isoformat()
    r = w.http.get(
        "/fhir/Slot",
        params=[("schedule.actor", UNIT), ("service-type", "ADM"), ("start", f"ge{day}")],
        headers=_as(),
    )
    _refused(w, r, 422, "R-BK-1", before)
    adm = {
        "resourceType": "Slot",
        "id": __import__("gateway.api.fhir_self_service", fromlist=["slot_id"]).slot_id(
            UNIT, "ADM", FIRST, FIRST + timedelta(minutes=30)
        ),
    }
    _refused(w, _book(w, adm, key="hidden"), 422, "R-BK-1", before)

    # Not allowed by the journal (R-BK-8).
    w.calendar.allow(booked.booking_id, cancel=False)
    _refused(
        w,
        w.http.patch(f"/fhir/Appointment/{appointment_id}", json=cancel, headers=_as(key="na")),
        409,
        "R-BK-8",
        before,
    )
    w.calendar.allow(booked.booking_id)

    # Protected person (R-ID-3): books nothing.
    _refused(w, _book(w, slots[1], person=SKYDDAD, key="prot"), 403, "R-ID-3", before)

    # Locked account (R-ACC-1).
    w.accounts.accounts[TOLVAN] = Account(pnr(TOLVAN), AccountStatus.LOCKED, UNIT)
    _refused(
        w,
        w.http.patch(f"/fhir/Appointment/{appointment_id}", json=cancel, headers=_as(key="locked")),
        403,
        "R-ACC-1",
        before,
    )
    w.accounts.accounts[TOLVAN] = Account(pnr(TOLVAN), AccountStatus.ACTIVE, UNIT)

    # Deadline passed (R-BK-9): a visit in 10 hours cannot be cancelled (24 hours).
    soon = w.http.get(
        "/fhir/Slot",
        params=[
            ("schedule.actor", UNIT),
            ("service-type", "ATB"),
            ("start", f"ge{datetime.now(UTC).date().isoformat()}"),
        ],
        headers=_as(),
    ).json()["entry"][0]["resource"]
    r = _book(w, soon, key="soon")
    assert r.status_code == 201, r.text
    soon_id = r.json()["id"]
    _stored(w, soon_id)
    before = w.calendar.snapshot()
    _refused(
        w,
        w.http.patch(f"/fhir/Appointment/{soon_id}", json=cancel, headers=_as(key="late")),
        409,
        "R-BK-9",
        before,
    )

    # Bad requests name what is wrong.
    r = w.http.post(
        "/fhir/Appointment",
        json={"resourceType": "Appointment"},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 400 and "X-Acting-Person" in r.text
    r = w.http.patch("/fhir/Appointment/nope", json=cancel, headers=_as())
    assert r.status_code == 404
    assert w.calendar.snapshot() == before


def test_the_built_in_journal_mock_offers_self_service(tmp_path: Path) -> None:
    """The default composition (no GATEWAY_JOURNAL_WS_URL): the built-in journal mock has a
    calendar and pushes its SIU to the gateway's MLLP port, so both faces work out of the box."""
    accounts = FakeAccounts({TOLVAN: Account(pnr(TOLVAN), AccountStatus.ACTIVE, UNIT)})
    with (
        GatewayThread(
            _settings(tmp_path), register=FakeRegister(), accounts=accounts, mailbox=FakeMailbox()
        ) as gw,
        httpx.Client(base_url=gw.http_url, timeout=15) as http,
    ):
        # A known patient without bookings: an empty schedule on the RIV-TA face, not an error.
        from tests.e2e.test_self_service_rivta import _call, _texts

        empty = _call(
            World(http, JournalCalendar(), ServiceSwitches(), accounts),
            "GetSubjectOfCareSchedule",
            f"<r:healthcare_facility>{UNIT}</r:healthcare_facility><r:subject_of_care>{TOLVAN}</r:subject_of_care>",
        )
        assert _texts(empty, "faultcode") == [] and _texts(empty, "bookingId") == []
        r = http.get("/fhir/Slot", params={"schedule.actor": UNIT, "service-type": "NYB"}, headers=_as())
        assert r.status_code == 200, r.text
        slot = r.json()["entry"][0]["resource"]
        w = World(http, JournalCalendar(), ServiceSwitches(), accounts)
        booked = _book(w, slot, key="builtin")
        assert booked.status_code == 201, booked.text
        assert _stored(w, booked.json()["id"])["status"] == "booked"


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Appointment", "participant": "x"},
        {"resourceType": "Appointment", "participant": [1, "a", None]},
        {"resourceType": "Appointment", "participant": [{"actor": "x"}]},
        {"resourceType": "Appointment", "slot": "x"},
        {"resourceType": "Appointment", "slot": [None]},
        {"resourceType": "Appointment", "slot": [{"reference": "Slot/!!!"}]},
        {"resourceType": "Appointment", "start": 5, "end": [], "serviceType": "x"},
        {"resourceType": "Appointment", "start": "2026-13-45", "end": "x", "serviceType": [{"coding": "x"}]},
        {"resourceType": "Patient"},
        [],
        "text",
    ],
)
def test_bad_bodies_are_400_never_500(world: World, body: object) -> None:
    w = world
    patient = {"actor": {"type": "Patient", "identifier": {"value": TOLVAN}}}
    if isinstance(body, dict) and "participant" not in body:
        body = {**body, "participant": [patient]}
    before = w.calendar.snapshot()
    r = w.http.post("/fhir/Appointment", json=body, headers=_as(key="bad"))
    assert r.status_code in (400, 422), r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    for patch in (body, {"status": "cancelled", "cancelationReason": "x"}, {"status": 5}):
        r = w.http.patch("/fhir/Appointment/none", json=patch, headers=_as(key="bad"))
        assert r.status_code in (400, 404, 422), r.text
    assert w.calendar.snapshot() == before
