"""SMS reminders and notices end to end: MLLP -> processing -> the plan -> the notifier -> the SMS
mock over HTTP, with the account service's mock (consent, mobile) and an injected clock.

The gateway runs whole (GatewayThread); time moves by the clock, never by waiting: after each
move the test waits only until the notifier has handled every due row (an observable state in
the store). Each SMS is counted at the mock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.domain.notifications import STOCKHOLM
from gateway.fhir.appointment import appointment_id
from gateway.fhir.communication import document_id
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm
from gateway.store.tables import notifications
from gateway.testing import GatewayThread
from tests.conftest import _settings, wait_processed
from tests.fakes import FakeMailbox, FakeRegister, record
from tests.support import PNR_OID, TOLVAN, ack_code, control_id, mllp_exchange, siu

CHILD, GUARDIAN, TEEN, SEKRET, NO_CONSENT = (
    "201605152386",
    "198503141239",
    "200903012391",
    "197605010128",
    "197306142659",
)
# From mocks/persons.yaml (PTS's numbers for fiction).
MOBILE = {TOLVAN: "+46701740605", GUARDIAN: "+46701740606", TEEN: "+46701740607", SEKRET: "+46701740608"}


def local(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 12, day, hh, mm, tzinfo=STOCKHOLM)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: local(7, 10))

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@dataclass
class Run:
    gw: GatewayThread
    api: httpx.Client
    mocks: httpx.Client
    clock: Clock

    def journal(self, *messages: bytes) -> None:
        acks = mllp_exchange(*self.gw.mllp_address, list(messages), timeout=10)
        assert [ack_code(a) for a in acks] == ["AA"] * len(messages)
        wait_processed(self.api)

    def at(self, when: datetime, timeout: float = 10) -> None:
        """Move the clock, then wait until the notifier has handled everything due by then."""
        self.clock.now = when
        engine = self.gw.gateway.engine
        due = (
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.state.in_(("planned", "sending")), notifications.c.due_at <= self.clock())
        )
        deadline = datetime.now(UTC).timestamp() + timeout
        while datetime.now(UTC).timestamp() < deadline:
            with engine.connect() as conn:
                if conn.execute(due).scalar_one() == 0:
                    return
            time.sleep(0.02)  # polling an observable state, as wait_processed does
        raise AssertionError("notifications still due after timeout")

    def received(self) -> list[dict[str, Any]]:
        body: dict[str, Any] = self.mocks.get("/sms/_received").json()
        return list(body["received"])

    def texts_to(self, person: str) -> list[str]:
        return [sms["message"] for sms in self.received() if sms["to"] == MOBILE[person]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    # Consent is read when an SMS is due: no cached answer may hide a withdrawn one.
    monkeypatch.setenv("GATEWAY_ACCOUNTS_CACHE_TTL", "0")
    clock = Clock()
    register = FakeRegister()
    register.records[GUARDIAN] = record(GUARDIAN)
    with GatewayThread(_settings(tmp_path), register=register, mailbox=FakeMailbox(), clock=clock) as gw:
        mocks = gw.gateway.outside.mocks
        assert mocks is not None
        with (
            httpx.Client(base_url=gw.http_url, timeout=10) as api,
            httpx.Client(base_url=mocks.url, timeout=10) as mock_api,
        ):
            yield Run(gw, api, mock_api, clock)


def booking(patient: str, booking_id: str, trigger: str = "S12", **kw: Any) -> bytes:
    kw.setdefault("start", "202612100930")
    return siu(trigger, patient=patient, booking=booking_id, control=control_id(), **kw)


def mdm(number: str, patient: str, *, direct: bool = False) -> bytes:
    doc = MdmDocument(
        document_number=number,
        namespace="TAKECARE",
        document_type="BREV",
        patient_id=patient,
        patient_oid=PNR_OID,
        text="Hej!\nDina provsvar är klara.\n[4US:LPAT]",
        title="Provsvar",
        notify_direct=direct,
    )
    return build_mdm("T02", doc, control_id=control_id(), now=datetime.now(UTC))


NEUTRAL_LEAKS = ("blodtryck", "Vårdcentralen", "Nybesök", "Provsvar", "provsvar", "Tolvan", "Sekret")


def test_bookings_through_mllp_reach_the_sms_mock_once_each_for_the_right_persons(run: Run) -> None:
    run.journal(
        booking(TOLVAN, "N1"),  # R-NOT-1: consent and mobile
        booking(TOLVAN, "N2"),  # moved below (S13)
        booking(TOLVAN, "N3"),  # cancelled below (S15)
        booking(CHILD, "N4"),  # R-NOT-4
        booking(SEKRET, "N5"),  # R-ID-3: neutral text
        booking(NO_CONSENT, "N6"),  # R-NOT-1: no consent
        booking(GUARDIAN, "N7"),  # consent withdrawn below
        booking(TEEN, "N8", time_type="VIDEO^Videobesök", start="202612101000"),  # R-BK-5
    )
    run.journal(
        booking(TOLVAN, "N2", "S13", start="202612111400"),
        booking(TOLVAN, "N3", "S15", filler_status="Cancelled"),
    )
    run.at(local(7, 10))
    assert run.texts_to(TEEN) and "videomöte" in run.texts_to(TEEN)[0]  # booked-notice at once
    staff = run.api.get(f"/patients/{TOLVAN}").json()["notifications"]
    name = {appointment_id("TAKECARE", b): b for b in ("N1", "N2", "N3")}
    states = sorted((name[n["about"]["appointment"]], n["state"]) for n in staff)
    assert ("N2", "cancelled") in states and ("N3", "cancelled") in states and ("N1", "planned") in states
    child = run.api.get(f"/patients/{CHILD}").json()["notifications"]
    assert [(n["state"], n["rules"]) for n in child] == [("skipped", ["R-NOT-4"])]

    withdrawn = run.mocks.put(f"/accounts/_sms/{GUARDIAN}", json={"sms_consent": False})
    assert withdrawn.status_code == 200 and withdrawn.json()["sms_consent"] is False

    run.at(local(9, 18))  # the evening before: N1, N5, (N6, N7 not sent)
    run.at(local(10, 9, 45))  # the video reminder 15 minutes before 10:00
    run.at(local(10, 18))  # the evening before the moved N2
    run.at(local(12, 12))  # long after: nothing more

    assert len(run.texts_to(TOLVAN)) == 2
    assert ["10 dec kl 09:30" in t for t in run.texts_to(TOLVAN)] == [True, False]
    assert "11 dec kl 14:00" in run.texts_to(TOLVAN)[1]
    assert len(run.texts_to(SEKRET)) == 1 and len(run.texts_to(TEEN)) == 2
    assert run.texts_to(GUARDIAN) == []
    everything = run.received()
    assert len(everything) == 5
    assert {sms["from"] for sms in everything} == {"RegHalland"}
    assert all(leak not in sms["message"] for sms in everything for leak in NEUTRAL_LEAKS)
    assert all("https://www.1177.se" in sms["message"] for sms in everything)
    guardian = run.api.get(f"/patients/{GUARDIAN}").json()["notifications"]
    (own,) = [n for n in guardian if n["about_this_person"]]
    assert own["state"] == "cancelled" and "consent" in own["why"]


def test_document_notices_direct_delayed_and_read_before_R_NOT_2(run: Run) -> None:
    run.journal(mdm("ND1", TEEN, direct=True), mdm("ND2", TEEN), mdm("ND3", TEEN), mdm("ND4", CHILD))
    run.at(local(7, 10))
    assert len(run.texts_to(TEEN)) == 1  # direct: at once
    doc = document_id("TAKECARE", "ND3")
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "readAt", "valueDateTime": run.clock().isoformat()}],
    }
    assert run.api.post(f"/fhir/Communication/{doc}/$mark-read", json=body).status_code == 200
    run.at(local(7, 10, 15))
    assert len(run.texts_to(TEEN)) == 2  # ND2 after 15 minutes; ND3 read meanwhile
    assert len(run.texts_to(GUARDIAN)) == 1  # R-DOC-4: the child's document to its guardian
    notices = run.api.get(f"/patients/{TEEN}").json()["notifications"]
    read = [n for n in notices if n["about"] == {"document": doc}]
    assert [(n["state"], n["rules"]) for n in read] == [("cancelled", ["R-NOT-2"])]


def test_a_document_staff_release_gets_its_notice_R_NOT_2_R_ID_4(run: Run) -> None:
    """Held for a protected person (R-ID-3), released by staff after agreeing how to reach them
    (R-ID-4): in the platform it is a new message, so its notice goes 15 minutes later."""
    run.journal(mdm("NR1", SEKRET))
    run.at(local(7, 10, 30))
    assert run.texts_to(SEKRET) == []  # held: no notice
    (item,) = run.api.get("/held").json()["items"]
    answer = run.api.post(f"/held/{item['id']}/release", json={"by": "ssk-anna", "why": "agreed by phone"})
    assert answer.status_code == 200 and answer.json()["outcome"] == "deliver"
    run.at(local(7, 10, 44))
    assert run.texts_to(SEKRET) == []
    run.at(local(7, 10, 46))
    (text,) = run.texts_to(SEKRET)
    assert not [leak for leak in NEUTRAL_LEAKS if leak in text]  # R-NOT-5
