"""The document report's store query (R-DOC-8) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from gateway.store import reports
from tests.documents_factory import insert_document


def _report(engine: Engine, start: str, end: str) -> list[reports.ReportRow]:
    with engine.connect() as conn:
        return reports.document_report(conn, reports.period(start, end))


def test_r_doc_8_period_is_the_swedish_day_from_inclusive_to_exclusive(engine: Engine) -> None:
    with engine.begin() as conn:
        # 2026-12-01 00:30 in Stockholm (UTC+1) is still 30 November in UTC.
        first = insert_document(conn, created_at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
        insert_document(conn, created_at=datetime(2026, 11, 30, 22, 59, tzinfo=UTC))  # 23:59 the day before
        last = insert_document(conn, created_at=datetime(2026, 12, 1, 22, 59, 59, tzinfo=UTC))
        insert_document(conn, created_at=datetime(2026, 12, 1, 23, 0, tzinfo=UTC))  # 2 December 00:00
    rows = _report(engine, "2026-12-01", "2026-12-02")
    assert [r.document_id for r in rows] == [first.document_id, last.document_id]
    # Datetimes with an offset are taken as they are.
    rows = _report(engine, "2026-11-30T23:00:00Z", "2026-12-01T00:30:00+01:00")
    assert [r.document_id for r in rows] == []
    rows = _report(engine, "2026-11-30T23:30:00Z", "2026-12-01T00:31")
    assert [r.document_id for r in rows] == [first.document_id]


def test_r_doc_8_each_document_has_status_mailbox_last_opened_and_print_list(engine: Engine) -> None:
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        read = insert_document(
            conn,
            outcome="deliver",
            rules=("R-DOC-4",),
            created_at=t0,
            sent_at=t0,
            read_at=t0 + timedelta(hours=3),
            last_read_at=t0 + timedelta(days=1),
        )
        mailbox = insert_document(
            conn,
            outcome="deliver",
            created_at=t0 + timedelta(minutes=1),
            sent_at=t0,
            mailbox_provider="MinMyndighetspost",
        )
        unread_printed = insert_document(
            conn,
            kind="e-kallelse",
            outcome="deliver",
            created_at=t0 + timedelta(minutes=2),
            sent_at=t0,
            print_item=True,
            handled_at=t0 + timedelta(days=3),
            handled_by="anna",
            outdated_at=t0 + timedelta(days=4),
        )
        printed = insert_document(conn, created_at=t0 + timedelta(minutes=3))
        held = insert_document(conn, outcome="hold", restricted=True, created_at=t0 + timedelta(minutes=4))
    rows = {r.document_id: r for r in _report(engine, "2026-12-01", "2026-12-02")}
    r = rows[read.document_id]
    assert (r.platform_status, r.read_at, r.last_read_at) == (
        "read",
        t0 + timedelta(hours=3),
        t0 + timedelta(days=1),
    )
    assert (r.personnummer, r.kind, r.outcome, r.rules) == ("191212121212", "e-brev", "deliver", ("R-DOC-4",))
    assert r.title.startswith("Kallelse till blodtryckskontroll") and r.unit_name == "Vårdcentralen Tolvåsen"
    assert not r.on_print_list and not r.print_handled and r.outdated_at is None
    r = rows[mailbox.document_id]
    assert (r.platform_status, r.mailbox_provider) == ("unread", "MinMyndighetspost")
    r = rows[unread_printed.document_id]
    assert r.on_print_list and r.print_handled and r.print_handled_by == "anna"
    assert r.outdated_at == t0 + timedelta(days=4) and r.kind == "e-kallelse"
    r = rows[printed.document_id]
    assert (r.platform_status, r.on_print_list, r.print_handled) == ("not-sent", True, False)
    r = rows[held.document_id]
    assert (r.platform_status, r.restricted, r.on_print_list) == ("not-sent", True, False)
    assert list(rows) == [read.document_id, mailbox.document_id, unread_printed.document_id,
                          printed.document_id, held.document_id]  # fmt: skip


def test_r_doc_8_a_unit_sees_its_own_documents(engine: Engine) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        ours = insert_document(conn, created_at=at, unit_hsa_id="SE2321000016-15CQ")
        theirs = insert_document(conn, created_at=at, unit_hsa_id="SE2321000016-9XYZ")
    with engine.connect() as conn:
        p = reports.period("2026-12-01", "2026-12-02")
        assert [r.document_id for r in reports.document_report(conn, p, "SE2321000016-15CQ")] == [
            ours.document_id
        ]
        assert {r.document_id for r in reports.document_report(conn, p)} == {
            ours.document_id,
            theirs.document_id,
        }
