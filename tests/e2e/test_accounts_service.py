"""The real accounts adapter against the real accounts mock over HTTP, for the built-in population."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from gateway.accounts_adapter import AccountsClient, AccountsSettings
from gateway.domain.accounts import (
    AccountStatus,
    ProxyRelation,
    active_proxies,
    can_log_in,
    guardians_automatic,
    mailbox_allowed,
    sms_reminder_allowed,
)
from gateway.domain.identity import IdKind, PersonId, luhn_check_digit
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from mocks import population
from mocks.accounts import Switches, create_app
from mocks.runner import ServedApp
from tests.fakes import pnr

TODAY = date(2026, 11, 25)
TOLVAN = pnr("191212121212")
CHILD = pnr("201605152386")
GUARDIAN = pnr("198503141239")
BLOCKED_GUARDIAN = pnr("198709224565")
TEEN = pnr("200903012391")
LOCKED = pnr("196208152568")
SAMORDNING = PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", "1.2.752.129.2.1.3.3")
RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")
STRANGER = pnr("19800101123" + luhn_check_digit("800101123"))  # valid, not in the file


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def switches() -> Switches:
    return Switches()


@pytest.fixture
def mock(switches: Switches) -> Iterator[ServedApp]:
    # The built-in file, whatever GATEWAY_MOCK_PERSONS says: these tests are about its persons.
    app = create_app(population.load(population.DEFAULT_FILE), switches)
    with ServedApp(app) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _client(mock: ServedApp, http: httpx.AsyncClient, **overrides: Any) -> AccountsClient:
    # No cache: these tests flip state in the mock and must see it at once.
    values: dict[str, Any] = {"url": mock.url, "timeout": 2.0, "retries": 1, "backoff": 0, "cache_ttl": 0}
    return AccountsClient(AccountsSettings(**(values | overrides)), http, sleep=_no_sleep)


@pytest.fixture
def accounts(mock: ServedApp, http: httpx.AsyncClient) -> AccountsClient:
    return _client(mock, http)


async def test_tolvan_has_an_active_account_listed_at_his_unit(accounts: AccountsClient) -> None:
    account = await accounts.account(TOLVAN)
    assert account.status is AccountStatus.ACTIVE
    assert account.listing_unit == "SE2321000016-15CQ"
    assert can_log_in(account, TOLVAN, TODAY)
    assert sms_reminder_allowed(account, has_booking=True)  # R-NOT-1
    assert mailbox_allowed(TOLVAN, TODAY)


async def test_r_acc_2_r_id_6_the_child_has_one_guardian_the_blocked_one_is_none(
    accounts: AccountsClient,
) -> None:
    account = await accounts.account(CHILD)
    assert account.status is AccountStatus.NONE
    assert {(p.person, p.relation, p.blocked) for p in account.proxies} == {
        (GUARDIAN, ProxyRelation.GUARDIAN, False),
        (BLOCKED_GUARDIAN, ProxyRelation.GUARDIAN, True),
    }
    assert guardians_automatic(CHILD, TODAY)
    assert [p.person for p in active_proxies(account, TODAY)] == [GUARDIAN]
    assert can_log_in(account, GUARDIAN, TODAY)
    assert not can_log_in(account, BLOCKED_GUARDIAN, TODAY)
    assert not mailbox_allowed(CHILD, TODAY)


async def test_r_id_6_the_teenager_has_an_account_but_no_automatic_guardians_and_no_mailbox(
    accounts: AccountsClient,
) -> None:
    account = await accounts.account(TEEN)
    assert account.status is AccountStatus.ACTIVE
    assert can_log_in(account, TEEN, TODAY)
    assert not guardians_automatic(TEEN, TODAY)
    assert active_proxies(account, TODAY) == ()
    assert not mailbox_allowed(TEEN, TODAY)


async def test_r_acc_1_the_locked_account_lets_nobody_in_and_only_staff_unlock_it(
    mock: ServedApp, http: httpx.AsyncClient, accounts: AccountsClient
) -> None:
    account = await accounts.account(LOCKED)
    assert account.status is AccountStatus.LOCKED
    assert [p.person for p in account.proxies] == [TOLVAN]
    assert active_proxies(account, TODAY) == ()
    assert not can_log_in(account, LOCKED, TODAY)
    assert not can_log_in(account, TOLVAN, TODAY)

    unlock = f"{mock.url}/accounts/v1/persons/{LOCKED.value}/unlock"
    refused = await http.post(unlock)
    assert refused.status_code == 403
    assert (await accounts.account(LOCKED)).status is AccountStatus.LOCKED

    assert (await http.post(unlock, headers={"X-Staff-Id": "staff-4711"})).status_code == 200
    account = await accounts.account(LOCKED)
    assert account.status is AccountStatus.ACTIVE
    assert [p.person for p in active_proxies(account, TODAY)] == [TOLVAN]
    assert can_log_in(account, TOLVAN, TODAY)


async def test_r_acc_1_locking_deactivates_the_proxies(
    mock: ServedApp, http: httpx.AsyncClient, accounts: AccountsClient
) -> None:
    base = f"{mock.url}/accounts/v1/persons/{LOCKED.value}"
    await http.post(f"{base}/unlock", headers={"X-Staff-Id": "staff-4711"})
    locked = await http.post(f"{base}/lock")
    assert locked.status_code == 200
    assert [p["active"] for p in locked.json()["proxies"]] == [False]
    account = await accounts.account(LOCKED)
    assert account.status is AccountStatus.LOCKED
    assert active_proxies(account, TODAY) == ()
    assert not can_log_in(account, TOLVAN, TODAY)


async def test_a_person_the_platform_never_saw_has_no_account(accounts: AccountsClient) -> None:
    account = await accounts.account(STRANGER)
    assert account.status is AccountStatus.NONE
    assert account.proxies == ()
    assert not can_log_in(account, STRANGER, TODAY)


async def test_a_samordningsnummer_without_account_and_a_reservnummer(accounts: AccountsClient) -> None:
    assert (await accounts.account(SAMORDNING)).status is AccountStatus.NONE
    assert (await accounts.account(RESERV)).status is AccountStatus.NONE  # R-ID-2, not asked


async def test_an_outage_is_transient_and_the_service_is_used_again_when_back(
    mock: ServedApp, accounts: AccountsClient
) -> None:
    mock.stop()
    with pytest.raises(TransientUpstreamError) as raised:
        await accounts.account(TOLVAN)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    mock.start()
    assert (await accounts.account(TOLVAN)).status is AccountStatus.ACTIVE


async def test_switches_show_each_failure_over_http(
    switches: Switches, mock: ServedApp, http: httpx.AsyncClient, accounts: AccountsClient
) -> None:
    switches.fail_next = 1  # one 500, then the retry gets the answer
    assert (await accounts.account(TOLVAN)).status is AccountStatus.ACTIVE

    put = await http.put(f"{mock.url}/accounts/_switches", json={"outage": True})
    assert put.json()["outage"] is True
    with pytest.raises(TransientUpstreamError, match="HTTP 503"):
        await accounts.account(TOLVAN)

    await http.put(f"{mock.url}/accounts/_switches", json={"http_500": True})
    with pytest.raises(TransientUpstreamError, match="HTTP 500"):
        await accounts.account(TOLVAN)

    await http.put(f"{mock.url}/accounts/_switches", json={"malformed_json": True})
    with pytest.raises(PermanentUpstreamError, match="not an account"):
        await accounts.account(TOLVAN)

    await http.put(f"{mock.url}/accounts/_switches", json={})
    assert (await accounts.account(TOLVAN)).status is AccountStatus.ACTIVE


async def test_a_slow_service_times_out_as_transient(
    switches: Switches, mock: ServedApp, http: httpx.AsyncClient
) -> None:
    switches.latency = 0.3
    slow = _client(mock, http, timeout=0.05, retries=0)
    with pytest.raises(TransientUpstreamError) as raised:
        await slow.account(TOLVAN)
    assert isinstance(raised.value.__cause__, httpx.ReadTimeout)


async def test_reset_brings_back_the_file_and_turns_switches_off(
    switches: Switches, mock: ServedApp, http: httpx.AsyncClient, accounts: AccountsClient
) -> None:
    await http.post(f"{mock.url}/accounts/v1/persons/{TOLVAN.value}/lock")
    switches.outage = True
    await http.post(f"{mock.url}/accounts/_reset")
    assert not switches.outage
    assert (await accounts.account(TOLVAN)).status is AccountStatus.ACTIVE
    assert (await accounts.account(LOCKED)).status is AccountStatus.LOCKED
