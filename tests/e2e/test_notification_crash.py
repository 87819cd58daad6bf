"""SIGKILL mid-send: the SMS reached the provider, the gateway died before recording it; after a
restart the SMS is not sent again (counted at the mock).

``gateway serve`` (SQLite, the worker in its own process) runs against a standalone ``gateway
mocks``, with a tester's own mappings directory (GATEWAY_MAPPINGS_DIR): a lead time in minutes
and no quiet hours, so the reminder is due at once. The SMS mock takes the SMS and then holds
its answer; while it holds it the whole process group gets SIGKILL. The row must be ``sending``
(marked, with its key, before the call). A new ``serve`` on the same database finds it, asks the
provider by the key (history, then the same Idempotency-Key) and records it ``sent``: one SMS.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.domain.notifications import STOCKHOLM
from gateway.mappings import DEFAULT_DIR
from tests.processes import Mocks, start_mocks, start_serve
from tests.support import TOLVAN, ack_code, mllp_exchange, siu


@pytest.fixture
def mocks(tmp_path: Path) -> Iterator[Mocks]:
    mocks = start_mocks(tmp_path)
    yield mocks
    mocks.started.stop()


def own_mappings(tmp_path: Path) -> Path:
    """A tester's own mappings: reminders 60 minutes before, also when booked later, any hour."""
    mine = tmp_path / "mappings"
    shutil.copytree(DEFAULT_DIR, mine)
    path = mine / "notifications.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('default: {days_before: 1, at: "18:00"}', "default: {minutes_before: 60}")
    text = text.replace('quiet_hours: {start: "21:00", end: "08:00"}', "quiet_hours: null")
    text = text.replace("remind_when_booked_late: false", "remind_when_booked_late: true")
    path.write_text(text, encoding="utf-8")
    return mine


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def wait_for(what: str, check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)  # polling an observable state (the mock, the store)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_send_no_second_sms(tmp_path: Path, mocks: Mocks) -> None:
    db = tmp_path / "gateway.db"
    env = {
        **mocks.env(),
        "GATEWAY_MOCKS": "false",
        "GATEWAY_DB_URL": f"sqlite:///{db}",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_WORKER_POLL_INTERVAL": "0.1",
        "GATEWAY_MAPPINGS_DIR": str(own_mappings(tmp_path)),
        "GATEWAY_SMS_TIMEOUT": "60",
        "GATEWAY_SMS_CLAIM_SECONDS": "1",  # one instance here: take the row up at once after the crash
        "GATEWAY_SMS_BACKOFF_INITIAL": "0.2",
    }
    sms = httpx.Client(base_url=mocks.url + "/sms", timeout=10)
    try:
        run_and_kill(tmp_path, db, env, sms)
    finally:
        sms.close()


def run_and_kill(tmp_path: Path, db: Path, env: dict[str, str], sms: httpx.Client) -> None:
    assert sms.put("/_switches", json={"hang_after_accept": 120}).status_code == 200

    def received() -> list[dict[str, Any]]:
        return list(sms.get("/_received").json()["received"])

    start = (datetime.now(UTC) + timedelta(minutes=30)).astimezone(STOCKHOLM)
    first = start_serve(tmp_path, "first", env)
    try:
        acks = mllp_exchange(*first.mllp, [siu("S12", booking="CRASH-SMS", start=f"{start:%Y%m%d%H%M}")])
        assert [ack_code(a) for a in acks] == ["AA"]
        wait_for("the SMS at the mock", lambda: len(received()) == 1)
        # Marked with its key before the call: the store says "sending", not "planned".
        assert rows(db, "SELECT state FROM notifications WHERE kind = 'reminder'") == [("sending",)]
    finally:
        first.started.kill_all()  # SIGKILL to the group while the provider holds its answer
    assert sms.put("/_switches", json={"hang_after_accept": 0}).status_code == 200

    second = start_serve(tmp_path, "second", env)
    try:
        wait_for(
            "the reminder recorded as sent",
            lambda: rows(db, "SELECT state FROM notifications WHERE kind = 'reminder'") == [("sent",)],
        )
    finally:
        assert second.started.stop() == 0
    (only,) = received()
    assert only["to"] == "+46701740605" and only["from"] == "RegHalland"
    (provider_id,) = rows(db, "SELECT provider_id FROM notifications WHERE kind = 'reminder'")[0]
    assert provider_id == only["id"]
    assert TOLVAN not in only["message"]
