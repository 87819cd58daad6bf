"""The vendor-style corpus translated without a gateway (issue 17; R-BK-2, R-DOC-1).

Each message is read as it is sent (its version and character set kept) and must give its
expected Appointment, which must pass the official FHIR R4 JSON schema and the R4B model.
``tests/e2e/test_vendor_corpus.py`` sends the same files through the real MLLP port.
"""

from __future__ import annotations

import pytest
from fhir.resources.R4B.appointment import Appointment
from hl7apy.parser import parse_message

from gateway.control_codes import CodeKind, scan
from gateway.domain.booking import BookingEvent
from gateway.domain.letter import DocumentEvent
from gateway.fhir.appointment import build_appointment, check
from gateway.journal_adapter import er7
from gateway.journal_adapter.header import check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.mappings import load
from tests.vendor_corpus import ORDER, expected, schema_errors, wire

MAPPINGS = load()


def _event(name: str) -> BookingEvent | DocumentEvent:
    text, _ = er7.decode(wire(name))
    msg = er7.parse(text)
    header = read_header(msg)
    check_header(header)
    return translate(msg, header, MAPPINGS)


@pytest.mark.parametrize("name", [n for n in ORDER if expected(n) is not None])
def test_r_bk_2_every_vendor_booking_gives_its_expected_appointment(name: str) -> None:
    event = _event(name)
    assert isinstance(event, BookingEvent)
    resource = build_appointment(event, MAPPINGS)
    check(resource)
    Appointment.model_validate(resource)
    assert schema_errors(resource) == []
    resource.pop("id")
    assert resource == expected(name)


def test_the_vendor_letter_is_an_e_brev_with_its_text_decoded_r_doc_1() -> None:
    event = _event("cambio_mdm_t02_v26")
    assert isinstance(event, DocumentEvent)
    assert event.text == "Hej,\n\nDina prover (Hb & CRP) är normala.\n\nVårdcentralen Tolvåsen · [4US:LPAT]"
    assert scan(event.text).kind is CodeKind.E_BREV


def test_the_schema_check_finds_what_the_model_would_not_be_asked() -> None:
    resource = build_appointment(_event("epic_siu_s12_v251"), MAPPINGS)  # type: ignore[arg-type]
    assert schema_errors({**resource, "status": "deleted"}) != []
    assert schema_errors({**resource, "patientInstructions": "x"}) != []


#: Corpus messages hl7apy (the reference) cannot read, and why: not the messages' fault.
_HL7APY_CANNOT = {
    "cerner_siu_s12_v27": "hl7apy 1.3.5 fails on a v2.7 TQ1 (TypeError inside its DTM parsing)",
    "cerner_siu_s16_v27": "hl7apy 1.3.5 fails on a v2.7 TQ1 (TypeError inside its DTM parsing)",
    "engine_siu_s12_v29": "hl7apy 1.3.5 knows versions up to 2.8.2",
}


@pytest.mark.parametrize("name", [n for n in ORDER if n not in _HL7APY_CANNOT])
def test_the_reference_reads_each_vendor_message_as_the_fast_reader_does(name: str) -> None:
    text, _ = er7.decode(wire(name))
    ours = er7.parse(text)
    ref = parse_message(text, find_groups=False, validation_level=2)
    assert ours.msh.get(12) == ref.msh.msh_12.msh_12_1.to_er7()
    assert ours.msh.get(10) == ref.msh.msh_10.to_er7()
    pid = ours.first("PID")
    assert pid is not None
    assert [rep.split("^")[0] for rep in pid.repetitions(3)] == [
        rep.to_er7().split("^")[0] for rep in ref.pid.pid_3
    ]
