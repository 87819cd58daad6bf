"""Recipient and delivery service answers -> domain types, as pure functions over plain data
(``zeep.helpers.serialize_object``). Nothing SOAP-specific leaves this module.

How ``isReachable`` reads (docs/mailbox.md):

=========================================  =====================================================
``Type Secure``, not pending, known         the mailbox; ``SenderAccepted false`` -> not accepted
operator
``Type Not`` with a ``ServiceSupplier``     has that mailbox but declined mail from the sector
``Type Not`` without one                    no mailbox (:data:`NO_MAILBOX`)
``Type Anonymous``, or ``Pending true``     no mailbox: nothing secure can be delivered there yet
an operator the settings do not list        no mailbox (logged): the gateway cannot name it
=========================================  =====================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.domain.documents import NO_MAILBOX, MailboxProvider, MailboxReachability
from gateway.domain.identity import PersonId
from gateway.domain.mailbox import MailboxReceipt, OutgoingLetter, RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError

log = structlog.get_logger(__name__)


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
    suppliers: Mapping[str, MailboxProvider],
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


def _reachable(
    status: Mapping[str, Any], person: PersonId, suppliers: Mapping[str, MailboxProvider]
) -> Reachable:
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
            raise _broken(f"Type Secure without a ServiceSupplier for {person.masked()}")
        return NOT_REACHABLE
    supplier_id = str(supplier.get("Id") or "")
    provider = suppliers.get(supplier_id)
    if provider is None:
        log.warning("mailbox.unknown_supplier", supplier=supplier_id[:40], person=person.masked())
        return NOT_REACHABLE
    address = str(supplier.get("ServiceAdress") or "")
    if not address.startswith(("http://", "https://")):
        raise _broken(f"ServiceAdress of {supplier_id} is not an http(s) URL")
    declined = kind == "Not"
    return Reachable(MailboxReachability(provider, declined=declined, sender_accepted=accepted), address)


def refusal_before_delivery(reachable: Reachable, letter: OutgoingLetter) -> MailboxRefused | None:
    """Why ``letter`` cannot go, when the recipient service already says so; else ``None``."""
    mailbox = reachable.reachability
    person = letter.recipient.masked()
    if mailbox.provider is None:
        return MailboxRefused(f"no digital mailbox for {person}", code=RefusalCode.NOT_REACHABLE.value)
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


def delivery_result(
    answer: Mapping[str, Any] | None,
    letter: OutgoingLetter,
    provider: MailboxProvider,
    now: datetime,
) -> MailboxReceipt:
    """``deliverSecureResponse/return`` (a ``DeliveryResult``) -> the receipt."""
    if not answer or not answer.get("TransId"):
        raise PermanentUpstreamError(f"{provider.value} delivery answer breaks the contract: no TransId")
    statuses = [s for s in answer.get("Status") or [] if s and s.get("RecipientId") == letter.recipient.value]
    if len(statuses) != 1:
        raise PermanentUpstreamError(
            f"{provider.value} delivery answer breaks the contract: {len(statuses)} Status for the recipient"
        )
    status = statuses[0]
    if status.get("Delivered") is not True:
        raise MailboxRefused(
            f"{provider.value} did not deliver message {letter.message_id}", code=RefusalCode.OTHER.value
        )
    when = status.get("Time")
    delivered_at = when if isinstance(when, datetime) else now
    if delivered_at.tzinfo is None:
        delivered_at = delivered_at.replace(tzinfo=UTC)
    return MailboxReceipt(
        message_id=letter.message_id,
        transaction_id=str(answer["TransId"]),
        provider=provider,
        delivered_at=delivered_at,
    )
