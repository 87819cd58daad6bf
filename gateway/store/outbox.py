"""The mailbox outbox's rows (``mailbox_outbox``): queueing, claiming, outcomes, staff retries.

The use case (when to claim, how to deliver, backoff, what an outcome means) is
:mod:`gateway.service.outbox`; this module holds its SQL. A claimed batch is read in one
query, its attachments in one more; outcomes are written in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, func, insert, or_, select, update

from gateway.domain.documents import Channel, MailboxProvider
from gateway.domain.letter import Attachment
from gateway.store.tables import document_attachments, document_recipients, documents, mailbox_outbox

PENDING = "pending"
DELIVERED = "delivered"
REFUSED = "refused"
DEAD = "dead"
CANCELLED = "cancelled"
STATES = (PENDING, DELIVERED, REFUSED, DEAD, CANCELLED)


def enqueue(
    conn: Connection,
    *,
    document_id: str,
    message_id: str,
    provider: MailboxProvider,
    recipient_system: str,
    recipient_value: str,
    now: datetime,
) -> None:
    """Queue one letter, cancelling a letter still waiting for the same document."""
    conn.execute(
        update(mailbox_outbox)
        .where(mailbox_outbox.c.document_id == document_id, mailbox_outbox.c.state == PENDING)
        .values(state=CANCELLED, last_error="replaced by a newer version", updated_at=now)
    )
    conn.execute(
        insert(mailbox_outbox).values(
            document_id=document_id,
            message_id=message_id,
            provider=provider.value,
            recipient_system=recipient_system,
            recipient_value=recipient_value,
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class ClaimedLetter:
    """One claimed row with its document's text and attachments."""

    id: int
    document_id: str
    message_id: str
    provider: MailboxProvider
    recipient_value: str
    attempts: int
    text: str
    attachments: tuple[Attachment, ...]


def claim(
    conn: Connection, *, worker_id: str, now: datetime, until: datetime, limit: int
) -> list[ClaimedLetter]:
    """Claim up to ``limit`` due rows for ``worker_id`` until ``until``, in the caller's (short)
    transaction. On PostgreSQL the candidates are picked ``FOR UPDATE SKIP LOCKED``; on SQLite
    the claiming UPDATE repeats the "not claimed" condition (one writer makes it atomic)."""
    free = or_(mailbox_outbox.c.claimed_until.is_(None), mailbox_outbox.c.claimed_until < now)
    due = (
        select(mailbox_outbox.c.id)
        .where(mailbox_outbox.c.state == PENDING, mailbox_outbox.c.next_attempt_at <= now, free)
        .order_by(mailbox_outbox.c.next_attempt_at, mailbox_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        update(mailbox_outbox)
        .where(mailbox_outbox.c.id.in_(ids), mailbox_outbox.c.state == PENDING, free)
        .values(
            claimed_by=worker_id,
            claimed_until=until,
            attempts=mailbox_outbox.c.attempts + 1,
            updated_at=now,
        )
    )
    rows = conn.execute(
        select(
            mailbox_outbox.c.id,
            mailbox_outbox.c.document_id,
            mailbox_outbox.c.message_id,
            mailbox_outbox.c.provider,
            mailbox_outbox.c.recipient_value,
            mailbox_outbox.c.attempts,
            documents.c.text,
        )
        .join(documents, documents.c.id == mailbox_outbox.c.document_id)
        .where(
            mailbox_outbox.c.id.in_(ids),
            mailbox_outbox.c.claimed_by == worker_id,
            mailbox_outbox.c.claimed_until == until,
        )
        .order_by(mailbox_outbox.c.id)
    ).all()
    # Every claimed letter's attachments in one query, not one per letter.
    files: dict[str, list[Attachment]] = {}
    for f in conn.execute(
        select(
            document_attachments.c.document_id,
            document_attachments.c.filename,
            document_attachments.c.content_type,
            document_attachments.c.data,
        )
        .where(document_attachments.c.document_id.in_(sorted({row.document_id for row in rows})))
        .order_by(document_attachments.c.document_id, document_attachments.c.position)
    ):
        files.setdefault(f.document_id, []).append(Attachment(f.filename, f.content_type, f.data))
    return [
        ClaimedLetter(
            row.id,
            row.document_id,
            row.message_id,
            MailboxProvider(row.provider),
            row.recipient_value,
            row.attempts,
            row.text,
            tuple(files.get(row.document_id, ())),
        )
        for row in rows
    ]


def _mine(outbox_id: int, worker_id: str) -> ColumnElement[bool]:
    return and_(mailbox_outbox.c.id == outbox_id, mailbox_outbox.c.claimed_by == worker_id)


#: Built once: the receipt transaction runs it for every delivered letter.
_MARK_DELIVERED = (
    update(mailbox_outbox)
    .where(
        mailbox_outbox.c.id == bindparam("outbox_id"),
        or_(mailbox_outbox.c.claimed_by == bindparam("worker_id"), mailbox_outbox.c.state == PENDING),
    )
    .values(
        state=DELIVERED,
        transaction_id=bindparam("transaction_id"),
        delivered_at=bindparam("delivered_at"),
        claimed_by=None,
        claimed_until=None,
        last_error=None,
        updated_at=bindparam("now"),
    )
)


def mark_delivered(
    conn: Connection,
    outbox_id: int,
    *,
    worker_id: str,
    transaction_id: str,
    delivered_at: datetime,
    now: datetime,
) -> bool:
    """Settle the row as delivered if this worker holds it or it is still pending (whoever
    holds the claim now: the operator's receipt is the same for every send of the message id).
    Returns whether the row changed."""
    changed: int = conn.execute(
        _MARK_DELIVERED,
        {
            "outbox_id": outbox_id,
            "worker_id": worker_id,
            "transaction_id": transaction_id,
            "delivered_at": delivered_at,
            "now": now,
        },
    ).rowcount
    return bool(changed)


@dataclass(frozen=True, slots=True)
class DocumentReceipt:
    """A delivered letter's receipt, as its document keeps it."""

    document_id: str
    provider: MailboxProvider
    delivered_at: datetime
    receipt: str


def note_document_delivered(
    conn: Connection, document_id: str, *, provider: MailboxProvider, delivered_at: datetime, receipt: str
) -> None:
    """The receipt on the document; in a mailbox it counts as read (R-DOC-5: not printed)."""
    note_documents_delivered(conn, [DocumentReceipt(document_id, provider, delivered_at, receipt)])


_NOTE_DELIVERED = (
    update(documents)
    .where(documents.c.id == bindparam("document_id"))
    .values(
        mailbox_provider=bindparam("provider"),
        mailbox_delivered_at=bindparam("delivered_at"),
        mailbox_receipt=bindparam("receipt"),
        print_due_at=None,
    )
)


def note_documents_delivered(conn: Connection, receipts: Sequence[DocumentReceipt]) -> None:
    """:func:`note_document_delivered` for several documents, in one statement (``executemany``)."""
    if receipts:
        conn.execute(
            _NOTE_DELIVERED,
            [
                {
                    "document_id": r.document_id,
                    "provider": r.provider.value,
                    "delivered_at": r.delivered_at,
                    "receipt": r.receipt,
                }
                for r in receipts
            ],
        )


def retry_later(
    conn: Connection, outbox_id: int, *, worker_id: str, retry_at: datetime, error: str, now: datetime
) -> None:
    conn.execute(
        update(mailbox_outbox)
        .where(_mine(outbox_id, worker_id))
        .values(
            next_attempt_at=retry_at,
            claimed_by=None,
            claimed_until=None,
            last_error=error,
            updated_at=now,
        )
    )


def give_up(
    conn: Connection, outbox_id: int, *, worker_id: str, state: str, reason: str, now: datetime
) -> bool:
    """End the row (refused or dead) if this worker holds it; returns whether it changed."""
    changed: int = conn.execute(
        update(mailbox_outbox)
        .where(_mine(outbox_id, worker_id))
        .values(state=state, claimed_by=None, claimed_until=None, last_error=reason, updated_at=now)
    ).rowcount
    return bool(changed)


def unit_and_kind(conn: Connection, document_id: str) -> tuple[str | None, str]:
    row = conn.execute(
        select(documents.c.unit_hsa_id, documents.c.kind).where(documents.c.id == document_id)
    ).one()
    return row.unit_hsa_id, row.kind


def drop_mailbox_recipient(conn: Connection, document_id: str) -> None:
    """The mailbox did not get a copy: it is no provider of the document and no recipient."""
    conn.execute(update(documents).where(documents.c.id == document_id).values(mailbox_provider=None))
    conn.execute(
        delete(document_recipients).where(
            document_recipients.c.document_id == document_id,
            document_recipients.c.channel == Channel.MAILBOX.value,
        )
    )


def list_items(
    conn: Connection, *, state: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """A page of rows, newest first (without ``claimed_by``), and how many match."""
    where = [mailbox_outbox.c.state == state] if state else []
    columns = [c for c in mailbox_outbox.c if c.name not in ("claimed_by",)]
    total: int = conn.execute(select(func.count()).select_from(mailbox_outbox).where(*where)).scalar_one()
    rows = conn.execute(
        select(*columns).where(*where).order_by(mailbox_outbox.c.id.desc()).limit(limit).offset(offset)
    ).all()
    return total, [dict(row._mapping) for row in rows]


def find(conn: Connection, outbox_id: int) -> tuple[str, str] | None:
    """(document id, state) of a row, or None."""
    row = conn.execute(
        select(mailbox_outbox.c.document_id, mailbox_outbox.c.state).where(mailbox_outbox.c.id == outbox_id)
    ).first()
    return None if row is None else (row.document_id, row.state)


def reset(conn: Connection, outbox_id: int, *, now: datetime) -> None:
    """Pending again from the first attempt."""
    conn.execute(
        update(mailbox_outbox)
        .where(mailbox_outbox.c.id == outbox_id)
        .values(
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_by=None,
            claimed_until=None,
            updated_at=now,
        )
    )
