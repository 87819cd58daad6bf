"""Person identifiers (R-ID-1, R-ID-2) as pure functions.

A personnummer is ``YYYYMMDDNNNC`` where ``C`` is the Luhn check digit over the last ten
digits; a samordningsnummer is the same with the day of birth plus 60. A reservnummer is a
region's temporary number, never in the population register (R-ID-2); its format is the
region's, given as a pattern by the mapping files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from gateway.errors import InvalidIdentifier


class IdKind(StrEnum):
    PERSONNUMMER = "personnummer"
    SAMORDNINGSNUMMER = "samordningsnummer"
    RESERVNUMMER = "reservnummer"


@dataclass(frozen=True, slots=True)
class PersonId:
    """A checked, normalized person identifier. ``authority`` is the issuing OID."""

    kind: IdKind
    value: str
    authority: str

    @property
    def is_reservnummer(self) -> bool:
        return self.kind is IdKind.RESERVNUMMER

    def masked(self) -> str:
        return mask_id(self.value)


_TWELVE = re.compile(r"^(\d{8})-?(\d{4})$")
_TEN = re.compile(r"^(\d{2})(\d{2})(\d{2})([-+]?)(\d{4})$")


#: A digit doubled, its digits summed (the Luhn step for every other digit).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(ten_digits: str) -> bool:
    """Luhn check over the ten digits YYMMDDNNNC."""
    total = 0
    for i, ch in enumerate(ten_digits):
        d = int(ch)
        total += _DOUBLED[d] if i % 2 == 0 else d
    return total % 10 == 0


def luhn_check_digit(nine_digits: str) -> str:
    """The check digit that makes ``nine_digits + digit`` pass :func:`luhn_ok`."""
    for c in "0123456789":
        if luhn_ok(nine_digits + c):
            return c
    raise AssertionError("unreachable: one digit always completes a Luhn sum")


def normalize_twelve(text: str) -> str:
    """``YYYYMMDDNNNC`` or ``YYYYMMDD-NNNC`` to 12 digits; anything else is rejected."""
    match = _TWELVE.match(text.strip())
    if match is None:
        raise InvalidIdentifier(
            f"identifier must be 12 digits YYYYMMDDNNNC (or YYYYMMDD-NNNC), got {len(text)} characters"
        )
    return match.group(1) + match.group(2)


def with_century(text: str, today: date) -> str:
    """R-ID-1: a 10-digit ``YYMMDD-NNNC`` (or ``YYMMDDNNNC``, or ``YYMMDD+NNNC``) as 12 digits.

    The separator tells the century, as the register writes it: ``-`` (or none) for a person
    under 100 on ``today``, ``+`` for one aged 100 or more. Only the digits are rearranged;
    :func:`parse_swedish_id` checks the result."""
    match = _TEN.match(text.strip())
    if match is None:
        raise InvalidIdentifier(f"identifier must be 10 digits YYMMDD-NNNC, got {len(text)} characters")
    yy, month, day, sign, last = match.groups()
    day_of_birth = int(day) - 60 if int(day) > 60 else int(day)  # samordningsnummer: day + 60
    year = today.year - (today.year - int(yy)) % 100  # the latest year ending in YY, up to this one
    if year == today.year and (int(month), day_of_birth) > (today.month, today.day):
        year -= 100  # not born yet this year: the century before
    if sign == "+":
        year -= 100
    return f"{year // 100:02d}{yy}{month}{day}{last}"


def birth_date(value: str, kind: IdKind) -> date:
    """The date of birth carried by a normalized personnummer or samordningsnummer."""
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    if kind is IdKind.SAMORDNINGSNUMMER:
        day -= 60
    return date(year, month, day)


@functools.lru_cache(maxsize=8192)
def parse_swedish_id(text: str, kind: IdKind, authority: str) -> PersonId:
    """Check a personnummer or samordningsnummer (R-ID-1) and normalize it to 12 digits.

    Remembered for the most recent persons (their next booking, or the same one changed): a
    PersonId is immutable, and a number that fails is checked again each time."""
    value = normalize_twelve(text)
    if kind is IdKind.RESERVNUMMER:
        raise ValueError("use parse_reservnummer for reservnummer")
    day = int(value[6:8])
    if kind is IdKind.SAMORDNINGSNUMMER and not 61 <= day <= 91:
        raise InvalidIdentifier("samordningsnummer day of birth must be 61-91 (day + 60)")
    if kind is IdKind.PERSONNUMMER and day > 31:
        raise InvalidIdentifier("personnummer day of birth is over 31 (a samordningsnummer?)")
    try:
        birth_date(value, kind)
    except ValueError as exc:
        raise InvalidIdentifier(f"{kind.value} carries an impossible date of birth") from exc
    if not luhn_ok(value[2:]):
        raise InvalidIdentifier(f"{kind.value} check digit is wrong (Luhn)")
    return PersonId(kind, value, authority)


def parse_reservnummer(text: str, authority: str, pattern: re.Pattern[str]) -> PersonId:
    """A region's reservnummer (R-ID-2): the region's pattern decides; dashes are dropped."""
    value = text.strip().replace("-", "")
    if not pattern.fullmatch(value):
        raise InvalidIdentifier(f"reservnummer does not match the pattern {pattern.pattern}")
    return PersonId(IdKind.RESERVNUMMER, value, authority)


def recognise(
    text: str,
    *,
    personnummer_oid: str,
    samordningsnummer_oid: str,
    reservnummer_patterns: Mapping[str, re.Pattern[str]],
    today: date | None = None,
) -> PersonId:
    """A bare number with no issuing authority (typed by staff, a URL path) to a checked id.

    A region's reservnummer pattern wins (R-ID-2: ``99`` + 10 digits in Region Stockholm could
    otherwise read as a date in 1999); then day of birth over 60 means samordningsnummer (R-ID-1).
    With ``today``, a 10-digit ``YYMMDD-NNNC`` is accepted too (:func:`with_century`).
    """
    compact = text.strip().replace("-", "")
    for oid, pattern in reservnummer_patterns.items():
        if pattern.fullmatch(compact):
            return PersonId(IdKind.RESERVNUMMER, compact, oid)
    if today is not None and _TEN.match(text.strip()):
        text = with_century(text, today)
    value = normalize_twelve(text)
    if int(value[6:8]) > 60:
        return parse_swedish_id(value, IdKind.SAMORDNINGSNUMMER, samordningsnummer_oid)
    return parse_swedish_id(value, IdKind.PERSONNUMMER, personnummer_oid)


def age_on(person: PersonId, today: date) -> int | None:
    """Age in whole years from the identifier (R-ID-6); ``None`` for a reservnummer."""
    if person.is_reservnummer:
        return None
    born = birth_date(person.value, person.kind)
    years = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        years -= 1
    return years


_ID_IN_TEXT = re.compile(r"(?<!\d)(\d{6}|\d{8})([-+]?)(\d{4})(?!\d)")


def mask_id(value: str) -> str:
    """Keep the date part, hide the last four: ``19121212-****``."""
    return _ID_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2) or '-'}****", value)


def mask_ids_in_text(text: str) -> str:
    """Mask anything that looks like a personnummer inside free text (used by log masking)."""
    return _ID_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2) or '-'}****", text)


#: HSA-id (Inera's catalogue of health and care staff and units): country code ``SE``, the
#: issuing organisation's organisationsnummer (10 digits, in its 12-digit form with the century
#: prefix ``16`` too), a dash and 1-31 letters or digits: ``SE2321000016-15CQ``.
_HSA_ID = re.compile(r"SE(?:16)?(\d{10})-[A-Za-z0-9]{1,31}")


def is_hsa_id(value: str) -> bool:
    """Whether ``value`` has the HSA-id form, the organisationsnummer's Luhn digit included.

    Only such a value is labelled an HSA-id towards the platform; ``5001`` or ``LabUnit101`` is
    the sender's own id, never silently an HSA-id (docs/hl7-profile.md 4.6)."""
    match = _HSA_ID.fullmatch(value)
    return match is not None and luhn_ok(match.group(1))
