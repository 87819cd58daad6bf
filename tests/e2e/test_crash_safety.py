"""Crash safety of the intake and the worker (issue "Security and operations", item 5).

``gateway serve`` (SQLite, the worker in its own process, the outside systems in a standalone
``gateway mocks`` process that outlives it) takes a burst of bookings over several MLLP
connections, each with a unique MSH-10 and booking. While the burst is still being sent, the
whole process group (serve, its worker process, helpers) gets SIGKILL. The test records exactly
which control ids were acknowledged ``AA`` before the kill, restarts serve on the same database
and proves, from the database:

* every message acknowledged ``AA`` is stored once and processed once (``attempts`` 1), and its
  booking exists with the content it carried, at version 1 (versions count applications);
* every message sent but not acknowledged is either absent or stored and processed once;
* nothing was stored that was never sent, and nothing is left in ``received``;
* then, as a journal does, every message not acknowledged is sent again: each gets ``AA`` and
  ends processed exactly once (a repeat of one that was stored is kept as a ``duplicate`` row
  pointing at the original, and is not applied again).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.fhir.appointment import appointment_id
from tests.conftest import wait_processed
from tests.processes import Mocks, start_mocks, start_serve
from tests.support import ack_code, ack_fields, mllp_exchange, siu

COUNT = 500
CONNECTIONS = 5
WINDOW = 8  # messages a connection sends ahead of its ACKs (as a journal's MLLP client may)
KILL_AFTER = 120  # ACKs received before the SIGKILL
PREFIX = "CRASH"


def burst() -> list[tuple[str, str, str, bytes]]:
    """(control id, booking, start, message) for each message of the burst."""
    out = []
    for n in range(COUNT):
        control, booking = f"{PREFIX}-C-{n:04d}", f"{PREFIX}-BK-{n:04d}"
        start = f"20261201{8 + n // 60:02d}{n % 60:02d}"
        out.append((control, booking, start, siu("S12", control=control, booking=booking, start=start)))
    return out


class Sender(threading.Thread):
    """One MLLP connection sending its share of the burst, up to WINDOW ahead of its ACKs,
    recording what it sent and each ACK by MSA-2; stops when the connection breaks."""

    def __init__(self, address: tuple[str, int], messages: list[tuple[str, bytes]]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.messages = messages
        self.sent: list[str] = []
        self.acks: dict[str, str] = {}
        self.broken: BaseException | None = None

    def run(self) -> None:
        try:
            with socket.create_connection(self.address, timeout=20) as sock:
                buf = b""
                todo = iter(self.messages)
                outstanding = 0
                finished = False
                while not finished or outstanding:
                    while not finished and outstanding < WINDOW:
                        item = next(todo, None)
                        if item is None:
                            finished = True
                            break
                        control, raw = item
                        sock.sendall(b"\x0b" + raw + b"\x1c\x0d")
                        self.sent.append(control)
                        outstanding += 1
                    if not outstanding:
                        break
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed by the gateway")
                    buf += data
                    while b"\x1c\x0d" in buf:
                        framed, buf = buf.split(b"\x1c\x0d", 1)
                        ack = framed.lstrip(b"\x0b")
                        self.acks[ack_fields(ack, "MSA")[2]] = ack_code(ack)
                        outstanding -= 1
        except OSError as exc:
            self.broken = exc


@pytest.fixture
def mocks(tmp_path: Path) -> Iterator[Mocks]:
    mocks = start_mocks(tmp_path)
    yield mocks
    mocks.started.stop()


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_sigkill_mid_burst_every_acknowledged_message_is_processed_exactly_once(
    tmp_path: Path, mocks: Mocks
) -> None:
    db = tmp_path / "gateway.db"
    env = {
        **mocks.env(),
        "GATEWAY_MOCKS": "false",
        "GATEWAY_DB_URL": f"sqlite:///{db}",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_WORKER_POLL_INTERVAL": "0.1",
        "GATEWAY_WORKER_BATCH": "50",  # the worker is mid-batch, too, when the kill comes
    }
    messages = burst()
    expected = {control: (booking, start) for control, booking, start, _ in messages}

    first = start_serve(tmp_path, "first", env)
    senders = [
        Sender(first.mllp, [(c, raw) for c, _, _, raw in messages[i::CONNECTIONS]])
        for i in range(CONNECTIONS)
    ]
    try:
        assert len(first.started.group()) >= 2  # serve and its worker process
        deadline = time.monotonic() + 30  # the worker is up and processing when the burst comes
        while '"worker.process_ready"' not in first.started.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while sum(len(s.acks) for s in senders) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        first.started.kill_all()  # SIGKILL to the group: serve, its worker process, everything
    for sender in senders:
        sender.join(20)
        assert not sender.is_alive()

    acked = {c: code for s in senders for c, code in s.acks.items()}
    sent = {c for s in senders for c in s.sent}
    unacked = sent - set(acked)
    never_sent = set(expected) - sent
    assert set(acked.values()) == {"AA"}, Counter(acked.values())
    assert len(acked) >= KILL_AFTER
    assert len(acked) < COUNT, "the whole burst was acknowledged before the kill"
    assert all(s.broken is not None for s in senders if len(s.sent) < len(s.messages))
    # On SQLite the inbox commits to the intake journal beside the database, and the worker
    # moves entries into `messages` (gateway/store/intake_journal.py); the kill falls anywhere.
    journal = Path(f"{db.resolve()}-intake")
    in_journal = {str(r[0]) for r in rows(journal, "SELECT control_id FROM entries")}
    in_messages = {str(r[0]) for r in rows(db, "SELECT control_id FROM messages")}
    stored_at_kill = in_journal | in_messages
    processed_at_kill = rows(db, "SELECT count(*) FROM messages WHERE state = 'processed'")[0][0]
    # The commit comes before the ACK: everything acknowledged is stored already.
    assert set(acked) <= stored_at_kill and stored_at_kill <= sent

    second = start_serve(tmp_path, "second", env)
    try:
        with httpx.Client(base_url=second.http_url, timeout=10) as api:
            wait_processed(api, timeout=60)
            # 1. Nothing re-sent: what was acknowledged is processed once; the rest absent or once.
            found = rows(db, "SELECT control_id, state, attempts, duplicate_of, processed_at FROM messages")
            per_control = Counter(str(r[0]) for r in found)
            assert set(per_control.values()) == {1}  # each control id stored at most once
            assert {str(r[1]) for r in found} == {"processed"}, Counter(str(r[1]) for r in found)
            assert all(r[2] == 1 and r[3] is None and r[4] is not None for r in found)
            assert set(acked) <= set(per_control)  # every AA'd message is there
            stored_unacked = set(per_control) & unacked
            assert set(per_control) == set(acked) | stored_unacked  # nothing never sent
            assert_bookings(db, expected, set(per_control))
            first_round = {
                "acked": len(acked),
                "sent_unacked": len(unacked),
                "stored_unacked": len(stored_unacked),
                "never_sent": len(never_sent),
                "stored_at_kill": len(stored_at_kill),
                "in_journal_at_kill": len(in_journal - in_messages),
                "processed_at_kill": processed_at_kill,
            }

            # 2. The journal sends again everything it got no ACK for (same MSH-10): each gets AA.
            again = [raw for control, _, _, raw in messages if control not in acked]
            acks = mllp_exchange(*second.mllp, again, timeout=30)
            assert [ack_code(a) for a in acks] == ["AA"] * len(again)
            wait_processed(api, timeout=60)
            total = api.get("/fhir/Appointment", params={"_count": 1}).json()["total"]
    finally:
        assert second.started.stop() == 0
    found = rows(db, "SELECT control_id, state, attempts, duplicate_of FROM messages")
    originals = [r for r in found if r[3] is None]
    duplicates = [r for r in found if r[3] is not None]
    assert sorted(str(r[0]) for r in originals) == sorted(expected)  # each exactly once
    assert all(r[1] == "processed" and r[2] == 1 for r in originals)
    # A repeat of a message that had been stored before the kill is a duplicate, never applied.
    assert sorted(str(r[0]) for r in duplicates) == sorted(stored_unacked)
    assert all(r[1] == "duplicate" and r[2] == 0 for r in duplicates)
    assert_bookings(db, expected, set(expected))
    assert total == COUNT
    print(f"crash safety: {json.dumps(first_round)}, re-sent {len(again)}, duplicates {len(duplicates)}")


def assert_bookings(db: Path, expected: dict[str, tuple[str, str]], controls: set[str]) -> None:
    """Each message's booking exists once, at version 1, with the start it carried."""
    found = {
        str(r[0]): (int(str(r[1])), json.loads(bytes(r[2])))  # type: ignore[arg-type]
        for r in rows(db, "SELECT id, version_id, resource FROM appointments")
    }
    want = {appointment_id("TAKECARE", expected[c][0]): expected[c] for c in controls}
    assert set(found) == set(want)
    for appt, (version, resource) in found.items():
        booking, start = want[appt]
        assert version == 1 and resource["meta"]["versionId"] == "1", (booking, version)
        assert resource["status"] == "booked"
        assert resource["start"][:16] == f"{start[:4]}-{start[4:6]}-{start[6:8]}T{start[8:10]}:{start[10:]}"
