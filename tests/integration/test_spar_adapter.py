"""The SPAR adapter against answers served by respx: every failure maps to the right error class,
retries happen for transient failures only, the breaker opens and half-opens, the cache serves
and expires. Clock and sleep are injected: nothing here waits.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from lxml import etree
from structlog.testing import capture_logs
from zeep import exceptions as zeep_exceptions

from gateway import soap
from gateway.domain.identity import IdKind, PersonId
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.http_errors import EXCEPTION_MAP
from gateway.resilience import BreakerState
from gateway.spar_adapter import SparRegister, SparSettings, http_client, translate_exception
from tests.fakes import pnr

URL = "https://spar.test/spar/personsok"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spar"
TOLVAN = pnr("191212121212")
ATTEMPTS = 3


def fixture(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=(FIXTURES / name).read_bytes(), headers={"Content-Type": "text/xml; charset=utf-8"}
    )


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def settings(**changes: object) -> SparSettings:
    values: dict[str, object] = {
        "url": URL,
        "retry_attempts": ATTEMPTS,
        "retry_backoff": 0.1,
        "retry_max_backoff": 1.0,
        "breaker_failure_threshold": 3,
        "breaker_reset_time": 30.0,
        "cache_ttl": 60.0,
        "cache_size": 100,
    }
    values.update(changes)
    return SparSettings.model_validate(values)


async def make(clock: Clock, sleeps: Sleeps, **changes: object) -> SparRegister:
    return SparRegister(settings(**changes), client=httpx.AsyncClient(), clock=clock, sleep=sleeps)


@pytest.fixture
async def register(clock: Clock, sleeps: Sleeps) -> AsyncIterator[SparRegister]:
    reg = await make(clock, sleeps)
    yield reg
    await reg._http.aclose()


async def test_a_lookup_sends_one_personsok_with_soapaction_and_identification(
    register: SparRegister, router: respx.MockRouter
) -> None:
    route = router.post(URL).mock(return_value=fixture("svar-tolvan.xml"))
    record = await register.lookup(TOLVAN)
    assert record is not None and record.given_name == "Tolvan"
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["SOAPAction"] == (
        '"http://skatteverket.se/spar/personsok/2021.1/PersonsokService/Personsok"'
    )
    body = etree.fromstring(request.content)
    s = "http://statenspersonadressregister.se/schema/komponent"
    assert body.findtext(f".//{{{s}/person/person-1.2}}IdNummer") == "191212121212"
    ident = f"{{{s}/metadata/identifieringsinformationWs-1.1}}"
    assert body.findtext(f".//{ident}KundNrLeveransMottagare") == "500243"
    assert body.findtext(f".//{ident}UppdragId") == "637"
    assert body.findtext(f".//{ident}SlutAnvandarId") == "integration-gateway"


async def test_a_number_the_contract_cannot_carry_is_refused_without_asking_spar(
    register: SparRegister, router: respx.MockRouter
) -> None:
    route = router.post(URL).mock(return_value=fixture("svar-tolvan.xml"))
    for value in ("1912121212", "091212121212", "19121212121X"):
        with pytest.raises(PermanentUpstreamError, match="12-digit"):
            await register.lookup(PersonId(IdKind.PERSONNUMMER, value, "1.2.752.129.2.1.3.1"))
    assert route.call_count == 0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ConnectError,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    ],
)
async def test_timeouts_and_connection_errors_are_transient_and_retried(
    register: SparRegister, router: respx.MockRouter, sleeps: Sleeps, exc: type[Exception]
) -> None:
    route = router.post(URL).mock(side_effect=exc)
    with pytest.raises(TransientUpstreamError) as caught:
        await register.lookup(TOLVAN)
    assert isinstance(caught.value.__cause__, exc)  # translated at the edge, `from exc`
    assert route.call_count == ATTEMPTS
    assert len(sleeps.waits) == ATTEMPTS - 1
    assert sleeps.waits[0] < sleeps.waits[1]  # backoff grows


@pytest.mark.parametrize("exc", [httpx.LocalProtocolError, httpx.UnsupportedProtocol])
async def test_a_request_that_cannot_be_sent_is_permanent_and_not_retried(
    register: SparRegister, router: respx.MockRouter, exc: type[Exception]
) -> None:
    route = router.post(URL).mock(side_effect=exc)
    with pytest.raises(PermanentUpstreamError):
        await register.lookup(TOLVAN)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
async def test_5xx_without_soap_is_transient_and_retried(
    register: SparRegister, router: respx.MockRouter, status: int
) -> None:
    route = router.post(URL).mock(return_value=httpx.Response(status, text="Service Unavailable"))
    with pytest.raises(TransientUpstreamError, match=f"HTTP {status}"):
        await register.lookup(TOLVAN)
    assert route.call_count == ATTEMPTS


@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_other_4xx_is_permanent_and_not_retried(
    register: SparRegister, router: respx.MockRouter, status: int
) -> None:
    route = router.post(URL).mock(return_value=httpx.Response(status, text="no"))
    with pytest.raises(PermanentUpstreamError, match=f"HTTP {status}"):
        await register.lookup(TOLVAN)
    assert route.call_count == 1


async def test_an_empty_500_is_transient(register: SparRegister, router: respx.MockRouter) -> None:
    router.post(URL).mock(return_value=httpx.Response(500))
    with pytest.raises(TransientUpstreamError):
        await register.lookup(TOLVAN)


@pytest.mark.parametrize(
    "content",
    [
        (FIXTURES / "garbage.xml").read_bytes(),
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"\x00\xff not xml",
        b"",
    ],
    ids=["cut-off", "html-page", "binary", "empty"],
)
async def test_an_answer_that_is_not_soap_is_transient_and_retried(
    register: SparRegister, router: respx.MockRouter, content: bytes
) -> None:
    # A damaged transfer or something other than SPAR answering: asking again usually works.
    route = router.post(URL).mock(return_value=httpx.Response(200, content=content))
    with pytest.raises(TransientUpstreamError):
        await register.lookup(TOLVAN)
    assert route.call_count == ATTEMPTS


async def test_soap_that_breaks_the_schema_is_permanent_and_not_retried(
    register: SparRegister, router: respx.MockRouter
) -> None:
    # Deterministic for this question: the same answer would come back.
    route = router.post(URL).mock(return_value=fixture("svar-utan-skyddsflaggor.xml"))
    with pytest.raises(PermanentUpstreamError, match="contract"):
        await register.lookup(TOLVAN)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("name", "error", "calls"),
    [
        ("fault-client.xml", PermanentUpstreamError, 1),
        ("fault-server.xml", TransientUpstreamError, ATTEMPTS),
    ],
)
async def test_soap_faults_map_by_faultcode(
    register: SparRegister, router: respx.MockRouter, name: str, error: type[UpstreamError], calls: int
) -> None:
    route = router.post(URL).mock(return_value=fixture(name, status=500))
    with pytest.raises(error, match="SOAP Fault"):
        await register.lookup(TOLVAN)
    assert route.call_count == calls


@pytest.mark.parametrize(
    ("name", "error", "calls"),
    [
        ("svar-undantag-ogiltig-inparameter.xml", PermanentUpstreamError, 1),
        ("svar-overstiger-max-antal-svarsposter.xml", PermanentUpstreamError, 1),
        ("svar-undantag-generellt-fel.xml", TransientUpstreamError, ATTEMPTS),
    ],
)
async def test_undantag_codes_map_and_only_generellt_fel_is_retried(
    register: SparRegister, router: respx.MockRouter, name: str, error: type[UpstreamError], calls: int
) -> None:
    route = router.post(URL).mock(return_value=fixture(name))
    with pytest.raises(error, match=r"Undantag|OverstigerMaxAntalSvarsposter"):
        await register.lookup(TOLVAN)
    assert route.call_count == calls


async def test_a_transient_failure_then_an_answer_gives_the_answer(
    register: SparRegister, router: respx.MockRouter
) -> None:
    route = router.post(URL).mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("refused"), fixture("svar-tolvan.xml")]
    )
    assert await register.lookup(TOLVAN) is not None
    assert route.call_count == 3


async def test_a_bug_is_not_disguised_as_an_upstream_error(
    register: SparRegister, router: respx.MockRouter
) -> None:
    router.post(URL).mock(side_effect=ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        await register.lookup(TOLVAN)


async def test_the_breaker_opens_after_consecutive_failures_fails_fast_then_half_opens(
    router: respx.MockRouter, clock: Clock, sleeps: Sleeps
) -> None:
    register = await make(clock, sleeps, retry_attempts=1, breaker_failure_threshold=2, breaker_reset_time=30)
    route = router.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(2):
        with pytest.raises(TransientUpstreamError, match="could not connect"):
            await register.lookup(TOLVAN)
    assert register.breaker.state is BreakerState.OPEN
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await register.lookup(TOLVAN)
    assert route.call_count == 2  # failed fast: no call while open
    clock.now += 29.9
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await register.lookup(TOLVAN)
    clock.now += 0.1
    assert register.breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(TransientUpstreamError, match="could not connect"):
        await register.lookup(TOLVAN)  # the trial fails: open again for a whole reset time
    assert route.call_count == 3
    assert register.breaker.state is BreakerState.OPEN
    clock.now += 30
    route.mock(side_effect=None, return_value=fixture("svar-tolvan.xml"))
    assert await register.lookup(TOLVAN) is not None  # the trial succeeds: closed
    assert register.breaker.state is BreakerState.CLOSED
    await register._http.aclose()


async def test_the_breaker_counts_a_lookup_that_used_up_its_retries_as_one_failure(
    router: respx.MockRouter, clock: Clock, sleeps: Sleeps
) -> None:
    register = await make(clock, sleeps, retry_attempts=3, breaker_failure_threshold=2)
    route = router.post(URL).mock(return_value=httpx.Response(503))
    with pytest.raises(TransientUpstreamError):
        await register.lookup(TOLVAN)
    assert register.breaker.state is BreakerState.CLOSED
    with pytest.raises(TransientUpstreamError):
        await register.lookup(TOLVAN)
    assert register.breaker.state is BreakerState.OPEN
    assert route.call_count == 6
    await register._http.aclose()


async def test_permanent_errors_do_not_open_the_breaker(
    router: respx.MockRouter, clock: Clock, sleeps: Sleeps
) -> None:
    register = await make(clock, sleeps, breaker_failure_threshold=1)
    router.post(URL).mock(return_value=fixture("svar-undantag-ogiltig-inparameter.xml"))
    for _ in range(3):
        with pytest.raises(PermanentUpstreamError):
            await register.lookup(TOLVAN)
    assert register.breaker.state is BreakerState.CLOSED
    await register._http.aclose()


async def test_the_cache_serves_a_second_lookup_without_a_call_and_expires_after_ttl(
    register: SparRegister, router: respx.MockRouter, clock: Clock
) -> None:
    route = router.post(URL).mock(return_value=fixture("svar-tolvan.xml"))
    first = await register.lookup(TOLVAN)
    assert await register.lookup(TOLVAN) == first
    assert route.call_count == 1
    clock.now += 59.9
    await register.lookup(TOLVAN)
    assert route.call_count == 1
    clock.now += 0.1
    await register.lookup(TOLVAN)
    assert route.call_count == 2


async def test_not_found_is_an_answer_and_cached(register: SparRegister, router: respx.MockRouter) -> None:
    route = router.post(URL).mock(return_value=fixture("svar-ingen-traff.xml"))
    assert await register.lookup(pnr("198512242242")) is None
    assert await register.lookup(pnr("198512242242")) is None
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), fixture("svar-undantag-ogiltig-inparameter.xml")],
    ids=["transient", "permanent"],
)
async def test_errors_are_never_cached(
    router: respx.MockRouter, clock: Clock, sleeps: Sleeps, failure: httpx.Response
) -> None:
    register = await make(clock, sleeps, retry_attempts=1)
    route = router.post(URL).mock(side_effect=[failure, fixture("svar-tolvan.xml")])
    with pytest.raises(UpstreamError):
        await register.lookup(TOLVAN)
    assert await register.lookup(TOLVAN) is not None
    assert route.call_count == 2
    await register._http.aclose()


async def test_logs_never_carry_a_full_personnummer_or_a_name(
    register: SparRegister, router: respx.MockRouter
) -> None:
    router.post(URL).mock(side_effect=[fixture("fault-server.xml", 500), fixture("garbage.xml")] * 2)
    with capture_logs() as logs, pytest.raises(TransientUpstreamError):
        await register.lookup(TOLVAN)
    assert logs, "failures are logged"
    text = repr(logs)
    assert "191212121212" not in text and "Tolvan" not in text
    assert "19121212-****" in text


def test_the_default_transport_has_the_configured_timeout() -> None:
    client = http_client(settings(timeout=1.5))
    assert client.timeout == httpx.Timeout(1.5)


def _exception_classes(module: object, names: list[str]) -> set[type[BaseException]]:
    found = [getattr(module, n) for n in names]
    # Warnings are reported through `warnings`, not raised at the adapter.
    return {
        c for c in found if inspect.isclass(c) and issubclass(c, Exception) and not issubclass(c, Warning)
    }


def test_every_httpx_and_zeep_exception_has_its_own_mapping() -> None:
    """Like httpx's own test: a new upstream exception fails here until someone decides its class."""
    upstream = _exception_classes(httpx, httpx.__all__) | _exception_classes(
        zeep_exceptions, dir(zeep_exceptions)
    )
    decided = set(EXCEPTION_MAP) | set(soap.DECISIONS)  # one table each, shared by every adapter
    missing = sorted(c.__qualname__ for c in upstream if c not in decided)
    assert not missing, f"no mapping for {missing}"


def test_every_lxml_exception_maps_through_its_base() -> None:
    lxml_errors = _exception_classes(etree, [n for n in dir(etree) if not n.startswith("_")]) - {Exception}
    lxml_errors = {c for c in lxml_errors if c.__module__.startswith("lxml")}
    assert lxml_errors
    for cls in lxml_errors:
        assert any(base in soap.DECISIONS for base in cls.__mro__), cls


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (etree.XMLSyntaxError("bad", 1, 1, 1), TransientUpstreamError),
        (etree.DocumentInvalid("invalid"), PermanentUpstreamError),
        (zeep_exceptions.XMLSyntaxError("no envelope"), TransientUpstreamError),
        (zeep_exceptions.ValidationError("bad"), PermanentUpstreamError),
        (zeep_exceptions.DTDForbidden("n", "s", "p"), PermanentUpstreamError),
        (zeep_exceptions.TransportError("x", status_code=502), TransientUpstreamError),
        (zeep_exceptions.TransportError("x", status_code=401), PermanentUpstreamError),
        (zeep_exceptions.Fault("x", code="soap:Server"), TransientUpstreamError),
        (
            zeep_exceptions.Fault("x", code="{http://schemas.xmlsoap.org/soap/envelope/}Client"),
            PermanentUpstreamError,
        ),
        (zeep_exceptions.Fault("x", code="VersionMismatch"), PermanentUpstreamError),
        (httpx.InvalidURL("x"), PermanentUpstreamError),
        (httpx.DecodingError("x"), PermanentUpstreamError),  # gateway/http_errors.py, for all
        (httpx.TooManyRedirects("x"), PermanentUpstreamError),
        (
            httpx.HTTPStatusError("x", request=httpx.Request("POST", URL), response=httpx.Response(503)),
            TransientUpstreamError,
        ),
    ],
)
def test_library_exceptions_map_to_their_class(exc: BaseException, error: type[UpstreamError]) -> None:
    mapped = translate_exception(exc)
    assert type(mapped) is error


def test_anything_else_is_not_mapped() -> None:
    assert translate_exception(ZeroDivisionError()) is None
    already = TransientUpstreamError("x")
    assert translate_exception(already) is already
