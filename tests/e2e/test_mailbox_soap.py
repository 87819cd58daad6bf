"""The mailbox mock behind the shared mocks port, as ``gateway serve`` and ``gateway mocks`` run it:
its WSDLs served where it is reached, switches and records over HTTP, and the composition root
wiring the real clients to it when no URL is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from gateway.bootstrap import connect_outside
from gateway.domain.documents import MailboxProvider
from gateway.domain.mailbox import OutgoingLetter
from gateway.errors import TransientUpstreamError
from gateway.mailbox_adapter import MailboxDeliveryClient, MailboxDirectoryClient, MailboxSettings
from gateway.settings import Settings
from mocks.mailbox import DELIVERIES_PATH, RECIPIENT_PATH, SWITCHES_PATH
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
        assert http.get("/mailbox/recipient", params={"xsd": "mm-recipient.xsd"}).status_code == 200
        assert http.get("/mailbox/nobody", params={"wsdl": ""}).status_code == 404


async def test_the_adapter_reads_the_served_wsdl_and_delivers_through_the_shared_port(
    services: MockServices,
) -> None:
    url = services.url + RECIPIENT_PATH
    settings = MailboxSettings(
        url=url, recipient_wsdl=f"{url}?wsdl", delivery_wsdl=f"{services.url}/mailbox/billo?wsdl"
    )
    async with MailboxDeliveryClient(settings) as delivery:
        found = await delivery.directory.lookup([TOLVAN])
        assert found[TOLVAN].service_address == services.url + "/mailbox/kivra"
        receipt = await delivery.deliver(OutgoingLetter("e2e-wsdl-1", TOLVAN, MailboxProvider.KIVRA, "Hej"))
    assert receipt.provider is MailboxProvider.KIVRA
    with httpx.Client(base_url=services.url, timeout=5) as http:
        record = http.get(DELIVERIES_PATH).json()
    [got] = [d for d in record["deliveries"] if d["message_id"] == "e2e-wsdl-1"]
    assert got["signature_verified"] and got["operator"] == "Kivra" and "body" not in got


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
