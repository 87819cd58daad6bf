"""The FHIR face of citizen self-service (issue 21, docs/self-service.md): thin, over
``gateway/service/self_service.py``.

- ``GET /fhir/Slot?schedule.actor=<unit HSA-id>&service-type=<time type>&start=ge..&start=le..``:
  free times (R-BK-7, R-BK-9), a searchset of ``Slot`` resources whose ids carry the slot.
- ``POST /fhir/Appointment``: book a slot (``slot`` reference, or ``start``/``end`` +
  ``serviceType`` + a Location participant). ``Idempotency-Key`` (or ``If-None-Exist``) names
  the command; without one, a key is derived from the request, so a retry of the same request is
  the same command.
- ``PATCH``/``PUT /fhir/Appointment/{id}``: rebook (new ``start``/``end`` or ``slot``) or cancel
  (``status: cancelled`` with ``cancelationReason``).

Who acts: the platform scope (``gateway/api/auth.py``) is the citizen platform, which
authenticated the citizen; it names the acting person in the header ``X-Acting-Person``
(personnummer or samordningsnummer, 12 digits). The patient is the Appointment's Patient
participant (POST) or the stored Appointment's patient (PATCH/PUT); the rules decide whether the
actor may act for them (R-BK-6). Errors are OperationOutcomes: 400 malformed, 403 not allowed,
404 unknown, 409 not now (deadline, journal, slot taken, key reuse), 422 never this way (hidden
time type); 503 when the journal cannot be reached (retry with the same key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gateway.api.deps import StoreDep, check_accept
from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.errors import InboundError, InvalidRequest, NotFound
from gateway.fhir.appointment import BOOKING_ID_SYSTEM, appointment_id
from gateway.fhir.outcome import FHIR_JSON
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.service.self_service import Outcome, SelfService
from gateway.store import booking_commands

router = APIRouter(prefix="/fhir", dependencies=[Depends(check_accept)], tags=["FHIR self-service"])

ACTOR_HEADER = "X-Acting-Person"
HSA_SYSTEM = "urn:oid:1.2.752.29.4.19"
#: The longest free-time search (days).
MAX_DAYS = 62


def _service(request: Request) -> SelfService:
    service: SelfService | None = getattr(request.app.state, "self_service", None)
    if service is None:
        raise NotFound(
            "self-service is not configured: the journal's booking service is not an XChange service"
        )
    return service


def _person(request: Request, text: str, what: str) -> PersonId:
    try:
        person: PersonId = request.app.state.mappings.recognise(text.strip())
    except InboundError as exc:
        raise InvalidRequest(f"{what}: {exc}") from exc
    return person


def _actor(request: Request) -> PersonId:
    text = request.headers.get(ACTOR_HEADER)
    if not text:
        raise InvalidRequest(f"header {ACTOR_HEADER} (the acting citizen's personnummer) is required")
    return _person(request, text, ACTOR_HEADER)


def _token(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else value


def _when(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {value[:40]!r} is not a FHIR dateTime") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=STOCKHOLM)
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """Swedish local time with its offset, as the gateway's Appointments carry it."""
    return moment.astimezone(STOCKHOLM).isoformat(timespec="seconds")


# --- slots ------------------------------------------------------------------------------------


def slot_id(unit: str, time_type: str, start: datetime, end: datetime) -> str:
    raw = f"{unit}|{time_type}|{int(start.timestamp())}|{int(end.timestamp())}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_slot_id(text: str) -> tuple[str, str, datetime, datetime]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        unit, time_type, start, end = raw.split("|")
        return unit, time_type, datetime.fromtimestamp(int(start), UTC), datetime.fromtimestamp(int(end), UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Slot/{text[:60]} is not a slot this server gave") from exc


def _slot(unit: str, time_type: str, start: datetime, end: datetime, code_system: str) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "id": slot_id(unit, time_type, start, end),
        "schedule": {"identifier": {"system": HSA_SYSTEM, "value": unit}, "display": unit},
        "serviceType": [{"coding": [{"system": code_system, "code": time_type}]}],
        "status": "free",
        "start": _iso(start),
        "end": _iso(end),
    }


@router.get("/Slot", summary="Free times per care unit and time type (citizen self-service)")
async def search_slots(request: Request) -> Response:
    service = _service(request)
    items = list(request.query_params.multi_items())
    known = {"schedule.actor", "service-type", "start", "_count"}
    for key, _ in items:
        if key not in known:
            raise InvalidRequest(
                f"Slot search: unknown parameter {key!r} (known: {', '.join(sorted(known))})"
            )
    units = [_token(v).removeprefix("Location/") for k, v in items if k == "schedule.actor"]
    types = [_token(v) for k, v in items if k == "service-type"]
    if len(units) != 1 or len(types) != 1:
        raise InvalidRequest(
            "Slot search needs exactly one schedule.actor (unit HSA-id) and one service-type"
        )
    today = datetime.now(UTC).astimezone(STOCKHOLM).date()
    first, last = today, today + timedelta(days=14)
    for k, v in items:
        if k != "start":
            continue
        prefix, value = (v[:2], v[2:]) if v[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", v)
        try:
            day = date.fromisoformat(value[:10])
        except ValueError as exc:
            raise InvalidRequest(f"start: {v[:40]!r} is not a date") from exc
        if prefix in ("ge", "gt", "eq"):
            first = day
        if prefix in ("le", "lt", "eq"):
            last = day
    if last < first or (last - first).days > MAX_DAYS:
        raise InvalidRequest(f"start: the range must be 0..{MAX_DAYS} days")
    actor = _actor(request) if request.headers.get(ACTOR_HEADER) else None
    slots = await service.free_slots(actor, units[0], types[0], first, last)
    system = request.app.state.mappings.time_types.code_system
    entries = [{"resource": _slot(units[0], types[0], s.start, s.end, system)} for s in slots]
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


# --- appointments -----------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def _dicts(value: object, name: str) -> list[dict[str, Any]]:
    """A FHIR array of objects, or a 400 naming the element."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidRequest(f"{name} must be an array of objects")
    return value


def _obj(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be an object")
    return value


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


def _key(request: Request, *parts: object) -> str:
    given = request.headers.get("Idempotency-Key") or request.headers.get("If-None-Exist")
    if given:
        return given.strip()[:200]
    return "auto:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _slot_or_times(body: dict[str, Any]) -> tuple[str | None, str | None, datetime, datetime]:
    """(unit, time type, start, end) from ``slot`` or from ``start``/``end``/``serviceType``/Location."""
    slots = _dicts(body.get("slot"), "slot")
    if slots:
        ref = str(slots[0].get("reference", ""))
        if not ref.startswith("Slot/"):
            raise InvalidRequest("slot[0].reference must be Slot/<id> from a Slot search")
        slot_unit, slot_type, slot_start, slot_end = parse_slot_id(ref.removeprefix("Slot/"))
        return slot_unit, slot_type, slot_start, slot_end
    if "start" not in body or "end" not in body:
        raise InvalidRequest("give slot (a Slot reference) or start and end")
    time_type: str | None = None
    for concept in _dicts(body.get("serviceType"), "serviceType"):
        for coding in _dicts(concept.get("coding"), "serviceType.coding"):
            time_type = _string(coding.get("code"), "serviceType.coding.code") or time_type
    unit: str | None = None
    for p in _dicts(body.get("participant"), "participant"):
        actor = _obj(p.get("actor"), "participant.actor")
        if actor.get("type") == "Location" or str(actor.get("reference", "")).startswith("Location/"):
            value = _obj(actor.get("identifier"), "participant.actor.identifier").get("value")
            unit = _string(value, "participant.actor.identifier.value") if value is not None else unit
    start = _when(_string(body["start"], "start"), "start")
    return unit, time_type, start, _when(_string(body["end"], "end"), "end")


def _patient_of(request: Request, body: dict[str, Any]) -> PersonId:
    for p in _dicts(body.get("participant"), "participant"):
        actor = _obj(p.get("actor"), "participant.actor")
        if actor.get("type") == "Patient" or str(actor.get("reference", "")).startswith("Patient"):
            value = _obj(actor.get("identifier"), "participant.actor.identifier").get("value")
            if value:
                return _person(request, str(value), "participant Patient identifier")
    raise InvalidRequest("participant: a Patient with an identifier (personnummer) is required")


def _appointment(
    service: SelfService,
    booking_id: str,
    patient: PersonId,
    unit: str,
    status: str,
    start: datetime | None,
    end: datetime | None,
    time_type: str | None,
    code_system: str,
    reason: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id(service.namespace, booking_id),
        "identifier": [{"system": BOOKING_ID_SYSTEM, "value": f"{service.namespace}|{booking_id}"}],
        "status": status,
        "participant": [
            {"actor": {"type": "Patient", "identifier": {"value": patient.value}}, "status": "accepted"},
            {
                "actor": {"type": "Location", "identifier": {"system": HSA_SYSTEM, "value": unit}},
                "status": "accepted",
            },
        ],
    }
    if time_type:
        resource["serviceType"] = [{"coding": [{"system": code_system, "code": time_type}]}]
    if start is not None and end is not None:
        resource["start"] = _iso(start)
        resource["end"] = _iso(end)
    if reason:
        resource["cancelationReason"] = {"text": reason}
    return resource


def _answer(resource: dict[str, Any], status: int, base: str) -> Response:
    headers = {"Location": f"{base}/Appointment/{resource['id']}"}
    return Response(orjson.dumps(resource), status_code=status, media_type=FHIR_JSON, headers=headers)


def _base(request: Request) -> str:
    configured = request.app.state.settings.fhir_base_url
    return str(configured).rstrip("/") if configured else str(request.base_url).rstrip("/") + "/fhir"


@router.post("/Appointment", summary="Book a free slot (citizen self-service)")
async def book(request: Request) -> Response:
    service = _service(request)
    actor = _actor(request)
    body = await _body(request)
    if body.get("resourceType") != "Appointment":
        raise InvalidRequest("resourceType must be Appointment")
    patient = _patient_of(request, body)
    unit, time_type, start, end = _slot_or_times(body)
    if not unit or not time_type:
        raise InvalidRequest(
            "the unit (Location participant HSA-id) and the time type (serviceType) are required"
        )
    reason = body.get("description") if isinstance(body.get("description"), str) else None
    key = _key(request, "book", actor.value, patient.value, unit, time_type, start, end)
    outcome = await service.book(
        key, actor, patient, unit=unit, start=start, end=end, time_type=time_type, reason=reason
    )
    system = request.app.state.mappings.time_types.code_system
    resource = _appointment(
        service, outcome.booking_id, patient, unit, "booked", start, end, time_type, system
    )
    return _answer(resource, 200 if outcome.replayed else 201, _base(request))


async def _change(request: Request, appointment: str, store: StoreDep, body: dict[str, Any]) -> Response:
    service = _service(request)
    actor = _actor(request)
    with store.connect() as conn:
        ref = booking_commands.appointment_ref(conn, appointment)
    if ref is None or ref.namespace != service.namespace:
        raise NotFound(f"Appointment/{appointment} is not known")
    stored = orjson.loads(ref.resource)
    unit = next(
        (
            (p.get("actor") or {}).get("identifier", {}).get("value")
            for p in stored.get("participant") or []
            if (p.get("actor") or {}).get("type") == "Location"
        ),
        None,
    )
    if not unit:
        raise NotFound(f"Appointment/{appointment} names no care unit: it cannot be changed here")
    patient = _person(request, ref.patient_value, "the Appointment's patient")
    time_type = next(
        (c.get("code") for s in stored.get("serviceType") or [] for c in s.get("coding") or []), None
    )
    system = request.app.state.mappings.time_types.code_system
    status = body.get("status")
    outcome: Outcome
    if status == "cancelled":
        concept = _obj(body.get("cancelationReason"), "cancelationReason")
        text = concept.get("text")
        reason = text if isinstance(text, str) else None
        if not reason:
            codings = _dicts(concept.get("coding"), "cancelationReason.coding")
            found = next((c.get("display") or c.get("code") for c in codings), None)
            reason = found if isinstance(found, str) else None
        if not reason:
            raise InvalidRequest("cancelationReason is required to cancel")
        key = _key(request, "cancel", actor.value, appointment)
        outcome = await service.cancel(
            key, actor, patient, unit=unit, booking_id=ref.booking_id, reason=reason
        )
        resource = _appointment(
            service, outcome.booking_id, patient, unit, "cancelled", None, None, time_type, system, reason
        )
        if stored.get("start"):
            resource["start"], resource["end"] = stored["start"], stored["end"]
        return _answer(resource, 200, _base(request))
    if status not in (None, "booked") or not isinstance(status, str | None):
        raise InvalidRequest(f"status {status!r}: a citizen can only cancel (cancelled) or rebook (booked)")
    if "slot" in body or ("start" in body and body.get("start") != stored.get("start")):
        new_unit, _, start, end = _slot_or_times({**body, "participant": stored.get("participant")})
        if new_unit and new_unit != unit:
            raise InvalidRequest("a rebooking stays at the same care unit")
        key = _key(request, "reschedule", actor.value, appointment, start, end)
        outcome = await service.reschedule(
            key, actor, patient, unit=unit, booking_id=ref.booking_id, start=start, end=end
        )
        booked: JournalBooking | None = outcome.booking
        resource = _appointment(
            service,
            outcome.booking_id,
            patient,
            unit,
            "booked",
            booked.start if booked else start,
            booked.end if booked else end,
            time_type,
            system,
        )
        return _answer(resource, 200, _base(request))
    raise InvalidRequest("nothing to change: give a new start/end or slot (rebook), or status cancelled")


@router.patch("/Appointment/{appointment}", summary="Rebook or cancel (citizen self-service)")
async def patch_appointment(appointment: str, request: Request, store: StoreDep) -> Response:
    return await _change(request, appointment, store, await _body(request))


@router.put("/Appointment/{appointment}", summary="Rebook or cancel (citizen self-service)")
async def put_appointment(appointment: str, request: Request, store: StoreDep) -> Response:
    body = await _body(request)
    if body.get("resourceType") != "Appointment" or body.get("id") not in (None, appointment):
        raise InvalidRequest("PUT needs the Appointment with its own id")
    return await _change(request, appointment, store, body)
