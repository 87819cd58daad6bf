"""FHIR REST routes under /fhir: thin; parsing in search.py, queries in store/queries.py."""

from __future__ import annotations

from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.deps import StoreDep, check_accept
from gateway.errors import NotFound
from gateway.fhir.capability import capability_statement
from gateway.fhir.outcome import FHIR_JSON, outcome
from gateway.fhir.search import AppointmentQuery, parse_appointment_query
from gateway.store import queries

router = APIRouter(prefix="/fhir", dependencies=[Depends(check_accept)], tags=["FHIR"])


def base_url(request: Request) -> str:
    configured = request.app.state.settings.fhir_base_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    return Response(orjson.dumps(capability_statement(base_url(request))), media_type=FHIR_JSON)


@router.get("/Appointment/{appointment_id}", summary="Read an Appointment")
def read_appointment(appointment_id: str, request: Request, store: StoreDep) -> Response:
    with store.connect() as conn:
        found = queries.get_appointment(conn, appointment_id)
    if found is None:
        raise NotFound(f"Appointment/{appointment_id} is not known")
    etag = f'W/"{found.version_id}"'
    headers = {"ETag": etag, "Last-Modified": format_datetime(found.last_updated, usegmt=True)}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.resource, media_type=FHIR_JSON, headers=headers)


def _search_bundle(request: Request, store: StoreDep, items: list[tuple[str, str]]) -> Response:
    q = parse_appointment_query(items)
    with store.connect() as conn:
        total, resources = queries.search_appointments(conn, q)
    base = base_url(request)
    return Response(_bundle(base, items, q, total, resources), media_type=FHIR_JSON)


def _page_url(base: str, items: list[tuple[str, str]], offset: int) -> str:
    kept = [(k, v) for k, v in items if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    return f"{base}/Appointment?{urlencode(kept)}" if kept else f"{base}/Appointment"


def _bundle(
    base: str, items: list[tuple[str, str]], q: AppointmentQuery, total: int | None, resources: list[bytes]
) -> bytes:
    """Assemble the searchset from stored JSON without parsing it again."""
    links = [{"relation": "self", "url": _page_url(base, items, q.offset)}]
    has_more = len(resources) == q.count and (total is None or q.offset + q.count < total)
    if q.count and has_more:
        links.append({"relation": "next", "url": _page_url(base, items, q.offset + q.count)})
    if q.offset > 0:
        links.append({"relation": "previous", "url": _page_url(base, items, max(0, q.offset - q.count))})
    head: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        head["total"] = total
    head["link"] = links
    parts = [orjson.dumps(head)[:-1], b',"entry":[']
    for i, resource in enumerate(resources):
        rid = _id_of(resource)
        if i:
            parts.append(b",")
        parts.append(b'{"fullUrl":' + orjson.dumps(f"{base}/Appointment/{rid}") + b',"resource":')
        parts.append(resource)
        parts.append(b',"search":{"mode":"match"}}')
    parts.append(b"]}")
    return b"".join(parts)


def _id_of(resource: bytes) -> str:
    # Stored resources start {"resourceType":"Appointment","id":"<uuid>" (see finalize()).
    start = resource.index(b'"id":"') + 6
    return resource[start : resource.index(b'"', start)].decode()


@router.get("/Appointment", summary="Search Appointments")
def search_appointments(request: Request, store: StoreDep) -> Response:
    return _search_bundle(request, store, request.query_params.multi_items())


@router.post("/Appointment/_search", summary="Search Appointments (form POST)")
async def search_appointments_post(request: Request, store: StoreDep) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != "application/x-www-form-urlencoded":
        return outcome(415, "not-supported", "POST _search takes application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", errors="replace")
    items = list(request.query_params.multi_items()) + parse_qsl(body, keep_blank_values=True)
    return await run_in_threadpool(_search_bundle, request, store, items)


@router.api_route("/{resource_type}", methods=["GET"], include_in_schema=False)
async def unsupported_type(resource_type: str) -> Response:
    raise NotFound(f"resource type {resource_type!r} is not supported by this server")
