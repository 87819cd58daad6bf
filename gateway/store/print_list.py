"""The staff print list (utskriftslista, R-DOC-5, R-DOC-9): list, mark handled, un-mark, history.

The processing worker puts documents on the list (``print_items``); staff work it here. Every
change appends a ``document_events`` row (``print-handled`` / ``print-unhandled``, actor = who),
so the history is kept even when an item is marked and un-marked many times.

Decisions:

- **Order.** The open list is a work queue: the item waiting longest comes first (``added_at``,
  then id, ascending). The handled list is a history: the latest handled first. ``all`` shows
  the latest added first. Paging is ``limit``/``offset`` over that order, with the total.
- **Marking is all or nothing per request.** An unknown id fails the whole request with
  :class:`~gateway.errors.NotFound` naming every unknown id, and nothing changes. An item
  already in the asked state stays as it was (its ``handled_at``/``handled_by`` are not
  overwritten, no event is written) and is reported as unchanged. The UPDATE carries the
  state in its WHERE clause, so two staff marking the same item at once change it once.
- **Protected persons (R-ID-3).** The router holds their documents rather than printing them,
  so they are rarely here; one that is (staff released it to the print list) is listed like any
  other with ``restricted`` set, so staff see the person is protected before posting it. Only
  the register's name and address are secret (R-ID-3), and the print list never shows them: it
  has no name or address, only the document's own number, title and text.
- Personnummer are in the rows this module returns (staff views, R-DOC-8); callers must not
  log them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Connection, Row, func, select, update

from gateway.errors import InvalidRequest, NotFound
from gateway.print_pdf import PrintableDocument, PrintAttachment
from gateway.store.tables import document_attachments, document_events, documents, print_items

State = Literal["open", "handled", "all"]
STATES: tuple[str, ...] = get_args(State)

#: The events this module writes; others in a document's history come from the worker.
HANDLED = "print-handled"
UNHANDLED = "print-unhandled"

#: ``print_items.handled_by`` and ``document_events.actor`` are 120 characters.
ACTOR_MAX = 120


@dataclass(frozen=True, slots=True)
class PrintItem:
    """One print-list item with what staff need to know of its document."""

    id: int
    document_id: str
    added_at: datetime
    kind: str
    unit_hsa_id: str | None
    unit_name: str | None
    title: str
    patient_system: str
    patient_value: str
    rules: tuple[str, ...]
    reason: str
    handled_at: datetime | None
    handled_by: str | None
    outdated_at: datetime | None
    outdated_reason: str | None
    restricted: bool

    @property
    def handled(self) -> bool:
        return self.handled_at is not None


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    at: datetime
    event: str
    actor: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    position: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class PrintListFilter:
    state: State = "open"
    kind: str | None = None
    unit_hsa_id: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class MarkResult:
    """``changed``: the ids this request changed; ``unchanged``: already in the asked state."""

    changed: tuple[int, ...]
    unchanged: tuple[int, ...]


_ITEM_COLUMNS = (
    print_items.c.id,
    print_items.c.document_id,
    print_items.c.added_at,
    print_items.c.kind,
    print_items.c.unit_hsa_id,
    documents.c.unit_name,
    documents.c.title,
    documents.c.patient_system,
    documents.c.patient_value,
    print_items.c.rules,
    print_items.c.reason,
    print_items.c.handled_at,
    print_items.c.handled_by,
    documents.c.outdated_at,
    documents.c.outdated_reason,
    documents.c.restricted,
)

# An item whose document row is missing is still listed (outer join), so it can be handled.
_FROM = print_items.outerjoin(documents, documents.c.id == print_items.c.document_id)


def split_rules(rules: str | None) -> tuple[str, ...]:
    """Rule ids as stored (``R-DOC-3,R-DOC-5``; spaces or commas) as a tuple."""
    return tuple(r for r in (rules or "").replace(",", " ").split() if r)


def _item(row: Row[*tuple[Any, ...]]) -> PrintItem:
    return PrintItem(
        id=row.id,
        document_id=row.document_id,
        added_at=row.added_at,
        kind=row.kind,
        unit_hsa_id=row.unit_hsa_id,
        unit_name=row.unit_name,
        title=row.title or "",
        patient_system=row.patient_system or "",
        patient_value=row.patient_value or "",
        rules=split_rules(row.rules),
        reason=row.reason,
        handled_at=row.handled_at,
        handled_by=row.handled_by,
        outdated_at=row.outdated_at,
        outdated_reason=row.outdated_reason,
        restricted=bool(row.restricted),
    )


def list_items(conn: Connection, f: PrintListFilter) -> tuple[int, list[PrintItem]]:
    """The items matching ``f`` (total before paging, and the page)."""
    if f.state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    where: list[ColumnElement[bool]] = []
    if f.state == "open":
        where.append(print_items.c.handled_at.is_(None))
    elif f.state == "handled":
        where.append(print_items.c.handled_at.is_not(None))
    if f.kind:
        where.append(print_items.c.kind == f.kind)
    if f.unit_hsa_id:
        where.append(print_items.c.unit_hsa_id == f.unit_hsa_id)
    total = conn.execute(select(func.count()).select_from(print_items).where(*where)).scalar_one()
    if f.state == "open":
        order = (print_items.c.added_at.asc(), print_items.c.id.asc())
    elif f.state == "handled":
        order = (print_items.c.handled_at.desc(), print_items.c.id.desc())
    else:
        order = (print_items.c.added_at.desc(), print_items.c.id.desc())
    rows = conn.execute(
        select(*_ITEM_COLUMNS)
        .select_from(_FROM)
        .where(*where)
        .order_by(*order)
        .limit(f.limit)
        .offset(f.offset)
    ).all()
    return total, [_item(r) for r in rows]


def get_item(conn: Connection, item_id: int) -> PrintItem | None:
    row = conn.execute(select(*_ITEM_COLUMNS).select_from(_FROM).where(print_items.c.id == item_id)).first()
    return _item(row) if row is not None else None


def get_items(conn: Connection, item_ids: Iterable[int]) -> list[PrintItem]:
    """The items with these ids, in the order asked (unknown ids left out)."""
    ids = list(dict.fromkeys(item_ids))
    rows = conn.execute(select(*_ITEM_COLUMNS).select_from(_FROM).where(print_items.c.id.in_(ids))).all()
    by_id = {r.id: _item(r) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def history(conn: Connection, document_id: str) -> list[HistoryEvent]:
    """Everything that happened to the document, oldest first (the worker's events and ours)."""
    rows = conn.execute(
        select(
            document_events.c.at, document_events.c.event, document_events.c.actor, document_events.c.detail
        )
        .where(document_events.c.document_id == document_id)
        .order_by(document_events.c.id)
    ).all()
    return [HistoryEvent(r.at, r.event, r.actor, r.detail) for r in rows]


def attachments(conn: Connection, document_id: str) -> list[AttachmentInfo]:
    """The document's attachments without their bytes, in message order."""
    t = document_attachments
    rows = conn.execute(
        select(t.c.position, t.c.filename, t.c.content_type, func.length(t.c.data).label("size"))
        .where(t.c.document_id == document_id)
        .order_by(t.c.position, t.c.id)
    ).all()
    return [AttachmentInfo(r.position, r.filename, r.content_type, int(r.size or 0)) for r in rows]


def check_actor(by: str) -> str:
    """Who acts, as stored: trimmed, not empty, at most ACTOR_MAX characters."""
    actor = by.strip()
    if not actor:
        raise InvalidRequest("by: say who marks the items (a user id or name)")
    if len(actor) > ACTOR_MAX:
        raise InvalidRequest(f"by: at most {ACTOR_MAX} characters")
    return actor


def mark_handled(
    conn: Connection, item_ids: Sequence[int], by: str, *, now: datetime | None = None
) -> MarkResult:
    """R-DOC-9: mark the items handled by ``by``; one or many, in the caller's transaction."""
    return _mark(conn, item_ids, by, handled=True, now=now)


def mark_unhandled(
    conn: Connection, item_ids: Sequence[int], by: str, *, now: datetime | None = None
) -> MarkResult:
    """R-DOC-9: put handled items back on the open list; the earlier handling stays in history."""
    return _mark(conn, item_ids, by, handled=False, now=now)


def _mark(
    conn: Connection, item_ids: Sequence[int], by: str, *, handled: bool, now: datetime | None
) -> MarkResult:
    actor = check_actor(by)
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        raise InvalidRequest("ids: name at least one print-list item")
    at = now or datetime.now(UTC)
    known = set(conn.execute(select(print_items.c.id).where(print_items.c.id.in_(ids))).scalars())
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise NotFound(f"print-list item {', '.join(str(i) for i in unknown)} not known; nothing was changed")
    if handled:
        stmt = (
            update(print_items)
            .where(print_items.c.id.in_(ids), print_items.c.handled_at.is_(None))
            .values(handled_at=at, handled_by=actor)
        )
    else:
        stmt = (
            update(print_items)
            .where(print_items.c.id.in_(ids), print_items.c.handled_at.is_not(None))
            .values(handled_at=None, handled_by=None)
        )
    changed_rows = conn.execute(stmt.returning(print_items.c.id, print_items.c.document_id)).all()
    changed = {r.id: r.document_id for r in changed_rows}
    if changed:
        conn.execute(
            document_events.insert(),
            [
                {
                    "document_id": changed[i],
                    "at": at,
                    "event": HANDLED if handled else UNHANDLED,
                    "actor": actor,
                    "detail": f"print-list item {i}",
                }
                for i in ids
                if i in changed
            ],
        )
    return MarkResult(
        changed=tuple(i for i in ids if i in changed),
        unchanged=tuple(i for i in ids if i not in changed),
    )


def printable(conn: Connection, item: PrintItem) -> PrintableDocument | None:
    """The item's letter and attachments as they go on paper; None when the document is gone."""
    doc = conn.execute(
        select(
            documents.c.title,
            documents.c.text,
            documents.c.unit_name,
            documents.c.written_at,
            documents.c.created_at,
        ).where(documents.c.id == item.document_id)
    ).first()
    if doc is None:
        return None
    files = conn.execute(
        select(
            document_attachments.c.filename,
            document_attachments.c.content_type,
            document_attachments.c.data,
        )
        .where(document_attachments.c.document_id == item.document_id)
        .order_by(document_attachments.c.position, document_attachments.c.id)
    ).all()
    return PrintableDocument(
        title=doc.title,
        text=doc.text,
        date=doc.written_at or doc.created_at,
        unit_name=doc.unit_name,
        attachments=[PrintAttachment(f.filename, f.content_type, f.data) for f in files],
    )
