"""The message browser: GET /messages (search), GET /messages/{id} (one, with its ACK and what it
produced), POST /messages/{id}/reprocess (run it through the pipeline again, idempotently)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from gateway.api.deps import StoreDep
from gateway.errors import InvalidRequest, NotFound
from gateway.journal_adapter.redaction import message_view
from gateway.store import app_acks, browser, queries
from gateway.store.inbox import STATES

router = APIRouter(tags=["Messages"])


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


@router.get("/messages", summary="Search stored inbound messages")
def list_messages(
    store: StoreDep,
    state: Annotated[
        str | None, Query(description="received, processed, failed, rejected, duplicate")
    ] = None,
    type: Annotated[str | None, Query(description="MSH-9.1, e.g. SIU")] = None,
    trigger: Annotated[str | None, Query(description="MSH-9.2, e.g. S12")] = None,
    control_id: Annotated[str | None, Query(description="MSH-10")] = None,
    patient: Annotated[str | None, Query(description="personnummer/samordningsnummer/reservnummer")] = None,
    since: Annotated[datetime | None, Query(description="received at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="received before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    if state is not None and state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. Z or +01:00)")
    f = queries.MessageFilter(state, type, trigger, control_id, patient, since, until, limit, offset)
    with store.connect() as conn:
        total, rows = queries.list_messages(conn, f)
    return JSONResponse({"total": total, "items": [_jsonable(r) for r in rows]})


@router.get("/messages/{message_id}", summary="One stored message with its raw text and ACK")
def get_message(message_id: int, store: StoreDep) -> JSONResponse:
    with store.connect() as conn:
        row = queries.get_message(conn, message_id)
        outputs = browser.outputs(conn, message_id) if row is not None else []
        # Enhanced mode (docs/hl7-profile.md 5.4): the application ACK owed to the sender, if any.
        app_ack = app_acks.for_message(conn, message_id) if row is not None else None
    if row is None:
        raise NotFound(f"message {message_id} is not known")
    view = {**_jsonable(message_view(row)), "outputs": outputs}
    if app_ack is not None:
        view["application_ack"] = _jsonable(app_ack)
    return JSONResponse(view)


@router.post("/messages/{message_id}/reprocess", summary="Run a stored message through the pipeline again")
async def reprocess_message(message_id: int, store: StoreDep) -> JSONResponse:
    """Puts a processed, failed or waiting message back to ``received``; the worker processes it
    again from its raw bytes. Idempotent: what is already current stays as it is."""
    (outcome,) = await run_in_threadpool(browser.reprocess, store, [message_id])
    if outcome.before is None:
        raise NotFound(f"message {message_id} is not known")
    if outcome.before not in (*browser.REPROCESSABLE, "received"):
        raise InvalidRequest(outcome.note)
    return JSONResponse(
        {"id": message_id, "state": outcome.after, "previous_state": outcome.before, "note": outcome.note}
    )
