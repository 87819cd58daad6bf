"""The 46elks-style SMS adapter against the built-in mock, in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from gateway import sms_adapter
from gateway.accounts_adapter import AccountsClient, AccountsSettings
from gateway.domain.sms import OutgoingSms
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.sms_adapter import ElksSmsClient, SmsSettings
from mocks.accounts import create_app as accounts_mock
from mocks.sms import Recorder, Switches, create_app
from tests.fakes import pnr

TOLVAN = pnr("191212121212")
SMS = OutgoingSms(
    to="+46701740605", sender="RegHalland", text="Påminnelse. https://www.1177.se", idempotency_key="k1"
)


def run(body: Callable[[ElksSmsClient, Switches, Recorder], Awaitable[None]]) -> None:
    switches, recorder = Switches(), Recorder()
    transport = httpx.ASGITransport(app=create_app(switches, recorder))
    settings = SmsSettings(url="http://sms.test/sms", username="u", password=SecretStr("p"))

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            await body(ElksSmsClient(settings, http), switches, recorder)

    asyncio.run(main())


def test_sends_once_per_idempotency_key_and_finds_it_in_the_history() -> None:
    async def body(client: ElksSmsClient, _s: Switches, recorder: Recorder) -> None:
        first = await client.send(SMS)
        again = await client.send(SMS)
        assert first == again and len(recorder.received) == 1 and recorder.duplicates == 1
        found = await client.find_sent(SMS, datetime.now(UTC) - timedelta(minutes=5))
        assert found == first
        other = OutgoingSms(SMS.to, SMS.sender, "Annan text. https://www.1177.se", "k2")
        assert await client.find_sent(other, datetime.now(UTC) - timedelta(minutes=5)) is None

    run(body)


def test_outage_is_transient_and_a_refused_sender_permanent_R_NOT_3() -> None:
    async def body(client: ElksSmsClient, switches: Switches, recorder: Recorder) -> None:
        switches.outage = True
        with pytest.raises(TransientUpstreamError):
            await client.send(SMS)
        switches.outage = False
        with pytest.raises(PermanentUpstreamError):
            await client.send(OutgoingSms(SMS.to, "RegionHalland", SMS.text, "k3"))
        assert recorder.received == []

    run(body)


def test_sender_over_11_characters_is_refused_at_start_R_NOT_3() -> None:
    with pytest.raises(ValidationError, match="R-NOT-3"):
        SmsSettings(sender="RegionHalland")


def test_the_sms_never_shows_its_number_or_text_in_a_repr() -> None:
    assert "4670" not in repr(SMS) and "Påminnelse" not in repr(SMS)


def test_the_public_api_is_listed_in_all() -> None:
    public = {name for name in vars(sms_adapter) if not name.startswith("_")}
    assert public == set(sms_adapter.__all__)


def test_the_accounts_mock_tells_the_mobile_and_a_withdrawn_consent_R_NOT_1() -> None:
    app = accounts_mock()

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://accounts.test") as http:
            client = AccountsClient(AccountsSettings(url="http://accounts.test", cache_ttl=0), http)
            before = await client.account(TOLVAN)
            assert before.sms_consent and before.mobile == "+46701740605"
            changed = await http.put("/accounts/_sms/191212121212", json={"sms_consent": False})
            assert changed.status_code == 200
            after = await client.account(TOLVAN)
            assert not after.sms_consent and after.mobile == "+46701740605"

    asyncio.run(main())
