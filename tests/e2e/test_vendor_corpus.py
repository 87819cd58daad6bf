"""The vendor-style corpus through the real MLLP port (issue 17; R-BK-2, R-DOC-1).

One gateway takes the files in the README's order, each as it is sent (version and character set
kept); each gets AA, and what the platform then reads (``GET /fhir/Appointment``, with
``_lastUpdated`` so a deleted booking is seen too) equals the file's expected Appointment and
passes the official FHIR R4 JSON schema and the R4B model.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.R4B.appointment import Appointment

from gateway.fhir.appointment import appointment_id
from gateway.testing import GatewayThread
from tests.conftest import emptied, wait_processed
from tests.support import PNR_SYSTEM, TOLVAN, ack_code, ack_fields, mllp_exchange
from tests.vendor_corpus import ORDER, expected, schema_errors, wire


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the module, emptied before each test; still reached through its real ports."""
    return emptied(module_gateway)


def _synced(http: httpx.Client, booking: str) -> dict[str, Any]:
    bundle = http.get(
        "/fhir/Appointment", params={"identifier": booking, "_lastUpdated": "gt2000-01-01"}
    ).json()
    (entry,) = bundle["entry"]
    resource: dict[str, Any] = entry["resource"]
    return resource


def test_r_bk_2_the_vendor_corpus_through_mllp_gives_the_expected_appointments(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    host, port = gateway.mllp_address
    versions: dict[str, int] = {}
    for name in ORDER:
        (ack,) = mllp_exchange(host, port, [wire(name)])
        assert ack_code(ack) == "AA", (name, ack)
        wait_processed(http)
        assert http.get("/messages", params={"state": "failed", "limit": 1}).json()["total"] == 0, name
        want = expected(name)
        if want is None:
            continue
        booking = want["identifier"][0]["value"]
        served = _synced(http, booking)
        assert served["id"] == appointment_id(*booking.split("|", 1)), name
        assert schema_errors(served) == [], name
        Appointment.model_validate(served)
        versions[booking] = int(served["meta"]["versionId"])
        assert {k: v for k, v in served.items() if k not in ("id", "meta")} == want, name
    # Each later message about a booking made a new version: the cancellation, the
    # discontinuation, the change of room, the deletion.
    assert versions == {
        "EPIC|4400012346": 2,
        "CERNER|123456789": 2,
        "CERNER|123456790": 1,
        "COSMIC|BK778899": 3,
        "TAKECARE|BK-20261203-0077": 1,
        "VIDEOBOK|V-2026-5521": 1,
    }
    # R-BK-2: the deleted booking is in the sync but not in the patient's list.
    listed = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|196208152568"}).json()
    assert [e["resource"]["identifier"][0]["value"] for e in listed.get("entry", [])] == ["CERNER|123456790"]
    tolvan = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}).json()
    assert tolvan["total"] == 3


def test_the_ack_echoes_the_vendors_msh_3_and_msh_4_whole(gateway: GatewayThread) -> None:
    host, port = gateway.mllp_address
    (ack,) = mllp_exchange(host, port, [wire("epic_siu_s12_v251")])
    msh = ack_fields(ack, "MSH")
    assert (msh[4], msh[5]) == ("EPIC", "EPICADT^1.2.752.97.10.1^ISO")
    assert msh[11] == "2.5.1"
    (ack,) = mllp_exchange(host, port, [wire("engine_siu_s12_v29")])
    msh = ack_fields(ack, "MSH")
    assert (msh[5], msh[11]) == ("REGIONHUB^1.2.752.97.10.9^ISO", "2.9")
