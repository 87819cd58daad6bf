"""Held documents for staff (R-ID-4): ``GET /held``, release, or send to the print list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from gateway.api.deps import StoreDep
from gateway.service import held

router = APIRouter(tags=["Staff"])


class StaffDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=120, description="Who decides (a staff member's id or name).")
    why: str = Field(min_length=1, max_length=2000, description="Why, e.g. what was agreed with the person.")


def _answer(decision: held.Decision) -> dict[str, Any]:
    return {
        "document_id": decision.document_id,
        "outcome": decision.outcome.value,
        "rules": list(decision.rules),
        "reason": decision.reason,
    }


@router.get("/held", summary="Documents held for a staff decision (R-ID-4)")
def list_held(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    total, items = held.list_held(store, limit=limit, offset=offset)
    return JSONResponse({"total": total, "items": items})


@router.post("/held/{document_id}/release", summary="Release a held document to its recipients")
async def release(document_id: str, body: StaffDecision, request: Request, store: StoreDep) -> JSONResponse:
    state = request.app.state
    decision = await held.release(
        store,
        document_id,
        by=body.by,
        why=body.why,
        accounts=state.accounts,
        mailbox=state.mailbox,
        register=state.register,
        notifications=state.notification_policy,
        mappings=state.mappings,
        unit_rules=state.settings.unit_rules,
        now=state.clock(),
    )
    return JSONResponse(_answer(decision))


@router.post("/held/{document_id}/print", summary="Send a held document to the print list instead")
async def print_instead(
    document_id: str, body: StaffDecision, request: Request, store: StoreDep
) -> JSONResponse:
    state = request.app.state
    decision = await run_in_threadpool(
        held.send_to_print_list,
        store,
        document_id,
        by=body.by,
        why=body.why,
        mappings=state.mappings,
        now=state.clock(),
    )
    return JSONResponse(_answer(decision))
