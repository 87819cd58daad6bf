"""Staff view of one e-document: where it went, why, and everything that happened to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from gateway.api.deps import StoreDep
from gateway.errors import NotFound
from gateway.store import documents as store_documents

router = APIRouter(tags=["Staff"])


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/documents/{document_id}", summary="One e-document: routing decision, recipients, history")
def read_document(document_id: str, store: StoreDep) -> JSONResponse:
    found = store_documents.detail(store, document_id)
    if found is None:
        raise NotFound(f"document {document_id} is not known")
    doc, recipients, item, history = found.document, found.recipients, found.print_item, found.history
    return JSONResponse(
        {
            "id": doc.id,
            "document_number": f"{doc.namespace}|{doc.document_number}",
            "kind": doc.kind,
            "title": doc.title,
            "personnummer": doc.patient_value,
            "journal_personnummer": doc.journal_patient_value,
            "booking_id": doc.booking_id,
            "unit": doc.unit_hsa_id,
            "unit_name": doc.unit_name,
            "outcome": doc.outcome,
            "rules": doc.rules.split(),
            "reason": doc.reason,
            "flags": doc.flags.split(),
            "status": doc.status,
            "mailbox": doc.mailbox_provider,
            "recipients": [{"channel": r.channel, "id": r.value, "provider": r.provider} for r in recipients],
            "sent_at": _iso(doc.sent_at),
            "read_at": _iso(doc.read_at),
            "last_read_at": _iso(doc.last_read_at),
            "print_due_at": _iso(doc.print_due_at),
            "outdated_at": _iso(doc.outdated_at),
            "outdated_reason": doc.outdated_reason,
            "protected": doc.restricted,
            "served_to_platform": doc.visible,
            "version": doc.version_id,
            "print_item": None
            if item is None
            else {"id": item.id, "handled_at": _iso(item.handled_at), "handled_by": item.handled_by},
            "history": [
                {"at": _iso(e.at), "event": e.event, "actor": e.actor, "detail": e.detail} for e in history
            ],
        }
    )
