"""Control codes in letters (R-DOC-1, R-DOC-2): exact codes count, near misses are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.control_codes import CODES, CodeKind, ControlCodeScan, scan

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"

E_BREV = "[4US:LPAT]"
E_REMISS = "[4US:RPAT]"


def _one_near_miss(result: ControlCodeScan) -> str:
    assert result.found == ()
    assert result.kind is CodeKind.NONE
    assert len(result.near_misses) == 1, result.near_misses
    return result.near_misses[0].hint


# R-DOC-1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("Med vänliga hälsningar\n[4US:LPAT]", CodeKind.E_BREV, id="R-DOC-1 LPAT -> e-brev"),
        pytest.param("Sidfot [4US:RPAT]", CodeKind.E_REMISSBEKRAFTELSE, id="R-DOC-1 RPAT -> remissbekr"),
        pytest.param("Ett brev utan styrkod.", CodeKind.NONE, id="R-DOC-1 no code -> none"),
        pytest.param("", CodeKind.NONE, id="R-DOC-1 empty text -> none"),
    ],
)
def test_r_doc_1_the_exact_code_decides_the_kind(text: str, kind: CodeKind) -> None:
    assert scan(text).kind is kind


def test_r_doc_1_each_kind_knows_its_code() -> None:
    assert CodeKind.E_BREV.code == E_BREV
    assert CodeKind.E_REMISSBEKRAFTELSE.code == E_REMISS
    assert CodeKind.NONE.code is None
    assert CODES == {E_BREV: CodeKind.E_BREV, E_REMISS: CodeKind.E_REMISSBEKRAFTELSE}


def test_r_doc_1_both_codes_in_one_letter_is_ambiguous_and_reported() -> None:
    result = scan("[4US:LPAT]\nÖvrigt [4US:RPAT]")
    assert result.conflicting
    assert result.kind is CodeKind.NONE
    assert not result.clean
    (problem,) = result.problems()
    assert str(problem.position) == "2:8"
    assert "not both" in problem.message and "[4US:LPAT] at 1:1" in problem.message


def test_r_doc_1_the_same_code_twice_still_counts_but_is_reported() -> None:
    result = scan("[4US:LPAT] och igen [4US:LPAT]")
    assert result.kind is CodeKind.E_BREV
    assert [str(m.position) for m in result.repeated] == ["1:21"]
    (problem,) = result.problems()
    assert str(problem.position) == "1:21"
    assert "again (first at 1:1)" in problem.message


def test_r_doc_1_a_letter_without_any_code_is_one_problem_at_the_start() -> None:
    (problem,) = scan("Hej!\nInget här.").problems()
    assert str(problem.position) == "1:1"
    assert "no control code" in problem.message


def test_r_doc_1_positions_count_characters_not_bytes() -> None:
    result = scan("Åsa Öberg\nÄrende åäö: [4US:RPAT]")
    (match,) = result.found
    assert (match.position.line, match.position.column) == (2, 13)
    assert match.position.offset == len("Åsa Öberg\nÄrende åäö: ")


def test_r_doc_1_the_fixture_templates_are_clean() -> None:
    brev = scan((TEMPLATES / "e_brev_ok.txt").read_text(encoding="utf-8"))
    remiss = scan((TEMPLATES / "e_remissbekraftelse_ok.txt").read_text(encoding="utf-8"))
    assert brev.clean and brev.kind is CodeKind.E_BREV
    assert remiss.clean and remiss.kind is CodeKind.E_REMISSBEKRAFTELSE
    assert str(brev.found[0].position) == "14:52"
    assert str(remiss.found[0].position) == "12:1"


# R-DOC-2 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        pytest.param("[4US: LPAT]", "space after ':'", id="R-DOC-2 space after colon"),
        pytest.param(
            "[4us:lpat]", "'4us' instead of '4US'; 'lpat' instead of 'LPAT'", id="R-DOC-2 lower case"
        ),
        pytest.param("[4US:LPAT ]", "space before ']'", id="R-DOC-2 space before bracket"),
        pytest.param("[ 4US:LPAT]", "space after '['", id="R-DOC-2 space after bracket"),
        pytest.param("(4US:LPAT)", "'(' instead of '['; ')' instead of ']'", id="R-DOC-2 round brackets"),
        pytest.param("[4US;LPAT]", "';' instead of ':'", id="R-DOC-2 semicolon"),
        pytest.param("4US:LPAT", "'[' missing; ']' missing", id="R-DOC-2 no brackets"),
        pytest.param("[4US:LPT]", "'LPT' instead of 'LPAT'", id="R-DOC-2 letter missing"),
        pytest.param("[4US:LAPT]", "'LAPT' instead of 'LPAT'", id="R-DOC-2 letters swapped"),
        pytest.param("[4 US:LPAT]", "space inside 4US", id="R-DOC-2 space inside 4US"),
        pytest.param("[4US:LP AT]", "space inside LPAT", id="R-DOC-2 space inside LPAT"),
        pytest.param("[4USLPAT]", "':' missing", id="R-DOC-2 colon missing"),
        pytest.param("[4US:LPAT\u00a0]", "no-break space before ']'", id="R-DOC-2 no-break space from Word"),
        pytest.param("[4US:\u200bLPAT]", "zero-width space after ':'", id="R-DOC-2 zero-width space"),
    ],
)
def test_r_doc_2_near_misses_of_lpat_do_not_count_and_say_what_is_wrong(text: str, what: str) -> None:
    hint = _one_near_miss(scan(f"Sidfot: {text} slut"))
    assert hint == f"near miss: {text!r} is not [4US:LPAT]: {what}"


def test_r_doc_2_near_miss_of_rpat_is_told_apart_from_lpat() -> None:
    result = scan("[4us:rpat]")
    _one_near_miss(result)
    assert result.near_misses[0].resembles == (CodeKind.E_REMISSBEKRAFTELSE,)


def test_r_doc_2_a_word_one_edit_from_both_names_both() -> None:
    result = scan("[4US:PAT]")
    _one_near_miss(result)
    assert result.near_misses[0].resembles == (CodeKind.E_BREV, CodeKind.E_REMISSBEKRAFTELSE)


def test_r_doc_2_an_unknown_bracketed_4us_code_is_reported() -> None:
    result = scan("Sidfot [4US:ABCD]")
    assert _one_near_miss(result).startswith("unknown control code '[4US:ABCD]'")
    assert result.near_misses[0].resembles == ()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Möte via https://invanare.sil.se/4US.Portal idag", id="R-DOC-2 meeting link (001)"),
        pytest.param("Vi ses 14US:LPAT", id="R-DOC-2 digits before 4US"),
        pytest.param("[4US:]", id="R-DOC-2 no word"),
        pytest.param("LPAT och RPAT utan prefix", id="R-DOC-2 bare words"),
    ],
)
def test_r_doc_2_unrelated_text_is_not_a_near_miss(text: str) -> None:
    assert scan(text).near_misses == ()


def test_r_doc_2_a_near_miss_next_to_the_exact_code_is_reported_but_the_code_counts() -> None:
    result = scan("[4US:LPAT]\n[4US: LPAT]")
    assert result.kind is CodeKind.E_BREV
    assert not result.clean
    assert [str(n.position) for n in result.near_misses] == ["2:1"]


def test_r_doc_2_adjacent_brackets_do_not_hide_the_exact_code() -> None:
    result = scan("([4US:LPAT]) [[4US:RPAT]]")
    assert [str(m.position) for m in result.found] == ["1:2", "1:15"]
    assert result.near_misses == ()


def test_r_doc_2_the_near_miss_fixture_at_known_lines_and_columns() -> None:
    result = scan((TEMPLATES / "near_misses.txt").read_text(encoding="utf-8"))
    assert result.found == ()
    assert [str(n.position) for n in result.near_misses] == [
        "4:9",
        "5:24",
        "6:16",
        "7:1",
        "8:17",
        "9:7",
        "9:19",
        "9:32",
    ]
    assert all(n.resembles == (CodeKind.E_BREV,) for n in result.near_misses)


# R-DOC-2, properties --------------------------------------------------------------------------

_codes = st.sampled_from(sorted(CODES))
# Any text, weighted towards the characters a control code is made of, so the neighbours of the
# code (brackets, letters, colons, another 4US) get exercised.
_texts = st.text(st.sampled_from(list("[]()<>:;. 4USLPATRuslpatr\nåäÖ\t")) | st.characters(), max_size=40)


def _expected(prefix: str) -> tuple[int, int]:
    line = prefix.count("\n") + 1
    return line, len(prefix) - (prefix.rfind("\n") + 1) + 1


@given(prefix=_texts, code=_codes, suffix=_texts)
def test_r_doc_2_any_exact_code_in_any_text_is_found_where_it_is(prefix: str, code: str, suffix: str) -> None:
    result = scan(prefix + code + suffix)
    at = [(m.position.line, m.position.column, m.kind) for m in result.found]
    assert (*_expected(prefix), CODES[code]) in at
    start, end = len(prefix), len(prefix) + len(code)
    assert not any(start <= n.position.offset < end for n in result.near_misses)


@given(
    prefix=_texts,
    code=_codes,
    suffix=_texts,
    cut=st.integers(min_value=1, max_value=9),
    space=st.sampled_from([" ", "  ", "\t", "\u00a0", "\u200b"]),
)
def test_r_doc_2_a_space_anywhere_inside_never_counts_but_is_reported(
    prefix: str, code: str, suffix: str, cut: int, space: str
) -> None:
    broken = code[:cut] + space + code[cut:]
    result = scan(prefix + broken + suffix)
    start = len(prefix)
    assert not any(start <= m.position.offset < start + len(broken) for m in result.found)
    reported = [n for n in result.near_misses if n.position.offset == start]
    assert reported, result.near_misses
    assert CODES[code] in reported[0].resembles
    assert reported[0].text == broken


@given(code=_codes, flips=st.lists(st.booleans(), min_size=10, max_size=10).filter(any))
def test_r_doc_2_changing_the_case_never_counts_but_is_reported(code: str, flips: list[bool]) -> None:
    variant = "".join(ch.swapcase() if flip else ch for ch, flip in zip(code, flips, strict=True))
    result = scan(variant)
    if variant == code:  # only brackets, digits or the colon were "flipped"
        assert result.kind is CODES[code]
        return
    _one_near_miss(result)
    assert CODES[code] in result.near_misses[0].resembles


# R-DOC-2: a code split by a line break ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("Hej\nMvh [4US:\nLPAT]\n", 2, 5, "line break inside the code, after '[4US:'"),
        ("Hej\nMvh [4US:\r\nLPAT]\n", 2, 5, "line break inside the code, after '[4US:'"),
        ("[4US:LP\nAT]", 1, 1, "line break inside the code, after '[4US:LP'"),
        ("Svar · [4US:LPA  \n  T]", 1, 8, "line break inside the code, after '[4US:LPA'"),
        ("Remiss [4US:\nRPAT]", 1, 8, "line break inside the code, after '[4US:'"),
    ],
)
def test_r_doc_2_a_code_split_by_a_line_break_is_a_near_miss_on_the_line_of_the_break(
    text: str, line: int, column: int, problem: str
) -> None:
    result = scan(text)
    hint = _one_near_miss(result)
    (miss,) = result.near_misses
    assert (miss.position.line, miss.position.column) == (line, column)
    assert miss.problems[0] == problem, hint
    assert "\n" in miss.text


def test_r_doc_2_a_split_near_miss_names_its_other_differences_too() -> None:
    (miss,) = scan("[4us:\nlpat]").near_misses
    assert miss.problems == (
        "line break inside the code, after '[4us:'",
        "'4us' instead of '4US'",
        "'lpat' instead of 'LPAT'",
    )


def test_r_doc_2_words_on_separate_lines_that_are_no_code_are_not_reported() -> None:
    assert scan("Ring 4US\nPortal för bokning\n[4US:LPAT]").near_misses == ()
    assert scan("Mvh\n[4US:LPAT]\n").clean
