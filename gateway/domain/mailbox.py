"""Delivery to a digital mailbox (Kivra, Billo, Min Myndighetspost) in domain terms: the port.

Which mailbox a person has is asked through :class:`gateway.domain.documents.MailboxDirectory`;
this module is what happens next: one :class:`OutgoingLetter` handed to a
:class:`MailboxDelivery`, which answers with a :class:`MailboxReceipt` or raises.

- **Neutral notices** (004): a mailbox operator shows the subject and the sender in its
  notifications (app push, e-mail) outside the secure mailbox. So the subject is never free text:
  it is one of :class:`NeutralSubject`, and nothing of the document (title, unit, kind) travels in
  metadata. The document itself is the letter's text and attachments.
- **Idempotent**: ``message_id`` is unique per letter and is what the operator keys on; handing
  the same letter over again (a retry, an outbox replay) is the same delivery, not a second one.
- Errors: ``TransientUpstreamError`` (try again later) or ``PermanentUpstreamError``; a refusal
  of this letter is :class:`gateway.errors.MailboxRefused` with a :class:`RefusalCode`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from gateway.domain.documents import MailboxProvider
from gateway.domain.identity import PersonId
from gateway.domain.letter import Attachment

#: The one content type a mailbox takes as an attachment.
PDF = "application/pdf"
#: What a message id may look like: it travels as the operator's idempotency key.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


class NeutralSubject(StrEnum):
    """The subjects a mailbox letter may carry: they say nothing about health (004)."""

    LETTER = "Du har fått ett brev"
    MESSAGE = "Du har fått ett meddelande"


class RefusalCode(StrEnum):
    """Why a mailbox service refused one letter (``MailboxRefused.code``)."""

    #: R-ID-6: operators take no mail for persons under 18.
    UNDER_18 = "under-18"
    #: No mailbox (any more), a different operator, or declined mail from the sector.
    NOT_REACHABLE = "not-reachable"
    #: The person's mailbox does not accept mail from this sender.
    SENDER_NOT_ACCEPTED = "sender-not-accepted"
    #: The operator could not verify the sender's XML signature (certificate, tampering).
    SIGNATURE_INVALID = "signature-invalid"
    #: The letter breaks the operator's rules (subject, attachment type, checksum).
    INVALID_LETTER = "invalid-letter"
    #: The request was wrong otherwise (sender number, recipient number).
    INVALID_REQUEST = "invalid-request"
    #: A code the gateway does not know.
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class OutgoingLetter:
    """One document for one person's digital mailbox.

    ``provider`` is the mailbox routing chose; the adapter checks reachability again right before
    delivering, and the receipt says where the letter actually went. ``attachments`` must be PDFs;
    their file names are not sent (a name can tell what the letter is about).
    """

    message_id: str
    recipient: PersonId
    provider: MailboxProvider
    text: str
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    subject: NeutralSubject = NeutralSubject.LETTER

    def __post_init__(self) -> None:
        if not _MESSAGE_ID.match(self.message_id):
            raise ValueError("message_id must be 1-100 characters of A-Z a-z 0-9 . _ : - (no spaces)")
        if self.recipient.is_reservnummer:
            raise ValueError("a reservnummer has no digital mailbox (R-ID-2)")
        if not self.text.strip() and not self.attachments:
            raise ValueError("a letter needs text or an attachment")
        wrong = [a.content_type for a in self.attachments if a.content_type != PDF]
        if wrong:
            raise ValueError(f"mailbox attachments must be {PDF}, got {wrong}")


@dataclass(frozen=True, slots=True)
class MailboxReceipt:
    """The operator took the letter: its transaction id and when (timezone-aware)."""

    message_id: str
    transaction_id: str
    provider: MailboxProvider
    delivered_at: datetime


class MailboxDelivery(Protocol):
    """The port to the mailbox operators' delivery services (Mina meddelanden ``deliverSecure``)."""

    async def deliver(self, letter: OutgoingLetter) -> MailboxReceipt:
        """Deliver ``letter``; the same ``message_id`` again returns the first delivery's receipt.
        Raises TransientUpstreamError (retry later), MailboxRefused (this letter will not be
        taken; see ``code``) or another PermanentUpstreamError."""
        ...


@runtime_checkable
class PrefetchingMailboxDelivery(MailboxDelivery, Protocol):
    """A delivery port that can ask where a whole batch of letters' persons have their mailboxes
    in one question (Mina meddelanden ``isReachable`` takes up to 1,000 persons), so each
    ``deliver`` after it need not ask for its person alone."""

    async def prefetch(self, letters: Sequence[OutgoingLetter]) -> None:
        """Ask for ``letters``' persons at once; raises as ``deliver`` would. Optional: a letter
        not prefetched is asked for when it is delivered."""
        ...
