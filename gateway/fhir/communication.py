"""An e-document and where it went -> FHIR R4 Communication JSON, validated once (R4B model).

One Communication per document (journal namespace + TXA-12); a T10 replacement, a read
receipt or a move to the print list makes a new version of the same resource. The category is
the document kind (R-DOC-1) in a CodeSystem the gateway publishes (:data:`CODE_SYSTEMS`), the
status tells the routing outcome, and ``statusReason`` says why for held, refused and
print-listed documents. Attachments are not inlined: each is a ``Binary`` the platform reads
when the citizen opens it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.extension import Extension

from gateway.domain.documents import Channel, DocumentKind, MailboxProvider, Outcome
from gateway.fhir.appointment import _with_meta

_ID_NAMESPACE = uuid.UUID("0b9a7f3e-2c4d-5e6f-8a1b-3c5d7e9f1a2b")
BASE = "http://gateway.vard.example/fhir"
DOCUMENT_ID_SYSTEM = f"{BASE}/NamingSystem/journal-document-number"
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/edocument-category"
STATUS_REASON_SYSTEM = f"{BASE}/CodeSystem/edocument-status-reason"
MAILBOX_SYSTEM = f"{BASE}/CodeSystem/mailbox-provider"
MAILBOX_EXTENSION = f"{BASE}/StructureDefinition/mailbox-provider"
MAILBOX_DELIVERY_EXTENSION = f"{BASE}/StructureDefinition/mailbox-delivery"
RULES_EXTENSION = f"{BASE}/StructureDefinition/routing-rules"
HSA_SYSTEM = "urn:oid:1.2.752.29.4.19"
SECURITY_LABEL_SYSTEM = "http://electronichealth.se/fhir/CodeSystem/securitylabel"


def document_id(namespace: str, document_number: str) -> str:
    """A stable FHIR id for a document that reveals nothing about it."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}|{document_number}"))


# Codes are ASCII; displays Swedish as the platform shows them.
CATEGORIES: dict[DocumentKind, tuple[str, str, str]] = {
    DocumentKind.E_KALLELSE: ("e-kallelse", "E-kallelse", "Kallelse till en bokad tid."),
    DocumentKind.E_BREV: ("e-brev", "E-brev", "Brev från vården; mallen bär styrkoden [4US:LPAT]."),
    DocumentKind.E_REMISSBEKRAFTELSE: (
        "e-remissbekraftelse",
        "E-remissbekräftelse",
        "Bekräftelse på en mottagen remiss; mallen bär styrkoden [4US:RPAT].",
    ),
}
KIND_BY_CODE = {code: kind for kind, (code, _, _) in CATEGORIES.items()}


class StatusReason:
    HELD = "held"
    REFUSED = "refused"
    PRINT_LIST = "print-list"
    UNREAD = "print-list-unread"


STATUS_REASONS: dict[str, tuple[str, str]] = {
    StatusReason.HELD: ("Hålls för manuellt beslut", "Held for a staff decision (R-ID-3, R-ID-4, R-ID-7)."),
    StatusReason.REFUSED: ("Skickas inte", "Not sent: deceased, or a kallelse for a hidden time type."),
    StatusReason.PRINT_LIST: ("Utskriftslistan", "Sent on paper from the staff print list (R-DOC-5)."),
    StatusReason.UNREAD: (
        "Oläst efter 48 timmar",
        "Delivered to the platform only and not opened within 48 hours: also printed (R-DOC-5).",
    ),
}

_STATUS = {
    Outcome.DELIVER: "completed",
    Outcome.PRINT_LIST: "completed",
    Outcome.HOLD: "on-hold",
    Outcome.REFUSE: "not-done",
}
_REASON = {
    Outcome.PRINT_LIST: StatusReason.PRINT_LIST,
    Outcome.HOLD: StatusReason.HELD,
    Outcome.REFUSE: StatusReason.REFUSED,
}


def status_for(outcome: Outcome) -> str:
    """Communication.status for a routing outcome."""
    return _STATUS[outcome]


_RECIPIENT_TYPE = {
    Channel.PLATFORM: "Patient",
    Channel.MAILBOX: "Patient",
    Channel.GUARDIAN: "RelatedPerson",
    Channel.PROXY: "RelatedPerson",
}


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: Channel
    who: Identifier
    provider: MailboxProvider | None = None


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """An attachment as the Communication names it; the bytes are served as ``Binary/<id>``."""

    binary_id: str
    filename: str
    content_type: str
    size: int
    sha1_b64: str


@dataclass(frozen=True, slots=True)
class CommunicationFacts:
    """Everything the Communication says; built by the worker from the document and decision."""

    id: str
    namespace: str
    document_number: str
    kind: DocumentKind
    subject: Identifier
    title: str
    text: str
    outcome: Outcome
    rules: tuple[str, ...]
    reason: str
    recipients: tuple[Recipient, ...] = ()
    appointment_id: str | None = None
    unit: Identifier | None = None
    unit_name: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    sent: datetime | None = None
    received: datetime | None = None
    #: R-DOC-5: also on the print list for being unread 48 hours.
    unread_printed: bool = False
    #: A protected person's document released by staff carries the protection as a label.
    security_label: str | None = None
    #: The mailbox operator's receipt: when it took the letter, and its transaction id.
    mailbox_delivered: datetime | None = None
    mailbox_receipt: str | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def build_communication(f: CommunicationFacts) -> dict[str, Any]:
    """The Communication without ``meta`` (added when stored, so content can be compared)."""
    code, display, _ = CATEGORIES[f.kind]
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": f.id,
        "extension": [{"url": RULES_EXTENSION, "valueString": " ".join(f.rules)}],
        "identifier": [{"system": DOCUMENT_ID_SYSTEM, "value": f"{f.namespace}|{f.document_number}"}],
        "status": _STATUS[f.outcome],
    }
    provider = next((r.provider for r in f.recipients if r.provider is not None), None)
    if provider is not None:
        resource["extension"].append(
            {
                "url": MAILBOX_EXTENSION,
                "valueCoding": {
                    "system": MAILBOX_SYSTEM,
                    "code": provider.name.lower(),
                    "display": provider.value,
                },
            }
        )
    if f.mailbox_delivered is not None and f.mailbox_receipt is not None:
        resource["extension"].append(
            {
                "url": MAILBOX_DELIVERY_EXTENSION,
                "extension": [
                    {"url": "delivered", "valueDateTime": _iso(f.mailbox_delivered)},
                    {"url": "receipt", "valueString": f.mailbox_receipt},
                ],
            }
        )
    reason = StatusReason.UNREAD if f.unread_printed else _REASON.get(f.outcome)
    if reason is not None:
        short, _ = STATUS_REASONS[reason]
        resource["statusReason"] = {**_coding(STATUS_REASON_SYSTEM, reason, short), "text": f.reason}
    resource["category"] = [_coding(CATEGORY_SYSTEM, code, display)]
    resource["subject"] = {
        "type": "Patient",
        "identifier": {"system": f.subject.system, "value": f.subject.value},
    }
    if f.appointment_id is not None:
        resource["about"] = [{"reference": f"Appointment/{f.appointment_id}", "type": "Appointment"}]
    if f.sent is not None:
        resource["sent"] = _iso(f.sent)
    if f.received is not None:
        resource["received"] = _iso(f.received)
    seen: set[tuple[str, str, str]] = set()
    recipients: list[dict[str, Any]] = []
    for r in f.recipients:
        kind = _RECIPIENT_TYPE[r.channel]
        key = (kind, r.who.system, r.who.value)
        if key in seen:  # the person on the platform and in a mailbox is one recipient
            continue
        seen.add(key)
        recipients.append({"type": kind, "identifier": {"system": r.who.system, "value": r.who.value}})
    if recipients:
        resource["recipient"] = recipients
    if f.unit is not None or f.unit_name:
        sender: dict[str, Any] = {"type": "Organization"}
        if f.unit is not None:
            sender["identifier"] = {"system": f.unit.system, "value": f.unit.value}
        if f.unit_name:
            sender["display"] = f.unit_name
        resource["sender"] = sender
    resource["topic"] = {"text": f.title}
    payload: list[dict[str, Any]] = [{"contentString": f.text}]
    for a in f.attachments:
        payload.append(
            {
                "contentAttachment": {
                    "contentType": a.content_type,
                    "url": f"Binary/{a.binary_id}",
                    "size": a.size,
                    "hash": a.sha1_b64,
                    "title": a.filename,
                }
            }
        )
    resource["payload"] = payload
    return resource


def check(resource: dict[str, Any]) -> None:
    """Validate with the R4B model; raises (a ValueError) if the mapping produced invalid FHIR."""
    Communication.model_validate(resource)


def check_change(resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """As :func:`check`, knowing ``previous``: the resource stored before (without ``meta``),
    which passed :func:`check` (or this) when it was written. When ``resource`` differs from it
    only in its extensions (a mailbox receipt arriving), each extension ``previous`` did not
    have is validated with the model's own ``Extension``; anything else is checked whole.
    Communication puts no rule on its extensions beyond each one's own (ext-1, ele-1), so the
    verdict is the model's either way, at a quarter of the cost for a receipt."""
    if previous is None or resource.keys() != previous.keys():
        check(resource)
        return
    for key, value in resource.items():
        if key != "extension" and value != previous[key]:
            check(resource)
            return
    known = previous.get("extension") or []
    for extension in resource.get("extension") or []:
        if extension not in known:
            Extension.model_validate(extension)


def stored_content(stored: bytes) -> dict[str, Any] | None:
    """A stored Communication (the JSON :func:`render` made) without its ``meta``, to compare
    with a new build; ``None`` for a document not built yet."""
    if not stored:
        return None
    resource: dict[str, Any] = orjson.loads(stored)
    resource.pop("meta", None)
    return resource


def render(
    resource: dict[str, Any], version_id: int, last_updated: datetime, security: str | None = None
) -> bytes:
    """The JSON to store and serve, with meta; for a resource :func:`check` has passed."""
    body = _with_meta(resource, version_id, last_updated)
    if security is not None:
        body["meta"]["security"] = [{"system": SECURITY_LABEL_SYSTEM, "code": security}]
    return orjson.dumps(body)


def code_system(kind: str) -> dict[str, Any]:
    """The CodeSystems the gateway publishes (``GET /fhir/CodeSystem/<id>``)."""
    if kind == "edocument-category":
        concepts = [{"code": c, "display": d, "definition": text} for c, d, text in CATEGORIES.values()]
        url, title = CATEGORY_SYSTEM, "E-document categories (R-DOC-1)"
    elif kind == "edocument-status-reason":
        concepts = [{"code": c, "display": d, "definition": text} for c, (d, text) in STATUS_REASONS.items()]
        url, title = STATUS_REASON_SYSTEM, "Why an e-document has its status"
    elif kind == "mailbox-provider":
        concepts = [{"code": p.name.lower(), "display": p.value} for p in MailboxProvider]
        url, title = MAILBOX_SYSTEM, "Digital mailbox operators"
    else:
        raise KeyError(kind)
    return {
        "resourceType": "CodeSystem",
        "id": kind,
        "url": url,
        "name": kind.replace("-", "_"),
        "title": title,
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "count": len(concepts),
        "concept": concepts,
    }


CODE_SYSTEMS = ("edocument-category", "edocument-status-reason", "mailbox-provider")
