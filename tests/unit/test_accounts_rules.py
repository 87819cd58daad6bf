"""Account and proxy rules (R-ACC-1, R-ACC-2, R-ID-6, R-NOT-1): pure functions, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.domain.accounts import (
    Account,
    AccountStatus,
    Proxy,
    ProxyRelation,
    active_proxies,
    can_log_in,
    guardians_automatic,
    mailbox_allowed,
    sms_reminder_allowed,
)
from gateway.domain.identity import IdKind, PersonId
from tests.fakes import pnr

TODAY = date(2026, 11, 25)
UNIT = "SE2321000016-15CQ"
OTHER_UNIT = "SE2321000016-7P3K"

TOLVAN = pnr("191212121212")
CHILD = pnr("201605152386")  # 10 years old on TODAY
TEEN = pnr("200903012391")  # 17
PARENT = pnr("198503141239")
BLOCKED_PARENT = pnr("198709224565")
SAMORDNING = PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", "1.2.752.129.2.1.3.3")
RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")

GUARDIAN = Proxy(PARENT, ProxyRelation.GUARDIAN)
BLOCKED_GUARDIAN = Proxy(BLOCKED_PARENT, ProxyRelation.GUARDIAN, blocked=True)
OMBUD = Proxy(TOLVAN, ProxyRelation.PROXY)

CHILD_ACCOUNT = Account(CHILD, AccountStatus.NONE, OTHER_UNIT, proxies=(GUARDIAN, BLOCKED_GUARDIAN))
ADULT = Account(TOLVAN, AccountStatus.ACTIVE, UNIT, sms_consent=True)
LOCKED = Account(PARENT, AccountStatus.LOCKED, UNIT, sms_consent=True, proxies=(OMBUD,))


def born_on(day: date) -> PersonId:
    """A personnummer for someone born on ``day`` (check digit not needed by the age rules)."""
    return PersonId(IdKind.PERSONNUMMER, day.strftime("%Y%m%d") + "0000", "1.2.752.129.2.1.3.1")


# R-ACC-1 -------------------------------------------------------------------------------------


def test_r_acc_1_citizen_cannot_log_in_to_a_locked_account() -> None:
    assert not can_log_in(LOCKED, LOCKED.person, TODAY)


def test_r_acc_1_no_proxy_can_log_in_to_a_locked_account() -> None:
    assert not can_log_in(LOCKED, OMBUD.person, TODAY)


def test_r_acc_1_proxies_of_a_locked_account_are_deactivated() -> None:
    assert active_proxies(LOCKED, TODAY) == ()


def test_r_acc_1_unlocking_brings_the_proxies_back() -> None:
    unlocked = replace(LOCKED, status=AccountStatus.ACTIVE)
    assert active_proxies(unlocked, TODAY) == (OMBUD,)
    assert can_log_in(unlocked, OMBUD.person, TODAY)
    assert can_log_in(unlocked, unlocked.person, TODAY)


def test_r_acc_1_a_locked_childs_guardians_are_deactivated_too() -> None:
    locked_child = replace(CHILD_ACCOUNT, status=AccountStatus.LOCKED)
    assert active_proxies(locked_child, TODAY) == ()
    assert not can_log_in(locked_child, PARENT, TODAY)


def test_r_acc_1_an_active_account_lets_its_citizen_in() -> None:
    assert can_log_in(ADULT, TOLVAN, TODAY)


def test_r_acc_1_without_an_account_the_citizen_cannot_log_in() -> None:
    assert not can_log_in(Account(TOLVAN, AccountStatus.NONE), TOLVAN, TODAY)


def test_r_acc_1_a_stranger_cannot_log_in_to_someone_elses_account() -> None:
    assert not can_log_in(ADULT, PARENT, TODAY)


# R-ACC-2 -------------------------------------------------------------------------------------


def test_r_acc_2_a_blocked_guardian_is_not_a_proxy() -> None:
    assert BLOCKED_GUARDIAN not in active_proxies(CHILD_ACCOUNT, TODAY)
    assert active_proxies(CHILD_ACCOUNT, TODAY) == (GUARDIAN,)


def test_r_acc_2_a_blocked_guardian_cannot_log_in_for_the_child() -> None:
    assert not can_log_in(CHILD_ACCOUNT, BLOCKED_PARENT, TODAY)
    assert can_log_in(CHILD_ACCOUNT, PARENT, TODAY)


def test_r_acc_2_a_blocked_registered_proxy_is_not_a_proxy_either() -> None:
    account = replace(ADULT, proxies=(replace(OMBUD, blocked=True),))
    assert active_proxies(account, TODAY) == ()


# R-ID-6 --------------------------------------------------------------------------------------


def test_r_id_6_guardians_of_a_child_under_13_are_automatic_proxies() -> None:
    assert guardians_automatic(CHILD, TODAY)
    assert GUARDIAN in active_proxies(CHILD_ACCOUNT, TODAY)


def test_r_id_6_a_child_without_an_account_still_has_its_guardians() -> None:
    assert CHILD_ACCOUNT.status is AccountStatus.NONE
    assert can_log_in(CHILD_ACCOUNT, PARENT, TODAY)
    assert not can_log_in(CHILD_ACCOUNT, CHILD, TODAY)


def test_r_id_6_guardians_are_not_automatic_from_13() -> None:
    teen_account = Account(TEEN, AccountStatus.ACTIVE, UNIT, proxies=(Proxy(PARENT, ProxyRelation.GUARDIAN),))
    assert not guardians_automatic(TEEN, TODAY)
    assert active_proxies(teen_account, TODAY) == ()
    assert not can_log_in(teen_account, PARENT, TODAY)


def test_r_id_6_a_registered_proxy_acts_for_a_teenager() -> None:
    proxy = Proxy(PARENT, ProxyRelation.PROXY)
    teen_account = Account(TEEN, AccountStatus.ACTIVE, UNIT, proxies=(proxy,))
    assert active_proxies(teen_account, TODAY) == (proxy,)


@pytest.mark.parametrize(
    ("born", "automatic"),
    [
        (date(2013, 11, 26), True),  # 13 tomorrow
        (date(2013, 11, 25), False),  # 13 today
        (date(2013, 11, 24), False),
    ],
)
def test_r_id_6_guardians_stop_being_automatic_on_the_13th_birthday(born: date, automatic: bool) -> None:
    assert guardians_automatic(born_on(born), TODAY) is automatic


def test_r_id_6_age_counts_from_a_samordningsnummer_day_minus_60() -> None:
    # 1990-02-11 (day 71 - 60): an adult
    assert mailbox_allowed(SAMORDNING, TODAY)
    assert not guardians_automatic(SAMORDNING, TODAY)


def test_r_id_6_the_same_child_outgrows_its_guardians_over_time() -> None:
    assert guardians_automatic(CHILD, date(2029, 5, 14))
    assert not guardians_automatic(CHILD, date(2029, 5, 15))


@pytest.mark.parametrize(
    ("person", "allowed"),
    [(CHILD, False), (TEEN, False), (TOLVAN, True), (PARENT, True)],
)
def test_r_id_6_no_digital_mailbox_under_18(person: PersonId, allowed: bool) -> None:
    assert mailbox_allowed(person, TODAY) is allowed


@pytest.mark.parametrize(
    ("born", "allowed"),
    [(date(2008, 11, 26), False), (date(2008, 11, 25), True)],
)
def test_r_id_6_the_mailbox_opens_on_the_18th_birthday(born: date, allowed: bool) -> None:
    assert mailbox_allowed(born_on(born), TODAY) is allowed


def test_r_id_6_a_reservnummer_has_no_age_so_no_mailbox_and_no_automatic_guardians() -> None:
    assert not mailbox_allowed(RESERV, TODAY)
    assert not guardians_automatic(RESERV, TODAY)


# R-NOT-1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consent", "has_booking", "allowed"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_r_not_1_sms_reminder_only_with_a_booking_and_consent(
    consent: bool, has_booking: bool, allowed: bool
) -> None:
    account = replace(ADULT, sms_consent=consent)
    assert sms_reminder_allowed(account, has_booking) is allowed
