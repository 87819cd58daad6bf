"""The citizen platform's accounts and proxies (R-ACC-1, R-ACC-2, R-ID-6, R-NOT-1), and the port to them.

The population register (SPAR) knows nothing of guardianship or accounts; the citizen
platform's account service does. The rules are pure functions over an :class:`Account` and
today's date (passed in, never read from the clock), so document routing can call them freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from gateway.domain.identity import PersonId, age_on

#: R-ID-6: guardians are automatic proxies below this age.
GUARDIAN_AGE_LIMIT = 13
#: R-ID-6: no digital mailbox below this age.
MAILBOX_AGE = 18


class AccountStatus(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    LOCKED = "locked"


class ProxyRelation(StrEnum):
    #: A vårdnadshavare: acts for a child under 13 automatically (R-ID-6).
    GUARDIAN = "guardian"
    #: A registered ombud: acts for the person whatever their age.
    PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class Proxy:
    """Someone who may act for the account's person in the platform."""

    person: PersonId
    relation: ProxyRelation
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """What the platform knows of one person. ``status`` NONE: the platform has no account."""

    person: PersonId
    status: AccountStatus
    #: HSA-id of the health centre the person is listed at.
    listing_unit: str | None = None
    sms_consent: bool = False
    proxies: tuple[Proxy, ...] = ()


def no_account(person: PersonId) -> Account:
    return Account(person, AccountStatus.NONE)


class AccountDirectory(Protocol):
    """The port to the citizen platform's account service.

    ``account`` always answers (status NONE when the platform has no account for the person).
    It raises ``TransientUpstreamError`` when asking again later may work (timeout, connection
    error, 5xx, circuit open) and ``PermanentUpstreamError`` otherwise.
    """

    async def account(self, person: PersonId) -> Account: ...


def guardians_automatic(person: PersonId, today: date) -> bool:
    """R-ID-6: guardians act for a child under 13. No age (reservnummer): not automatic."""
    age = age_on(person, today)
    return age is not None and age < GUARDIAN_AGE_LIMIT


def mailbox_allowed(person: PersonId, today: date) -> bool:
    """R-ID-6: no digital mailbox under 18 (and none for a reservnummer, R-ID-2)."""
    age = age_on(person, today)
    return age is not None and age >= MAILBOX_AGE


def active_proxies(account: Account, today: date) -> tuple[Proxy, ...]:
    """Who may act for the account's person today.

    R-ACC-1: none while the account is locked. R-ACC-2: a blocked guardian (or proxy) is not
    one. R-ID-6: a guardian only while the person is under 13. A child without an account of
    its own still has its guardians.
    """
    if account.status is AccountStatus.LOCKED:
        return ()
    guardians = guardians_automatic(account.person, today)
    return tuple(
        p for p in account.proxies if not p.blocked and (p.relation is ProxyRelation.PROXY or guardians)
    )


def can_log_in(account: Account, who: PersonId, today: date) -> bool:
    """R-ACC-1: whether ``who`` (the person or someone acting for them) may open this account."""
    if account.status is AccountStatus.LOCKED:
        return False
    if who == account.person:
        return account.status is AccountStatus.ACTIVE
    return any(p.person == who for p in active_proxies(account, today))


def sms_reminder_allowed(account: Account, has_booking: bool) -> bool:
    """R-NOT-1: SMS reminders only to a citizen with a booking who consented."""
    return has_booking and account.sms_consent
