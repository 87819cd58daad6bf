"""Property-based tests of the HL7 intake (hypothesis): whatever arrives, the journal gets an ACK.

The intake runs with an in-memory inbox (the store is tested elsewhere): any bytes at all, a
valid message with any one field replaced by anything, and letters with any text. Each must end
in a well-formed ACK (AA, AE with an ERR segment naming where, or AR), never an exception, and
the content that was accepted must read back exactly.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.journal_adapter import er7
from gateway.journal_adapter.header import read_header
from gateway.journal_adapter.inbound import translate
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm
from gateway.mappings import load
from gateway.service.intake import Intake
from gateway.store.inbox import InboundRecord, Stored
from tests.support import PNR_OID, TOLVAN, siu

MAPPINGS = load()
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class MemoryInbox:
    """Stores records in a list; the intake only needs ``put``."""

    def __init__(self) -> None:
        self.records: list[InboundRecord] = []
        self._ids = count(1)

    async def put(self, record: InboundRecord) -> Stored:
        self.records.append(record)
        return Stored(next(self._ids), None)


def _handle(raw: bytes) -> tuple[str, list[list[str]], MemoryInbox]:
    inbox = MemoryInbox()
    intake = Intake(MAPPINGS, inbox, clock=lambda: NOW)  # type: ignore[arg-type]
    result = asyncio.run(intake.handle(raw, transport="mllp"))
    text = result.ack.decode(result.codec)
    segments = [s.split("|") for s in text.split("\r") if s]
    return result.ack_code, segments, inbox


def _check_ack(code: str, segments: list[list[str]]) -> None:
    names = [s[0] for s in segments]
    assert names[0] == "MSH" and "MSA" in names
    msa = segments[names.index("MSA")]
    assert msa[1] == code and code in ("AA", "AE", "AR")
    if code != "AA":
        err = segments[names.index("ERR")]
        assert err[0] == "ERR"


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_get_an_ack_never_an_exception(raw: bytes) -> None:
    code, segments, inbox = _handle(raw)
    _check_ack(code, segments)
    assert code != "AA"
    assert len(inbox.records) == 1 and inbox.records[0].state == "rejected"  # kept, not lost


_BASE = siu("S12", control="CTRL-1", booking="BK-P1").decode("utf-8")
_SEGMENTS = [s for s in _BASE.split("\r") if s]


@FAST
@given(
    st.integers(min_value=1, max_value=len(_SEGMENTS) - 1),
    st.integers(min_value=1, max_value=30),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x1c"), max_size=40
    ),
)
def test_any_field_of_a_valid_booking_replaced_by_anything_gets_aa_or_a_nack_naming_where(
    segment: int, field: int, value: str
) -> None:
    fields = _SEGMENTS[segment].split("|")
    while len(fields) <= field:
        fields.append("")
    fields[field] = value
    mutated = [*_SEGMENTS[:segment], "|".join(fields), *_SEGMENTS[segment + 1 :]]
    code, segments, _ = _handle(("\r".join(mutated) + "\r").encode("utf-8"))
    _check_ack(code, segments)
    msa = next(s for s in segments if s[0] == "MSA")
    assert msa[2] == "CTRL-1"  # MSA-2 echoes MSH-10 whatever else broke


_LINE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
    max_size=60,
)


@FAST
@given(st.lists(_LINE, min_size=1, max_size=8).filter(lambda lines: any(line.strip() for line in lines)))
def test_r_doc_1_any_letter_text_reads_back_exactly_with_its_line_breaks(lines: list[str]) -> None:
    text = "\n".join(lines)
    doc = MdmDocument(
        document_number="D-1",
        namespace="TAKECARE",
        document_type="BREV",
        patient_id=TOLVAN,
        patient_oid=PNR_OID,
        text=text,
        title="Brev",
    )
    raw = build_mdm("T02", doc, control_id="C-1", now=NOW, charset="UNICODE UTF-8")
    code, segments, inbox = _handle(raw)
    _check_ack(code, segments)
    assert code == "AA", segments
    decoded, _ = er7.decode(inbox.records[0].raw)
    msg = er7.parse(decoded)
    event = translate(msg, read_header(msg), MAPPINGS)
    assert event.text.strip("\n") == text.strip("\n")  # type: ignore[union-attr]
