"""FHIR REST routes under /fhir: thin; parsing in search.py, queries in store/queries.py."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.deps import StoreDep, check_accept
from gateway.domain.query import AppointmentQuery, CommunicationQuery
from gateway.errors import InvalidRequest, NotFound
from gateway.fhir import communication
from gateway.fhir.capability import capability_statement
from gateway.fhir.communication_search import parse_communication_query
from gateway.fhir.outcome import FHIR_JSON, outcome
from gateway.fhir.search import parse_appointment_query
from gateway.service import document_flow
from gateway.store import documents, queries
from gateway.store.queries import StoredResource

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


def _page_url(base: str, items: list[tuple[str, str]], offset: int, kind: str = "Appointment") -> str:
    kept = [(k, v) for k, v in items if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    return f"{base}/{kind}?{urlencode(kept)}" if kept else f"{base}/{kind}"


def _bundle(
    base: str,
    items: list[tuple[str, str]],
    q: AppointmentQuery | CommunicationQuery,
    total: int | None,
    resources: list[bytes],
    kind: str = "Appointment",
) -> bytes:
    """Assemble the searchset from stored JSON without parsing it again."""
    links = [{"relation": "self", "url": _page_url(base, items, q.offset, kind)}]
    has_more = len(resources) == q.count and (total is None or q.offset + q.count < total)
    if q.count and has_more:
        links.append({"relation": "next", "url": _page_url(base, items, q.offset + q.count, kind)})
    if q.offset > 0:
        links.append(
            {"relation": "previous", "url": _page_url(base, items, max(0, q.offset - q.count), kind)}
        )
    head: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        head["total"] = total
    head["link"] = links
    parts = [orjson.dumps(head)[:-1], b',"entry":[']
    for i, resource in enumerate(resources):
        rid = _id_of(resource)
        if i:
            parts.append(b",")
        parts.append(b'{"fullUrl":' + orjson.dumps(f"{base}/{kind}/{rid}") + b',"resource":')
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


def _read(found: StoredResource | None, what: str, request: Request) -> Response:
    if found is None:
        raise NotFound(f"{what} is not known")
    etag = f'W/"{found.version_id}"'
    headers = {"ETag": etag, "Last-Modified": format_datetime(found.last_updated, usegmt=True)}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.resource, media_type=FHIR_JSON, headers=headers)


@router.get("/Communication/{communication_id}", summary="Read a Communication (an e-document)")
def read_communication(communication_id: str, request: Request, store: StoreDep) -> Response:
    with store.connect() as conn:
        found = documents.get_communication(conn, communication_id)
    return _read(found, f"Communication/{communication_id}", request)


def _communication_bundle(request: Request, store: StoreDep, items: list[tuple[str, str]]) -> Response:
    q = parse_communication_query(items)
    with store.connect() as conn:
        total, resources = documents.search_communications(conn, q)
    body = _bundle(base_url(request), items, q, total, resources, "Communication")
    return Response(body, media_type=FHIR_JSON)


@router.get("/Communication", summary="Search Communications (e-documents)")
def search_communications(request: Request, store: StoreDep) -> Response:
    return _communication_bundle(request, store, request.query_params.multi_items())


@router.post("/Communication/{communication_id}/$mark-read", summary="The citizen opened the document")
async def mark_read(communication_id: str, request: Request, store: StoreDep) -> Response:
    """Body: a Parameters resource with ``readAt`` (dateTime with a time zone)."""
    read_at = _read_at(await request.body())
    now: datetime = request.app.state.clock()

    def write() -> StoredResource | None:
        with store.begin() as conn:
            document_flow.mark_read(conn, communication_id, read_at, now)
        with store.connect() as conn:
            return documents.get_communication(conn, communication_id)

    found = await run_in_threadpool(write)
    return _read(found, f"Communication/{communication_id}", request)


def _read_at(body: bytes) -> datetime:
    try:
        params = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(params, dict) or params.get("resourceType") != "Parameters":
        raise InvalidRequest("the body must be a FHIR Parameters resource with readAt")
    values = [p for p in params.get("parameter") or [] if isinstance(p, dict) and p.get("name") == "readAt"]
    if len(values) != 1 or not isinstance(values[0].get("valueDateTime"), str):
        raise InvalidRequest("Parameters must have exactly one readAt with a valueDateTime")
    raw = values[0]["valueDateTime"]
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"readAt {raw!r} is not a dateTime") from exc
    if moment.tzinfo is None or "T" not in raw:
        raise InvalidRequest(f"readAt {raw!r} needs a time and a time zone")
    return moment


# Binary answers with the attachment's own media type, so it is not behind check_accept.
binary_router = APIRouter(prefix="/fhir", tags=["FHIR"])


@binary_router.get("/Binary/{binary_id}", summary="An attachment (bilaga) of a Communication")
def read_binary(binary_id: str, store: StoreDep) -> Response:
    with store.connect() as conn:
        found = documents.get_binary(conn, binary_id)
    if found is None:
        raise NotFound(f"Binary/{binary_id} is not known")
    disposition = f'inline; filename="{found.filename.replace(chr(34), "")}"'
    return Response(found.data, media_type=found.content_type, headers={"Content-Disposition": disposition})


@router.get("/CodeSystem/{code_system_id}", summary="A CodeSystem the gateway publishes")
def read_code_system(code_system_id: str) -> Response:
    if code_system_id not in communication.CODE_SYSTEMS:
        raise NotFound(f"CodeSystem/{code_system_id} is not known")
    return Response(orjson.dumps(communication.code_system(code_system_id)), media_type=FHIR_JSON)


@router.api_route("/{resource_type}", methods=["GET"], include_in_schema=False)
async def unsupported_type(resource_type: str) -> Response:
    raise NotFound(f"resource type {resource_type!r} is not supported by this server")
