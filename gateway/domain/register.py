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


class PopulationRegister(Protocol):
    """The port to SPAR. Adapters raise the gateway's own errors, never a library's.

    ``lookup`` returns ``None`` when the register has no such person (no svarspost). It raises
    ``TransientUpstreamError`` when asking again later may work (timeout, connection error,
    5xx, circuit open) and ``PermanentUpstreamError`` otherwise (e.g. Undantag
    OGILTIG_INPARAMETER).
    """

    async def lookup(self, person: PersonId) -> RegisterRecord | None: ...
