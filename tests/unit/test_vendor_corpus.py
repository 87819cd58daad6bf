"""The vendor-style corpus translated without a gateway (issue 17; R-BK-2, R-DOC-1).

Each message is read as it is sent (its version and character set kept) and must give its
expected Appointment, which must pass the official FHIR R4 JSON schema and the R4B model.
``tests/e2e/test_vendor_corpus.py`` sends the same files through the real MLLP port.
"""

from __future__ import annotations

import pytest
from fhir.resources.R4B.appointment import Appointment

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
