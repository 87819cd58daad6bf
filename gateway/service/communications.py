"""A document's FHIR Communication, rebuilt from its stored columns whenever one changes.

Every path that changes a document (routing, a read receipt, the 48-hour rule, a staff
release) ends here, so each ends with the same resource and one version bump.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from gateway.domain.documents import DocumentKind, Outcome
from gateway.domain.query import content_hash
from gateway.fhir import communication as fhir_comm
from gateway.store import documents as store


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
    found = store.rebuild_inputs(conn, doc_id)
    row = found.row
    facts = build_facts(
        dict(row._mapping),
        [
            fhir_comm.Recipient(r.channel, fhir_comm.Identifier(r.system, r.value), r.provider)
            for r in found.recipients
        ],
        found.attachments,
        unread_printed=row.outcome == Outcome.DELIVER.value and found.on_print_list,
    )
    resource = fhir_comm.build_communication(facts)
    label = row.protection if row.restricted else None
    digest = content_hash({"resource": resource, "label": label, "visible": row.visible})
    if digest == row.content_hash:
        return False
    fhir_comm.check(resource)
    version = row.version_id + 1
    store.write_version(
        conn,
        doc_id,
        version=version,
        now=now,
        digest=digest,
        resource=fhir_comm.render(resource, version, now, label),
    )
    return True
