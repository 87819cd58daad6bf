"""The FHIR R4 API as the citizen platform uses it: read, search, paging, errors."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhirpy import AsyncFHIRClient

from gateway.fhir.appointment import BOOKING_ID_SYSTEM
from gateway.testing import GatewayThread
from tests.conftest import emptied, wait_processed
from tests.support import PNR_SYSTEM, TOLVAN, mllp_exchange, siu


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the module, emptied before each test (the tests are about what it answers,
    not about starting up); still reached through its real ports."""
    return emptied(module_gateway)


OTHER = "201605152386"


@pytest.fixture
def seeded(gateway: GatewayThread, http: httpx.Client) -> GatewayThread:
    """Tolvan: 12 bookings 1-12 Dec (one cancelled); another person: 3 bookings."""
    messages = [siu(booking=f"T{d:02d}", start=f"202612{d:02d}0900") for d in range(1, 13)]
    messages.append(siu("S15", booking="T05", start="202612050900", filler_status="Cancelled"))
    messages += [siu(booking=f"O{d}", patient=OTHER, start=f"202612{d:02d}1400") for d in (2, 4, 6)]
    host, port = gateway.mllp_address
    mllp_exchange(host, port, messages)
    wait_processed(http)
    return gateway


def _search(http: httpx.Client, **params: Any) -> dict[str, Any]:
    response = http.get("/fhir/Appointment", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def _starts(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["start"][:10] for e in bundle.get("entry", [])]


def test_search_by_patient_identifier_returns_a_valid_searchset_bundle(
    seeded: GatewayThread, http: httpx.Client
) -> None:
    bundle = _search(http, **{"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"})
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        Appointment.model_validate(entry["resource"])
        assert entry["fullUrl"].endswith(f"/fhir/Appointment/{entry['resource']['id']}")
    assert bundle["type"] == "searchset" and bundle["total"] == 12
    assert _starts(bundle) == [f"2026-12-{d:02d}" for d in range(1, 13)]
    assert _search(http, **{"patient:identifier": f"{PNR_SYSTEM}|{OTHER}"})["total"] == 3
    assert _search(http, **{"patient:identifier": TOLVAN})["total"] == 12  # any system
    assert _search(http, **{"patient:identifier": f"urn:oid:9.9|{TOLVAN}"})["total"] == 0


def _total(http: httpx.Client, params: list[tuple[str, str]]) -> int:
    response = http.get("/fhir/Appointment", params=params)
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def test_search_by_booking_identifier_matches_system_and_value(
    seeded: GatewayThread, http: httpx.Client
) -> None:
    """FHIR token search: SYSTEM|VALUE needs both, |VALUE means no system, VALUE any system."""
    assert _total(http, [("identifier", f"{BOOKING_ID_SYSTEM}|TAKECARE|T03")]) == 1
    assert _total(http, [("identifier", f"{BOOKING_ID_SYSTEM}|TAKECARE|NOPE")]) == 0
    assert _total(http, [("identifier", f"{BOOKING_ID_SYSTEM}|T03")]) == 0  # the value is NAMESPACE|ID
    assert _total(http, [("identifier", "urn:oid:9.9|T03")]) == 0  # another system
    assert _total(http, [("identifier", "|T03")]) == 0  # every booking id has a system
    assert _total(http, [("identifier", "T03")]) == 1  # any system
    assert _total(http, [("identifier", "TAKECARE|T03")]) == 1  # the value NAMESPACE|ID, any system
    assert _total(http, [("identifier", "OTHERNS|T03")]) == 0
    assert _total(http, [("patient:identifier", f"|{TOLVAN}")]) == 0  # every patient id has a system


def test_repeated_search_parameters_are_anded(seeded: GatewayThread, http: httpx.Client) -> None:
    """A repeated parameter is AND; comma-separated values in one parameter are OR."""
    pat = ("patient:identifier", f"{PNR_SYSTEM}|{TOLVAN}")
    assert _total(http, [pat, ("status", "booked,cancelled")]) == 12
    assert _total(http, [pat, ("status", "booked"), ("status", "cancelled")]) == 0
    assert _total(http, [pat, ("status", "booked,cancelled"), ("status", "cancelled")]) == 1
    assert _total(http, [pat, ("patient:identifier", f"{PNR_SYSTEM}|{OTHER}")]) == 0
    assert _total(http, [("patient:identifier", OTHER), pat]) == 0
    assert _total(http, [pat, ("patient:identifier", TOLVAN)]) == 12
    assert _total(http, [("identifier", "T03"), ("identifier", "T04")]) == 0
    assert _total(http, [("identifier", "T03"), ("identifier", "TAKECARE|T03")]) == 1
    assert _total(http, [pat, ("date", "ge2026-12-01"), ("date", "le2026-12-31")]) == 12
    assert _total(http, [pat, ("date", "ge2026-12-03"), ("date", "le2026-12-05")]) == 3


def test_search_by_date_prefixes(seeded: GatewayThread, http: httpx.Client) -> None:
    pat = {"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}
    assert _starts(_search(http, **pat, date="2026-12-03")) == ["2026-12-03"]
    assert len(_starts(_search(http, **pat, date="ge2026-12-10"))) == 3
    assert len(_starts(_search(http, **pat, date="gt2026-12-10"))) == 2
    assert len(_starts(_search(http, **pat, date="le2026-12-02"))) == 2
    assert len(_starts(_search(http, **pat, date="lt2026-12-02"))) == 1
    both = http.get(
        "/fhir/Appointment", params=[("date", "ge2026-12-04"), ("date", "lt2026-12-07"), *pat.items()]
    ).json()
    assert _starts(both) == ["2026-12-04", "2026-12-05", "2026-12-06"]
    assert _search(http, **pat, date="2026-12-03T09:00:00+01:00")["total"] == 1
    assert _search(http, **pat, date="2026-12-03T08:00:00Z")["total"] == 1  # same instant in UTC
    assert _search(http, **pat, date="2026-12")["total"] == 12


def test_search_by_status_and_sort(seeded: GatewayThread, http: httpx.Client) -> None:
    cancelled = _search(http, status="cancelled")
    assert cancelled["total"] == 1 and cancelled["entry"][0]["resource"]["start"].startswith("2026-12-05")
    assert _search(http, status="booked,cancelled")["total"] == 15
    newest_first = _starts(_search(http, _sort="-date", _count=3))
    assert newest_first == ["2026-12-12", "2026-12-11", "2026-12-10"]


def test_incremental_sync_by_last_updated(seeded: GatewayThread, http: httpx.Client) -> None:
    everything = _search(http, _sort="_lastUpdated", _count=500)
    last = max(e["resource"]["meta"]["lastUpdated"] for e in everything["entry"])
    assert _search(http, _lastUpdated=f"gt{last}")["total"] == 0
    time.sleep(0.01)
    host, port = seeded.mllp_address
    mllp_exchange(host, port, [siu("S13", booking="T07", start="202612201000")])
    wait_processed(http)
    changed = _search(http, _lastUpdated=f"gt{last}")
    assert changed["total"] == 1
    assert changed["entry"][0]["resource"]["start"].startswith("2026-12-20")
    assert changed["entry"][0]["resource"]["meta"]["versionId"] == "2"


def test_paging_with_next_links_covers_every_match_once(seeded: GatewayThread, http: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Appointment?_count=4"
    pages = 0
    while url:
        bundle = http.get(url).json()
        assert bundle["total"] == 15
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        pages += 1
    assert pages == 4 and len(seen) == 15 and len(set(seen)) == 15
    count_only = _search(http, _count=0)
    assert count_only["total"] == 15 and count_only["entry"] == []


def test_a_real_fhir_client_searches_and_follows_paging(seeded: GatewayThread) -> None:
    async def fetch() -> list[Any]:
        client = AsyncFHIRClient(f"{seeded.http_url}/fhir")
        search = (
            client.resources("Appointment")
            .search(**{"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"})
            .limit(5)
        )
        return [r async for r in search]

    found = asyncio.run(fetch())
    assert len(found) == 12
    assert len({r["id"] for r in found}) == 12
    assert all(r["resourceType"] == "Appointment" for r in found)


def test_read_with_etag_and_conditional_read(seeded: GatewayThread, http: httpx.Client) -> None:
    one = _search(http, _count=1)["entry"][0]["resource"]
    response = http.get(f"/fhir/Appointment/{one['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == f'W/"{one["meta"]["versionId"]}"'
    assert response.headers["last-modified"]
    assert response.json() == one
    not_modified = http.get(
        f"/fhir/Appointment/{one['id']}", headers={"If-None-Match": response.headers["etag"]}
    )
    assert not_modified.status_code == 304


def test_capability_statement_says_what_is_supported(gateway: GatewayThread, http: httpx.Client) -> None:
    body = http.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(body)
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(resources) == {"Appointment", "Communication", "Binary", "CodeSystem", "Slot"}
    resource = resources["Appointment"]
    assert {i["code"] for i in resource["interaction"]} == {
        "read",
        "search-type",
        "create",
        "update",
        "patch",
    }
    names = {p["name"] for p in resource["searchParam"]}
    assert {"patient:identifier", "date", "status", "_lastUpdated", "_count", "_sort"} <= names
    communication = resources["Communication"]
    names = {p["name"] for p in communication["searchParam"]}
    assert {"subject:identifier", "recipient:identifier", "category", "status", "_lastUpdated"} <= names
    assert [op["name"] for op in communication["operation"]] == ["mark-read"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "fragment"),
    [
        ("/fhir/Appointment?colour=blue", {}, 400, "unknown search parameter 'colour'"),
        ("/fhir/Appointment?date=tomorrow", {}, 400, "date"),
        ("/fhir/Appointment?status=happy", {}, 400, "status"),
        ("/fhir/Appointment?_count=-1", {}, 400, "_count"),
        ("/fhir/Appointment?_sort=colour", {}, 400, "_sort"),
        ("/fhir/Appointment/no-such-id", {}, 404, "not known"),
        ("/fhir/Patient", {}, 404, "not supported"),
        ("/fhir/Appointment", {"Accept": "application/xml"}, 406, "application/fhir+json"),
        ("/fhir/Appointment?_format=xml", {}, 406, "_format"),
    ],
)
def test_errors_are_operation_outcomes_with_the_right_status(
    gateway: GatewayThread, http: httpx.Client, path: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    response = http.get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    OperationOutcome.model_validate(body)
    assert fragment in body["issue"][0]["diagnostics"]


def test_post_search_takes_forms_only(seeded: GatewayThread, http: httpx.Client) -> None:
    ok = http.post("/fhir/Appointment/_search", data={"patient:identifier": f"{PNR_SYSTEM}|{OTHER}"})
    assert ok.status_code == 200 and ok.json()["total"] == 3
    wrong = http.post(
        "/fhir/Appointment/_search", content=b"{}", headers={"content-type": "application/json"}
    )
    assert wrong.status_code == 415
    assert wrong.json()["resourceType"] == "OperationOutcome"


def test_last_updated_is_an_instant(seeded: GatewayThread, http: httpx.Client) -> None:
    resource = _search(http, _count=1)["entry"][0]["resource"]
    stamp = datetime.fromisoformat(resource["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None
