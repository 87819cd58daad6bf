"""Schemathesis against the live HTTP API (issue "Security and operations", item 7).

A whole gateway (``GatewayThread``, SQLite, the built-in mocks over real HTTP) serves its own
OpenAPI document; schemathesis reads it from ``/openapi.json`` and sends every operation
requests made from it, valid and invalid (positive and negative generation: wrong types,
missing and extra parameters, odd strings, bodies that do not match). Whatever arrives, the
answer is never a 5xx: bad input is a 4xx OperationOutcome. Run as in production: authentication
on, with a token for every scope, so the requests pass authentication and reach the routes
(asserted). The anonymous caller of ``GATEWAY_AUTH=off`` is what the rest of the suite runs as;
a second schema run with authentication off found nothing the token run did not, at a third of
this file's time, and was dropped. The hand-made fuzz below runs with authentication off.

The store holds a few bookings and letters first, so the fuzzed requests also meet real rows.
Each request's operation and status are counted; the summary is printed at the end of each run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from gateway.api import auth
from gateway.settings import Settings
from gateway.testing import GatewayThread
from tests.conftest import wait_processed
from tests.e2e.test_mailbox_outbox import KIVRA, MINOR, mdm
from tests.support import ack_code, migrated, mllp_exchange, siu

#: Examples per operation and generation mode (positive, negative): about 2,000 requests.
EXAMPLES = {"token": 20, "open": 20}

#: mode -> operation -> status -> count
SEEN: dict[str, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
#: mode -> positive/negative -> status -> count
KINDS: dict[str, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
#: operations with no negative (or positive) example to make (nothing in them can be wrong)
NONE_POSSIBLE: dict[str, list[str]] = defaultdict(list)


def _gateway(tmp_path: Path, mode: str) -> GatewayThread:
    settings = Settings(
        data_dir=migrated(tmp_path),
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.2,
        log_level="ERROR",
        auth="off" if mode == "open" else "required",
    )
    return GatewayThread(settings)


def seed(gw: GatewayThread, headers: dict[str, str]) -> None:
    messages = [siu("S12", booking=f"FZ-{n}") for n in range(3)]
    messages += [mdm("FZ-DOC-1", KIVRA), mdm("FZ-DOC-2", MINOR)]
    mllp_exchange(*gw.mllp_address, messages, timeout=30)
    with httpx.Client(base_url=gw.http_url, headers=headers, timeout=10) as client:
        wait_processed(client, timeout=30)


def fuzz(gw: GatewayThread, mode: str, headers: dict[str, str]) -> list[str]:
    """Every operation of the live OpenAPI document, positive and negative examples; returns
    the requests that got a 5xx (as curl commands), after counting every status."""
    schema = schemathesis.openapi.from_url(f"{gw.http_url}/openapi.json", headers=headers)
    failures: list[str] = []
    with requests.Session() as session:  # one keep-alive connection, not one per request
        for result in schema.get_all_operations():
            operation = result.ok()
            name = f"{operation.method.upper()} {operation.path}"
            for generation in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_one(gw, mode, headers, operation, generation, failures, session)
                except Unsatisfiable:
                    NONE_POSSIBLE[mode].append(f"{name} ({generation.value})")
    return failures


def fuzz_one(
    gw: GatewayThread,
    mode: str,
    headers: dict[str, str],
    operation: Any,
    generation: GenerationMode,
    failures: list[str],
    session: requests.Session,
) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=generation))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # every example counted, none shrunk
    )
    def call(case: Any) -> None:
        response = case.call(base_url=gw.http_url, session=session, headers=headers, timeout=10)
        SEEN[mode][name][response.status_code] += 1
        KINDS[mode][generation.value][response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {case.as_curl_command()} -> {response.text[:300]}")
        elif response.status_code >= 400 and name != "POST /journal/hl7":
            if operation.path.startswith("/rivta/"):  # SOAP: a caller's fault is a soap:Client fault
                assert b"<faultcode>soap:Client</faultcode>" in response.content, (name, response.text)
                return
            body = response.json()
            assert body.get("resourceType") == "OperationOutcome", (name, body)

    call()


@pytest.mark.parametrize("mode", ["token"])
def test_no_fuzzed_request_gets_a_5xx(tmp_path: Path, mode: str) -> None:
    with _gateway(tmp_path, mode) as gw:
        headers = {}
        if mode == "token":
            headers = {"Authorization": "Bearer " + auth.dev_token(gw.gateway.settings, auth.SCOPES)}
        seed(gw, headers)
        failures = fuzz(gw, mode, headers)
    report(mode)
    assert not failures, "\n".join(failures)
    assert len(SEEN[mode]) >= 20  # every operation of the document was fuzzed
    if mode == "token":  # the token was good: requests got past authentication to the routes
        assert not {op for op, counts in SEEN[mode].items() if set(counts) <= {401, 403}}


def report(mode: str) -> None:
    ops = SEEN.get(mode, {})
    total: Counter[int] = Counter()
    for counts in ops.values():
        total.update(counts)
    lines = [f"schemathesis ({mode}): {len(ops)} operations, {sum(total.values())} requests, {dict(total)}"]
    lines += [f"  {kind}: {dict(sorted(c.items()))}" for kind, c in KINDS[mode].items()]
    for op, counts in sorted(ops.items()):
        lines.append(f"  {op}: {sum(counts.values())} {dict(sorted(counts.items()))}")
    if NONE_POSSIBLE[mode]:
        lines.append(f"  no such examples possible: {', '.join(NONE_POSSIBLE[mode])}")
    print("\n" + "\n".join(lines))


# --- What the OpenAPI document cannot describe ------------------------------------------------
# The FHIR searches read their parameters themselves (FHIR names such as ``patient:identifier``,
# repeated ``date``) and ``POST /journal/hl7`` takes any body: schemathesis sees no parameters
# there. Hypothesis sends them parameters and bodies from the right names and odd values.

_VALUE = (
    st.text(max_size=30)
    | st.sampled_from(["", "ge2026-12-01", "lt2026-13-45", "gt2026-12-01T10:00:00Z", "eq", "booked", "-date"])
    | st.sampled_from(["http://electronichealth.se/identifier/personnummer|191212121212", "|", "a|b|c"])
    | st.integers().map(str)
    | st.sampled_from(["1e999", "NaN", "-1", "0", str(2**70), "\x00", "%", "ge" + "9" * 40])
)
_APPOINTMENT_NAMES = (
    "patient:identifier",
    "identifier",
    "date",
    "status",
    "_lastUpdated",
    "_count",
    "_offset",
    "_sort",
    "_total",
)
_COMMUNICATION_NAMES = (
    "subject:identifier",
    "recipient:identifier",
    "category",
    "status",
    "_lastUpdated",
    "_count",
    "_offset",
    "_sort",
    "_total",
)


def _query(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    known = st.sampled_from(names)
    name = st.one_of(known, known, known, st.text(min_size=1, max_size=12))  # mostly known names
    return st.lists(st.tuples(name, _VALUE), max_size=5)


_CONTENT_TYPES = st.sampled_from(
    ["application/hl7-v2", "application/hl7-v2; charset=utf-8", "text/plain", "application/json", "", "x/y"]
)


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with _gateway(tmp_path_factory.mktemp("fuzz-fhir"), "open") as gw:
        seed(gw, {})
        yield gw


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["Appointment", "Communication", "Appointment/_search"]), data=st.data())
def test_fhir_search_with_any_parameters_is_a_bundle_or_a_400(
    open_gateway: GatewayThread, kind: str, data: st.DataObject
) -> None:
    names = _COMMUNICATION_NAMES if kind == "Communication" else _APPOINTMENT_NAMES
    query = data.draw(_query(names))
    with httpx.Client(base_url=open_gateway.http_url, timeout=10) as client:
        if kind.endswith("_search"):
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            response = client.post(f"/fhir/{kind}", content=urlencode(query), headers=form)
        else:
            response = client.get(f"/fhir/{kind}", params=query)
    assert response.status_code in (200, 400), (query, response.text[:300])
    body = response.json()
    assert body["resourceType"] == ("Bundle" if response.status_code == 200 else "OperationOutcome")


_HL7ISH = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([b"MSH", b"MSH|", b"MSH|^~\\&|", b"MSH\r", b"\x0bMSH\n"]),
    st.binary(max_size=200),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=400) | st.text(max_size=200).map(str.encode) | _HL7ISH,
    content_type=_CONTENT_TYPES,
)
@example(body=b"MSH\rPID|1", content_type="application/hl7-v2")  # was a 500 (er7: empty separator)
def test_journal_http_with_any_body_gets_an_ack_or_a_4xx(
    open_gateway: GatewayThread, body: bytes, content_type: str
) -> None:
    with httpx.Client(base_url=open_gateway.http_url, timeout=10) as client:
        response = client.post("/journal/hl7", content=body, headers={"Content-Type": content_type})
    assert response.status_code < 500, response.text[:300]
    if response.status_code == 200:
        assert b"MSA|A" in response.content  # an ACK (AE or AR for garbage), never an exception


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=(st.binary(max_size=400) | _HL7ISH).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")))
@example(body=b"MSH\rPID|1")  # closed the connection with no ACK before the er7 fix
def test_mllp_with_any_frame_gets_one_ack_and_the_connection_goes_on(
    open_gateway: GatewayThread, body: bytes
) -> None:
    ack, after = mllp_exchange(*open_gateway.mllp_address, [body, siu("S12", booking="FZ-AFTER")], timeout=10)
    assert ack_code(ack) in ("AA", "AE", "AR") and ack_code(after) == "AA"


def test_numbers_past_64_bits_are_a_400_not_a_500(gateway_on: GatewayThread) -> None:
    """The fuzzer's finding, on both backends: an id or offset no database integer holds was a
    500 (SQLite's driver: OverflowError; PostgreSQL: a data exception); now a 4xx
    OperationOutcome."""
    huge = 2**70
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/messages/{huge}", {}),
        ("POST", f"/messages/{huge}/reprocess", {}),
        ("GET", "/messages", {"params": {"offset": huge}}),
        ("GET", "/outbox", {"params": {"offset": huge}}),
        ("POST", f"/outbox/{huge}/retry", {"json": {"by": "x"}}),
        ("GET", "/held", {"params": {"offset": huge}}),
        ("GET", f"/print-list/{huge}", {}),
        ("GET", f"/print-list/{huge}/document.pdf", {}),
        ("POST", "/print-list/handle", {"json": {"ids": [huge], "by": "x"}}),
        ("POST", "/print-list/unhandle", {"json": {"ids": [-huge], "by": "x"}}),
    ]
    with httpx.Client(base_url=gateway_on.http_url, timeout=10) as client:
        for method, path, kwargs in calls:
            response = client.request(method, path, **kwargs)
            assert 400 <= response.status_code < 500, (method, path, kwargs, response.text[:200])
            assert response.json()["resourceType"] == "OperationOutcome"
