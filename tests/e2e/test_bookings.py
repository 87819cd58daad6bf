"""Bookings end to end: HL7 v2 over the real MLLP and HTTP ports -> FHIR Appointment over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest

from gateway.testing import GatewayThread
from tests.conftest import emptied, wait_processed
from tests.support import (
    PNR_SYSTEM,
    RESERV_OID,
    RESERV_SYSTEM,
    SAMO_OID,
    SAMO_SYSTEM,
    TOLVAN,
    ack_code,
    ack_fields,
    control_id,
    mllp_exchange,
    siu,
)


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the module, emptied before each test (the tests are about what it answers,
    not about starting up); still reached through its real ports."""
    return emptied(module_gateway)


def _mllp(gw: GatewayThread, *messages: bytes, chunk: int | None = None) -> list[bytes]:
    host, port = gw.mllp_address
    return mllp_exchange(host, port, messages, chunk=chunk)


def _appointments(
    http: httpx.Client, patient: str = TOLVAN, system: str = PNR_SYSTEM
) -> list[dict[str, Any]]:
    bundle = http.get("/fhir/Appointment", params={"patient:identifier": f"{system}|{patient}"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_new_booking_over_mllp_is_acknowledged_and_served_as_fhir_appointment(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    cid = control_id()
    (ack,) = _mllp(gateway, siu("S12", control=cid, booking="BK-NEW", start="202612010900", minutes="45"))
    assert ack_code(ack) == "AA"
    assert ack_fields(ack, "MSA")[2] == cid  # MSA-2 echoes MSH-10
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["status"] == "booked"
    assert appt["start"] == "2026-12-01T09:00:00+01:00"
    assert appt["end"] == "2026-12-01T09:45:00+01:00"
    assert appt["minutesDuration"] == 45
    assert appt["description"] == "Kontroll av blodtryck"
    assert appt["identifier"][0]["value"] == "TAKECARE|BK-NEW"
    patient = appt["participant"][0]["actor"]
    assert patient["identifier"] == {"system": PNR_SYSTEM, "value": TOLVAN}
    hsa = {p["actor"].get("identifier", {}).get("value") for p in appt["participant"]}
    assert {"SE2321000016-1A2B", "SE2321000016-15CQ"} <= hsa
    assert appt["meta"]["versionId"] == "1"


def test_r_bk_2_every_trigger_event_ends_as_the_current_state_of_one_appointment(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    # Each SIU message carries the booking's whole current state (docs/hl7-profile.md).
    steps = [
        ("S12", {"start": "202612020800"}, "booked"),
        ("S13", {"start": "202612031000"}, "booked"),
        ("S14", {"start": "202612031000", "reason": "^Ändrad anledning"}, "booked"),
        (
            "S26",
            {"start": "202612031000", "reason": "^Ändrad anledning", "filler_status": "Noshow"},
            "noshow",
        ),
        (
            "S15",
            {"start": "202612031000", "reason": "^Ändrad anledning", "filler_status": "Cancelled"},
            "cancelled",
        ),
        (
            "S16",
            {"start": "202612031000", "reason": "^Ändrad anledning", "filler_status": "Cancelled"},
            "cancelled",
        ),
        (
            "S17",
            {"start": "202612031000", "reason": "^Ändrad anledning", "filler_status": "Deleted"},
            "entered-in-error",
        ),
    ]
    versions = []
    for trigger, kwargs, expected in steps:
        (ack,) = _mllp(gateway, siu(trigger, booking="BK-LIFE", **kwargs))  # type: ignore[arg-type]
        assert ack_code(ack) == "AA", trigger
        wait_processed(http)
        # The incremental sync (_lastUpdated) sees every state, entered-in-error included.
        bundle = http.get("/fhir/Appointment", params={"_lastUpdated": "gt2000-01-01"}).json()
        (appt,) = [e["resource"] for e in bundle["entry"]]
        assert appt["status"] == expected, trigger
        versions.append(int(appt["meta"]["versionId"]))
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert appt["start"] == "2026-12-03T10:00:00+01:00"  # the reschedule stuck
    assert appt["description"] == "Ändrad anledning"
    assert "cancelationReason" not in appt  # FHIR app-4: only for cancelled and noshow
    # The patient's booking list leaves the deleted booking out, unless asked by status.
    assert _appointments(http) == []
    asked = http.get(
        "/fhir/Appointment",
        params={"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}", "status": "entered-in-error"},
    ).json()
    assert asked["total"] == 1


def test_cancelled_booking_stays_visible_as_cancelled_r_bk_2(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    _mllp(gateway, siu("S12", booking="BK-C"), siu("S15", booking="BK-C", filler_status="Cancelled"))
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["status"] == "cancelled"
    assert appt["cancelationReason"]["text"] == "Avbokad"


def test_r_bk_1_hidden_time_type_is_acknowledged_but_never_shown(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    acks = _mllp(
        gateway,
        siu(booking="BK-HIDDEN", time_type="DOLD^Dold tid"),
        siu(booking="BK-UNKNOWN-TYPE", time_type="NYTT^Ny tidstyp ingen mappat"),
        siu(booking="BK-SHOWN", time_type="ATB^Återbesök"),
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
    wait_processed(http)
    shown = _appointments(http)
    assert [a["identifier"][0]["value"] for a in shown] == ["TAKECARE|BK-SHOWN"]
    everything = http.get("/fhir/Appointment", params={"_count": 500}).json()
    assert everything["total"] == 1


def test_r_bk_1_booking_moved_to_a_hidden_time_type_disappears(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    _mllp(gateway, siu("S12", booking="BK-MOVE"))
    wait_processed(http)
    (appt,) = _appointments(http)
    _mllp(gateway, siu("S14", booking="BK-MOVE", time_type="KONF^Intern konferens"))
    wait_processed(http)
    assert _appointments(http) == []
    assert http.get(f"/fhir/Appointment/{appt['id']}").status_code == 404


@pytest.mark.parametrize(
    ("message", "segment", "field", "words"),
    [
        (siu(patient="191212121213"), "PID", "3", "check digit"),
        (siu(booking=""), "SCH", "2", "SCH-2"),
        (siu(start="20261301090000"), "TQ1", "7", "not a real date"),
        (siu(start="tomorrow"), "TQ1", "7", "timestamp"),
        (siu(oid="1.2.3.4.5"), "PID", "3", "assigning authority"),
        (siu(minutes=""), "SCH", "9", "duration"),
    ],
    ids=["bad-check-digit", "missing-sch2", "impossible-date", "bad-timestamp", "unknown-oid", "no-duration"],
)
def test_malformed_content_gets_ae_with_err_naming_segment_and_field_r_id_1(
    gateway: GatewayThread, http: httpx.Client, message: bytes, segment: str, field: str, words: str
) -> None:
    (ack,) = _mllp(gateway, message)
    assert ack_code(ack) == "AE"
    err = ack_fields(ack, "ERR")
    location = err[2].split("^")
    assert location[0] == segment and location[2] == field
    assert words in err[8]
    # Stored as rejected, with the reason, so it can be found again; nothing reaches FHIR.
    rejected = http.get("/messages", params={"state": "rejected"}).json()
    assert rejected["total"] == 1 and words in rejected["items"][0]["error"]
    assert _appointments(http) == []


def test_v23_ack_carries_err_1_location(gateway: GatewayThread) -> None:
    (ack,) = _mllp(gateway, siu(version="2.3", patient="191212121213", charset="8859/1"))
    assert ack_code(ack) == "AE"
    assert ack_fields(ack, "ERR")[1].startswith("PID^1^3^102")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"message_type": "ADT", "trigger": "A01"}, "9"),
        ({"trigger": "S18"}, "9"),
        ({"version": "3.0"}, "12"),  # v2.3-v2.9 are read; a v3 is not HL7 v2
    ],
    ids=["other-message-type", "untaken-trigger", "unsupported-version"],
)
def test_message_types_not_taken_get_ar(gateway: GatewayThread, kwargs: dict[str, str], field: str) -> None:
    cid = control_id()
    (ack,) = _mllp(gateway, siu(control=cid, **kwargs))  # type: ignore[arg-type]
    assert ack_code(ack) == "AR"
    assert ack_fields(ack, "MSA")[2] == cid


def test_repeated_control_id_is_acknowledged_again_and_processed_once(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    cid = control_id()
    first = siu(control=cid, booking="BK-DUP", start="202612010900")
    # Same MSH-10 from the same sender, even with other content: it is the same message.
    again = siu(control=cid, booking="BK-DUP", start="202612011500")
    acks = _mllp(gateway, first, again)
    acks += _mllp(gateway, again)
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["start"] == "2026-12-01T09:00:00+01:00"
    assert appt["meta"]["versionId"] == "1"
    dups = http.get("/messages", params={"state": "duplicate"}).json()
    assert dups["total"] == 2
    processed = http.get("/messages", params={"state": "processed"}).json()
    assert processed["total"] == 1
    # The same control id from another sending facility is another message.
    (other,) = _mllp(gateway, siu(control=cid, booking="BK-DUP2", sending="TAKECARE|GOTLAND"))
    assert ack_code(other) == "AA"
    wait_processed(http)
    assert len(_appointments(http)) == 2


@pytest.mark.parametrize("charset", ["8859/1", "UNICODE UTF-8"])
def test_swedish_characters_survive_to_fhir_in_both_character_sets(
    gateway: GatewayThread, http: httpx.Client, charset: str
) -> None:
    message = siu(charset=charset, reason="^Återbesök för ögonbotten, sköterska Åsa", booking="BK-ÅÄÖ")
    if charset == "8859/1":
        assert "Å".encode("latin-1") in message  # really ISO 8859-1 bytes on the wire
    (ack,) = _mllp(gateway, message)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["description"] == "Återbesök för ögonbotten, sköterska Åsa"
    assert appt["identifier"][0]["value"] == "TAKECARE|BK-ÅÄÖ"
    location = next(p for p in appt["participant"] if p["actor"]["type"] == "Location")
    assert location["actor"]["display"] == "Vårdcentralen Tolvåsen"


def test_hl7_escape_sequences_are_decoded(gateway: GatewayThread, http: httpx.Client) -> None:
    reason = r"^Prov \T\ kontroll \F\ vikt \S\ längd \R\ tryck \E\ puls"
    _mllp(gateway, siu(reason=reason))
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["description"] == "Prov & kontroll | vikt ^ längd ~ tryck \\ puls"


def test_samordningsnummer_is_taken_and_reservnummer_is_checked_but_withheld_r_id_2(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    acks = _mllp(
        gateway,
        siu(patient="199002712934", oid=SAMO_OID, booking="BK-SAMO"),
        siu(patient="999929-013705", oid=RESERV_OID, booking="BK-RES"),
        siu(patient="199002112934", oid=SAMO_OID, booking="BK-BADSAMO"),  # day 11 is no samordningsnummer
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AE"]
    wait_processed(http)
    assert len(_appointments(http, "199002712934", SAMO_SYSTEM)) == 1
    # A reservnummer is never in the register, so protection cannot be ruled out (R-ID-2).
    assert _appointments(http, "999929013705", RESERV_SYSTEM) == []
    assert http.get("/messages", params={"state": "processed"}).json()["total"] == 2


def test_personnummer_with_dash_is_normalized_r_id_1(gateway: GatewayThread, http: httpx.Client) -> None:
    (ack,) = _mllp(gateway, siu(patient="19121212-1212"))
    assert ack_code(ack) == "AA"
    wait_processed(http)
    assert len(_appointments(http)) == 1


def test_v23_start_from_sch_11(gateway: GatewayThread, http: httpx.Client) -> None:
    (ack,) = _mllp(gateway, siu(version="2.3", charset="8859/1", start="202612051330", minutes="20"))
    assert ack_code(ack) == "AA"
    wait_processed(http)
    (appt,) = _appointments(http)
    assert appt["start"] == "2026-12-05T13:30:00+01:00" and appt["minutesDuration"] == 20


def test_many_messages_on_one_connection_split_across_reads(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    messages = [siu(booking=f"BK-SPLIT-{i}", start=f"2026120{1 + i % 5}1000") for i in range(20)]
    acks = _mllp(gateway, *messages, chunk=7)
    assert [ack_code(a) for a in acks] == ["AA"] * 20
    wait_processed(http)
    assert len(_appointments(http)) == 20


def test_many_concurrent_connections(gateway: GatewayThread, http: httpx.Client) -> None:
    results: dict[int, list[str]] = {}

    def sender(n: int) -> None:
        msgs = [siu(booking=f"BK-CONC-{n}-{i}") for i in range(5)]
        results[n] = [ack_code(a) for a in _mllp(gateway, *msgs)]

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(codes == ["AA"] * 5 for codes in results.values()) and len(results) == 25
    wait_processed(http)
    assert http.get("/fhir/Appointment", params={"_count": 0}).json()["total"] == 125


def test_idle_connection_is_closed_by_the_gateway(gateway: GatewayThread) -> None:
    host, port = gateway.mllp_address
    with socket.create_connection((host, port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""  # the server closed it (idle timeout is 2 s in tests)
        assert 1.5 < time.monotonic() - started < 8


def test_garbage_between_frames_is_ignored(gateway: GatewayThread) -> None:
    host, port = gateway.mllp_address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"noise\r\n" + b"\x0b" + siu() + b"\x1c\x0d")
        data = sock.recv(65536)
    assert b"MSA|AA|" in data


def test_message_without_msh_gets_a_nack_not_a_crash(gateway: GatewayThread) -> None:
    (ack,) = _mllp(gateway, b"PID|1||191212121212\r")
    assert ack_code(ack) == "AE"
    assert ack_fields(ack, "ERR")[2].startswith("MSH")


def test_http_transport_takes_the_same_messages(gateway: GatewayThread, http: httpx.Client) -> None:
    cid = control_id()
    response = http.post(
        "/journal/hl7",
        content=siu(control=cid, booking="BK-HTTP"),
        headers={"content-type": "application/hl7-v2"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/hl7-v2")
    assert ack_code(response.content) == "AA"
    assert ack_fields(response.content, "MSA")[2] == cid
    bad = http.post(
        "/journal/hl7", content=siu(patient="191212121213"), headers={"content-type": "text/plain"}
    )
    assert ack_code(bad.content) == "AE" and ack_fields(bad.content, "ERR")[2].startswith("PID^1^3")
    rejected = http.post("/journal/hl7", content=siu(message_type="ADT", trigger="A08"))
    assert ack_code(rejected.content) == "AR"
    dup = http.post("/journal/hl7", content=siu(control=cid, booking="BK-HTTP"))
    assert ack_code(dup.content) == "AA"
    wait_processed(http)
    assert len(_appointments(http)) == 1
    wrong = http.post("/journal/hl7", content=b"{}", headers={"content-type": "application/json"})
    assert wrong.status_code == 415
    assert wrong.json()["resourceType"] == "OperationOutcome"


def test_every_accepted_message_ends_in_a_known_state_queryable_by_id(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    cid = control_id()
    _mllp(gateway, siu(control=cid, booking="BK-STATE"))
    wait_processed(http)
    listing = http.get("/messages", params={"control_id": cid}).json()
    assert listing["total"] == 1
    item = listing["items"][0]
    assert item["state"] == "processed" and item["ack_code"] == "AA" and item["processed_at"]
    detail = http.get(f"/messages/{item['id']}").json()
    assert detail["raw"].startswith("MSH|^~\\&|TAKECARE|SLL")
    assert f"MSA|AA|{cid}" in detail["ack"]
    assert http.get("/messages/999999").status_code == 404
    assert http.get("/messages", params={"state": "nonsense"}).status_code == 400
