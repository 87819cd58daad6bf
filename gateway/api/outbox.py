"""The mailbox outbox for staff: what waits, what went, what failed; retry a failed letter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from gateway.api.deps import StoreDep
from gateway.service import outbox

router = APIRouter(tags=["Staff"])


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=120, description="Who retries.")


@router.get("/outbox", summary="Letters to digital mailboxes and their state")
def list_outbox(
    store: StoreDep,
    state: Annotated[str | None, Query(description=", ".join(outbox.STATES))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    total, items = outbox.list_outbox(store, state=state, limit=limit, offset=offset)
    return JSONResponse({"total": total, "items": items})


@router.post("/outbox/{outbox_id}/retry", summary="Try a refused or dead letter again")
async def retry(outbox_id: int, body: Retry, request: Request, store: StoreDep) -> JSONResponse:
    await run_in_threadpool(outbox.retry, store, outbox_id, by=body.by, now=request.app.state.clock())
    return JSONResponse({"id": outbox_id, "state": outbox.PENDING})
