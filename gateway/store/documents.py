"""E-documents in the store: the worker's writes and the FHIR Communication reads.

The staff print list and reports read the same tables (``print_list.py``, ``reports.py``).
A document's Communication is rebuilt from its columns whenever one of them changes
(``gateway.service.communications.rebuild``, from :func:`rebuild_inputs`), so every path that
changes a document (routing, a read receipt, the 48-hour rule, a staff release) ends with the
same resource and one version bump.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from gateway.domain.documents import Channel, DocumentKind, MailboxProvider
from gateway.domain.letter import Attachment
from gateway.domain.query import CommunicationQuery
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
    """Insert or update a document's columns (the resource is set by ``service.communications.rebuild``)."""
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


class _Who(Protocol):
    @property
    def system(self) -> str: ...
    @property
    def value(self) -> str: ...


class Recipient(Protocol):
    """Who got a document, as written (``gateway.fhir.communication.Recipient`` is one)."""

    @property
    def channel(self) -> Channel: ...
    @property
    def who(self) -> _Who: ...
    @property
    def provider(self) -> MailboxProvider | None: ...


@dataclass(frozen=True, slots=True)
class StoredRecipient:
    channel: Channel
    system: str
    value: str
    provider: MailboxProvider | None


@dataclass(frozen=True, slots=True)
class RebuildInputs:
    row: Row[Any]
    recipients: list[StoredRecipient]
    #: (position, filename, content type, bytes)
    attachments: list[tuple[int, str, str, bytes]]
    on_print_list: bool


def replace_recipients(conn: Connection, doc_id: str, recipients: Sequence[Recipient]) -> None:
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
    add_events(conn, [Event(doc_id, at, event, actor, detail)])


@dataclass(frozen=True, slots=True)
class Event:
    """One row of a document's history (``document_events``)."""

    document_id: str
    at: datetime
    event: str
    actor: str | None = None
    detail: str | None = None


_ADD_EVENT = insert(document_events)


def add_events(conn: Connection, events: Sequence[Event]) -> None:
    """Append to documents' histories, in order, in one statement (``executemany``)."""
    if events:
        conn.execute(
            _ADD_EVENT,
            [
                {
                    "document_id": e.document_id,
                    "at": e.at,
                    "event": e.event,
                    "actor": e.actor,
                    "detail": e.detail,
                }
                for e in events
            ],
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


def rebuild_inputs(conn: Connection, doc_id: str) -> RebuildInputs:
    """What a document's Communication is built from: its row, who got it, its attachments and
    whether it is on the print list. LookupError when the document is not known."""
    found = rebuild_inputs_many(conn, [doc_id])
    if doc_id not in found:
        raise LookupError(doc_id)
    return found[doc_id]


_IN_CHUNK = 500
_DOCUMENTS_IN = select(documents).where(documents.c.id.in_(bindparam("ids", expanding=True)))
_RECIPIENTS_IN = (
    select(document_recipients)
    .where(document_recipients.c.document_id.in_(bindparam("ids", expanding=True)))
    .order_by(document_recipients.c.id)
)
_ATTACHMENTS_IN = (
    select(
        document_attachments.c.document_id,
        document_attachments.c.position,
        document_attachments.c.filename,
        document_attachments.c.content_type,
        document_attachments.c.data,
    )
    .where(document_attachments.c.document_id.in_(bindparam("ids", expanding=True)))
    .order_by(document_attachments.c.document_id, document_attachments.c.position)
)
_PRINT_LISTED_IN = select(print_items.c.document_id).where(
    print_items.c.document_id.in_(bindparam("ids", expanding=True))
)


def rebuild_inputs_many(conn: Connection, doc_ids: Sequence[str]) -> dict[str, RebuildInputs]:
    """:func:`rebuild_inputs` for several documents by id, in four queries (per 500 ids) instead
    of four per document; documents not known are left out."""
    unique = list(dict.fromkeys(doc_ids))
    rows: dict[str, Row[Any]] = {}
    recipients: dict[str, list[StoredRecipient]] = {}
    attachments: dict[str, list[tuple[int, str, str, bytes]]] = {}
    listed: set[str] = set()
    for at in range(0, len(unique), _IN_CHUNK):
        ids = {"ids": unique[at : at + _IN_CHUNK]}
        rows.update((row.id, row) for row in conn.execute(_DOCUMENTS_IN, ids))
        for r in conn.execute(_RECIPIENTS_IN, ids):
            recipients.setdefault(r.document_id, []).append(
                StoredRecipient(
                    Channel(r.channel), r.system, r.value, MailboxProvider(r.provider) if r.provider else None
                )
            )
        for a in conn.execute(_ATTACHMENTS_IN, ids):
            attachments.setdefault(a.document_id, []).append((a.position, a.filename, a.content_type, a.data))
        listed.update(conn.execute(_PRINT_LISTED_IN, ids).scalars())
    return {
        doc_id: RebuildInputs(
            row=row,
            recipients=recipients.get(doc_id, []),
            attachments=attachments.get(doc_id, []),
            on_print_list=doc_id in listed,
        )
        for doc_id, row in rows.items()
    }


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A document's Communication as it is to be stored: its next version and content digest."""

    doc_id: str
    version: int
    digest: str
    resource: bytes


def write_version(
    conn: Connection, doc_id: str, *, version: int, now: datetime, digest: str, resource: bytes
) -> None:
    write_versions(conn, [NewVersion(doc_id, version, digest, resource)], now=now)


_WRITE_VERSION = (
    update(documents)
    .where(documents.c.id == bindparam("doc_id"))
    .values(
        version_id=bindparam("version"),
        last_updated=bindparam("now"),
        content_hash=bindparam("digest"),
        resource=bindparam("body"),
    )
)


def write_versions(conn: Connection, versions: Sequence[NewVersion], *, now: datetime) -> None:
    """Store new versions, one statement for all (``executemany``)."""
    if versions:
        conn.execute(
            _WRITE_VERSION,
            [
                {"doc_id": v.doc_id, "version": v.version, "now": now, "digest": v.digest, "body": v.resource}
                for v in versions
            ],
        )


# --- reads for the FHIR API -------------------------------------------------------------------


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
    for kinds in q.kinds:
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


@dataclass(frozen=True, slots=True)
class DocumentDetail:
    document: Row[Any]
    recipients: list[Row[Any]]
    print_item: Row[Any] | None
    history: list[Row[Any]]


def detail(engine: Engine, document_id: str) -> DocumentDetail | None:
    """One document for the staff view: its row, recipients, print-list entry and history."""
    with engine.connect() as conn:
        doc = conn.execute(select(documents).where(documents.c.id == document_id)).first()
        if doc is None:
            return None
        recipients = conn.execute(
            select(document_recipients).where(document_recipients.c.document_id == document_id)
        ).all()
        item = conn.execute(select(print_items).where(print_items.c.document_id == document_id)).first()
        history = conn.execute(
            select(document_events)
            .where(document_events.c.document_id == document_id)
            .order_by(document_events.c.id)
        ).all()
    return DocumentDetail(doc, list(recipients), item, list(history))


_HELD_COLUMNS = (
    documents.c.id,
    documents.c.kind,
    documents.c.title,
    documents.c.patient_value,
    documents.c.unit_hsa_id,
    documents.c.unit_name,
    documents.c.rules,
    documents.c.reason,
    documents.c.restricted,
    documents.c.created_at,
    documents.c.booking_id,
)


def held_page(engine: Engine, held: str, *, limit: int, offset: int) -> tuple[int, list[Any]]:
    """Documents with outcome ``held`` waiting for a staff decision, oldest first, and how many."""
    where = documents.c.outcome == held
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(documents).where(where)).scalar_one()
        rows = conn.execute(
            select(*_HELD_COLUMNS)
            .where(where)
            .order_by(documents.c.created_at, documents.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
    return total, list(rows)


def update_document(conn: Connection, doc_id: str, **values: Any) -> None:
    """Set columns of one document (the caller rebuilds its Communication afterwards)."""
    conn.execute(update(documents).where(documents.c.id == doc_id).values(**values))


# --- the worker's document writes (R-BK-3, R-DOC-5) ---------------------------------------------

# Built once with bound parameters (building them per call cost the worker ~8%, bench/README).
_SENT_KALLELSER = select(documents.c.id).where(
    documents.c.appointment_id == bindparam("appointment_id"),
    documents.c.kind == DocumentKind.E_KALLELSE.value,
    documents.c.outdated_at.is_(None),
    documents.c.sent_at.is_not(None),
    documents.c.last_message_id < bindparam("message_id"),
)
_WITH_KALLELSER = (
    select(documents.c.appointment_id)
    .where(
        documents.c.appointment_id.in_(bindparam("ids", expanding=True)),
        documents.c.kind == DocumentKind.E_KALLELSE.value,
    )
    .distinct()
)
_OUTDATE = update(documents).where(documents.c.id == bindparam("b_id"))


def sent_kallelser_before(conn: Connection, appointment_id: str, message_id: int) -> list[str]:
    """The booking's kallelser sent before message ``message_id`` and not yet outdated."""
    return list(
        conn.execute(_SENT_KALLELSER, {"appointment_id": appointment_id, "message_id": message_id})
        .scalars()
        .all()
    )


def mark_outdated(conn: Connection, doc_id: str, now: datetime, reason: str) -> None:
    conn.execute(_OUTDATE, {"b_id": doc_id, "outdated_at": now, "outdated_reason": reason})


def with_kallelser(conn: Connection, appointment_ids: list[str]) -> set[str]:
    """Which of the bookings have any kallelse at all (asked 500 at a time)."""
    found: set[str] = set()
    for at in range(0, len(appointment_ids), 500):
        found.update(conn.execute(_WITH_KALLELSER, {"ids": appointment_ids[at : at + 500]}).scalars())
    return found


def print_due(conn: Connection, now: datetime, *, limit: int) -> list[Any]:
    """Documents whose 48 hours on the platform ran out (R-DOC-5), earliest first."""
    return list(
        conn.execute(
            select(
                documents.c.id,
                documents.c.sent_at,
                documents.c.read_at,
                documents.c.unit_hsa_id,
                documents.c.kind,
            )
            .where(documents.c.print_due_at.is_not(None), documents.c.print_due_at <= now)
            .order_by(documents.c.print_due_at)
            .limit(limit)
        ).all()
    )


def recipient_channels(conn: Connection, doc_id: str) -> list[str]:
    return list(
        conn.execute(select(document_recipients.c.channel).where(document_recipients.c.document_id == doc_id))
        .scalars()
        .all()
    )


def read_state(conn: Connection, doc_id: str) -> Any:
    """A visible document's sent and read times (None when there is no such visible document)."""
    return conn.execute(
        select(
            documents.c.sent_at, documents.c.read_at, documents.c.last_read_at, documents.c.print_due_at
        ).where(documents.c.id == doc_id, documents.c.visible.is_(True))
    ).first()
