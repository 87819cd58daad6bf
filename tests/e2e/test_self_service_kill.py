"""A gateway killed mid-call (issue 21, R-BK-11): ``gateway serve`` as a real process books through
the journal mock's calendar; the mock makes each booking, pushes its SIU and holds its answer; the
whole gateway gets SIGKILL while two calls are in flight. After a restart on the same database one
citizen retries with the same idempotency key, and the other command is left to the gateway's
sweep: both stored pending commands are resolved by asking the journal (``GetBookings``), never by
a second ``MakeBooking``; the calendar holds each booking exactly once, as does the store its
Appointment (one version, though the journal's push and the command's own SIU both said it)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.fhir.appointment import appointment_id
from mocks.journal.booking_ws import ServiceSwitches, create_app
from mocks.journal.calendar import JournalCalendar
from mocks.journal.simulator import push
from mocks.runner import ServedApp
from tests.processes import Serve, start_serve
from tests.support import eventually

UNIT = "SE2321000016-15CQ"
TOLVAN = "191212121212"  # in the built-in mocks' population: active account, listed at UNIT
FIRST = (datetime.now(UTC) + timedelta(days=7)).replace(hour=8, minute=0, second=0, microsecond=0)
#: The in-flight window of the restarted gateway: a retry within it is told to wait.
IN_FLIGHT = 2.0
#: The restarted gateway's sweep interval: its first sweep comes this long after the start, well
#: after the citizen's retry of the one command, so the other is the sweep's.
SWEEP = 5.0


class Journal:
    """The journal mock on a real port in this process, pushing its SIU to the current gateway."""

    def __init__(self) -> None:
        self.calendar = JournalCalendar()
        self.calendar.open_slots(UNIT, "NYB", FIRST, 4)
        self.calendar.know(TOLVAN)
        self.switches = ServiceSwitches()
        self.mllp: tuple[str, int] | None = None

        async def pusher(messages: list[bytes]) -> None:
            if self.mllp is not None:
                await push(messages, *self.mllp)

        self.app = create_app(self.calendar.book, self.switches, calendar=self.calendar, pusher=pusher)


@pytest.fixture
def journal() -> Iterator[tuple[Journal, str]]:
    j = Journal()
    with ServedApp(j.app) as served:
        try:
            yield j, f"{served.url}/booking"
        finally:
            j.switches.release.set()  # a held answer's thread ends


def _env(db: Path, journal_url: str, *, sweep: float = 0) -> dict[str, str]:
    return {
        "GATEWAY_SELF_SERVICE_SWEEP_INTERVAL": str(sweep),
        "GATEWAY_DB_URL": f"sqlite:///{db}",
        "GATEWAY_MOCKS": "true",
        "GATEWAY_MOCKS_PORT": "0",
        "GATEWAY_JOURNAL_WS_URL": journal_url,
        "GATEWAY_JOURNAL_WS_RETRIES": "0",
        "GATEWAY_WORKER_POLL_INTERVAL": "0.1",
        "GATEWAY_SELF_SERVICE_IN_FLIGHT": str(IN_FLIGHT),
    }


def _book(url: str, slot_id: str, key: str, timeout: float = 30) -> httpx.Response:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"type": "Patient", "identifier": {"value": TOLVAN}}}],
    }
    headers = {"X-Acting-Person": TOLVAN, "Content-Type": "application/fhir+json", "Idempotency-Key": key}
    return httpx.post(f"{url}/fhir/Appointment", json=body, headers=headers, timeout=timeout)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def _command(db: Path, key: str) -> tuple[Any, ...]:
    [row] = _rows(
        db,
        "SELECT state, attempts, result_booking_id, echoed_at FROM booking_commands "
        f"WHERE idempotency_key = '{key}'",
    )
    return row


def test_r_bk_11_gateway_killed_mid_make_booking_books_exactly_once(
    tmp_path: Path, journal: tuple[Journal, str]
) -> None:
    j, url = journal
    db = tmp_path / "gateway.db"
    first = start_serve(tmp_path, "first", _env(db, url))
    second: Serve | None = None
    try:
        j.mllp = first.mllp
        slots = httpx.get(
            f"{first.http_url}/fhir/Slot",
            params={"schedule.actor": UNIT, "service-type": "NYB"},
            headers={"X-Acting-Person": TOLVAN},
            timeout=30,
        )
        assert slots.status_code == 200, slots.text
        slot_ids = [e["resource"]["id"] for e in slots.json()["entry"][:2]]

        # Two citizens' calls: the journal makes each booking, pushes its SIU and holds the answer.
        j.switches.hold_answers = True
        answers: list[httpx.Response | BaseException] = []

        def call(slot_id: str, key: str) -> None:
            try:
                answers.append(_book(first.http_url, slot_id, key))
            except httpx.HTTPError as exc:
                answers.append(exc)

        callers = [
            threading.Thread(target=call, args=(slot_id, key), daemon=True)
            for slot_id, key in zip(slot_ids, ("retried", "swept"), strict=True)
        ]
        for caller in callers:
            caller.start()
        eventually(lambda: j.switches.held == 2, "the journal to hold both answers to MakeBooking")
        assert [c.trigger for c in j.calendar.changes] == ["S12", "S12"]
        first.started.kill_all()  # SIGKILL to serve, its worker process and everything in its group
        for caller in callers:
            caller.join(30)
        assert len(answers) == 2 and all(isinstance(a, httpx.HTTPError) for a in answers)  # no answer
        assert _rows(db, "SELECT state, attempts FROM booking_commands") == [("pending", 1)] * 2

        # Restart on the same database; the held answers go into dead connections.
        j.switches.hold_answers = False
        j.switches.release.set()
        second = start_serve(tmp_path, "second", _env(db, url, sweep=SWEEP))
        j.mllp = second.mllp
        asked_before = len(j.switches.calls)

        # The citizen retries "retried" with the same key: the window has passed (the call started
        # before the kill), so the gateway asks the journal, which has it: no second MakeBooking.
        def retry() -> httpx.Response | None:
            answer = _book(second.http_url, slot_ids[0], "retried")
            # 409 "still in progress": the restart came within the in-flight window of the call
            # the kill cut off; the citizen is told to come back later, and does.
            return None if answer.status_code == 409 else answer

        retried = eventually(retry, "the in-flight window to pass", timeout=IN_FLIGHT + 30, interval=0.2)
        # 201: the retry resolved it by asking; 200: on a slow machine the sweep asked first and
        # this is its replay. Either way the journal was asked, never booked twice.
        assert retried.status_code in (201, 200), retried.text
        asked = j.switches.calls[asked_before:]
        assert "GetBookings" in asked and "MakeBooking" not in asked
        booked = {b.start: b for b in j.calendar.book.bookings(TOLVAN)}
        appointment = retried.json()
        mine = booked[datetime.fromisoformat(appointment["start"])]
        assert _command(db, "retried")[:3] == ("done", 1, mine.booking_id)

        # Separately, nobody retries "swept": the gateway's sweep resolves the stored pending
        # command by asking the journal (GetBookings), again without a second MakeBooking.
        state = eventually(
            lambda: (c := _command(db, "swept"))[0] != "pending" and c,
            "the sweep to resolve the pending command",
            timeout=SWEEP + 30,
        )
        [other] = [b for b in booked.values() if b.booking_id != mine.booking_id]
        assert state[:3] == ("done", 1, other.booking_id)
        assert j.switches.calls.count("MakeBooking") == 2  # one per booking, none repeated
        assert sorted(c.trigger for c in j.calendar.changes) == ["S12", "S12"]
        assert len(j.calendar.book.bookings(TOLVAN)) == 2

        # The store holds each Appointment once, in one version, though both the journal's push
        # (before the kill) and the command's own SIU (after the restart) said it; the command is
        # marked echoed.
        eventually(
            lambda: (
                _rows(db, "SELECT count(*) FROM messages WHERE state = 'received'") == [(0,)]
                and _rows(db, "SELECT count(*) FROM messages") == [(4,)]
            ),
            "both bookings' two SIU messages to be processed",
        )
        stored = _rows(db, "SELECT booking_id, version_id, status FROM appointments ORDER BY booking_id")
        assert stored == sorted([(mine.booking_id, 1, "booked"), (other.booking_id, 1, "booked")])
        assert _command(db, "retried")[3] is not None and _command(db, "swept")[3] is not None
        search = httpx.get(
            f"{second.http_url}/fhir/Appointment", params={"patient:identifier": TOLVAN}, timeout=10
        ).json()
        other_id = appointment_id("TAKECARE", other.booking_id)
        assert sorted(e["resource"]["id"] for e in search.get("entry", [])) == sorted(
            [appointment["id"], other_id]
        )

        # The same keys once more: replays, nothing sent to the journal.
        again = _book(second.http_url, slot_ids[0], "retried")
        assert again.status_code == 200 and again.json()["id"] == appointment["id"]
        swept = _book(second.http_url, slot_ids[1], "swept")
        assert swept.status_code == 200 and swept.json()["id"] == other_id
        assert j.switches.calls.count("MakeBooking") == 2
    finally:
        if second is not None:
            second.started.stop()
        if first.started.process.poll() is None:
            first.started.kill_all()
