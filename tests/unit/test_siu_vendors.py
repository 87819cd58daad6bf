"""SIU as other vendors send it (issue 17): later versions, S16/S17, sub-components, AIG-4,
foreign ids, NTE patient instructions and the ACK's echo of MSH-3/MSH-4.

Translation and FHIR building as functions, no gateway: hand-written segments after an MSH, so
each case bends one thing (docs/hl7-profile.md 2, 4.6, 4.7, 5).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.appointment import Appointment
from hl7apy.parser import parse_message

from gateway.domain.booking import BookingEvent, ResourceKind
from gateway.domain.identity import is_hsa_id
from gateway.domain.letter import DocumentEvent
from gateway.errors import MalformedMessage, UnsupportedMessage
from gateway.fhir.appointment import build_appointment, check, conforms
from gateway.fhir.search import parse_appointment_query
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import build_ack
from gateway.journal_adapter.header import check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.journal_adapter.siu import to_booking_event
from gateway.mappings import default_local_system, load
from tests.support import PNR_OID, TOLVAN

MAPPINGS = load()
HSA = "urn:oid:1.2.752.29.4.19"
PID = f"PID|1||{TOLVAN}^^^&{PNR_OID}&ISO||Tolvansson^Tolvan"
TQ1 = "TQ1|1||||||202612011000|202612011030"


def sch(booking: str = "BK-1^TAKECARE", *, event_reason: str = "", status: str = "Booked") -> str:
    return f"SCH||{booking}||||{event_reason}|^Kontroll|NYB^Nybesök|30|MIN|" + "|" * 14 + status


def msh(trigger: str = "S12", version: str = "2.5.1", app: str = "TAKECARE", facility: str = "SLL") -> str:
    return f"MSH|^~\\&|{app}|{facility}|GATEWAY|REGION|20261124080000||SIU^{trigger}|C1|P|{version}"


def event(*segments: str, trigger: str = "S12", version: str = "2.5.1", **kw: str) -> BookingEvent:
    text = "\r".join((msh(trigger, version, **kw), *segments)) + "\r"
    msg = er7.parse(text)
    header = read_header(msg)
    check_header(header)
    return to_booking_event(msg, header, MAPPINGS)


def appointment(ev: BookingEvent) -> dict[str, Any]:
    resource = build_appointment(ev, MAPPINGS)
    check(resource)
    Appointment.model_validate(resource)  # the R4B model, whatever conforms() says
    return resource


def actors(resource: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p["actor"] for p in resource["participant"] if p["actor"]["type"] == kind]


# --- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.2", "2.9"]
)
def test_every_version_from_2_3_to_2_9_is_read(version: str) -> None:
    ev = event(sch(), TQ1, PID, version=version)
    assert ev.start == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("version", ["2.2", "2.1", "3.0", "", "2.10", "v2.5"])
def test_versions_that_cannot_be_read_as_this_profile_get_ar_203(version: str) -> None:
    header = read_header(er7.parse(msh(version=version) + "\r"))
    with pytest.raises(UnsupportedMessage) as caught:
        check_header(header)
    assert caught.value.hl7_error_code == "203"


def test_a_2_8_message_keeps_its_version_in_the_ack_with_err_2() -> None:
    header = read_header(er7.parse(msh(version="2.8") + "\r"))
    ack = build_ack("AE", header, datetime(2026, 11, 24, 8, tzinfo=UTC), sender=("GATEWAY", "REGION"),
                    error=MalformedMessage("x", None, code="101"))  # fmt: skip
    assert ack.split("\r")[0].split("|")[11] == "2.8"
    assert ack.split("\r")[2].startswith("ERR||")


# --- S16, S17 (R-BK-2) -----------------------------------------------------------------------


def test_r_bk_2_s16_is_cancelled_with_the_reason_in_sch_6() -> None:
    ev = event(sch(event_reason="DC01^Behandlingen avslutad^L"), TQ1, PID, trigger="S16", version="2.6")
    resource = appointment(ev)
    assert resource["status"] == "cancelled"
    assert resource["cancelationReason"] == {"text": "Behandlingen avslutad"}


def test_r_bk_2_s16_without_a_reason_is_cancelled_as_discontinued() -> None:
    resource = appointment(event(sch(), TQ1, PID, trigger="S16"))
    assert resource["cancelationReason"] == {"text": "Avbruten"}


def test_r_bk_2_s17_is_entered_in_error_without_a_cancelation_reason() -> None:
    resource = appointment(event(sch(status="Deleted"), TQ1, PID, trigger="S17"))
    assert resource["status"] == "entered-in-error"
    assert "cancelationReason" not in resource  # FHIR app-4


def test_r_bk_2_entered_in_error_is_left_out_of_searches_unless_asked_for() -> None:
    patient = parse_appointment_query([("patient:identifier", TOLVAN)])
    assert patient.left_out == ("entered-in-error",)
    assert parse_appointment_query([("patient:identifier", TOLVAN), ("status", "booked")]).left_out == ()
    assert parse_appointment_query([("_lastUpdated", "gt2026-12-01")]).left_out == ()  # the sync


# --- components and sub-components ----------------------------------------------------------


def test_a_sub_component_never_leaks_into_an_identifier() -> None:
    ev = event(sch(), TQ1, PID, "AIL|1||11&X-Ray Room&L", version="2.7")
    (location,) = ev.locations
    assert location.local_id == "11"
    assert location.name == "X-Ray Room"
    (actor,) = actors(appointment(ev), "Location")
    assert actor["identifier"]["value"] == "11"
    assert "&" not in str(actor)


def test_the_reader_returns_one_sub_component_at_most() -> None:
    seg = er7.parse(msh() + "\rAIL|1||11&X-Ray Room&L^R2&Rum 2\r").first("AIL")
    assert seg is not None
    assert seg.get(3) == "11"
    assert seg.get(3, 1, 2) == "X-Ray Room"
    assert seg.get(3, 2) == "R2"
    assert seg.subcomponents(3, 1) == ["11", "X-Ray Room", "L"]


def test_an_hd_universal_id_is_not_read_as_a_name() -> None:
    ev = event(sch(), TQ1, PID, "AIL|1||SE2321000016-15CQ&1.2.752.29.4.19&ISO", version="2.8")
    (location,) = ev.locations
    assert location.hsa_id == "SE2321000016-15CQ" and location.name is None


def test_ail_reads_pl_1_pl_2_and_pl_9_and_a_change_of_room_is_a_change() -> None:
    first = appointment(event(sch(), TQ1, PID, "AIL|1||SE2321000016-15CQ^R12^^^^^^^Vårdcentralen Tolvåsen"))
    moved = appointment(event(sch(), TQ1, PID, "AIL|1||SE2321000016-15CQ^R14^^^^^^^Vårdcentralen Tolvåsen"))
    (a,), (b,) = actors(first, "Location"), actors(moved, "Location")
    assert a["identifier"] == {"system": HSA, "value": "SE2321000016-15CQ"}
    assert a["display"] == "Vårdcentralen Tolvåsen, rum R12"
    assert b["display"] == "Vårdcentralen Tolvåsen, rum R14"
    assert first != moved


def test_aip_reads_the_surname_of_a_v2_5_fn_family_name() -> None:
    ev = event(sch(), TQ1, PID, "AIP|1||SE2321000016-9Z8Y^Sköterska&&Sköterska^Åsa|SSK^Sjuksköterska")
    (nurse,) = ev.personnel
    assert nurse.name == "Åsa Sköterska"


# --- AIG by resource type --------------------------------------------------------------------


def test_aig_equipment_becomes_a_device_not_a_practitioner() -> None:
    ev = event(sch(), TQ1, PID, "AIG|1||5001^EVIS X12 Video Colonoscope^L|101^Equipment^L", version="2.7")
    assert ev.practitioners == () and ev.devices[0].kind is ResourceKind.EQUIPMENT
    resource = appointment(ev)
    (device,) = actors(resource, "Device")
    assert device["display"] == "EVIS X12 Video Colonoscope"
    assert device["identifier"] == {"system": default_local_system("TAKECARE", "SLL"), "value": "5001"}
    assert actors(resource, "Practitioner") == []


def test_aig_people_stay_primary_performers() -> None:
    resource = appointment(event(sch(), TQ1, PID, "AIG|1||SE2321000016-1A2B^Anna Läkare|1^Läkare"))
    (performer,) = [p for p in resource["participant"] if p["actor"]["type"] == "Practitioner"]
    assert performer["type"][0]["coding"][0]["code"] == "PPRF"
    assert performer["actor"]["identifier"] == {"system": HSA, "value": "SE2321000016-1A2B"}


def test_aig_of_type_room_is_a_location() -> None:
    ev = event(sch(), TQ1, PID, "AIG|1||ROOM7^Behandlingsrum 7|RUM^Rum")
    assert [r.name for r in ev.locations] == ["Behandlingsrum 7"]


# --- identifiers: HSA-id only in the HSA-id form -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "hsa"),
    [
        ("SE2321000016-15CQ", True),
        ("SE162321000016-15CQ", True),  # the organisationsnummer in its 12-digit form
        ("SE2321000016-" + "A" * 31, True),
        ("SE2321000016-" + "A" * 32, False),  # the unique part is 1-31 characters
        ("SE2321000017-15CQ", False),  # organisationsnummer check digit wrong
        ("SE232100001-15CQ", False),
        ("SE2321000016", False),
        ("SE2321000016-", False),
        ("se2321000016-15CQ", False),
        ("SE2321000016-15 CQ", False),
        ("5001", False),
        ("LabUnit101", False),
    ],
)
def test_hsa_id_form(value: str, hsa: bool) -> None:
    assert is_hsa_id(value) is hsa


def test_an_id_not_in_the_hsa_form_is_the_senders_own_never_silently_hsa() -> None:
    resource = appointment(
        event(
            sch(),
            TQ1,
            PID,
            "AIG|1||LabUnit101^Labbet",
            "AIL|1||5001^^^^^^^^Mottagning",
            app="COSMIC",
            facility="RJL",
        )
    )
    systems = {
        a["identifier"]["system"] for p in resource["participant"] if (a := p["actor"]).get("identifier")
    }
    assert HSA not in systems
    assert "urn:x-gateway:hl7v2-sender:COSMIC:RJL" in systems


def test_a_sender_with_its_own_identifier_system_in_the_mapping() -> None:
    ev = event(sch(), TQ1, PID, "AIG|1||L101^Labbet")
    assert ev.practitioners[0].local_system == MAPPINGS.senders.senders["TAKECARE|SLL"].identifier_system


def test_the_default_local_system_is_a_uri_built_from_msh_3_and_msh_4() -> None:
    assert default_local_system("EPIC", "") == "urn:x-gateway:hl7v2-sender:EPIC:-"
    assert default_local_system("MY APP", "Å/1") == "urn:x-gateway:hl7v2-sender:MY%20APP:%C3%85%2F1"


# --- NTE: patient instructions only ----------------------------------------------------------


def test_nte_pi_becomes_the_patient_instruction_and_other_notes_stay_internal() -> None:
    ev = event(
        sch(),
        "NTE|1|L|Om du behöver avboka din tid ska detta göras senast 24 timmar före besöket."
        "|PI^Patient Instructions^HL70364",
        "NTE|2|L|Patienten har hund, ring på|RE^Remark^HL70364",
        "NTE|3|L|Intern: dubbelbokad|",
        TQ1,
        PID,
        "AIL|1||SE2321000016-15CQ",
        "NTE|4|L|Ta med \\T\\ visa legitimation.~Kom 10 minuter före.|PI",
    )
    expected = (
        "Om du behöver avboka din tid ska detta göras senast 24 timmar före besöket.\n"
        "Ta med & visa legitimation.\nKom 10 minuter före."
    )
    assert ev.patient_instruction == expected
    resource = appointment(ev)
    assert resource["patientInstruction"] == expected
    assert "hund" not in str(resource) and "dubbelbokad" not in str(resource)


def test_no_pi_note_means_no_patient_instruction() -> None:
    resource = appointment(event(sch(), TQ1, PID, "NTE|1|L|Remark||"))
    assert "patientInstruction" not in resource


def test_patient_instruction_passes_the_strict_check() -> None:
    resource = appointment(event(sch(), TQ1, PID, "NTE|1||Kom i tid|PI"))
    assert conforms(resource)


# --- the ACK echoes MSH-3 and MSH-4 whole -------------------------------------------------------


def test_the_ack_echoes_every_hd_component_of_msh_3_and_msh_4() -> None:
    text = (
        "MSH|^~\\&|EPIC^1.2.246.537.6.99^ISO|RJL^1.2.752.97.10^ISO|GATEWAY|REGION"
        "|20261124080000||SIU^S12|C1|P|2.8\r"
    )
    ack = build_ack(
        "AA", read_header(er7.parse(text)), datetime(2026, 11, 24, 8, tzinfo=UTC), sender=("GW", "R")
    )
    fields = ack.split("\r")[0].split("|")
    assert fields[4] == "EPIC^1.2.246.537.6.99^ISO"
    assert fields[5] == "RJL^1.2.752.97.10^ISO"
    parse_message(ack, find_groups=False, validation_level=2)


def test_the_echo_is_rewritten_in_the_acks_own_delimiters() -> None:
    text = "MSH#*~\\$#EPIC*1.2.3*ISO#RJL$X#GATEWAY#REGION#20261124080000##SIU*S12#C1#P#2.5.1\r"
    header = read_header(er7.parse(text))
    ack = build_ack("AA", header, datetime(2026, 11, 24, 8, tzinfo=UTC), sender=("GW", "R"))
    fields = ack.split("\r")[0].split("|")
    assert fields[4] == "EPIC^1.2.3^ISO"
    assert fields[5] == "RJL&X"


@pytest.mark.parametrize(
    ("pv1_3", "unit"), [("SE2321000016-15CQ^^^^^^^^VC", "SE2321000016-15CQ"), ("VC12^^^^^^^^VC", None)]
)
def test_an_mdm_unit_is_an_hsa_id_only_in_the_hsa_id_form(pv1_3: str, unit: str | None) -> None:
    text = (
        "MSH|^~\\&|COSMIC|RJL|GATEWAY|REGION|20261124120000||MDM^T02|C9|P|2.6\r"
        f"{PID}\rPV1|1|O|{pv1_3}\r"
        "TXA|1|BREV|FT|||20261124120000||||||DOC-1^COSMIC|||||AU\r"
        "OBX|1|FT|BREV^Brev||Hej [4US:LPAT]||||||F\r"
    )
    msg = er7.parse(text)
    header = read_header(msg)
    check_header(header)
    event = translate(msg, header, MAPPINGS)
    assert isinstance(event, DocumentEvent)
    assert event.unit_hsa_id == unit and event.unit_name == "VC"
