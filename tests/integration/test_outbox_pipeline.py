"""The mailbox outbox at speed (issue 15 item 9), on both backends: one isReachable per claimed
batch (not one per letter), no batch barrier (a slow letter holds its own slot, not the batch),
outcomes recorded in batches. R-DOC-4: every queued letter is tried exactly once.

The claims are real (the store); the delivery port is a scripted fake; what the outbox records is
captured instead of written (the receipt's transaction itself is covered end to end in
``tests/e2e/test_mailbox_outbox.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine

from gateway import mappings as mapping_tables
from gateway.domain.documents import MailboxProvider
from gateway.domain.mailbox import MailboxReceipt, OutgoingLetter, PrefetchingMailboxDelivery
from gateway.errors import TransientUpstreamError
from gateway.service.outbox import Outbox, _Outcome, enqueue
from tests.documents_factory import FactoryAttachment, insert_document
from tests.support import PNR_SYSTEM, TOLVAN

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class ScriptedDelivery:
    """Prefetches and deliveries as they happen; ``hold`` keeps one message id in flight."""

    def __init__(self) -> None:
        self.prefetched: list[list[str]] = []
        self.delivered: list[str] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()
        self.progress = asyncio.Event()

    async def until_delivered(self, count: int) -> None:
        """Wait (no polling) until ``count`` letters were delivered."""
        while len(self.delivered) < count:
            self.progress.clear()
            await self.progress.wait()

    async def prefetch(self, letters: Sequence[OutgoingLetter]) -> None:
        self.prefetched.append([letter.message_id for letter in letters])

    async def deliver(self, letter: OutgoingLetter) -> MailboxReceipt:
        gate = self.hold.get(letter.message_id)
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        if letter.message_id in self.fail:
            raise TransientUpstreamError("operator busy (scripted)")
        self.delivered.append(letter.message_id)
        self.progress.set()
        return MailboxReceipt(letter.message_id, f"T-{letter.message_id}", letter.provider, NOW)


class CapturingOutbox(Outbox):
    """The real pipeline and claims; outcomes captured per recording transaction."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.recorded: list[list[_Outcome]] = []

    def _record(self, outcomes: list[_Outcome]) -> None:
        self.recorded.append(list(outcomes))


def queue(engine: Engine, count: int) -> list[str]:
    ids = []
    with engine.begin() as conn:
        for i in range(count):
            doc = insert_document(conn, outcome="deliver", rules=("R-DOC-4",), reason="to mailbox Kivra")
            enqueue(
                conn,
                document_id=doc.document_id,
                message_id=f"m-{i:03d}",
                provider=MailboxProvider.KIVRA,
                recipient_system=PNR_SYSTEM,
                recipient_value=TOLVAN,
                now=NOW,
            )
            ids.append(f"m-{i:03d}")
    return ids


def outbox(
    engine: Engine, delivery: ScriptedDelivery, *, batch: int, width: int, gather: float = 0.05
) -> CapturingOutbox:
    return CapturingOutbox(
        engine,
        delivery,
        mapping_tables.load(),
        batch_size=batch,
        concurrency=width,
        record_gather=gather,
        clock=lambda: NOW,
    )


def test_the_scripted_port_is_a_prefetching_one() -> None:
    assert isinstance(ScriptedDelivery(), PrefetchingMailboxDelivery)


async def test_r_doc_4_one_isreachable_per_claimed_batch_and_every_letter_once(engine: Engine) -> None:
    ids = queue(engine, 23)
    delivery = ScriptedDelivery()
    box = outbox(engine, delivery, batch=5, width=3)
    assert await box.drain() == 23
    assert sorted(delivery.delivered) == ids  # each exactly once
    assert sorted(m for batch in delivery.prefetched for m in batch) == ids
    assert len(delivery.prefetched) == 5  # 5 + 5 + 5 + 5 + 3: one question per claimed batch
    assert sum(len(r) for r in box.recorded) == 23


async def test_a_slow_letter_does_not_hold_its_batch_nor_the_next_ones(engine: Engine) -> None:
    ids = queue(engine, 12)
    delivery = ScriptedDelivery()
    slow = asyncio.Event()
    delivery.hold["m-000"] = slow  # the very first letter of the first batch
    box = outbox(engine, delivery, batch=4, width=2)
    drained = asyncio.create_task(box.drain())
    await asyncio.wait_for(delivery.until_delivered(11), 10)  # all others, later batches too
    assert "m-000" not in delivery.delivered and not drained.done()
    assert len(delivery.prefetched) >= 3  # batches kept being claimed past the slow letter
    slow.set()
    assert await drained == 12
    assert sorted(delivery.delivered) == ids


async def test_the_next_batch_is_asked_about_while_a_round_still_waits_for_a_slot(engine: Engine) -> None:
    """Claiming looks ahead by a round: with every letter held, the batch after the first is
    claimed and prefetched (its isReachable answered before the slots run dry), not a third."""
    ids = queue(engine, 12)
    delivery = ScriptedDelivery()
    gate = asyncio.Event()
    delivery.hold = {message_id: gate for message_id in ids}
    box = outbox(engine, delivery, batch=4, width=2)
    drained = asyncio.create_task(box.drain())
    for _ in range(500):
        if len(delivery.prefetched) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # time for a wrong third claim to show
    assert delivery.prefetched == [ids[:4], ids[4:8]] and delivery.delivered == []
    gate.set()
    assert await drained == 12
    assert sorted(delivery.delivered) == ids


async def test_outcomes_are_recorded_in_batches_transient_ones_too(engine: Engine) -> None:
    queue(engine, 20)
    delivery = ScriptedDelivery()
    delivery.fail = {"m-003", "m-017"}
    box = outbox(engine, delivery, batch=10, width=8)
    assert await box.drain() == 20
    recorded = [o for batch in box.recorded for o in batch]
    assert len(recorded) == 20 and len(box.recorded) < 20  # fewer transactions than letters
    assert sorted(o.claim.message_id for o in recorded if o.transient) == ["m-003", "m-017"]
    assert all(o.receipt is not None for o in recorded if not o.transient)


async def test_letters_finishing_while_others_fly_are_written_together(engine: Engine) -> None:
    """The writer lets finished letters gather while others are in flight, up to a batch: four
    letters finishing one after another are one transaction, written as the fourth finishes
    (not after the gather time, here far longer than the test)."""
    ids = queue(engine, 4)
    delivery = ScriptedDelivery()
    gates = {message_id: asyncio.Event() for message_id in ids}
    delivery.hold = dict(gates)
    box = outbox(engine, delivery, batch=4, width=4, gather=30.0)
    drained = asyncio.create_task(box.drain())
    for message_id in ids:
        await asyncio.sleep(0.02)
        gates[message_id].set()
    assert await asyncio.wait_for(drained, 10) == 4
    assert [[o.claim.message_id for o in r] for r in box.recorded] == [ids]


async def test_with_nothing_in_flight_a_finished_letter_is_written_at_once(engine: Engine) -> None:
    queue(engine, 1)
    box = outbox(engine, ScriptedDelivery(), batch=4, width=4, gather=30.0)
    assert await asyncio.wait_for(box.drain(), 10) == 1
    assert len(box.recorded) == 1


async def test_drain_once_claims_one_batch_and_records_it_in_one_transaction(engine: Engine) -> None:
    queue(engine, 7)
    delivery = ScriptedDelivery()
    box = outbox(engine, delivery, batch=5, width=2)
    assert await box.drain_once() == 5
    assert delivery.prefetched == [["m-000", "m-001", "m-002", "m-003", "m-004"]]
    assert [len(r) for r in box.recorded] == [5]


async def test_run_stops_after_recording_what_is_in_flight(engine: Engine) -> None:
    queue(engine, 6)
    delivery = ScriptedDelivery()
    box = outbox(engine, delivery, batch=3, width=3)
    stop, wake = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(box.run(stop, wake, poll_interval=0.01))
    await asyncio.wait_for(delivery.until_delivered(6), 10)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert sorted(delivery.delivered) == [f"m-{i:03d}" for i in range(6)]
    assert sum(len(r) for r in box.recorded) == 6  # nothing in flight was left unrecorded


async def test_each_claimed_letter_carries_its_own_attachments_in_order(engine: Engine) -> None:
    """A batch's attachments are read in one query: each letter still gets exactly its own."""
    files = {
        "a-0": (),
        "a-1": (FactoryAttachment("one.pdf", "application/pdf", b"%PDF one"),),
        "a-2": (
            FactoryAttachment("first.pdf", "application/pdf", b"%PDF first"),
            FactoryAttachment("second.pdf", "application/pdf", b"%PDF second"),
        ),
    }
    with engine.begin() as conn:
        for message_id, attachments in files.items():
            doc = insert_document(conn, outcome="deliver", rules=("R-DOC-4",), attachments=attachments)
            enqueue(
                conn,
                document_id=doc.document_id,
                message_id=message_id,
                provider=MailboxProvider.KIVRA,
                recipient_system=PNR_SYSTEM,
                recipient_value=TOLVAN,
                now=NOW,
            )
    box = outbox(engine, ScriptedDelivery(), batch=10, width=2)
    claims = box._claim()
    assert {c.message_id: [(a.filename, a.data) for a in c.attachments] for c in claims} == {
        m: [(a.filename, a.data) for a in attachments] for m, attachments in files.items()
    }
