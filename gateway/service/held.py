"""Held documents (R-ID-4, R-ID-3, R-ID-7): staff release them, or send them to the print list.

A held document waits for a person's decision: a kallelse for a protected person is sent only
after staff agreed with the person how to call them (000); a document for someone the register
does not know waits until staff know who it is. Releasing asks the account service and the
mailbox directory now (they may have changed since the hold) and routes the document to whoever
can take it. Both actions name who decided and why, and both are kept in the document's history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine

from gateway.control_codes import scan
from gateway.domain.accounts import AccountDirectory, no_account
from gateway.domain.documents import (
    NO_MAILBOX,
    UNREAD_LIMIT,
    Document,
    DocumentKind,
    MailboxDirectory,
    Outcome,
    RoutingDecision,
    UnitExceptions,
    route_released,
)
from gateway.domain.identity import PersonId
from gateway.domain.notifications import Policy
from gateway.domain.query import STOCKHOLM
from gateway.domain.register import PopulationRegister, Resolved, resolve
from gateway.errors import InvalidRequest, NotFound
from gateway.fhir import communication as fhir_comm
from gateway.mappings import Mappings
from gateway.service import communications, document_flow, outbox
from gateway.store import documents as store

log = structlog.get_logger(__name__)


def list_held(engine: Engine, *, limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Documents waiting for a staff decision, oldest first."""
    total, rows = store.held_page(engine, Outcome.HOLD.value, limit=limit, offset=offset)
    return total, [
        {
            "id": r.id,
            "kind": r.kind,
            "title": r.title,
            "personnummer": r.patient_value,
            "unit": r.unit_hsa_id,
            "unit_name": r.unit_name,
            "rules": r.rules.split(),
            "reason": r.reason,
            "protected": r.restricted,
            "received_at": r.created_at.isoformat(),
            "booking_id": r.booking_id,
        }
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Decision:
    """What staff did with a held document."""

    document_id: str
    outcome: Outcome
    rules: tuple[str, ...]
    reason: str


def _held(conn: Any, doc_id: str) -> Any:
    row = store.current(conn, doc_id)
    if row is None:
        raise NotFound(f"document {doc_id} is not known")
    if row.outcome != Outcome.HOLD.value:
        raise InvalidRequest(f"document {doc_id} is not held (it is {row.outcome})")
    return row


def _check(by: str, why: str) -> None:
    if not by.strip():
        raise InvalidRequest("'by' (who decides) is required")
    if not why.strip():
        raise InvalidRequest("'why' (the reason for the decision) is required")


async def release(
    engine: Engine,
    doc_id: str,
    *,
    by: str,
    why: str,
    accounts: AccountDirectory,
    mailbox: MailboxDirectory,
    register: PopulationRegister,
    notifications: Policy | None = None,
    mappings: Mappings,
    unit_rules: Any,
    now: datetime,
) -> Decision:
    """Route a held document to its recipients now (or the print list when no one can take it)."""
    _check(by, why)
    with engine.connect() as conn:
        row = _held(conn, doc_id)
    person = mappings.recognise(row.patient_value)
    proxies: dict[PersonId, Resolved] = {}
    if person.is_reservnummer:
        account = no_account(person)
        reach = None
    else:
        account = await accounts.account(person)
        reach = (await mailbox.reachability([person])).get(person)
        # R-ID-3: every guardian and proxy is checked in the register before a copy names them.
        named = [p.person for p in account.proxies if not p.blocked]
        answers = await asyncio.gather(*(resolve(register, p) for p in named))
        proxies = dict(zip(named, answers, strict=True))
    kind = DocumentKind(row.kind)
    document = (
        Document.kallelse(time_type_hidden=False)
        if not kind.is_letter
        else Document.letter(kind, scan(row.text))
    )
    units: UnitExceptions = unit_rules(row.unit_hsa_id)
    decision = route_released(
        document,
        person=person,
        account=account,
        mailbox=reach or NO_MAILBOX,
        unit=units,
        proxies=proxies,
        today=now.astimezone(STOCKHOLM).date(),
        staff=by,
        why=why,
    )
    with engine.begin() as conn:
        _held(conn, doc_id)  # still held: two staff deciding at once, the second is told
        _apply(conn, row, decision, mappings, now, by, why, "released")
        if notifications is not None and decision.outcome is Outcome.DELIVER:
            # R-NOT-2: released to the platform, it is a new message for its recipients.
            document_flow.plan_notices(
                conn,
                doc_id=doc_id,
                person=person,
                decision=decision,
                visible=True,
                direct=False,
                mappings=mappings,
                policy=notifications,
                now=now,
            )
    log.info("document.released", document_id=doc_id, outcome=decision.outcome.value)
    return Decision(doc_id, decision.outcome, decision.rules, decision.reason)


def send_to_print_list(
    engine: Engine, doc_id: str, *, by: str, why: str, mappings: Mappings, now: datetime
) -> Decision:
    """Print a held document instead: staff send it on paper themselves."""
    _check(by, why)
    decision = RoutingDecision(Outcome.PRINT_LIST, ("R-ID-4",), f"sent to the print list by {by}: {why}")
    with engine.begin() as conn:
        row = _held(conn, doc_id)
        _apply(conn, row, decision, mappings, now, by, why, "held-printed")
    log.info("document.held_printed", document_id=doc_id)
    return Decision(doc_id, decision.outcome, decision.rules, decision.reason)


def _apply(
    conn: Any,
    row: Any,
    decision: RoutingDecision,
    mappings: Mappings,
    now: datetime,
    by: str,
    why: str,
    event: str,
) -> None:
    """Write a staff decision. The document is served to the platform only when it was released
    to someone there; printed, it stays out of the platform as it was while held."""
    recipients = [
        fhir_comm.Recipient(
            d.channel,
            fhir_comm.Identifier(mappings.fhir_system_for(d.recipient.authority), d.recipient.value),
            d.provider,
        )
        for d in decision.deliveries
    ]
    platform_only = decision.outcome is Outcome.DELIVER and decision.mailbox is None
    store.update_document(
        conn,
        row.id,
        outcome=decision.outcome.value,
        rules=" ".join(decision.rules),
        reason=decision.reason,
        status=fhir_comm.status_for(decision.outcome),
        mailbox_provider=decision.mailbox.value if decision.mailbox else None,
        sent_at=now,
        print_due_at=now + UNREAD_LIMIT if platform_only else None,
        visible=decision.outcome is Outcome.DELIVER,
    )
    store.replace_recipients(conn, row.id, recipients)
    if decision.mailbox is not None:
        outbox.enqueue(
            conn,
            document_id=row.id,
            message_id=f"{row.id}.r{int(now.timestamp() * 1000)}",
            provider=decision.mailbox,
            recipient_system=row.patient_system,
            recipient_value=row.patient_value,
            now=now,
        )
    store.add_event(conn, row.id, now, event, actor=by, detail=why)
    if decision.outcome is Outcome.PRINT_LIST:
        store.put_on_print_list(
            conn,
            row.id,
            unit=row.unit_hsa_id,
            kind=row.kind,
            rules=decision.rules,
            reason=decision.reason,
            now=now,
            actor=by,
        )
    communications.rebuild(conn, row.id, now)
