"""The staff print list (utskriftslista, R-DOC-5, R-DOC-9) over HTTP.

``GET /print-list`` (open, handled or all; by kind and unit; paged), ``GET /print-list/{id}``
with the document's history, ``POST /print-list/handle`` and ``/unhandle`` (one or many ids,
all or nothing), ``GET /print-list/{id}/document.pdf``. Decisions are in
``gateway.store.print_list`` and ``gateway.print_pdf``; personnummer are in these responses
(a staff view) and never logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from gateway.api.deps import StoreDep
from gateway.domain.documents import DocumentKind
from gateway.errors import InvalidRequest, NotFound
from gateway.print_pdf import render_pdf
from gateway.store import print_list
from gateway.store.print_list import PrintItem

router = APIRouter(tags=["Print list"])

_KINDS = tuple(k.value for k in DocumentKind)
#: At most this many ids in one handle/unhandle request.
MAX_IDS = 1000


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item_json(item: PrintItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "document_id": item.document_id,
        "added_at": item.added_at.isoformat(),
        "kind": item.kind,
        "unit": item.unit_hsa_id,
        "unit_name": item.unit_name,
        "title": item.title,
        "personnummer": item.patient_value,
        "patient_system": item.patient_system,
        "reason": item.reason,
        "rules": list(item.rules),
        "handled": item.handled,
        "handled_at": _iso(item.handled_at),
        "handled_by": item.handled_by,
        "outdated": item.outdated_at is not None,
        "outdated_at": _iso(item.outdated_at),
        "outdated_reason": item.outdated_reason,
        "restricted": item.restricted,
    }


class MarkRequest(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=MAX_IDS, description="print-list item ids")
    by: str = Field(min_length=1, max_length=print_list.ACTOR_MAX, description="who (user id or name)")


@router.get("/print-list", summary="The print list: open items to print, or the handled history")
def get_print_list(
    store: StoreDep,
    state: Annotated[str, Query(description="open (default), handled or all")] = "open",
    kind: Annotated[str | None, Query(description="e-kallelse, e-brev or e-remissbekräftelse")] = None,
    unit: Annotated[str | None, Query(description="the unit's HSA-id")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0)] = 0,
) -> JSONResponse:
    if state not in print_list.STATES:
        raise InvalidRequest(f"state must be one of {', '.join(print_list.STATES)}")
    if kind is not None and kind not in _KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(_KINDS)}")
    f = print_list.PrintListFilter(cast(print_list.State, state), kind, unit, count, offset)
    with store.connect() as conn:
        total, items = print_list.list_items(conn, f)
    return JSONResponse(
        {"state": state, "total": total, "offset": offset, "items": [item_json(i) for i in items]}
    )


def _mark(store: StoreDep, body: MarkRequest, *, handled: bool) -> JSONResponse:
    mark = print_list.mark_handled if handled else print_list.mark_unhandled
    with store.begin() as conn:
        result = mark(conn, body.ids, body.by)
        items = print_list.get_items(conn, body.ids)
    return JSONResponse(
        {
            "changed": list(result.changed),
            "unchanged": list(result.unchanged),
            "items": [item_json(i) for i in items],
        }
    )


@router.post("/print-list/handle", summary="Mark print-list items handled (one or many)")
def handle(store: StoreDep, body: MarkRequest) -> JSONResponse:
    """R-DOC-9. ``unchanged``: ids already handled, left as they were."""
    return _mark(store, body, handled=True)


@router.post("/print-list/unhandle", summary="Put handled print-list items back on the open list")
def unhandle(store: StoreDep, body: MarkRequest) -> JSONResponse:
    """R-DOC-9. ``unchanged``: ids that were not handled."""
    return _mark(store, body, handled=False)


@router.get("/print-list/{item_id}", summary="One print-list item with its document's history")
def get_item(item_id: int, store: StoreDep) -> JSONResponse:
    with store.connect() as conn:
        item = print_list.get_item(conn, item_id)
        if item is None:
            raise NotFound(f"print-list item {item_id} is not known")
        events = print_list.history(conn, item.document_id)
        files = print_list.attachments(conn, item.document_id)
    return JSONResponse(
        {
            **item_json(item),
            "attachments": [
                {
                    "position": a.position,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                }
                for a in files
            ],
            "history": [
                {"at": e.at.isoformat(), "event": e.event, "actor": e.actor, "detail": e.detail}
                for e in events
            ],
        }
    )


@router.get(
    "/print-list/{item_id}/document.pdf",
    summary="The letter with its attachments as one printable A4 PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_pdf(item_id: int, store: StoreDep) -> Response:
    with store.connect() as conn:
        item = print_list.get_item(conn, item_id)
        if item is None:
            raise NotFound(f"print-list item {item_id} is not known")
        doc = print_list.printable(conn, item)
    if doc is None:
        raise NotFound(f"print-list item {item_id}: its document {item.document_id} is not stored")
    pdf = render_pdf(doc)
    return Response(
        pdf,
        media_type="application/pdf",
        # The file name names the item only: no personnummer in a name that lands in Downloads.
        headers={"Content-Disposition": f'inline; filename="print-item-{item_id}.pdf"'},
    )
