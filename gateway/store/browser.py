"""The message browser's store side: what a message produced, and running it again.

**Outputs**: the FHIR resources whose current version a message made (the appointments' and
documents' ``last_message_id``).

**Reprocess**: run stored messages through the pipeline again.

The worker re-reads every message from its raw bytes, and processing is idempotent: a booking's
version changes only when its content does, a document's only when its source does, and an
older message changes nothing a newer one has set. So reprocessing puts the message back to
``received`` and the worker does the rest; reprocessing it again while it waits changes nothing.

Only messages the gateway accepted can be reprocessed: a ``rejected`` message was answered AE/AR
(the journal was told to send it again, corrected), a ``duplicate`` is the original's repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from gateway.store.inbox import FAILED, PROCESSED, RECEIVED, WAITING
from gateway.store.tables import appointments, documents, messages

#: The states a message can be reprocessed from.
REPROCESSABLE = (PROCESSED, FAILED, WAITING)


@dataclass(frozen=True, slots=True)
class Outcome:
    message_id: int
    before: str | None  # None: no such message
    after: str | None
    note: str

    @property
    def queued(self) -> bool:
        return self.after == RECEIVED


def reprocess(engine: Engine, message_ids: Iterable[int]) -> list[Outcome]:
    """Put each message back to ``received`` if it may be; say for each what happened."""
    out: list[Outcome] = []
    with engine.begin() as conn:
        for message_id in message_ids:
            row = conn.execute(select(messages.c.state).where(messages.c.id == message_id)).first()
            if row is None:
                out.append(Outcome(message_id, None, None, "no such message"))
                continue
            state = row.state
            if state == RECEIVED:
                out.append(Outcome(message_id, state, state, "already waiting to be processed"))
                continue
            if state not in REPROCESSABLE:
                out.append(
                    Outcome(
                        message_id,
                        state,
                        state,
                        f"a {state} message is not processed again (only {', '.join(REPROCESSABLE)})",
                    )
                )
                continue
            # Guarded by the state read above: a worker finishing the message meanwhile wins.
            done = conn.execute(
                update(messages)
                .where(messages.c.id == message_id, messages.c.state == state)
                .values(state=RECEIVED, error=None, retry_at=None)
            )
            if done.rowcount:
                out.append(Outcome(message_id, state, RECEIVED, "queued for processing"))
            else:
                out.append(Outcome(message_id, state, state, "changed meanwhile; try again"))
    return out


def outputs(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    """The resources this message last changed: type, id, version, served or not and why."""
    found: list[dict[str, Any]] = []
    for row in conn.execute(
        select(
            appointments.c.id,
            appointments.c.version_id,
            appointments.c.visible,
            appointments.c.withheld_reason,
        ).where(appointments.c.last_message_id == message_id)
    ):
        found.append(
            {
                "resource": f"Appointment/{row.id}",
                "version": row.version_id,
                "served": bool(row.visible),
                "why_not": row.withheld_reason,
            }
        )
    for row in conn.execute(
        select(documents.c.id, documents.c.version_id, documents.c.visible, documents.c.outcome).where(
            documents.c.last_message_id == message_id
        )
    ):
        found.append(
            {
                "resource": f"Communication/{row.id}",
                "version": row.version_id,
                "served": bool(row.visible),
                "outcome": row.outcome,
            }
        )
    return found
