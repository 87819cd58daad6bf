"""Identity rules R-ID-1, R-ID-2, R-ID-6 as pure functions."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.identity import (
    IdKind,
    age_on,
    luhn_check_digit,
    luhn_ok,
    mask_ids_in_text,
    parse_reservnummer,
    parse_swedish_id,
    recognise,
    with_century,
)
from gateway.errors import InvalidIdentifier

PNR = "1.2.752.129.2.1.3.1"
SAMO = "1.2.752.129.2.1.3.3"
RESERV = "1.2.752.97.3.1.3"
RESERV_PATTERN = re.compile(r"99\d{10}")


def test_r_id_1_tolvan_is_a_valid_personnummer() -> None:
    person = parse_swedish_id("191212121212", IdKind.PERSONNUMMER, PNR)
    assert person.value == "191212121212" and person.kind is IdKind.PERSONNUMMER


def test_r_id_1_dash_form_is_normalized_to_twelve_digits() -> None:
    assert parse_swedish_id("19121212-1212", IdKind.PERSONNUMMER, PNR).value == "191212121212"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("191212121213", "check digit"),
        ("1212121212", "12 digits"),
        ("19121212+1212", "12 digits"),
        ("19121312-1212", "impossible date"),
        ("19121272-1212", "over 31"),
        ("abcdefghijkl", "12 digits"),
        ("", "12 digits"),
    ],
)
def test_r_id_1_anything_else_is_rejected_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_swedish_id(text, IdKind.PERSONNUMMER, PNR)


def test_r_id_1_samordningsnummer_is_day_plus_60() -> None:
    assert parse_swedish_id("199002712934", IdKind.SAMORDNINGSNUMMER, SAMO).value == "199002712934"
    with pytest.raises(InvalidIdentifier, match="61-91"):
        parse_swedish_id("199002112934", IdKind.SAMORDNINGSNUMMER, SAMO)


@given(st.from_regex(r"\A(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])\d{3}\Z"))
def test_r_id_1_exactly_one_check_digit_completes_any_valid_birth_number(eleven: str) -> None:
    good = eleven + luhn_check_digit(eleven[2:])
    assert parse_swedish_id(good, IdKind.PERSONNUMMER, PNR).value == good
    wrong = [d for d in "0123456789" if luhn_ok(eleven[2:] + d)]
    assert len(wrong) == 1


def test_r_id_2_reservnummer_follows_the_regions_pattern() -> None:
    person = parse_reservnummer("999929-013705", RESERV, RESERV_PATTERN)
    assert person.value == "999929013705" and person.is_reservnummer
    with pytest.raises(InvalidIdentifier, match="pattern"):
        parse_reservnummer("191212121212", RESERV, RESERV_PATTERN)


def test_r_id_6_age_comes_from_the_personnummer_and_today() -> None:
    child = parse_swedish_id("201605152386", IdKind.PERSONNUMMER, PNR)
    assert age_on(child, date(2026, 5, 14)) == 9
    assert age_on(child, date(2026, 5, 15)) == 10
    samo = parse_swedish_id("199002712934", IdKind.SAMORDNINGSNUMMER, SAMO)
    assert age_on(samo, date(2026, 11, 24)) == 36
    assert age_on(parse_reservnummer("999929013705", RESERV, RESERV_PATTERN), date(2026, 1, 1)) is None


def test_masking_hides_the_last_four_digits_in_any_text() -> None:
    text = "patient 191212121212 and 19121212-1212 and 121212-1212 booked"
    masked = mask_ids_in_text(text)
    assert "1212121212" not in masked and "-1212" not in masked
    assert masked.count("****") == 3


def _recognise(text: str, today: date | None = None) -> tuple[IdKind, str, str]:
    person = recognise(
        text,
        personnummer_oid=PNR,
        samordningsnummer_oid=SAMO,
        reservnummer_patterns={RESERV: RESERV_PATTERN},
        today=today,
    )
    return person.kind, person.value, person.authority


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19121212-1212", (IdKind.PERSONNUMMER, "191212121212", PNR)),
        ("199002712934", (IdKind.SAMORDNINGSNUMMER, "199002712934", SAMO)),
        ("999929-013705", (IdKind.RESERVNUMMER, "999929013705", RESERV)),
    ],
)
def test_r_id_2_a_bare_number_is_recognised_as_its_kind_reservnummer_from_the_region_pattern(
    text: str, expected: tuple[IdKind, str, str]
) -> None:
    assert _recognise(text) == expected


def test_r_id_1_a_bare_number_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(InvalidIdentifier, match="check digit"):
        _recognise("191212121213")


ON = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("text", "twelve"),
    [
        ("121212+1212", "191212121212"),  # Tolvan, 114: "+" is 100 or older
        ("121212-1212", "201212121212"),  # the same digits with "-": a child of 14
        ("1212121212", "201212121212"),  # no sign reads as "-"
        ("820315-2452", "198203152452"),
        ("261207-0000", "202612070000"),  # born today
        ("261208-0000", "192612080000"),  # not born yet this year: 99 tomorrow
        ("261231+0000", "182612310000"),
        ("000229-0000", "200002290000"),
        ("900271-2934", "199002712934"),  # samordningsnummer: day + 60
        ("261271-0000", "192612710000"),  # samordningsnummer born on the 11th: not yet this year
    ],
)
def test_r_id_1_ten_digits_get_their_century_from_the_sign_and_today(text: str, twelve: str) -> None:
    assert with_century(text, ON) == twelve


def test_r_id_1_ten_digits_are_recognised_only_when_today_is_given() -> None:
    assert _recognise("820315-2452", ON) == (IdKind.PERSONNUMMER, "198203152452", PNR)
    assert _recognise("121212+1212", ON) == (IdKind.PERSONNUMMER, "191212121212", PNR)
    assert _recognise("900271-2934", ON) == (IdKind.SAMORDNINGSNUMMER, "199002712934", SAMO)
    assert _recognise("19121212-1212", ON)[1] == "191212121212"  # twelve digits as before
    with pytest.raises(InvalidIdentifier, match="check digit"):
        _recognise("121212+1213", ON)
    with pytest.raises(InvalidIdentifier, match="12 digits"):
        _recognise("820315-2452")  # without today: R-ID-1's twelve digits only
