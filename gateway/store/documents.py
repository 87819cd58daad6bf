"""E-documents in the store: the worker's writes and the FHIR Communication reads.

The staff print list and reports read the same tables (``print_list.py``, ``reports.py``).
A document's Communication is rebuilt from its columns whenever one of them changes
(:func:`rebuild`), so every path that changes a document (routing, a read receipt, the 48-hour
rule, a staff release) ends with the same resource and one version bump.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, delete, exists, func, insert, select, update

from gateway.domain.documents import Channel, DocumentKind, MailboxProvider, Outcome
from gateway.domain.letter import Attachment
from gateway.fhir import communication as fhir_comm
from gateway.fhir.appointment import content_hash
from gateway.fhir.search import DateFilter, Token
from gateway.store.identifier_links import patient_clause
from gateway.store.queries import StoredResource, _date_clause
from gateway.store.tables import (
    appointments,
    document_attachments,
    document_events,
    document_recipients,
    documents,
    print_items,
)


@dataclass(frozen=True, slots=True)
class BookingRef:
    """The booking a kallelse is about, as the store holds it."""

    appointment_id: str
    patient_system: str
    patient_value: str
    time_type: str | None


def find_booking(conn: Connection, namespace: str, booking_id: str) -> BookingRef | None:
    row = conn.execute(
        select(
            appointments.c.id,
            appointments.c.patient_system,
            appointments.c.patient_value,
            appointments.c.time_type,
        ).where(appointments.c.namespace == namespace, appointments.c.booking_id == booking_id)
    ).first()
    if row is None:
        return None
    return BookingRef(row.id, row.patient_system, row.patient_value, row.time_type)


def current(conn: Connection, doc_id: str) -> Row[Any] | None:
    return conn.execute(select(documents).where(documents.c.id == doc_id)).first()


def save(conn: Connection, doc_id: str, values: dict[str, Any], *, new: bool) -> None:
    """Insert or update a document's columns (the resource is set by :func:`rebuild`)."""
    if new:
        conn.execute(
            insert(documents).values(
                id=doc_id,
                version_id=0,
                content_hash="",
                resource=b"",
                last_updated=values["created_at"],
                **values,
            )
        )
    else:
        conn.execute(update(documents).where(documents.c.id == doc_id).values(**values))


def replace_attachments(conn: Connection, doc_id: str, attachments: Sequence[Attachment]) -> None:
    conn.execute(delete(document_attachments).where(document_attachments.c.document_id == doc_id))
    if attachments:
        conn.execute(
            insert(document_attachments),
            [
                {
                    "document_id": doc_id,
                    "position": i,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "sha256": hashlib.sha256(a.data).hexdigest(),
                    "data": a.data,
                }
                for i, a in enumerate(attachments, start=1)
            ],
        )


def replace_recipients(conn: Connection, doc_id: str, recipients: Sequence[fhir_comm.Recipient]) -> None:
    conn.execute(delete(document_recipients).where(document_recipients.c.document_id == doc_id))
    if recipients:
        conn.execute(
            insert(document_recipients),
            [
                {
                    "document_id": doc_id,
                    "channel": r.channel.value,
                    "system": r.who.system,
                    "value": r.who.value,
                    "provider": r.provider.value if r.provider else None,
                }
                for r in recipients
            ],
        )


def add_event(
    conn: Connection,
    doc_id: str,
    at: datetime,
    event: str,
    *,
    actor: str | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(document_events).values(document_id=doc_id, at=at, event=event, actor=actor, detail=detail)
    )


def put_on_print_list(
    conn: Connection,
    doc_id: str,
    *,
    unit: str | None,
    kind: str,
    rules: Sequence[str],
    reason: str,
    now: datetime,
    actor: str | None = None,
) -> None:
    """Add the document to the print list, or put it back as not handled (a new version)."""
    found = conn.execute(select(print_items.c.id).where(print_items.c.document_id == doc_id)).first()
    values = {"unit_hsa_id": unit, "kind": kind, "rules": " ".join(rules), "reason": reason, "added_at": now}
    if found is None:
        conn.execute(insert(print_items).values(document_id=doc_id, **values))
    else:
        conn.execute(
            update(print_items)
            .where(print_items.c.id == found.id)
            .values(handled_at=None, handled_by=None, **values)
        )
    add_event(conn, doc_id, now, "print-listed", actor=actor, detail=f"{' '.join(rules)}: {reason}")


def on_print_list(conn: Connection, doc_id: str) -> bool:
    return (
        conn.execute(select(print_items.c.id).where(print_items.c.document_id == doc_id)).first() is not None
    )


def build_facts(
    doc: Mapping[str, Any],
    recipients: Sequence[fhir_comm.Recipient],
    attachments: Sequence[tuple[int, str, str, bytes]],
    *,
    unread_printed: bool,
) -> fhir_comm.CommunicationFacts:
    """The Communication's facts from a document's columns (a row, or the values about to be
    written), who got it, and its attachments as (position, filename, content type, bytes)."""
    doc_id = doc["id"]
    return fhir_comm.CommunicationFacts(
        id=doc_id,
        namespace=doc["namespace"],
        document_number=doc["document_number"],
        kind=DocumentKind(doc["kind"]),
        subject=fhir_comm.Identifier(doc["patient_system"], doc["patient_value"]),
        title=doc["title"],
        text=doc["text"],
        outcome=Outcome(doc["outcome"]),
        rules=tuple(doc["rules"].split()),
        reason=doc["reason"],
        recipients=tuple(recipients),
        appointment_id=doc["appointment_id"],
        unit=fhir_comm.Identifier(fhir_comm.HSA_SYSTEM, doc["unit_hsa_id"]) if doc["unit_hsa_id"] else None,
        unit_name=doc["unit_name"],
        attachments=tuple(
            fhir_comm.AttachmentRef(
                binary_id=f"{doc_id}-{position}",
                filename=filename,
                content_type=content_type,
                size=len(data),
                sha1_b64=base64.b64encode(hashlib.sha1(data).digest()).decode(),  # FHIR: SHA-1
            )
            for position, filename, content_type, data in attachments
        ),
        sent=doc["sent_at"],
        received=doc["read_at"],
        unread_printed=unread_printed,
        mailbox_delivered=doc.get("mailbox_delivered_at"),
        mailbox_receipt=doc.get("mailbox_receipt"),
    )


def rebuild(conn: Connection, doc_id: str, now: datetime) -> bool:
    """Build the document's Communication from its columns; store it as a new version if its
    content changed. Returns whether it changed. Validates (R4B) before writing."""
    row = current(conn, doc_id)
    if row is None:
        raise LookupError(doc_id)
    recipients = conn.execute(
        select(document_recipients)
        .where(document_recipients.c.document_id == doc_id)
        .order_by(document_recipients.c.id)
    ).all()
    attachments = conn.execute(
        select(
            document_attachments.c.position,
            document_attachments.c.filename,
            document_attachments.c.content_type,
            document_attachments.c.data,
        )
        .where(document_attachments.c.document_id == doc_id)
        .order_by(document_attachments.c.position)
    ).all()
    facts = build_facts(
        dict(row._mapping),
        [
            fhir_comm.Recipient(
                Channel(r.channel),
                fhir_comm.Identifier(r.system, r.value),
                MailboxProvider(r.provider) if r.provider else None,
            )
            for r in recipients
        ],
        [(a.position, a.filename, a.content_type, a.data) for a in attachments],
        unread_printed=row.outcome == Outcome.DELIVER.value and on_print_list(conn, doc_id),
    )
    resource = fhir_comm.build_communication(facts)
    label = row.protection if row.restricted else None
    digest = content_hash({"resource": resource, "label": label, "visible": row.visible})
    if digest == row.content_hash:
        return False
    fhir_comm.check(resource)
    version = row.version_id + 1
    conn.execute(
        update(documents)
        .where(documents.c.id == doc_id)
        .values(
            version_id=version,
            last_updated=now,
            content_hash=digest,
            resource=fhir_comm.render(resource, version, now, label),
        )
    )
    return True


# --- reads for the FHIR API -------------------------------------------------------------------


@dataclass(slots=True)
class CommunicationQuery:
    """Repeated parameters are AND, comma-separated values OR (as for Appointment)."""

    subjects: list[Token] = field(default_factory=list)
    recipients: list[Token] = field(default_factory=list)
    categories: list[list[Token]] = field(default_factory=list)
    statuses: list[list[str]] = field(default_factory=list)
    last_updated: list[DateFilter] = field(default_factory=list)
    count: int = 50
    offset: int = 0
    sort_desc: bool = False
    total: bool = True


def _visible() -> ColumnElement[bool]:
    return documents.c.visible.is_(True)


def search_communications(conn: Connection, q: CommunicationQuery) -> tuple[int | None, list[bytes]]:
    """Visible documents only: never a held one, nor a protected person's unless staff released it."""
    where: list[ColumnElement[bool]] = [_visible()]
    for system, value in q.subjects:  # an old number finds the person's documents too (R-ID-5)
        where.append(patient_clause(documents.c.patient_system, documents.c.patient_value, system, value))
    for system, value in q.recipients:
        match = [document_recipients.c.document_id == documents.c.id, document_recipients.c.value == value]
        if system is not None:
            match.append(document_recipients.c.system == system)
        where.append(exists().where(*match))
    for any_of in q.categories:
        kinds = []
        for system, code in any_of:
            kind = fhir_comm.KIND_BY_CODE.get(code)
            if kind is not None and system in (None, fhir_comm.CATEGORY_SYSTEM):
                kinds.append(kind.value)
        where.append(documents.c.kind.in_(kinds))
    for statuses in q.statuses:
        where.append(documents.c.status.in_(statuses))
    for f in q.last_updated:
        where.append(_date_clause(documents.c.last_updated, f))
    total = None
    if q.total:
        total = conn.execute(select(func.count()).select_from(documents).where(*where)).scalar_one()
    if q.count == 0:
        return total, []
    order = documents.c.last_updated.desc() if q.sort_desc else documents.c.last_updated.asc()
    rows = conn.execute(
        select(documents.c.resource)
        .where(*where)
        .order_by(order, documents.c.id)
        .limit(q.count)
        .offset(q.offset)
    ).scalars()
    return total, list(rows)


def get_communication(conn: Connection, doc_id: str) -> StoredResource | None:
    row = conn.execute(
        select(documents.c.resource, documents.c.version_id, documents.c.last_updated).where(
            documents.c.id == doc_id, _visible()
        )
    ).first()
    if row is None:
        return None
    return StoredResource(row.resource, row.version_id, row.last_updated)


@dataclass(frozen=True, slots=True)
class StoredBinary:
    content_type: str
    filename: str
    data: bytes


def get_binary(conn: Connection, binary_id: str) -> StoredBinary | None:
    """``<document id>-<position>``; only for a visible document."""
    doc_id, _, position = binary_id.rpartition("-")
    if not doc_id or not (position.isascii() and position.isdigit()) or len(position) > 9:
        return None
    row = conn.execute(
        select(
            document_attachments.c.content_type, document_attachments.c.filename, document_attachments.c.data
        )
        .join(documents, documents.c.id == document_attachments.c.document_id)
        .where(
            and_(
                document_attachments.c.document_id == doc_id, document_attachments.c.position == int(position)
            )
        )
        .where(_visible())
    ).first()
    if row is None:
        return None
    return StoredBinary(row.content_type, row.filename, row.data)
