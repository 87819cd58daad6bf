"""``AccountsClient``: the ``AccountDirectory`` port over HTTP/JSON, with retries, breaker, cache."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.accounts_adapter._settings import AccountsSettings
from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation, no_account
from gateway.domain.identity import IdKind, PersonId, parse_swedish_id
from gateway.errors import ConfigurationError, InvalidIdentifier, PermanentUpstreamError
from gateway.http_errors import HTTPX_ERRORS, status_error_class, translate
from gateway.resilience import BreakerState, CircuitBreaker, Clock, RetryPolicy, Sleep, TtlCache

NAME = "accounts"
PATH = "/accounts/v1/persons/{id}"
_ACCEPT_JSON = {"Accept": "application/json"}

# Proxies sign in with BankID, so they have a personnummer or samordningsnummer; the national
# OIDs are those of mappings/identifiers.yaml.
_AUTHORITY = {
    IdKind.PERSONNUMMER: "1.2.752.129.2.1.3.1",
    IdKind.SAMORDNINGSNUMMER: "1.2.752.129.2.1.3.3",
}


class _Wire(BaseModel):
    # Unknown fields are ignored: the platform may add some without breaking us.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _ProxyWire(_Wire):
    id: str
    id_type: Literal["personnummer", "samordningsnummer"]
    relation: Literal["guardian", "proxy"]
    blocked: bool


class _AccountWire(_Wire):
    id: str
    status: Literal["none", "active", "locked"]
    listing_unit: str | None = None
    sms_consent: bool = False
    mobile: str | None = None
    proxies: tuple[_ProxyWire, ...] = ()


class AccountsClient:
    """Asks the account service over an injected ``httpx.AsyncClient`` (the caller owns and closes it).

    One lookup: the TTL cache, else the circuit breaker around the retry policy around one GET
    with the settings' timeout. ``clock`` and ``sleep`` are there so tests move time instead of
    waiting.
    """

    def __init__(
        self,
        settings: AccountsSettings,
        http: httpx.AsyncClient,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if settings.url is None:
            raise ConfigurationError("accounts: no service URL (GATEWAY_ACCOUNTS_URL)")
        self._base = str(settings.url).rstrip("/")
        self._http = http
        self._timeout = httpx.Timeout(settings.timeout)
        self._retry = RetryPolicy(
            attempts=settings.attempts,
            backoff=settings.backoff,
            max_backoff=settings.max_backoff,
            name=NAME,
            sleep=sleep,
        )
        self._breaker = CircuitBreaker(
            NAME,
            failure_threshold=settings.breaker_failures,
            reset_timeout=settings.breaker_reset,
            clock=clock,
        )
        self._cache: TtlCache[str, Account] = TtlCache(
            maxsize=settings.cache_size, ttl=settings.cache_ttl, clock=clock
        )

    @property
    def circuit(self) -> BreakerState:
        return self._breaker.state

    async def account(self, person: PersonId) -> Account:
        if person.is_reservnummer:
            # R-ID-2: no BankID, so no account; a region's temporary number means nothing to
            # the platform, and must not be matched against anyone.
            return no_account(person)

        # Named coroutine functions, not lambdas: tenacity calls a lambda as a plain function and
        # would hand back its coroutine un-awaited, without retrying.
        async def fetch() -> Account:
            return await self._fetch(person)

        async def retried() -> Account:
            return await self._retry.call(fetch)

        async def guarded() -> Account:
            return await self._breaker.call(retried)

        return await self._cache.get_or_load(person.value, guarded)

    async def _fetch(self, person: PersonId) -> Account:
        url = self._base + PATH.format(id=person.value)
        what = f"{NAME}: GET {PATH}"  # no personnummer in error texts (they reach logs)
        try:
            response = await self._http.get(url, timeout=self._timeout, headers=_ACCEPT_JSON)
        except HTTPX_ERRORS as exc:
            raise translate(exc, what) from exc
        if response.status_code != 200:
            raise status_error_class(response.status_code)(f"{what}: HTTP {response.status_code}")
        return _parse(person, response.content, what)


def _parse(person: PersonId, body: bytes, what: str) -> Account:
    """A 200 whose body breaks the contract is permanent: it arrived whole (a body cut short in
    transit is an httpx ``RemoteProtocolError``, transient), so asking again gets the same."""
    try:
        wire = _AccountWire.model_validate_json(body)
    except ValidationError as exc:
        problem = f"answer is not an account ({exc.error_count()} errors)"
        raise PermanentUpstreamError(f"{what}: {problem}") from exc
    if wire.id != person.value:
        # Never attach someone else's account (and proxies) to this person.
        raise PermanentUpstreamError(f"{what}: answer is for another person")
    try:
        proxies = tuple(
            Proxy(
                person=parse_swedish_id(p.id, IdKind(p.id_type), _AUTHORITY[IdKind(p.id_type)]),
                relation=ProxyRelation(p.relation),
                blocked=p.blocked,
            )
            for p in wire.proxies
        )
    except InvalidIdentifier as exc:
        raise PermanentUpstreamError(f"{what}: a proxy's identifier is invalid ({exc})") from exc
    return Account(
        person=person,
        status=AccountStatus(wire.status),
        listing_unit=wire.listing_unit,
        sms_consent=wire.sms_consent,
        proxies=proxies,
        mobile=wire.mobile or None,
    )
