"""Domain BookingEvent -> FHIR R4 Appointment JSON, checked before it is stored.

:func:`check` first tries :func:`conforms`, a strict check of exactly the shapes
:func:`build_appointment` produces (~20 times cheaper than the model), and only when that
does not vouch for a resource asks fhir.resources (R4B), whose verdict then decides. So a
resource is stored only if fhir.resources would accept it: :func:`conforms` is stricter than
the model everywhere (``tests/unit/test_fhir_conformance.py`` holds it to that, and proves the
mapping produces valid FHIR over its whole input space, with hypothesis).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fhir.resources.R4B.appointment import Appointment

from gateway.domain.booking import BookingEvent, Resource
from gateway.domain.query import BOOKING_ID_SYSTEM as BOOKING_ID_SYSTEM
from gateway.domain.query import content_hash as content_hash
from gateway.mappings import Mappings

_ID_NAMESPACE = uuid.UUID("6f1c2b1e-4a7d-5b8e-9c3f-0d2e1a4b5c6d")
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def appointment_id(namespace: str, booking_id: str) -> str:
    """A stable FHIR id for a booking that reveals nothing about it."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}|{booking_id}"))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


#: Whitespace FHIR's string (``[ \r\n\t\S]+``) has no room for: a no-break space, a form feed,
#: the other Unicode spaces, and the byte-order mark (whitespace to the schema's ECMAScript ``\s``,
#: not to Python's). Each becomes a plain space, so the official FHIR R4 JSON schema takes what a
#: journal typed (a name pasted from a word processor).
_ODD_SPACE = re.compile(r"[^\S \r\n\t]|\ufeff")


def _text(value: str | None) -> str | None:
    """A journal's text as a FHIR string: odd whitespace made a space, trimmed; None if empty."""
    if not value:
        return None
    if _ODD_SPACE.search(value) is not None:
        value = _ODD_SPACE.sub(" ", value)
    return value.strip() or None


def build_appointment(event: BookingEvent, mappings: Mappings) -> dict[str, Any]:
    """The Appointment without ``meta`` (added when stored, so content can be compared)."""
    patient_system = mappings.fhir_system_for(event.patient.authority)
    hsa_system = mappings.identifiers.hsa.fhir_system
    participants: list[dict[str, Any]] = [
        {
            "actor": {
                "type": "Patient",
                "identifier": {"system": patient_system, "value": event.patient.value},
            },
            "required": "required",
            "status": "accepted",
        }
    ]
    # AIG people are primary performers, AIP personnel secondary; decided by the segment the
    # resource came from (the same person in both segments is listed once for each role).
    performers = [(res, "PPRF", "primary performer") for res in event.practitioners]
    performers += [(res, "SPRF", "secondary performer") for res in event.personnel]
    for res, code, display in performers:
        participants.append(
            {
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}],
                "actor": _actor("Practitioner", res, hsa_system),
                "required": "required",
                "status": "accepted",
            }
        )
    for res in event.devices:  # AIG equipment (AIG-4, mappings/resource_types.yaml)
        participants.append(
            {
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "DEV", "display": "device"}]}],
                "actor": _actor("Device", res, hsa_system),
                "required": "required",
                "status": "accepted",
            }
        )
    for res in event.locations:
        participants.append(
            {
                "actor": _actor("Location", res, hsa_system),
                "required": "required",
                "status": "accepted",
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id(event.namespace, event.booking_id),
        "identifier": [
            {"system": BOOKING_ID_SYSTEM, "value": _text(f"{event.namespace}|{event.booking_id}") or "|"}
        ],
        "status": event.status,
    }
    cancelation_reason = _text(event.cancelation_reason)
    if event.status == "cancelled" and cancelation_reason:
        resource["cancelationReason"] = {"text": cancelation_reason}
    tt_table = mappings.time_types
    tt = tt_table.time_types.get(event.time_type or "")
    if tt is not None:
        kind = tt_table.kinds[tt.kind]
        resource["serviceCategory"] = [
            {"coding": [{"system": V3_ACT_CODE, "code": kind.act_code}], "text": kind.display}
        ]
        resource["serviceType"] = [
            {
                "coding": [{"system": tt_table.code_system, "code": event.time_type, "display": tt.display}],
                "text": tt.display,
            }
        ]
        resource["appointmentType"] = {"coding": [{"system": V2_0276, "code": tt.appointment_type}]}
    description = _text(event.reason)
    if description:
        resource["description"] = description
    instruction = _text(event.patient_instruction)
    if instruction:  # NTE-4 PI only; other notes never leave the gateway
        resource["patientInstruction"] = instruction
    resource["start"] = _iso(event.start)
    resource["end"] = _iso(event.end)
    resource["minutesDuration"] = event.minutes
    resource["participant"] = participants
    return resource


def _actor(kind: str, res: Resource, hsa_system: str) -> dict[str, Any]:
    """A reference by identifier: an HSA-id only for a value of the HSA-id form (the adapter
    decides), any other id in the sender's own system. A location's room is in its display, so a
    change of room is a change of the Appointment."""
    actor: dict[str, Any] = {"type": kind}
    hsa_id, local_id = _text(res.hsa_id), _text(res.local_id)
    if hsa_id:
        actor["identifier"] = {"system": hsa_system, "value": hsa_id}
    elif local_id and res.local_system:
        actor["identifier"] = {"system": res.local_system, "value": local_id}
    display = _text(res.name)
    room_id, room_name = _text(res.room_id), _text(res.room_name)
    if room_id or room_name:
        room = room_name or f"rum {room_id}"
        if room_name and room_id and room_id != room_name:
            room = f"{room_name} ({room_id})"
        display = f"{display}, {room}" if display else room
    if display:
        actor["display"] = display
    return actor


def _with_meta(resource: dict[str, Any], version_id: int, last_updated: datetime) -> dict[str, Any]:
    return {
        "resourceType": resource["resourceType"],
        "id": resource["id"],
        "meta": {
            "versionId": str(version_id),
            "lastUpdated": last_updated.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        },
        **{k: v for k, v in resource.items() if k not in ("resourceType", "id")},
    }


def check(resource: dict[str, Any]) -> None:
    """Raise (a ValueError) unless the resource is valid FHIR R4 (the R4B model decides).

    The strict :func:`conforms` vouches for what the mapping normally produces; anything else
    (an unusual character, a shape it does not know) goes to the model, as every resource did
    before (bench/README.md, finding 7)."""
    if not conforms(resource):
        Appointment.model_validate(resource)


# --- conforms(): the shapes build_appointment produces, each rule at least as strict as FHIR's.

#: FHIR string: not empty, at most 1 MiB; here also no leading/trailing whitespace, no control
#: characters but tab/LF/CR inside, no lone surrogates (which no JSON encoder accepts).
_STRING_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
#: FHIR code: no leading/trailing whitespace, single spaces inside (here: printable, no controls).
_CODE = re.compile(r"[^\s\x00-\x1f\ud800-\udfff]+(?: [^\s\x00-\x1f\ud800-\udfff]+)*")
#: FHIR uri is any non-whitespace; here printable ASCII only.
_URI = re.compile(r"[!-~]+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: FHIR instant (the R4 regex, anchored by fullmatch); the date itself is checked by datetime.
_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
_MAX_STRING = 1024 * 1024
_MAX_POSITIVE_INT = 2_147_483_647
#: Required bindings (FHIR R4 value sets): AppointmentStatus, ParticipantRequired, ParticipationStatus.
_APPOINTMENT_STATUS = frozenset(
    {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
     "entered-in-error", "checked-in", "waitlist"}
)  # fmt: skip
_PARTICIPANT_REQUIRED = frozenset({"required", "optional", "information-only"})
_PARTICIPATION_STATUS = frozenset({"accepted", "declined", "tentative", "needs-action"})
_TOP_LEVEL = frozenset(
    {"resourceType", "id", "identifier", "status", "cancelationReason", "serviceCategory",
     "serviceType", "appointmentType", "description", "patientInstruction", "start", "end",
     "minutesDuration", "participant"}
)  # fmt: skip
_IDENTIFIER = frozenset({"system", "value"})
_CODEABLE = frozenset({"coding", "text"})
_CODING = frozenset({"system", "code", "display"})
_PARTICIPANT = frozenset({"type", "actor", "required", "status"})
_REFERENCE = frozenset({"type", "identifier", "display"})


def conforms(resource: dict[str, Any]) -> bool:
    """Whether the resource has only the shapes :func:`build_appointment` produces, each valid.

    False does not mean invalid, only "not vouched for here": :func:`check` then asks the model.
    """
    try:
        return _appointment(resource)
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def _string(value: Any) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= _MAX_STRING
        and value.strip() == value
        and _STRING_BAD.search(value) is None
    )


def _code(value: Any) -> bool:
    return type(value) is str and _CODE.fullmatch(value) is not None


def _uri(value: Any) -> bool:
    return type(value) is str and len(value) <= _MAX_STRING and _URI.fullmatch(value) is not None


def _instant(value: Any) -> bool:
    if type(value) is not str or _INSTANT.fullmatch(value) is None:
        return False
    return datetime.fromisoformat(value).tzinfo is not None  # ValueError for 30 February


def _fields(value: Any, allowed: frozenset[str]) -> bool:
    """A non-empty JSON object with no other keys than ``allowed``."""
    return type(value) is dict and bool(value) and value.keys() <= allowed


def _identifier(value: Any) -> bool:
    if not _fields(value, _IDENTIFIER):
        return False
    return ("system" not in value or _uri(value["system"])) and (
        "value" not in value or _string(value["value"])
    )


def _coding(value: Any) -> bool:
    if not _fields(value, _CODING):
        return False
    return (
        ("system" not in value or _uri(value["system"]))
        and ("code" not in value or _code(value["code"]))
        and ("display" not in value or _string(value["display"]))
    )


def _codeable(value: Any) -> bool:
    if not _fields(value, _CODEABLE):
        return False
    if "coding" in value and not _list_of(value["coding"], _coding):
        return False
    return "text" not in value or _string(value["text"])


def _list_of(value: Any, item: Callable[[Any], bool]) -> bool:
    return type(value) is list and bool(value) and all(item(v) for v in value)


_PLAIN_JSON_ONLY = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _not_plain_json(value: Any) -> Any:
    raise TypeError(type(value).__name__)


class _Verdicts:
    """A check's verdicts on values already seen, by their exact JSON.

    The same practitioners, locations and time types recur in most bookings, and a verdict
    depends on the value alone. The key is the JSON the value is stored and served as (orjson,
    keys in their order), so a verdict is about exactly what the platform gets. Datetimes,
    dataclasses and subclasses of str, int, dict and list are not written but go to the check
    itself (which takes none of them), as does anything else orjson cannot write. Bounded:
    forgotten all at once when full."""

    def __init__(self, check: Callable[[Any], bool], limit: int = 4096) -> None:
        self._check = check
        self._limit = limit
        self._seen: dict[bytes, bool] = {}

    def __call__(self, value: Any) -> bool:
        try:
            key = orjson.dumps(value, default=_not_plain_json, option=_PLAIN_JSON_ONLY)
        except TypeError:
            return self._check(value)
        verdict = self._seen.get(key)
        if verdict is None:
            verdict = self._check(value)
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen[key] = verdict
        return verdict


def _reference(value: Any) -> bool:
    if not _fields(value, _REFERENCE):
        return False
    return (
        ("type" not in value or _uri(value["type"]))
        and ("identifier" not in value or _identifier(value["identifier"]))
        and ("display" not in value or _string(value["display"]))
    )


def _participant(value: Any) -> bool:
    if not _fields(value, _PARTICIPANT) or value.get("status") not in _PARTICIPATION_STATUS:
        return False
    if "type" not in value and "actor" not in value:
        return False  # app-1: a participant has a type or an actor
    if "type" in value and not _list_of(value["type"], _codeable):
        return False
    if "actor" in value and not _reference(value["actor"]):
        return False
    return "required" not in value or value["required"] in _PARTICIPANT_REQUIRED


_participant_seen = _Verdicts(_participant)
_codeable_seen = _Verdicts(_codeable)


def _appointment(r: Any) -> bool:
    if type(r) is not dict or not r.keys() <= _TOP_LEVEL:
        return False
    if r.get("resourceType") != "Appointment" or type(r.get("id")) is not str:
        return False
    if _ID.fullmatch(r["id"]) is None or r.get("status") not in _APPOINTMENT_STATUS:
        return False
    if not _list_of(r.get("participant"), _participant_seen):
        return False
    # app-2/app-3: start and end together (required here, as the mapping always has them).
    if not (_instant(r.get("start")) and _instant(r.get("end"))):
        return False
    if "identifier" in r and not _list_of(r["identifier"], _identifier):
        return False
    # app-4: a cancelation reason only for a cancelled appointment or a no-show
    if "cancelationReason" in r and (
        r["status"] not in ("cancelled", "noshow") or not _codeable(r["cancelationReason"])
    ):
        return False
    for key in ("serviceCategory", "serviceType"):
        if key in r and not _list_of(r[key], _codeable_seen):
            return False
    if "appointmentType" in r and not _codeable_seen(r["appointmentType"]):
        return False
    for key in ("description", "patientInstruction"):
        if key in r and not _string(r[key]):
            return False
    if "minutesDuration" in r:
        minutes = r["minutesDuration"]
        if type(minutes) is not int or not 0 < minutes <= _MAX_POSITIVE_INT:
            return False
    return True


def render(resource: dict[str, Any], version_id: int, last_updated: datetime) -> bytes:
    """The JSON to store and serve, with meta; for a resource :func:`check` has passed."""
    return orjson.dumps(_with_meta(resource, version_id, last_updated))


def finalize(resource: dict[str, Any], version_id: int, last_updated: datetime) -> bytes:
    """Add meta, validate with the R4B model, and return the JSON to store and serve."""
    with_meta = _with_meta(resource, version_id, last_updated)
    Appointment.model_validate(with_meta)  # raises if the mapping produced invalid FHIR
    return orjson.dumps(with_meta)
