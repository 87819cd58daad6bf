"""More bad input for the HL7 intake and the control-code scanner (issue "Security and
operations", item 7), beside ``test_intake_properties.py`` and ``test_control_codes.py``.

The intake: cut-off messages, letters (MDM) with any field replaced, a character set that is
not what MSH-18 says, segments dropped, doubled and shuffled, odd encoding characters and line
endings. Whatever comes, the answer is a well-formed ACK (AA, or AE/AR with an ERR), never an
exception, and ``AA`` exactly when the message was stored to be processed (``received``);
everything else is kept as ``rejected``. The scanner: any text at all is scanned without an
error, and what it reports is consistent with the text.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.control_codes import CODES, CodeKind, scan
from gateway.control_codes.lint import check_file
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm
from tests.support import PNR_OID, TOLVAN, siu
from tests.unit.test_intake_properties import _check_ack, _handle

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
EXAMPLES = 200
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SIU = siu("S12", control="CTRL-S", booking="BK-BAD", patient=TOLVAN).decode("utf-8")
_MDM = build_mdm(
    "T02",
    MdmDocument(
        document_number="D-BAD",
        namespace="TAKECARE",
        document_type="BREV",
        patient_id=TOLVAN,
        patient_oid=PNR_OID,
        text="Hej Åsa!\nDitt provsvar finns nu.\n[4US:LPAT]",
        title="Provsvar",
    ),
    control_id="CTRL-M",
    now=NOW,
    charset="UNICODE UTF-8",
).decode("utf-8")
_BASES = {"CTRL-S": _SIU, "CTRL-M": _MDM}
_FIELD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x1c"), max_size=40
)


def _segments(message: str) -> list[str]:
    return [s for s in message.split("\r") if s]


def _answer(raw: bytes) -> tuple[str, list[list[str]]]:
    """The intake's answer, checked: a well-formed ACK; AA exactly when stored as received."""
    code, segments, inbox = _handle(raw)
    _check_ack(code, segments)
    (record,) = inbox.records
    assert (code == "AA") == (record.state == "received"), (code, record.state, record.error)
    if code != "AA":
        assert record.state == "rejected" and record.error
    return code, segments


def _msa(segments: list[list[str]]) -> list[str]:
    return next(s for s in segments if s[0] == "MSA")


@PROPERTY
@given(control=st.sampled_from(sorted(_BASES)), cut=st.integers(min_value=0, max_value=2000))
def test_a_message_cut_off_anywhere_gets_an_ack(control: str, cut: int) -> None:
    raw = _BASES[control].encode("utf-8")
    code, segments = _answer(raw[: cut % (len(raw) + 1)])
    if code == "AA":  # cut after a whole optional segment: what is left is a valid message
        assert _msa(segments)[2] == control


@PROPERTY
@given(
    segment=st.integers(min_value=1, max_value=len(_segments(_MDM)) - 1),
    field=st.integers(min_value=1, max_value=30),
    value=_FIELD_TEXT,
)
def test_any_field_of_a_valid_letter_replaced_by_anything_gets_aa_or_a_nack(
    segment: int, field: int, value: str
) -> None:
    parts = _segments(_MDM)
    fields = parts[segment].split("|")
    fields += [""] * (field + 1 - len(fields))
    fields[field] = value
    parts[segment] = "|".join(fields)
    _, segments = _answer(("\r".join(parts) + "\r").encode("utf-8"))
    assert _msa(segments)[2] == "CTRL-M"  # MSA-2 echoes MSH-10 whatever else broke


_CHARSETS = ["UNICODE UTF-8", "8859/1", "ASCII", "", "UTF-16", "KLINGON", "8859/15"]
_CODECS = ["utf-8", "latin-1", "utf-16", "cp1252"]


@PROPERTY
@given(
    control=st.sampled_from(sorted(_BASES)),
    declared=st.sampled_from(_CHARSETS),
    codec=st.sampled_from(_CODECS),
    extra=st.text(max_size=20),
)
def test_bytes_in_another_character_set_than_msh_18_says_get_an_ack(
    control: str, declared: str, codec: str, extra: str
) -> None:
    msh, *rest = _segments(_BASES[control])
    fields = msh.split("|")
    fields[17] = declared
    text = "\r".join(["|".join(fields), *rest]) + "\r"
    text = text.replace("Hej Åsa!", f"Hej Åsa! {extra}")
    _, segments = _answer(text.encode(codec, errors="replace"))
    if codec != "utf-16":  # the MSH itself still reads (ASCII): MSA-2 echoes MSH-10
        assert _msa(segments)[2] == control


@PROPERTY
@given(control=st.sampled_from(sorted(_BASES)), data=st.data())
def test_segments_dropped_doubled_or_shuffled_get_an_ack(control: str, data: st.DataObject) -> None:
    parts = _segments(_BASES[control])
    chosen = data.draw(st.lists(st.sampled_from(parts), max_size=len(parts) + 3))
    keep_msh_first = data.draw(st.booleans())
    if keep_msh_first:
        chosen = [parts[0], *[p for p in chosen if not p.startswith("MSH")]]
    code, segments = _answer(("\r".join(chosen) + "\r").encode("utf-8"))
    if keep_msh_first:
        assert _msa(segments)[2] == control
    if code == "AA":
        assert chosen[0] == parts[0]


@PROPERTY
@given(
    control=st.sampled_from(sorted(_BASES)),
    separator=st.characters(codec="latin-1"),
    encoding=st.text(st.characters(codec="latin-1"), max_size=6),
    newline=st.sampled_from(["\r", "\n", "\r\n", "\n\r", "\r\r"]),
)
@example(control="CTRL-S", separator="\r", encoding="", newline="\r")  # was a ValueError (er7)
def test_odd_encoding_characters_and_line_endings_get_an_ack(
    control: str, separator: str, encoding: str, newline: str
) -> None:
    msh, *rest = _segments(_BASES[control])
    bent = "MSH" + separator + encoding + msh[len("MSH|^~\\&") :]
    _answer((newline.join([bent, *rest]) + newline).encode("utf-8", errors="replace"))


# --- The control-code scanner on any text ---------------------------------------------------

_NEAR = st.text(st.sampled_from(list("[]4USLPATRuslpatr: \n")), max_size=30)


@PROPERTY
@given(text=st.text(max_size=300) | _NEAR | st.builds("".join, st.lists(_NEAR | st.text(max_size=10))))
def test_r_doc_1_r_doc_2_any_text_scans_without_error_and_reports_consistently(text: str) -> None:
    result = scan(text)
    exact = {code for code in CODES if code in text}
    assert {m.kind for m in result.found} == {CODES[c] for c in exact}  # exactly the codes present
    assert len(result.found) == sum(text.count(c) for c in CODES)
    assert result.kind is (CODES[next(iter(exact))] if len(exact) == 1 else CodeKind.NONE)
    for match in result.found:
        assert text[match.position.offset :].startswith(match.code)
    lines = text.split("\n")
    for where in [m.position for m in result.found] + [n.position for n in result.near_misses]:
        assert 0 <= where.offset < len(text)
        assert 1 <= where.line <= len(lines) and where.column >= 1
        before = text[: where.offset]
        assert where.line == before.count("\n") + 1
        assert where.column == len(before) - (before.rfind("\n") + 1) + 1
    for near in result.near_misses:
        assert near.text not in CODES and text[near.position.offset :].startswith(near.text)
    assert result.problems() or result.clean  # an unclean letter always says what to fix


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=300)
    | st.builds(
        lambda t, c: (t + c + t).encode("utf-8"), st.text(max_size=40), st.sampled_from(sorted(CODES))
    ),
    expect=st.sampled_from([None, CodeKind.E_BREV, CodeKind.E_REMISSBEKRAFTELSE]),
)
def test_r_doc_2_lint_template_reads_any_file_and_says_where(data: bytes, expect: CodeKind | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mall.txt"
        path.write_bytes(data)
        problems = check_file(path, expect)
    for problem in problems:
        assert problem.position.line >= 1 and problem.position.column >= 1 and problem.message
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        (problem,) = problems  # one problem: where the text stops being UTF-8
        assert "not UTF-8" in problem.message
        return
    found = scan(text.replace("\r\n", "\n").replace("\r", "\n"))
    assert bool(problems) == (
        not found.clean or (expect is not None and found.kind not in (expect, CodeKind.NONE))
    )
