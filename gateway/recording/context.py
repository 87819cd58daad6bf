"""Which inbound messages an outbound call is made for: a context variable the worker sets.

asyncio copies the context into every task it creates, so a value set inside one coroutine of an
``asyncio.gather`` stays with that coroutine's calls. The worker sets, per person it looks up,
the ids of the batch's messages about that person; a call made for several persons at once (the
mailbox directory's ``isReachable``) carries every message id of the batch it serves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

#: Our message ids (``messages.id``) the current outbound call is made for; empty: none known
#: (the mailbox outbox, a staff refresh).
current_messages: ContextVar[tuple[int, ...]] = ContextVar("recording_messages", default=())


async def correlate(message_ids: Iterable[int], work: Awaitable[T]) -> T:
    """Await ``work`` with its outbound calls recorded as made for ``message_ids``.

    Meant for a coroutine of its own (a task of ``asyncio.gather``): the value is reset after, so
    a caller that awaits it directly is left as it was.
    """
    token = current_messages.set(tuple(sorted(set(message_ids))))
    try:
        return await work
    finally:
        current_messages.reset(token)
