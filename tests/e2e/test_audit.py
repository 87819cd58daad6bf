"""The audit trail (issue 7, item 2; Patientdatalagen): every read or change of personal data is
logged with who, which scope, whose data, which resource, why, when and the result; the log
cannot be changed (docs/audit.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

from gateway.api import auth
from gateway.api.audit import AUDITED, NOT_AUDITED
from gateway.bootstrap import build
from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.audit import AuditEvent, AuditWriter, write
from gateway.store.db import make_engine
from gateway.store.tables import audit_events
from gateway.testing import GatewayThread
from tests.documents_factory import insert_document
from tests.fakes import FakeAccounts, FakeDelivery, FakeMailbox, FakeRegister
from tests.support import PNR_SYSTEM, TOLVAN, eventually, migrated, mllp_exchange, siu

OTHER = "200001022386"  # a second patient (not in any request but its own)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=migrated(tmp_path),
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        auth="required",
        worker_poll_interval=0.2,
        log_level="WARNING",
    )


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[GatewayThread]:
    with GatewayThread(
        _settings(tmp_path), register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        yield gw


def _as(gw: GatewayThread, subject: str, *scopes: str, **headers: str) -> dict[str, str]:
    token = auth.dev_token(gw.gateway.settings, scopes, subject=subject)
    return {"Authorization": f"Bearer {token}", **headers}


def _trail(client: httpx.Client, gw: GatewayThread, **params: Any) -> dict[str, Any]:
    answer = client.get("/audit", params=params, headers=_as(gw, "auditor", auth.ADMIN))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _wait_for_appointment(client: httpx.Client, gw: GatewayThread, patient: str) -> str:
    def appointment_id() -> str | None:
        bundle = client.get(
            "/fhir/Appointment",
            params={"patient:identifier": f"{PNR_SYSTEM}|{patient}"},
            headers=_as(gw, "poller", auth.PLATFORM),
        ).json()
        return str(bundle["entry"][0]["resource"]["id"]) if bundle.get("total") else None

    found = eventually(appointment_id, "the booking to become an Appointment", interval=0.1)
    assert found is not None
    return found


def _only(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [i for i in items if all(i[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]


def test_reads_and_changes_by_each_kind_of_caller_are_audited_with_who_whose_what_why_and_result(
    secured: GatewayThread,
) -> None:
    gw = secured
    with httpx.Client(base_url=gw.http_url, timeout=10) as client:
        pushed = client.post(
            "/journal/hl7",
            content=siu("S12"),
            headers=_as(gw, "takecare-sll", auth.JOURNAL, **{"Content-Type": "application/hl7-v2"}),
        )
        assert pushed.status_code == 200
        appointment_id = _wait_for_appointment(client, gw, TOLVAN)
        with gw.gateway.engine.begin() as conn:
            doc = insert_document(conn, patient=TOLVAN)
        assert doc.print_item_id is not None

        platform = _as(gw, "plattform-1177", auth.PLATFORM)
        search = client.get(
            "/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}, headers=platform
        )
        read = client.get(f"/fhir/Appointment/{appointment_id}", headers=platform)
        staff = _as(gw, "ssk-anna", auth.STAFF, **{"X-Purpose": "v%C3%A5rdplanering"})
        person = client.get(f"/patients/{TOLVAN}", headers=staff)
        pdf = client.get(f"/print-list/{doc.print_item_id}/document.pdf", headers=staff)
        handled = client.post(
            "/print-list/handle", json={"ids": [doc.print_item_id], "by": "ssk-anna"}, headers=staff
        )
        admin = _as(gw, "forvaltare-bo", auth.ADMIN)
        message = client.get("/messages/1", headers=admin)
        assert [r.status_code for r in (search, read, person, pdf, handled, message)] == [200] * 6
        assert read.headers["x-request-id"]  # the same id as the audit row's

        trail = _trail(client, gw, patient=TOLVAN)["items"]

    pushed_row = _only(trail, route="/journal/hl7")
    assert pushed_row == pushed_row | {
        "caller": "takecare-sll",
        "scope": "journal",
        "action": "create",
        "resource_type": "Message",
        "resource_id": "1",
        "patient": TOLVAN,
        "purpose": "journalföring",
        "method": "POST",
        "result": 200,
        "source": "http",
    }
    searched = _only(trail, caller="plattform-1177", route="/fhir/Appointment")
    assert searched == searched | {
        "scope": "platform",
        "action": "search",
        "resource_type": "Appointment",
        "resource_id": None,
        "patient": TOLVAN,
        "purpose": "invånartjänst",
        "result": 200,
    }
    assert searched["query"] == f"patient:identifier={PNR_SYSTEM}|{TOLVAN}"
    one = _only(trail, caller="plattform-1177", route="/fhir/Appointment/{appointment_id}")
    assert one == one | {"action": "read", "resource_id": appointment_id, "patient": TOLVAN, "result": 200}
    assert one["request_id"] == read.headers["x-request-id"]
    viewed = _only(trail, caller="ssk-anna", route="/patients/{person_id}")
    assert viewed == viewed | {
        "scope": "staff",
        "action": "read",
        "resource_type": "Patient",
        "resource_id": TOLVAN,
        "purpose": "vårdplanering",  # the caller's own X-Purpose
        "method": "GET",
    }
    printed = _only(trail, caller="ssk-anna", route="/print-list/{item_id}/document.pdf")
    assert printed == printed | {"resource_type": "PrintItem", "resource_id": str(doc.print_item_id)}
    handled_row = _only(trail, caller="ssk-anna", route="/print-list/handle")
    assert handled_row == handled_row | {
        "action": "update",
        "resource_type": "PrintItem",
        "resource_id": str(doc.print_item_id),
        "patient": TOLVAN,
    }
    browsed = _only(trail, caller="forvaltare-bo")
    assert browsed == browsed | {
        "scope": "admin",
        "action": "read",
        "resource_type": "Message",
        "resource_id": "1",
        "patient": TOLVAN,
        "purpose": "systemförvaltning",
    }
    at = datetime.fromisoformat(browsed["at"])
    assert timedelta(0) <= datetime.now(UTC) - at < timedelta(minutes=1)


def test_denied_requests_are_audited_with_the_caller_when_known(secured: GatewayThread) -> None:
    gw = secured
    with httpx.Client(base_url=gw.http_url, timeout=10) as client:
        anonymous = client.get(f"/patients/{OTHER}")
        wrong_scope = client.get(
            "/fhir/Communication",
            params={"subject:identifier": f"{PNR_SYSTEM}|{OTHER}"},
            headers=_as(gw, "ssk-bertil", auth.STAFF),
        )
        assert (anonymous.status_code, wrong_scope.status_code) == (401, 403)
        trail = _trail(client, gw, patient=OTHER)["items"]
    refused = _only(trail, route="/patients/{person_id}")
    assert refused == refused | {
        "caller": "unauthenticated",
        "result": 401,
        "scope": "staff",
        "patient": OTHER,
    }
    forbidden = _only(trail, route="/fhir/Communication")
    assert forbidden == forbidden | {
        "caller": "ssk-bertil",  # the token was good, the scope was not
        "result": 403,
        "scope": "platform",
        "action": "search",
        "patient": OTHER,
    }


def test_get_audit_filters_by_patient_caller_and_time_and_pages(secured: GatewayThread) -> None:
    gw = secured
    with httpx.Client(base_url=gw.http_url, timeout=10) as client:
        before = datetime.now(UTC)
        for patient in (TOLVAN, OTHER, OTHER):
            client.get(f"/patients/{patient}", headers=_as(gw, "ssk-cecilia", auth.STAFF))
        client.get(f"/patients/{TOLVAN}", headers=_as(gw, "lak-david", auth.STAFF))
        only_other = _trail(client, gw, patient=OTHER)
        assert only_other["total"] == 2
        assert {i["patient"] for i in only_other["items"]} == {OTHER}
        by_caller = _trail(client, gw, caller="lak-david")
        assert [(i["caller"], i["patient"]) for i in by_caller["items"]] == [("lak-david", TOLVAN)]
        both = _trail(client, gw, patient=TOLVAN, caller="ssk-cecilia")
        assert both["total"] == 1
        page = _trail(client, gw, caller="ssk-cecilia", _count=2, _offset=2)
        assert page["total"] == 3 and [i["patient"] for i in page["items"]] == [TOLVAN]  # newest first
        later = datetime.now(UTC) + timedelta(hours=1)
        assert _trail(client, gw, caller="ssk-cecilia", **{"from": later.isoformat()})["total"] == 0
        assert _trail(client, gw, caller="ssk-cecilia", to=before.isoformat())["total"] == 0
        assert _trail(client, gw, caller="ssk-cecilia", **{"from": before.isoformat()})["total"] == 3
        # Reading the trail is itself in the trail.
        assert _trail(client, gw, caller="auditor")["total"] >= 7
        staff = client.get("/audit", headers=_as(gw, "ssk-cecilia", auth.STAFF))
        assert staff.status_code == 403  # admins only
        # A time the store cannot hold in UTC (found by the fuzzer): a 400 naming it, not a 500.
        admin = _as(gw, "auditor", auth.ADMIN)
        for name, moment in (("from", "0001-01-01T00:00:00+01:00"), ("to", "9999-12-31T23:59:00-01:00")):
            odd = client.get("/audit", params={name: moment}, headers=admin)
            assert odd.status_code == 400, odd.text
            assert odd.json()["resourceType"] == "OperationOutcome" and name in odd.text


def test_no_route_changes_the_audit_trail(secured: GatewayThread) -> None:
    gw = secured
    admin = _as(gw, "forvaltare-eva", auth.ADMIN, **{"Content-Type": "application/json"})
    with httpx.Client(base_url=gw.http_url, timeout=10) as client:
        client.get(f"/patients/{TOLVAN}", headers=_as(gw, "ssk-anna", auth.STAFF))
        before = _trail(client, gw, caller="ssk-anna")["items"]
        for method in ("DELETE", "PUT", "PATCH", "POST"):
            assert client.request(method, "/audit", headers=admin, content=b"{}").status_code == 405
        row = before[0]["id"]
        for method in ("DELETE", "PUT", "PATCH", "GET"):
            answer = client.request(method, f"/audit/{row}", headers=admin, content=b"{}")
            assert answer.status_code in (404, 405), (method, answer.status_code)
        assert _trail(client, gw, caller="ssk-anna")["items"] == before
        tried = _trail(client, gw, caller="forvaltare-eva")["items"]
    # The attempts are in the trail too, under the admin who made them.
    assert {i["action"] for i in tried if i["route"] == "/audit"} >= {"delete", "put", "patch"}
    assert all(i["result"] == 405 for i in tried if i["route"] == "/audit")


def _templates(routes: list[Any]) -> set[str]:
    """Route templates as the audit middleware sees them (``scope["route"].path``)."""
    found: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI keeps included routers nested
        if inner is not None:
            found |= _templates(inner.routes)
        elif isinstance(getattr(route, "path", None), str):
            found.add(route.path)
    return found


def test_every_route_is_audited_or_declared_free_of_personal_data(secured: GatewayThread) -> None:
    paths = _templates(secured.gateway.app.routes)
    assert paths - set(AUDITED) - NOT_AUDITED == set()
    assert set(AUDITED) - paths == set()  # no stale entries


def test_inbound_hl7_over_mllp_is_in_the_trail_from_the_messages_table(secured: GatewayThread) -> None:
    host, port = secured.mllp_address
    patient = "198203152452"
    (ack,) = mllp_exchange(host, port, [siu("S12", patient=patient, sending="MELIOR|KS")])
    assert b"MSA|AA" in ack
    with httpx.Client(base_url=secured.http_url, timeout=10) as client:
        (row,) = _trail(client, secured, patient=patient)["items"]
        assert _trail(client, secured, caller="MELIOR|KS")["total"] == 1
    assert row == row | {
        "source": "mllp",
        "caller": "MELIOR|KS",
        "scope": "journal",
        "action": "create",
        "resource_type": "Message",
        "method": "MLLP",
        "ack": "AA",
        "result": None,
    }
    assert row["request_id"].startswith("T")  # MSH-10


def _event(request_id: str) -> AuditEvent:
    return AuditEvent(
        at=datetime.now(UTC),
        caller="ssk-anna",
        client=None,
        scope="staff",
        action="read",
        resource_type="Patient",
        resource_id=TOLVAN,
        patient=TOLVAN,
        purpose="vård",
        method="GET",
        route="/patients/{person_id}",
        query=None,
        result=200,
        request_id=request_id,
        peer=None,
    )


def test_the_audit_table_refuses_update_and_delete(engine: Engine) -> None:
    request_id = uuid.uuid4().hex
    with engine.begin() as conn:
        write(conn, [_event(request_id)])
    mine = audit_events.c.request_id == request_id
    statements = [
        audit_events.update().where(mine).values(caller="someone-else"),
        audit_events.delete().where(mine),
        audit_events.delete(),
    ]
    if engine.dialect.name == "postgresql":
        statements.append(text("TRUNCATE audit_events"))
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        (caller,) = conn.execute(select(audit_events.c.caller).where(mine)).one()
    assert caller == "ssk-anna"


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def test_the_migration_downgrades_and_upgrades_with_its_triggers(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("postgresql"):  # a database of its own: the session's stays as it is
        from tests.conftest import PG_ADMIN_URL

        admin = make_engine(PG_ADMIN_URL)
        name = f"gw_audit_{uuid.uuid4().hex[:10]}"
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{(tmp_path / 'migrations.db').as_posix()}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        _alembic(engine, "downgrade", "0005")
        assert "audit_events" not in inspect(engine).get_table_names()
        migrate.upgrade(engine)
        with engine.begin() as conn:
            write(conn, [_event("again")])
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(audit_events.delete())
    finally:
        engine.dispose()
        if store_url.startswith("postgresql"):
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_the_writer_keeps_rows_while_the_database_refuses_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{(tmp_path / 'late.db').as_posix()}")  # no table yet
    writer = AuditWriter(engine, retry_max=0.1)
    try:
        writer.record(_event("kept-1"))
        writer.record(_event("kept-2"))
        deadline = time.monotonic() + 5
        while not writer.failing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.failing  # the insert failed and is being retried
        migrate.upgrade(engine)
        assert writer.flush(timeout=10)
        assert not writer.failing
    finally:
        writer.stop()
    with engine.connect() as conn:
        ids = set(conn.execute(select(audit_events.c.request_id)).scalars())
    engine.dispose()
    assert ids == {"kept-1", "kept-2"}


def test_accesses_are_refused_while_the_trail_cannot_be_written(secured: GatewayThread) -> None:
    writer: AuditWriter = secured.gateway.app.state.audit
    staff = _as(secured, "ssk-anna", auth.STAFF)
    with httpx.Client(base_url=secured.http_url, timeout=10) as client:
        writer._max_backlog = 0  # as when the database has refused the trail for a long time
        try:
            refused = client.get(f"/patients/{TOLVAN}", headers=staff)
            health = client.get("/health")
        finally:
            writer._max_backlog = 50_000
        assert refused.status_code == 503 and "audit" in refused.json()["issue"][0]["diagnostics"]
        assert health.status_code == 200  # no personal data: not held up
        assert client.get(f"/patients/{TOLVAN}", headers=staff).status_code == 200


def test_odd_ids_in_paths_neither_break_the_route_nor_stop_the_audit_writer(secured: GatewayThread) -> None:
    # '³'.isdigit() is True in Python but int('³') fails: found by the API fuzzer.
    with httpx.Client(base_url=secured.http_url, timeout=10) as client:
        admin = _as(secured, "admin-1", "admin")
        staff = _as(secured, "ssk-1", "staff", "platform")
        assert client.get("/messages/%C2%B3", headers=admin).status_code == 400
        assert client.get("/print-list/%C2%B3", headers=staff).status_code in (400, 404)
        assert client.get("/fhir/Binary/abc-%C2%B3", headers=staff).status_code == 404
        trail = _trail(client, secured, caller="admin-1")
        assert any(item["result"] == 400 for item in trail["items"])  # written: the writer lives


# --- In process (issue 14, point 7): a refused method names its caller; 10-digit numbers ---


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The gateway's app, built but not started, called in process."""
    gw = build(
        _settings(tmp_path),
        register=FakeRegister(),
        accounts=FakeAccounts(),
        mailbox=FakeMailbox(),
        mailbox_delivery=FakeDelivery(),
        journal=object(),  # type: ignore[arg-type]
    )
    transport = httpx.ASGITransport(app=gw.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, gw.settings
    gw.app.state.audit.stop()
    gw.engine.dispose()


def _bearer(settings: Settings, subject: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.dev_token(settings, scopes, subject=subject)}


async def test_a_method_no_route_takes_is_checked_for_a_token_and_audited_with_its_caller(
    api: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = api
    anonymous = await client.delete("/audit")
    staff = await client.delete("/audit", headers=_bearer(settings, "ssk-anna", auth.STAFF))
    admin = await client.delete("/audit", headers=_bearer(settings, "forvaltare-eva", auth.ADMIN))
    assert (anonymous.status_code, staff.status_code, admin.status_code) == (401, 403, 405)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    answer = await client.get("/audit", headers=_bearer(settings, "auditor", auth.ADMIN))
    rows = [(i["caller"], i["result"]) for i in answer.json()["items"] if i["method"] == "DELETE"]
    assert sorted(rows) == [("forvaltare-eva", 405), ("ssk-anna", 403), ("unauthenticated", 401)]


async def test_r_id_1_get_audit_finds_a_patient_given_as_ten_digits_by_the_century_rule(
    api: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = api
    staff = _bearer(settings, "ssk-anna", auth.STAFF)
    for person in ("198203152452", TOLVAN):
        await client.get(f"/patients/{person}", headers=staff)
    # A search by a 10-digit number is kept as the 12-digit one.
    admin = _bearer(settings, "forvaltare-eva", auth.ADMIN)
    browsing = _bearer(settings, "forvaltare-bo", auth.ADMIN)
    await client.get("/messages", params={"patient": "820315-2452"}, headers=browsing)

    async def found(patient: str) -> list[tuple[str, str]]:
        answer = await client.get("/audit", params={"patient": patient, "caller": "ssk-anna"}, headers=admin)
        assert answer.status_code == 200, answer.text
        return [(i["patient"], i["route"]) for i in answer.json()["items"]]

    anna = [("198203152452", "/patients/{person_id}")]
    for written in ("820315-2452", "8203152452", "19820315-2452", "198203152452"):
        assert await found(written) == anna, written
    assert await found("121212+1212") == [(TOLVAN, "/patients/{person_id}")]  # "+": 100 or older
    assert await found("121212-1212") == []  # "-": born 2012, someone else
    searched = await client.get(
        "/audit", params={"patient": "198203152452", "caller": "forvaltare-bo"}, headers=admin
    )
    assert [i["route"] for i in searched.json()["items"]] == ["/messages"]
