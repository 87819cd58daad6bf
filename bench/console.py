"""Benchmark 6: the staff console's pages with 100,000 appointments and 10,000 print items.

The store is filled directly (bulk inserts of plain rows: the console reads columns, never the
stored FHIR JSON), then a running gateway (``GatewayThread``, built-in mocks for SPAR and the
account service, authentication on) is asked for each page in turn over HTTP with a signed-in
admin session, one request at a time. Goal (issue 19): every page under 300 ms at p95. The
baseline is ``GET /health`` in the same run, so the ratio says how much a page costs over the
cheapest request the gateway answers.
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Column, Connection, Engine, insert
from sqlalchemy.types import Boolean, DateTime, Integer, LargeBinary, String, Text

from bench.common import SQLITE, Context, Figure, Result, Series, gateway_settings, percentile
from gateway.domain.identity import luhn_check_digit
from gateway.store import console_sessions, migrate
from gateway.store.db import make_engine
from gateway.store.tables import appointments, documents, mailbox_outbox, messages, print_items
from gateway.testing import GatewayThread

NAME = "console"
TITLE = "Console pages: p95 with 100,000 appointments and 10,000 print items"
GOAL_MS = 300.0
HEAVY = "191212121212"  # Tolvan, in the mocks' population: the person page asks SPAR about him
PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def _neutral(column: Column[Any], now: datetime) -> Any:
    if column.nullable or (column.primary_key and isinstance(column.type, Integer)):
        return None
    t = column.type
    if isinstance(t, Boolean):
        return False
    if isinstance(t, Integer):
        return 0
    if isinstance(t, DateTime) or "DateTime" in type(t).__name__:
        return now
    if isinstance(t, LargeBinary):
        return b""
    if isinstance(t, String | Text):
        return ""
    raise TypeError(f"no neutral value for {column.name}")


def _row(table: Any, now: datetime, **values: Any) -> dict[str, Any]:
    row = {c.name: _neutral(c, now) for c in table.c if not (c.primary_key and isinstance(c.type, Integer))}
    row.update(values)
    return row


def _pnr(rng: random.Random) -> str:
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(80 * 365))
    head = f"{born:%Y%m%d}{rng.randrange(1000):03d}"
    return head + str(luhn_check_digit(head[2:]))


def fill(engine: Engine, *, appointment_count: int, print_count: int, message_count: int) -> None:
    rng = random.Random(19)
    now = datetime.now(UTC)
    persons = [_pnr(rng) for _ in range(max(50, appointment_count // 5))]
    with engine.begin() as conn:
        _insert(
            conn,
            appointments,
            (
                _row(
                    appointments,
                    now,
                    id=f"bench-{i}",
                    namespace="TAKECARE",
                    booking_id=f"B{i}",
                    patient_system=PNR_SYSTEM,
                    patient_value=HEAVY if i % 500 == 0 else rng.choice(persons),
                    status="booked",
                    start=now + timedelta(minutes=15 * (i - appointment_count // 2)),
                    end=now + timedelta(minutes=15 * (i - appointment_count // 2) + 15),
                    time_type="Mottagningsbesök",
                    visible=True,
                    version_id=1,
                    last_updated=now,
                    content_hash="0" * 64,
                )
                for i in range(appointment_count)
            ),
        )
        # Documents spread over 100 days, so a report for a day is what a unit asks for.
        doc_rows = []
        item_rows = []
        for i in range(print_count):
            at = now - timedelta(minutes=i * 100 * 24 * 60 // max(1, print_count))
            doc_rows.append(
                _row(
                    documents,
                    now,
                    id=f"bench-doc-{i}",
                    namespace="TAKECARE",
                    document_number=f"D{i}",
                    document_type="BREV",
                    kind="e-brev",
                    patient_system=PNR_SYSTEM,
                    patient_value=HEAVY if i % 200 == 0 else rng.choice(persons),
                    unit_hsa_id="SE2321000016-15CQ",
                    unit_name="Vårdcentralen Tolvåsen",
                    title="Brev från vårdcentralen",
                    text="Hej!",
                    outcome="hold" if i % 1000 == 0 else "print-list",
                    rules="R-DOC-3 R-DOC-5",
                    reason="the e-brev has no control code [4US:LPAT]",
                    status="completed",
                    created_at=at,
                )
            )
            if i % 1000:
                item_rows.append(
                    _row(
                        print_items,
                        now,
                        document_id=f"bench-doc-{i}",
                        unit_hsa_id="SE2321000016-15CQ",
                        kind="e-brev",
                        added_at=at,
                        rules="R-DOC-3 R-DOC-5",
                        reason="the e-brev has no control code [4US:LPAT]",
                        handled_at=at if i % 3 == 0 else None,
                        handled_by="bench" if i % 3 == 0 else None,
                    )
                )
        _insert(conn, documents, doc_rows)
        _insert(conn, print_items, item_rows)
        _insert(
            conn,
            messages,
            (
                _row(
                    messages,
                    now,
                    received_at=now - timedelta(seconds=i * 86_400 // max(1, message_count)),
                    transport="mllp",
                    control_id=f"BENCH{i}",
                    message_type="SIU",
                    trigger=("S12", "S13", "S15")[i % 3],
                    raw=b"MSH|^~\\&|TAKECARE|SLL|GATEWAY|REGION|20261201||SIU^S12|BENCH|P|2.5.1",
                    state="failed" if i % 97 == 0 else "processed",
                    error="bench: a failure" if i % 97 == 0 else None,
                    ack_code="AA",
                    ack="MSA|AA",
                    processed_at=now,
                )
                for i in range(message_count)
            ),
        )
        _insert(
            conn,
            mailbox_outbox,
            (
                _row(
                    mailbox_outbox,
                    now,
                    document_id=f"bench-doc-{i}",
                    message_id=f"bench-{i}",
                    state=("delivered", "dead")[i % 2],
                )
                for i in range(0, min(print_count, 2000), 2)
            ),
        )


def _insert(conn: Connection, table: Any, rows: Any, batch: int = 5000) -> None:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            conn.execute(insert(table), chunk)
            chunk = []
    if chunk:
        conn.execute(insert(table), chunk)


def _session(engine: Engine) -> str:
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    data = {
        "subject": "bench",
        "name": "Bench",
        "roles": ["staff", "admin"],
        "csrf": secrets.token_urlsafe(16),
    }
    with engine.begin() as conn:
        console_sessions.create(conn, token, data, now=now, expires=now + timedelta(hours=2))
    return token


def pages(today: date, item: int) -> list[tuple[str, str]]:
    return [
        ("Översikt", "/console/"),
        ("Utskriftslista (ej hanterade)", "/console/utskriftslista"),
        ("Utskriftslista (alla, per enhet)", "/console/utskriftslista?state=all&unit=SE2321000016-15CQ"),
        ("Utskrift (en, med historik)", f"/console/utskriftslista/{item}"),
        ("Vilande dokument", "/console/vilande"),
        ("Person", f"/console/person?id={HEAVY}"),
        ("Rapporter (ett dygn)", f"/console/rapporter?from={today}&to={today + timedelta(days=1)}"),
        ("Utkorg", "/console/utkorg"),
        ("Meddelanden", "/console/meddelanden"),
        ("Meddelanden (misslyckade)", "/console/meddelanden?state=failed"),
        ("Logg", "/console/logg"),
    ]


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    sizes = (600, 60, 600) if ctx.quick else (100_000, 10_000, 20_000)
    rounds = 3 if ctx.quick else 40
    result.params = {
        "appointments": sizes[0],
        "print_items_and_documents": sizes[1],
        "messages": sizes[2],
        "requests_per_page": rounds,
    }
    for backend in ctx.backends:
        if backend != SQLITE:
            result.skipped[backend] = "the console benchmark runs on SQLite only (the embedded default)"
    db_url = f"sqlite:///{(ctx.workdir / 'console-bench.db').as_posix()}"
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    started = time.perf_counter()
    fill(engine, appointment_count=sizes[0], print_count=sizes[1], message_count=sizes[2])
    result.details["fill_seconds"] = round(time.perf_counter() - started, 1)
    token = _session(engine)
    engine.dispose()
    with GatewayThread(gateway_settings(ctx, db_url)) as gw:
        cookies = {"gateway_console": token}
        with httpx.Client(base_url=gw.http_url, cookies=cookies, timeout=30) as client:
            health = _timed(client, "/health", rounds)
            result.series.append(Series.of(SQLITE, "GET /health", "baseline", health))
            base = percentile(sorted(health), 95)
            for name, path in pages(datetime.now(UTC).date(), sizes[1] // 2):
                samples = _timed(client, path, rounds)
                result.series.append(Series.of(SQLITE, name, path, samples))
                p95 = percentile(sorted(samples), 95)
                result.figures.append(
                    Figure(
                        SQLITE,
                        f"{name} p95",
                        "ms",
                        p95,
                        base,
                        "GET /health p95",
                        goal=f"< {GOAL_MS:.0f} ms",
                        met=p95 < GOAL_MS,
                    )
                )
    return result


def _timed(client: httpx.Client, path: str, rounds: int) -> list[float]:
    first = client.get(path)  # warm: templates compiled, caches filled; not counted
    if first.status_code != 200:
        raise RuntimeError(f"{path}: {first.status_code} {first.text[:200]}")
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - t) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
    return samples
