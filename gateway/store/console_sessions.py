"""The console's server-side sessions: keyed by the SHA-256 of the cookie's random token."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from gateway.store.tables import console_sessions


def key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, token: str, data: dict[str, Any], *, now: datetime, expires: datetime) -> None:
    conn.execute(
        insert(console_sessions).values(
            id=key(token), created_at=now, expires_at=expires, data=orjson.dumps(data).decode()
        )
    )


def load(conn: Connection, token: str, *, now: datetime) -> dict[str, Any] | None:
    """The session's data, or None when it is unknown or expired."""
    row = conn.execute(
        select(console_sessions.c.data, console_sessions.c.expires_at).where(
            console_sessions.c.id == key(token)
        )
    ).first()
    if row is None or row.expires_at <= now:
        return None
    data: dict[str, Any] = orjson.loads(row.data)
    return data


def save(conn: Connection, token: str, data: dict[str, Any]) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id == key(token))
        .values(data=orjson.dumps(data).decode())
    )


def remove(conn: Connection, token: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id == key(token)))


def purge_expired(conn: Connection, *, now: datetime) -> int:
    return conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now)).rowcount
