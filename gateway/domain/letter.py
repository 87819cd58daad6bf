"""E-documents as the journal sends them (MDM^T02 new, MDM^T10 replacement), in domain terms.

The journal does not say which of the three kinds (R-DOC-1) a letter is: TXA-2 says only
KALLELSE or BREV, and for a BREV the control code in the text decides (``[4US:LPAT]`` e-brev,
``[4US:RPAT]`` e-remissbekräftelse, R-DOC-2). :func:`document_kind` makes that call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.control_codes import CodeKind, ControlCodeScan
from gateway.domain.documents import DocumentKind
from gateway.domain.identity import PersonId


class DocumentAction(StrEnum):
    #: MDM^T02: a new document.
    NEW = "new"
    #: MDM^T10: a new version of a document already sent (same TXA-12).
    REPLACE = "replace"


class JournalDocumentType(StrEnum):
    """TXA-2 as the profile takes it."""

    KALLELSE = "KALLELSE"
    BREV = "BREV"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A bilaga: OBX value type ED, base64 in the message, bytes here."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class DocumentEvent:
    """One e-document as the journal sent it. Carries the whole document (T10 too).

    ``namespace`` + ``document_number`` (TXA-12) identify the document: a second T02 with the
    same pair is a repeat, a T10 replaces it. ``booking_id`` (TXA-13) is set for a KALLELSE: the
    SCH-2 booking id, in the same ``namespace`` as the booking's. ``text`` keeps its line breaks.
    """

    action: DocumentAction
    namespace: str
    document_number: str
    document_type: JournalDocumentType
    patient: PersonId
    title: str
    text: str
    written_at: datetime | None = None
    booking_id: str | None = None
    #: The unit (vårdenhet) that sends it: HSA-id and name, for R-DOC-7 and the print list.
    unit_hsa_id: str | None = None
    unit_name: str | None = None
    author: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    #: R-NOT-2: notify at once ("aviseras direkt"), not 15 minutes later (ZNT-2 ``D``).
    notify_direct: bool = False


def document_kind(document_type: JournalDocumentType, scan: ControlCodeScan) -> DocumentKind:
    """R-DOC-1: a KALLELSE is an e-kallelse; a BREV is an e-remissbekräftelse when it carries
    exactly ``[4US:RPAT]`` (and not also LPAT), otherwise an e-brev (which routing then sends to
    the print list when it lacks ``[4US:LPAT]``, R-DOC-3)."""
    if document_type is JournalDocumentType.KALLELSE:
        return DocumentKind.E_KALLELSE
    if scan.kind is CodeKind.E_REMISSBEKRAFTELSE:
        return DocumentKind.E_REMISSBEKRAFTELSE
    return DocumentKind.E_BREV
