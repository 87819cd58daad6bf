"""Two ``gateway serve`` processes on one PostgreSQL (issue "Security and operations", item 6).

Both take bookings and letters over MLLP (as behind a load balancer), and share the inbound
processing, the mailbox outbox and the timers with no double work. Everything outside is the
standalone ``gateway mocks`` process (SPAR, accounts, mailboxes), which counts deliveries.

Proved here, with real processes (``test_several_instances.py`` does the same in-process):

* only one instance holds the worker lease at a time (its worker logs ``worker.lease_acquired``,
  the other's never does while it lives), and one advisory lock is held;
* every message is processed exactly once (``attempts`` 1, ``processed_at`` set), every
  booking's version counts its changes (1, or 2 when rescheduled), also when the leaseholder is
  killed (SIGKILL to its process group) in the middle of a run and the standby takes over: the
  killed batch rolls back and the standby applies it once;
* every mailbox letter reaches the operator once (the mock's ``/mailbox/_deliveries``) and the
  document records one delivery, with both instances' outboxes draining the one outbox;
* the 48-hour timer (R-DOC-5) puts each unread platform-only document on the print list once.

Time for the timer: ``gateway serve`` takes no clock, so the test makes documents due by
writing ``documents.sent_at`` 49 hours back and ``print_due_at`` into the past directly in the
database, with ``GATEWAY_TIMER_INTERVAL`` short, and then counts ``print-listed`` events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text, update

from gateway.fhir.appointment import appointment_id
from gateway.fhir.communication import document_id
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.tables import appointments, document_events, documents, messages, metadata, print_items
from tests.e2e.test_mailbox_outbox import (
    ADULTS,
    DECLINED,
    MINOR,
    NAMESPACE,
    assert_each_delivered_once,
    delivered_in,
    eventually,
    mdm,
    outbox_rows,
)
from tests.processes import Mocks, Serve, start_mocks, start_serve
from tests.support import ack_code, mllp_exchange, siu

pytestmark = pytest.mark.postgres

PLATFORM_ONLY = (DECLINED, MINOR)  # an account and no usable mailbox: the 48-hour rule applies


@pytest.fixture
def empty_pg(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    migrate.upgrade(eng)
    with eng.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield eng
    eng.dispose()


@pytest.fixture
def mocks(tmp_path: Path) -> Iterator[Mocks]:
    mocks = start_mocks(tmp_path)
    yield mocks
    mocks.started.stop()


def send(serve: Serve, batch: list[bytes]) -> None:
    acks = mllp_exchange(*serve.mllp, batch, timeout=30)
    assert [ack_code(a) for a in acks] == ["AA"] * len(batch)


def send_both(a: Serve, b: Serve, batch: list[bytes]) -> None:
    """Half to each instance, at the same time (as after a load balancer)."""
    other = threading.Thread(target=send, args=(b, batch[1::2]))
    other.start()
    send(a, batch[0::2])
    other.join(60)


def letters(prefix: str, mailbox: int, platform: int) -> tuple[list[bytes], set[str], set[str]]:
    """Letters to persons with a mailbox and to platform-only persons, and their document ids."""
    to_mailbox = [(f"{prefix}-MB-{n}", ADULTS[n % len(ADULTS)]) for n in range(mailbox)]
    to_platform = [(f"{prefix}-PF-{n}", PLATFORM_ONLY[n % len(PLATFORM_ONLY)]) for n in range(platform)]
    raw = [mdm(number, person) for number, person in to_mailbox + to_platform]
    return (
        raw,
        {document_id(NAMESPACE, n) for n, _ in to_mailbox},
        {document_id(NAMESPACE, n) for n, _ in to_platform},
    )


def count(eng: Engine, stmt: Any) -> int:
    with eng.connect() as conn:
        found: int = conn.execute(stmt).scalar_one()
    return found


def processed(eng: Engine) -> int:
    return count(eng, select(func.count()).select_from(messages).where(messages.c.state == "processed"))


def wait_all_processed(eng: Engine, expected: int, timeout: float = 60) -> None:
    eventually(lambda: True if processed(eng) == expected else None, f"{expected} processed", timeout)


def lease_holders(eng: Engine) -> int:
    return count(
        eng,
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
    )


def make_due(eng: Engine, docs: set[str]) -> None:
    """The 48 hours pass for these documents: sent 49 hours ago, due a minute ago."""
    now = datetime.now(UTC)
    with eng.begin() as conn:
        due = conn.execute(
            update(documents)
            .where(documents.c.id.in_(docs), documents.c.print_due_at.is_not(None))
            .values(sent_at=now - timedelta(hours=49), print_due_at=now - timedelta(minutes=1))
        ).rowcount
    assert due == len(docs)


def print_listed(eng: Engine) -> Counter[str]:
    with eng.connect() as conn:
        found = conn.execute(
            select(document_events.c.document_id).where(document_events.c.event == "print-listed")
        ).scalars()
        return Counter(found)


def delivered_events(eng: Engine) -> Counter[str]:
    with eng.connect() as conn:
        found = conn.execute(
            select(document_events.c.document_id).where(document_events.c.event == "mailbox-delivered")
        ).scalars()
        return Counter(found)


def all_delivered(api: httpx.Client, expected: int) -> list[dict[str, Any]] | None:
    rows = [r for r in outbox_rows(api) if r["state"] != "cancelled"]
    return rows if len(rows) == expected and all(r["state"] == "delivered" for r in rows) else None


def test_two_serve_processes_share_intake_worker_outbox_and_timer_with_no_double_work(
    tmp_path: Path, mocks: Mocks, empty_pg: Engine
) -> None:
    eng = empty_pg
    env = {
        **mocks.env(),
        "GATEWAY_MOCKS": "false",
        "GATEWAY_DB_URL": eng.url.render_as_string(hide_password=False),
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_LOG_LEVEL": "INFO",
        "GATEWAY_WORKER_POLL_INTERVAL": "0.1",
        "GATEWAY_WORKER_BATCH": "10",  # small batches: a run spans many, so a kill lands inside
        "GATEWAY_SPAR_CACHE_TTL": "0",  # each batch asks SPAR (the mock's latency paces the run)
        "GATEWAY_TIMER_INTERVAL": "0.3",
        "GATEWAY_OUTBOX_BACKOFF_INITIAL": "0.2",
        "GATEWAY_OUTBOX_BACKOFF_MAX": "1",
        "GATEWAY_OUTBOX_CLAIM_SECONDS": "2",  # a killed instance's claims expire soon
        "GATEWAY_OUTBOX_BATCH": "3",  # both outboxes get some
    }
    mocks.switches(latency=0.05)  # mailbox calls take a while: both outboxes have letters in flight
    a = start_serve(tmp_path, "a", env, wait=False)
    b = start_serve(tmp_path, "b", env, wait=False)
    serves = {"a": a, "b": b}
    try:
        a.wait_up(), b.wait_up()
        with httpx.Client(base_url=a.http_url, timeout=10) as api:
            # --- Phase 1: both alive. Bookings, then a reschedule of half of them through the
            # other instance; letters to mailboxes and to the platform only.
            bookings = [f"SV-BK-{n}" for n in range(40)]
            send_both(a, b, [siu("S12", booking=bk, start="202612010900") for bk in bookings])
            send_both(b, a, [siu("S13", booking=bk, start="202612031400") for bk in bookings[::2]])
            raw, mailbox_1, platform_1 = letters("SV1", mailbox=12, platform=8)
            send_both(a, b, raw)
            sent = len(bookings) + len(bookings[::2]) + len(raw)
            wait_all_processed(eng, sent)

            holders = {name for name, s in serves.items() if '"worker.lease_acquired"' in s.started.output()}
            assert len(holders) == 1, holders  # the other stood by
            assert lease_holders(eng) == 1
            (holder_name,) = holders
            holder, standby = serves[holder_name], serves[({"a", "b"} - holders).pop()]

            rows = eventually(lambda: all_delivered(api, len(mailbox_1)), "phase 1 letters delivered", 30)
            assert {r["document_id"] for r in rows} == mailbox_1

            # The 48-hour timer, both instances alive.
            with eng.connect() as conn:
                due = set(
                    conn.execute(
                        select(documents.c.id).where(documents.c.print_due_at.is_not(None))
                    ).scalars()
                )
            assert due == platform_1  # only the platform-only letters wait for their 48 hours
            make_due(eng, platform_1)
            eventually(
                lambda: True if set(print_listed(eng)) == platform_1 else None, "phase 1 print-listed", 15
            )
            time.sleep(1.0)  # several more timer rounds on both instances: nothing listed again

            # --- Phase 2: a run the leaseholder is killed in the middle of.
            mocks.switches(latency=0.1)
            mocks_spar(mocks, latency=0.05)
            more = [f"SV-BK2-{n}" for n in range(200)]
            raw2, mailbox_2, platform_2 = letters("SV2", mailbox=12, platform=8)
            before = processed(eng)
            send_both(a, b, [siu("S12", booking=bk, start="202612020900") for bk in more] + raw2)
            sent += len(more) + len(raw2)
            eventually(
                lambda: True if processed(eng) - before >= 20 else None, "the phase 2 run under way", 30, 0.01
            )
            holder.started.kill_all()  # SIGKILL: serve, its worker process, everything in its group
            at_kill = processed(eng) - before
            assert at_kill < len(more) + len(raw2), "the run ended before the kill"
            mocks_spar(mocks, latency=0)

        with httpx.Client(base_url=standby.http_url, timeout=10) as api:
            wait_all_processed(eng, sent)
            assert '"worker.lease_acquired"' in standby.started.output()  # it took over
            assert lease_holders(eng) == 1
            rows = eventually(
                lambda: all_delivered(api, len(mailbox_1 | mailbox_2)), "every letter delivered", 40
            )
            make_due(eng, platform_2)
            eventually(
                lambda: True if set(print_listed(eng)) == platform_1 | platform_2 else None,
                "phase 2 print-listed",
                15,
            )
            time.sleep(1.0)
            print_total = api.get("/print-list", params={"state": "all", "limit": 100}).json()["total"]
    finally:
        for s in serves.values():
            with contextlib.suppress(Exception):
                s.started.stop()

    # Each message processed exactly once, by whichever instance held the lease.
    with eng.connect() as conn:
        msgs = conn.execute(select(messages.c.state, messages.c.attempts, messages.c.processed_at)).all()
        versions = dict(conn.execute(select(appointments.c.id, appointments.c.version_id)).all())
        listed = conn.execute(select(func.count()).select_from(print_items)).scalar_one()
    assert len(msgs) == sent
    assert {(m.state, m.attempts) for m in msgs} == {("processed", 1)}
    assert all(m.processed_at is not None for m in msgs)
    rescheduled = {appointment_id("TAKECARE", bk) for bk in bookings[::2]}
    assert set(versions) == {appointment_id("TAKECARE", bk) for bk in bookings + more}
    assert {v for k, v in versions.items() if k in rescheduled} == {2}  # S12 then S13, once each
    assert {v for k, v in versions.items() if k not in rescheduled} == {1}

    # Each letter delivered once at the operator, and recorded once on its document.
    mailbox_docs = mailbox_1 | mailbox_2
    assert {r["document_id"] for r in rows} == mailbox_docs
    record = mocks.deliveries()
    assert_each_delivered_once(record, mailbox_docs)
    assert delivered_events(eng) == Counter(dict.fromkeys(mailbox_docs, 1))
    by_a, by_b = delivered_in(a.started.output()), delivered_in(b.started.output())
    assert by_a and by_b  # both outboxes delivered letters

    # Each unread platform-only document print-listed once, none of the mailbox letters.
    assert print_listed(eng) == Counter(dict.fromkeys(platform_1 | platform_2, 1))
    assert listed == print_total == len(platform_1 | platform_2)
    repeats = sum(int(d["repeats"]) for d in record["deliveries"])
    print(
        f"several instances: holder {holder_name}, {sent} messages, killed at {at_kill} of phase 2 "
        f"processed, {len(mailbox_docs)} letters ({repeats} re-sent after the kill, taken once), "
        f"{listed} print-listed; delivered by a {len(by_a)}, by b {len(by_b)}"
    )


def mocks_spar(mocks: Mocks, **changes: object) -> None:
    httpx.put(f"{mocks.url}/spar/_switches", json=changes, timeout=5).raise_for_status()
