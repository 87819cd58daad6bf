"""The CapabilityStatement: exactly what the FHIR API supports, no more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

import gateway
from gateway.domain.query import BOOKING_ID_SYSTEM
from gateway.fhir.communication import BASE, CATEGORY_SYSTEM, CODE_SYSTEMS

_SEARCH = [
    (
        "patient:identifier",
        "token",
        "The patient's identifier, SYSTEM|VALUE or VALUE (any system) (personnummer, "
        "samordningsnummer, reservnummer). Repeated: AND (all must match).",
    ),
    (
        "identifier",
        "token",
        f"The booking id (SCH-2): {BOOKING_ID_SYSTEM}|NAMESPACE|ID, or NAMESPACE|ID or ID with any system; "
        "|VALUE (no system) matches nothing. Repeated: AND (all must match).",
    ),
    ("date", "date", "Appointment start; prefixes eq, ne, gt, lt, ge, le. Repeated: AND (a range)."),
    (
        "status",
        "token",
        "Appointment status; comma-separated for any of several. Repeated: AND (in every one). "
        "Without status (and without _lastUpdated) entered-in-error (a deleted booking) is left out.",
    ),
    (
        "_lastUpdated",
        "date",
        "When the gateway last changed the resource (incremental sync, entered-in-error included). "
        "Repeated: AND.",
    ),
    ("_count", "number", "Page size, 0-500 (default 50)."),
    ("_offset", "number", "Index of the first result on the page (used by the next links)."),
    ("_sort", "string", "date, -date, _lastUpdated or -_lastUpdated (default date)."),
    ("_total", "token", "none, estimate or accurate (default accurate)."),
]


_COMMUNICATION_SEARCH = [
    (
        "subject:identifier",
        "token",
        "The person the document is about: SYSTEM|VALUE or VALUE. Repeated: AND.",
    ),
    (
        "recipient:identifier",
        "token",
        "Someone who got it: the person, a guardian or a proxy (SYSTEM|VALUE or VALUE). Repeated: AND.",
    ),
    (
        "category",
        "token",
        f"The document kind, {CATEGORY_SYSTEM}|CODE or CODE; comma-separated for any of several.",
    ),
    ("status", "token", "completed, on-hold, not-done; comma-separated for any of several."),
    ("_lastUpdated", "date", "When the gateway last changed the resource (incremental sync). Repeated: AND."),
    ("_count", "number", "Page size, 0-500 (default 50)."),
    ("_offset", "number", "Index of the first result on the page (used by the next links)."),
    ("_sort", "string", "_lastUpdated or -_lastUpdated (default _lastUpdated)."),
    ("_total", "token", "none, estimate or accurate (default accurate)."),
]


_SLOT_SEARCH = [
    ("schedule.actor", "token", "The care unit's HSA-id (SYSTEM|VALUE or VALUE). Required."),
    ("service-type", "token", "The time type code (tidstyp). Required."),
    ("start", "date", "ge/le day range (default today + 14 days, at most 62 days)."),
]


def capability_statement(base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "gateway", "version": gateway.__version__},
        "implementation": {"description": "Journal-to-citizen-platform gateway", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Appointment",
                        "documentation": "Citizen self-service (docs/self-service.md): create books a "
                        "free Slot, patch/update rebooks (start/end or slot) or cancels (status "
                        "cancelled with cancelationReason); the journal executes it. The acting "
                        "citizen in the header X-Acting-Person; Idempotency-Key or If-None-Exist "
                        "makes a retry the same command.",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "patch"},
                        ],
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalRead": "not-match",
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": doc} for name, kind, doc in _SEARCH
                        ],
                    },
                    {
                        "type": "Communication",
                        "documentation": "One per e-document (e-kallelse, e-brev, e-remissbekräftelse) that "
                        "reached the platform or was printed; held documents and those of protected, "
                        "unknown or deceased persons are not served.",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalRead": "not-match",
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": doc}
                            for name, kind, doc in _COMMUNICATION_SEARCH
                        ],
                        "operation": [
                            {
                                "name": "mark-read",
                                "definition": f"{BASE}/OperationDefinition/Communication-mark-read",
                                "documentation": "POST Communication/{id}/$mark-read with Parameters readAt "
                                "(dateTime): the citizen opened the document; sets received.",
                            }
                        ],
                    },
                    {
                        "type": "Slot",
                        "documentation": "Free times in the journal's calendar per care unit and "
                        "visible time type (R-BK-1), bookable by citizens (docs/self-service.md).",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {"name": n, "type": t, "documentation": d} for n, t, d in _SLOT_SEARCH
                        ],
                    },
                    {
                        "type": "Binary",
                        "documentation": "The attachments (bilagor) a Communication's payload names, "
                        "answered in their own media type (application/pdf).",
                        "interaction": [{"code": "read"}],
                    },
                    {
                        "type": "CodeSystem",
                        "documentation": "The code systems the gateway publishes: "
                        + ", ".join(CODE_SYSTEMS)
                        + ".",
                        "interaction": [{"code": "read"}],
                    },
                ],
            }
        ],
    }
    CapabilityStatement.model_validate(body)
    return body
