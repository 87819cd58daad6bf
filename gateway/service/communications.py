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
    new = _new_version(store.rebuild_inputs(conn, doc_id), now)
    if new is None:
        return False
    store.write_versions(conn, [new], now=now)
    return True


def rebuild_many(conn: Connection, doc_ids: Sequence[str], now: datetime) -> int:
    """:func:`rebuild` for several documents (each once), their inputs read together and their
    new versions written in one statement; returns how many changed. LookupError when one of
    them is not known (as :func:`rebuild`)."""
    found = store.rebuild_inputs_many(conn, doc_ids)
    versions = []
    for doc_id in dict.fromkeys(doc_ids):
        if doc_id not in found:
            raise LookupError(doc_id)
        new = _new_version(found[doc_id], now)
        if new is not None:
            versions.append(new)
    store.write_versions(conn, versions, now=now)
    return len(versions)


def _new_version(found: store.RebuildInputs, now: datetime) -> store.NewVersion | None:
    """The document's next version, checked, or ``None`` when its content is unchanged."""
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
        return None
    # The stored version passed this check when it was written: what changed is checked.
    fhir_comm.check_change(resource, fhir_comm.stored_content(row.resource))
    version = row.version_id + 1
    return store.NewVersion(row.id, version, digest, fhir_comm.render(resource, version, now, label))
