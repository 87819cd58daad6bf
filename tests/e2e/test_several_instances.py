"""Several gateway instances on one PostgreSQL: all take messages, one processes at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.tables import appointments, messages, metadata
from gateway.testing import GatewayThread
from tests.fakes import FakeAccounts, FakeRegister
from tests.support import ack_code, mllp_exchange, siu

pytestmark = pytest.mark.postgres


def _settings(tmp_path: Path, url: str, name: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        db_url=url,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.1,
        log_level="WARNING",
    )


@pytest.fixture
def empty_pg(pg_url: str) -> Iterator[str]:
    eng = make_engine(pg_url)
    migrate.upgrade(eng)
    with eng.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    eng.dispose()
    yield pg_url


def _wait_all_processed(url: str, expected: int, timeout: float = 20) -> None:
    eng = make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with eng.connect() as conn:
                done = conn.execute(
                    select(func.count()).select_from(messages).where(messages.c.state == "processed")
                ).scalar_one()
            if done == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"only {done} of {expected} messages processed")
    finally:
        eng.dispose()


def test_two_instances_share_the_work_each_message_is_applied_once_and_in_order(
    tmp_path: Path, empty_pg: str
) -> None:
    with (
        GatewayThread(
            _settings(tmp_path, empty_pg, "a"), register=FakeRegister(), accounts=FakeAccounts()
        ) as a,
        GatewayThread(
            _settings(tmp_path, empty_pg, "b"), register=FakeRegister(), accounts=FakeAccounts()
        ) as b,
    ):
        sent = 0
        for n in range(20):
            booking = f"BK-MULTI-{n}"
            # A booking's messages alternate between the instances, as after a load balancer.
            first, second = (a, b) if n % 2 else (b, a)
            acks = mllp_exchange(*first.mllp_address, [siu("S12", booking=booking, start="202612010900")])
            acks += mllp_exchange(*second.mllp_address, [siu("S13", booking=booking, start="202612031400")])
            assert [ack_code(x) for x in acks] == ["AA", "AA"]
            sent += 2
        _wait_all_processed(empty_pg, sent)
        eng = make_engine(empty_pg)
        with eng.connect() as conn:
            attempts = conn.execute(select(messages.c.attempts)).scalars().all()
            rows = conn.execute(select(appointments.c.version_id, appointments.c.start)).all()
        eng.dispose()
        assert set(attempts) == {1}  # no message was processed by both workers
        assert len(rows) == 20
        assert all(version == 2 and start.day == 3 for version, start in rows)  # S12 then S13, once each
        with httpx.Client(base_url=b.http_url) as http:
            assert http.get("/fhir/Appointment", params={"_count": 5}).json()["total"] == 20


def test_when_the_processing_instance_stops_a_standby_takes_over(tmp_path: Path, empty_pg: str) -> None:
    a = GatewayThread(_settings(tmp_path, empty_pg, "a"), register=FakeRegister(), accounts=FakeAccounts())
    a.start()
    b = GatewayThread(_settings(tmp_path, empty_pg, "b"), register=FakeRegister(), accounts=FakeAccounts())
    b.start()
    try:
        mllp_exchange(*a.mllp_address, [siu(booking="BK-LEAD-1")])
        _wait_all_processed(empty_pg, 1)
        a.stop()  # whichever held the lease, one instance is left and must do the work
        mllp_exchange(*b.mllp_address, [siu(booking="BK-LEAD-2")])
        _wait_all_processed(empty_pg, 2)
        eng = make_engine(empty_pg)
        with eng.connect() as conn:
            holders = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
        eng.dispose()
        assert holders == 1
    finally:
        b.stop()
