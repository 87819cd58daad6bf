"""Insert e-documents straight into the store (documents, attachments, print list, history).

For tests of the read side (print list, reports, PDF) that should not depend on the worker:
``insert_document(conn, ...)`` writes one document with sensible defaults, optionally its
attachments, a print-list item and events, and returns the ids. Columns it does not know (a
later migration's) are filled with a neutral value so the helper keeps working.

    with engine.begin() as conn:
        doc = insert_document(conn, title="Kallelse", print_item=True)
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

from fpdf import FPDF
from sqlalchemy import Boolean, Connection, Integer, LargeBinary, String, Text, insert

from gateway.store.db import UTCDateTime
from gateway.store.tables import document_attachments, document_events, documents, print_items
from tests.support import PNR_SYSTEM, TOLVAN

UNIT_HSA = "SE2321000016-15CQ"
UNIT_NAME = "Vårdcentralen Tolvåsen"
OTHER_UNIT_HSA = "SE2321000016-7Q2X"
LETTER_TEXT = (
    "Hej!\n"
    "Välkommen till Vårdcentralen Tolvåsen för kontroll av blodtrycket.\n"
    "\n"
    "Ta med läkemedelslistan. Åtgärder och övriga frågor: ring 08-123 45 67.\n"
    "[4US:LPAT]"
)
BASE_TIME = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class FactoryAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class InsertedDocument:
    document_id: str
    print_item_id: int | None


def pdf_bytes(*pages: str) -> bytes:
    """A small PDF with one page per text, for attachments."""
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    for text in pages or ("Bilaga",):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def pdf_attachment(*pages: str, filename: str = "bilaga.pdf") -> FactoryAttachment:
    return FactoryAttachment(filename, "application/pdf", pdf_bytes(*pages))


def _neutral(column: Any, now: datetime) -> Any:
    t = column.type
    if isinstance(t, UTCDateTime):
        return now
    if isinstance(t, Boolean):
        return False
    if isinstance(t, Integer):
        return 0
    if isinstance(t, LargeBinary):
        return b""
    if isinstance(t, String | Text):
        return ""
    raise TypeError(f"no neutral value for {column.name} ({t})")


def insert_document(
    conn: Connection,
    *,
    document_id: str | None = None,
    kind: str = "e-brev",
    patient: str = TOLVAN,
    patient_system: str = PNR_SYSTEM,
    title: str = "Kallelse till blodtryckskontroll på Vårdcentralen Tolvåsen",
    text: str = LETTER_TEXT,
    unit_hsa_id: str | None = UNIT_HSA,
    unit_name: str | None = UNIT_NAME,
    outcome: str = "print-list",
    rules: Sequence[str] = ("R-DOC-3", "R-DOC-5"),
    reason: str = "the e-brev has no control code [4US:LPAT]; letters without their exact code are printed",
    created_at: datetime = BASE_TIME,
    written_at: datetime | None = None,
    sent_at: datetime | None = None,
    read_at: datetime | None = None,
    last_read_at: datetime | None = None,
    mailbox_provider: str | None = None,
    outdated_at: datetime | None = None,
    outdated_reason: str | None = None,
    restricted: bool = False,
    attachments: Sequence[FactoryAttachment] = (),
    print_item: bool | None = None,
    added_at: datetime | None = None,
    handled_at: datetime | None = None,
    handled_by: str | None = None,
    events: Sequence[tuple[str, str | None]] = (("received", None),),
    **extra: Any,
) -> InsertedDocument:
    """One document; ``print_item`` defaults to whether ``outcome`` is ``print-list``.

    ``events`` are (event, actor) pairs written a minute apart from ``created_at``, followed by
    ``print-listed`` when a print item is made. ``extra`` sets any other documents column.
    """
    n = next(_numbers)
    doc_id = document_id or f"doc-{n}"
    values: dict[str, Any] = {
        "id": doc_id,
        "namespace": "TAKECARE",
        "document_number": f"DOC{n}",
        "document_type": "KALLELSE" if kind == "e-kallelse" else "BREV",
        "kind": kind,
        "patient_system": patient_system,
        "patient_value": patient,
        "unit_hsa_id": unit_hsa_id,
        "unit_name": unit_name,
        "title": title,
        "text": text,
        "written_at": written_at,
        "outcome": outcome,
        "rules": " ".join(rules),
        "reason": reason,
        "flags": "",
        "recipients": "[]",
        "mailbox_provider": mailbox_provider,
        "status": "read" if read_at else ("sent" if sent_at else outcome),
        "sent_at": sent_at,
        "read_at": read_at,
        "last_read_at": last_read_at or read_at,
        "outdated_at": outdated_at,
        "outdated_reason": outdated_reason,
        "restricted": restricted,
        "visible": outcome == "deliver" and not restricted,
        "version_id": 1,
        "created_at": created_at,
        "last_updated": created_at,
        "last_message_id": n,
        "content_hash": sha256(text.encode()).hexdigest(),
        "resource": b"{}",
        **extra,
    }
    for column in documents.columns:
        if column.name not in values and not column.nullable and column.default is None:
            values[column.name] = _neutral(column, created_at)
    conn.execute(insert(documents).values({k: v for k, v in values.items() if k in documents.c}))
    for position, a in enumerate(attachments, 1):
        conn.execute(
            insert(document_attachments).values(
                document_id=doc_id,
                position=position,
                filename=a.filename,
                content_type=a.content_type,
                sha256=sha256(a.data).hexdigest(),
                data=a.data,
            )
        )
    at = created_at
    for event, actor in events:
        conn.execute(insert(document_events).values(document_id=doc_id, at=at, event=event, actor=actor))
        at += timedelta(minutes=1)
    item_id: int | None = None
    if print_item if print_item is not None else outcome == "print-list":
        added = added_at or at
        item_id = conn.execute(
            insert(print_items)
            .values(
                document_id=doc_id,
                unit_hsa_id=unit_hsa_id,
                kind=kind,
                added_at=added,
                rules=" ".join(rules),
                reason=reason,
                handled_at=handled_at,
                handled_by=handled_by,
            )
            .returning(print_items.c.id)
        ).scalar_one()
        conn.execute(
            insert(document_events).values(
                document_id=doc_id, at=added, event="print-listed", detail=f"{' '.join(rules)}: {reason}"
            )
        )
        if handled_at is not None:
            conn.execute(
                insert(document_events).values(
                    document_id=doc_id, at=handled_at, event="print-handled", actor=handled_by
                )
            )
    return InsertedDocument(doc_id, item_id)


def image_png() -> bytes:
    """A tiny PNG (made with Pillow, which fpdf2 already needs)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()
