"""R-BK-4 "Uppdatera nu": the journal's booking service (the TakeCare XChange ``GetBookings`` mock on
a real port, answering the published shapes) against a running gateway. Bookings reach the
gateway over real MLLP from the simulated journal; then the journal's own book is changed behind
the gateway's back, and a refresh repairs the gap through the one intake pipeline (GET /messages
shows every repair, the worker applies it). The answer has no status: a future booking the
journal no longer returns is cancelled by absence; a past one is left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.domain.booking import JournalStatus
from gateway.domain.identity import luhn_check_digit
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.journal_adapter.booking_service import JournalBookingService, JournalServiceSettings
from gateway.service.refresh import ABSENT_REASON, TRANSPORT, RefreshResult, refresh_bookings
from gateway.testing import GatewayThread
from mocks.journal import JournalSimulator
from mocks.journal.booking_ws import INVALID_CARE_UNIT, PATIENT_NOT_FOUND, ServiceSwitches, create_app
from mocks.journal.simulator import UNITS, JournalMessage
from mocks.population import DEFAULT_FILE
from mocks.population import load as load_population
from mocks.runner import ServedApp
from tests.conftest import emptied, wait_processed
from tests.fakes import pnr
from tests.support import PNR_SYSTEM, TOLVAN, ack_code, mllp_exchange

DAY = date(2026, 12, 1)
#: The refresh's "now": before DAY, so the day's bookings are in the future (R-BK-4 absence).
BEFORE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEKRET = "197605010128"
ALL_UNITS = [u.hsa_id for u in UNITS]


async def _no_sleep(_: float) -> None:
    return None


@dataclass
class Journal:
    """The simulated journal: it pushes over MLLP and answers GetBookings from the same book."""

    sim: JournalSimulator
    switches: ServiceSwitches
    served: ServedApp
    gateway: GatewayThread

    def send(self, *messages: JournalMessage) -> None:
        host, port = self.gateway.mllp_address
        acks = mllp_exchange(host, port, [m.data for m in messages])
        assert [ack_code(a) for a in acks] == ["AA"] * len(messages), acks

    def book(self, person: str = TOLVAN, *, pushed: bool = True, hidden: bool = False) -> str:
        """A new booking in the journal; pushed over MLLP, or lost on the way (only in its book)."""
        p = self.sim.population.by_id(person)
        if not pushed:
            return self.sim.lost_booking(DAY, p, hidden=hidden).booking_id
        booking = self.sim.new_booking(DAY, p, hidden=hidden)
        self.send(self.sim.booking_message("S12", booking))
        return booking.booking_id


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the module, emptied before each test (the tests are about the refresh,
    not about starting up); the journal's service is still started per test."""
    return emptied(module_gateway)


@pytest.fixture
def journal(gateway: GatewayThread) -> Iterator[Journal]:
    sim = JournalSimulator(load_population(DEFAULT_FILE), seed=4, run_id="RF")
    switches = ServiceSwitches()
    with ServedApp(create_app(sim.book, switches)) as served:
        yield Journal(sim, switches, served, gateway)


@pytest.fixture
async def ws_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def service(journal: Journal, ws_http: httpx.AsyncClient) -> AsyncIterator[JournalBookingService]:
    settings = JournalServiceSettings(
        url=f"{journal.served.url}/booking", timeout=2.0, retries=1, backoff=0, care_units=ALL_UNITS
    )
    svc = JournalBookingService(settings, ws_http, sleep=_no_sleep)
    yield svc
    await svc.aclose()


async def _refresh(
    gateway: GatewayThread,
    service: JournalBookingService,
    person: str = TOLVAN,
    unit: str | None = None,
    now: datetime = BEFORE,
) -> RefreshResult:
    gw = gateway.gateway
    return await refresh_bookings(
        pnr(person),
        unit,
        client=service,
        intake=gw.intake,
        engine=gw.engine,
        mappings=gw.mappings,
        clock=lambda: now,
    )


def _appointments(http: httpx.Client, patient: str = TOLVAN) -> dict[str, dict[str, Any]]:
    """The patient's visible Appointments by journal booking id."""
    bundle = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{patient}"}).json()
    resources = [e["resource"] for e in bundle.get("entry", [])]
    return {r["identifier"][0]["value"].split("|", 1)[1]: r for r in resources}


def _message_total(http: httpx.Client) -> int:
    total: int = http.get("/messages", params={"limit": 1}).json()["total"]
    return total


async def test_r_bk_4_a_booking_the_journal_has_but_the_gateway_missed_appears_after_refresh(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    pushed = journal.book()
    lost = journal.book(pushed=False)
    wait_processed(http)
    assert set(_appointments(http)) == {pushed}

    result = await _refresh(gateway, service)

    assert (result.created, result.updated, result.unchanged) == (1, 0, 1)
    wait_processed(http)
    appointments = _appointments(http)
    assert set(appointments) == {pushed, lost}
    truth = journal.sim.book.get(lost)
    assert truth is not None
    assert appointments[lost]["status"] == "booked"
    assert appointments[lost]["description"] == truth.reason
    assert appointments[lost]["start"] == truth.start.isoformat()
    # Recorded like any inbound message: stored, acknowledged, processed, visible in the browser.
    (message_id,) = result.message_ids
    message = http.get(f"/messages/{message_id}").json()
    assert message["transport"] == TRANSPORT
    assert message["trigger"] == "S12"
    assert message["state"] == "processed"


async def test_r_bk_4_bookings_changed_silently_in_the_journal_are_updated(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    moved, reworded, cancelled = journal.book(), journal.book(), journal.book()
    wait_processed(http)
    book = journal.sim.book
    before = book.get(moved)
    assert before is not None
    book.change(moved, start=before.start + timedelta(days=1), end=before.end + timedelta(days=1))
    book.change(reworded, reason="Uppföljning & provsvar | nytt")
    # Cancelled in the journal: the published answer no longer holds it (it has no status).
    book.change(cancelled, status=JournalStatus.CANCELLED)

    result = await _refresh(gateway, service)

    assert (result.created, result.updated, result.unchanged, result.cancelled) == (0, 2, 0, 1)
    wait_processed(http)
    triggers = {http.get(f"/messages/{i}").json()["trigger"] for i in result.message_ids}
    assert triggers == {"S13", "S14", "S15"}
    appointments = _appointments(http)
    assert appointments[moved]["start"] == (before.start + timedelta(days=1)).isoformat()
    assert appointments[moved]["meta"]["versionId"] == "2"
    assert appointments[reworded]["description"] == "Uppföljning & provsvar | nytt"
    assert appointments[cancelled]["status"] == "cancelled"  # R-BK-2: stays visible as cancelled
    assert appointments[cancelled]["cancelationReason"] == {"text": ABSENT_REASON}
    # The answer names resources by the journal's numbers: the pushed HSA-ids are kept.
    actors = [p["actor"] for p in appointments[moved]["participant"]]
    assert {a["type"]: a["identifier"]["value"] for a in actors if a["type"] != "Patient"} == {
        "Practitioner": before.practitioners[0].hsa_id,
        "Location": before.units[0].hsa_id,
    }


async def test_r_bk_4_unchanged_bookings_create_no_message(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    first = journal.sim.new_booking(DAY, journal.sim.population.by_id(TOLVAN), hidden=False)
    second = journal.sim.new_booking(DAY, journal.sim.population.by_id(TOLVAN), hidden=False)
    journal.send(
        journal.sim.booking_message("S12", first),
        journal.sim.booking_message("S12", second, version="2.3"),
        journal.sim.booking_message("S15", second, filler_status="Cancelled"),
    )
    wait_processed(http)
    messages_before = _message_total(http)

    result = await _refresh(gateway, service)

    # The cancelled one is not in the answer, and the gateway already holds it cancelled.
    assert result == RefreshResult(created=0, updated=0, unchanged=1, message_ids=())
    assert _message_total(http) == messages_before


async def test_r_bk_4_refreshing_twice_is_idempotent(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    lost = journal.book(pushed=False)

    first = await _refresh(gateway, service)
    # Asked again before the worker has applied the first repair: the same repair, a duplicate.
    again = await _refresh(gateway, service)
    wait_processed(http)
    settled = await _refresh(gateway, service)

    assert first.created == 1
    assert again.already_sent in (0, 1)  # 0 if the worker was quicker than the second ask
    assert settled == RefreshResult(created=0, updated=0, unchanged=1, message_ids=())
    assert _appointments(http)[lost]["meta"]["versionId"] == "1"


async def test_r_bk_4_journal_service_down_is_transient_and_changes_nothing(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    journal.book(pushed=False)
    wait_processed(http)
    before = _message_total(http)
    journal.served.stop()
    try:
        with pytest.raises(TransientUpstreamError, match="journal-ws"):
            await _refresh(gateway, service)
    finally:
        journal.served.start()
    journal.switches.http_500 = True
    with pytest.raises(TransientUpstreamError, match="HTTP 500"):
        await _refresh(gateway, service)
    assert _message_total(http) == before
    assert _appointments(http) == {}


async def test_r_bk_4_a_slow_journal_times_out_as_transient(
    gateway: GatewayThread, journal: Journal, ws_http: httpx.AsyncClient
) -> None:
    journal.switches.latency = 0.5
    settings = JournalServiceSettings(
        url=f"{journal.served.url}/booking", timeout=0.2, retries=0, care_units=ALL_UNITS
    )
    slow = JournalBookingService(settings, ws_http)
    try:
        with pytest.raises(TransientUpstreamError):
            await _refresh(gateway, slow)
    finally:
        await slow.aclose()


async def test_r_bk_4_an_error_answer_is_permanent_and_names_its_code(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    stranger = "19800101123" + luhn_check_digit("800101123")  # valid; the journal never saw them
    with pytest.raises(PermanentUpstreamError, match=f"Error {PATIENT_NOT_FOUND}"):
        await _refresh(gateway, service, person=stranger)
    journal.switches.error = (INVALID_CARE_UNIT, "unknown care unit")
    with pytest.raises(PermanentUpstreamError, match=f"Error {INVALID_CARE_UNIT}"):
        await _refresh(gateway, service, unit="SE2321000016-NONE")
    assert _message_total(http) == 0


async def test_r_bk_4_refresh_at_one_unit_repairs_only_that_units_bookings(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    lost = [journal.book(pushed=False) for _ in range(6)]
    units = {b: journal.sim.book.get(b).units[0].hsa_id for b in lost}  # type: ignore[union-attr]
    unit = units[lost[0]]

    result = await _refresh(gateway, service, unit=unit)

    assert result.created == sum(1 for u in units.values() if u == unit)
    wait_processed(http)
    assert set(_appointments(http)) == {b for b, u in units.items() if u == unit}


async def test_r_bk_4_r_id_3_a_repair_passes_the_register_checks_like_any_message(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    journal.book(SEKRET, pushed=False)
    journal.book(pushed=False, hidden=True)

    protected = await _refresh(gateway, service, person=SEKRET)
    hidden = await _refresh(gateway, service)

    assert protected.created == 1 and hidden.created == 1
    wait_processed(http)
    assert _appointments(http, SEKRET) == {}  # R-ID-3: never passed on
    assert _appointments(http) == {}  # R-BK-1: a hidden time type is shown to nobody
    (message_id,) = protected.message_ids
    assert http.get(f"/messages/{message_id}").json()["state"] == "processed"


async def test_r_bk_4_a_future_booking_the_journal_no_longer_returns_is_cancelled_naming_the_refresh(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    kept, deleted = journal.book(), journal.book()
    wait_processed(http)
    journal.sim.book.remove(deleted)  # cancelled or deleted in the journal, never pushed

    result = await _refresh(gateway, service)

    assert (result.unchanged, result.cancelled, result.created, result.updated) == (1, 1, 0, 0)
    (message_id,) = result.message_ids
    assert http.get(f"/messages/{message_id}").json()["trigger"] == "S15"
    wait_processed(http)
    appointments = _appointments(http)
    assert appointments[kept]["status"] == "booked"
    assert appointments[deleted]["status"] == "cancelled"
    assert appointments[deleted]["cancelationReason"] == {"text": ABSENT_REASON}
    assert "Uppdatera nu" in ABSENT_REASON
    # Asked again: the gateway agrees now, nothing more is sent.
    again = await _refresh(gateway, service)
    assert again == RefreshResult(created=0, updated=0, unchanged=1, message_ids=())


async def test_r_bk_4_past_bookings_and_other_units_bookings_are_left_alone(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    ids = [journal.book() for _ in range(6)]
    wait_processed(http)
    truth = {b: journal.sim.book.get(b) for b in ids}
    for booking_id in ids:
        journal.sim.book.remove(booking_id)
    first = truth[ids[0]]
    assert first is not None
    unit = first.units[0].hsa_id
    at_unit = {b for b, t in truth.items() if t is not None and t.units[0].hsa_id == unit}
    assert at_unit != set(ids)  # the seed spreads them over more than one unit

    past = await _refresh(gateway, service, unit=unit, now=datetime(2026, 12, 2, tzinfo=UTC))
    assert past == RefreshResult(created=0, updated=0, unchanged=0, message_ids=())  # past: left alone

    future = await _refresh(gateway, service, unit=unit)
    assert future.cancelled == len(at_unit)  # only the unit asked
    wait_processed(http)
    statuses = {b: a["status"] for b, a in _appointments(http).items()}
    assert {b for b, st in statuses.items() if st == "cancelled"} == at_unit


async def test_r_bk_1_a_booking_on_a_time_type_id_the_instance_does_not_map_becomes_hidden(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    booking_id = journal.book()
    wait_processed(http)
    assert set(_appointments(http)) == {booking_id}
    journal.sim.book.change(booking_id, time_type="4711", time_type_name="Ny tidstyp")  # id not in SIM

    result = await _refresh(gateway, service)

    assert result.updated == 1
    wait_processed(http)
    assert _appointments(http) == {}  # R-BK-1: unknown is hidden, shown to nobody


async def test_r_bk_4_a_known_patient_with_no_bookings_refreshes_to_nothing(
    gateway: GatewayThread, http: httpx.Client, journal: Journal, service: JournalBookingService
) -> None:
    result = await _refresh(gateway, service)  # Tolvan is known to the journal, with no bookings
    assert result == RefreshResult(created=0, updated=0, unchanged=0, message_ids=())
    assert await service.get_bookings(pnr(TOLVAN), unit=ALL_UNITS[0]) == []
