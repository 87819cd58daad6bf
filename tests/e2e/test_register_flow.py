"""Bookings only reach the citizen platform after the population register has been asked."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from sqlalchemy import select
from structlog.testing import capture_logs

from gateway.store.tables import appointments
from gateway.testing import GatewayThread
from tests.conftest import wait_processed
from tests.fakes import FakeRegister
from tests.support import PNR_SYSTEM, TOLVAN, ack_code, mllp_exchange, siu

SEKRET = "197605010128"
SKYDDAD = "198203152452"


def _push(gw: GatewayThread, *messages: bytes) -> list[str]:
    host, port = gw.mllp_address
    return [ack_code(a) for a in mllp_exchange(host, port, messages)]


def _visible_for(http: httpx.Client, patient: str) -> list[dict[str, Any]]:
    bundle = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{patient}"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def _protected_booking(patient: str, booking: str, family: str, given: str) -> bytes:
    message = siu(patient=patient, booking=booking)
    return message.replace(b"PID|1||" + patient.encode(), b"PID|1||" + patient.encode()).replace(
        b"Tolvansson^Tolvan", f"{family}^{given}^^^^^^^^Hemliga gatan 7^^^12345 Stockholm".encode()
    )


def test_r_id_3_protected_persons_bookings_and_identity_never_leave_the_gateway(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    secrets = [
        SEKRET,
        "19760501-0128",
        SKYDDAD,
        "19820315-2452",
        "Markersson",
        "Folkbokförd",
        "Hemliga gatan",
    ]
    with capture_logs() as logs:
        codes = _push(
            gateway,
            _protected_booking(SEKRET, "BK-SEK", "Markersson", "Sekret"),
            _protected_booking(SKYDDAD, "BK-SKY", "Folkbokförd", "Skyddad"),
            siu(booking="BK-TOLVAN"),
        )
        http_ack = http.post(
            "/journal/hl7", content=_protected_booking(SKYDDAD, "BK-SKY2", "Folkbokförd", "Skyddad")
        )
        assert codes == ["AA", "AA", "AA"] and ack_code(http_ack.content) == "AA"
        wait_processed(http)
        # Everything the platform or an operator can read over the API:
        responses = [
            http.get("/fhir/Appointment", params={"_count": 500}),
            http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{SEKRET}"}),
            http.get("/fhir/Appointment", params={"patient:identifier": SKYDDAD}),
            http.get("/fhir/Appointment", params={"identifier": "BK-SKY"}),
            http.get("/messages", params={"limit": 100}),
            http.get("/messages", params={"patient": SKYDDAD}),
        ]
        ids = [item["id"] for item in responses[4].json()["items"]]
        responses += [http.get(f"/messages/{i}") for i in ids]
    assert len(_visible_for(http, TOLVAN)) == 1  # the ordinary person's booking went through
    assert responses[0].json()["total"] == 1
    for response in responses:
        assert response.status_code == 200
        body = response.json()
        body.pop("link", None)  # a Bundle's self link echoes the caller's own query back to it
        text = json.dumps(body, ensure_ascii=False)
        for secret in secrets:
            assert secret not in text, (secret, str(response.url))
    details = [r.json() for r in responses[6:]]
    assert sum(1 for d in details if d["restricted"]) == 3
    assert all("PID|Dold uppgift" in d["raw"] for d in details if d["restricted"])
    logged = repr(logs)
    for secret in secrets:
        assert secret not in logged
    # Withheld, with the reason, for staff (issue 3's person view will show it).
    with gateway.gateway.engine.connect() as conn:
        reasons = (
            conn.execute(
                select(appointments.c.withheld_reason).where(
                    appointments.c.patient_value.in_([SEKRET, SKYDDAD])
                )
            )
            .scalars()
            .all()
        )
    assert len(reasons) == 3 and all(r is not None and r.startswith("R-ID-3") for r in reasons)


def test_register_outage_queues_bookings_then_lets_them_through_in_order(
    gateway: GatewayThread, http: httpx.Client, register: FakeRegister
) -> None:
    register.down = True
    codes = _push(
        gateway,
        siu("S12", booking="BK-Q", start="202612010900"),
        siu("S13", booking="BK-Q", start="202612021000"),
        siu("S12", booking="BK-SEK-Q", patient=SEKRET),
    )
    assert codes == ["AA", "AA", "AA"]  # stored, so acknowledged, whatever the register does
    deadline = time.monotonic() + 10
    while http.get("/messages", params={"state": "waiting"}).json()["total"] < 3:
        assert time.monotonic() < deadline, "messages never reached the waiting state"
        time.sleep(0.05)
    waiting = http.get("/messages", params={"state": "waiting"}).json()["items"]
    assert all("population register" in m["error"] for m in waiting)
    assert http.get("/fhir/Appointment").json()["total"] == 0  # nothing exposed unchecked
    register.down = False
    wait_processed(http)
    deadline = time.monotonic() + 10
    while http.get("/messages", params={"state": "waiting"}).json()["total"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (appt,) = _visible_for(http, TOLVAN)
    assert appt["start"] == "2026-12-02T10:00:00+01:00"  # the reschedule applied after the booking
    assert _visible_for(http, SEKRET) == []
    assert http.get("/messages", params={"state": "processed"}).json()["total"] == 3


def test_r_id_5_changed_number_is_filed_under_the_current_number(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    old, new = "197306142642", "197306142659"
    assert _push(gateway, siu(patient=old, booking="BK-OLD")) == ["AA"]
    wait_processed(http)
    (appt,) = _visible_for(http, new)
    assert appt["participant"][0]["actor"]["identifier"]["value"] == new
    # The identifier history: a platform asking by the old number finds the current booking.
    assert _visible_for(http, old) == [appt]
    with gateway.gateway.engine.connect() as conn:
        linked = conn.execute(select(appointments.c.journal_patient_value)).scalar_one()
    assert linked == old  # both numbers stay linked


def test_r_id_5_nothing_is_exposed_for_a_deceased_person(gateway: GatewayThread, http: httpx.Client) -> None:
    _push(gateway, siu(patient="193804262628", booking="BK-AV"), siu(patient="195511302134", booking="BK-UV"))
    wait_processed(http)
    assert _visible_for(http, "193804262628") == []
    assert len(_visible_for(http, "195511302134")) == 1  # emigrated: flagged only


def test_r_id_7_person_not_in_the_register_is_not_exposed(
    gateway: GatewayThread, http: httpx.Client, register: FakeRegister
) -> None:
    unknown = "198512242242"
    _push(gateway, siu(patient=unknown, booking="BK-UNK"))
    wait_processed(http)
    assert _visible_for(http, unknown) == []
    assert register.calls[unknown] == 1


def test_r_id_3_unchecked_and_duplicate_messages_never_show_the_patients_identity(
    gateway: GatewayThread, http: httpx.Client, register: FakeRegister
) -> None:
    """A message shows its PID only once the register has checked the patient and found no
    protection: a message waiting for the register, or a duplicate (whose own row is never
    checked), could be about a protected person."""
    register.down = True
    booking = _protected_booking(SKYDDAD, "BK-SKY-DUP", "Folkbokförd", "Skyddad")
    assert _push(gateway, booking, booking) == ["AA", "AA"]
    deadline = time.monotonic() + 10
    while http.get("/messages", params={"state": "waiting"}).json()["total"] < 1:
        assert time.monotonic() < deadline, "the message never reached the waiting state"
        time.sleep(0.05)
    register.down = False
    while http.get("/messages", params={"state": "waiting"}).json()["total"]:
        assert time.monotonic() < deadline + 10, "the message never left the waiting state"
        time.sleep(0.05)
    items = http.get("/messages", params={"limit": 10}).json()["items"]
    assert sorted(m["state"] for m in items) == ["duplicate", "processed"]
    for item in items:
        text = json.dumps(http.get(f"/messages/{item['id']}").json(), ensure_ascii=False)
        assert "PID|Dold uppgift" in text
        for secret in (SKYDDAD, "19820315-2452", "Folkbokförd", "Hemliga gatan"):
            assert secret not in text, (secret, item["state"])


def test_an_ordinary_checked_message_shows_its_pid_to_operators(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    assert _push(gateway, siu(booking="BK-PLAIN")) == ["AA"]
    wait_processed(http)
    (item,) = http.get("/messages").json()["items"]
    assert f"PID|1||{TOLVAN}" in http.get(f"/messages/{item['id']}").json()["raw"]


def test_r_id_5_a_search_by_the_old_number_finds_bookings_made_under_the_new_one(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    """The register names the old number on the current one (Hanvisning Fran): the link is
    known even when the journal never used the old number."""
    old, new = "197306142642", "197306142659"
    assert _push(gateway, siu(patient=new, booking="BK-NEW")) == ["AA"]
    wait_processed(http)
    (appt,) = _visible_for(http, old)
    assert appt["participant"][0]["actor"]["identifier"]["value"] == new
    assert _visible_for(http, "191212121212") == []  # no one else's
