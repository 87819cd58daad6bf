"""The population register's view of a person (SPAR), and the port the gateway asks it through.

Protection status always comes from the register, never from what a journal or citizen typed
(R-ID-7). The rules that read these records are pure functions in ``gateway/domain/rules.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from gateway.domain.identity import PersonId
from gateway.errors import PermanentUpstreamError


class Protection(StrEnum):
    """R-ID-3: two protection levels; both keep bookings and name/address inside the gateway."""

    NONE = "none"
    SEKRETESSMARKERING = "sekretessmarkering"
    SKYDDAD_FOLKBOKFORING = "skyddadFolkbokforing"


class Deregistration(StrEnum):
    """SPAR ``AvregistreringsorsakKod``. Older entries use one letter: ``A`` is read as
    ``DECEASED``, ``G`` as ``OLD_NUMBER_GN``, ``O`` (övrig orsak) is ``OTHER_REASON``."""

    DECEASED = "AV"
    EMIGRATED = "UV"
    OLD_NUMBER_GN = "GN"
    OLD_NUMBER_GS = "GS"
    ANNULLED_SAMORDNINGSNUMMER = "AS"
    MISSING = "OB"
    TECHNICAL = "TA"
    FALSE_IDENTITY = "FI"
    OTHER_REASON = "O"


@dataclass(frozen=True, slots=True)
class Address:
    care_of: str | None
    street1: str | None
    street2: str | None
    postal_code: str | None
    city: str | None


@dataclass(frozen=True, slots=True)
class RegisterRecord:
    """One ``PersonsokningSvarspost``, translated at the adapter's edge."""

    person: PersonId
    protection: Protection
    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    notification_name: str | None = None
    address: Address | None = None
    birth_date: date | None = None
    deregistration: Deregistration | None = None
    deregistration_date: date | None = None
    deceased_date: date | None = None
    #: For a changed number (GN/GS): the number this one now points to (``Hanvisning`` Till).
    referred_to: PersonId | None = None
    #: For the number now in use: the old numbers it replaced (``Hanvisning`` Fran), R-ID-5.
    referred_from: tuple[PersonId, ...] = ()

    @property
    def protected(self) -> bool:
        return self.protection is not Protection.NONE

    @property
    def deceased(self) -> bool:
        return self.deregistration is Deregistration.DECEASED

    @property
    def emigrated(self) -> bool:
        return self.deregistration is Deregistration.EMIGRATED

    @property
    def changed_number(self) -> bool:
        return self.deregistration in (Deregistration.OLD_NUMBER_GN, Deregistration.OLD_NUMBER_GS)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The register's answer for a number, followed to the current number (R-ID-5).

    ``record`` is None for a reservnummer (never in the register, R-ID-2) or a number the
    register does not know."""

    current: PersonId
    record: RegisterRecord | None


class PopulationRegister(Protocol):
    """The port to SPAR. Adapters raise the gateway's own errors, never a library's.

    ``lookup`` returns ``None`` when the register has no such person (no svarspost). It raises
    ``TransientUpstreamError`` when asking again later may work (timeout, connection error,
    5xx, circuit open) and ``PermanentUpstreamError`` otherwise (e.g. Undantag
    OGILTIG_INPARAMETER).
    """

    async def lookup(self, person: PersonId) -> RegisterRecord | None: ...


#: How many changed numbers in a row are followed before the register is taken to be wrong.
MAX_NUMBER_CHANGES = 3


async def resolve(register: PopulationRegister, person: PersonId) -> Resolved:
    """Look a person up; follow a changed number (GN/GS -> Hanvisning Till) to the current one."""
    if person.is_reservnummer:
        return Resolved(person, None)  # R-ID-2: never in the register
    current = person
    record = await register.lookup(current)
    hops = 0
    while record is not None and record.changed_number and record.referred_to is not None:
        hops += 1
        if hops > MAX_NUMBER_CHANGES:
            raise PermanentUpstreamError("register refers in circles between changed numbers")
        current = record.referred_to
        record = await register.lookup(current)
    return Resolved(current, record)
