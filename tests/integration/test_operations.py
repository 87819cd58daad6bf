"""What operations see, on both backends: one message's log lines joined by its id, the
metrics' figures (and no personal data in them), readiness and ``gateway db``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from structlog.testing import capture_logs

from gateway import mappings as mapping_tables
from gateway.cli import main
from gateway.service.intake import Intake
from gateway.service.processing import Processor
from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.inbox import Inbox
from gateway.testing import GatewayThread
from tests.conftest import PG_ADMIN_URL, wait_processed
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister
from tests.support import TOLVAN, siu

MAPPINGS = mapping_tables.load()


def test_one_messages_lines_at_intake_and_in_the_worker_share_its_message_id(engine: Engine) -> None:
    inbox = Inbox(engine)
    inbox.start()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        try:
            accepted = asyncio.run(Intake(MAPPINGS, inbox).handle(siu(booking="L1"), transport="mllp"))
            refused = asyncio.run(
                Intake(MAPPINGS, inbox).handle(siu(patient="19121212121"), transport="mllp")
            )
        finally:
            inbox.stop()
        Processor(engine, MAPPINGS, FakeRegister()).run_once()
    assert structlog.contextvars.get_contextvars() == {}  # nothing left bound afterwards
    by_message: dict[int, list[str]] = {}
    for line in logs:
        if "message_id" in line:
            by_message.setdefault(line["message_id"], []).append(line["event"])
    assert by_message[accepted.message_id or 0] == ["intake.acknowledged", "processing.finished"]
    assert by_message[refused.message_id or 0] == ["intake.acknowledged"]  # AE: never processed
    # Every line that names a message names it as message_id, never the person.
    assert not any(TOLVAN in str(line) for line in logs)


def _figures(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def served(tmp_path: Path, store_url: str) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path,
        db_url=store_url,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        metrics_port=0,
        worker_poll_interval=0.2,
        log_level="WARNING",
        auth="off",
    )
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        yield gw


def test_metrics_count_a_booking_from_ack_to_processed_without_personal_data(served: GatewayThread) -> None:
    with httpx.Client(base_url=served.http_url) as http:
        before = _figures(http.get("/metrics").text)
        ack = http.post(
            "/journal/hl7", content=siu(booking="M1"), headers={"Content-Type": "application/hl7-v2"}
        )
        assert "MSA|AA|" in ack.text
        bad = http.post(
            "/journal/hl7", content=siu(patient="19121212121"), headers={"Content-Type": "application/hl7-v2"}
        )
        assert "MSA|AE|" in bad.text
        wait_processed(http)
        body = http.get("/metrics").text
    assert served.gateway.metrics_server is not None  # the open port serves the same figures
    open_port = httpx.get(f"http://127.0.0.1:{served.gateway.metrics_server.port}/metrics").text
    assert "gateway_backlog_messages" in open_port
    after = _figures(body)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    siu_s12 = {"transport": "http", "type": "SIU", "trigger": "S12"}
    assert grew("gateway_messages_received_total", **siu_s12) == 2
    assert grew("gateway_messages_acknowledged_total", ack_code="AA", **siu_s12) == 1
    assert grew("gateway_messages_acknowledged_total", ack_code="AE", **siu_s12) == 1
    assert grew("gateway_ack_latency_seconds_count", transport="http") == 2
    assert grew("gateway_messages_processed_total", outcome="processed") == 1
    assert grew("gateway_processing_latency_seconds_count", outcome="processed") == 1
    assert after[("gateway_messages", (("state", "processed"),))] >= 1
    assert after[("gateway_messages", (("state", "rejected"),))] >= 1
    assert after[("gateway_backlog_messages", ())] == 0
    assert after[("gateway_worker_lag_seconds", ())] == 0
    assert after[("gateway_outbox_dead_letters", ())] == 0
    assert ("gateway_print_list_open", ()) in after and ("gateway_held_documents", ()) in after
    assert after[("gateway_database_up", ())] == 1
    assert ("gateway_audit_lag_seconds", ()) in after
    # The booking's SMS reminder is planned (or skipped, with why) in the same transaction, and
    # counted by state and kind (docs/notifications.md).
    planned = {labels: n for (name, labels), n in after.items() if name == "gateway_notifications"}
    assert sum(n for labels, n in planned.items() if ("kind", "reminder") in labels) >= 1, planned
    assert TOLVAN not in body and "Tolvan" not in body and "19121212121" not in body


def test_ready_and_live_say_why(served: GatewayThread) -> None:
    with httpx.Client(base_url=served.http_url) as http:
        assert http.get("/health/live").json() == {"status": "ok"}
        assert http.get("/health").status_code == 200
        deadline_checks = http.get("/health/ready")
    body = deadline_checks.json()
    assert deadline_checks.status_code == 200, body
    assert set(body["checks"]) == {"database", "migrations", "worker_lease", "breakers"}
    assert all(check["ok"] and check["why"] for check in body["checks"].values())


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    """A PostgreSQL database of this test's own, which the test may drop."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"gw_ops_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _poll_status(url: str, wanted: int, timeout: float = 15.0) -> httpx.Response:
    import time

    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url, timeout=5)
        if answer.status_code == wanted or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.mark.postgres
def test_readiness_turns_503_when_the_database_goes_away(tmp_path: Path, scratch_pg: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        db_url=scratch_pg,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.2,
        log_level="CRITICAL",
        auth="off",
    )
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        ready = _poll_status(f"{gw.http_url}/health/ready", 200)  # the worker takes its lease
        assert ready.status_code == 200, ready.json()
        assert ready.json()["checks"]["worker_lease"]["why"] == "an instance holds the worker lease"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{scratch_pg.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()
        gone = _poll_status(f"{gw.http_url}/health/ready", 503)
        assert gone.status_code == 503
        checks = gone.json()["checks"]
        assert not checks["database"]["ok"] and "cannot reach the database" in checks["database"]["why"]
        assert httpx.get(f"{gw.http_url}/health/live").status_code == 200  # up, just not ready
        metrics = httpx.get(f"{gw.http_url}/metrics").text
        assert "gateway_database_up 0.0" in metrics


def test_db_current_and_upgrade_commands(tmp_path: Path, store_url: str) -> None:
    runner = CliRunner()
    fresh = store_url
    if store_url.startswith("sqlite"):
        fresh = f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}"
    else:  # the engine fixture left the schema at head; start from nothing
        engine = make_engine(store_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    behind = runner.invoke(main, ["db", "current", "--db-url", fresh])
    assert behind.exit_code == 1 and "database empty" in behind.output and "behind" in behind.output
    first = runner.invoke(main, ["db", "upgrade", "--db-url", fresh])
    assert first.exit_code == 0 and first.output.startswith("upgraded to "), first.output
    again = runner.invoke(main, ["db", "upgrade", "--db-url", fresh])
    assert again.exit_code == 0 and again.output.startswith("already current at "), again.output
    now = runner.invoke(main, ["db", "current", "--db-url", fresh])
    assert now.exit_code == 0 and f"code {migrate.head()}: current" in now.output


@pytest.mark.postgres
def test_two_upgrades_at_once_on_postgresql_take_turns(scratch_pg: str) -> None:
    engines = [make_engine(scratch_pg) for _ in range(2)]
    results: list[bool | BaseException] = []

    def upgrade(engine: Engine) -> None:
        try:
            results.append(migrate.upgrade(engine))
        except BaseException as exc:  # surfaced by the assertion below
            results.append(exc)

    import threading

    threads = [threading.Thread(target=upgrade, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert sorted(results, key=str) == [False, True]  # one migrated, the other found it current


def test_certificate_expiry_is_a_gauge_per_certificate(tmp_path: Path, engine: Engine) -> None:
    import trustme

    from gateway.metrics import StoreCollector, certificate_not_after

    ca = trustme.CA()
    pem = tmp_path / "mllp.pem"
    ca.issue_cert("gateway.region.example").cert_chain_pems[0].write_to_path(str(pem))
    not_after = certificate_not_after(pem)
    assert not_after is not None
    collector = StoreCollector(engine, certificates={"mllp_tls": pem, "missing": tmp_path / "nope.pem"})
    samples = {
        (s.name, tuple(s.labels.items())): s.value for family in collector.collect() for s in family.samples
    }
    key = ("gateway_certificate_expiry_timestamp_seconds", (("certificate", "mllp_tls"),))
    assert samples[key] == not_after.timestamp()
    assert not any(labels == (("certificate", "missing"),) for _name, labels in samples)  # logged, not shown


def test_a_failed_start_names_its_cause_and_only_a_port_in_use_suggests_ports() -> None:
    import errno

    from gateway.cli import _why_not_started
    from gateway.errors import ConfigurationError

    missing = _why_not_started(ConfigurationError("GATEWAY_SPAR_URL is not set"), 8000, 2575)
    assert "ConfigurationError: GATEWAY_SPAR_URL is not set" in missing and "port" not in missing
    busy = _why_not_started(OSError(errno.EADDRINUSE, "Address already in use"), 8000, 2575)
    assert "Address already in use" in busy and "is port 8000 or 2575 in use?" in busy


def test_not_ready_when_every_breaker_is_open(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.api import health
    from gateway.errors import TransientUpstreamError
    from gateway.resilience import CircuitBreaker

    spar, accounts = (
        CircuitBreaker("spar", failure_threshold=1),
        CircuitBreaker("accounts", failure_threshold=1),
    )
    monkeypatch.setattr(health, "breakers", lambda: [spar, accounts])

    async def down() -> None:
        raise TransientUpstreamError("connection refused")

    with pytest.raises(TransientUpstreamError):
        asyncio.run(spar.call(down))
    assert health.readiness(engine)["breakers"] == {"ok": True, "why": "accounts closed, spar open"}
    with pytest.raises(TransientUpstreamError):
        asyncio.run(accounts.call(down))
    assert health.readiness(engine)["breakers"] == {"ok": False, "why": "accounts open, spar open"}


def test_audit_lag_is_the_age_of_the_oldest_event_the_writer_cannot_commit(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.metrics import StoreCollector
    from gateway.store.audit import AuditEvent, AuditWriter

    bare = make_engine(f"sqlite:///{(tmp_path / 'no-tables.db').as_posix()}")  # no audit table: writes fail
    writer = AuditWriter(bare, retry_max=0.1)
    event = AuditEvent(
        at=datetime.now(UTC) - timedelta(seconds=30),
        caller="ssk-anna",
        client=None,
        scope="staff",
        action="read",
        resource_type="Patient",
        resource_id=None,
        patient=None,
        purpose="vård",
        method="GET",
        route="/patients/{person_id}",
        query=None,
        result=200,
        request_id=uuid.uuid4().hex,
        peer=None,
    )
    writer.record(event)
    collector = StoreCollector(bare, audit=writer)

    def samples() -> dict[str, float]:
        return {s.name: s.value for family in collector.collect() for s in family.samples}

    import time

    deadline = time.monotonic() + 10
    while not writer.failing and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        now = samples()
        assert now["gateway_audit_writer_failing"] == 1
        assert now["gateway_audit_lag_seconds"] >= 30
        assert now["gateway_database_up"] == 0  # no tables: the store's figures cannot be read
    finally:
        migrate.upgrade(bare)  # the table appears: the writer commits and catches up
        writer.stop(timeout=10)
    assert samples()["gateway_audit_lag_seconds"] == 0 and not writer.failing
    bare.dispose()
