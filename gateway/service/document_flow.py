"""What happens to an e-document inside the gateway, on one database connection.

The processing worker calls :func:`process_document` in its write transaction, after the
register, the account service and the mailbox directory were asked (no I/O here but the
store). Routing itself is the pure :func:`gateway.domain.documents.route_document`; this module
turns its decision into rows: the document, who got it, the print list, the history, and the
FHIR Communication (:func:`gateway.service.communications.rebuild`).

Also here, because they change documents the same way:

- :func:`outdate_kallelser` (R-BK-3): a booking changed after its kallelse was sent; the
  kallelse is a letter and stays as it was, staff see it marked outdated.
- :func:`print_unread` (R-DOC-5): platform-only documents unread after 48 hours.
- :func:`mark_read`: the platform says the citizen opened the document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import orjson
import structlog
from sqlalchemy import Connection

from gateway.control_codes import scan
from gateway.domain.accounts import Account
from gateway.domain.booking import BookingAction
from gateway.domain.documents import (
    UNREAD_LIMIT,
    Channel,
    Document,
    DocumentKind,
    MailboxReachability,
    Outcome,
    RoutingDecision,
    UnitExceptions,
    kallelse_outdated_by,
    needs_print_after_unread,
    route_document,
)
from gateway.domain.identity import PersonId
from gateway.domain.letter import DocumentAction, DocumentEvent, JournalDocumentType, document_kind
from gateway.domain.notifications import DeliveredDocument, Policy, Role
from gateway.domain.query import STOCKHOLM
from gateway.domain.register import RegisterRecord, Resolved
from gateway.errors import InvalidRequest, NotFound
from gateway.fhir import communication as fhir_comm
from gateway.mappings import Mappings
from gateway.service import communications, notification_flow, outbox
from gateway.store import documents as store

log = structlog.get_logger(__name__)

#: How far in the future a read time may be (clock skew between the platform and us).
READ_SKEW = timedelta(minutes=5)


class Result(StrEnum):
    PROCESSED = "processed"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Handled:
    """How the message that carried the document ends: its state and the reason if not done."""

    result: Result
    reason: str | None = None
    retry_at: datetime | None = None


DONE = Handled(Result.PROCESSED)


@dataclass(frozen=True, slots=True)
class Circumstances:
    """What the outside systems said about the document's person (asked before the transaction).

    ``person`` is the current number (a changed one followed, R-ID-5); ``record`` is None for a
    reservnummer or a person the register does not know.
    """

    person: PersonId
    record: RegisterRecord | None
    account: Account
    mailbox: MailboxReachability
    unit: UnitExceptions
    #: The register's answer for each guardian and proxy of the account (R-ID-3, R-ID-5).
    proxies: Mapping[PersonId, Resolved] = field(default_factory=dict)


def source_hash(event: DocumentEvent) -> str:
    """The journal's content of one version: a repeat of it changes nothing."""
    body = {
        "type": event.document_type.value,
        "patient": event.patient.value,
        "booking": event.booking_id,
        "title": event.title,
        "text": event.text,
        "unit": [event.unit_hsa_id, event.unit_name],
        "author": event.author,
        "attachments": [
            [a.filename, a.content_type, hashlib.sha256(a.data).hexdigest()] for a in event.attachments
        ],
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def wait_or_fail(received_at: datetime, now: datetime, wait: timedelta, attempts: int, what: str) -> Handled:
    """A document waiting for something (its booking): retry with backoff, fail after ``wait``."""
    if now - received_at >= wait:
        return Handled(Result.FAILED, f"{what}: gave up after {_duration(wait)}")
    backoff = timedelta(seconds=min(300.0, 5.0 * 2 ** min(attempts, 10)))
    return Handled(
        Result.WAITING, f"{what}; tried again until {_duration(wait)} after receipt", now + backoff
    )


def _duration(wait: timedelta) -> str:
    seconds = int(wait.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def process_document(
    conn: Connection,
    message_id: int,
    event: DocumentEvent,
    who: Circumstances,
    mappings: Mappings,
    *,
    now: datetime,
    received_at: datetime,
    attempts: int,
    booking_wait: timedelta,
    notifications: Policy | None = None,
) -> Handled:
    doc_id = fhir_comm.document_id(event.namespace, event.document_number)
    row = store.current(conn, doc_id)
    digest = source_hash(event)
    if row is not None:
        if row.last_message_id > message_id:
            return DONE  # an older version arrived (or was retried) after a newer one
        if row.source_hash == digest:
            return DONE  # the same content again: nothing changes
        if event.action is DocumentAction.NEW:
            return Handled(
                Result.FAILED,
                f"TXA-12 document number {event.document_number!r} is already used for another "
                "document; a new version of a document is sent as MDM^T10",
            )
        if row.patient_value != who.person.value:
            return Handled(Result.FAILED, "MDM^T10 names another patient than the document it replaces")

    kind = DocumentKind.E_KALLELSE
    appointment_id: str | None = None
    if event.document_type is JournalDocumentType.KALLELSE:
        if event.booking_id is None:  # the intake answers AE first; never route one without
            return Handled(Result.FAILED, "kallelse without its booking id (TXA-13)")
        booking = store.find_booking(conn, event.namespace, event.booking_id)
        if booking is None:
            return wait_or_fail(
                received_at,
                now,
                booking_wait,
                attempts,
                f"kallelse for booking {event.namespace}|{event.booking_id} (TXA-13), "
                "not received from the journal",
            )
        if booking.patient_value != who.person.value:
            return Handled(
                Result.FAILED,
                f"TXA-13 booking {event.booking_id!r} belongs to another patient than PID-3: not sent",
            )
        appointment_id = booking.appointment_id
        document = Document.kallelse(time_type_hidden=not mappings.time_type_visible(booking.time_type))
    else:
        codes = scan(event.text)
        kind = document_kind(event.document_type, codes)
        document = Document.letter(kind, codes)

    decision = route_document(
        document,
        person=who.person,
        record=who.record,
        account=who.account,
        mailbox=who.mailbox,
        unit=who.unit,
        proxies=who.proxies,
        today=now.astimezone(STOCKHOLM).date(),
    )
    _write(
        conn,
        message_id,
        event,
        who,
        mappings,
        doc_id,
        row is None,
        kind,
        appointment_id,
        decision,
        digest,
        now,
    )
    if notifications is not None:
        _plan_notices(conn, event, who, mappings, doc_id, row is None, decision, notifications, now)
    log.info(
        "document.routed",
        document_id=doc_id,
        message_id=message_id,
        kind=kind.value,
        outcome=decision.outcome.value,
        rules=" ".join(decision.rules),
        replaced=row is not None,
    )
    return DONE


_NOTICE_ROLES = {Channel.PLATFORM: Role.PATIENT, Channel.GUARDIAN: Role.GUARDIAN, Channel.PROXY: Role.PROXY}


def _plan_notices(
    conn: Connection,
    event: DocumentEvent,
    who: Circumstances,
    mappings: Mappings,
    doc_id: str,
    new: bool,
    decision: RoutingDecision,
    policy: Policy,
    now: datetime,
) -> None:
    """R-NOT-2: notices to the document's platform recipients (R-DOC-4), in this transaction."""
    plan_notices(
        conn,
        doc_id=doc_id,
        person=who.person,
        decision=decision,
        visible=decision.outcome is Outcome.DELIVER and _visible(who, decision),
        direct=event.notify_direct,
        mappings=mappings,
        policy=policy,
        now=now,
        new=new,
    )


def plan_notices(
    conn: Connection,
    *,
    doc_id: str,
    person: PersonId,
    decision: RoutingDecision,
    visible: bool,
    direct: bool,
    mappings: Mappings,
    policy: Policy,
    now: datetime,
    new: bool = True,
) -> None:
    """R-NOT-2 for a document delivered now (routed, or released by staff): a notice to each of
    its platform recipients, planned in the caller's transaction."""
    recipients = tuple(
        (d.recipient, _NOTICE_ROLES[d.channel]) for d in decision.deliveries if d.channel in _NOTICE_ROLES
    )
    if not recipients:
        return
    delivered = DeliveredDocument(
        document_id=doc_id,
        patient=person,
        platform_only=decision.outcome is Outcome.DELIVER and decision.mailbox is None,
        visible=visible,
        recipients=recipients,
        direct=direct,
    )
    notification_flow.plan_document(
        conn, delivered, policy, now, lambda p: mappings.fhir_system_for(p.authority), new=new
    )


def _visible(who: Circumstances, decision: RoutingDecision) -> bool:
    """Served to the platform: a delivered or printed document of a person the register knows,
    unprotected and alive -- the same persons whose bookings are shown (booking_exposure)."""
    record = who.record
    if record is None or record.protected or record.deceased:
        return False
    return decision.outcome in (Outcome.DELIVER, Outcome.PRINT_LIST)


def _write(
    conn: Connection,
    message_id: int,
    event: DocumentEvent,
    who: Circumstances,
    mappings: Mappings,
    doc_id: str,
    new: bool,
    kind: DocumentKind,
    appointment_id: str | None,
    decision: RoutingDecision,
    digest: str,
    now: datetime,
) -> None:
    person = who.person
    record = who.record
    platform_only = decision.outcome is Outcome.DELIVER and decision.mailbox is None
    sent = decision.outcome in (Outcome.DELIVER, Outcome.PRINT_LIST)
    values = {
        "namespace": event.namespace,
        "document_number": event.document_number,
        "document_type": event.document_type.value,
        "kind": kind.value,
        "patient_system": mappings.fhir_system_for(person.authority),
        "patient_value": person.value,
        "journal_patient_value": event.patient.value if event.patient != person else None,
        "booking_id": event.booking_id if appointment_id else None,
        "appointment_id": appointment_id,
        "unit_hsa_id": event.unit_hsa_id,
        "unit_name": event.unit_name,
        "author": event.author,
        "title": event.title,
        "text": event.text,
        "written_at": event.written_at,
        "outcome": decision.outcome.value,
        "rules": " ".join(decision.rules),
        "reason": decision.reason,
        "flags": " ".join(sorted(f.value for f in decision.flags)),
        "mailbox_provider": decision.mailbox.value if decision.mailbox else None,
        "status": fhir_comm.status_for(decision.outcome),
        "sent_at": now if sent else None,
        "read_at": None,
        "last_read_at": None,
        "print_due_at": now + UNREAD_LIMIT if platform_only else None,
        "outdated_at": None,
        "outdated_reason": None,
        "restricted": bool(record is not None and record.protected),
        "protection": record.protection.value if record is not None and record.protected else None,
        "visible": _visible(who, decision),
        "last_message_id": message_id,
        "source_hash": digest,
    }
    if new:
        values["created_at"] = now
    recipients = [
        fhir_comm.Recipient(
            d.channel,
            fhir_comm.Identifier(mappings.fhir_system_for(d.recipient.authority), d.recipient.value),
            d.provider,
        )
        for d in decision.deliveries
    ]
    # Validate the Communication before anything is written: a mapping that makes invalid FHIR
    # fails this message and leaves the store as it was.
    attachments = [(i, a.filename, a.content_type, a.data) for i, a in enumerate(event.attachments, start=1)]
    facts = communications.build_facts(
        {"id": doc_id, **values}, recipients, attachments, unread_printed=False
    )
    fhir_comm.check(fhir_comm.build_communication(facts))
    store.save(conn, doc_id, values, new=new)
    store.replace_attachments(conn, doc_id, event.attachments)
    store.replace_recipients(conn, doc_id, recipients)
    if decision.mailbox is not None:
        outbox.enqueue(
            conn,
            document_id=doc_id,
            message_id=f"{doc_id}.m{message_id}",
            provider=decision.mailbox,
            recipient_system=mappings.fhir_system_for(person.authority),
            recipient_value=person.value,
            now=now,
        )
    store.add_event(conn, doc_id, now, "received" if new else "replaced", detail=f"message {message_id}")
    store.add_event(
        conn, doc_id, now, decision.outcome.value, detail=f"{' '.join(decision.rules)}: {decision.reason}"
    )
    if decision.outcome is Outcome.PRINT_LIST:
        store.put_on_print_list(
            conn,
            doc_id,
            unit=event.unit_hsa_id,
            kind=kind.value,
            rules=decision.rules,
            reason=decision.reason,
            now=now,
        )
    communications.rebuild(conn, doc_id, now)


_OUTDATED_BY = {
    BookingAction.RESCHEDULE: "rescheduled",
    BookingAction.MODIFY: "changed",
    BookingAction.CANCEL: "cancelled",
    BookingAction.DISCONTINUE: "discontinued",
    BookingAction.DELETE: "deleted",
}


def outdate_kallelser(
    conn: Connection, appointment_id: str, action: BookingAction, message_id: int, now: datetime
) -> int:
    """R-BK-3: mark the kallelser already sent for this booking outdated; nothing is re-sent.

    Only kallelser that came before the change (by message order) and were sent (delivered or
    printed); one already outdated keeps its first mark.
    """
    if not kallelse_outdated_by(action):
        return 0
    reason = (
        f"the booking was {_OUTDATED_BY[action]} after this kallelse was sent: send a new kallelse (R-BK-3)"
    )
    ids = store.sent_kallelser_before(conn, appointment_id, message_id)
    for doc_id in ids:
        store.mark_outdated(conn, doc_id, now, reason)
        store.add_event(conn, doc_id, now, "outdated", detail=reason)
        log.info("document.outdated", document_id=doc_id, appointment_id=appointment_id, action=action.value)
    return len(ids)


def outdate_changed(conn: Connection, changes: list[tuple[str, BookingAction, int]], now: datetime) -> int:
    """:func:`outdate_kallelser` for a batch's changed bookings ``(appointment id, action,
    message id)``, in message order; one query first finds which of them have any kallelse at
    all (most have none), and only those are looked at further."""
    wanted = [c for c in changes if kallelse_outdated_by(c[1])]
    if not wanted:
        return 0
    ids = list(dict.fromkeys(c[0] for c in wanted))
    with_kallelser = store.with_kallelser(conn, ids)
    return sum(
        outdate_kallelser(conn, appointment_id, action, message_id, now)
        for appointment_id, action, message_id in wanted
        if appointment_id in with_kallelser
    )


def print_unread(conn: Connection, now: datetime, *, limit: int = 500) -> int:
    """R-DOC-5: documents delivered to the platform only and not opened within 48 hours go to
    the print list. Returns how many were added."""
    rows = store.print_due(conn, now, limit=limit)
    added = 0
    for row in rows:
        channels = store.recipient_channels(conn, row.id)
        store.update_document(conn, row.id, print_due_at=None)
        if row.sent_at is None or not needs_print_after_unread(
            [Channel(c) for c in channels], row.sent_at, row.read_at, now
        ):
            continue
        sent = row.sent_at.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
        store.put_on_print_list(
            conn,
            row.id,
            unit=row.unit_hsa_id,
            kind=row.kind,
            rules=("R-DOC-5",),
            reason=f"delivered to the platform only on {sent} and not opened within 48 hours",
            now=now,
        )
        communications.rebuild(conn, row.id, now)
        added += 1
    if added:
        log.info("documents.unread_print_listed", count=added)
    return added


def mark_read(conn: Connection, doc_id: str, read_at: datetime, now: datetime) -> None:
    """The platform says the citizen (or a guardian or proxy) opened the document at ``read_at``.

    The first opening is ``Communication.received``; the latest is kept for the staff report
    (R-DOC-8). Opened before the 48 hours ran out, it never goes to the print list (R-DOC-5).
    """
    row = store.read_state(conn, doc_id)
    if row is None:
        raise NotFound(f"Communication/{doc_id} is not known")
    if row.sent_at is None:
        raise InvalidRequest(
            f"Communication/{doc_id} was not sent to the platform, so it cannot be read there"
        )
    if read_at > now + READ_SKEW:
        raise InvalidRequest(f"readAt {read_at.isoformat()} is in the future")
    if read_at < row.sent_at:
        raise InvalidRequest(f"readAt {read_at.isoformat()} is before the document was sent")
    first = min(row.read_at, read_at) if row.read_at else read_at
    last = max(row.last_read_at, read_at) if row.last_read_at else read_at
    values: dict[str, object] = {"read_at": first, "last_read_at": last}
    if row.print_due_at is not None and first <= row.print_due_at:
        values["print_due_at"] = None
    store.update_document(conn, doc_id, **values)
    store.add_event(conn, doc_id, now, "read", detail=f"opened at {read_at.isoformat()}")
    communications.rebuild(conn, doc_id, now)
