"""The vendor-style corpus (``tests/fixtures/hl7/README.md``) and the official FHIR R4 JSON schema.

The schema is HL7's ``fhir.schema.json`` for R4 (4.0.1, ``http://hl7.org/fhir/json-schema/4.0``),
kept gzipped in ``tests/fixtures/fhir/`` (see the README there): there is no network here, and
no PyPI package ships it.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = FIXTURES / "hl7"
SCHEMA = FIXTURES / "fhir" / "fhir.schema.json.gz"

#: The corpus in the order it is sent (the README's table): later messages change earlier bookings.
ORDER = (
    "epic_siu_s12_v251",
    "epic_siu_s15_v28",
    "cerner_siu_s12_v27",
    "cerner_siu_s16_v27",
    "cerner_siu_s12_v231_latin1",
    "cambio_siu_s12_v26",
    "cambio_siu_s14_v26",
    "cambio_siu_s17_v26",
    "takecare_siu_s13_v24_8859",
    "engine_siu_s12_v29",
    "cambio_mdm_t02_v26",
)


def wire(name: str) -> bytes:
    """A corpus message as the bytes on the wire: its own character set, segments ending in CR."""
    return (CORPUS / f"{name}.hl7").read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def expected(name: str) -> dict[str, Any] | None:
    path = CORPUS / f"{name}.expected.json"
    if not path.exists():
        return None
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


@functools.cache
def _validator() -> jsonschema_rs.Draft6Validator:
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    return jsonschema_rs.Draft6Validator(schema)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """What the official FHIR R4 JSON schema finds wrong with ``resource`` (empty: valid)."""
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in _validator().iter_errors(resource)]
