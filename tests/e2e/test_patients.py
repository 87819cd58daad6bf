"""The staff view of a person, GET /patients/{id}, with the register and the account service faked."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation
from gateway.domain.register import Protection
from gateway.testing import GatewayThread
from tests import fakes
from tests.conftest import wait_processed
from tests.fakes import FakeAccounts, FakeRegister, pnr
from tests.support import TOLVAN, ack_code, mllp_exchange, siu

CHILD = "201605152386"
GUARDIAN = "198503141239"
BLOCKED_GUARDIAN = "198709224565"
SKYDDAD = "198203152452"


@pytest.fixture
def accounts() -> FakeAccounts:
    return FakeAccounts(
        {
            TOLVAN: Account(pnr(TOLVAN), AccountStatus.ACTIVE, "SE2321000016-15CQ", sms_consent=True),
            CHILD: Account(
                pnr(CHILD),
                AccountStatus.NONE,
                "SE2321000016-7P3K",
                proxies=(
                    Proxy(pnr(GUARDIAN), ProxyRelation.GUARDIAN),
                    Proxy(pnr(BLOCKED_GUARDIAN), ProxyRelation.GUARDIAN, blocked=True),
                ),
            ),
            SKYDDAD: Account(
                pnr(SKYDDAD),
                AccountStatus.ACTIVE,
                "SE2321000016-9XYZ",
                proxies=(Proxy(pnr(GUARDIAN), ProxyRelation.PROXY),),
            ),
        }
    )


def test_ordinary_adult_shows_register_data_account_and_bookings(
    http: httpx.Client, gateway: GatewayThread
) -> None:
    host, port = gateway.mllp_address
    assert [ack_code(a) for a in mllp_exchange(host, port, [siu(booking="BK-P1")])] == ["AA"]
    wait_processed(http)
    body = http.get(f"/patients/{TOLVAN[:8]}-{TOLVAN[8:]}").json()
    assert body["identifier"]["value"] == TOLVAN and body["identifier"]["kind"] == "personnummer"
    assert body["name"] == "Tolvan Tolvansson"
    assert body["address"]["street1"] == "Tolvansvägen 12"
    assert body["flags"]["protected"] is False and body["flags"]["in_register"] is True
    assert body["account"]["status"] == "active" and body["account"]["listing_unit"] == "SE2321000016-15CQ"
    (booking,) = body["bookings"]
    assert booking["booking_id"] == "BK-P1" and booking["shown_to_citizen"] is True


def test_r_id_3_protected_person_shows_dold_uppgift_and_the_withheld_booking(
    http: httpx.Client, gateway: GatewayThread
) -> None:
    host, port = gateway.mllp_address
    mllp_exchange(host, port, [siu(patient=SKYDDAD, booking="BK-P2")])
    wait_processed(http)
    response = http.get(f"/patients/{SKYDDAD}")
    body = response.json()
    assert body["name"] == "Dold uppgift" and body["address"] == "Dold uppgift"
    assert body["flags"]["protection"] == "skyddadFolkbokforing" and body["flags"]["protected"]
    assert body["account"]["proxies"][0]["identifier"] == "Dold uppgift"
    (booking,) = body["bookings"]
    assert booking["shown_to_citizen"] is False and booking["withheld_reason"].startswith("R-ID-3")
    text = json.dumps(body, ensure_ascii=False)
    for secret in ("Skyddad", "Folkbokförd", "Särskild postförmedling", "Box 2820", "Göteborg", GUARDIAN):
        assert secret not in text


def test_r_acc_2_r_id_6_child_has_automatic_guardians_but_not_the_blocked_one(http: httpx.Client) -> None:
    body = http.get(f"/patients/{CHILD}").json()
    assert body["age"] < 13 and body["guardians_automatic"] and not body["mailbox_allowed"]
    proxies = {p["identifier"]["value"]: p for p in body["account"]["proxies"]}
    assert proxies[GUARDIAN]["active"] is True
    assert proxies[BLOCKED_GUARDIAN]["blocked"] is True and proxies[BLOCKED_GUARDIAN]["active"] is False


def test_r_id_5_an_old_number_shows_the_current_one(http: httpx.Client) -> None:
    body = http.get("/patients/197306142642").json()
    assert body["flags"]["changed_number"] is True
    assert body["current_identifier"]["value"] == "197306142659"


def test_r_id_5_the_current_number_names_the_old_one_it_replaced(http: httpx.Client) -> None:
    body = http.get("/patients/197306142659").json()
    assert body["flags"]["changed_number"] is True
    assert body["current_identifier"] is None
    assert [i["value"] for i in body["former_identifiers"]] == ["197306142642"]


def test_r_id_3_a_protected_guardian_is_not_named_in_the_childs_staff_view(
    http: httpx.Client, register: FakeRegister
) -> None:
    register.records[BLOCKED_GUARDIAN] = fakes.record(
        BLOCKED_GUARDIAN, protection=Protection.SEKRETESSMARKERING
    )
    body = http.get(f"/patients/{CHILD}").json()
    shown = {
        p["identifier"]["value"] if isinstance(p["identifier"], dict) else p["identifier"]: p
        for p in body["account"]["proxies"]
    }
    assert shown[GUARDIAN]["protected"] is False
    assert shown["Dold uppgift"]["protected"] is True
    assert BLOCKED_GUARDIAN not in json.dumps(body)


def test_r_id_5_deceased_and_emigrated_are_flagged(http: httpx.Client) -> None:
    assert http.get("/patients/193804262628").json()["flags"]["deceased"] is True
    assert http.get("/patients/195511302134").json()["flags"]["emigrated"] is True


def test_r_id_2_reservnummer_is_not_asked_of_the_register_and_has_no_account(
    http: httpx.Client, register: FakeRegister
) -> None:
    body = http.get("/patients/999929-013705").json()
    assert body["identifier"]["kind"] == "reservnummer"
    assert body["identifier"]["system"] == "urn:oid:1.2.752.97.3.1.3"
    assert body["flags"]["reservnummer"] is True and body["flags"]["in_register"] is False
    assert body["account"]["status"] == "none"
    assert register.calls["999929013705"] == 0


def test_r_id_7_a_person_not_in_the_register_says_so(http: httpx.Client) -> None:
    body = http.get("/patients/198512242242").json()
    assert body["flags"]["in_register"] is False and body["name"] is None


def test_r_id_1_a_bad_number_is_a_400_operation_outcome_naming_it(http: httpx.Client) -> None:
    response = http.get("/patients/191212121213")
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "invalid" and "check digit" in issue["diagnostics"]


def test_register_unreachable_is_a_503_and_nothing_is_shown(
    http: httpx.Client, register: FakeRegister
) -> None:
    register.down = True
    response = http.get(f"/patients/{TOLVAN}")
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "Tolvansson" not in response.text
