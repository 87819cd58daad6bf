"""The processing worker in its own OS process (``gateway serve``'s default).

The rest of the suite runs the worker in-process (``GatewayThread``'s default); here the same
bookings go through a worker in a spawned process, which is restarted if it dies.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import Settings
from gateway.testing import GatewayThread
from tests.conftest import wait_processed
from tests.fakes import FakeAccounts, FakeRegister
from tests.support import PNR_SYSTEM, TOLVAN, ack_code, mllp_exchange, siu


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.2,
        log_level="WARNING",
    )
    with GatewayThread(
        settings,
        register=FakeRegister(),
        accounts=FakeAccounts(),
        worker="process",
        worker_register="tests.fakes:FakeRegister",
    ) as gw:
        yield gw


def _bookings(http: httpx.Client) -> list[str]:
    bundle = http.get("/fhir/Appointment", params={"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}).json()
    return sorted(e["resource"]["status"] for e in bundle.get("entry", []))


def test_bookings_are_processed_by_a_worker_in_its_own_process(gateway: GatewayThread) -> None:
    worker = gateway.gateway.worker_process
    assert worker is not None
    acks = mllp_exchange(
        *gateway.mllp_address,
        [siu("S12", booking="BK-WP-1"), siu("S12", booking="BK-WP-2"), siu("S15", booking="BK-WP-2")],
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
    assert worker.alive and worker.pid != os.getpid()
    with httpx.Client(base_url=gateway.http_url, timeout=10) as http:
        wait_processed(http, timeout=30)  # the first batch waits for the child to start
        assert _bookings(http) == ["booked", "cancelled"]


def test_a_worker_process_that_dies_is_started_again_and_nothing_is_lost(gateway: GatewayThread) -> None:
    worker = gateway.gateway.worker_process
    assert worker is not None and worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    acks = mllp_exchange(*gateway.mllp_address, [siu("S12", booking="BK-WP-3")])
    assert ack_code(acks[0]) == "AA"  # intake does not depend on the worker
    with httpx.Client(base_url=gateway.http_url, timeout=10) as http:
        wait_processed(http, timeout=30)
        assert _bookings(http) == ["booked"]
    assert worker.starts == 2


def test_the_worker_process_ends_with_the_gateway(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, http_port=0, mllp_port=0, mocks_port=0, log_level="WARNING")
    gw = GatewayThread(
        settings, register=FakeRegister(), worker="process", worker_register="tests.fakes:FakeRegister"
    )
    gw.start()
    worker = gw.gateway.worker_process
    assert worker is not None
    deadline = time.monotonic() + 10
    while worker.pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = worker.pid
    assert pid is not None
    gw.stop()
    assert not worker.alive and worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie or an orphan
