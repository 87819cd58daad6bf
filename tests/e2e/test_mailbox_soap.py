"""The mailbox mock behind the shared mocks port, as ``gateway serve`` and ``gateway mocks`` run it:
its WSDLs served where it is reached, switches and records over HTTP, and the composition root
wiring the real clients to it when no URL is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from lxml import etree

from gateway.bootstrap import connect_outside
from gateway.domain.documents import MailboxProvider
from gateway.domain.mailbox import OutgoingLetter
from gateway.errors import TransientUpstreamError
from gateway.mailbox_adapter import MailboxDeliveryClient, MailboxDirectoryClient, MailboxSettings
from gateway.settings import Settings
from mocks.mailbox import DELIVERIES_PATH, OPERATORS, RECIPIENT_PATH, SWITCHES_PATH, create_app
from mocks.runner import ServedApp, TlsFiles
from mocks.services import MockServices
from tests.fakes import pnr

TOLVAN = pnr("191212121212")


@pytest.fixture(scope="module")
def services() -> Iterator[MockServices]:
    services = MockServices.default().start()
    yield services
    services.stop()


def test_the_mailbox_mock_serves_its_contracts_where_it_is_reached(services: MockServices) -> None:
    with httpx.Client(base_url=services.url, timeout=5) as http:
        wsdl = etree.fromstring(http.get(RECIPIENT_PATH, params={"wsdl": ""}).content)
        address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None and address.get("location") == services.url + RECIPIENT_PATH
        kivra = etree.fromstring(http.get("/mailbox/kivra", params={"wsdl": ""}).content)
        address = kivra.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None and address.get("location") == services.url + "/mailbox/kivra"
        assert http.get("/mailbox/recipient", params={"xsd": "mm-recipient-v3.xsd"}).status_code == 200
        assert http.get("/mailbox/nobody", params={"wsdl": ""}).status_code == 404


async def test_the_adapter_reads_the_served_wsdl_and_delivers_through_the_shared_port(
    services: MockServices,
) -> None:
    url = services.url + RECIPIENT_PATH
    settings = MailboxSettings(
        url=url,
        recipient_wsdl=f"{url}?wsdl",
        delivery_wsdl=f"{services.url}/mailbox/billo?wsdl",
        service_addresses={"*": [f"{services.url}/mailbox/"]},
    )
    async with MailboxDeliveryClient(settings) as delivery:
        found = await delivery.directory.lookup([TOLVAN])
        assert found[TOLVAN].service_address == services.url + "/mailbox/kivra"
        receipt = await delivery.deliver(OutgoingLetter("e2e-wsdl-1", TOLVAN, MailboxProvider.KIVRA, "Hej"))
    assert receipt.provider is MailboxProvider.KIVRA
    with httpx.Client(base_url=services.url, timeout=5) as http:
        record = http.get(DELIVERIES_PATH).json()
    [got] = [d for d in record["deliveries"] if d["message_id"] == "e2e-wsdl-1"]
    assert got["signature_verified"] and got["seal_verified"] and "body" not in got
    assert got["operator"] == OPERATORS["Kivra"].id


async def test_switches_flip_over_http(services: MockServices) -> None:
    settings = MailboxSettings(url=services.url + RECIPIENT_PATH, retry_attempts=1)
    with httpx.Client(base_url=services.url, timeout=5) as http:
        assert http.put(SWITCHES_PATH, json={"outage": True}).json()["outage"] is True
        assert http.put(SWITCHES_PATH, json={"error_rate": 2}).status_code == 422
        try:
            async with MailboxDirectoryClient(settings) as directory:
                with pytest.raises(TransientUpstreamError, match="503"):
                    await directory.reachability([TOLVAN])
        finally:
            http.put(SWITCHES_PATH, json={"outage": False})
        assert http.get(SWITCHES_PATH).json()["outage"] is False


async def test_bootstrap_wires_the_mailbox_clients_to_the_built_in_mock(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, http_port=0, mllp_port=0, mocks_port=0, log_level="WARNING")
    outside = connect_outside(settings)
    try:
        assert isinstance(outside.mailbox, MailboxDirectoryClient)
        assert isinstance(outside.mailbox_delivery, MailboxDeliveryClient)
        assert outside.mocks is not None and "mailbox" in outside.mocks.apps
        assert outside.mailbox.settings.url == outside.mocks.url + RECIPIENT_PATH
        found = await outside.mailbox.reachability([TOLVAN])
        assert found[TOLVAN].provider is MailboxProvider.KIVRA
        receipt = await outside.mailbox_delivery.deliver(
            OutgoingLetter("e2e-boot-1", TOLVAN, MailboxProvider.KIVRA, "Hej")
        )
        assert receipt.transaction_id
    finally:
        await outside.aclose()


# --- mutual TLS (issue 15 item 7) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA the services trust, their server certificate, the region's client certificate, and a
    client certificate from a CA nobody trusts; all made in-process (trustme)."""
    base = tmp_path_factory.mktemp("mailbox-pki")
    ca, stranger = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    files = {name: base / f"{name}.pem" for name in ("ca", "server", "server_key", "region", "stranger")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files["server"]), append=True)
    ca.issue_cert("integration-gateway.region.example").private_key_and_cert_chain_pem.write_to_path(
        str(files["region"])
    )
    stranger.issue_cert("someone.example").private_key_and_cert_chain_pem.write_to_path(
        str(files["stranger"])
    )
    return files


@pytest.fixture(scope="module")
def tls_served(pki: dict[str, Path]) -> Iterator[ServedApp]:
    """The recipient service and the operators over TLS, demanding a client certificate."""
    tls = TlsFiles(str(pki["server"]), str(pki["server_key"]), client_ca=str(pki["ca"]))
    with ServedApp(create_app(), tls=tls) as served:
        yield served


def tls_settings(served: ServedApp, pki: dict[str, Path], **changes: object) -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "url": served.url + RECIPIENT_PATH,
            "service_addresses": {"*": [served.url + "/mailbox/"]},
            "ca_file": pki["ca"],
            "retry_attempts": 1,
            **changes,
        }
    )


async def test_mutual_tls_with_the_regions_certificate_reaches_both_services(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    assert tls_served.url.startswith("https://")
    settings = tls_settings(tls_served, pki, client_cert=pki["region"])
    async with MailboxDeliveryClient(settings) as delivery:  # its own transports, from settings
        receipt = await delivery.deliver(OutgoingLetter("tls-1", TOLVAN, MailboxProvider.KIVRA, "Hej"))
    assert receipt.transaction_id


async def test_without_a_client_certificate_the_recipient_service_is_not_reached(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    async with MailboxDirectoryClient(tls_settings(tls_served, pki)) as directory:
        with pytest.raises(TransientUpstreamError):
            await directory.reachability([TOLVAN])


async def test_the_operators_get_their_own_client_certificate_setting(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    """Per service: the recipient service gets the region's certificate, the operators the one in
    GATEWAY_MAILBOX_OPERATOR_CLIENT_CERT (here one nobody trusts, so only delivery fails)."""
    settings = tls_settings(tls_served, pki, client_cert=pki["region"], operator_client_cert=pki["stranger"])
    async with MailboxDeliveryClient(settings) as delivery:
        assert (await delivery.directory.reachability([TOLVAN]))[TOLVAN].deliverable
        with pytest.raises(TransientUpstreamError):
            await delivery.deliver(OutgoingLetter("tls-2", TOLVAN, MailboxProvider.KIVRA, "Hej"))


async def test_a_service_certificate_the_gateway_does_not_trust_is_refused(
    tls_served: ServedApp, pki: dict[str, Path]
) -> None:
    """Without ca_file the system CAs do not know the services' certificate: no connection."""
    settings = tls_settings(tls_served, pki, client_cert=pki["region"], ca_file=None)
    async with MailboxDirectoryClient(settings) as directory:
        with pytest.raises(TransientUpstreamError):
            await directory.reachability([TOLVAN])
