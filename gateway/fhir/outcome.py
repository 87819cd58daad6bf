"""OperationOutcome responses: the one place domain errors become FHIR errors."""

from __future__ import annotations

from typing import Literal

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"

IssueCode = Literal[
    "invalid",
    "not-found",
    "not-supported",
    "exception",
    "security",
    "forbidden",
    "login",
    "processing",
    "too-costly",
    "transient",
    "timeout",
]


def outcome(status: int, code: IssueCode, diagnostics: str, severity: str = "error") -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)
