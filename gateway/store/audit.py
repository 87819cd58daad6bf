"""The audit trail's store: a background writer that never loses a row, and the admin's search.

Requests hand their ``AuditEvent`` to ``AuditWriter.record`` (a queue put, no I/O) and answer at
once; one writer thread takes whatever is queued and inserts it in one transaction (group
commit, like the inbox), so a read never waits for an fsync and a burst of reads shares one.
Before writing, it fills in the patient of a read by id (an Appointment, a Communication, a
print-list item, ...) from the row the read was about: the request path stays free of lookups.

A failed write is retried (the rows stay queued, with backoff) rather than dropped; while the
backlog is over ``max_backlog`` the API refuses new accesses to personal data (503) instead of
serving them unlogged. ``stop`` writes what is queued before it returns. See docs/audit.md.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    String,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError

from gateway.store.tables import (
    appointments,
    audit_events,
    documents,
    mailbox_outbox,
    messages,
    print_items,
)

log = structlog.get_logger(__name__)

#: Who the inbound HL7 over MLLP is, in the search: the messages table is its audit record.
MLLP_SCOPE = "journal"
MLLP_PURPOSE = "journalföring"


@dataclass(slots=True)
class AuditEvent:
    at: datetime
    caller: str
    client: str | None
    scope: str | None
    action: str
    resource_type: str
    resource_id: str | None
    patient: str | None
    purpose: str
    method: str
    route: str
    query: str | None
    result: int
    request_id: str
    peer: str | None

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        for name, size in _SIZES.items():
            value = values[name]
            if isinstance(value, str) and len(value) > size:
                values[name] = value[:size]
        return values


_SIZES = {
    name: int(length)
    for name, column in audit_events.c.items()
    if isinstance(column.type, String) and (length := column.type.length) is not None
} | {"query": 4000}


class _Barrier:
    """Queued behind the events it must see written (``flush``)."""

    def __init__(self) -> None:
        self.done = threading.Event()


_Item = AuditEvent | _Barrier | None


class AuditWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 1000,
        max_backlog: int = 50_000,
        retry_max: float = 5.0,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._retry_max = retry_max
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self.failing = False
        #: When the oldest event of the batch being written happened (None: nothing in flight);
        #: the queue is first in, first out, so this is the age of the oldest uncommitted event.
        self.writing_since: datetime | None = None

    def record(self, event: AuditEvent) -> None:
        """Queue one event (no I/O); the writer thread starts with the first."""
        if self._thread is None:
            self._start()
        self._queue.put(event)

    def accepting(self) -> bool:
        """False while the writer cannot keep up or the database refuses it: refuse access then."""
        return self._queue.qsize() < self._max_backlog

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event queued before this call is committed."""
        if self._thread is None:
            return True
        barrier = _Barrier()
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.error("audit.stop_timeout", backlog=self._queue.qsize())

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stopping = False
                thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch: list[AuditEvent] = []
            barriers: list[_Barrier] = []
            stop = first is None
            if first is not None:
                _sort(first, batch, barriers)
            while not stop and len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    _sort(item, batch, barriers)
            if stop:  # drain: everything queued before stop() is written too
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        _sort(item, batch, barriers)
            if batch:
                self.writing_since = min(e.at for e in batch)
                self._write_until_done(batch, giving_up=stop)
                self.writing_since = None
            for barrier in barriers:
                barrier.done.set()
            if stop:
                return

    def _write_until_done(self, batch: list[AuditEvent], *, giving_up: bool) -> None:
        delay = 0.05
        attempts = 0
        resolve = True
        while True:
            attempts += 1
            try:
                with self._engine.begin() as conn:
                    if resolve:
                        write(conn, batch)
                    else:
                        conn.execute(insert(audit_events), [e.row() for e in batch])
            except SQLAlchemyError as exc:  # the database: the rows stay queued, tried again
                self.failing = True
                log.error("audit.write_failed", error=type(exc).__name__, rows=len(batch), attempt=attempts)
                if giving_up and attempts >= 5:
                    log.error("audit.rows_lost_at_stop", rows=len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            except Exception as exc:  # a bug filling in patients: keep the rows, without them
                if not resolve:
                    raise
                log.error("audit.resolve_failed", error=type(exc).__name__, rows=len(batch))
                resolve = False
                continue
            if self.failing:
                log.warning("audit.write_recovered", rows=len(batch), attempts=attempts)
            self.failing = False
            return


def _sort(item: AuditEvent | _Barrier, batch: list[AuditEvent], barriers: list[_Barrier]) -> None:
    if isinstance(item, _Barrier):
        barriers.append(item)
    else:
        batch.append(item)


def write(conn: Connection, events: list[AuditEvent]) -> None:
    """Insert events, first filling in the patient of reads by id (one query per kind)."""
    resolve_patients(conn, events)
    conn.execute(insert(audit_events), [e.row() for e in events])


def _ints(ids: Iterable[str]) -> list[int]:
    # ASCII digits only: str.isdigit() is also true for '³', which int() refuses.
    return [int(i) for i in ids if i.isascii() and i.isdigit() and len(i) < 19]


def _documents_of(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    wanted = list(ids)
    rows = conn.execute(select(documents.c.id, documents.c.patient_value).where(documents.c.id.in_(wanted)))
    return {r.id: r.patient_value for r in rows}


def _appointments(conn: Connection, ids: set[str]) -> dict[str, str]:
    rows = conn.execute(
        select(appointments.c.id, appointments.c.patient_value).where(appointments.c.id.in_(list(ids)))
    )
    return {r.id: r.patient_value for r in rows}


def _binaries(conn: Connection, ids: set[str]) -> dict[str, str]:
    doc_of = {binary: binary.rpartition("-")[0] for binary in ids}  # <document id>-<position>
    patients = _documents_of(conn, set(doc_of.values()))
    return {binary: patients[doc] for binary, doc in doc_of.items() if doc in patients}


def _print_items(conn: Connection, ids: set[str]) -> dict[str, str]:
    rows = conn.execute(
        select(print_items.c.id, documents.c.patient_value)
        .join(documents, documents.c.id == print_items.c.document_id)
        .where(print_items.c.id.in_(_ints(ids)))
    )
    return {str(r.id): r.patient_value for r in rows}


def _messages(conn: Connection, ids: set[str]) -> dict[str, str]:
    rows = conn.execute(
        select(messages.c.id, messages.c.patient).where(
            messages.c.id.in_(_ints(ids)), messages.c.patient.is_not(None)
        )
    )
    return {str(r.id): r.patient for r in rows}


def _letters(conn: Connection, ids: set[str]) -> dict[str, str]:
    rows = conn.execute(
        select(mailbox_outbox.c.id, documents.c.patient_value)
        .join(documents, documents.c.id == mailbox_outbox.c.document_id)
        .where(mailbox_outbox.c.id.in_(_ints(ids)))
    )
    return {str(r.id): r.patient_value for r in rows}


#: How to find the patient a resource is about, by resource type.
_LOOKUPS: dict[str, Callable[[Connection, set[str]], dict[str, str]]] = {
    "Appointment": _appointments,
    "Communication": lambda conn, ids: _documents_of(conn, ids),
    "Binary": _binaries,
    "PrintItem": _print_items,
    "Message": _messages,
    "MailboxLetter": _letters,
}


def resolve_patients(conn: Connection, events: list[AuditEvent]) -> None:
    wanted: dict[str, set[str]] = {}
    for e in events:
        if e.patient is None and e.resource_id and e.resource_type in _LOOKUPS:
            wanted.setdefault(e.resource_type, set()).add(e.resource_id)
    for kind, ids in wanted.items():
        found = _LOOKUPS[kind](conn, ids)
        for e in events:
            if e.patient is None and e.resource_type == kind and e.resource_id in found:
                e.patient = found[e.resource_id]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    patient: str | None = None
    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    count: int = 50
    offset: int = 0


def _trail() -> Any:
    """audit_events and, as the audit record of inbound HL7 over MLLP, the messages table."""
    http = select(
        literal("http").label("source"),
        audit_events.c.id,
        audit_events.c.at,
        audit_events.c.caller,
        audit_events.c.client,
        audit_events.c.scope,
        audit_events.c.action,
        audit_events.c.resource_type,
        audit_events.c.resource_id,
        audit_events.c.patient,
        audit_events.c.purpose,
        audit_events.c.method,
        audit_events.c.route,
        audit_events.c.query,
        audit_events.c.result,
        null().cast(String).label("ack"),
        audit_events.c.request_id,
        audit_events.c.peer,
    )
    mllp = select(
        literal("mllp").label("source"),
        cast(messages.c.id, BigInteger).label("id"),
        messages.c.received_at.label("at"),
        (messages.c.sending_application + literal("|") + messages.c.sending_facility).label("caller"),
        null().cast(String).label("client"),
        literal(MLLP_SCOPE).label("scope"),
        literal("create").label("action"),
        literal("Message").label("resource_type"),
        cast(messages.c.id, String).label("resource_id"),
        messages.c.patient,
        literal(MLLP_PURPOSE).label("purpose"),
        literal("MLLP").label("method"),
        literal("mllp").label("route"),
        null().cast(String).label("query"),
        null().cast(Integer).label("result"),
        messages.c.ack_code.label("ack"),
        messages.c.control_id.label("request_id"),
        messages.c.peer,
    ).where(messages.c.transport == "mllp")
    return union_all(http, mllp).subquery("trail")


def search(conn: Connection, f: AuditFilter) -> tuple[int, list[dict[str, Any]]]:
    """Newest first: HTTP accesses and inbound HL7 over MLLP, with the total for paging."""
    trail = _trail()
    where = []
    if f.patient is not None:
        where.append(trail.c.patient == f.patient)
    if f.caller is not None:
        where.append(trail.c.caller == f.caller)
    if f.since is not None:
        where.append(trail.c.at >= f.since)
    if f.until is not None:
        where.append(trail.c.at < f.until)
    total = int(conn.execute(select(func.count()).select_from(trail).where(*where)).scalar_one())
    rows = conn.execute(
        select(trail)
        .where(*where)
        .order_by(trail.c.at.desc(), trail.c.source, trail.c.id.desc())
        .limit(f.count)
        .offset(f.offset)
    )
    return total, [dict(r._mapping) for r in rows]
