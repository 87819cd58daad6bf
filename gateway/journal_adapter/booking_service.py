"""The journal's booking web service (SOAP 1.1 ``GetBookings``): a patient's bookings now (R-BK-4).

The contract is ``docs/journal-ws.md`` (WSDL and XSD as the simulated journal serves them in
``mocks/journal/wsdl/``). zeep speaks SOAP over an injected ``httpx.AsyncClient`` (operations)
and an ``httpx.Client`` (the one-off WSDL load, run off the event loop). Every failure leaves as
a ``gateway.errors`` error, translated here at the edge::

    TransientUpstreamError   timeouts, connection errors, HTTP 5xx/408/429, soap:Server faults,
                             Error INTERNAL_ERROR           -> retried by the RetryPolicy
    PermanentUpstreamError   other HTTP 4xx, malformed XML, a reply that breaks the contract,
                             soap:Client faults, any other in-band Error (named by its Code)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime
from typing import Any

import httpx
import zeep
import zeep.exceptions
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project
from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.identity import PersonId
from gateway.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.http_errors import HTTPX_ERRORS, status_error_class
from gateway.http_errors import error_class as httpx_error_class
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.resilience import RetryPolicy, Sleep

NAME = "journal-ws"
NS = "urn:takecare:xchange:booking:1"
BINDING = f"{{{NS}}}BookingServiceSoap11Binding"

#: In-band ``Error/Code`` values asking again may cure; every other code is permanent.
TRANSIENT_CODES = frozenset({"INTERNAL_ERROR"})

_STATUS = {
    "Booked": JournalStatus.BOOKED,
    "Cancelled": JournalStatus.CANCELLED,
    "NoShow": JournalStatus.NOSHOW,
}


class JournalServiceSettings(BaseSettings):
    """The journal booking service (environment prefix ``GATEWAY_JOURNAL_WS_``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_JOURNAL_WS_", extra="ignore")

    url: AnyHttpUrl | None = Field(
        None,
        description="Endpoint of the booking service. Unset: the composition root serves the "
        "simulated journal's service and points here.",
    )
    wsdl: str | None = Field(
        None, description="WSDL location (URL or file path); default the endpoint with ?wsdl."
    )
    timeout: float = Field(5.0, gt=0, description="Seconds per attempt, WSDL load included.")
    retries: int = Field(2, ge=0, description="Further attempts after a transient failure (0: none).")
    backoff: float = Field(0.2, ge=0, description="First wait before a retry, seconds; doubles, plus jitter.")
    max_backoff: float = Field(2.0, ge=0, description="Longest wait between attempts, seconds.")
    namespace: str = Field(
        "TAKECARE", description="The journal's booking-id namespace (SCH-2.2) and MSH-3 of refreshes."
    )
    facility: str = Field("SLL", description="MSH-4 of the messages a refresh writes.")

    @property
    def attempts(self) -> int:
        return self.retries + 1


class _Transport(AsyncTransport):
    """zeep's AsyncTransport without its side effects on the injected clients (it replaces their
    headers), and with the settings' timeout on every request."""

    def __init__(self, client: httpx.AsyncClient, wsdl_client: httpx.Client, timeout: float) -> None:
        self._close_session = False
        self.cache = None
        self.client = client
        self.wsdl_client = wsdl_client
        self.timeout = timeout
        self.logger = logging.getLogger(__name__)

    def _load_remote_data(self, url: str) -> bytes:
        response = self.wsdl_client.get(url, timeout=self.timeout)
        if response.status_code != 200:
            raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"HTTP {response.status_code} for the WSDL", status_code=response.status_code
            )
        return response.content

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        response = await self.client.post(address, content=message, headers=headers, timeout=self.timeout)
        media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if response.status_code != 200 and not media.endswith("xml"):
            # An error page (HTML, often with a DOCTYPE) is no SOAP fault: judge it by its status
            # before zeep tries to read it as one.
            raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"HTTP {response.status_code} ({media or 'no content type'})",
                status_code=response.status_code,
            )
        return response


class JournalBookingService:
    """``GetBookings`` over injected HTTP clients (the caller owns and closes ``http``).

    The WSDL is loaded on the first call (in a thread: zeep loads it synchronously). Each call is
    retried on transient failures by the shared :class:`~gateway.resilience.RetryPolicy`.
    """

    def __init__(
        self,
        settings: JournalServiceSettings,
        http: httpx.AsyncClient,
        *,
        wsdl_http: httpx.Client | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if settings.url is None:
            raise ConfigurationError("journal-ws: no service URL (GATEWAY_JOURNAL_WS_URL)")
        self.settings = settings
        self.url = str(settings.url)
        self._wsdl = settings.wsdl or f"{self.url}?wsdl"
        self._http = http
        self._own_wsdl_http = wsdl_http is None
        self._wsdl_http = wsdl_http if wsdl_http is not None else httpx.Client()
        self._timeout = settings.timeout
        self._retry = RetryPolicy(
            attempts=settings.attempts,
            backoff=settings.backoff,
            max_backoff=settings.max_backoff,
            name=NAME,
            sleep=sleep,
        )
        self._service: Any = None
        self._loading = threading.Lock()

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def facility(self) -> str:
        return self.settings.facility

    async def aclose(self) -> None:
        """Close what this object made itself (the WSDL client); ``http`` is the caller's."""
        if self._own_wsdl_http:
            self._wsdl_http.close()

    async def get_bookings(
        self,
        patient: PersonId,
        *,
        unit: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[JournalBooking]:
        """The patient's bookings as the journal holds them now (at ``unit``, starting in [start, end))."""

        # Named coroutine functions: tenacity would not await a lambda's coroutine.
        async def once() -> list[JournalBooking]:
            return await self._get_bookings(patient, unit, start, end)

        return await self._retry.call(once)

    async def _get_bookings(
        self, patient: PersonId, unit: str | None, start: datetime | None, end: datetime | None
    ) -> list[JournalBooking]:
        what = f"{NAME}: GetBookings"  # no personnummer in error texts (they reach logs)
        try:
            async with asyncio.timeout(self._timeout):
                service = await self._load()
                reply = await service.GetBookings(
                    PatientId=patient.value, CareUnitId=unit, FromDate=start, ToDate=end
                )
        except CALL_ERRORS as exc:
            raise translate(exc, what) from exc
        return _read_reply(reply, patient, what)

    async def _load(self) -> Any:
        if self._service is None:
            self._service = await asyncio.to_thread(self._load_blocking)
        return self._service

    def _load_blocking(self) -> Any:
        with self._loading:
            if self._service is not None:
                return self._service
            transport = _Transport(self._http, self._wsdl_http, self._timeout)
            options = zeep.Settings(strict=True, forbid_dtd=True)
            client = zeep.AsyncClient(self._wsdl, transport=transport, settings=options)  # type: ignore[no-untyped-call]
            binding = client.wsdl.bindings.get(BINDING)
            if binding is None:
                raise PermanentUpstreamError(f"{NAME}: the WSDL has no binding {BINDING}")
            # Not client.create_service(): on an AsyncClient it hands back a synchronous proxy.
            return AsyncServiceProxy(client, binding, address=self.url)  # type: ignore[no-untyped-call]


def _read_reply(reply: Any, patient: PersonId, what: str) -> list[JournalBooking]:
    """A reply that parsed: its in-band Error, or its bookings checked against the contract."""
    error = getattr(reply, "Error", None)
    if error is not None:
        code = str(error.Code or "").strip() or "(no code)"
        cls = TransientUpstreamError if code in TRANSIENT_CODES else PermanentUpstreamError
        raise cls(f"{what}: journal answered Error {code}: {error.Msg or ''}".rstrip(": "))
    container = getattr(reply, "Bookings", None)
    if container is None:
        raise PermanentUpstreamError(f"{what}: answer has neither Bookings nor Error")
    try:
        return [_booking(item, patient) for item in container.Booking or []]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PermanentUpstreamError(f"{what}: a booking breaks the contract ({exc})") from exc


def _booking(item: Any, patient: PersonId) -> JournalBooking:
    if str(item.PatientId).replace("-", "") != patient.value:
        # Never file someone else's booking under this patient.
        raise ValueError(f"booking {item.BookingId} is for another patient")
    practitioners: list[Resource] = []
    units: list[Resource] = []
    for res in (item.Resources.Resource or []) if item.Resources is not None else []:
        target = units if res.Type == "CareUnit" else practitioners
        target.append(Resource(res.HsaId or None, res.Name or None))
    start, end = _aware(item.StartTime), _aware(item.EndTime)
    if end <= start:
        raise ValueError(f"booking {item.BookingId} ends before it starts")
    return JournalBooking(
        booking_id=str(item.BookingId),
        patient_id=patient.value,
        start=start,
        end=end,
        status=_STATUS[item.Status],
        time_type=item.TimeTypeId or None,
        time_type_name=item.TimeTypeName or None,
        reason=item.PatientReason or None,
        practitioners=tuple(practitioners),
        units=tuple(units),
    )


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{moment!r} is not a date and time")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=STOCKHOLM)


# --- translation at the edge -------------------------------------------------------------------

T = TransientUpstreamError
P = PermanentUpstreamError

#: Every exception zeep defines, with its class (a test fails when zeep adds one unmapped).
#: TransportError and Fault are decided by their status and fault code in :func:`error_class`.
ZEEP_MAP: dict[type[Exception], type[UpstreamError]] = {
    zeep.exceptions.Error: P,
    zeep.exceptions.TransportError: T,
    zeep.exceptions.Fault: T,
    # The reply or the WSDL breaks the contract; asking again gets the same.
    zeep.exceptions.XMLSyntaxError: P,
    zeep.exceptions.XMLParseError: P,
    zeep.exceptions.UnexpectedElementError: P,
    zeep.exceptions.WsdlSyntaxError: P,
    zeep.exceptions.LookupError: P,
    zeep.exceptions.NamespaceError: P,
    zeep.exceptions.ValidationError: P,
    zeep.exceptions.SignatureVerificationFailed: P,
    zeep.exceptions.IncompleteMessage: P,
    zeep.exceptions.IncompleteOperation: P,
    zeep.exceptions.DTDForbidden: P,
    zeep.exceptions.EntitiesForbidden: P,
    zeep.exceptions.ExternalReferenceForbidden: P,
}

#: Parsers below zeep, should one of their errors get past it.
XML_MAP: dict[type[Exception], type[UpstreamError]] = {
    etree.XMLSyntaxError: P,
    etree.Error: P,
}


#: What is caught around one call (anything else is a bug and surfaces as it is).
CALL_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    zeep.exceptions.Error,
    etree.Error,
    *HTTPX_ERRORS,
)


def error_class(exc: BaseException) -> type[UpstreamError]:
    """The gateway error class for an exception met while calling the service."""
    if isinstance(exc, TimeoutError):  # the deadline around one attempt
        return TransientUpstreamError
    if isinstance(exc, zeep.exceptions.TransportError):
        # zeep reports a 200 whose body is not XML as a TransportError too: permanent.
        return status_error_class(exc.status_code) if exc.status_code != 200 else PermanentUpstreamError
    if isinstance(exc, zeep.exceptions.Fault):
        # SOAP 1.1: a Server fault may pass, a Client fault is our request's (no code: an
        # HTTP error page in XML, treated as the server's).
        code = str(exc.code or "Server")
        return TransientUpstreamError if code.rsplit(":", 1)[-1] == "Server" else PermanentUpstreamError
    if isinstance(exc, HTTPX_ERRORS):
        return httpx_error_class(exc)
    for table in (ZEEP_MAP, XML_MAP):
        for cls in type(exc).__mro__:
            if cls in table:
                return table[cls]
    return PermanentUpstreamError


def translate(exc: BaseException, what: str) -> UpstreamError:
    """``raise translate(exc, "journal-ws: GetBookings") from exc`` at the edge."""
    name = type(exc).__name__
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return error_class(exc)(f"{what}: {name}: {detail}" if detail else f"{what}: {name}")


def make_http_client(settings: JournalServiceSettings) -> httpx.AsyncClient:
    """The HTTP client the composition root hands the service (timeouts from the settings)."""
    return httpx.AsyncClient(timeout=settings.timeout, headers={"User-Agent": "gateway journal-ws"})
