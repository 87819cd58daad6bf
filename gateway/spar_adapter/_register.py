"""``SparRegister``: the ``PopulationRegister`` port over SPAR PersonSök (zeep on async httpx)."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import structlog
import zeep
from lxml import etree
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from gateway import tls
from gateway.domain.identity import PersonId
from gateway.domain.register import RegisterRecord
from gateway.errors import ConfigurationError, PermanentUpstreamError
from gateway.resilience import CircuitBreaker, RetryPolicy, TtlCache
from gateway.spar_adapter._contract import CONTRACTS, Contract
from gateway.spar_adapter._errors import translate_exception
from gateway.spar_adapter._settings import SparSettings

log = structlog.get_logger(__name__)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
#: The contract's IdNummerTYPE: a number that does not fit is never sent (SPAR would refuse it).
ID_NUMMER = re.compile(r"[1-9][0-9]{11}")
#: Refuse DTDs and entities in answers (so no external entity either); zeep checks element order
#: and required elements. External references stay allowed: a WSDL URL imports its XSDs by URL.
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=False)


def ssl_context(settings: SparSettings) -> ssl.SSLContext:
    """Verify SPAR's certificate (``ca_file`` or the system's) and present ours (mutual TLS).

    Files that cannot be used (not PEM, the key does not fit the certificate, a wrong password)
    are a ``ConfigurationError`` at startup, not a failure of each lookup."""
    if settings.ca_file is None and settings.client_cert is None:
        return tls.system_trust()
    try:
        context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.client_cert is not None:
            secret = settings.client_key_password
            context.load_cert_chain(
                str(settings.client_cert),
                str(settings.client_key) if settings.client_key else None,
                password=secret.get_secret_value() if secret else _no_password,
            )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(f"SPAR TLS files cannot be used: {type(exc).__name__}: {exc}") from exc
    return context


def _no_password() -> str:
    # Without this OpenSSL would ask for the password on the terminal.
    raise ValueError("the client key is encrypted: set GATEWAY_SPAR_CLIENT_KEY_PASSWORD")


def http_client(settings: SparSettings) -> httpx.AsyncClient:
    """The default transport: timeouts from settings, mutual TLS when configured."""
    return httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout), verify=ssl_context(settings))


def today_in_sweden() -> date:
    return datetime.now(STOCKHOLM).date()


def load_contract(
    wsdl: str, settings: SparSettings, http: httpx.AsyncClient, contract: Contract
) -> tuple[zeep.AsyncClient, AsyncServiceProxy]:
    """Read the WSDL (a file: no network) and bind PersonSök to ``settings.url``."""
    with httpx.Client(timeout=settings.timeout, verify=ssl_context(settings)) as wsdl_http:
        transport = AsyncTransport(client=http, wsdl_client=wsdl_http)  # type: ignore[no-untyped-call]
        try:
            client = zeep.AsyncClient(wsdl, transport=transport, settings=ZEEP_SETTINGS)  # type: ignore[no-untyped-call]
            binding = client.wsdl.bindings[contract.binding]
            operation = binding.get(contract.operation)  # type: ignore[no-untyped-call]
        except (
            OSError,
            httpx.HTTPError,
            zeep.exceptions.Error,
            etree.LxmlError,
            KeyError,
            ValueError,
        ) as exc:
            raise ConfigurationError(
                f"SPAR WSDL {wsdl!r} cannot be used for PersonSök {contract.version}: {exc}"
            ) from exc
    if operation.soapaction != contract.soap_action:
        raise ConfigurationError(
            f"SPAR WSDL {wsdl!r} is not PersonSök {contract.version}: SOAPAction {operation.soapaction!r}"
        )
    return client, AsyncServiceProxy(client, binding, address=settings.url)  # type: ignore[no-untyped-call]


class SparRegister:
    """Asks SPAR PersonSök; retries transient failures, fails fast while SPAR is down, caches.

    Pass ``client`` to swap the HTTP transport (tests, replay); the register closes only a
    client it made. Use one register per event loop: its httpx client's pooled connections
    belong to the loop that opened them. ``clock`` and ``sleep`` drive the breaker, the cache
    and the retry waits; ``today`` picks the current entries of SPAR's history lists.
    """

    def __init__(
        self,
        settings: SparSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        today: Callable[[], date] = today_in_sweden,
    ) -> None:
        self.settings = settings if settings is not None else SparSettings()
        self.contract = CONTRACTS[self.settings.contract]
        self._today = today
        self._owns_client = client is None
        self._http = client if client is not None else http_client(self.settings)
        self._zeep, self._service = load_contract(
            self.settings.wsdl, self.settings, self._http, self.contract
        )
        s = self.settings
        self.retry = RetryPolicy(
            attempts=s.retry_attempts,
            backoff=s.retry_backoff,
            max_backoff=s.retry_max_backoff,
            name="spar",
            sleep=sleep,
        )
        self.breaker = CircuitBreaker(
            "spar",
            failure_threshold=s.breaker_failure_threshold,
            reset_timeout=s.breaker_reset_time,
            clock=clock,
        )
        self.cache: TtlCache[PersonId, RegisterRecord | None] = TtlCache(
            maxsize=s.cache_size, ttl=s.cache_ttl, clock=clock
        )
        self._identification = {
            "KundNrLeveransMottagare": s.kund_nr_leverans_mottagare,
            "KundNrSlutkund": s.kund_nr_slutkund,
            "UppdragId": s.uppdrag_id,
            "SlutAnvandarId": s.slut_anvandar_id,
        }

    async def lookup(self, person: PersonId) -> RegisterRecord | None:
        """The register's record for ``person``; ``None`` when it has no svarspost."""
        return await self.cache.get_or_load(
            person, lambda: self.breaker.call(lambda: self.retry.call(lambda: self._ask(person)))
        )

    async def _ask(self, person: PersonId) -> RegisterRecord | None:
        started = time.monotonic()
        try:
            if not ID_NUMMER.fullmatch(person.value):
                raise PermanentUpstreamError(
                    f"SPAR is asked only for 12-digit numbers, not {person.masked()}"
                )
            reply = await self._service[self.contract.operation](
                Identifieringsinformation=self._identification,
                PersonsokningFraga={"IdNummer": person.value},
            )
            answer: Mapping[str, Any] | None = serialize_object(reply, dict)  # type: ignore[no-untyped-call]
            record = self.contract.translate(answer, person, self._today())
        except Exception as exc:
            error = translate_exception(exc)
            if error is None:
                raise  # not an outside failure: a bug, let it surface
            log.warning(
                "spar.lookup_failed",
                person=person.masked(),
                error_class=type(error).__name__,
                cause=type(exc).__name__,
                error=str(error),
                ms=round((time.monotonic() - started) * 1000),
            )
            if error is exc:
                raise
            raise error from exc
        log.debug(
            "spar.lookup",
            person=person.masked(),
            found=record is not None,
            ms=round((time.monotonic() - started) * 1000),
        )
        return record

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> SparRegister:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
