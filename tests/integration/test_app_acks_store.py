"""The application ACK rows of enhanced mode (``gateway/store/app_acks.py``) on each backend:
owed once settled, one row per message whoever adds it, one claimant per row, backed off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from gateway.store import app_acks
from gateway.store.inbox import PROCESSED, RECEIVED
from gateway.store.tables import messages

NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)


def _message(engine: Engine, message_id: int, ack_code: str, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(messages).values(
                id=message_id,
                received_at=NOW,
                transport="mllp",
                sending_application="EPIC",
                sending_facility="EPICADT",
                control_id=f"C{message_id}",
                raw=b"MSH|^~\\&|EPIC",
                state=state,
                ack_code=ack_code,
                ack="",
                attempts=0,
            )
        )


def _row(message_id: int) -> dict[str, object]:
    return {
        "message_id": message_id,
        "sending_application": "EPIC",
        "sending_facility": "EPICADT",
        "endpoint": "127.0.0.1:9",
        "ack_code": "AA",
        "ack": "MSH|...",
        "charset": "utf-8",
        "state": app_acks.PENDING,
        "attempts": 0,
        "next_attempt_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_only_messages_given_ca_are_owed_and_each_gets_one_row(engine: Engine) -> None:
    _message(engine, 1, "AA", PROCESSED)  # original mode: owes nothing
    _message(engine, 2, "CA", PROCESSED)
    _message(engine, 3, "CA", RECEIVED)
    with engine.connect() as conn:
        assert [(o.message_id, o.state) for o in app_acks.owed(conn, 0, 10)] == [
            (2, PROCESSED),
            (3, RECEIVED),
        ]
    assert app_acks.add(engine, _row(2)) is True
    assert app_acks.add(engine, _row(2)) is False  # another instance was first
    with engine.connect() as conn:
        assert [o.message_id for o in app_acks.owed(conn, 0, 10)] == [3]
        assert [o.message_id for o in app_acks.owed(conn, 3, 10)] == []


def test_a_due_row_is_claimed_once_and_retried_after_its_backoff(engine: Engine) -> None:
    _message(engine, 2, "CA", PROCESSED)
    app_acks.add(engine, _row(2))
    with engine.begin() as conn:
        (due,) = app_acks.claim_due(conn, NOW, NOW + timedelta(seconds=30), 10)
        assert due.attempts == 1 and due.endpoint == "127.0.0.1:9"
        assert app_acks.claim_due(conn, NOW, NOW + timedelta(seconds=30), 10) == []  # claimed
    with engine.begin() as conn:
        later = NOW + timedelta(seconds=5)
        app_acks.settle(conn, due.id, state=app_acks.PENDING, now=NOW, error="down", next_attempt_at=later)
        assert app_acks.claim_due(conn, NOW, NOW + timedelta(seconds=30), 10) == []  # not due yet
        (again,) = app_acks.claim_due(conn, later, later + timedelta(seconds=30), 10)
        assert again.attempts == 2
        app_acks.settle(conn, again.id, state=app_acks.DELIVERED, now=later)
        (row,) = app_acks.list_app_acks(conn)
        assert row["state"] == app_acks.DELIVERED and row["delivered_at"] is not None
