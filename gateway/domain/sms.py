"""The port to an SMS provider (R-NOT-3, R-NOT-5), and what crosses it.

Exactly once is the notifier's job with the provider's help: the notifier fixes an
``idempotency_key`` per notification before the first call and marks the row ``sending``; after
a crash it first asks :meth:`SmsSender.find_sent` whether the provider already has that SMS, and
only then sends again, with the same key. A provider that deduplicates by the key makes a second
send harmless too (docs/notifications.md, "Exactly once").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One SMS. ``to`` and ``text`` are personal data: never logged."""

    to: str
    sender: str
    text: str
    idempotency_key: str

    def __repr__(self) -> str:  # keeps the number and the text out of tracebacks and logs
        return f"OutgoingSms(sender={self.sender!r}, idempotency_key={self.idempotency_key!r})"


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    provider_id: str


class SmsSender(Protocol):
    """Raises ``TransientUpstreamError`` when trying again later may work, ``PermanentUpstreamError``
    when it will not (a refused number or sender, bad credentials)."""

    async def send(self, sms: OutgoingSms) -> SmsReceipt: ...

    async def find_sent(self, sms: OutgoingSms, since: datetime) -> SmsReceipt | None:
        """The provider's record of this SMS if it took it at or after ``since``, else None."""
        ...
