"""The mailbox adapter against the mailbox mock over real HTTP (a real port), with the built-in
test population: reachability per operator, declined, not accepted, minors, batches, retries,
outages, refusals, XML signatures and idempotent deliveries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.domain.documents import NO_MAILBOX, MailboxProvider, MailboxReachability
from gateway.domain.identity import IdKind, PersonId, luhn_check_digit
from gateway.domain.letter import Attachment
from gateway.domain.mailbox import PDF, NeutralSubject, OutgoingLetter, RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError, TransientUpstreamError
from gateway.mailbox_adapter import (
    MailboxDeliveryClient,
    MailboxDirectoryClient,
    MailboxSettings,
    throwaway_identity,
)
from mocks.mailbox import OPERATORS, RECIPIENT_PATH, ErrorCode, Recorder, Switches, create_app
from mocks.population import OIDS
from mocks.runner import ServedApp
from tests.fakes import pnr

TODAY = date(2026, 11, 25)
FAST = {"retry_attempts": 3, "retry_backoff": 0.01, "retry_max_backoff": 0.02, "timeout": 5.0}
TOLVAN = pnr("191212121212")  # Kivra
PARENT = pnr("198503141239")  # Billo
MYNDIG = pnr("198406092679")  # Min Myndighetspost
DECLINED = pnr("197306142659")  # declined mail from the sector
NOT_ACCEPTED = pnr("197811032460")  # Billo, does not accept this sender
MINOR = pnr("201004202386")  # 16, Kivra account
SAMIR = PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", OIDS["samordningsnummer"])  # no mailbox
RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", OIDS["reservnummer"])
PDF_BYTES = b"%PDF-1.4\n% a small test document\n%%EOF\n"


def letter(
    person: PersonId, message_id: str, provider: MailboxProvider = MailboxProvider.KIVRA
) -> OutgoingLetter:
    return OutgoingLetter(
        message_id=message_id,
        recipient=person,
        provider=provider,
        text="Välkommen till mottagningen.\nTid: 1 december kl 09.00.",
        attachments=(Attachment("Kallelse hjärtmottagningen.pdf", PDF, PDF_BYTES),),
    )


class Counted:
    """An httpx client that counts requests per path (so tests see what reached the services)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.paths: list[str] = []
        self.client = httpx.AsyncClient(
            timeout=5.0, transport=transport, event_hooks={"request": [self._count]}
        )

    async def _count(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)

    def count(self, path_end: str) -> int:
        return sum(p.endswith(path_end) for p in self.paths)


class Tamper(httpx.AsyncBaseTransport):
    """Changes one signed byte of every delivery after the gateway signed it (same length)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b"deliverSecure" in request.content:  # the SOAPAction is empty in v3
            request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content.replace(b"ett brev", b"ett BREV"),
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def switches() -> Switches:
    return Switches()


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def served(switches: Switches, recorder: Recorder) -> Iterator[ServedApp]:
    with ServedApp(create_app(switches=switches, recorder=recorder, today=lambda: TODAY)) as app:
        yield app


@pytest.fixture(autouse=True)
def _reset(switches: Switches, recorder: Recorder) -> None:
    for name, field in Switches.model_fields.items():
        setattr(switches, name, field.default)
    recorder.clear()


def settings_for(served: ServedApp, **changes: object) -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "url": served.url + RECIPIENT_PATH,
            "service_addresses": {"*": [served.url + "/mailbox/"]},
            **FAST,
            **changes,
        }
    )


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    counted = Counted()
    yield counted
    await counted.client.aclose()


@pytest.fixture
def delivery(served: ServedApp, counted: Counted) -> MailboxDeliveryClient:
    return MailboxDeliveryClient(settings_for(served), client=counted.client)


@pytest.fixture
def directory(delivery: MailboxDeliveryClient) -> MailboxDirectoryClient:
    return delivery.directory


# -- reachability -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "provider", "path"),
    [
        (TOLVAN, MailboxProvider.KIVRA, "/mailbox/kivra"),
        (PARENT, MailboxProvider.BILLO, "/mailbox/billo"),
        (MYNDIG, MailboxProvider.MIN_MYNDIGHETSPOST, "/mailbox/minmyndighetspost"),
    ],
)
async def test_r_doc_4_each_operator_is_found_and_takes_the_delivery_at_its_service_address(
    directory: MailboxDirectoryClient,
    delivery: MailboxDeliveryClient,
    served: ServedApp,
    recorder: Recorder,
    person: PersonId,
    provider: MailboxProvider,
    path: str,
) -> None:
    found = await directory.lookup([person])
    assert found[person].reachability == MailboxReachability(provider)
    assert found[person].service_address == served.url + path  # the URL the mock is reached at
    receipt = await delivery.deliver(letter(person, f"op-{provider.value}", provider))
    assert receipt.provider is provider and receipt.transaction_id
    assert receipt.delivered_at.tzinfo is not None
    [got] = recorder.delivered(f"op-{provider.value}")
    assert got.operator == OPERATORS[provider.value].id and got.recipient == person.value
    assert got.operator.startswith("16") and len(got.operator) == 12  # an org number, as in the contract


async def test_r_doc_5_no_mailbox_unknown_and_reservnummer_are_no_mailbox(
    directory: MailboxDirectoryClient, recorder: Recorder
) -> None:
    unknown = pnr("198512242242")  # not in the register, nor in any mailbox
    found = await directory.reachability([SAMIR, unknown, RESERV])
    assert found == {SAMIR: NO_MAILBOX, unknown: NO_MAILBOX, RESERV: NO_MAILBOX}
    assert recorder.reachability_calls == [2]  # R-ID-2: a reservnummer is never asked about


async def test_r_doc_5_declined_reads_as_declined_at_the_named_operator(
    directory: MailboxDirectoryClient, delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    found = await directory.reachability([DECLINED])
    assert found[DECLINED] == MailboxReachability(MailboxProvider.KIVRA, declined=True)
    assert not found[DECLINED].deliverable
    with pytest.raises(MailboxRefused) as refused:
        await delivery.deliver(letter(DECLINED, "declined-1"))
    assert refused.value.code == RefusalCode.NOT_REACHABLE
    assert recorder.requests == []  # nothing was sent to the operator


async def test_a_mailbox_that_does_not_accept_the_sender_reads_so_and_gets_nothing(
    directory: MailboxDirectoryClient, delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    found = await directory.reachability([NOT_ACCEPTED])
    assert found[NOT_ACCEPTED] == MailboxReachability(MailboxProvider.BILLO, sender_accepted=False)
    with pytest.raises(MailboxRefused) as refused:
        await delivery.deliver(letter(NOT_ACCEPTED, "not-accepted-1", MailboxProvider.BILLO))
    assert refused.value.code == RefusalCode.SENDER_NOT_ACCEPTED
    assert recorder.requests == []


async def test_more_than_1000_persons_are_asked_in_batches_of_at_most_1000(
    directory: MailboxDirectoryClient, recorder: Recorder
) -> None:
    persons = [TOLVAN, PARENT]
    born = date(1950, 1, 1)
    while len(persons) < 2345:
        day = born.strftime("%Y%m%d")
        persons.append(pnr(day + "123" + luhn_check_digit(day[2:] + "123")))
        born += timedelta(days=1)
    found = await directory.reachability([*persons, TOLVAN])  # a repeat is asked once
    assert recorder.reachability_calls == [1000, 1000, 345]
    assert len(found) == 2345
    assert found[TOLVAN].provider is MailboxProvider.KIVRA and found[PARENT].provider is MailboxProvider.BILLO
    assert sum(r.deliverable for r in found.values()) == 2


async def test_a_batch_size_from_settings_is_honoured(served: ServedApp, recorder: Recorder) -> None:
    async with MailboxDirectoryClient(settings_for(served, batch_size=2)) as small:
        await small.reachability([TOLVAN, PARENT, MYNDIG, SAMIR, DECLINED])
    assert recorder.reachability_calls == [2, 2, 1]


# -- delivery -----------------------------------------------------------------------------------


async def test_r_id_6_the_operator_refuses_a_minor_at_delivery_permanently(
    directory: MailboxDirectoryClient, delivery: MailboxDeliveryClient, recorder: Recorder, counted: Counted
) -> None:
    # The recipient service reports the account; the operator refuses the letter (R-ID-6).
    assert (await directory.reachability([MINOR]))[MINOR].deliverable
    with pytest.raises(MailboxRefused) as refused:
        await delivery.deliver(letter(MINOR, "minor-1"))
    assert refused.value.code == RefusalCode.UNDER_18
    assert refused.value.service_code == str(ErrorCode.RECIPIENT_UNDER_18)
    assert counted.count("/mailbox/kivra") == 1  # an applicationFault is not retried
    assert [r.error_code for r in recorder.requests] == [ErrorCode.RECIPIENT_UNDER_18]
    assert recorder.deliveries == {}


async def test_004_the_delivery_carries_the_document_under_a_neutral_subject_and_neutral_metadata(
    delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    sent = letter(TOLVAN, "neutral-1")
    await delivery.deliver(sent)
    [got] = recorder.delivered("neutral-1")
    assert got.subject == NeutralSubject.LETTER.value
    assert got.body.decode("utf-8") == sent.text
    assert got.content_type.startswith("text/plain")
    assert got.sender_id == "162321000016" and got.sender_name == "Region Stockholm"
    assert got.reference == "neutral-1"  # the message id, nothing about the document
    assert [(a.filename, a.content_type, a.size, a.checksum_ok) for a in got.attachments] == [
        ("bilaga-1.pdf", PDF, len(PDF_BYTES), True)
    ]
    assert "hjärt" not in repr(got.summary())


async def test_a_batch_is_asked_about_in_one_isreachable_and_each_letter_uses_its_answer(
    delivery: MailboxDeliveryClient, recorder: Recorder, counted: Counted
) -> None:
    """Issue 15 item 9: prefetch asks once for a batch (a person twice is asked once); each
    delivery then uses its own letter's answer, once."""
    letters = [
        letter(TOLVAN, "batch-1"),
        letter(TOLVAN, "batch-2"),
        letter(PARENT, "batch-3", MailboxProvider.BILLO),
    ]
    await delivery.prefetch(letters)
    assert recorder.reachability_calls == [2]
    for one in letters:
        await delivery.deliver(one)
    assert counted.count(RECIPIENT_PATH) == 1  # no isReachable per letter
    assert sorted(m for (_, m) in recorder.deliveries) == ["batch-1", "batch-2", "batch-3"]
    await delivery.deliver(letter(TOLVAN, "batch-1"))  # used once: a retry asks afresh
    assert counted.count(RECIPIENT_PATH) == 2


async def test_a_prefetched_letter_is_signed_ahead_and_sent_as_it_would_have_been_built(
    delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    """Issue 15 item 9: prefetch builds and signs each letter while others are in flight; the
    delivery sends those bytes (a valid, signed letter at the operator) and keeps none behind."""
    ahead = letter(TOLVAN, "ahead-1")
    await delivery.prefetch([ahead])
    assert set(delivery._signing) == {"ahead-1"}
    await delivery.deliver(ahead)
    [got] = recorder.delivered("ahead-1")
    assert got.signature_verified
    assert delivery._signing == {}
    # The same letter built at delivery time, unprefetched: the operator sees the same body.
    await delivery.deliver(letter(TOLVAN, "ahead-1"))
    assert recorder.delivered("ahead-1")[0].repeats == 1  # same id, same letter: no refusal
    # A letter refused before sending (no mailbox) leaves no signed copy behind either.
    declined = letter(DECLINED, "ahead-2")
    await delivery.prefetch([declined])
    with pytest.raises(MailboxRefused):
        await delivery.deliver(declined)
    assert delivery._signing == {} and recorder.delivered("ahead-2") == []


async def test_the_same_message_id_twice_is_one_delivery_with_one_receipt(
    delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    first = await delivery.deliver(letter(TOLVAN, "twice-1"))
    again = await delivery.deliver(letter(TOLVAN, "twice-1"))
    # The same transaction; DeliveryResult carries no time, so each receipt is dated on arrival.
    assert (again.transaction_id, again.message_id) == (first.transaction_id, first.message_id)
    [got] = recorder.delivered("twice-1")
    assert got.repeats == 1 and len(recorder.deliveries) == 1


async def test_a_message_id_reused_for_another_letter_is_refused(
    delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    await delivery.deliver(letter(TOLVAN, "reused-1"))
    other = OutgoingLetter("reused-1", TOLVAN, MailboxProvider.KIVRA, "another text")
    with pytest.raises(MailboxRefused) as refused:
        await delivery.deliver(other)
    assert refused.value.code == RefusalCode.INVALID_LETTER
    assert refused.value.service_code == str(ErrorCode.DUPLICATE_MESSAGE_ID)


# -- signatures ---------------------------------------------------------------------------------


async def test_the_signature_verifies_at_the_mock_with_the_senders_certificate(
    delivery: MailboxDeliveryClient, recorder: Recorder
) -> None:
    await delivery.deliver(letter(TOLVAN, "signed-1"))
    [got] = recorder.delivered("signed-1")
    assert got.signature_verified and got.seal_verified  # SignedDelivery and SealedDelivery
    assert got.certificate_sha256 == delivery.identity.fingerprint  # the one in KeyInfo


async def test_the_signature_verifies_against_the_certificate_the_operator_trusts(counted: Counted) -> None:
    identity = throwaway_identity("Region Stockholm")
    recorder = Recorder()
    app = create_app(recorder=recorder, trusted_certificate=identity.certificate_pem, today=lambda: TODAY)
    with ServedApp(app) as served:
        client = MailboxDeliveryClient(settings_for(served), client=counted.client, identity=identity)
        await client.deliver(letter(TOLVAN, "trusted-1"))
    [got] = recorder.delivered("trusted-1")
    assert got.signature_verified and got.seal_verified and got.trusted_certificate
    assert got.certificate_sha256 == identity.fingerprint


async def test_a_delivery_signed_by_a_certificate_the_operator_does_not_trust_is_refused(
    counted: Counted,
) -> None:
    recorder = Recorder()
    trusted = throwaway_identity("Someone else").certificate_pem
    with ServedApp(create_app(recorder=recorder, trusted_certificate=trusted, today=lambda: TODAY)) as served:
        client = MailboxDeliveryClient(settings_for(served), client=counted.client)
        with pytest.raises(MailboxRefused) as refused:
            await client.deliver(letter(TOLVAN, "untrusted-1"))
    assert refused.value.code == RefusalCode.SIGNATURE_INVALID
    assert [(r.signature_verified, r.seal_verified, r.error_code) for r in recorder.requests] == [
        (False, False, ErrorCode.SIGNATURE_INVALID)
    ]
    assert recorder.deliveries == {}


async def test_a_delivery_changed_after_signing_is_refused_as_signature_invalid(
    served: ServedApp, recorder: Recorder
) -> None:
    tampering = Counted(transport=Tamper())
    try:
        client = MailboxDeliveryClient(settings_for(served), client=tampering.client)
        with pytest.raises(MailboxRefused) as refused:
            await client.deliver(letter(TOLVAN, "tampered-1"))
    finally:
        await tampering.client.aclose()
    assert refused.value.code == RefusalCode.SIGNATURE_INVALID
    assert tampering.count("/mailbox/kivra") == 1  # permanent: not retried
    [got] = recorder.requests
    assert not got.signature_verified and got.error_code == ErrorCode.SIGNATURE_INVALID
    assert recorder.deliveries == {}


async def test_deliveries_examined_in_worker_processes_are_checked_the_same(counted: Counted) -> None:
    """``workers``: the same checks off the serving loop (the benchmark runs the mock so):
    a good delivery, a tampered one, the same message id again, a minor, all as inline."""
    identity = throwaway_identity("Region Stockholm")
    recorder = Recorder()
    app = create_app(
        recorder=recorder, trusted_certificate=identity.certificate_pem, today=lambda: TODAY, workers=1
    )
    tampering = Counted(transport=Tamper())
    try:
        with ServedApp(app) as served:
            client = MailboxDeliveryClient(settings_for(served), client=counted.client, identity=identity)
            first = await client.deliver(letter(TOLVAN, "pooled-1"))
            again = await client.deliver(letter(TOLVAN, "pooled-1"))
            with pytest.raises(MailboxRefused) as minor:
                await client.deliver(letter(MINOR, "pooled-2"))
            tampered = MailboxDeliveryClient(settings_for(served), client=tampering.client, identity=identity)
            with pytest.raises(MailboxRefused) as changed:
                await tampered.deliver(letter(TOLVAN, "pooled-3"))
    finally:
        app.state.close()
        await tampering.client.aclose()
    assert again.transaction_id == first.transaction_id
    [got] = recorder.delivered("pooled-1")
    assert got.signature_verified and got.seal_verified and got.trusted_certificate and got.repeats == 1
    assert minor.value.code == RefusalCode.UNDER_18
    assert changed.value.code == RefusalCode.SIGNATURE_INVALID
    assert [(r.message_id, r.error_code) for r in recorder.refused] == [
        ("pooled-2", ErrorCode.RECIPIENT_UNDER_18),
        ("pooled-3", ErrorCode.SIGNATURE_INVALID),
    ]


# -- failures -----------------------------------------------------------------------------------


async def test_a_transient_failure_is_retried_and_then_delivered_once(
    delivery: MailboxDeliveryClient, switches: Switches, recorder: Recorder, counted: Counted
) -> None:
    switches.fail_next = 1  # the first isReachable
    switches.fail_next_delivery = 1  # the first deliverSecure
    receipt = await delivery.deliver(letter(TOLVAN, "retried-1"))
    assert receipt.transaction_id
    assert counted.count(RECIPIENT_PATH) == 2 and counted.count("/mailbox/kivra") == 2
    assert len(recorder.delivered("retried-1")) == 1


async def test_an_error_rate_of_one_is_transient_after_the_retries(
    directory: MailboxDirectoryClient, switches: Switches, counted: Counted
) -> None:
    switches.error_rate = 1.0  # soap:Server Fault without an applicationFault
    with pytest.raises(TransientUpstreamError):
        await directory.reachability([TOLVAN])
    assert counted.count(RECIPIENT_PATH) == FAST["retry_attempts"]


async def test_an_outage_is_a_transient_error_for_reachability_and_delivery(
    directory: MailboxDirectoryClient, delivery: MailboxDeliveryClient, switches: Switches
) -> None:
    switches.outage = True
    with pytest.raises(TransientUpstreamError) as caught:
        await directory.reachability([TOLVAN])
    assert "503" in str(caught.value)
    with pytest.raises(TransientUpstreamError):
        await delivery.deliver(letter(TOLVAN, "outage-1"))


async def test_an_operator_outage_fails_delivery_transiently_and_opens_only_that_operators_breaker(
    served: ServedApp, switches: Switches, counted: Counted
) -> None:
    client = MailboxDeliveryClient(
        settings_for(served, retry_attempts=1, breaker_failure_threshold=1), client=counted.client
    )
    switches.delivery_outage = True
    with pytest.raises(TransientUpstreamError):
        await client.deliver(letter(TOLVAN, "op-outage-1"))
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await client.deliver(letter(TOLVAN, "op-outage-1"))
    assert counted.count("/mailbox/kivra") == 1
    switches.delivery_outage = False
    receipt = await client.deliver(letter(PARENT, "op-outage-2", MailboxProvider.BILLO))  # not Kivra's fault
    assert receipt.provider is MailboxProvider.BILLO
    assert client.breaker(MailboxProvider.KIVRA).state.value == "open"


async def test_a_stopped_service_is_a_transient_error(counted: Counted) -> None:
    served = ServedApp(create_app(today=lambda: TODAY)).start()
    settings = settings_for(served)
    served.stop()
    client = MailboxDirectoryClient(settings, client=counted.client)
    with pytest.raises(TransientUpstreamError) as caught:
        await client.reachability([TOLVAN])
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_the_breaker_opens_per_service_and_fails_fast(
    served: ServedApp, switches: Switches, counted: Counted
) -> None:
    client = MailboxDirectoryClient(
        settings_for(served, retry_attempts=1, breaker_failure_threshold=2), client=counted.client
    )
    switches.outage = True
    for _ in range(2):
        with pytest.raises(TransientUpstreamError):
            await client.reachability([TOLVAN])
    switches.outage = False
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await client.reachability([TOLVAN])
    assert counted.count(RECIPIENT_PATH) == 2


async def test_an_application_fault_from_the_recipient_service_is_permanent(
    served: ServedApp, counted: Counted
) -> None:
    client = MailboxDirectoryClient(settings_for(served), client=counted.client)
    bad = PersonId(IdKind.PERSONNUMMER, "19121212121", OIDS["personnummer"])  # 11 digits: the schema refuses
    with pytest.raises(PermanentUpstreamError, match="SOAP Fault Client"):
        await client.reachability([bad])
    assert counted.count(RECIPIENT_PATH) == 1


async def test_logs_carry_masked_numbers_and_nothing_of_the_letter(
    delivery: MailboxDeliveryClient, switches: Switches
) -> None:
    switches.fail_next_delivery = 1
    with capture_logs() as logs:
        await delivery.deliver(letter(TOLVAN, "logged-1"))
        with pytest.raises(MailboxRefused):
            await delivery.deliver(letter(MINOR, "logged-2"))
    text = repr(logs)
    assert logs and "19121212-****" in text
    for secret in (TOLVAN.value, MINOR.value, "Välkommen", "hjärt", "Tolvan"):
        assert secret not in text
