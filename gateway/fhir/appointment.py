"""Domain BookingEvent -> FHIR R4 Appointment JSON, validated once with fhir.resources (R4B)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fhir.resources.R4B.appointment import Appointment

from gateway.domain.booking import BookingEvent
from gateway.mappings import Mappings

_ID_NAMESPACE = uuid.UUID("6f1c2b1e-4a7d-5b8e-9c3f-0d2e1a4b5c6d")
BOOKING_ID_SYSTEM = "http://gateway.vard.example/fhir/NamingSystem/journal-booking-id"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def appointment_id(namespace: str, booking_id: str) -> str:
    """A stable FHIR id for a booking that reveals nothing about it."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}|{booking_id}"))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


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
    # AIG resources are primary performers, AIP personnel secondary; decided by the segment the
    # resource came from (the same person in both segments is listed once for each role).
    performers = [(res, "PPRF", "primary performer") for res in event.practitioners]
    performers += [(res, "SPRF", "secondary performer") for res in event.personnel]
    for res, code, display in performers:
        participants.append(
            {
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}],
                "actor": _actor("Practitioner", res.hsa_id, res.name, hsa_system),
                "required": "required",
                "status": "accepted",
            }
        )
    for res in event.locations:
        participants.append(
            {
                "actor": _actor("Location", res.hsa_id, res.name, hsa_system),
                "required": "required",
                "status": "accepted",
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id(event.namespace, event.booking_id),
        "identifier": [{"system": BOOKING_ID_SYSTEM, "value": f"{event.namespace}|{event.booking_id}"}],
        "status": event.status,
    }
    if event.status == "cancelled" and event.cancelation_reason:
        resource["cancelationReason"] = {"text": event.cancelation_reason}
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
    if event.reason:
        resource["description"] = event.reason
    resource["start"] = _iso(event.start)
    resource["end"] = _iso(event.end)
    resource["minutesDuration"] = event.minutes
    resource["participant"] = participants
    return resource


def _actor(kind: str, hsa_id: str | None, name: str | None, system: str) -> dict[str, Any]:
    actor: dict[str, Any] = {"type": kind}
    if hsa_id:
        actor["identifier"] = {"system": system, "value": hsa_id}
    if name:
        actor["display"] = name
    return actor


def content_hash(resource: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
    """Validate with the R4B model; raises (a ValueError) if the mapping produced invalid FHIR."""
    Appointment.model_validate(resource)


def render(resource: dict[str, Any], version_id: int, last_updated: datetime) -> bytes:
    """The JSON to store and serve, with meta; for a resource :func:`check` has passed."""
    return orjson.dumps(_with_meta(resource, version_id, last_updated))


def finalize(resource: dict[str, Any], version_id: int, last_updated: datetime) -> bytes:
    """Add meta, validate with the R4B model, and return the JSON to store and serve."""
    with_meta = _with_meta(resource, version_id, last_updated)
    Appointment.model_validate(with_meta)  # raises if the mapping produced invalid FHIR
    return orjson.dumps(with_meta)
