"""Enhanced acknowledgement mode (MSH-15/MSH-16; docs/hl7-profile.md 5.4) as functions: which
commit ACK the intake answers, whether one is sent, and what the application ACK says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.parser import parse_message

from gateway.journal_adapter import er7
from gateway.journal_adapter.app_ack import application_ack
from gateway.journal_adapter.header import ack_wanted, check_header, read_header
from gateway.mappings import load
from gateway.store.inbox import DUPLICATE, FAILED, PROCESSED, REJECTED
from tests.support import PNR_OID, TOLVAN

MAPPINGS = load()
NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)


def message(msh15: str = "AL", msh16: str = "AL", *, patient: str = TOLVAN, version: str = "2.5.1") -> bytes:
    return (
        f"MSH|^~\\&|EPIC|EPICADT^1.2.3^ISO|GATEWAY|REGION|20261124080000||SIU^S12|C42|P|{version}|||{msh15}|{msh16}"
        "|SWE|UNICODE UTF-8\r"
        "SCH||BK-E1^EPIC|||||^Kontroll|NYB|30|MIN|" + "|" * 14 + "Booked\r"
        "TQ1|1||||||202612011000\r"
        f"PID|1||{patient}^^^&{PNR_OID}&ISO\r"
    ).encode()


@pytest.mark.parametrize(
    ("condition", "code", "sent"),
    [
        ("AL", "CA", True),
        ("", "CA", True),
        ("NE", "CA", False),
        ("NE", "CR", False),
        ("ER", "CA", False),
        ("ER", "CR", True),
        ("ER", "AE", True),
        ("SU", "CA", True),
        ("SU", "AA", True),
        ("SU", "AE", False),
    ],
)
def test_msh_15_and_16_conditions_of_table_0155(condition: str, code: str, sent: bool) -> None:
    assert ack_wanted(condition, code) is sent


def test_the_header_knows_enhanced_mode_and_checks_its_values() -> None:
    header = read_header(er7.parse(message("AL", "NE").decode()))
    assert header.enhanced and (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert not read_header(er7.parse(message("", "").decode())).enhanced
    invalid = read_header(er7.parse(message("XX", "AL").decode()))
    assert not invalid.enhanced  # answered in original mode: AE naming MSH-15
    with pytest.raises(Exception, match="MSH-15"):
        check_header(invalid)


@pytest.mark.parametrize(("state", "code"), [(PROCESSED, "AA"), (DUPLICATE, "AA"), (FAILED, "AE")])
def test_the_application_ack_follows_the_state_after_processing(state: str, code: str) -> None:
    ack = application_ack(message(), state, 7, MAPPINGS, NOW, ("GATEWAY", "REGION"))
    assert ack is not None and ack.code == code and ack.wanted
    msh, msa = ack.text.split("\r")[:2]
    fields = msh.split("|")
    assert (fields[4], fields[5]) == ("EPIC", "EPICADT^1.2.3^ISO")
    assert (fields[14], fields[15]) == ("AL", "NE")  # it asks for a commit ACK, nothing more
    assert msa.split("|")[:3] == ["MSA", code, "C42"]
    parse_message(ack.text, find_groups=False, validation_level=2)


def test_r_id_1_a_content_error_is_committed_and_its_ae_comes_as_the_application_ack() -> None:
    ack = application_ack(message(patient="191212121213"), REJECTED, 7, MAPPINGS, NOW, ("GATEWAY", "REGION"))
    assert ack is not None and ack.code == "AE"
    assert (
        "ERR||PID^1^3^1^1|102^Data type error^HL70357|E||||personnummer check digit is wrong (Luhn)"
        in ack.text
    )


def test_msh_16_er_asks_for_no_application_ack_on_success() -> None:
    ack = application_ack(message("AL", "ER"), PROCESSED, 7, MAPPINGS, NOW, ("GATEWAY", "REGION"))
    assert ack is not None and not ack.wanted


def test_bytes_not_in_the_declared_charset_get_their_ae_as_the_application_ack() -> None:
    raw = message().replace(b"Kontroll", "Återbesök".encode("latin-1"))
    ack = application_ack(raw, REJECTED, 7, MAPPINGS, NOW, ("GATEWAY", "REGION"))
    assert ack is not None and ack.code == "AE"
    assert "ERR||MSH^1^18^1|102^" in ack.text
    assert ack.text.split("\r")[1].split("|")[:3] == ["MSA", "AE", "C42"]
