"""R-ID-3 for the people a document names besides its subject: guardians and proxies.

The whole path with the built-in mocks over real SOAP and HTTP (mocks/persons.yaml): Skyddsbarn
(8) has two guardians, one of them with sekretessmarkering. The usual reason a parent is
protected is the other parent, so the protected parent's number must never be served next to
the child or the other parent, in any resource, search or read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.testing import GatewayThread
from tests.conftest import _settings, wait_processed
from tests.e2e.test_documents import mdm
from tests.support import ack_code, mllp_exchange, siu

CHILD = "201803142387"
OPEN_PARENT = "197906112458"
PROTECTED_PARENT = "198109272362"
FORMS = (PROTECTED_PARENT, PROTECTED_PARENT[2:], f"{PROTECTED_PARENT[:8]}-{PROTECTED_PARENT[8:]}")


@pytest.fixture
def mocked(tmp_path: Path) -> Iterator[GatewayThread]:
    """A gateway with the built-in mocks of SPAR, accounts and mailboxes (no fakes)."""
    with GatewayThread(_settings(tmp_path)) as gw:
        yield gw


@pytest.fixture
def api(mocked: GatewayThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mocked.http_url, timeout=10) as client:
        yield client


def _platform_views(api: httpx.Client) -> str:
    """Everything the platform can read about the child and both parents, as one text. A search
    by the protected parent's number must find nothing (its Bundle's self link echoes the query)."""
    out = []
    for resource in ("Communication", "Appointment"):
        out.append(api.get(f"/fhir/{resource}").text)
    for param in ("subject:identifier", "recipient:identifier"):
        for who in (CHILD, OPEN_PARENT):
            out.append(api.get("/fhir/Communication", params={param: who}).text)
        assert api.get("/fhir/Communication", params={param: PROTECTED_PARENT}).json()["total"] == 0
    bundle = api.get("/fhir/Communication").json()
    for entry in bundle.get("entry", []):
        out.append(api.get(f"/fhir/Communication/{entry['resource']['id']}").text)
    out.append(api.get("/fhir/Appointment", params={"patient:identifier": CHILD}).text)
    return "\n".join(out)


def test_r_id_3_r_id_4_a_protected_guardian_is_never_served_beside_the_child(
    mocked: GatewayThread, api: httpx.Client
) -> None:
    host, port = mocked.mllp_address
    sent = [
        siu("S12", patient=CHILD, booking="BK-SKB-1"),
        mdm("DOC-SKB-1", patient=CHILD),
        mdm("DOC-SKB-2", patient=CHILD, kind="KALLELSE", booking="BK-SKB-1", text="Välkommen."),
    ]
    assert [ack_code(a) for a in mllp_exchange(host, port, sent)] == ["AA", "AA", "AA"]
    wait_processed(api)

    # Held for staff, with the reason, and nothing about it served to the platform.
    held = api.get("/held").json()
    assert len(held["items"]) == 2 and all("R-ID-3" in str(item["rules"]) for item in held["items"])
    assert all("protected identity" in item["reason"] for item in held["items"])
    text = _platform_views(api)
    assert json.loads(api.get("/fhir/Communication").text).get("total") == 0
    assert not [form for form in FORMS if form in text]
    assert not [form for form in FORMS if form in json.dumps(held)]

    # Released by staff: the open parent gets it in the platform, the protected one is not listed.
    for item in held["items"]:
        answer = api.post(
            f"/held/{item['id']}/release", json={"by": "ssk-anna", "why": "agreed with both parents"}
        )
        assert answer.status_code == 200, answer.text
    bundle = api.get("/fhir/Communication", params={"subject:identifier": CHILD}).json()
    assert bundle["total"] == 2
    for entry in bundle["entry"]:
        assert [r["identifier"]["value"] for r in entry["resource"]["recipient"]] == [OPEN_PARENT]
    text = _platform_views(api)
    assert OPEN_PARENT in text
    assert not [form for form in FORMS if form in text]
