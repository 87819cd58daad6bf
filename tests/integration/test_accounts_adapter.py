"""The accounts adapter against respx: error mapping, retries (transient only), breaker, cache.

No real sleeps: the adapter gets a fake clock and a sleep that only records its waits.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

import gateway.accounts_adapter as accounts_adapter
from gateway.accounts_adapter import AccountsClient, AccountsSettings
from gateway.domain.accounts import AccountStatus, Proxy, ProxyRelation
from gateway.domain.identity import IdKind, PersonId
from gateway.errors import (
    ConfigurationError,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamError,
)
from gateway.http_errors import EXCEPTION_MAP, error_class
from gateway.resilience import BreakerState
from tests.fakes import pnr

BASE = "http://accounts.test"
TOLVAN = pnr("191212121212")
CHILD = pnr("201605152386")
RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")
TOLVAN_URL = f"{BASE}/accounts/v1/persons/191212121212"
CHILD_URL = f"{BASE}/accounts/v1/persons/201605152386"

TOLVAN_JSON: dict[str, Any] = {
    "id": "191212121212",
    "status": "active",
    "listing_unit": "SE2321000016-15CQ",
    "sms_consent": True,
    "proxies": [],
}
CHILD_JSON: dict[str, Any] = {
    "id": "201605152386",
    "status": "none",
    "listing_unit": "SE2321000016-7P3K",
    "sms_consent": False,
    "proxies": [
        {"id": "198503141239", "id_type": "personnummer", "relation": "guardian", "blocked": False},
        {"id": "198709224565", "id_type": "personnummer", "relation": "guardian", "blocked": True},
    ],
}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordedSleep:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Harness:
    router: respx.MockRouter
    clock: FakeClock
    sleep: RecordedSleep
    make: Callable[..., AccountsClient]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    router = respx.MockRouter(assert_all_called=False)
    clock = FakeClock()
    sleep = RecordedSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http:

        def make(**overrides: Any) -> AccountsClient:
            values: dict[str, Any] = {"url": BASE, "retries": 2, "backoff": 0.1, "max_backoff": 1.0}
            settings = AccountsSettings(**(values | overrides))
            return AccountsClient(settings, http, clock=clock, sleep=sleep)

        yield Harness(router, clock, sleep, make)


# Answers ------------------------------------------------------------------------------------


async def test_an_active_account_with_its_listing_unit(harness: Harness) -> None:
    harness.router.get(TOLVAN_URL).respond(200, json=TOLVAN_JSON)
    account = await harness.make().account(TOLVAN)
    assert account.person == TOLVAN
    assert account.status is AccountStatus.ACTIVE
    assert account.listing_unit == "SE2321000016-15CQ"
    assert account.sms_consent
    assert account.proxies == ()


async def test_r_acc_2_proxies_arrive_as_checked_person_ids_with_relation_and_block(harness: Harness) -> None:
    harness.router.get(CHILD_URL).respond(200, json=CHILD_JSON)
    account = await harness.make().account(CHILD)
    assert account.status is AccountStatus.NONE
    assert account.proxies == (
        Proxy(pnr("198503141239"), ProxyRelation.GUARDIAN, blocked=False),
        Proxy(pnr("198709224565"), ProxyRelation.GUARDIAN, blocked=True),
    )


async def test_fields_the_platform_adds_are_ignored(harness: Harness) -> None:
    body = CHILD_JSON | {"new_field": 1}
    body["proxies"] = [p | {"active": True} for p in CHILD_JSON["proxies"]]
    harness.router.get(CHILD_URL).respond(200, json=body)
    assert len((await harness.make().account(CHILD)).proxies) == 2


async def test_r_id_2_a_reservnummer_has_no_account_and_the_platform_is_not_asked(harness: Harness) -> None:
    route = harness.router.get(url__startswith=BASE)
    account = await harness.make().account(RESERV)
    assert account.status is AccountStatus.NONE
    assert route.call_count == 0


async def test_each_attempt_has_the_settings_timeout(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL).respond(200, json=TOLVAN_JSON)
    await harness.make(timeout=0.7).account(TOLVAN)
    timeouts = route.calls.last.request.extensions["timeout"]
    assert timeouts == {"connect": 0.7, "read": 0.7, "write": 0.7, "pool": 0.7}


async def test_a_url_with_a_path_prefix_is_kept(harness: Harness) -> None:
    route = harness.router.get(f"{BASE}/platform/accounts/v1/persons/191212121212").respond(
        200, json=TOLVAN_JSON
    )
    await harness.make(url=f"{BASE}/platform/").account(TOLVAN)
    assert route.call_count == 1


def test_without_a_url_the_adapter_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_ACCOUNTS_URL"):
        AccountsClient(AccountsSettings(), httpx.AsyncClient())


def test_settings_come_from_the_gateway_accounts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ACCOUNTS_URL", "http://platform:9000")
    monkeypatch.setenv("GATEWAY_ACCOUNTS_TIMEOUT", "1.5")
    monkeypatch.setenv("GATEWAY_ACCOUNTS_RETRIES", "4")
    monkeypatch.setenv("GATEWAY_ACCOUNTS_CACHE_TTL", "0")
    monkeypatch.setenv("GATEWAY_ACCOUNTS_BREAKER_FAILURES", "3")
    settings = AccountsSettings()
    assert str(settings.url) == "http://platform:9000/"
    assert (settings.timeout, settings.attempts, settings.cache_ttl, settings.breaker_failures) == (
        1.5,
        5,
        0,
        3,
    )


# Failures: transient ones are retried, permanent ones are not --------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.PoolTimeout("no connection free"),
    ],
)
async def test_network_failures_and_timeouts_are_transient_and_retried(
    harness: Harness, exc: httpx.HTTPError
) -> None:
    route = harness.router.get(TOLVAN_URL).mock(side_effect=exc)
    with pytest.raises(TransientUpstreamError) as raised:
        await harness.make(retries=2).account(TOLVAN)
    assert route.call_count == 3
    assert isinstance(raised.value.__cause__, type(exc))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
async def test_5xx_408_and_429_are_transient_and_retried(harness: Harness, status: int) -> None:
    route = harness.router.get(TOLVAN_URL).respond(status)
    with pytest.raises(TransientUpstreamError, match=f"HTTP {status}"):
        await harness.make(retries=3).account(TOLVAN)
    assert route.call_count == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
async def test_other_statuses_are_permanent_and_asked_once(harness: Harness, status: int) -> None:
    route = harness.router.get(TOLVAN_URL).respond(status)
    with pytest.raises(PermanentUpstreamError, match=f"HTTP {status}"):
        await harness.make(retries=3).account(TOLVAN)
    assert route.call_count == 1


async def test_a_transient_failure_then_an_answer_succeeds(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL)
    route.side_effect = [
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=TOLVAN_JSON),
    ]
    account = await harness.make(retries=2).account(TOLVAN)
    assert account.status is AccountStatus.ACTIVE
    assert route.call_count == 3


async def test_retries_back_off_exponentially_with_jitter(harness: Harness) -> None:
    harness.router.get(TOLVAN_URL).respond(500)
    with pytest.raises(TransientUpstreamError):
        await harness.make(retries=3, backoff=0.1, max_backoff=10.0).account(TOLVAN)
    first, second, third = harness.sleep.waits
    # n-th wait: 0.1 * 2**(n-1), plus up to 0.1 of jitter
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.3
    assert 0.4 <= third <= 0.5


async def test_no_retries_when_retries_is_zero(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL).respond(500)
    with pytest.raises(TransientUpstreamError):
        await harness.make(retries=0).account(TOLVAN)
    assert route.call_count == 1
    assert harness.sleep.waits == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "191212121212", "status": "active", "proxies": [{"id": ',  # cut off, yet complete
        b"<html>maintenance</html>",
        b"",
        b"[]",
        b'{"id": "191212121212", "status": "frozen"}',
        b'{"status": "active"}',
        b'{"id": "191212121212", "status": "active", "proxies": [{"id": "198503141239"}]}',
    ],
)
async def test_a_malformed_answer_is_permanent_and_not_retried(harness: Harness, body: bytes) -> None:
    route = harness.router.get(TOLVAN_URL).respond(
        200, content=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(PermanentUpstreamError, match="not an account"):
        await harness.make(retries=3).account(TOLVAN)
    assert route.call_count == 1


async def test_an_answer_about_another_person_is_refused(harness: Harness) -> None:
    harness.router.get(TOLVAN_URL).respond(200, json=CHILD_JSON)
    with pytest.raises(PermanentUpstreamError, match="another person"):
        await harness.make().account(TOLVAN)


async def test_a_proxy_with_an_invalid_personnummer_is_refused(harness: Harness) -> None:
    body = CHILD_JSON | {
        "proxies": [
            {"id": "198503141230", "id_type": "personnummer", "relation": "guardian", "blocked": False}
        ]
    }
    harness.router.get(CHILD_URL).respond(200, json=body)
    with pytest.raises(PermanentUpstreamError, match="proxy's identifier"):
        await harness.make().account(CHILD)


async def test_error_texts_carry_no_personnummer(harness: Harness) -> None:
    harness.router.get(TOLVAN_URL).respond(404)
    with pytest.raises(PermanentUpstreamError) as raised:
        await harness.make().account(TOLVAN)
    assert "191212121212" not in str(raised.value)


# The mapping of httpx's exceptions is complete -----------------------------------------------


def _httpx_exceptions() -> list[type[Exception]]:
    return [
        obj
        for name in httpx.__all__
        if inspect.isclass(obj := getattr(httpx, name)) and issubclass(obj, Exception)
    ]


def test_every_httpx_exception_has_an_explicit_mapping() -> None:
    missing = [cls.__name__ for cls in _httpx_exceptions() if cls not in EXCEPTION_MAP]
    assert missing == [], f"map these into gateway.errors in gateway/http_errors.py: {missing}"


def test_every_mapping_lands_in_the_upstream_branch_of_the_tree() -> None:
    assert all(issubclass(target, UpstreamError) for target in EXCEPTION_MAP.values())
    assert {TransientUpstreamError, PermanentUpstreamError} >= set(EXCEPTION_MAP.values())


def test_a_status_error_is_classified_by_its_status() -> None:
    request = httpx.Request("GET", TOLVAN_URL)

    def status_error(status: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status, request=request))

    assert error_class(status_error(503)) is TransientUpstreamError
    assert error_class(status_error(404)) is PermanentUpstreamError


@pytest.mark.parametrize(
    "exc",
    [
        httpx.UnsupportedProtocol("ftp"),
        httpx.LocalProtocolError("bad header"),
        httpx.TooManyRedirects("loop"),
        httpx.DecodingError("bad gzip"),
        httpx.InvalidURL("bad url"),
    ],
)
async def test_errors_on_our_side_are_permanent_and_asked_once(harness: Harness, exc: Exception) -> None:
    route = harness.router.get(TOLVAN_URL).mock(side_effect=exc)
    with pytest.raises(PermanentUpstreamError) as raised:
        await harness.make(retries=3).account(TOLVAN)
    assert route.call_count == 1
    assert raised.value.__cause__ is exc


# Circuit breaker -----------------------------------------------------------------------------


async def test_the_circuit_opens_after_failed_calls_and_then_fails_fast(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL).respond(503)
    client = harness.make(retries=1, breaker_failures=2, breaker_reset=30)
    for _ in range(2):
        with pytest.raises(TransientUpstreamError, match="HTTP 503"):
            await client.account(TOLVAN)
    assert route.call_count == 4  # two calls of two attempts each
    assert client.circuit is BreakerState.OPEN
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await client.account(TOLVAN)
    assert route.call_count == 4


async def test_after_the_reset_time_one_trial_call_closes_the_circuit(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL)
    route.side_effect = [httpx.Response(503), httpx.Response(200, json=TOLVAN_JSON)]
    client = harness.make(retries=0, breaker_failures=1, breaker_reset=30, cache_ttl=0)
    with pytest.raises(TransientUpstreamError):
        await client.account(TOLVAN)
    harness.clock.advance(29)
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await client.account(TOLVAN)
    harness.clock.advance(1)
    assert client.circuit is BreakerState.HALF_OPEN
    assert (await client.account(TOLVAN)).status is AccountStatus.ACTIVE
    assert client.circuit is BreakerState.CLOSED
    assert route.call_count == 2


async def test_permanent_errors_do_not_open_the_circuit(harness: Harness) -> None:
    harness.router.get(TOLVAN_URL).respond(404)
    client = harness.make(breaker_failures=1)
    for _ in range(3):
        with pytest.raises(PermanentUpstreamError):
            await client.account(TOLVAN)
    assert client.circuit is BreakerState.CLOSED


# Cache ---------------------------------------------------------------------------------------


async def test_an_answer_is_reused_for_the_cache_ttl(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL).respond(200, json=TOLVAN_JSON)
    client = harness.make(cache_ttl=30)
    first = await client.account(TOLVAN)
    harness.clock.advance(29)
    assert await client.account(TOLVAN) == first
    assert route.call_count == 1
    harness.clock.advance(2)
    await client.account(TOLVAN)
    assert route.call_count == 2


async def test_answers_are_cached_per_person(harness: Harness) -> None:
    tolvan = harness.router.get(TOLVAN_URL).respond(200, json=TOLVAN_JSON)
    child = harness.router.get(CHILD_URL).respond(200, json=CHILD_JSON)
    client = harness.make()
    assert (await client.account(TOLVAN)).person == TOLVAN
    assert (await client.account(CHILD)).person == CHILD
    assert (await client.account(TOLVAN)).person == TOLVAN
    assert (tolvan.call_count, child.call_count) == (1, 1)


async def test_errors_are_not_cached(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL)
    route.side_effect = [httpx.Response(404), httpx.Response(200, json=TOLVAN_JSON)]
    client = harness.make()
    with pytest.raises(PermanentUpstreamError):
        await client.account(TOLVAN)
    assert (await client.account(TOLVAN)).status is AccountStatus.ACTIVE


async def test_a_zero_ttl_turns_the_cache_off(harness: Harness) -> None:
    route = harness.router.get(TOLVAN_URL).respond(200, json=TOLVAN_JSON)
    client = harness.make(cache_ttl=0)
    await client.account(TOLVAN)
    await client.account(TOLVAN)
    assert route.call_count == 2


# Public API ----------------------------------------------------------------------------------


def test_the_public_api_is_listed_in_all() -> None:
    public = {name for name in vars(accounts_adapter) if not name.startswith("_")}
    assert public == set(accounts_adapter.__all__)
