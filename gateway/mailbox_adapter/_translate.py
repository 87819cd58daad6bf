"""Mina meddelanden v3 requests and answers <-> domain types, as pure functions over plain data
(``zeep.helpers.serialize_object`` on the way in; on the way out zeep values for isReachable and,
for deliverSecure, the request element built with lxml from the letter, ready to sign). Nothing
SOAP-specific leaves this module.

How ``isReachable`` reads (docs/mailbox.md):

=========================================  =====================================================
``Type Secure``, not pending, known         the mailbox; ``SenderAccepted false`` -> not accepted
operator, ``ServiceAdress`` allowed
``Type Not`` with a ``ServiceSupplier``     has that mailbox but declined mail from the sector
``Type Not`` without one                    no mailbox (:data:`NO_MAILBOX`)
``Type Anonymous``, or ``Pending true``     no mailbox: nothing secure can be delivered there yet
an operator not in the supplier table,      no mailbox, with the reason (``unusable``; logged,
``Secure`` without an operator, or a        no personal data): the letter goes the way it would
``ServiceAdress`` off the allowlist         without a mailbox, never silently dropped
=========================================  =====================================================
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from lxml import etree

from gateway.domain.documents import NO_MAILBOX, MailboxProvider, MailboxReachability
from gateway.domain.identity import PersonId
from gateway.domain.mailbox import PDF, MailboxReceipt, OutgoingLetter, RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError
from gateway.mailbox_adapter._suppliers import SupplierTable

log = structlog.get_logger(__name__)

#: The body of every letter: the document's text as it came, UTF-8.
TEXT_TYPE = "text/plain; charset=UTF-8"
#: Receipts the gateway asks of the operator (ReceiptOptions: NOT, SIMPLE, SIGNED).
RECEIPT_REQUEST = "NOT"


@dataclass(frozen=True, slots=True)
class Reachable:
    """One person's answer: the domain's view, and where that operator takes deliveries."""

    reachability: MailboxReachability
    service_address: str | None = None


NOT_REACHABLE = Reachable(NO_MAILBOX)


def _broken(what: str) -> PermanentUpstreamError:
    return PermanentUpstreamError(f"mailbox recipient service answer breaks the contract: {what}")


def reachability_answer(
    answer: Sequence[Mapping[str, Any]] | None,
    asked: Sequence[PersonId],
    suppliers: SupplierTable,
) -> dict[PersonId, Reachable]:
    """``isReachableResponse/return*`` for the persons ``asked`` (each exactly once)."""
    by_value = {p.value: p for p in asked}
    found: dict[PersonId, Reachable] = {}
    for status in answer or []:
        account = status.get("AccountStatus") or {}
        recipient = str(account.get("RecipientId") or "")
        person = by_value.get(recipient)
        if person is None:
            raise _broken("an answer for a person not asked about")
        if person in found:
            raise _broken(f"two answers for {person.masked()}")
        found[person] = _reachable(status, person, suppliers)
    missing = [p for p in asked if p not in found]
    if missing:
        raise _broken(f"no answer for {len(missing)} of {len(asked)} persons (first {missing[0].masked()})")
    return found


def _unusable(event: str, why: str, **context: object) -> Reachable:
    """No mailbox, with the reason staff see; logged with no personal data."""
    log.warning(event, **context)
    return Reachable(MailboxReachability(unusable=why))


def _reachable(status: Mapping[str, Any], person: PersonId, suppliers: SupplierTable) -> Reachable:
    account = status["AccountStatus"]
    kind = account.get("Type")
    supplier = account.get("ServiceSupplier")
    accepted = status.get("SenderAccepted")
    if kind not in ("Secure", "Anonymous", "Not") or not isinstance(accepted, bool):
        raise _broken(f"Type {kind!r} / SenderAccepted {accepted!r} for {person.masked()}")
    if kind == "Anonymous" or account.get("Pending") is True:
        return NOT_REACHABLE
    if not supplier:
        if kind == "Secure":
            return _unusable(
                "mailbox.secure_without_supplier",
                "the recipient service named no mailbox operator for a secure account",
            )
        return NOT_REACHABLE
    supplier_id = str(supplier.get("Id") or "")
    known = suppliers.by_id.get(supplier_id)
    if known is None:
        return _unusable(
            "mailbox.unknown_supplier",
            f"mailbox operator {supplier_id[:20]} is not in the supplier table",
            supplier=supplier_id[:20],
        )
    if kind == "Not":  # has a mailbox there, declined mail from the sector (docs/mailbox.md)
        return Reachable(MailboxReachability(known.mailbox, declined=True, sender_accepted=accepted))
    if not accepted:
        return Reachable(MailboxReachability(known.mailbox, sender_accepted=False))
    address = str(supplier.get("ServiceAdress") or "")
    if not suppliers.address_allowed(known, address):
        host = urlsplit(address).hostname or "(none)"
        return _unusable(
            "mailbox.address_not_allowed",
            f"{known.name}'s ServiceAdress host {host[:80]} is not on the allowlist",
            supplier=supplier_id,
            host=host[:80],
        )
    return Reachable(MailboxReachability(known.mailbox), address)


def refusal_before_delivery(reachable: Reachable, letter: OutgoingLetter) -> MailboxRefused | None:
    """Why ``letter`` cannot go, when the recipient service already says so; else ``None``."""
    mailbox = reachable.reachability
    person = letter.recipient.masked()
    if mailbox.provider is None:
        why = f": {mailbox.unusable}" if mailbox.unusable else ""
        return MailboxRefused(f"no digital mailbox for {person}{why}", code=RefusalCode.NOT_REACHABLE.value)
    if mailbox.declined:
        return MailboxRefused(
            f"{person} declined mail to {mailbox.provider.value}", code=RefusalCode.NOT_REACHABLE.value
        )
    if not mailbox.sender_accepted:
        return MailboxRefused(
            f"{mailbox.provider.value} of {person} does not accept this sender",
            code=RefusalCode.SENDER_NOT_ACCEPTED.value,
        )
    return None


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sends, as every delivery says it."""

    org_nr: str  # 12 characters, 16 + the organisation number
    name: str
    support_text: str
    support_url: str | None
    language: str


NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_SERVICE = "http://minameddelanden.gov.se/schema/Service/v3"
NS_MESSAGE = "http://minameddelanden.gov.se/schema/Message/v3"
NS_MESSAGE_V2 = "http://minameddelanden.gov.se/schema/Message/v2"
NS_MESSAGE_V1 = "http://minameddelanden.gov.se/schema/Message"
NS_SENDER = "http://minameddelanden.gov.se/schema/Sender"
#: Declared once on ``deliverSecure``; exclusive c14n re-declares what each signed part uses.
_NSMAP = {
    "svc3": NS_SERVICE,
    "msg3": NS_MESSAGE,
    "msg2": NS_MESSAGE_V2,
    "msg": NS_MESSAGE_V1,
    "snd": NS_SENDER,
}


def _el(parent: etree._Element, namespace: str, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def deliver_secure(letter: OutgoingLetter, sender: Sender, today: date) -> etree._Element:
    """The ``deliverSecure`` request element (Service v3) holding the ``SealedDelivery`` (its
    inner ``deliverSecure``), in the contract's element order, without the two ``ds:Signature``
    (``_signing.sign_sealed_delivery`` adds them). Built with lxml directly: building it through
    zeep's types and then serialising cost more CPU than anything else in a delivery.

    Nothing about the document goes in metadata (004): the subject is a neutral one, the reference
    is the message id, and attachments are named ``bilaga-N.pdf``.
    """
    request = etree.Element(f"{{{NS_SERVICE}}}deliverSecure", nsmap=_NSMAP)
    sealed = _el(request, NS_SERVICE, "deliverSecure")
    signed = _el(sealed, NS_MESSAGE, "SignedDelivery")
    delivery = _el(signed, NS_MESSAGE, "Delivery")
    header = _el(delivery, NS_MESSAGE, "Header")
    who = _el(header, NS_MESSAGE_V2, "Sender")
    _el(who, NS_SENDER, "Id", sender.org_nr)
    _el(who, NS_SENDER, "Name", sender.name)
    _el(header, NS_MESSAGE_V2, "Recipient", letter.recipient.value)
    _el(header, NS_MESSAGE_V2, "Reference", letter.message_id)
    _el(header, NS_MESSAGE_V2, "CorrelationId", uuid.uuid4().hex)
    message = _el(delivery, NS_MESSAGE, "Message")
    message_header = _el(message, NS_MESSAGE, "Header")
    _el(message_header, NS_MESSAGE, "Id", letter.message_id)
    _el(message_header, NS_MESSAGE, "Subject", letter.subject.value)
    support = _el(message_header, NS_MESSAGE, "Supportinfo")
    _el(support, NS_MESSAGE, "Text", sender.support_text)
    if sender.support_url:
        _el(support, NS_MESSAGE, "URL", sender.support_url)
    _el(message_header, NS_MESSAGE, "Language", sender.language)
    _el(message_header, NS_MESSAGE, "ReceiptRequest", RECEIPT_REQUEST)
    body = _el(message, NS_MESSAGE, "Body")
    _el(body, NS_MESSAGE_V1, "ContentType", TEXT_TYPE)
    _el(body, NS_MESSAGE_V1, "Body", _b64(letter.text.encode("utf-8")))
    for i, attachment in enumerate(letter.attachments, start=1):
        part = _el(message, NS_MESSAGE, "Attachment")
        _el(part, NS_MESSAGE_V1, "ContentType", PDF)
        _el(part, NS_MESSAGE_V1, "Body", _b64(attachment.data))
        _el(part, NS_MESSAGE_V1, "Checksum", hashlib.md5(attachment.data).hexdigest())
        _el(part, NS_MESSAGE_V1, "Filename", f"bilaga-{i}.pdf")
    # The gateway delivers directly: the seal is the sender's own, dated today (xs:date).
    seal = _el(sealed, NS_MESSAGE, "Seal")
    _el(seal, NS_MESSAGE_V1, "ReceivedTime", today.isoformat())
    _el(seal, NS_MESSAGE_V1, "SignaturesOK", "true")
    return request


def soap_envelope(body_child: etree._Element) -> bytes:
    """A SOAP 1.1 envelope around ``body_child``, UTF-8 with the XML declaration."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap-env": NS_SOAP})
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Body").append(body_child)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


NS_SERVICE_V1 = "http://minameddelanden.gov.se/schema/Service"
_ANSWER_PATH = (
    f"{{{NS_SOAP}}}Envelope",
    f"{{{NS_SOAP}}}Body",
    f"{{{NS_SERVICE}}}deliverSecureResponse",
    f"{{{NS_SERVICE}}}return",
)
_TRANS_ID = f"{{{NS_SERVICE_V1}}}TransId"
_STATUS = f"{{{NS_SERVICE_V1}}}Status"
_STATUS_FIELDS = (f"{{{NS_SERVICE_V1}}}RecipientId", f"{{{NS_SERVICE_V1}}}Delivered")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def plain_delivery_answer(status: int, content_type: str | None, content: bytes) -> dict[str, Any] | None:
    """A plain ``deliverSecureResponse`` read with lxml, as ``serialize_object`` gives zeep's
    reading of it (``{"TransId": str, "Status": [{"RecipientId": str, "Delivered": bool}]}``),
    or ``None`` for anything else: then zeep's binding reads the answer, as it always did.

    Plain is the official shape exactly (``Service/v3`` ``deliverSecureResponse``, one ``return``,
    a ``DeliveryResult``: ``TransId``, then one or more ``Status`` of ``RecipientId`` and
    ``Delivered``) in a SOAP 1.1 envelope with only a Body, HTTP 200, no DTD, entity,
    processing instruction, attribute or stray text, every value without surrounding
    whitespace, ``Delivered`` one of xs:boolean's four spellings. zeep reads such an answer
    to the same values; everything else (faults, headers, other statuses, surprises) still goes
    to zeep, which decides what it means. Reading it here costs a tenth of zeep's reading.
    """
    if status != 200 or not content or (content_type or "").lower().startswith("multipart/"):
        return None
    try:
        parser = etree.XMLParser(remove_comments=True, resolve_entities=False, no_network=True)
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError:
        return None
    docinfo: Any = root.getroottree().docinfo  # lxml's stubs lack ``doctype``
    if docinfo.doctype:
        return None
    node = root
    if node.tag != _ANSWER_PATH[0] or not _plain(node):
        return None
    for tag in _ANSWER_PATH[1:]:
        children = list(node)
        if len(children) != 1 or children[0].tag != tag or not _plain(children[0]):
            return None
        node = children[0]
    children = list(node)
    if len(children) < 2 or children[0].tag != _TRANS_ID:
        return None
    trans_id = _value(children[0])
    statuses: list[dict[str, Any]] = []
    for child in children[1:]:
        if child.tag != _STATUS or not _plain(child):
            return None
        fields = list(child)
        if [f.tag for f in fields] != list(_STATUS_FIELDS):
            return None
        recipient, delivered = _value(fields[0]), _BOOLEANS.get(_value(fields[1]) or "")
        if recipient is None or delivered is None:
            return None
        statuses.append({"RecipientId": recipient, "Delivered": delivered})
    if trans_id is None:
        return None
    return {"TransId": trans_id, "Status": statuses}


def _plain(element: etree._Element) -> bool:
    """No attributes, no text of its own but whitespace, no tail but whitespace."""
    return not element.attrib and not (element.text or "").strip() and not (element.tail or "").strip()


def _value(leaf: etree._Element) -> str | None:
    """A leaf's text, when it is one plainly: no attributes or children, no surrounding space."""
    text = leaf.text
    if leaf.attrib or len(leaf) or not text or text != text.strip() or (leaf.tail or "").strip():
        return None
    return text


def delivery_result(
    answer: Mapping[str, Any] | None,
    letter: OutgoingLetter,
    provider: MailboxProvider,
    now: datetime,
) -> MailboxReceipt:
    """``deliverSecureResponse/return`` (a ``DeliveryResult``: TransId, Status+) -> the receipt.
    The contract carries no delivery time: the receipt is dated when the answer came."""
    if not answer or not answer.get("TransId"):
        raise PermanentUpstreamError(f"{provider.value} delivery answer breaks the contract: no TransId")
    statuses = [s for s in answer.get("Status") or [] if s and s.get("RecipientId") == letter.recipient.value]
    if len(statuses) != 1:
        raise PermanentUpstreamError(
            f"{provider.value} delivery answer breaks the contract: {len(statuses)} Status for the recipient"
        )
    if statuses[0].get("Delivered") is not True:
        raise MailboxRefused(
            f"{provider.value} did not deliver message {letter.message_id}", code=RefusalCode.OTHER.value
        )
    delivered_at = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return MailboxReceipt(
        message_id=letter.message_id,
        transaction_id=str(answer["TransId"]),
        provider=provider,
        delivered_at=delivered_at,
    )
