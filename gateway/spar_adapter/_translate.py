"""SPAR answers -> ``RegisterRecord``, and SPAR's in-band ``Undantag`` -> the gateway's errors.

Works on the answer as plain data (``zeep.helpers.serialize_object``), so it is a pure function
tested from fixture messages. Anything that breaks the contract is a ``PermanentUpstreamError``:
the same question gets the same answer, so retrying cannot help, and a person is never taken as
unprotected because a flag was missing (R-ID-3, R-ID-7).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from gateway.domain.identity import IdKind, PersonId, parse_swedish_id
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
PERMANENT_UNDANTAG = frozenset({"OGILTIG_INPARAMETER", "OVERSTIGER_MAX_ANTAL_TRAFFAR"})


def _broken(what: str) -> PermanentUpstreamError:
    return PermanentUpstreamError(f"SPAR answer breaks the contract: {what}")


def translate(answer: Mapping[str, Any] | None, asked: PersonId) -> RegisterRecord | None:
    """One ``SPARPersonsokningSvar`` for ``asked`` -> its record, ``None`` for no svarspost."""
    if answer is None:
        raise _broken("SPAR answered without a SPARPersonsokningSvar")
    undantag = answer.get("Undantag")
    if undantag:
        raise undantag_error(undantag)
    posts = [p for p in answer.get("PersonsokningSvarspost") or [] if p]
    if not posts:
        return None
    mine = [p for p in posts if _get(p, "PersonId", "IdNummer") == asked.value]
    if len(mine) != 1:
        raise _broken(
            f"SPAR answered {len(posts)} svarspost(er), {len(mine)} for the number asked ({asked.masked()})"
        )
    return _record(mine[0], asked)


def undantag_error(undantag: Mapping[str, Any]) -> PermanentUpstreamError | TransientUpstreamError:
    code = str(undantag.get("Kod") or "(no Kod)")
    text = f"SPAR Undantag {code}"
    if undantag.get("Beskrivning"):
        text += f": {undantag['Beskrivning']}"
    if code in TRANSIENT_UNDANTAG:
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)


def _record(post: Mapping[str, Any], asked: PersonId) -> RegisterRecord:
    name = post.get("Namn") or {}
    details = post.get("Persondetaljer") or {}
    address = _get(post, "Folkbokforingsadress", "SvenskAdress")
    code = details.get("AvregistreringsorsakKod")
    try:
        deregistration = Deregistration(code) if code else None
    except ValueError as exc:
        raise _broken(f"unknown AvregistreringsorsakKod {code!r}") from exc
    return RegisterRecord(
        person=_person(post, asked),
        protection=_protection(post),
        given_name=name.get("Fornamn"),
        middle_name=name.get("Mellannamn"),
        family_name=name.get("Efternamn"),
        notification_name=name.get("Aviseringsnamn"),
        address=None
        if not address
        else Address(
            care_of=address.get("CareOf"),
            street1=address.get("Utdelningsadress1"),
            street2=address.get("Utdelningsadress2"),
            postal_code=address.get("PostNr"),
            city=address.get("Postort"),
        ),
        birth_date=_date(details.get("Fodelsedatum"), "Fodelsedatum"),
        deregistration=deregistration,
        deregistration_date=_date(details.get("Avregistreringsdatum"), "Avregistreringsdatum"),
        deceased_date=_date(details.get("Avlidendatum"), "Avlidendatum"),
        referred_to=_referred_to(details.get("Hanvisning") or []),
        referred_from=_referred_from(details.get("Hanvisning") or []),
    )


def _person(post: Mapping[str, Any], asked: PersonId) -> PersonId:
    typ = _get(post, "PersonId", "Typ")
    kind = _TYP.get(str(typ))
    if kind is None:
        raise _broken(f"unknown PersonId Typ {typ!r}")
    if kind is asked.kind:
        return asked
    # The register is the truth about what kind of number it is (R-ID-7).
    return _checked(asked.value, kind, "PersonId")


def _protection(post: Mapping[str, Any]) -> Protection:
    flags = {}
    for element in ("Sekretessmarkering", "SkyddadFolkbokforing"):
        value = post.get(element)
        if value not in ("JA", "NEJ"):
            raise _broken(f"{element} must be JA or NEJ, got {value!r}")
        flags[element] = value == "JA"
    if flags["SkyddadFolkbokforing"]:
        return Protection.SKYDDAD_FOLKBOKFORING  # the stronger level wins when both are set
    if flags["Sekretessmarkering"]:
        return Protection.SEKRETESSMARKERING
    return Protection.NONE


def _referred_to(referrals: list[Mapping[str, Any]]) -> PersonId | None:
    targets = [r.get("IdNummer") for r in referrals if r and r.get("Typ") == "Till"]
    if not targets:
        return None
    if len(targets) > 1:
        raise _broken(f"{len(targets)} Hanvisning Till, expected at most one")
    return _referral(str(targets[0] or ""))


def _referred_from(referrals: list[Mapping[str, Any]]) -> tuple[PersonId, ...]:
    """R-ID-5 the other way: the old numbers the one asked about replaced (``Hanvisning`` Fran)."""
    return tuple(
        _referral(str(r.get("IdNummer") or "")) for r in referrals if r and r.get("Typ") == "Fran"
    )


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


def _date(value: object, element: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise _broken(f"{element} is not a date") from exc


def _get(data: Mapping[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
