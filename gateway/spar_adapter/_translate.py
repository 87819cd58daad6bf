"""SPAR PersonSök 2021.1 answers -> ``RegisterRecord``, and SPAR's in-band errors -> the gateway's.

Works on the answer as plain data (``zeep.helpers.serialize_object``), so it is a pure function
tested from fixture messages; ``today`` is a parameter. It reads the same data whether zeep
loaded the gateway's packaged contract or Skatteverket's own WSDL. Anything that breaks the
contract is a ``PermanentUpstreamError``: the same question gets the same answer, so retrying
cannot help, and a person is never taken as unprotected because a flag was missing (R-ID-3,
R-ID-7).

How the 2021.1 shapes are read (``docs/spar.md`` has the table):

- ``Namn``, ``Persondetaljer`` and ``Folkbokforingsadress`` repeat when SPAR gives history. The
  entry in force today is used: one without a period, or ``DatumFrom <= today <= DatumTill``
  (``DatumTill`` 9999-12-31 marks the current entry); of several, the one that started last. If
  none is in force, the one that ended last (SPAR's latest word); entries that start in the
  future are never used.
- ``Sekretessmarkering`` is text with an optional attribute ``sattAvSPAR`` (SPAR set the marker
  because the person has skyddad folkbokföring): the text decides. The flags of the current
  ``Persondetaljer`` count as well: either place saying JA protects the person.
- Incomplete dates (``2019-01-00``, ``2019-00-00``, ``201901``, ``2019``) become the first day
  of the known month or year; with no known year (``0000-00-00``, ``0``) the date is unknown
  (``None``). The flags (deceased, deregistered) come from the code, never from the date.
- ``AvregistreringsorsakKod``: the two-letter codes, and the older one-letter ones (``A``
  deceased, ``G`` old number, ``O`` other reason). Any other code is refused, never read as "not
  deregistered".
- ``Hanvisning``: ``Till`` is the number now in use, ``Fran`` an old number this one replaced.
  Without ``Typ`` ("has or had another number") it is the number now in use for an old number
  (GN, GS, G) that has no ``Till``, and an old number otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from gateway.domain.identity import IdKind, PersonId, mask_ids_in_text, parse_swedish_id
from gateway.domain.register import Address, Deregistration, Protection, RegisterRecord
from gateway.errors import InvalidIdentifier, PermanentUpstreamError, TransientUpstreamError

#: National identifier OIDs (DOMAIN.md reference facts; the same as mappings/identifiers.yaml).
AUTHORITY = {
    IdKind.PERSONNUMMER: "1.2.752.129.2.1.3.1",
    IdKind.SAMORDNINGSNUMMER: "1.2.752.129.2.1.3.3",
}
_TYP = {"PERSONNUMMER": IdKind.PERSONNUMMER, "SAMORDNINGSNUMMER": IdKind.SAMORDNINGSNUMMER}
#: Undantag codes where asking again later may work; every other code is permanent.
TRANSIENT_UNDANTAG = frozenset({"GENERELLT_FEL"})
#: ``AvregistreringsorsakKod`` -> the domain's reason; the one-letter codes are the older ones.
DEREGISTRATION: Mapping[str, Deregistration] = {
    **{reason.value: reason for reason in Deregistration if len(reason.value) == 2},
    "A": Deregistration.DECEASED,
    "G": Deregistration.OLD_NUMBER_GN,
    "O": Deregistration.OTHER_REASON,
}
_OLD_NUMBER = frozenset({Deregistration.OLD_NUMBER_GN, Deregistration.OLD_NUMBER_GS})
_DASHED = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_DIGITS = re.compile(r"\d{0,7}")


def _broken(what: str) -> PermanentUpstreamError:
    return PermanentUpstreamError(f"SPAR answer breaks the contract: {what}")


def translate(answer: Mapping[str, Any] | None, asked: PersonId, today: date) -> RegisterRecord | None:
    """One ``SPARPersonsokningSvar`` for ``asked`` -> its record, ``None`` for no svarspost."""
    if answer is None:
        raise _broken("SPAR answered without a SPARPersonsokningSvar")
    undantag = answer.get("Undantag")
    if undantag:
        raise undantag_error(undantag)
    too_many = answer.get("OverstigerMaxAntalSvarsposter")
    if too_many:
        raise PermanentUpstreamError(
            f"SPAR OverstigerMaxAntalSvarsposter: {too_many.get('AntalPoster')} persons match, "
            f"SPAR answers with at most {too_many.get('MaxAntalSvarsposter')}"
        )
    posts = _entries(answer.get("PersonsokningSvarspost"))
    if not posts:
        return None
    mine = [p for p in posts if _get(p, "PersonId", "IdNummer") == asked.value]
    if len(mine) != 1:
        raise _broken(
            f"SPAR answered {len(posts)} svarspost(er), {len(mine)} for the number asked ({asked.masked()})"
        )
    return _record(mine[0], asked, today)


def undantag_error(undantag: Mapping[str, Any]) -> PermanentUpstreamError | TransientUpstreamError:
    code = str(undantag.get("Kod") or "(no Kod)").strip()
    text = f"SPAR Undantag {code}"
    if undantag.get("Beskrivning"):
        # SPAR's own words may quote the number asked about: never carry it on into logs.
        text += f": {mask_ids_in_text(str(undantag['Beskrivning']))[:200]}"
    if code in TRANSIENT_UNDANTAG:
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)


def _record(post: Mapping[str, Any], asked: PersonId, today: date) -> RegisterRecord:
    name = _current(_entries(post.get("Namn")), today) or {}
    all_details = _entries(post.get("Persondetaljer"))
    details = _current(all_details, today) or {}
    addresses = [
        a for a in (_get(f, "SvenskAdress") for f in _entries(post.get("Folkbokforingsadress"))) if a
    ]
    address = _current(addresses, today)
    deregistration = _deregistration(details.get("AvregistreringsorsakKod"))
    referred_to, referred_from = _referrals(all_details, asked, deregistration in _OLD_NUMBER)
    deceased_date = _partial_date(details.get("Avlidendatum"), "Avlidendatum")
    if deceased_date is None:
        deceased_date = _partial_date(details.get("AntraffadDodDatum"), "AntraffadDodDatum")
    return RegisterRecord(
        person=_person(post, asked),
        protection=_protection(post, details),
        given_name=_text(name.get("Fornamn")),
        middle_name=_text(name.get("Mellannamn")),
        family_name=_text(name.get("Efternamn")),
        notification_name=_text(name.get("Aviseringsnamn")),
        address=None
        if not address
        else Address(
            care_of=_text(address.get("CareOf")),
            street1=_text(address.get("Utdelningsadress1")),
            street2=_text(address.get("Utdelningsadress2")),
            postal_code=_text(address.get("PostNr")),
            city=_text(address.get("Postort")),
        ),
        birth_date=_partial_date(details.get("Fodelsedatum"), "Fodelsedatum"),
        deregistration=deregistration,
        deregistration_date=_partial_date(details.get("Avregistreringsdatum"), "Avregistreringsdatum"),
        deceased_date=deceased_date,
        referred_to=referred_to,
        referred_from=referred_from,
    )


def _entries(value: object) -> list[Mapping[str, Any]]:
    """A repeating element as a list of its entries (one entry alone is a list of one)."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _current(entries: list[Mapping[str, Any]], today: date) -> Mapping[str, Any] | None:
    """The history entry in force ``today`` (see the module docstring), or ``None``."""
    started = []
    for entry in entries:
        start = _period_date(entry.get("DatumFrom"), "DatumFrom") or date.min
        end = _period_date(entry.get("DatumTill"), "DatumTill") or date.max
        if start <= today:
            started.append((end >= today, start, end, entry))
    if not started:
        return None
    in_force = [s for s in started if s[0]]
    if in_force:
        return max(in_force, key=lambda s: s[1])[3]
    return max(started, key=lambda s: s[2])[3]


def _person(post: Mapping[str, Any], asked: PersonId) -> PersonId:
    typ = _get(post, "PersonId", "Typ")
    kind = _TYP.get(str(typ or "").strip().upper())
    if kind is None:
        raise _broken(f"unknown PersonId Typ {typ!r}")
    if kind is asked.kind:
        return asked
    # The register is the truth about what kind of number it is (R-ID-7).
    return _checked(asked.value, kind, "PersonId")


def _protection(post: Mapping[str, Any], details: Mapping[str, Any]) -> Protection:
    secret = _flag(post.get("Sekretessmarkering"), "Sekretessmarkering", required=True)
    sheltered = _flag(post.get("SkyddadFolkbokforing"), "SkyddadFolkbokforing", required=True)
    # The current Persondetaljer may carry the flags too: either place saying JA protects.
    secret = _flag(details.get("Sekretessmarkering"), "Persondetaljer Sekretessmarkering") or secret
    sheltered = _flag(details.get("SkyddadFolkbokforing"), "Persondetaljer SkyddadFolkbokforing") or sheltered
    if sheltered:
        return Protection.SKYDDAD_FOLKBOKFORING  # the stronger level wins when both are set
    if secret:
        return Protection.SEKRETESSMARKERING
    return Protection.NONE


def _flag(value: object, element: str, *, required: bool = False) -> bool:
    """A JA/NEJ flag, plain or as text with attributes (``Sekretessmarkering sattAvSPAR``)."""
    text = value.get("_value_1") if isinstance(value, Mapping) else value
    if text is None and not required:
        return False
    if text not in ("JA", "NEJ"):
        raise _broken(f"{element} must be JA or NEJ, got {text!r}")
    return text == "JA"


def _deregistration(code: object) -> Deregistration | None:
    text = str(code or "").strip().upper()
    if not text:
        return None
    reason = DEREGISTRATION.get(text)
    if reason is None:
        raise _broken(f"unknown AvregistreringsorsakKod {text!r}")
    return reason


def _referrals(
    details: Iterable[Mapping[str, Any]], asked: PersonId, old_number: bool
) -> tuple[PersonId | None, tuple[PersonId, ...]]:
    """``Hanvisning`` of every Persondetaljer entry -> (number now in use, old numbers), R-ID-5."""
    seen: dict[tuple[str, str], None] = {}
    for entry in details:
        for referral in _entries(entry.get("Hanvisning")):
            number = str(referral.get("IdNummer") or "").strip()
            seen[(number, str(referral.get("Typ") or "").strip())] = None
    till = list(dict.fromkeys(n for n, typ in seen if typ == "Till"))
    untyped = list(dict.fromkeys(n for n, typ in seen if typ == ""))
    fran = list(dict.fromkeys(n for n, typ in seen if typ == "Fran"))
    if len(till) > 1:
        raise _broken(f"{len(till)} Hanvisning Till, expected at most one")
    if not till and old_number and len(untyped) == 1:
        till, untyped = untyped, []  # an old number's one other number is the one in use
    fran += [n for n in untyped if n not in fran and n not in till]
    if asked.value in till:
        raise _broken("Hanvisning Till refers to the number asked about itself")
    referred_to = _referral(till[0]) if till else None
    return referred_to, tuple(_referral(n) for n in fran if n != asked.value)


def _referral(value: str) -> PersonId:
    kind = (
        IdKind.SAMORDNINGSNUMMER
        if value[6:8].isascii() and value[6:8].isdigit() and int(value[6:8]) > 60
        else IdKind.PERSONNUMMER
    )
    return _checked(value, kind, "Hanvisning")


def _checked(value: str, kind: IdKind, where: str) -> PersonId:
    try:
        return parse_swedish_id(value, kind, AUTHORITY[kind])
    except InvalidIdentifier as exc:
        raise _broken(f"{where} IdNummer is not a valid {kind.value}: {exc}") from exc


def _period_date(value: object, element: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise _broken(f"{element} is not a date") from exc


def _partial_date(value: object, element: str) -> date | None:
    """A date that may be incomplete -> the first day of what is known; no known year: ``None``."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    dashed = _DASHED.fullmatch(text)
    if dashed:
        year, month, day = (int(part) for part in dashed.groups())
    elif _DIGITS.fullmatch(text):
        year = int(text[:4]) if len(text) >= 4 else 0
        month = int(text[4:6]) if len(text) >= 6 else 0
        day = 0
    else:
        raise _broken(f"{element} is not a date")
    if year == 0:
        return None
    if month == 0:
        day = 0  # a day without its month says nothing
    try:
        return date(year, month or 1, day or 1)
    except ValueError as exc:
        raise _broken(f"{element} is not a date") from exc


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def _get(data: Mapping[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
