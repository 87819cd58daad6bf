"""The one test population every mock reads (``mocks/persons.yaml``, or ``GATEWAY_MOCK_PERSONS``).

Each person is described once, across every outside system the gateway talks to: what the
population register (SPAR) says, the citizen platform's account (with proxies and guardians)
and the digital mailbox. The format is documented in ``docs/mocks.md``; integration testers
bring their own file with ``GATEWAY_MOCK_PERSONS=path``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway import yamlio

DEFAULT_FILE = Path(__file__).resolve().parent / "persons.yaml"
ENV_VAR = "GATEWAY_MOCK_PERSONS"

OIDS = {
    "personnummer": "1.2.752.129.2.1.3.1",
    "samordningsnummer": "1.2.752.129.2.1.3.3",
    "reservnummer": "1.2.752.97.3.1.3",
}

IdType = Literal["personnummer", "samordningsnummer", "reservnummer"]
ProtectionLevel = Literal["none", "sekretessmarkering", "skyddadFolkbokforing"]
DeregistrationCode = Literal["AV", "UV", "GN", "GS", "AS", "OB", "TA", "FI"]
AccountStatus = Literal["none", "active", "locked"]
MailboxChoice = Literal["none", "declined", "Kivra", "Billo", "MinMyndighetspost"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddressEntry(_Strict):
    """``Folkbokforingsadress/SvenskAdress``."""

    care_of: str | None = None
    street1: str | None = None
    street2: str | None = None
    postal_code: str | None = None
    city: str | None = None


class RegisterEntry(_Strict):
    """What SPAR PersonSök answers for this number. ``found: false`` = no svarspost."""

    found: bool = True
    protection: ProtectionLevel = "none"
    middle: str | None = None
    notification_name: str | None = None
    address: AddressEntry | None = None
    deregistration: DeregistrationCode | None = None
    deregistration_date: date | None = None
    deceased_date: date | None = None
    #: ``Hanvisning`` Till: for an old number (GN/GS), the number now in use.
    referred_to: str | None = None
    #: ``Hanvisning`` Fran: for the number now in use, the old one it replaced.
    referred_from: str | None = None


class ProxyEntry(_Strict):
    """Someone who may act for this person in the citizen platform."""

    id: str
    relation: Literal["guardian", "proxy"]
    blocked: bool = False


class AccountEntry(_Strict):
    """The citizen platform's account service (1177 / Alltid öppet)."""

    status: AccountStatus = "none"
    listing_unit: str | None = Field(None, description="HSA-id of the unit the person is listed at.")
    sms_consent: bool = False
    #: The mobile number given in the platform (E.164), for SMS (R-NOT-1).
    mobile: str | None = None
    proxies: tuple[ProxyEntry, ...] = ()


class TestPerson(_Strict):
    __test__ = False  # not a pytest test class

    id: str
    id_type: IdType
    given: str
    family: str
    note: str = ""
    spar: RegisterEntry = RegisterEntry()
    account: AccountEntry = AccountEntry()
    mailbox: MailboxChoice = "none"
    #: False: the person's mailbox does not accept mail from the gateway's sender (any sender in
    #: the mock). Only with a mailbox operator in ``mailbox``.
    mailbox_sender_accepted: bool = True

    @model_validator(mode="after")
    def _mailbox_fits(self) -> TestPerson:
        if not self.mailbox_sender_accepted and self.mailbox in ("none", "declined"):
            raise ValueError(
                f"person {self.id}: mailbox_sender_accepted: false needs a mailbox operator in mailbox"
            )
        if self.id_type == "reservnummer" and self.mailbox != "none":
            raise ValueError(f"person {self.id}: a reservnummer has no digital mailbox (R-ID-2)")
        return self

    @property
    def oid(self) -> str:
        return OIDS[self.id_type]

    @property
    def in_register(self) -> bool:
        """Reservnummer are never in SPAR (R-ID-2)."""
        return self.id_type != "reservnummer" and self.spar.found

    @property
    def full_name(self) -> str:
        return f"{self.given} {self.family}"


class Population(_Strict):
    persons: tuple[TestPerson, ...]

    @model_validator(mode="after")
    def _references_resolve(self) -> Population:
        ids = [p.id for p in self.persons]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"person ids appear more than once: {duplicates}")
        known = set(ids)
        for p in self.persons:
            refs = [x for x in (p.spar.referred_to, p.spar.referred_from) if x]
            refs += [proxy.id for proxy in p.account.proxies]
            missing = [r for r in refs if r not in known]
            if missing:
                raise ValueError(f"person {p.id} refers to persons not in the file: {missing}")
        return self

    def by_id(self, person_id: str) -> TestPerson:
        for p in self.persons:
            if p.id == person_id:
                return p
        raise KeyError(person_id)

    def find(self, person_id: str) -> TestPerson | None:
        try:
            return self.by_id(person_id)
        except KeyError:
            return None

    def guardians_of(self, person_id: str) -> list[TestPerson]:
        person = self.by_id(person_id)
        return [self.by_id(x.id) for x in person.account.proxies if x.relation == "guardian"]


def population_file() -> Path:
    return Path(os.environ.get(ENV_VAR, DEFAULT_FILE))


def load(path: Path | None = None) -> Population:
    """Read and check a population file; a wrong file is refused with what is wrong in it."""
    chosen = path or population_file()
    with chosen.open(encoding="utf-8") as fh:
        return Population.model_validate(yamlio.safe_load(fh))
