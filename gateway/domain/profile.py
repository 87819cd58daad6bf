"""The staff view of one person (like Vårdportalen's Invånarprofil), as a pure function.

Everything here comes from the register (R-ID-7: protection only from SPAR) and the account
service; the journal's own name for the person is never used. For a protected person the name
and address are replaced by "Dold uppgift" here, at the one place the view is made (R-ID-3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from gateway.domain.accounts import (
    Account,
    AccountStatus,
    Proxy,
    active_proxies,
    guardians_automatic,
    mailbox_allowed,
)
from gateway.domain.identity import PersonId, age_on
from gateway.domain.register import Address, Protection, RegisterRecord, Resolved

HIDDEN = "Dold uppgift"


@dataclass(frozen=True, slots=True)
class ProxyView:
    #: ``None`` for the proxies of a protected person (who they are could lead to the person) and
    #: for a proxy who is protected themselves (R-ID-3: never shown beside the person).
    person: PersonId | None
    relation: str
    blocked: bool
    active: bool
    #: The register marks this guardian or proxy protected (R-ID-3); None: not asked.
    protected: bool | None = None


@dataclass(frozen=True, slots=True)
class PersonProfile:
    asked: PersonId
    current: PersonId
    in_register: bool
    protection: Protection | None
    name: str | None
    address: Address | str | None
    age: int | None
    deceased: bool
    deceased_date: date | None
    emigrated: bool
    deregistration_date: date | None
    reservnummer: bool
    #: R-ID-5: the number asked for is an old one (``current`` is the one in use), or the number
    #: in use replaced older ones (``former``).
    changed_number: bool
    guardians_automatic: bool
    mailbox_allowed: bool
    account: AccountStatus
    locked: bool
    listing_unit: str | None
    sms_consent: bool
    proxies: tuple[ProxyView, ...]
    #: R-ID-5: the old numbers the number in use replaced (SPAR ``Hanvisning`` Fran).
    former: tuple[PersonId, ...] = ()

    @property
    def protected(self) -> bool:
        return self.protection not in (None, Protection.NONE)


def _name(record: RegisterRecord) -> str | None:
    parts = [record.given_name, record.middle_name, record.family_name]
    text = " ".join(p for p in parts if p)
    return text or None


def person_profile(
    asked: PersonId,
    current: PersonId,
    record: RegisterRecord | None,
    account: Account,
    today: date,
    proxies: Mapping[PersonId, Resolved] | None = None,
) -> PersonProfile:
    """``record`` is the register's answer for ``current`` (a changed number already followed);
    ``proxies`` the register's answer for the account's guardians and proxies."""
    protected = record is not None and record.protected
    active = set(active_proxies(account, today))
    checked = proxies or {}
    former = tuple(o for o in (record.referred_from if record is not None else ()) if o != asked)
    if asked != current:
        former = ()  # asked by an old number: the view names the current one
    return PersonProfile(
        asked=asked,
        current=current,
        in_register=record is not None,
        protection=record.protection if record is not None else None,
        name=HIDDEN if protected else (_name(record) if record else None),
        address=HIDDEN if protected else (record.address if record else None),
        age=age_on(current, today),
        deceased=record is not None and record.deceased,
        deceased_date=record.deceased_date if record is not None else None,
        emigrated=record is not None and record.emigrated,
        deregistration_date=record.deregistration_date if record is not None else None,
        reservnummer=asked.is_reservnummer,
        changed_number=current != asked or bool(former),
        guardians_automatic=guardians_automatic(current, today),
        mailbox_allowed=mailbox_allowed(current, today),
        account=account.status,
        locked=account.status is AccountStatus.LOCKED,
        listing_unit=account.listing_unit,
        sms_consent=account.sms_consent,
        proxies=tuple(_proxy_view(p, p in active, protected, checked.get(p.person)) for p in account.proxies),
        former=former,
    )


def _proxy_view(proxy: Proxy, active: bool, person_protected: bool, answer: Resolved | None) -> ProxyView:
    record = answer.record if answer is not None else None
    own = None if answer is None else bool(record is not None and record.protected)
    hidden = person_protected or bool(own)
    return ProxyView(None if hidden else proxy.person, proxy.relation.value, proxy.blocked, active, own)
