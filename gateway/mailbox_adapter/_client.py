"""The mailbox clients: the recipient service (``MailboxDirectory``) and the operators' delivery
services (``MailboxDelivery``), Mina meddelanden v3, zeep on one async httpx client each (mutual
TLS with the region's client certificate, per service), with retries and breakers.

``deliverSecure`` is built with lxml and signed on that tree (``_translate.deliver_secure``,
``_signing.sign_sealed_delivery``), posted through zeep's transport, and its answer (or Fault)
read by zeep's binding, as for any other operation: at outbox speed, building the request through
zeep's types cost more CPU than the rest of a delivery."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog
import zeep
from lxml import etree
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from gateway import tls
from gateway.domain.documents import NO_MAILBOX, MailboxProvider, MailboxReachability
from gateway.domain.identity import PersonId
from gateway.domain.mailbox import MailboxReceipt, OutgoingLetter
from gateway.errors import ConfigurationError
from gateway.mailbox_adapter._errors import translate_exception
from gateway.mailbox_adapter._settings import MailboxSettings
from gateway.mailbox_adapter._signing import SigningIdentity, load_identity, sign_sealed_delivery
from gateway.mailbox_adapter._suppliers import SupplierTable, load_suppliers
from gateway.mailbox_adapter._translate import (
    Reachable,
    Sender,
    deliver_secure,
    delivery_result,
    plain_delivery_answer,
    reachability_answer,
    refusal_before_delivery,
    soap_envelope,
)
from gateway.resilience import CircuitBreaker, RetryPolicy

log = structlog.get_logger(__name__)

#: The official v3 bindings (the packaged WSDLs and the authority's files name them alike).
RECIPIENT_BINDING = "{http://minameddelanden.gov.se/Recipient}RecipientBinding-v3"
DELIVERY_BINDING = "{http://minameddelanden.gov.se/Service}ServiceBinding-v3"
#: Refuse DTDs and entities in answers; zeep checks element order and required elements.
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=False)
#: How long an isReachable answer asked for a batch (``prefetch``) is used for its deliveries.
PREFETCH_SECONDS = 60.0
DELIVER_OPERATION = "deliverSecure"
#: Connections kept open per transport: more than the outbox's concurrency (8 by default), so a
#: delivery never waits for a TCP (and TLS) handshake because the pool closed an idle one.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=32, keepalive_expiry=30.0)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def ssl_context(settings: MailboxSettings, *, operators: bool = False) -> ssl.SSLContext:
    """Verify the service's certificate (``ca_file`` or the system's) and present the region's
    client certificate (mutual TLS). ``operators``: the operators' settings, each falling back to
    the recipient service's."""
    s = settings
    ca = (s.operator_ca_file or s.ca_file) if operators else s.ca_file
    cert, key, password = (
        (s.operator_client_cert, s.operator_client_key, s.operator_client_key_password)
        if operators and s.operator_client_cert is not None
        else (s.client_cert, s.client_key, s.client_key_password)
    )
    if ca is None and cert is None:
        return tls.system_trust()
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert is not None:
            context.load_cert_chain(
                str(cert), str(key) if key else None, password.get_secret_value() if password else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"mailbox TLS certificate, key or CA cannot be used: {exc}") from exc
    return context


def http_client(settings: MailboxSettings, *, operators: bool = False) -> httpx.AsyncClient:
    """The default transport: timeouts and TLS from settings (``operators``: for deliverSecure)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout),
        verify=ssl_context(settings, operators=operators),
        limits=POOL_LIMITS,
    )


def suppliers_from(settings: MailboxSettings) -> SupplierTable:
    """The operator table from settings (checked: raises ConfigurationError)."""
    return load_suppliers(settings.suppliers_file).with_addresses(settings.service_addresses)


def _load(
    wsdl: str, binding: str, settings: MailboxSettings, http: httpx.AsyncClient, plugins: list[Any]
) -> zeep.AsyncClient:
    with httpx.Client(timeout=settings.timeout, verify=ssl_context(settings)) as wsdl_http:
        transport = AsyncTransport(client=http, wsdl_client=wsdl_http)  # type: ignore[no-untyped-call]
        try:
            client = zeep.AsyncClient(wsdl, transport=transport, settings=ZEEP_SETTINGS, plugins=plugins)  # type: ignore[no-untyped-call]
            client.wsdl.bindings[binding]
        except (OSError, httpx.HTTPError, zeep.exceptions.Error, etree.LxmlError, KeyError) as exc:
            raise ConfigurationError(f"mailbox WSDL {wsdl!r} cannot be used: {exc}") from exc
    return client


class _Calls:
    """Retry and breaker settings shared by both clients."""

    def __init__(self, settings: MailboxSettings, clock: Clock, sleep: Sleep) -> None:
        self._settings = settings
        self._clock = clock
        self.retry = RetryPolicy(
            attempts=settings.retry_attempts,
            backoff=settings.retry_backoff,
            max_backoff=settings.retry_max_backoff,
            name="mailbox",
            sleep=sleep,
        )

    def breaker(self, name: str) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            failure_threshold=self._settings.breaker_failure_threshold,
            reset_timeout=self._settings.breaker_reset_time,
            clock=self._clock,
        )


async def _translated(what: str, call: Callable[[], Awaitable[T]], **context: object) -> T:
    """Await one SOAP call; library exceptions become the gateway's, ``from`` the original."""
    started = time.monotonic()
    try:
        return await call()
    except Exception as exc:
        error = translate_exception(exc, what)
        if error is None:
            raise  # not an outside failure: a bug, let it surface
        log.warning(
            "mailbox.call_failed",
            service=what,
            error_class=type(error).__name__,
            cause=type(exc).__name__,
            error=str(error),
            ms=round((time.monotonic() - started) * 1000),
            **context,
        )
        if error is exc:
            raise
        raise error from exc


class MailboxDirectoryClient:
    """``MailboxDirectory`` over the recipient service's ``isReachable``, up to ``batch_size``
    (at most 1,000) persons a call. A reservnummer is never asked about: it has no mailbox (R-ID-2).

    Pass ``client`` to swap the HTTP transport; the directory closes only a client it made. One
    directory per event loop (its pooled connections belong to the loop that opened them).
    """

    def __init__(
        self,
        settings: MailboxSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        suppliers: SupplierTable | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings if settings is not None else MailboxSettings()
        self.suppliers = suppliers if suppliers is not None else suppliers_from(self.settings)
        if self.settings.url is None:
            raise ConfigurationError("GATEWAY_MAILBOX_URL (the recipient service) is not set")
        self._owns_client = client is None
        self._http = client if client is not None else http_client(self.settings)
        self._zeep = _load(self.settings.recipient_wsdl, RECIPIENT_BINDING, self.settings, self._http, [])
        self._service = AsyncServiceProxy(  # type: ignore[no-untyped-call]
            self._zeep, self._zeep.wsdl.bindings[RECIPIENT_BINDING], address=self.settings.url
        )
        calls = _Calls(self.settings, clock, sleep)
        self.retry = calls.retry
        self.breaker = calls.breaker("mailbox-recipient")

    async def reachability(self, persons: Sequence[PersonId]) -> Mapping[PersonId, MailboxReachability]:
        """Each person's mailbox (see ``docs/mailbox.md`` for how the answer reads)."""
        return {p: r.reachability for p, r in (await self.lookup(persons)).items()}

    async def lookup(self, persons: Sequence[PersonId]) -> dict[PersonId, Reachable]:
        """As :meth:`reachability`, with each operator's delivery address."""
        unique = list(dict.fromkeys(persons))
        found: dict[PersonId, Reachable] = {p: Reachable(NO_MAILBOX) for p in unique if p.is_reservnummer}
        asked = [p for p in unique if not p.is_reservnummer]
        size = self.settings.batch_size
        for start in range(0, len(asked), size):
            found |= await self._ask_resilient(asked[start : start + size])
        return found

    async def _ask_resilient(self, batch: list[PersonId]) -> dict[PersonId, Reachable]:
        return await self.breaker.call(lambda: self.retry.call(lambda: self._ask(batch)))

    async def _ask(self, batch: list[PersonId]) -> dict[PersonId, Reachable]:
        started = time.monotonic()

        async def call() -> dict[PersonId, Reachable]:
            reply = await self._service.isReachable(
                senderOrgNr=self.settings.sender_org_nr, recipientId=[p.value for p in batch]
            )
            answer = serialize_object(reply, dict)  # type: ignore[no-untyped-call]
            return reachability_answer(answer, batch, self.suppliers)

        result = await _translated("mailbox recipient service", call, persons=len(batch))
        log.debug(
            "mailbox.reachability",
            persons=len(batch),
            deliverable=sum(r.reachability.deliverable for r in result.values()),
            ms=round((time.monotonic() - started) * 1000),
        )
        return result

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> MailboxDirectoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class MailboxDeliveryClient:
    """``MailboxDelivery``: asks the recipient service where the person's mailbox is *now*, then
    sends one sealed, signed delivery to that operator's ``ServiceAdress`` (``deliverSecure``),
    only if the address is on the allowlist (the supplier table).

    :meth:`prefetch` asks for a whole batch of letters in one ``isReachable``; each delivery then
    uses its person's answer once (within ``PREFETCH_SECONDS``) instead of asking alone.

    Signed with ``identity`` (default: from settings, or a throwaway certificate when none is
    set). Each operator has its own circuit breaker: one operator down does not stop the others.
    Retrying is safe: the operator keys on the message id. ``client`` is the transport to the
    operators (mutual TLS per settings); the directory has its own.
    """

    def __init__(
        self,
        settings: MailboxSettings | None = None,
        *,
        directory: MailboxDirectoryClient | None = None,
        client: httpx.AsyncClient | None = None,
        identity: SigningIdentity | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings if settings is not None else MailboxSettings()
        self._owns_client = client is None
        self._http = client if client is not None else http_client(self.settings, operators=True)
        self._owns_directory = directory is None
        self.directory = (
            directory
            if directory is not None
            # One transport given: both services use it (tests, a proxy); else each its own.
            else MailboxDirectoryClient(self.settings, client=client, clock=clock, sleep=sleep)
        )
        self.identity = identity if identity is not None else load_identity(self.settings)
        self._zeep = _load(self.settings.delivery_wsdl, DELIVERY_BINDING, self.settings, self._http, [])
        # zeep is untyped: its Soap11Binding and OperationInfo.
        self._binding: Any = self._zeep.wsdl.bindings[DELIVERY_BINDING]
        self._operation: Any = self._binding.get(DELIVER_OPERATION)  # type: ignore[no-untyped-call]
        action = self._operation.soapaction
        # As zeep sends SOAP 1.1 (the v3 binding's SOAPAction is empty: '""').
        self._headers = {
            "SOAPAction": f'"{action}"' if action else '""',
            "Content-Type": "text/xml; charset=utf-8",
        }
        self._calls = _Calls(self.settings, clock, sleep)
        self.retry = self._calls.retry
        self.breakers: dict[MailboxProvider, CircuitBreaker] = {}
        self._now = now
        self._clock = clock
        #: By message id: each prefetched answer serves its own letter once.
        self._prefetched: dict[str, tuple[float, Reachable]] = {}
        #: Letters of a prefetched batch being built and signed (in a thread) before they are sent.
        self._signing: dict[str, tuple[float, asyncio.Future[bytes]]] = {}
        s = self.settings
        self._sender = Sender(s.sender_org_nr, s.sender_name, s.support_text, s.support_url, s.language)

    def breaker(self, provider: MailboxProvider) -> CircuitBreaker:
        if provider not in self.breakers:
            self.breakers[provider] = self._calls.breaker(f"mailbox-{provider.value}")
        return self.breakers[provider]

    async def prefetch(self, letters: Sequence[OutgoingLetter]) -> None:
        """Ask where each letter's person's mailbox is, in one ``isReachable`` (per 1,000). Raises
        as the directory does; then each :meth:`deliver` asks for its person alone.

        Each letter is also built and signed now, in a thread, while the letters before it are
        in flight: :meth:`deliver` then only sends it (the same bytes it would have built)."""
        at = self._clock()
        for letter in letters:
            if letter.message_id not in self._signing:
                signing = asyncio.ensure_future(asyncio.to_thread(self._signed_request, letter))
                signing.add_done_callback(_consume)
                self._signing[letter.message_id] = (at, signing)
        found = await self.directory.lookup([letter.recipient for letter in letters])
        at = self._clock()
        for letter in letters:
            self._prefetched[letter.message_id] = (at, found[letter.recipient])
        # Answers and signed letters never used (a letter cancelled meanwhile) go once stale.
        for message_id in [m for m, (t, _) in self._prefetched.items() if at - t > PREFETCH_SECONDS]:
            del self._prefetched[message_id]
        for message_id in [m for m, (t, _) in self._signing.items() if at - t > PREFETCH_SECONDS]:
            self._signing.pop(message_id)[1].cancel()

    async def _reachable(self, letter: OutgoingLetter) -> Reachable:
        taken = self._prefetched.pop(letter.message_id, None)
        if taken is not None and self._clock() - taken[0] <= PREFETCH_SECONDS:
            return taken[1]
        return (await self.directory.lookup([letter.recipient]))[letter.recipient]

    async def deliver(self, letter: OutgoingLetter) -> MailboxReceipt:
        """Deliver ``letter``; the same message id again gets the first delivery's receipt."""
        signing = self._signing.pop(letter.message_id, (0.0, None))[1]
        reachable = await self._reachable(letter)
        refused = refusal_before_delivery(reachable, letter)
        if refused is not None:
            if signing is not None:
                signing.cancel()
            log.info(
                "mailbox.not_sent",
                message_id=letter.message_id,
                person=letter.recipient.masked(),
                code=refused.code,
            )
            raise refused
        provider = reachable.reachability.provider
        assert provider is not None and reachable.service_address is not None  # deliverable
        if provider is not letter.provider:
            log.info(
                "mailbox.provider_changed",
                message_id=letter.message_id,
                planned=letter.provider,
                now=provider,
            )
        address = reachable.service_address
        started = time.monotonic()
        # Built and signed once: a retry sends the very same bytes (the operator keys on the id).
        # Off the event loop (lxml and OpenSSL let go of the GIL for much of it), and for a
        # prefetched batch already while the letters before it were in flight.
        content = await (signing if signing is not None else asyncio.to_thread(self._signed_request, letter))
        what = f"{provider.value} delivery service"
        transport = self._zeep.transport

        async def call() -> MailboxReceipt:
            response = await transport.post(address, content, self._headers)
            answer = plain_delivery_answer(
                response.status_code, response.headers.get("content-type"), response.content
            )
            if answer is None:  # a fault, or not the plain shape: zeep's binding reads it
                reply = self._binding.process_reply(
                    self._zeep, self._operation, transport.new_response(response)
                )
                answer = serialize_object(reply, dict)  # type: ignore[no-untyped-call]
            return delivery_result(answer, letter, provider, self._now())

        async def attempt() -> MailboxReceipt:
            return await _translated(
                what, call, message_id=letter.message_id, person=letter.recipient.masked()
            )

        receipt = await self.breaker(provider).call(lambda: self.retry.call(attempt))
        log.info(
            "mailbox.delivered",
            message_id=letter.message_id,
            person=letter.recipient.masked(),
            provider=provider.value,
            transaction_id=receipt.transaction_id,
            ms=round((time.monotonic() - started) * 1000),
        )
        return receipt

    def _signed_request(self, letter: OutgoingLetter) -> bytes:
        request = deliver_secure(letter, self._sender, self._now().astimezone(UTC).date())
        sign_sealed_delivery(request[0], self.identity)
        return soap_envelope(request)

    async def aclose(self) -> None:
        for _, signing in self._signing.values():
            signing.cancel()
        self._signing.clear()
        if self._owns_directory:
            await self.directory.aclose()
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> MailboxDeliveryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _consume(signing: asyncio.Future[bytes]) -> None:
    """Marks a signing's error seen, so a letter signed ahead and never sent (cancelled, refused)
    is not reported as "exception never retrieved"; a letter that is sent raises the error from
    :meth:`MailboxDeliveryClient.deliver`, as building it there would."""
    if not signing.cancelled():
        signing.exception()
