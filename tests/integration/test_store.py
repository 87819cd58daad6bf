"""The store on both backends (SQLite and PostgreSQL): inbox, processing, queries, migrations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from gateway import mappings as mapping_tables
from gateway.fhir.search import parse_appointment_query
from gateway.service.intake import Intake
from gateway.service.processing import Processor
from gateway.store import migrate, queries
from gateway.store.inbox import Inbox
from gateway.store.tables import appointments, audit_metadata, messages, metadata
from gateway.testing import GatewayThread
from tests.conftest import wait_processed
from tests.fakes import FakeRegister
from tests.support import PNR_SYSTEM, TOLVAN, ack_code, control_id, mllp_exchange, siu

MAPPINGS = mapping_tables.load()


def _intake(engine: Engine) -> tuple[Intake, Inbox]:
    inbox = Inbox(engine)
    inbox.start()
    return Intake(MAPPINGS, inbox), inbox


def test_migrations_create_the_schema_and_are_idempotent(engine: Engine) -> None:
    migrate.upgrade(engine)  # a second time changes nothing
    tables = set(inspect(engine).get_table_names())
    assert {"messages", "appointments", "alembic_version"} <= tables


def test_message_is_stored_raw_before_the_ack_and_a_repeat_is_a_duplicate(engine: Engine) -> None:
    intake, inbox = _intake(engine)
    raw = siu(control="C-1", charset="8859/1", reason="^Återbesök")
    try:
        first = asyncio.run(intake.handle(raw, transport="mllp", peer="test"))
        again = asyncio.run(intake.handle(raw, transport="http", peer="test"))
    finally:
        inbox.stop()
    assert first.ack_code == again.ack_code == "AA"
    assert again.duplicate_of == first.message_id
    with engine.connect() as conn:
        rows = conn.execute(select(messages).order_by(messages.c.id)).mappings().all()
    assert [r["state"] for r in rows] == ["received", "duplicate"]
    assert rows[0]["raw"] == raw  # byte for byte, in its own character set
    assert rows[0]["patient"] == TOLVAN and rows[0]["control_id"] == "C-1"
    assert "MSA|AA|C-1" in rows[0]["ack"]


def test_concurrent_senders_share_commits_without_losing_or_doubling(engine: Engine) -> None:
    intake, inbox = _intake(engine)

    async def burst() -> list[str]:
        results = await asyncio.gather(
            *(intake.handle(siu(control=f"C-{i % 150}"), transport="mllp") for i in range(300))
        )
        return [r.ack_code for r in results]

    try:
        codes = asyncio.run(burst())
    finally:
        inbox.stop()
    assert codes == ["AA"] * 300
    with engine.connect() as conn:
        counts = queries.count_by_state(conn)
    assert counts == {"received": 150, "duplicate": 150}


def test_rejected_messages_are_kept_with_their_reason(engine: Engine) -> None:
    intake, inbox = _intake(engine)
    try:
        result = asyncio.run(intake.handle(siu(patient="191212121213"), transport="mllp"))
    finally:
        inbox.stop()
    assert result.ack_code == "AE"
    with engine.connect() as conn:
        total, rows = queries.list_messages(conn, queries.MessageFilter(state="rejected"))
    assert total == 1 and "check digit" in rows[0]["error"]


def test_processing_twice_changes_nothing(engine: Engine) -> None:
    intake, inbox = _intake(engine)
    try:
        for raw in (siu(booking="P1"), siu("S13", booking="P1", start="202612021000")):
            asyncio.run(intake.handle(raw, transport="mllp"))
    finally:
        inbox.stop()
    processor = Processor(engine, MAPPINGS, FakeRegister())
    assert processor.run_once() == 2
    assert processor.run_once() == 0
    with engine.connect() as conn:
        before = conn.execute(select(appointments)).mappings().one()
    # Reprocess every message as if nothing had happened: no new version, no change.
    with engine.begin() as conn:
        conn.execute(messages.update().values(state="received"))
    assert processor.run_once() == 2
    with engine.connect() as conn:
        after = conn.execute(select(appointments)).mappings().one()
    assert after["version_id"] == before["version_id"] == 2
    assert after["resource"] == before["resource"]


def test_search_queries_filter_and_page(engine: Engine) -> None:
    intake, inbox = _intake(engine)
    try:
        for day in range(1, 8):
            asyncio.run(intake.handle(siu(booking=f"Q{day}", start=f"2026120{day}0900"), transport="mllp"))
    finally:
        inbox.stop()
    Processor(engine, MAPPINGS, FakeRegister()).run_once()
    q = parse_appointment_query(
        [
            ("patient:identifier", f"{PNR_SYSTEM}|{TOLVAN}"),
            ("date", "ge2026-12-03"),
            ("_count", "2"),
            ("_offset", "2"),
        ]
    )
    with engine.connect() as conn:
        total, page = queries.search_appointments(conn, q)
    assert total == 5 and len(page) == 2
    assert b'"start":"2026-12-05T09:00:00+01:00"' in page[0]


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    intake, inbox = _intake(engine)
    try:
        asyncio.run(intake.handle(siu(), transport="mllp"))
    finally:
        inbox.stop()
    with engine.connect() as conn:
        received = conn.execute(select(messages.c.received_at)).scalar_one()
    assert received.tzinfo is not None
    assert abs(datetime.now(UTC) - received) < timedelta(minutes=1)


def test_whole_pipeline_on_each_backend(gateway_on: GatewayThread) -> None:
    host, port = gateway_on.mllp_address
    cid = control_id()
    acks = mllp_exchange(host, port, [siu(control=cid, booking="E2E"), siu(control=cid, booking="E2E")])
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    with httpx.Client(base_url=gateway_on.http_url) as http:
        wait_processed(http)
        bundle = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}).json()
    assert bundle["total"] == 1


def test_migrations_build_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    with engine.connect() as conn:
        # audit_events is in a MetaData of its own (append-only; docs/audit.md): both together.
        differences = compare_metadata(MigrationContext.configure(conn), [metadata, audit_metadata])  # type: ignore[arg-type]
    assert differences == []
