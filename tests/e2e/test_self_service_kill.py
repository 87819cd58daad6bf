"""A gateway killed mid-call (issue 21, R-BK-11): ``gateway serve`` as a real process books through
the journal mock's calendar; the mock makes the booking, pushes its SIU and holds its answer; the
whole gateway gets SIGKILL while the call is in flight. After a restart on the same database the
citizen retries with the same idempotency key: the stored pending command is resolved by asking
the journal (``GetBookings``), not by a second ``MakeBooking``, and the calendar holds the
booking exactly once, as does the store its Appointment."""

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


def _env(db: Path, journal_url: str) -> dict[str, str]:
    return {
        "GATEWAY_DB_URL": f"sqlite:///{db}",
        "GATEWAY_MOCKS": "true",
        "GATEWAY_MOCKS_PORT": "0",
        "GATEWAY_JOURNAL_WS_URL": journal_url,
        "GATEWAY_JOURNAL_WS_RETRIES": "0",
        "GATEWAY_WORKER_POLL_INTERVAL": "0.1",
        "GATEWAY_SELF_SERVICE_IN_FLIGHT": str(IN_FLIGHT),
    }


def _book(url: str, slot_id: str, timeout: float = 30) -> httpx.Response:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"type": "Patient", "identifier": {"value": TOLVAN}}}],
    }
    headers = {
        "X-Acting-Person": TOLVAN,
        "Content-Type": "application/fhir+json",
        "Idempotency-Key": "killed-1",
    }
    return httpx.post(f"{url}/fhir/Appointment", json=body, headers=headers, timeout=timeout)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_r_bk_11_gateway_killed_mid_make_booking_books_exactly_once(
    tmp_path: Path, journal: tuple[Journal, str]
) -> None:
    j, url = journal
    db = tmp_path / "gateway.db"
    env = _env(db, url)
    first = start_serve(tmp_path, "first", env)
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
        slot_id = slots.json()["entry"][0]["resource"]["id"]

        # The journal makes the booking, pushes its SIU, and holds its answer: the call is in flight.
        j.switches.hold_answers = True
        answers: list[httpx.Response | BaseException] = []

        def call() -> None:
            try:
                answers.append(_book(first.http_url, slot_id))
            except httpx.HTTPError as exc:
                answers.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        eventually(lambda: j.switches.held == 1, "the journal to hold its answer to MakeBooking")
        assert [c.trigger for c in j.calendar.changes] == ["S12"]
        first.started.kill_all()  # SIGKILL to serve, its worker process and everything in its group
        caller.join(30)
        assert answers and isinstance(answers[0], httpx.HTTPError)  # the citizen got no answer
        [(state, attempts)] = _rows(db, "SELECT state, attempts FROM booking_commands")
        assert (state, attempts) == ("pending", 1)

        # Restart on the same database; the journal's answer is released into a dead connection.
        j.switches.hold_answers = False
        j.switches.release.set()
        second = start_serve(tmp_path, "second", env)
        j.mllp = second.mllp
        calls_before = len(j.switches.calls)

        # Within the in-flight window the retry is told to wait (the call might still be running);
        # after it, the retry asks the journal, which has the booking: no second MakeBooking.
        retried = eventually(
            lambda: (r := _book(second.http_url, slot_id)).status_code != 409 and r,
            "the retry to be answered once the in-flight window has passed",
            timeout=IN_FLIGHT + 30,
        )
        assert retried.status_code == 201, retried.text
        asked = j.switches.calls[calls_before:]
        assert "GetBookings" in asked and "MakeBooking" not in asked
        assert j.switches.calls.count("MakeBooking") == 1
        [booked] = j.calendar.book.bookings(TOLVAN)
        assert [c.trigger for c in j.calendar.changes] == ["S12"]
        appointment = retried.json()
        assert datetime.fromisoformat(appointment["start"]) == booked.start
        [(state, attempts, result)] = _rows(
            db, "SELECT state, attempts, result_booking_id FROM booking_commands"
        )
        assert (state, attempts, result) == ("done", 1, booked.booking_id)

        # The store holds the Appointment once: one row, one version, though both the journal's
        # push (before the kill) and the command's own SIU (after the retry) said it.
        def stored() -> list[tuple[Any, ...]]:
            return _rows(db, "SELECT id, version_id, status FROM appointments")

        eventually(
            lambda: (
                _rows(db, "SELECT count(*) FROM messages WHERE state = 'received'") == [(0,)]
                and len(_rows(db, "SELECT id FROM messages")) == 2
            ),
            "both SIU messages to be processed",
        )
        assert stored() == [(appointment["id"], 1, "booked")]
        found = httpx.get(f"{second.http_url}/fhir/Appointment/{appointment['id']}", timeout=10)
        assert found.status_code == 200 and found.json()["meta"]["versionId"] == "1"
        search = httpx.get(
            f"{second.http_url}/fhir/Appointment", params={"patient:identifier": TOLVAN}, timeout=10
        ).json()
        assert [e["resource"]["id"] for e in search.get("entry", [])] == [appointment["id"]]
        [(echoed,)] = _rows(db, "SELECT echoed_at FROM booking_commands")
        assert echoed is not None

        # The same key once more: a replay, nothing sent to the journal.
        again = _book(second.http_url, slot_id)
        assert again.status_code == 200 and again.json()["id"] == appointment["id"]
        assert j.switches.calls.count("MakeBooking") == 1
    finally:
        if second is not None:
            second.started.stop()
        if first.started.process.poll() is None:
            first.started.kill_all()
