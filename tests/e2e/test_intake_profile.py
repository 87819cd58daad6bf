"""The integration profile (docs/hl7-profile.md) end to end, through the real MLLP and HTTP ports.

The profile's example messages and ACKs are read out of the document itself, so the document
cannot drift from what the gateway does. Cases the document describes in words are built here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.fhir.appointment import appointment_id
from gateway.store import intake_journal
from gateway.testing import GatewayThread
from mocks.journal import JournalLetter, JournalMessage, JournalSimulator, push
from tests.conftest import emptied, wait_processed
from tests.support import (
    PNR_OID,
    PNR_SYSTEM,
    RESERV_OID,
    SAMO_OID,
    TOLVAN,
    ack_code,
    ack_fields,
    control_id,
    mllp_exchange,
    siu,
)


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the whole module (it is about the profile, not about starting up), emptied
    before each test; the transports themselves are still the real MLLP and HTTP ports."""
    return emptied(module_gateway)


PROFILE = Path(__file__).resolve().parents[2] / "docs" / "hl7-profile.md"
_BLOCK = re.compile(r"^```(hl7 (?:example|ack-for)=\S+|json)\n(.*?)^```", re.M | re.S)


def _blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for head, body in _BLOCK.findall(PROFILE.read_text(encoding="utf-8")):
        key = head.removeprefix("hl7 ")
        assert key not in found, f"{key} appears twice in {PROFILE.name}"
        found[key] = body
    return found


def _codec(message: str) -> str:
    return "latin-1" if "|8859/1" in message.split("\n", 1)[0] else "utf-8"


def example(name: str) -> bytes:
    """An example message from the profile, as the bytes a journal puts on the wire."""
    body = _blocks()[f"example={name}"]
    return body.replace("\n", "\r").encode(_codec(body))


def _masked(ack: str) -> list[list[str]]:
    """An ACK's segments and fields, with MSH-7 (time) and MSH-10 (fresh control id) blanked."""
    segments = [seg.split("|") for seg in ack.replace("\r", "\n").strip("\n").split("\n")]
    if segments and segments[0][0] == "MSH":
        for i in (6, 9):  # MSH-7 and MSH-10 (fields[1] is MSH-2)
            if len(segments[0]) > i:
                segments[0][i] = "*"
    return segments


def assert_ack_as_documented(ack: bytes, name: str) -> None:
    documented = _blocks()[f"ack-for={name}"]
    assert _masked(ack.decode(_codec(documented))) == _masked(documented)


def _mllp(gw: GatewayThread, *messages: bytes) -> list[bytes]:
    host, port = gw.mllp_address
    return mllp_exchange(host, port, messages)


def _post(http: httpx.Client, message: bytes) -> httpx.Response:
    response = http.post("/journal/hl7", content=message, headers={"content-type": "application/hl7-v2"})
    assert response.status_code == 200, response.text
    return response


def _by_booking(http: httpx.Client, identifier: str) -> dict[str, Any] | None:
    bundle = http.get("/fhir/Appointment", params={"identifier": identifier}).json()
    entries = bundle.get("entry", [])
    assert len(entries) <= 1
    return entries[0]["resource"] if entries else None


def _states(http: httpx.Client) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in ("received", "processed", "failed", "rejected", "duplicate", "waiting"):
        total = http.get("/messages", params={"state": state, "limit": 1}).json()["total"]
        if total:
            out[state] = total
    return out


def message(
    *segments: str, trigger: str = "S12", version: str = "2.5.1", charset: str = "UNICODE UTF-8"
) -> bytes:
    """A message from hand-written segments after a standard MSH."""
    msh = (
        f"MSH|^~\\&|TAKECARE|SLL|GATEWAY|REGION|20261124080000||SIU^{trigger}|{control_id()}|P|{version}"
        + (f"|||||SWE|{charset}" if charset else "")
    )
    body = "\r".join((msh, *segments)) + "\r"
    return body.encode("latin-1" if charset == "8859/1" else "utf-8")


PID = f"PID|1||{TOLVAN}^^^&{PNR_OID}&ISO||Tolvansson^Tolvan"


def sch(booking: str, *, minutes: str = "", units: str = "", sch11: str = "", status: str = "Booked") -> str:
    return f"SCH||{booking}^TAKECARE|||||^Kontroll|NYB^Nybesök|{minutes}|{units}|{sch11}" + "|" * 14 + status


# --- The profile's examples -------------------------------------------------------------------


def test_r_bk_2_profile_examples_s12_s13_s15_tell_one_bookings_story_through_both_ports(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    # 3.1: v2.5.1, TQ1, ISO 8859-1, over MLLP.
    raw = example("s12-v251-8859-1")
    assert "Återbesök".encode("latin-1") in raw
    (ack,) = _mllp(gateway, raw)
    assert_ack_as_documented(ack, "s12-v251-8859-1")
    wait_processed(http)
    first = _by_booking(http, "TAKECARE|BK-20261201-0042")
    assert first is not None
    documented = json.loads(_blocks()["json"])
    assert first["meta"]["versionId"] == "1"
    assert {k: v for k, v in first.items() if k != "meta"} == {
        k: v for k, v in documented.items() if k != "meta"
    }

    # 3.2: v2.3, start in SCH-11.4, over HTTP: the same Appointment, rescheduled, without the AIP.
    response = _post(http, example("s13-v23-8859-1"))
    assert response.headers["content-type"] == "application/hl7-v2; charset=iso-8859-1"
    assert_ack_as_documented(response.content, "s13-v23-8859-1")
    wait_processed(http)
    second = http.get(f"/fhir/Appointment/{first['id']}").json()
    assert second["meta"]["versionId"] == "2"
    assert (second["start"], second["end"], second["minutesDuration"]) == (
        "2026-12-03T10:00:00+01:00",
        "2026-12-03T10:45:00+01:00",
        45,
    )
    roles = [p.get("type", [{}])[0].get("coding", [{}])[0].get("code") for p in second["participant"]]
    assert roles == [None, "PPRF", None]  # patient, practitioner, location; the nurse is gone

    # 3.3: v2.5.1 UTF-8 cancel: stays, readable, as cancelled.
    (ack,) = _mllp(gateway, example("s15-v251-utf8"))
    assert_ack_as_documented(ack, "s15-v251-utf8")
    wait_processed(http)
    third = http.get(f"/fhir/Appointment/{first['id']}")
    assert third.status_code == 200
    assert third.json()["status"] == "cancelled"
    assert third.json()["cancelationReason"] == {"text": "Avbokad"}
    assert third.json()["meta"]["versionId"] == "3"
    assert _states(http) == {"processed": 3}


@pytest.mark.parametrize("transport", ["mllp", "http"])
@pytest.mark.parametrize("name", ["ae-check-digit", "ae-check-digit-v23", "ar-adt"])
def test_r_id_1_profile_error_examples_get_the_documented_acks_and_are_kept_as_rejected(
    gateway: GatewayThread, http: httpx.Client, name: str, transport: str
) -> None:
    raw = example(name)
    ack = _mllp(gateway, raw)[0] if transport == "mllp" else _post(http, raw).content
    assert_ack_as_documented(ack, name)
    assert _states(http) == {"rejected": 1}
    assert http.get("/fhir/Appointment", params={"_count": 0}).json()["total"] == 0


def test_profile_duplicate_example_is_acknowledged_again_across_transports_and_processed_once(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    assert_ack_as_documented(_post(http, example("s12-v251-8859-1")).content, "s12-v251-8859-1")
    wait_processed(http)
    (again,) = _mllp(gateway, example("s12-v251-8859-1-again"))
    assert_ack_as_documented(again, "s12-v251-8859-1-again")
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-20261201-0042")
    assert appt is not None and appt["meta"]["versionId"] == "1"
    assert _states(http) == {"processed": 1, "duplicate": 1}


# --- Duplicates and resending -----------------------------------------------------------------


def test_a_corrected_resend_of_a_rejected_control_id_is_processed(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    cid = control_id()
    (bad,) = _mllp(gateway, siu(control=cid, booking="BK-FIXED", patient="191212121213"))
    assert ack_code(bad) == "AE" and ack_fields(bad, "MSA")[2] == cid
    (fixed,) = _mllp(gateway, siu(control=cid, booking="BK-FIXED"))
    assert ack_code(fixed) == "AA" and ack_fields(fixed, "MSA")[2] == cid
    wait_processed(http)
    assert _by_booking(http, "TAKECARE|BK-FIXED") is not None
    assert _states(http) == {"processed": 1, "rejected": 1}


def test_store_failure_gets_ar_207_and_the_same_message_is_taken_when_resent(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    # On SQLite the inbox stores into the intake journal (gateway/store/intake_journal.py).
    journal = intake_journal.beside(gateway.gateway.engine)
    assert journal is not None
    with contextlib.closing(journal.connect()) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_entries BEFORE INSERT ON entries "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    cid = control_id()
    raw = siu(control=cid, booking="BK-STORE")
    (refused,) = _mllp(gateway, raw)
    assert ack_code(refused) == "AR"  # not AE: nothing is wrong with the content
    assert ack_fields(refused, "MSA")[2] == cid
    assert ack_fields(refused, "ERR")[3] == "207^Application internal error^HL70357"
    with contextlib.closing(journal.connect()) as conn:
        conn.execute("DROP TRIGGER refuse_entries")
    (taken,) = _mllp(gateway, raw)
    assert ack_code(taken) == "AA"
    wait_processed(http)
    assert _by_booking(http, "TAKECARE|BK-STORE") is not None
    assert _states(http) == {"processed": 1}


# --- Fields: where start, end, status and identity come from ----------------------------------


def test_start_from_ais_4_and_length_from_ais_7_when_there_is_no_tq1_or_sch_11(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    raw = message(sch("BK-AIS"), PID, "AIS|1||NYB^Nybesök|202612071415|||2|H")
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-AIS")
    assert appt is not None
    assert (appt["start"], appt["end"], appt["minutesDuration"]) == (
        "2026-12-07T14:15:00+01:00",
        "2026-12-07T16:15:00+01:00",
        120,
    )


def test_tq1_8_end_wins_over_sch_9_and_an_offset_in_the_timestamp_is_kept(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    raw = message(
        sch("BK-TQ1END", minutes="15", units="MIN"), "TQ1|1||||||202607010800+0000|202607010850+0000", PID
    )
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-TQ1END")
    assert appt is not None
    assert (appt["start"], appt["end"], appt["minutesDuration"]) == (
        "2026-07-01T08:00:00+00:00",
        "2026-07-01T08:50:00+00:00",
        50,
    )


def test_v23_sch_11_timestamps_with_a_degree_of_precision_subcomponent_are_taken(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    raw = message(
        sch("BK-TSPREC", sch11="^^40^202612081300&M^202612081340&M"), PID, version="2.3", charset="8859/1"
    )
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA", ack
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-TSPREC")
    assert appt is not None
    assert (appt["start"], appt["end"]) == ("2026-12-08T13:00:00+01:00", "2026-12-08T13:40:00+01:00")


@pytest.mark.parametrize(
    ("raw", "erl", "code"),
    [
        (message(sch("BK-NOSTART", minutes="30"), PID), "SCH^1^11^1^4", "101"),
        (message(sch("BK-NOEND"), "TQ1|1||||||202612011000", PID), "SCH^1^9", "101"),
        (message(sch("BK-BACKWARDS"), "TQ1|1||||||202612011000|202612010900", PID), "SCH^1^9", "102"),
        (
            message(sch("BK-BADUNIT", minutes="30", units="DAGAR"), "TQ1|1||||||202612011000", PID),
            "SCH^1^9",
            "102",
        ),
        (message(sch("BK-NOPID", minutes="30"), "TQ1|1||||||202612011000"), "PID", "100"),
        (message("PID|1", sch("BK-X", minutes="30"), "TQ1|1||||||202612011000"), "PID^1^3", "101"),
    ],
    ids=["no-start", "no-end", "end-before-start", "unknown-duration-unit", "no-pid", "empty-pid-3"],
)
def test_timing_and_required_segments_get_ae_naming_the_field(
    gateway: GatewayThread, raw: bytes, erl: str, code: str
) -> None:
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AE"
    err = ack_fields(ack, "ERR")
    assert err[2].startswith(erl) and err[3].split("^")[0] == code and err[4] == "E"


@pytest.mark.parametrize(
    ("trigger", "filler", "expected"),
    [
        ("S12", "Pending", "pending"),
        ("S12", "Waitlist", "waitlist"),
        ("S12", "", "booked"),
        ("S12", "Whatever", "booked"),
        ("S13", "Started", "arrived"),
        ("S14", "COMPLETE", "fulfilled"),
        ("S14", "Cancelled", "cancelled"),
        ("S15", "Booked", "cancelled"),
        ("S16", "Booked", "cancelled"),
        ("S17", "Booked", "entered-in-error"),
        ("S26", "Booked", "noshow"),
    ],
)
def test_r_bk_2_trigger_event_and_sch_25_decide_the_status(
    gateway: GatewayThread, http: httpx.Client, trigger: str, filler: str, expected: str
) -> None:
    (ack,) = _mllp(gateway, siu(trigger, booking="BK-STATUS", filler_status=filler))
    assert ack_code(ack) == "AA"
    wait_processed(http)
    bundle = http.get(
        "/fhir/Appointment", params={"identifier": "TAKECARE|BK-STATUS", "status": expected}
    ).json()
    (appt,) = [e["resource"] for e in bundle["entry"]]
    assert appt["status"] == expected
    assert ("cancelationReason" in appt) == (trigger in ("S15", "S16"))


def test_r_bk_2_a_deleted_booking_is_entered_in_error_in_the_sync_and_not_in_the_patient_list(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    _mllp(gateway, siu("S12", booking="BK-DEL"), siu("S17", booking="BK-DEL", filler_status="Deleted"))
    wait_processed(http)
    assert _by_booking(http, "TAKECARE|BK-DEL") is None  # left out of searches
    synced = http.get("/fhir/Appointment", params={"_lastUpdated": "gt2000-01-01"}).json()
    (appt,) = [e["resource"] for e in synced["entry"]]
    read = http.get(f"/fhir/Appointment/{appt['id']}")
    assert read.status_code == 200
    assert read.json()["status"] == "entered-in-error"
    assert "cancelationReason" not in read.json()
    assert http.get("/fhir/Appointment", params={"status": "entered-in-error"}).json()["total"] == 1
    assert http.get("/fhir/Appointment", params={"status": "cancelled"}).json()["total"] == 0


def test_r_bk_2_a_discontinued_booking_s16_is_cancelled_with_its_reason(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    timing = "TQ1|1||||||202612011000"
    sch = f"SCH||BK-DC||||ONKOLOGI^Behandlingen avbruten|^Kontroll|NYB|30|MIN|{'|' * 14}DC"
    (ack,) = _mllp(gateway, message(sch, timing, PID, trigger="S16", version="2.8"))
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-DC")
    assert appt is not None and appt["status"] == "cancelled"
    assert appt["cancelationReason"] == {"text": "Behandlingen avbruten"}


def test_booking_namespace_is_sch_2_universal_id_else_namespace_id_else_msh_3(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    timing = "TQ1|1||||||202612011000"
    acks = _mllp(
        gateway,
        message(f"SCH||BK-NS1|||||^Kontroll|NYB|30|MIN|{'|' * 14}Booked", timing, PID),
        message(f"SCH||BK-NS2^TC^1.2.752.97.99^ISO|||||^Kontroll|NYB|30|MIN|{'|' * 14}Booked", timing, PID),
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    wait_processed(http)
    assert _by_booking(http, "TAKECARE|BK-NS1") is not None  # from MSH-3
    assert _by_booking(http, "1.2.752.97.99|BK-NS2") is not None


@pytest.mark.parametrize(
    ("pid3", "system", "value"),
    [
        (f"X-99^^^&1.2.3.4&ISO~{TOLVAN}^^^&{PNR_OID}&ISO", PNR_SYSTEM, TOLVAN),
        (f"{TOLVAN}^^^{PNR_OID}", PNR_SYSTEM, TOLVAN),
    ],
    ids=["first-known-repetition", "oid-in-hd-1"],
)
def test_r_id_1_pid_3_takes_the_first_repetition_with_a_known_assigning_authority(
    gateway: GatewayThread, http: httpx.Client, pid3: str, system: str, value: str
) -> None:
    raw = message(
        sch("BK-PID3", minutes="30"), "TQ1|1||||||202612011000", f"PID|1||{pid3}||Tolvansson^Tolvan"
    )
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-PID3")
    assert appt is not None
    assert appt["participant"][0]["actor"]["identifier"] == {"system": system, "value": value}


@pytest.mark.parametrize(
    ("patient", "oid", "words"),
    [
        ("199002712935", SAMO_OID, "check digit"),
        ("1212121212", PNR_OID, "12 digits"),
        ("191213121212", PNR_OID, "impossible date"),
        ("199002712934", PNR_OID, "over 31"),
        ("98" + "0" * 10, RESERV_OID, "pattern"),
    ],
    ids=[
        "samordningsnummer-check-digit",
        "ten-digits",
        "month-13",
        "samordningsnummer-as-pnr",
        "reservnummer",
    ],
)
def test_r_id_1_r_id_2_every_bad_identifier_gets_ae_naming_pid_3_1(
    gateway: GatewayThread, http: httpx.Client, patient: str, oid: str, words: str
) -> None:
    (ack,) = _mllp(gateway, siu(patient=patient, oid=oid))
    assert ack_code(ack) == "AE"
    err = ack_fields(ack, "ERR")
    assert err[2] == "PID^1^3^1^1" and words in err[8]
    assert _states(http) == {"rejected": 1}


# --- Visibility -------------------------------------------------------------------------------


def test_r_bk_1_hidden_time_types_are_processed_but_absent_from_read_search_and_totals(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    hidden = ["ADM^Administrativ tid", "KONF^Intern konferens", "DOLD^Dold tid", "nyb^Nybesök", ""]
    messages = [siu(booking=f"BK-H{i}", time_type=tt) for i, tt in enumerate(hidden)]
    messages.append(siu(booking="BK-VISIBLE", time_type="VIDEO^Videobesök"))
    assert [ack_code(a) for a in _mllp(gateway, *messages)] == ["AA"] * 6
    wait_processed(http)
    assert _states(http) == {"processed": 6}  # hidden is a decision, not a failure
    for params in ({}, {"status": "booked"}, {"date": "ge2026-01-01"}, {"_lastUpdated": "ge2020-01-01"}):
        bundle = http.get("/fhir/Appointment", params=params).json()
        assert bundle["total"] == 1, params
        assert [e["resource"]["identifier"][0]["value"] for e in bundle["entry"]] == ["TAKECARE|BK-VISIBLE"]
    for i in range(len(hidden)):
        assert _by_booking(http, f"TAKECARE|BK-H{i}") is None
    assert http.get(f"/fhir/Appointment/{appointment_id('TAKECARE', 'BK-H0')}").status_code == 404
    video = _by_booking(http, "TAKECARE|BK-VISIBLE")
    assert video is not None
    assert video["serviceCategory"][0]["coding"][0]["code"] == "VR"
    assert video["serviceType"][0]["coding"][0]["code"] == "VIDEO"


# --- Character sets and escapes ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["mllp", "http"])
@pytest.mark.parametrize("processing", ["T", "D", "T^T", "X"])
def test_a_message_not_for_production_gets_ar_202_naming_msh_11_and_is_not_processed(
    gateway: GatewayThread, http: httpx.Client, processing: str, transport: str
) -> None:
    cid = control_id()
    raw = siu(control=cid, booking="BK-TEST", processing=processing)
    ack = _mllp(gateway, raw)[0] if transport == "mllp" else _post(http, raw).content
    assert ack_code(ack) == "AR" and ack_fields(ack, "MSA")[2] == cid
    assert ack_fields(ack, "MSH")[10] == processing.split("^")[0]  # MSH-11 echoed
    err = ack_fields(ack, "ERR")
    assert err[2] == "MSH^1^11^1" and err[3] == "202^Unsupported processing id^HL70357"
    assert _states(http) == {"rejected": 1}
    assert _by_booking(http, "TAKECARE|BK-TEST") is None


def test_a_production_message_with_a_processing_mode_is_taken(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    (ack,) = _mllp(gateway, siu(booking="BK-PROD", processing="P^T"))
    assert ack_code(ack) == "AA"
    wait_processed(http)
    assert _by_booking(http, "TAKECARE|BK-PROD") is not None


def test_utf8_declared_over_8859_1_bytes_gets_ae_naming_msh_18_and_still_echoes_msh_10(
    gateway: GatewayThread,
) -> None:
    cid = control_id()
    raw = siu(control=cid, charset="UNICODE UTF-8").decode("utf-8").encode("latin-1")
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AE"
    assert ack_fields(ack, "MSA")[2] == cid
    err = ack_fields(ack, "ERR")
    assert err[2] == "MSH^1^18^1" and err[3].startswith("102^")


def test_an_unsupported_character_set_gets_ae_naming_msh_18(gateway: GatewayThread) -> None:
    cid = control_id()
    (ack,) = _mllp(gateway, siu(control=cid, charset="8859/2"))
    assert ack_code(ack) == "AE" and ack_fields(ack, "MSA")[2] == cid
    err = ack_fields(ack, "ERR")
    assert err[2] == "MSH^1^18^1" and err[3].startswith("103^")


def test_undeclared_character_set_reads_utf8_and_falls_back_to_8859_1(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    reason = "^Återbesök hos sköterska Åsa"
    as_utf8 = siu(booking="BK-U8", charset="", reason=reason)
    as_latin1 = siu(booking="BK-L1", charset="", reason=reason).decode("utf-8").encode("latin-1")
    assert [ack_code(a) for a in _mllp(gateway, as_utf8, as_latin1)] == ["AA", "AA"]
    wait_processed(http)
    for booking in ("BK-U8", "BK-L1"):
        appt = _by_booking(http, f"TAKECARE|{booking}")
        assert appt is not None and appt["description"] == "Återbesök hos sköterska Åsa"


@pytest.mark.parametrize(
    ("charset", "http_charset"), [("8859/1", "iso-8859-1"), ("UNICODE UTF-8", "utf-8"), ("", "utf-8")]
)
def test_http_ack_names_its_character_set_as_iana_does_and_echoes_msh_18(
    gateway: GatewayThread, http: httpx.Client, charset: str, http_charset: str
) -> None:
    response = _post(http, siu(charset=charset))
    assert response.headers["content-type"] == f"application/hl7-v2; charset={http_charset}"
    assert ack_code(response.content) == "AA"
    msh = ack_fields(response.content, "MSH")
    assert (msh[17] if len(msh) > 17 else "") == charset


def test_escape_sequences_are_decoded_in_every_field_read(gateway: GatewayThread, http: httpx.Client) -> None:
    raw = message(
        r"SCH||BK\F\ESC^TAKECARE|||||^Prov \T\ kontroll\.br\Ta med \H\remiss\N\ \Z01\|NYB|30|MIN|"
        + "|" * 14
        + "Booked",
        "TQ1|1||||||202612011000",
        PID,
        r"AIG|1||SE2321000016-1A2B^Anna \S\ Läkare",
        r"AIL|1||SE2321000016-15CQ^^^^^^^^V\XE5\rdcentralen \E\ BVC",
        charset="8859/1",
    )
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK|ESC")
    assert appt is not None
    assert appt["description"] == "Prov & kontroll\nTa med remiss \\Z01\\"
    names = [p["actor"].get("display") for p in appt["participant"]]
    assert names == [None, "Anna ^ Läkare", "Vårdcentralen \\ BVC"]


# --- MLLP framing limits ----------------------------------------------------------------------


def _sized(size: int) -> bytes:
    """A valid message of exactly ``size`` bytes, padded with a Z-segment the gateway ignores."""
    base = siu(booking=f"BK-SIZE-{size}")
    padded = base + b"ZPD|" + b"x" * (size - len(base) - 5) + b"\r"
    assert len(padded) == size
    return padded


def test_mllp_message_at_the_size_limit_is_taken_and_one_byte_more_is_refused_and_closed(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    limit = gateway.gateway.settings.max_message_bytes
    (ack,) = _mllp(gateway, _sized(limit))
    assert ack_code(ack) == "AA"
    host, port = gateway.mllp_address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\x0b" + _sized(limit + 1) + b"\x1c\x0d")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"\x0b") and received.endswith(b"\x1c\x0d")  # one NACK, then closed
    assert ack_code(received[1:-2]) == "AR"
    assert f"larger than {limit} bytes".encode() in received
    too_big = http.post("/journal/hl7", content=_sized(limit + 1))
    assert too_big.status_code == 413 and too_big.json()["resourceType"] == "OperationOutcome"
    wait_processed(http)
    assert _states(http) == {"processed": 1}


def test_a_half_sent_frame_on_an_idle_connection_is_dropped_without_an_ack(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    host, port = gateway.mllp_address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\x0b" + siu()[:60])
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed after the idle timeout (2 s in tests), no ACK
        assert time.monotonic() - started > 1.5
    assert _states(http) == {}


# --- FHIR: the CapabilityStatement says exactly what the search takes ------------------------

_SAMPLE_VALUES = {
    "patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}",
    "identifier": "TAKECARE|BK1",
    "date": "ge2026-01-01",
    "status": "booked",
    "_lastUpdated": "ge2026-01-01T00:00:00Z",
    "_count": "5",
    "_offset": "0",
    "_sort": "-date",
    "_total": "none",
}


_COMMUNICATION_SAMPLE_VALUES = {
    "subject:identifier": f"{PNR_SYSTEM}|{TOLVAN}",
    "recipient:identifier": TOLVAN,
    "category": "e-brev",
    "status": "completed",
    "_lastUpdated": "gt2026-01-01",
    "_count": "5",
    "_offset": "0",
    "_sort": "-_lastUpdated",
    "_total": "none",
}


def test_capability_statement_lists_exactly_the_search_parameters_the_server_takes(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    resources = {r["type"]: r for r in http.get("/fhir/metadata").json()["rest"][0]["resource"]}
    communication = resources["Communication"]
    declared = {p["name"] for p in communication["searchParam"]}
    assert declared == set(_COMMUNICATION_SAMPLE_VALUES)
    for name in declared:
        response = http.get("/fhir/Communication", params={name: _COMMUNICATION_SAMPLE_VALUES[name]})
        assert response.status_code == 200, (name, response.text)
    for undeclared in ("patient", "_id", "sent", "medium"):
        assert http.get("/fhir/Communication", params={undeclared: "x"}).status_code == 400, undeclared
    resource = resources["Appointment"]
    declared = {p["name"] for p in resource["searchParam"]}
    assert declared == set(_SAMPLE_VALUES)
    for name in declared:
        response = http.get("/fhir/Appointment", params={name: _SAMPLE_VALUES[name]})
        assert response.status_code == 200, (name, response.text)
    for undeclared in ("patient", "practitioner", "location", "_id", "_include", "service-type"):
        response = http.get("/fhir/Appointment", params={undeclared: "x"})
        assert response.status_code == 400, undeclared
        assert response.json()["resourceType"] == "OperationOutcome"
    # Citizen self-service (docs/self-service.md) books, rebooks and cancels through Appointment.
    assert {i["code"] for i in resource["interaction"]} == {
        "read",
        "search-type",
        "create",
        "update",
        "patch",
    }
    for method in ("PUT", "DELETE"):
        assert http.request(method, "/fhir/Appointment").status_code in (404, 405)
    refused = http.post("/fhir/Appointment", content=b"{}", headers={"Content-Type": "application/fhir+json"})
    assert 400 <= refused.status_code < 500 and refused.json()["resourceType"] == "OperationOutcome"


def test_the_same_person_in_aig_and_aip_is_listed_as_primary_and_secondary_performer(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    raw = message(
        sch("BK-ROLES", minutes="30"),
        "TQ1|1||||||202612011000",
        PID,
        "AIG|1||SE2321000016-1A2B^Anna Läkare",  # CE: id^text
        "AIP|1||SE2321000016-1A2B^Läkare^Anna",  # XCN: id^family^given
    )
    (ack,) = _mllp(gateway, raw)
    assert ack_code(ack) == "AA"
    wait_processed(http)
    appt = _by_booking(http, "TAKECARE|BK-ROLES")
    assert appt is not None
    roles = [(p["type"][0]["coding"][0]["code"], p["actor"]["display"]) for p in appt["participant"][1:]]
    assert roles == [("PPRF", "Anna Läkare"), ("SPRF", "Anna Läkare")]


# --- E-documents: MDM T02 and T10 (profile section 10) -----------------------------------------

_MDM_TAKEN = ("mdm-t02-kallelse", "mdm-t02-ebrev-bilaga", "mdm-t10-kallelse")


def _messages(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http.get("/messages", params={**params, "limit": 100}).json()["items"]
    return items


@pytest.mark.parametrize("transport", ["mllp", "http"])
def test_r_doc_1_profile_mdm_examples_get_the_documented_aa_and_are_stored_with_their_patient(
    gateway: GatewayThread, http: httpx.Client, transport: str
) -> None:
    # The booking first (checklist 10.6), then the kallelse for it, an e-brev with a bilaga, the T10.
    for name in ("s12-v251-8859-1", *_MDM_TAKEN):
        raw = example(name)
        if transport == "mllp":
            (ack,) = _mllp(gateway, raw)
        else:
            response = _post(http, raw)
            charset = "utf-8" if b"UNICODE UTF-8" in raw.split(b"\r", 1)[0] else "iso-8859-1"
            assert response.headers["content-type"] == f"application/hl7-v2; charset={charset}"
            ack = response.content
        assert_ack_as_documented(ack, name)
    stored = _messages(http, type="MDM", patient=TOLVAN)
    assert sorted((m["control_id"], m["trigger"]) for m in stored) == [
        ("TC000201", "T02"),
        ("TC000202", "T02"),
        ("TC000203", "T10"),
    ]
    # Taken, not rejected; what processing makes of them is not this test's business.
    assert all(m["ack_code"] == "AA" and m["state"] not in ("rejected", "duplicate") for m in stored)


@pytest.mark.parametrize("transport", ["mllp", "http"])
@pytest.mark.parametrize(
    "name", ["ae-mdm-kallelse-without-booking", "ae-mdm-attachment-not-pdf", "ar-mdm-t04"]
)
def test_profile_mdm_error_examples_get_the_documented_acks_and_are_kept_as_rejected(
    gateway: GatewayThread, http: httpx.Client, name: str, transport: str
) -> None:
    raw = example(name)
    ack = _mllp(gateway, raw)[0] if transport == "mllp" else _post(http, raw).content
    assert_ack_as_documented(ack, name)
    assert _states(http) == {"rejected": 1}


def test_profile_mdm_duplicate_is_acknowledged_again_across_transports_and_stored_once(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    assert_ack_as_documented(_post(http, example("mdm-t02-kallelse")).content, "mdm-t02-kallelse")
    (again,) = _mllp(gateway, example("mdm-t02-kallelse-again"))
    assert_ack_as_documented(again, "mdm-t02-kallelse-again")
    wait_processed(http)  # a repeat is known as one once moved from the intake journal
    first, repeat = sorted(_messages(http, control_id="TC000201"), key=lambda m: m["id"])
    assert first["state"] not in ("rejected", "duplicate") and first["duplicate_of"] is None
    assert (repeat["state"], repeat["duplicate_of"]) == ("duplicate", first["id"])
    assert len(_messages(http, type="MDM", state="duplicate")) == 1


def test_a_simulated_day_of_bookings_and_letters_is_acknowledged_aa_over_several_connections(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    journal = JournalSimulator(seed=11, run_id="LT")
    day = date(2026, 12, 1)
    traffic: list[JournalMessage | JournalLetter] = [*journal.day(day, bookings=12), *journal.letters(day)]
    host, port = gateway.mllp_address
    acks = asyncio.run(push(traffic, host, port, connections=3))
    assert [ack_code(a) for a in acks] == ["AA"] * len(traffic)
    letters = [m for m in traffic if isinstance(m, JournalLetter)]
    assert len(_messages(http, type="MDM")) == len(letters)


def test_profile_vendor_example_v27_gives_device_location_and_patient_instruction(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    (ack,) = _mllp(gateway, example("s12-v27-vendor"))
    assert_ack_as_documented(ack, "s12-v27-vendor")
    wait_processed(http)
    appt = _by_booking(http, "CERNER|BK-CERNER-9001")
    assert appt is not None
    actors = [(p["actor"]["type"], p["actor"].get("identifier", {}).get("value"), p["actor"].get("display"))
              for p in appt["participant"][1:]]  # fmt: skip
    assert actors == [
        ("Practitioner", "SE2321000016-7P3K", "Eva Endoskopist"),
        ("Device", "5001", "EVIS X12 Video Colonoscope"),
        ("Location", "11", "X-Ray Room"),
    ]
    assert appt["patientInstruction"] == "Fasta från midnatt.\nDrick laxermedlet enligt instruktionen."
    assert "städas" not in json.dumps(appt)
