"""The intake journal (SQLite): the inbox commits each batch to a file of its own before the ACK,
the worker moves the entries into ``messages`` (gateway/store/intake_journal.py).

Nothing acknowledged may be lost or applied twice, whatever order the move, a crash and the
readers come in; until it is moved, a message is shown as it was stored."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from gateway.errors import StoreError
from gateway.store import intake_journal, migrate, queries
from gateway.store.db import make_engine
from gateway.store.inbox import DUPLICATE, RECEIVED, REJECTED, Inbox
from gateway.store.intake_journal import IntakeJournal, Mover
from gateway.store.tables import messages
from tests.support import inbound_record, submit_all


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{(tmp_path / 'gateway.db').as_posix()}")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def journal(engine: Engine) -> IntakeJournal:
    found = intake_journal.beside(engine)
    assert found is not None
    return found


def _rows(engine: Engine) -> list[tuple[int, str, str, int | None]]:
    with engine.connect() as conn:
        found = conn.execute(
            select(messages.c.id, messages.c.control_id, messages.c.state, messages.c.duplicate_of).order_by(
                messages.c.id
            )
        ).all()
    return [tuple(r) for r in found]


def _in_journal(journal: IntakeJournal) -> list[int]:
    with contextlib.closing(sqlite3.connect(journal.path)) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM entries ORDER BY id")]


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return queries.count_by_state(conn)


@pytest.mark.parametrize("size", [7, 80])  # one statement; more rows than one statement takes
def test_a_batch_is_acknowledged_from_the_journal_and_moved_in_arrival_order_with_its_repeats(
    engine: Engine, journal: IntakeJournal, size: int
) -> None:
    """New, rejected, a repeat of a message moved before and a repeat within the batch: each is
    acknowledged with its id (arrival order) before anything is in ``messages``; the move stores
    each under that id, the repeats as duplicates of their originals."""
    earlier = submit_all(Inbox(engine, journal=journal), [inbound_record("EARLIER")])
    mover = Mover(journal, engine)
    assert mover.move() == 1
    records = [inbound_record(f"N-{i}", rejected=i % 3 == 0) for i in range(size - 2)]
    records.insert(2, inbound_record("EARLIER"))
    records.append(inbound_record("N-1"))  # N-1 came earlier in this same batch
    stored = submit_all(Inbox(engine, journal=journal), records)

    ids = [s.id for s in stored]
    assert ids == list(range(earlier[0].id + 1, earlier[0].id + 1 + size))
    assert [r[0] for r in _rows(engine)] == [earlier[0].id]  # acknowledged from the journal alone
    assert _in_journal(journal) == ids
    assert _states(engine) == {
        RECEIVED: 1 + sum(r.state == RECEIVED for r in records),
        REJECTED: sum(r.state == REJECTED for r in records),
    }

    assert mover.move() == size
    mover.close()
    rows = {r[0]: r for r in _rows(engine)}
    first_n1 = ids[records.index(next(r for r in records if r.control_id == "N-1"))]
    for record, id_ in zip(records, ids, strict=True):
        _, control_id, state, duplicate_of = rows[id_]
        assert control_id == record.control_id
        if record.control_id == "EARLIER":
            assert (state, duplicate_of) == (DUPLICATE, earlier[0].id)
        elif record.control_id == "N-1" and id_ != first_n1:
            assert (state, duplicate_of) == (DUPLICATE, first_n1)
        else:
            assert (state, duplicate_of) == (record.state, None)
    assert _in_journal(journal) == []  # moved entries are deleted


def test_ids_start_above_the_messages_already_in_the_database(engine: Engine, journal: IntakeJournal) -> None:
    """A database kept from before the journal: an entry's id is its message's id for good."""
    with engine.begin() as conn:
        for control in ("OLD-1", "OLD-2"):
            conn.execute(insert(messages).values(inbound_record(control).row()))
    (stored,) = submit_all(Inbox(engine, journal=journal), [inbound_record("NEW")])
    assert stored.id == 3
    mover = Mover(journal, engine)
    mover.move()
    mover.close()
    assert [r[:2] for r in _rows(engine)] == [(1, "OLD-1"), (2, "OLD-2"), (3, "NEW")]


def test_a_crash_after_the_move_commits_and_before_the_journal_is_cleaned_moves_nothing_twice(
    engine: Engine, journal: IntakeJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = submit_all(Inbox(engine, journal=journal), [inbound_record(f"C-{i}") for i in range(5)])
    mover = Mover(journal, engine)
    # The process dies between the move's commit and the delete from the journal.
    monkeypatch.setattr(mover, "_deleted", 10**9)
    assert mover.move() == 5
    assert _in_journal(journal) == [s.id for s in stored]
    mover.close()
    # Shown once, from the database (the journal's copies are known to be moved).
    assert _states(engine) == {RECEIVED: 5}
    with engine.connect() as db:
        total, items = queries.list_messages(db, queries.MessageFilter())
    assert total == 5 and [i["id"] for i in items] == [s.id for s in reversed(stored)]

    more = submit_all(Inbox(engine, journal=journal), [inbound_record("C-5")])
    restarted = Mover(journal, engine)
    assert restarted.move() == 1
    restarted.close()
    assert [r[1] for r in _rows(engine)] == [f"C-{i}" for i in range(6)]
    assert more[0].id == 6 and _in_journal(journal) == []


def test_readers_show_unmoved_messages_as_stored_with_paging_across_both(
    engine: Engine, journal: IntakeJournal
) -> None:
    """GET /messages, the CLI and the counts read the journal too: what is acknowledged is there
    at once, as ``received`` (or ``rejected``), filtered and paged with the moved ones."""
    base = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    first = submit_all(
        Inbox(engine, journal=journal),
        [inbound_record(f"M-{i}", at=base + timedelta(minutes=i)) for i in range(4)],
    )
    mover = Mover(journal, engine)
    mover.move()
    later = [inbound_record(f"J-{i}", rejected=i == 1, at=base + timedelta(minutes=10 + i)) for i in range(3)]
    pending = submit_all(Inbox(engine, journal=journal), later)
    newest_first = [s.id for s in reversed(first + pending)]

    with engine.connect() as conn:
        total, items = queries.list_messages(conn, queries.MessageFilter(limit=3, offset=2))
        assert total == 7 and [i["id"] for i in items] == newest_first[2:5]
        assert items[0]["control_id"] == "J-0" and items[0]["processed_at"] is None
        total, items = queries.list_messages(conn, queries.MessageFilter(state=RECEIVED))
        assert total == 6 and "J-1" not in {i["control_id"] for i in items}
        total, items = queries.list_messages(
            conn, queries.MessageFilter(since=base + timedelta(minutes=3), until=base + timedelta(minutes=12))
        )
        assert [i["control_id"] for i in items] == ["J-1", "J-0", "M-3"]
        total, items = queries.list_messages(conn, queries.MessageFilter(control_id="J-2"))
        assert total == 1 and items[0]["id"] == pending[2].id
        assert queries.count_by_state(conn) == {RECEIVED: 6, REJECTED: 1}
        one = queries.get_message(conn, pending[1].id)
        assert one is not None and one["state"] == REJECTED and one["raw"].endswith(b"J-1")
        assert queries.get_message(conn, 999) is None

    mover.move()
    mover.close()
    with engine.connect() as conn:
        total, items = queries.list_messages(conn, queries.MessageFilter(limit=3, offset=2))
        assert total == 7 and [i["id"] for i in items] == newest_first[2:5]
        assert queries.count_by_state(conn) == {RECEIVED: 6, REJECTED: 1}


def test_a_failed_move_keeps_the_entries_and_the_next_move_takes_them(
    engine: Engine, journal: IntakeJournal
) -> None:
    stored = submit_all(Inbox(engine, journal=journal), [inbound_record("F-1"), inbound_record("F-2")])
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    mover = Mover(journal, engine)
    with pytest.raises(StoreError, match="intake journal"):
        mover.move()
    assert _in_journal(journal) == [s.id for s in stored] and _rows(engine) == []
    assert _states(engine) == {RECEIVED: 2}
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    assert mover.move() == 2
    mover.close()
    assert [r[1:3] for r in _rows(engine)] == [("F-1", RECEIVED), ("F-2", RECEIVED)]


def test_put_moves_its_message_and_says_what_it_repeats(engine: Engine, journal: IntakeJournal) -> None:
    """The HTTP transport (and the booking refresh) learn whether a message was a repeat."""
    inbox = Inbox(engine, journal=journal)
    inbox.start()
    try:
        first = asyncio.run(inbox.put(inbound_record("P-1")))
        again = asyncio.run(inbox.put(inbound_record("P-1")))
        other = asyncio.run(inbox.put(inbound_record("P-2")))
    finally:
        inbox.stop()
    assert first.duplicate_of is None and again.duplicate_of == first.id and other.duplicate_of is None
    assert _rows(engine) == [
        (first.id, "P-1", RECEIVED, None),
        (again.id, "P-1", DUPLICATE, first.id),
        (other.id, "P-2", RECEIVED, None),
    ]


def test_no_journal_for_postgresql_or_a_database_in_memory() -> None:
    for url in ("sqlite://", "postgresql+psycopg://user@127.0.0.1:5432/db"):
        eng = make_engine(url)
        try:
            assert intake_journal.beside(eng) is None
        finally:
            eng.dispose()
