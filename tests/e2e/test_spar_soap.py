"""The real SPAR adapter against the real SPAR mock over HTTP (a real port), with the built-in
test population: one test per register-dependent rule, mutual TLS, and an outage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import Protection, resolve
from gateway.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError
from gateway.resilience import BreakerState
from gateway.spar_adapter import SparRegister, SparSettings
from mocks.population import OIDS
from mocks.runner import ServedApp, TlsFiles
from mocks.spar import PATH, SOAP_ACTION, SWITCHES_PATH, Switches, create_app
from tests.fakes import pnr

KEY_PASSWORD = "region-hemlighet"
FAST = {"retry_attempts": 2, "retry_backoff": 0.01, "retry_max_backoff": 0.02, "timeout": 5.0}


class Counted:
    """An httpx client that counts the requests it sends (so tests see what reached SPAR)."""

    def __init__(self, **kwargs: Any) -> None:
        self.requests = 0
        self.client = httpx.AsyncClient(event_hooks={"request": [self._count]}, **kwargs)

    async def _count(self, request: httpx.Request) -> None:
        self.requests += 1


@pytest.fixture(scope="module")
def switches() -> Switches:
    return Switches()


@pytest.fixture(scope="module")
def served(switches: Switches) -> Iterator[ServedApp]:
    with ServedApp(create_app(switches=switches)) as app:
        yield app


@pytest.fixture(autouse=True)
def _reset(switches: Switches) -> None:
    for name, field in Switches.model_fields.items():
        setattr(switches, name, field.default)


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    counted = Counted(timeout=5.0)
    yield counted
    await counted.client.aclose()


@pytest.fixture
def register(served: ServedApp, counted: Counted) -> SparRegister:
    return SparRegister(
        SparSettings.model_validate({"url": served.url + PATH, **FAST}), client=counted.client
    )


async def test_r_id_3_sekretessmarkering_comes_from_the_register(register: SparRegister) -> None:
    record = await register.lookup(pnr("197605010128"))
    assert record is not None
    assert record.protection is Protection.SEKRETESSMARKERING and record.protected


async def test_r_id_3_skyddad_folkbokforing_comes_from_the_register_with_only_the_forwarding_address(
    register: SparRegister,
) -> None:
    record = await register.lookup(pnr("198203152452"))
    assert record is not None
    assert record.protection is Protection.SKYDDAD_FOLKBOKFORING and record.protected
    assert record.address is not None and record.address.street1 == "Särskild postförmedling"


async def test_r_id_5_deceased_is_flagged(register: SparRegister) -> None:
    record = await register.lookup(pnr("193804262628"))
    assert record is not None and record.deceased and record.deceased_date is not None


async def test_r_id_5_emigrated_is_flagged(register: SparRegister) -> None:
    record = await register.lookup(pnr("195511302134"))
    assert record is not None and record.emigrated


async def test_r_id_5_changed_number_is_followed_to_the_current_one(register: SparRegister) -> None:
    resolved = await resolve(register, pnr("197306142642"))
    assert resolved.current == pnr("197306142659")
    assert resolved.record is not None and resolved.record.person == pnr("197306142659")
    assert not resolved.record.changed_number


async def test_r_id_2_reservnummer_is_never_in_the_register(register: SparRegister, counted: Counted) -> None:
    reserv = PersonId(IdKind.RESERVNUMMER, "999929013705", OIDS["reservnummer"])
    resolved = await resolve(register, reserv)
    assert resolved.record is None and counted.requests == 0  # not even asked
    assert await register.lookup(reserv) is None  # and SPAR has no svarspost for it either


async def test_a_person_the_register_does_not_know_is_none(register: SparRegister) -> None:
    assert await register.lookup(pnr("198512242242")) is None


async def test_a_samordningsnummer_comes_back_as_samordningsnummer(register: SparRegister) -> None:
    record = await register.lookup(
        PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", OIDS["samordningsnummer"])
    )
    assert record is not None and record.person.kind is IdKind.SAMORDNINGSNUMMER


async def test_an_invalid_idnummer_is_a_permanent_error(register: SparRegister, counted: Counted) -> None:
    with pytest.raises(PermanentUpstreamError, match="OGILTIG_INPARAMETER"):
        await register.lookup(PersonId(IdKind.PERSONNUMMER, "191212121213", OIDS["personnummer"]))
    assert counted.requests == 1
    with pytest.raises(PermanentUpstreamError, match="12-digit"):  # never sent: the schema refuses it
        await register.lookup(PersonId(IdKind.PERSONNUMMER, "1912121212", OIDS["personnummer"]))
    assert counted.requests == 1


async def test_too_many_hits_is_a_permanent_error(
    register: SparRegister, counted: Counted, switches: Switches
) -> None:
    switches.max_antal = True
    with pytest.raises(PermanentUpstreamError, match="OverstigerMaxAntalSvarsposter"):
        await register.lookup(pnr("191212121212"))
    assert counted.requests == 1


async def test_the_current_entries_of_the_history_are_used(register: SparRegister) -> None:
    # The mock gives every person an earlier name and address (history lists, docs/spar.md).
    record = await register.lookup(pnr("191212121212"))
    assert record is not None and record.family_name == "Tolvansson"
    assert record.address is not None and record.address.street1 != "Gamla vägen 1"


@pytest.mark.parametrize("switch", ["generellt_fel", "http_500", "garbage", "outage"])
async def test_failure_switches_are_transient_and_retried(
    register: SparRegister, counted: Counted, switches: Switches, switch: str
) -> None:
    setattr(switches, switch, True)
    with pytest.raises(TransientUpstreamError):
        await register.lookup(pnr("191212121212"))
    assert counted.requests == FAST["retry_attempts"]


async def test_a_slow_register_times_out_as_transient(served: ServedApp, switches: Switches) -> None:
    async with SparRegister(
        SparSettings(url=served.url + PATH, timeout=0.1, retry_attempts=1)
    ) as register:  # the register's own client: the timeout comes from the settings
        switches.latency = 0.5
        with pytest.raises(TransientUpstreamError, match="timed out"):
            await register.lookup(pnr("191212121212"))


async def test_switches_are_set_over_http_and_a_retry_gets_through(
    served: ServedApp, register: SparRegister, counted: Counted
) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        answer = await http.put(SWITCHES_PATH, json={"fail_next": 1})
        assert answer.status_code == 200 and answer.json()["fail_next"] == 1
        assert (await http.put(SWITCHES_PATH, json={"no_such_switch": True})).status_code == 422
    assert await register.lookup(pnr("191212121212")) is not None
    assert counted.requests == 2


async def test_the_wsdl_is_served_with_its_address_and_the_adapter_can_load_it_from_there(
    served: ServedApp,
) -> None:
    url = served.url + PATH
    async with httpx.AsyncClient() as http:
        wsdl = (await http.get(url, params={"wsdl": ""})).text
        assert f'location="{url}"' in wsdl
        assert f'schemaLocation="{url}?xsd=PersonsokningFraga.xsd"' in wsdl
        assert 'name="PersonsokServiceSOAP"' in wsdl
        svar = (await http.get(url, params={"xsd": "PersonsokningSvar.xsd"})).text
        assert f'schemaLocation="{url}?xsd=AviseringPost-1.2.xsd"' in svar
    async with SparRegister(SparSettings(url=url, wsdl=url + "?wsdl")) as register:
        assert await register.lookup(pnr("191212121212")) is not None


@pytest.mark.parametrize(
    ("body", "action", "faultcode"),
    [
        (b"<not-xml", SOAP_ACTION, "soap:Client"),
        (b"<Envelope/>", SOAP_ACTION, "soap:VersionMismatch"),
        (b"<Fraga/>", SOAP_ACTION, "soap:Client"),
        (
            b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"/>',
            SOAP_ACTION,
            "soap:VersionMismatch",
        ),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<q:SPARPersonsokningFraga xmlns:q="http://statenspersonadressregister.se/schema/personsok/2021.1/'
            b'personsokningfraga"/></s:Body></s:Envelope>',
            SOAP_ACTION,
            "soap:Client",
        ),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<q:SPARPersonsokningFraga xmlns:q="http://skatteverket.se/spar/instans/1.0"/></s:Body></s:Envelope>',
            SOAP_ACTION,
            "soap:Client",
        ),
        (b"<x/>", "urn:wrong", "soap:Client"),
    ],
    ids=["not-xml", "no-soap-namespace", "not-an-envelope", "soap-1.2", "schema", "pre-2021", "soapaction"],
)
async def test_a_malformed_request_gets_a_soap_1_1_fault(
    served: ServedApp, body: bytes, action: str, faultcode: str
) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            served.url + PATH, content=body, headers={"SOAPAction": f'"{action}"', "Content-Type": "text/xml"}
        )
    assert answer.status_code == 500
    assert f"<faultcode>{faultcode}</faultcode>" in answer.text


# --- mutual TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, SPAR's server certificate and the gateway's client certificate, made in-process."""
    base = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("integration-gateway.region.example")
    files = {
        "ca": base / "ca.pem",
        "server_cert": base / "server.pem",
        "server_key": base / "server.key",
        "client": base / "client.pem",
        "client_cert": base / "client-cert.pem",
        "client_key": base / "client-key.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files["server_cert"]), append=True)
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    for blob in client.cert_chain_pems:
        blob.write_to_path(str(files["client_cert"]), append=True)
    # The region's key as it is usually handed over: a file of its own, encrypted.
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    files["client_key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return files


@pytest.fixture(scope="module")
def tls_served(pki: dict[str, Path]) -> Iterator[ServedApp]:
    tls = TlsFiles(str(pki["server_cert"]), str(pki["server_key"]), client_ca=str(pki["ca"]))
    with ServedApp(create_app(), tls=tls) as app:
        yield app


async def test_mutual_tls_refuses_a_client_without_a_certificate_as_transient(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    # Transient by decision: a refused client certificate is the channel's fault, not the
    # person's; bookings wait (nothing exposed unchecked) until an operator fixes the
    # certificate, instead of each failing and needing a reprocess. Under TLS 1.3 the refusal
    # also arrives as a broken read, which the client cannot tell from a dropped connection.
    settings = SparSettings(url=tls_served.url + PATH, ca_file=pki["ca"], retry_attempts=1)
    async with SparRegister(settings) as register:
        with pytest.raises(TransientUpstreamError):
            await register.lookup(pnr("191212121212"))


async def test_mutual_tls_accepts_the_gateways_certificate(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    settings = SparSettings(url=tls_served.url + PATH, ca_file=pki["ca"], client_cert=pki["client"])
    async with SparRegister(settings) as register:
        record = await register.lookup(pnr("191212121212"))
    assert record is not None and record.family_name == "Tolvansson"


async def test_mutual_tls_with_a_separate_encrypted_key_from_the_environment(
    tls_served: ServedApp, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GATEWAY_SPAR_CLIENT_CERT, _CLIENT_KEY, _CLIENT_KEY_PASSWORD and _CA_FILE, as an operator sets them."""
    monkeypatch.setenv("GATEWAY_SPAR_URL", tls_served.url + PATH)
    monkeypatch.setenv("GATEWAY_SPAR_CA_FILE", str(pki["ca"]))
    monkeypatch.setenv("GATEWAY_SPAR_CLIENT_CERT", str(pki["client_cert"]))
    monkeypatch.setenv("GATEWAY_SPAR_CLIENT_KEY", str(pki["client_key"]))
    monkeypatch.setenv("GATEWAY_SPAR_CLIENT_KEY_PASSWORD", KEY_PASSWORD)
    async with SparRegister(SparSettings()) as register:
        record = await register.lookup(pnr("197605010128"))
    assert record is not None and record.protection is Protection.SEKRETESSMARKERING


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"client_key_password": "fel"}, "TLS files"),
        ({"client_key_password": None}, "encrypted: set GATEWAY_SPAR_CLIENT_KEY_PASSWORD"),  # no prompt
        ({"client_cert": "ca"}, "TLS files"),  # the key does not fit the certificate
    ],
    ids=["wrong-password", "no-password", "key-of-another-certificate"],
)
def test_client_tls_files_that_cannot_be_used_stop_the_start(
    pki: dict[str, Path], changes: dict[str, str | None], match: str
) -> None:
    values: dict[str, object] = {
        "client_cert": pki["client_cert"],
        "client_key": pki["client_key"],
        "client_key_password": KEY_PASSWORD,
    }
    values |= {k: pki.get(v, v) if v else v for k, v in changes.items()}
    with pytest.raises(ConfigurationError, match=match):
        SparRegister(SparSettings.model_validate(values))


async def test_an_unknown_server_certificate_is_refused(tls_served: ServedApp, pki: dict[str, Path]) -> None:
    settings = SparSettings(url=tls_served.url + PATH, client_cert=pki["client"], retry_attempts=1)
    async with SparRegister(settings) as register:  # no ca_file: the system CAs do not know it
        with pytest.raises(TransientUpstreamError, match="TLS"):
            await register.lookup(pnr("191212121212"))


# --- outage -----------------------------------------------------------------------------------


async def test_an_outage_is_transient_and_the_breaker_half_opens_when_the_register_is_back() -> None:
    now = [0.0]
    with ServedApp(create_app()) as app:
        settings = SparSettings.model_validate(
            {"url": app.url + PATH, **FAST, "breaker_failure_threshold": 2, "breaker_reset_time": 5.0}
        )
        async with SparRegister(settings, clock=lambda: now[0]) as register:
            assert await register.lookup(pnr("191212121212")) is not None
            app.stop()
            for _ in range(2):
                with pytest.raises(TransientUpstreamError, match="could not connect"):
                    await register.lookup(pnr("197605010128"))
            assert register.breaker.state is BreakerState.OPEN
            app.start()  # the same port again
            with pytest.raises(TransientUpstreamError, match="circuit open"):
                await register.lookup(pnr("197605010128"))
            now[0] += 5.0  # the reset time passes: half-open, one trial goes through
            record = await register.lookup(pnr("197605010128"))
            assert record is not None and record.protected
            assert register.breaker.state is BreakerState.CLOSED
