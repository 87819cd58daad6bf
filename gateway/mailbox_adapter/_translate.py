"""Mina meddelanden v3 requests and answers <-> domain types, as pure functions over plain data
(``zeep.helpers.serialize_object`` on the way in, zeep values on the way out). Nothing
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

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from zeep import xsd

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


def sealed_delivery(letter: OutgoingLetter, sender: Sender, today: date) -> dict[str, Any]:
    """``deliverSecure/deliverSecure`` (a v3 ``SealedDelivery``) as zeep values. Both
    ``ds:Signature`` are left out here (``SkipValue``); the signer plugin adds them when zeep sends.

    Nothing about the document goes in metadata (004): the subject is a neutral one, the reference
    is the message id, and attachments are named ``bilaga-N.pdf``.
    """
    support: dict[str, Any] = {"Text": sender.support_text}
    if sender.support_url:
        support["URL"] = sender.support_url
    attachments = [
        {
            "ContentType": PDF,
            "Body": a.data,
            "Checksum": hashlib.md5(a.data).hexdigest(),
            "Filename": f"bilaga-{i}.pdf",
        }
        for i, a in enumerate(letter.attachments, start=1)
    ]
    message = {
        "Header": {
            "Id": letter.message_id,
            "Subject": letter.subject.value,
            "Supportinfo": support,
            "Language": sender.language,
            "ReceiptRequest": RECEIPT_REQUEST,
        },
        "Body": {"ContentType": TEXT_TYPE, "Body": letter.text.encode("utf-8")},
        "Attachment": attachments,
    }
    delivery = {
        "Header": {
            "Sender": {"Id": sender.org_nr, "Name": sender.name},
            "Recipient": letter.recipient.value,
            "Reference": letter.message_id,
            "CorrelationId": uuid.uuid4().hex,
        },
        "Message": [message],
    }
    return {
        "SignedDelivery": {"Delivery": delivery, "Signature": xsd.SkipValue},
        # The gateway delivers directly: the seal is the sender's own, dated today (xs:date).
        "Seal": {"ReceivedTime": today, "SignaturesOK": True},
        "Signature": xsd.SkipValue,
    }


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
