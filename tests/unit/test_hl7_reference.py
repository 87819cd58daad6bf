"""hl7apy, the reference HL7 v2 implementation, checks the gateway's fast reader and its ACKs.

The intake hot path reads ER7 with ``gateway/journal_adapter/er7.py`` (a full hl7apy parse
costs ~8 ms a message); these tests hold that reader, the ACK builder and the simulated
journal (bookings as SIU, letters as MDM) to hl7apy on the same messages.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from gateway.domain.booking import Resource
from gateway.domain.letter import Attachment
from gateway.errors import Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import build_ack
from gateway.journal_adapter.mdm_builder import MdmDocument, Practitioner, build_mdm, minimal_pdf
from gateway.journal_adapter.siu import read_header
from mocks.journal import JournalLetter, JournalSimulator

_JOURNAL = JournalSimulator(seed=7)
DAY = _JOURNAL.day(date(2026, 12, 1), bookings=30)
LETTERS = _JOURNAL.letters(date(2026, 12, 1))


def _reference(text: str) -> object:
    return parse_message(text.replace("\n", "\r"), find_groups=False, validation_level=2)


@pytest.mark.parametrize("message", DAY, ids=lambda m: f"{m.trigger}-{m.version}-{m.charset or 'none'}")
def test_the_fast_reader_agrees_with_hl7apy_on_every_simulated_message(message: object) -> None:
    text, _ = er7.decode(message.data)  # type: ignore[attr-defined]
    ours = er7.parse(text)
    ref = _reference(text)
    msh = ref.msh  # type: ignore[attr-defined]
    assert ours.msh.get(10) == msh.msh_10.to_er7()
    assert ours.msh.get(9, 2) == msh.msh_9.msh_9_2.to_er7()
    assert ours.msh.get(12) == msh.msh_12.to_er7()
    pid = ref.pid  # type: ignore[attr-defined]
    assert ours.first("PID") is not None
    assert ours.first("PID").get(3) == pid.pid_3.pid_3_1.to_er7()  # type: ignore[union-attr]
    sch = ref.sch  # type: ignore[attr-defined]
    booking = sch.sch_2.to_er7().split("^")[0]
    assert ours.first("SCH").get(2) == er7.unescape(booking)  # type: ignore[union-attr]
    reason = sch.sch_7.to_er7().split("^")[1]
    assert ours.first("SCH").get(7, 2) == er7.unescape(reason)  # type: ignore[union-attr]


def _header() -> object:
    text, _ = er7.decode(DAY[0].data)
    return read_header(er7.parse(text))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AA", None),
        ("AE", MalformedMessage("personnummer check digit is wrong", Location("PID", 3, 1))),
        ("AR", UnsupportedMessage("ADT is not taken", Location("MSH", 9))),
    ],
)
def test_every_kind_of_ack_is_valid_hl7_with_msa_2_echoing_msh_10(
    code: str, error: MalformedMessage | UnsupportedMessage | None
) -> None:
    header = _header()
    ack = build_ack(
        code,  # type: ignore[arg-type]
        header,  # type: ignore[arg-type]
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        sender=("GATEWAY", "REGION"),
        error=error,
    )
    ref = _reference(ack)
    assert ref.msa.msa_1.to_er7() == code  # type: ignore[attr-defined]
    assert ref.msa.msa_2.to_er7() == DAY[0].control_id  # type: ignore[attr-defined]
    if error is not None:
        err = ref.err  # type: ignore[attr-defined]
        assert err.err_2.to_er7().startswith(error.location.segment)  # type: ignore[union-attr]
        assert err.err_3.to_er7().startswith(error.hl7_error_code)


# --- MDM: the builder's and the simulated journal's letters -------------------------------------


def _segments(ref: object, name: str) -> list[object]:
    return [c for c in ref.children if c.name == name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "letter", LETTERS, ids=lambda m: f"{m.trigger}-{m.kind}-{m.version}-{m.text_type}-{m.charset or 'none'}"
)
def test_the_fast_reader_agrees_with_hl7apy_on_every_simulated_letter(letter: JournalLetter) -> None:
    text, _ = er7.decode(letter.data)
    ours = er7.parse(text)
    ref = _reference(text)
    msh = ref.msh  # type: ignore[attr-defined]
    assert (ours.msh.get(9, 1), ours.msh.get(9, 2)) == ("MDM", letter.trigger)
    assert ours.msh.get(9, 2) == msh.msh_9.msh_9_2.to_er7()
    assert ours.msh.get(10) == msh.msh_10.to_er7() == letter.control_id
    txa = ref.txa  # type: ignore[attr-defined]
    our_txa = ours.first("TXA")
    assert our_txa is not None
    assert our_txa.get(2) == txa.txa_2.to_er7() == letter.document_type
    assert our_txa.get(12) == er7.unescape(txa.txa_12.to_er7().split("^")[0]) == letter.document_number
    assert our_txa.get(13) == er7.unescape(txa.txa_13.to_er7().split("^")[0]) == (letter.booking_id or "")
    ref_obx = _segments(ref, "OBX")
    our_obx = ours.all("OBX")
    assert len(our_obx) == len(ref_obx)
    for mine, theirs in zip(our_obx, ref_obx, strict=True):
        assert mine.get(2) == theirs.obx_2.to_er7()  # type: ignore[attr-defined]
        # hl7apy reads FT's \.br\ as text but writes it back escaped (\E\.br\E\): undo that.
        reps = [r.to_er7().replace("\\E\\.br\\E\\", "\\.br\\") for r in theirs.obx_5]  # type: ignore[attr-defined]
        assert mine.repetitions(5) == reps
    attachments = [o for o in ref_obx if o.obx_2.to_er7() == "ED"]  # type: ignore[attr-defined]
    assert [base64.b64decode(o.obx_5.to_er7().split("^")[4]) for o in attachments] == [  # type: ignore[attr-defined]
        a.data for a in letter.attachments
    ]


_LETTER = MdmDocument(
    document_number="D-1",
    namespace="TAKECARE",
    document_type="KALLELSE",
    patient_id="191212121212",
    patient_oid="1.2.752.129.2.1.3.1",
    text="Hej Tolvan,\n\nTid & plats: 1 december | kl. 09.00\nVårdcentralen Tolvåsen",
    title="Kallelse till återbesök",
    booking_id="BK-1",
    written_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
    author=Practitioner("SE2321000016-1A2B", "Läkare", "Anna"),
    unit=Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),
    family="Tolvansson",
    given="Tolvan",
)


@pytest.mark.parametrize(
    ("trigger", "version"),
    # T10 in v2.3 is left out: without MSH-9.3 (new in 2.3.1) hl7apy cannot tell T10 uses MDM_T02;
    # v2.3.1 is left out because hl7apy's 2.3.1 tables make OBX-4 required, which HL7 does not.
    [("T02", "2.3"), ("T02", "2.4"), ("T02", "2.5"), ("T02", "2.5.1"), ("T10", "2.4"), ("T10", "2.5.1")],
)
@pytest.mark.parametrize("text_type", ["TX", "FT"])
@pytest.mark.parametrize("charset", ["8859/1", "UNICODE UTF-8"])
def test_builder_mdm_messages_are_valid_hl7_for_hl7apy_strict(
    trigger: str, version: str, text_type: str, charset: str
) -> None:
    """Segment order, groups and required fields as the standard's MDM_T02 structure has them.
    (Strict hl7apy also applies its OBX-5 length limit, so this letter is short and attachments
    are checked in the tolerant test below.)"""
    raw = build_mdm(
        trigger,
        _LETTER,
        control_id="C-1",
        now=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        version=version,
        charset=charset,
        text_type=text_type,  # type: ignore[arg-type]
    )
    text, _ = er7.decode(raw)
    ref = parse_message(text, find_groups=True, validation_level=VALIDATION_LEVEL.STRICT)
    ref.validate()
    assert ref.txa.txa_12.ei_1.to_er7() == "D-1"


@pytest.mark.parametrize("version", ["2.3", "2.5.1"])
@pytest.mark.parametrize("per_line", [False, True])
def test_builder_tx_lines_and_ed_attachments_read_the_same_in_hl7apy(version: str, per_line: bool) -> None:
    pdf = minimal_pdf("Bilaga")
    letter = replace(_LETTER, attachments=(Attachment("bilaga.pdf", "application/pdf", pdf),))
    raw = build_mdm(
        "T02",
        letter,
        control_id="C-2",
        now=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        version=version,
        obx_per_line=per_line,
    )
    text, _ = er7.decode(raw)
    ref = _reference(text)
    obx = _segments(ref, "OBX")
    lines = [
        er7.unescape(rep.to_er7()) if rep is not None else ""
        for o in obx
        if o.obx_2.to_er7() == "TX"  # type: ignore[attr-defined]
        # hl7apy has no OBX-5 child for an empty value: that OBX is one empty line
        for rep in (list(o.obx_5) or [None])  # type: ignore[attr-defined]
    ]
    assert "\n".join(lines) == _LETTER.text
    (ed,) = [o for o in obx if o.obx_2.to_er7() == "ED"]  # type: ignore[attr-defined]
    assert ed.obx_3.to_er7() == "BILAGA^bilaga.pdf"  # type: ignore[attr-defined]
    source, kind, subtype, encoding, data = ed.obx_5.to_er7().split("^")  # type: ignore[attr-defined]
    assert (source, kind, subtype, encoding) == ("", "AP", "PDF", "Base64")
    assert base64.b64decode(data) == pdf
