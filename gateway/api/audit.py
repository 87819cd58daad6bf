"""The audit trail of the HTTP API (docs/audit.md): who read or changed whose data, and why.

One ASGI middleware sees every request: once the router has matched it, the route's template
(``scope["route"].path``) says whether it touches personal data (``AUDITED``), what kind of
resource and which path parameter is its id; the caller is what ``auth.authorize`` left in
``request.state``; the patient comes from the path (``/patients/{person_id}``), the search
parameters (``patient:identifier``, ``subject:identifier``, ``recipient:identifier``,
``patient``) or, for a read by id, from the row itself (looked up by the writer thread, not
here). Allowed and refused requests alike become one ``AuditEvent`` each (one per patient
searched for, one per item of a print-list batch), handed to the background ``AuditWriter``.

``GET /audit`` (admin) searches the trail; nothing can change it (no route, and triggers).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

import orjson
import structlog
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import auth
from gateway.api.deps import StoreDep
from gateway.errors import InvalidIdentifier, InvalidRequest
from gateway.fhir.outcome import outcome
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.mappings import Mappings
from gateway.store.audit import AuditEvent, AuditFilter, AuditWriter, search

log = structlog.get_logger(__name__)

#: Purpose of use when the caller sends no ``X-Purpose`` header, by the scope the route needs.
DEFAULT_PURPOSE = {
    auth.PLATFORM: "invånartjänst",
    auth.STAFF: "vård",
    auth.JOURNAL: "journalföring",
    auth.ADMIN: "systemförvaltning",
}
PURPOSE_HEADER = "x-purpose"
REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True, slots=True)
class Audited:
    """How a route touches personal data."""

    resource_type: str
    #: The path parameter holding the resource id.
    id_param: str | None = None
    #: read/search/create/update; by default GET with an id is read, GET without one search,
    #: POST update.
    action: str | None = None
    #: The path parameter that is the patient itself.
    patient_param: str | None = None
    #: The ids are in the JSON body (``{"ids": [...]}``): one event per id.
    body_ids: bool = False


#: Every route that reads or changes personal data, by template.
AUDITED: dict[str, Audited] = {
    "/fhir/Appointment": Audited("Appointment"),
    "/fhir/Appointment/_search": Audited("Appointment", action="search"),
    "/fhir/Appointment/{appointment_id}": Audited("Appointment", "appointment_id"),
    # Citizen self-service (docs/self-service.md): rebook or cancel one booking.
    "/fhir/Appointment/{appointment}": Audited("Appointment", "appointment", action="update"),
    # RIV-TA crm:scheduling: a citizen's schedule, bookings and changes to them.
    "/rivta/crm/scheduling": Audited("Appointment"),
    "/fhir/Communication": Audited("Communication"),
    "/fhir/Communication/{communication_id}": Audited("Communication", "communication_id"),
    "/fhir/Communication/{communication_id}/$mark-read": Audited("Communication", "communication_id"),
    "/fhir/Binary/{binary_id}": Audited("Binary", "binary_id"),
    "/journal/hl7": Audited("Message", action="create"),
    "/messages": Audited("Message"),
    "/messages/{message_id}": Audited("Message", "message_id"),
    "/messages/{message_id}/reprocess": Audited("Message", "message_id"),
    "/patients/{person_id}": Audited("Patient", "person_id", patient_param="person_id"),
    "/patients/{person_id}/refresh-bookings": Audited("Patient", "person_id", patient_param="person_id"),
    "/held": Audited("Communication"),
    "/held/{document_id}/release": Audited("Communication", "document_id"),
    "/held/{document_id}/print": Audited("Communication", "document_id"),
    "/documents/{document_id}": Audited("Communication", "document_id"),
    "/outbox": Audited("MailboxLetter"),
    "/outbox/{outbox_id}/retry": Audited("MailboxLetter", "outbox_id"),
    "/print-list": Audited("PrintItem"),
    "/print-list/handle": Audited("PrintItem", action="update", body_ids=True),
    "/print-list/unhandle": Audited("PrintItem", action="update", body_ids=True),
    "/print-list/{item_id}": Audited("PrintItem", "item_id"),
    "/print-list/{item_id}/document.pdf": Audited("PrintItem", "item_id"),
    "/reports/documents": Audited("Communication"),
    "/audit": Audited("AuditEvent"),
}

#: Routes that carry no personal data (a test checks every route is in one of the two).
NOT_AUDITED = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/fhir/metadata",
        "/fhir/CodeSystem/{code_system_id}",
        "/fhir/{resource_type}",
        # Free times of a unit: no one's booking, no one's number.
        "/fhir/Slot",
        # The staff console (a mounted app) writes its own events, with the signed-in person.
        "/console",
    }
)

#: Search parameters naming the patient (FHIR ``system|value``, or the number alone).
PATIENT_PARAMS = frozenset(
    {
        "patient:identifier",
        "patient.identifier",
        "subject:identifier",
        "subject.identifier",
        "recipient:identifier",
        "recipient.identifier",
        "patient",
    }
)

#: Paths whose request body holds what the access is about (captured as it is read).
_BODY_PATHS = ("/fhir/Appointment/_search", "/print-list/handle", "/print-list/unhandle")
_BODY_LIMIT = 65_536
_MAX_PATIENTS = 50
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PURPOSE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
#: Path prefixes of AUDITED routes: refused with 503 while the trail cannot be written.
_PREFIXES = (
    "/fhir/Appointment",
    "/rivta/",
    "/fhir/Communication",
    "/fhir/Binary",
    "/journal/",
    "/messages",
    "/patients",
    "/held",
    "/documents",
    "/outbox",
    "/print-list",
    "/reports",
    "/audit",
)


#: A personnummer or samordningsnummer as written: 12 or 10 digits, maybe with - or +.
_PERSON_NUMBER = re.compile(r"\d{6}(?:\d{2})?[-+]?\d{4}")


def _patient_value(raw: str, today: date, mappings: Mappings) -> str | None:
    """The patient as the trail keeps it: a personnummer or samordningsnummer as 12 digits
    (``YYMMDD-NNNC`` by R-ID-1's century rule), anything else without ``-`` and ``+``."""
    value = raw.rpartition("|")[2].strip()
    if _PERSON_NUMBER.fullmatch(value):
        try:
            return mappings.recognise(value, today=today).value
        except InvalidIdentifier:
            pass  # not a valid number: kept as given, so a search for it finds what it was
    return value.replace("-", "").replace("+", "")[:32] or None


def _patients_in(items: list[tuple[str, str]], today: date, mappings: Mappings) -> list[str]:
    found: list[str] = []
    for name, raw in items:
        if name in PATIENT_PARAMS:
            for part in raw.split(","):  # FHIR: a comma is OR
                value = _patient_value(part, today, mappings)
                if value is not None and value not in found:
                    found.append(value)
    return found[:_MAX_PATIENTS]


def _body_ids(body: bytes) -> list[str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list):
        return []
    return [str(i) for i in ids if isinstance(i, int | str)][:1000]


class AuditMiddleware:
    """Pure ASGI: the request's only extra cost is building the event and a queue put."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        writer: AuditWriter,
        auth_on: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.writer = writer
        self.auth_on = auth_on
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_PREFIXES) and not self.writer.accepting():
            response = outcome(503, "transient", "the audit trail cannot be written just now; try again")
            await response(scope, receive, send)
            return
        at = self.clock()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        status = 500
        body: bytearray | None = bytearray() if path in _BODY_PATHS else None

        async def receive_copy() -> Message:
            message = await receive()
            if body is not None and message["type"] == "http.request" and len(body) < _BODY_LIMIT:
                body.extend(message.get("body", b""))
            return message

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if _audited(scope) is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-request-id", request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive_copy if body is not None else receive, send_status)
        finally:
            how = _audited(scope)
            if how is not None:
                try:
                    events = self._events(scope, state, how, at, status, request_id, body)
                except Exception:  # a bug here must not hide the request's own outcome
                    log.exception("audit.event_failed", route=how[0], request_id=request_id)
                    events = []
                for event in events:
                    self.writer.record(event)

    def _events(
        self,
        scope: Scope,
        state: dict[str, Any],
        how: tuple[str, Audited],
        at: datetime,
        status: int,
        request_id: str,
        body: bytearray | None,
    ) -> list[AuditEvent]:
        template, audited = how
        method: str = scope["method"]
        params: dict[str, Any] = scope.get("path_params") or {}
        caller: auth.Caller | None = state.get("caller")
        needed = auth.required_scope(scope["path"])
        headers = dict(scope["headers"])
        # ASCII on the wire: UTF-8 percent-encoded (v%C3%A5rd) or raw UTF-8 bytes both work.
        purpose_raw = unquote(headers.get(b"x-purpose", b"").decode("utf-8", "replace")).strip()
        if not _PURPOSE.fullmatch(purpose_raw):
            purpose_raw = DEFAULT_PURPOSE.get(needed or "", "okänt")
        purpose = purpose_raw
        query_string: str = scope.get("query_string", b"").decode("latin-1")
        items = parse_qsl(query_string, keep_blank_values=True) if query_string else []
        resource_id = str(params[audited.id_param]) if audited.id_param in params else None
        resource_id = state.get("audit_resource_id", resource_id)
        if body is not None and template == "/fhir/Appointment/_search":
            form = bytes(body).decode("utf-8", "replace")
            items += parse_qsl(form, keep_blank_values=True)
        search_text = "&".join(f"{k}={v}" for k, v in items)[:4000] or None
        if method not in ("GET", "POST"):
            action = method.lower()  # a method no route takes (405): say what was tried
        elif audited.action is not None:
            action = audited.action
        elif method == "GET":
            action = "read" if audited.id_param else "search"
        else:
            action = "update"
        patients: list[str | None]
        mappings: Mappings = scope["app"].state.mappings
        today = at.astimezone(STOCKHOLM).date()
        if audited.patient_param is not None and audited.patient_param in params:
            patients = [_patient_value(str(params[audited.patient_param]), today, mappings)]
        else:
            patients = list(_patients_in(items, today, mappings)) or [None]
        ids: list[str | None] = [resource_id]
        if audited.body_ids and body is not None:
            ids = list(_body_ids(bytes(body))) or [None]
        client = scope.get("client")
        anonymous = "unauthenticated" if self.auth_on else "anonymous"
        who = caller.subject if caller is not None else anonymous
        base = AuditEvent(
            at=at,
            caller=who,
            client=caller.client if caller is not None else None,
            scope=needed,
            action=action,
            resource_type=audited.resource_type,
            resource_id=None,
            patient=None,
            purpose=purpose,
            method=method,
            route=template,
            query=search_text,
            result=status,
            request_id=request_id,
            peer=f"{client[0]}:{client[1]}" if client else None,
        )
        return [replace(base, resource_id=rid, patient=patient) for rid in ids for patient in patients]


def _audited(scope: Scope) -> tuple[str, Audited] | None:
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return None
    audited = AUDITED.get(template)
    return None if audited is None else (template, audited)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def note_resource(request: Request, resource_id: str | int | None) -> None:
    """For a route that makes the resource it is about (POST /journal/hl7: the stored message)."""
    if resource_id is not None:
        request.state.audit_resource_id = str(resource_id)


router = APIRouter(tags=["Audit"])


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@router.get("/audit", summary="The audit trail: who read or changed whose personal data (admin)")
async def read_audit(
    request: Request,
    store: StoreDep,
    patient: Annotated[str | None, Query(description="personnummer/samordningsnummer/reservnummer")] = None,
    caller: Annotated[str | None, Query(description="token subject; MSH-3|MSH-4 for MLLP")] = None,
    since: Annotated[datetime | None, Query(alias="from", description="at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="before (ISO 8601)")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0)] = 0,
) -> JSONResponse:
    for name, moment in (("from", since), ("to", until)):
        if moment is None:
            continue
        if moment.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. Z or +01:00)")
        try:
            moment.astimezone(UTC)  # the store compares in UTC
        except OverflowError:
            raise InvalidRequest(f"{name} is outside the range of dates the audit trail can hold") from None
    writer: AuditWriter = request.app.state.audit
    await run_in_threadpool(writer.flush)  # what was done before this request is in the answer
    today = request.app.state.clock().astimezone(STOCKHOLM).date()
    f = AuditFilter(
        patient=_patient_value(patient, today, request.app.state.mappings) if patient else None,
        caller=caller,
        since=since,
        until=until,
        count=count,
        offset=offset,
    )

    def query() -> tuple[int, list[dict[str, Any]]]:
        with store.connect() as conn:
            return search(conn, f)

    total, rows = await run_in_threadpool(query)
    return JSONResponse({"total": total, "items": [{k: _iso(v) for k, v in row.items()} for row in rows]})
