"""Logs never carry a full personnummer, a name or an address."""

from __future__ import annotations

from gateway.logging import mask_personal_data


def test_personnummer_in_any_value_is_masked() -> None:
    event = mask_personal_data(
        None,
        "info",
        {
            "event": "processing 191212121212",
            "patient": "19121212-1212",
            "id_as_int": 191212121212,
            "count": 3,
        },
    )
    joined = repr(event)
    assert "121212121212" not in joined.replace("19121212-****", "") and "1212121212" not in joined
    assert event["count"] == 3


def test_name_and_address_keys_are_masked_whole() -> None:
    event = mask_personal_data(
        None, "info", {"event": "x", "name": "Tolvan Tolvansson", "address": "Gatan 1"}
    )
    assert event["name"] == "***" and event["address"] == "***"


def test_mobile_numbers_are_masked_in_any_value_R_NOT_5() -> None:
    event = mask_personal_data(
        None,
        "info",
        {
            "event": "HTTP Request: GET http://x/sms/a1/sms?to=%2B46701740605&end=2026 200",
            "to": "+46701740605",
            "local": "sms to 0701740605",
        },
    )
    assert "701740605" not in repr(event)
