"""Logs never carry a full personnummer, a name or an address."""

from __future__ import annotations

import json
import subprocess
import sys

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


_SCRIPT = r"""
import logging, structlog
from gateway.logging import configure
configure("json", "DEBUG")
try:
    raise ValueError("lookup failed for 191212121212 (19121212-1212)")
except ValueError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    structlog.get_logger("gateway.test").exception("worker.crashed", patient="191212121212")
class Odd:
    def __repr__(self): return "Odd(201605152386)"
    __str__ = __repr__
structlog.get_logger("gateway.test").info("odd.value", thing=Odd(), nested={"list": ["191212121212"]})
for name in ("signxml", "zeep.transports", "sqlalchemy.engine.Engine", "httpcore.http11"):
    logging.getLogger(name).debug("payload <Namn>Tolvan</Namn> 191212121212")
    logging.getLogger(name).info("payload <Namn>Tolvan</Namn> 191212121212")
"""


def test_exceptions_are_json_and_masked_after_formatting_and_payload_loggers_are_held() -> None:
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Logging error" not in run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]  # one JSON object a line
    events = {line["event"]: line for line in lines}
    assert (
        "ValueError: lookup failed for 19121212-****" in events["Exception in ASGI application"]["exception"]
    )
    assert "ValueError" in events["worker.crashed"]["exception"]
    assert events["odd.value"]["thing"] == "Odd(20160515-****)"
    for digits in ("191212121212", "1212121212", "201605152386", "Tolvan"):
        assert digits not in run.stderr
    assert not [line for line in lines if "payload" in line["event"]]  # held at WARNING


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
