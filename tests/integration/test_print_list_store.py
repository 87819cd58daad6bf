"""The print list's store (R-DOC-9, R-DOC-5) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text

from gateway.errors import InvalidRequest, NotFound
from gateway.store import print_list
from gateway.store.print_list import PrintListFilter
from gateway.store.tables import document_events, print_items
from tests.documents_factory import BASE_TIME, OTHER_UNIT_HSA, UNIT_HSA, insert_document
from tests.support import eventually

T0 = BASE_TIME


def _ids(engine: Engine, f: PrintListFilter) -> tuple[int, list[int]]:
    with engine.connect() as conn:
        total, items = print_list.list_items(conn, f)
    return total, [i.id for i in items]


def _events(engine: Engine, document_id: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [(e.event, e.actor) for e in print_list.history(conn, document_id)]


def test_r_doc_9_open_list_is_a_queue_oldest_first_with_what_staff_need(engine: Engine) -> None:
    with engine.begin() as conn:
        newer = insert_document(conn, added_at=T0 + timedelta(hours=2), title="Nyare brev")
        older = insert_document(conn, added_at=T0 + timedelta(hours=1), title="Äldre brev")
        insert_document(conn, added_at=T0, handled_at=T0 + timedelta(hours=3), handled_by="anna")
        insert_document(conn, outcome="deliver")  # not on the list
    total, ids = _ids(engine, PrintListFilter())
    assert total == 2
    assert ids == [older.print_item_id, newer.print_item_id]
    with engine.connect() as conn:
        item = print_list.get_item(conn, older.print_item_id or 0)
    assert item is not None
    assert item.title == "Äldre brev"
    assert item.patient_value == "191212121212"
    assert item.rules == ("R-DOC-3", "R-DOC-5")
    assert item.unit_hsa_id == UNIT_HSA and item.unit_name == "Vårdcentralen Tolvåsen"
    assert not item.handled and not item.restricted and item.outdated_at is None


def test_r_doc_9_filters_by_state_kind_and_unit_and_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        a = insert_document(conn, kind="e-kallelse", added_at=T0)
        b = insert_document(conn, kind="e-brev", added_at=T0 + timedelta(minutes=1))
        c = insert_document(
            conn, kind="e-brev", unit_hsa_id=OTHER_UNIT_HSA, added_at=T0 + timedelta(minutes=2)
        )
        d = insert_document(
            conn, kind="e-brev", added_at=T0 + timedelta(minutes=3), handled_at=T0 + timedelta(hours=1)
        )
        e = insert_document(
            conn, kind="e-brev", added_at=T0 + timedelta(minutes=4), handled_at=T0 + timedelta(hours=2)
        )
    assert _ids(engine, PrintListFilter(kind="e-kallelse")) == (1, [a.print_item_id])
    assert _ids(engine, PrintListFilter(unit_hsa_id=OTHER_UNIT_HSA)) == (1, [c.print_item_id])
    assert _ids(engine, PrintListFilter(kind="e-brev", unit_hsa_id=UNIT_HSA)) == (1, [b.print_item_id])
    # The handled history: latest handled first.
    assert _ids(engine, PrintListFilter(state="handled")) == (2, [e.print_item_id, d.print_item_id])
    # Everything: latest added first, paged.
    assert _ids(engine, PrintListFilter(state="all", limit=2)) == (5, [e.print_item_id, d.print_item_id])
    assert _ids(engine, PrintListFilter(state="all", limit=2, offset=2)) == (
        5,
        [c.print_item_id, b.print_item_id],
    )
    with pytest.raises(InvalidRequest):
        _ids(engine, PrintListFilter(state="closed"))  # type: ignore[arg-type]


def test_r_doc_9_marking_one_item_handled_records_who_and_when(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(conn)
    item_id = doc.print_item_id or 0
    at = T0 + timedelta(days=1)
    with engine.begin() as conn:
        result = print_list.mark_handled(conn, [item_id], " anna.andersson ", now=at)
    assert result.changed == (item_id,) and result.unchanged == ()
    with engine.connect() as conn:
        item = print_list.get_item(conn, item_id)
    assert item is not None and item.handled_at == at and item.handled_by == "anna.andersson"
    assert _ids(engine, PrintListFilter()) == (0, [])
    assert _events(engine, doc.document_id)[-1] == ("print-handled", "anna.andersson")


def test_r_doc_9_bulk_marking_leaves_already_handled_items_as_they_were(engine: Engine) -> None:
    first_handled = T0 + timedelta(hours=1)
    with engine.begin() as conn:
        open_a = insert_document(conn)
        open_b = insert_document(conn)
        done = insert_document(conn, handled_at=first_handled, handled_by="bertil")
    ids = [open_a.print_item_id or 0, done.print_item_id or 0, open_b.print_item_id or 0]
    with engine.begin() as conn:
        result = print_list.mark_handled(conn, [*ids, ids[0]], "anna", now=T0 + timedelta(days=1))
    assert result.changed == (ids[0], ids[2])
    assert result.unchanged == (ids[1],)
    with engine.connect() as conn:
        kept = print_list.get_item(conn, ids[1])
    assert kept is not None and kept.handled_at == first_handled and kept.handled_by == "bertil"
    # One event per item changed; none for the one left alone.
    assert [e for e in _events(engine, done.document_id) if e[0] == "print-handled"] == [
        ("print-handled", "bertil")
    ]
    assert _events(engine, open_a.document_id).count(("print-handled", "anna")) == 1


def test_r_doc_9_an_unknown_id_is_named_and_nothing_changes(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(conn)
    item_id = doc.print_item_id or 0
    with pytest.raises(NotFound, match=r"print-list item 999998, 999999 not known"), engine.begin() as conn:
        print_list.mark_handled(conn, [item_id, 999998, 999999], "anna")
    with engine.connect() as conn:
        assert conn.execute(select(print_items.c.handled_at)).scalar_one() is None
        handled = select(document_events.c.id).where(document_events.c.event == "print-handled")
        assert conn.execute(handled).first() is None


def test_r_doc_9_unmarking_reopens_the_item_and_the_history_keeps_every_step(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(conn, events=(("received", None), ("routed", None)))
        still_open = insert_document(conn)
    item_id = doc.print_item_id or 0
    with engine.begin() as conn:
        print_list.mark_handled(conn, [item_id], "anna", now=T0 + timedelta(days=1))
    with engine.begin() as conn:
        result = print_list.mark_unhandled(
            conn, [item_id, still_open.print_item_id or 0], "bertil", now=T0 + timedelta(days=2)
        )
    assert result.changed == (item_id,)
    assert result.unchanged == (still_open.print_item_id,)
    with engine.begin() as conn:
        print_list.mark_handled(conn, [item_id], "cecilia", now=T0 + timedelta(days=3))
    with engine.connect() as conn:
        item = print_list.get_item(conn, item_id)
        events = print_list.history(conn, doc.document_id)
    assert item is not None and item.handled_by == "cecilia" and item.handled_at == T0 + timedelta(days=3)
    assert [(e.event, e.actor) for e in events] == [
        ("received", None),
        ("routed", None),
        ("print-listed", None),
        ("print-handled", "anna"),
        ("print-unhandled", "bertil"),
        ("print-handled", "cecilia"),
    ]
    assert events[-2].at == T0 + timedelta(days=2)


def test_r_doc_9_marking_needs_someone_and_some_ids(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(conn)
    for ids, by in (([doc.print_item_id or 0], "   "), ([doc.print_item_id or 0], "x" * 121), ([], "anna")):
        with pytest.raises(InvalidRequest), engine.begin() as conn:
            print_list.mark_handled(conn, ids, by)


def test_r_id_3_a_protected_persons_document_on_the_list_is_flagged(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(
            conn,
            restricted=True,
            outcome="hold",
            print_item=True,
            rules=("R-ID-3", "R-ID-4"),
            events=(("received", None), ("held", None), ("released", "staff.anna")),
            outdated_at=T0 + timedelta(hours=5),
            outdated_reason="booking rescheduled",
        )
    with engine.connect() as conn:
        _, items = print_list.list_items(conn, PrintListFilter())
    assert [(i.id, i.restricted) for i in items] == [(doc.print_item_id, True)]
    assert items[0].outdated_at == T0 + timedelta(hours=5)


def test_r_doc_9_attachments_are_listed_without_their_bytes(engine: Engine) -> None:
    from tests.documents_factory import FactoryAttachment

    with engine.begin() as conn:
        doc = insert_document(
            conn,
            attachments=(
                FactoryAttachment("karta.pdf", "application/pdf", b"%PDF-1.4 tiny"),
                FactoryAttachment("info.txt", "text/plain", "Hej då".encode()),
            ),
        )
    with engine.connect() as conn:
        files = print_list.attachments(conn, doc.document_id)
    assert [(a.position, a.filename, a.size) for a in files] == [(1, "karta.pdf", 13), (2, "info.txt", 7)]


def test_r_doc_9_two_staff_marking_the_same_item_at_once_change_it_once(engine: Engine) -> None:
    with engine.begin() as conn:
        doc = insert_document(conn)
    item_id = doc.print_item_id or 0
    second: list[print_list.MarkResult] = []

    updating = threading.Event()

    def other_staff() -> None:
        with engine.connect() as conn:

            @event.listens_for(conn, "before_cursor_execute")
            def _about_to_run(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if statement.lstrip().upper().startswith("UPDATE"):
                    updating.set()  # the contended statement goes to the database now

            with conn.begin():
                second.append(print_list.mark_handled(conn, [item_id], "bertil"))

    with engine.connect() as first:
        tx = first.begin()
        assert print_list.mark_handled(first, [item_id], "anna").changed == (item_id,)
        thread = threading.Thread(target=other_staff)
        thread.start()
        assert updating.wait(30), "the other staff's update never started"
        _wait_until_blocked(engine)
        assert second == []  # still waiting for this transaction: the race is on
        tx.commit()
    thread.join(timeout=30)
    assert second == [print_list.MarkResult(changed=(), unchanged=(item_id,))]
    assert [e for e in _events(engine, doc.document_id) if e[0] == "print-handled"] == [
        ("print-handled", "anna")
    ]


def _wait_until_blocked(engine: Engine) -> None:
    """PostgreSQL: until another backend waits on a lock (the row this test holds). SQLite
    shows no waiters; its writer waits in the driver's busy handler, which the UPDATE hook has
    already proved it entered."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as watcher:

        def waiting() -> int:
            found: int = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()
            return found

        eventually(waiting, "the other transaction to wait for the row lock", timeout=30, interval=0.01)
