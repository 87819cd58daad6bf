"""TakeCare XChange booking service, ``GetBookings`` as published: a patient's bookings now (R-BK-4).

The contract (``docs/journal-ws.md``): an ASMX SOAP 1.1 service in ``http://tempuri.org/``,
binding ``BookingSoap``, SOAPAction ``http://tempuri.org/GetBookings``; the request's ``xml``
string carries an escaped ``ProfdocHISMessage`` and the answer's ``GetBookingsResult`` string
holds another one (built and read in ``takecare_booking.py``). The project's own WSDL
(``wsdl/TakeCareBooking.wsdl``) is used unless ``GATEWAY_JOURNAL_WS_WSDL`` names another (the
vendor's, or the service's ``?WSDL``). zeep speaks SOAP over an injected ``httpx.AsyncClient``
(operations) and an ``httpx.Client`` (a remote WSDL's one-off load, run off the event loop).
Every failure leaves as a ``gateway.errors`` error, translated here at the edge::

    TransientUpstreamError   timeouts, connection errors, HTTP 5xx/408/429, soap:Server faults,
                             an answer that is not XML or not a SOAP envelope (gateway/soap.py),
                             an error document whose every Code is in TRANSIENT_ERROR_CODES
                                                            -> retried by the RetryPolicy
    PermanentUpstreamError   other HTTP 4xx, a reply that breaks the contract, soap:Client
                             faults, any other error document (named by its Codes)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
import zeep
import zeep.exceptions
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project
from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from gateway import soap, tls
from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import ConfigurationError, PermanentUpstreamError, UpstreamError
from gateway.http_errors import HTTPX_ERRORS
from gateway.journal_adapter.takecare_booking import build_request, read_answer
from gateway.resilience import RetryPolicy, Sleep

log = structlog.get_logger(__name__)

NAME = "journal-ws"
NS = "http://tempuri.org/"
BINDING = f"{{{NS}}}BookingSoap"
SOAP_ACTION = f"{NS}GetBookings"
#: The project's own WSDL of the service (same namespace, names and binding as the published one).
WSDL_FILE = Path(__file__).resolve().parent / "wsdl" / "TakeCareBooking.wsdl"


class JournalServiceSettings(BaseSettings):
    """The journal booking service (environment prefix ``GATEWAY_JOURNAL_WS_``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_JOURNAL_WS_", extra="ignore")

    url: AnyHttpUrl | None = Field(
        None,
        description="Endpoint of the booking service (TakeCare: .../Booking.asmx). Unset: the "
        "composition root serves the simulated journal's service and points here.",
    )
    wsdl: str | None = Field(
        None,
        description="WSDL location (URL or file path); default the project's own "
        "gateway/journal_adapter/wsdl/TakeCareBooking.wsdl (binding BookingSoap).",
    )
    tcusername: SecretStr | None = Field(None, description="tcusername: the integration's TakeCare user.")
    tcpassword: SecretStr | None = Field(None, description="tcpassword: its password.")
    externaluser: str = Field(
        "gateway", description="externaluser: who asks, as the journal logs it (a system name, no person)."
    )
    careunitidtype: str = Field(
        "HSAID",
        description="careunitidtype and CareUnitIdType: the kind of care unit id the gateway "
        "sends (the refresh's unit= is an HSA-id, so HSAID unless the region says otherwise).",
    )
    invoking_system: str = Field("GATEWAY", description="InvokingSystem of the request document.")
    instance: str = Field(
        "SIM",
        description="The journal instance whose numeric TimeTypeId table applies "
        "(mappings/time_types.yaml journal_instances); SIM is the simulated journal.",
    )
    care_units: list[str] = Field(
        default_factory=list,
        description="Care unit ids a refresh without unit= asks (besides the units the gateway "
        "already knows the patient's bookings at). JSON list.",
    )
    transient_error_codes: list[str] = Field(
        default_factory=list,
        description="Error document Codes worth asking again (transient); every other code is "
        "permanent. The published contract lists no codes. JSON list of numbers as text.",
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

    ``time_type_ids`` is the journal instance's TimeTypeId -> time-type code table
    (``Mappings.journal_time_type_ids(settings.instance)``; the composition root passes it). The
    WSDL is loaded on the first call (in a thread: zeep loads it synchronously). Each call is
    retried on transient failures by the shared :class:`~gateway.resilience.RetryPolicy`.
    """

    def __init__(
        self,
        settings: JournalServiceSettings,
        http: httpx.AsyncClient,
        *,
        time_type_ids: Mapping[str, str] | None = None,
        wsdl_http: httpx.Client | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.url is None:
            raise ConfigurationError("journal-ws: no service URL (GATEWAY_JOURNAL_WS_URL)")
        if time_type_ids is None:
            from gateway import mappings as mapping_tables  # the shipped tables, for tests and tools

            time_type_ids = mapping_tables.load().journal_time_type_ids(settings.instance)
        self.settings = settings
        self.url = str(settings.url)
        self._wsdl = settings.wsdl or str(WSDL_FILE)
        self._time_type_ids = dict(time_type_ids)
        self._http = http
        self._own_wsdl_http = wsdl_http is None
        self._wsdl_http = wsdl_http if wsdl_http is not None else httpx.Client(verify=tls.system_trust())
        self._timeout = settings.timeout
        self._clock = clock
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

    @property
    def care_units(self) -> tuple[str, ...]:
        return tuple(self.settings.care_units)

    async def aclose(self) -> None:
        """Close what this object made itself (the WSDL client); ``http`` is the caller's."""
        if self._own_wsdl_http:
            self._wsdl_http.close()

    async def get_bookings(self, patient: PersonId, *, unit: str) -> list[JournalBooking]:
        """The patient's bookings at care ``unit`` as the journal holds them now (all booked)."""

        # Named coroutine functions: tenacity would not await a lambda's coroutine.
        async def once() -> list[JournalBooking]:
            return await self._get_bookings(patient, unit)

        return await self._retry.call(once)

    def request_document(self, patient: PersonId, unit: str) -> str:
        """The inner ``ProfdocHISMessage`` a call sends (unescaped)."""
        return build_request(
            patient.value,
            care_unit_id_type=self.settings.careunitidtype,
            care_unit_id=unit,
            invoking_system=self.settings.invoking_system,
            now=self._clock(),
        )

    async def _get_bookings(self, patient: PersonId, unit: str) -> list[JournalBooking]:
        what = f"{NAME}: GetBookings"  # no personnummer in error texts (they reach logs)
        s = self.settings
        try:
            async with asyncio.timeout(self._timeout):
                service = await self._load()
                reply = await service.GetBookings(
                    tcusername=s.tcusername.get_secret_value() if s.tcusername is not None else None,
                    tcpassword=s.tcpassword.get_secret_value() if s.tcpassword is not None else None,
                    externaluser=s.externaluser,
                    careunitidtype=s.careunitidtype,
                    careunitid=unit,
                    xml=self.request_document(patient, unit),
                )
        except CALL_ERRORS as exc:
            raise translate(exc, what) from exc
        if not isinstance(reply, str):
            raise PermanentUpstreamError(f"{what}: answer has no GetBookingsResult string")
        answer = read_answer(
            reply, patient, self._time_type_ids, transient_codes=s.transient_error_codes, what=what
        )
        if answer.unknown_time_type_ids:
            # Hidden until mapped (R-BK-1); operators add them to mappings/time_types.yaml.
            log.warning(
                "journal_ws.unknown_time_type_ids",
                instance=s.instance,
                ids=list(answer.unknown_time_type_ids),
            )
        return list(answer.bookings)

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


# --- translation at the edge -------------------------------------------------------------------

#: What is caught around one call (anything else is a bug and surfaces as it is).
CALL_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    zeep.exceptions.Error,
    etree.Error,
    *HTTPX_ERRORS,
)


def translate(exc: BaseException, what: str) -> UpstreamError:
    """``raise translate(exc, "journal-ws: GetBookings") from exc`` at the edge.

    Decided and worded once for every SOAP adapter (gateway/soap.py); anything else caught
    around a call is the service's doing as far as this edge can tell: permanent.
    """
    return soap.translate(exc, what) or PermanentUpstreamError(f"{what}: {soap.describe(exc)}")


def error_class(exc: BaseException) -> type[UpstreamError]:
    """The gateway error class for an exception met while calling the service."""
    return type(translate(exc, ""))


def make_http_client(settings: JournalServiceSettings) -> httpx.AsyncClient:
    """The HTTP client the composition root hands the service (timeouts from the settings)."""
    return httpx.AsyncClient(
        timeout=settings.timeout, headers={"User-Agent": "gateway journal-ws"}, verify=tls.system_trust()
    )
