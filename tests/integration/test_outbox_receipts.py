"""The outbox's receipt transaction, on both backends: a batch of outcomes written together leaves
exactly the rows that the same outcomes recorded one at a time, the way the outbox did before it
wrote them together (settle the row, the receipt on the document, its event, its Communication
rebuilt and checked), leave. R-DOC-4/R-DOC-5: every receipt on its document, each once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from gateway import mappings as mapping_tables
from gateway.domain.documents import Channel, MailboxProvider
from gateway.domain.mailbox import MailboxReceipt
from gateway.service import communications
from gateway.service.outbox import Outbox, _Claim, _Outcome, enqueue
from gateway.store import documents as store
from gateway.store import outbox as outbox_store
from gateway.store.tables import document_events, documents, mailbox_outbox, print_items
from tests.documents_factory import FactoryAttachment, insert_document
from tests.support import PNR_SYSTEM, TOLVAN

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DELIVERED_AT = datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
#: Per letter: how it went. Two letters of one document come last (the one-by-one path).
PLAN = ["delivered", "transient", "delivered", "refused", "delivered", "elsewhere"]


class ReferenceOutbox(Outbox):
    """Outcomes recorded one at a time, receipts as the outbox wrote them before batching."""

    def _record(self, outcomes: list[_Outcome]) -> None:
        now = self._now()
        with self._engine.begin() as conn:
            for outcome in outcomes:
                if outcome.receipt is not None:
                    self._delivered_alone(conn, outcome.claim, outcome.receipt, now)
                elif outcome.transient:
                    self._failed_for_now(conn, outcome.claim, outcome.error or "", now)
                else:
                    self._refused(conn, outcome.claim, outcome.error or "", now)

    def _delivered_alone(
        self, conn: Connection, claim: _Claim, receipt: MailboxReceipt, now: datetime
    ) -> None:
        if not outbox_store.mark_delivered(
            conn,
            claim.id,
            worker_id=self.worker_id,
            transaction_id=receipt.transaction_id,
            delivered_at=receipt.delivered_at,
            now=now,
        ):
            return
        outbox_store.note_document_delivered(
            conn,
            claim.document_id,
            provider=receipt.provider,
            delivered_at=receipt.delivered_at,
            receipt=receipt.transaction_id,
        )
        store.add_event(
            conn,
            claim.document_id,
            now,
            "mailbox-delivered",
            detail=f"{receipt.provider.value}, transaction {receipt.transaction_id}",
        )
        communications.rebuild(conn, claim.document_id, now)


def _documents(engine: Engine, prefix: str) -> list[str]:
    """One routed e-brev per planned letter (its Communication built and stored), each queued."""
    ids = []
    with engine.begin() as conn:
        for i, _ in enumerate(PLAN):
            doc_id = f"{prefix}-{i}"
            insert_document(
                conn,
                document_id=doc_id,
                outcome="deliver",
                rules=("R-DOC-4",),
                reason="to mailbox Kivra",
                sent_at=NOW,
                mailbox_provider="Kivra",
                namespace=prefix,
                document_number=f"D{i}",
                attachments=(FactoryAttachment("provsvar.pdf", "application/pdf", f"%PDF-1.4 {i}".encode()),),
            )
            who = communications.fhir_comm.Identifier(PNR_SYSTEM, TOLVAN)
            store.replace_recipients(
                conn,
                doc_id,
                [communications.fhir_comm.Recipient(Channel.MAILBOX, who, MailboxProvider.KIVRA)],
            )
            communications.rebuild(conn, doc_id, NOW)
            enqueue(
                conn,
                document_id=doc_id,
                message_id=f"{prefix}-m{i}",
                provider=MailboxProvider.KIVRA,
                recipient_system=PNR_SYSTEM,
                recipient_value=TOLVAN,
                now=NOW,
            )
            ids.append(doc_id)
    return ids


def _outcomes(box: Outbox, engine: Engine) -> list[_Outcome]:
    claims = box._claim()
    out = []
    for claim, how in zip(claims, PLAN, strict=True):
        receipt = MailboxReceipt(
            claim.message_id, f"T-{claim.document_id}", MailboxProvider.KIVRA, DELIVERED_AT
        )
        if how == "delivered":
            out.append(_Outcome(claim, receipt=receipt))
        elif how == "transient":
            out.append(_Outcome(claim, error="operator busy", transient=True))
        elif how == "refused":
            out.append(_Outcome(claim, error="6002 under 18"))
        else:  # another worker took the row meanwhile: this receipt changes nothing
            with engine.begin() as conn:
                conn.execute(
                    mailbox_outbox.update()
                    .where(mailbox_outbox.c.id == claim.id)
                    .values(claimed_by="someone else", state="delivered")
                )
            out.append(_Outcome(claim, receipt=receipt))
    return out


def _state(engine: Engine, doc_id: str, prefix: str) -> dict[str, Any]:
    """What a document and its letter look like, with the prefix taken out of ids."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes) and value:
            return orjson.loads(value.decode().replace(prefix, "X"))
        return value.replace(prefix, "X") if isinstance(value, str) else value

    with engine.connect() as conn:
        doc = conn.execute(select(documents).where(documents.c.id == doc_id)).one()._mapping
        events = conn.execute(
            select(document_events.c.at, document_events.c.event, document_events.c.detail)
            .where(document_events.c.document_id == doc_id)
            .order_by(document_events.c.id)
        ).all()
        letter = (
            conn.execute(select(mailbox_outbox).where(mailbox_outbox.c.document_id == doc_id)).one()._mapping
        )
        printed = conn.execute(
            select(print_items.c.reason).where(print_items.c.document_id == doc_id)
        ).scalar_one_or_none()
    # Ids differ by the prefix; the content digest is over the resource, compared as such.
    skip = {"id", "document_id", "message_id", "next_attempt_at", "content_hash", "last_message_id"}
    return {
        "document": {k: plain(v) for k, v in doc.items() if k not in skip},
        "events": [(at, event, plain(detail)) for at, event, detail in events],
        "letter": {k: plain(v) for k, v in letter.items() if k not in skip},
        "printed": printed,
    }


def test_a_batch_of_outcomes_leaves_what_recording_them_one_by_one_leaves(engine: Engine) -> None:
    mappings = mapping_tables.load()
    states = {}
    for prefix, kind in (("batch", Outbox), ("alone", ReferenceOutbox)):
        ids = _documents(engine, prefix)
        box = kind(engine, _NoDelivery(), mappings, batch_size=len(PLAN), clock=lambda: NOW, worker_id="w1")
        box._record(_outcomes(box, engine))
        states[prefix] = [_state(engine, doc_id, prefix) for doc_id in ids]
    assert states["batch"] == states["alone"]
    for i, (s, how) in enumerate(zip(states["batch"], PLAN, strict=True)):
        if how != "delivered":
            continue
        # The receipt is on the document and its Communication, in a new version.
        assert s["document"]["mailbox_receipt"] == f"T-X-{i}"
        assert s["document"]["resource"]["meta"]["versionId"] == "3"
        assert s["document"]["resource"]["extension"][-1]["extension"][1]["valueString"] == f"T-X-{i}"
        assert s["events"][-1][1:] == ("mailbox-delivered", f"Kivra, transaction T-X-{i}")


def test_two_letters_of_one_document_in_one_batch_are_recorded_in_order(engine: Engine) -> None:
    """A newer version queued while the older letter was in flight: both receipts, in order."""
    mappings = mapping_tables.load()
    (doc_id,) = _documents_one(engine)
    box = Outbox(engine, _NoDelivery(), mappings, batch_size=5, clock=lambda: NOW, worker_id="w1")
    first = box._claim()
    with engine.begin() as conn:
        enqueue(
            conn,
            document_id=doc_id,
            message_id="second",
            provider=MailboxProvider.KIVRA,
            recipient_system=PNR_SYSTEM,
            recipient_value=TOLVAN,
            now=NOW,
        )
    second = box._claim()
    outcomes = [
        _Outcome(
            c, receipt=MailboxReceipt(c.message_id, f"T-{c.message_id}", MailboxProvider.KIVRA, DELIVERED_AT)
        )
        for c in first + second
    ]
    box._record(outcomes)
    with engine.connect() as conn:
        doc = conn.execute(select(documents).where(documents.c.id == doc_id)).one()
        events = conn.execute(
            select(document_events.c.detail)
            .where(document_events.c.document_id == doc_id, document_events.c.event == "mailbox-delivered")
            .order_by(document_events.c.id)
        ).scalars()
        assert list(events) == ["Kivra, transaction T-one", "Kivra, transaction T-second"]
    assert doc.mailbox_receipt == "T-second"
    assert orjson.loads(doc.resource)["extension"][-1]["extension"][1]["valueString"] == "T-second"


def _documents_one(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        insert_document(conn, document_id="one-doc", outcome="deliver", rules=("R-DOC-4",), reason="to Kivra")
        communications.rebuild(conn, "one-doc", NOW)
        enqueue(
            conn,
            document_id="one-doc",
            message_id="one",
            provider=MailboxProvider.KIVRA,
            recipient_system=PNR_SYSTEM,
            recipient_value=TOLVAN,
            now=NOW,
        )
    return ["one-doc"]


class _NoDelivery:
    """The port is not used: outcomes are given."""

    async def deliver(self, letter: Any) -> MailboxReceipt:
        raise AssertionError("not called")
