"""FHIR Appointment search latency with a large store, on SQLite and PostgreSQL.

100,000 appointments (``bench/dataset.py``) are loaded straight into the store tables; then the
real HTTP API of a running gateway (``GatewayThread``) is asked, one request at a time, with
httpx from this process: a patient's bookings, a patient's upcoming bookings, one day for all
patients, a patient with hundreds of bookings (and the ``next`` links after it), and the
platform's incremental sync (``_lastUpdated=gt…`` sorted by ``_lastUpdated``, and its ``next``
link). All with ``_count=50``.

Baseline: ``GET /health`` on the same server in the same loop, interleaved with the searches.
It takes the same path through uvicorn, FastAPI, the thread pool, a pooled database connection
and one round trip to the database (``SELECT 1``), so the ratio is what the search itself adds
(query, count for ``total``, Bundle assembly) and machine noise cancels out. The same query
run directly through ``gateway.store.queries`` (no HTTP) is reported beside it as "sql" to
show how much of a search is the database.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
from sqlalchemy import Engine, text

from bench import dataset
from bench.common import (
    POSTGRESQL,
    SQLITE,
    BenchRegister,
    Context,
    Figure,
    PostgresUnavailable,
    Result,
    Series,
    Stopwatch,
    bench_headers,
    gateway_settings,
    pg_database,
)
from gateway.domain.query import STOCKHOLM
from gateway.fhir.search import parse_appointment_query
from gateway.store import migrate, queries
from gateway.store.db import make_engine
from gateway.store.tables import appointments
from gateway.testing import GatewayThread

NAME = "search"
TITLE = "FHIR Appointment search (_count=50) over the HTTP API vs GET /health on the same server"
GOAL_P99_MS = 20.0
KINDS = (
    "patient",
    "patient, date>=today",
    "one day, all patients",
    "heavy patient, page 1",
    "_lastUpdated sync",
    "next link",
)
NEXT_HOPS = 2  # next links followed after each heavy-patient and sync first page


@dataclass
class Samples:
    http: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    sql: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    health: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    entries: int = 0


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    size = 600 if ctx.quick else 100_000
    rounds = 3 if ctx.quick else 150
    today = datetime.now(STOCKHOLM).date()
    p = dataset.plan(size, today=today)
    result.params = {
        "appointments": size,
        "persons": p.persons,
        "days": p.days,
        "rounds": rounds,
        "requests_per_round": f"{len(KINDS) - 1} first pages + {2 * NEXT_HOPS} next links + 3 /health",
        "count": 50,
        "client": "httpx.Client, one request at a time, keep-alive, same process",
    }
    backends = list(ctx.backends)
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for backend in backends:
            try:
                urls[backend] = stack.enter_context(_database(ctx, backend))
            except PostgresUnavailable as exc:
                result.skipped[backend] = str(exc)
        engines = {b: make_engine(u) for b, u in urls.items()}
        for engine in engines.values():
            migrate.upgrade(engine)
        load = _load(engines, p, processes=1 if ctx.quick else 2)
        stats = load.pop("stats")
        result.details["load"] = load
        for backend, url in urls.items():
            samples = _measure(ctx, backend, url, engines[backend], p, stats, rounds)
            _report(result, backend, samples)
        for engine in engines.values():
            engine.dispose()
    return result


@contextmanager
def _database(ctx: Context, backend: str) -> Iterator[str]:
    if backend == SQLITE:
        yield f"sqlite:///{(ctx.workdir / f'search-{uuid.uuid4().hex[:8]}.db').as_posix()}"
    else:
        with pg_database(ctx.pg_admin_url, prefix="gw_bench_search") as url:
            yield url


def _load(engines: dict[str, Engine], p: dataset.Plan, *, processes: int) -> dict[str, Any]:
    """Make the rows once and insert each chunk into every backend."""
    made = Stopwatch()
    insert_s = dict.fromkeys(engines, 0.0)
    stats: dict[str, Any] = {"visible_by_patient": {}, "rows": 0, "visible": 0, "last_updated": []}
    by_patient: dict[str, int] = stats["visible_by_patient"]
    for rows in dataset.generate(p, processes=processes):
        for backend, engine in engines.items():
            watch = Stopwatch()
            with engine.begin() as conn:
                conn.execute(appointments.insert(), rows)
            insert_s[backend] += watch.seconds
        for row in rows:
            stats["rows"] += 1
            stats["last_updated"].append(row["last_updated"])
            if row["visible"]:
                stats["visible"] += 1
                # A patient's search leaves entered-in-error out unless asked for by status (R-BK-2).
                if row["status"] != "entered-in-error":
                    by_patient[row["patient_value"]] = by_patient.get(row["patient_value"], 0) + 1
    for backend, engine in engines.items():
        if backend == POSTGRESQL:
            # autovacuum would analyze the new table within a minute; do it now, deterministically
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE appointments"))
    stats["last_updated"].sort()
    return {
        "seconds_total": round(made.seconds, 1),
        "insert_seconds": {b: round(s, 1) for b, s in insert_s.items()},
        "rows": stats["rows"],
        "visible": stats["visible"],
        "patients_with_visible": len(by_patient),
        "heavy_patient_visible": by_patient.get(dataset.HEAVY_PATIENT, 0),
        "stats": stats,
    }


def _measure(
    ctx: Context,
    backend: str,
    url: str,
    engine: Engine,
    plan: dataset.Plan,
    stats: dict[str, Any],
    rounds: int,
) -> Samples:
    settings = gateway_settings(ctx, url)
    rng = random.Random(11)
    patients = sorted(p for p in stats["visible_by_patient"] if p != dataset.HEAVY_PATIENT)
    stamps: list[datetime] = stats["last_updated"]
    system = _patient_system()
    out = Samples()
    today = datetime.now(STOCKHOLM).date()
    with (
        GatewayThread(settings, register=BenchRegister()) as gw,
        httpx.Client(
            base_url=gw.http_url,
            timeout=30,
            headers={"accept": "application/fhir+json", **bench_headers(ctx)},
        ) as client,
    ):

        def search(kind: str, items: list[tuple[str, str]], *, record: bool = True) -> dict[str, Any]:
            watch = Stopwatch()
            params: list[tuple[str, str | int | float | bool | None]] = list(items)
            response = client.get("/fhir/Appointment", params=params)
            elapsed = watch.seconds * 1000
            bundle = _check(response, kind, out)
            if record:
                out.http[kind].append(elapsed)
                out.sql[kind].append(_sql_ms(engine, items))
            return bundle

        def follow(kind: str, bundle: dict[str, Any], hops: int) -> None:
            for _ in range(hops):
                nxt = next(
                    (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
                )
                if nxt is None:
                    return
                parts = urlsplit(nxt)
                items = parse_qsl(parts.query, keep_blank_values=True)
                bundle = search(kind, items)

        def health(record: bool) -> None:
            if not record:
                return
            watch = Stopwatch()
            response = client.get("/health")
            out.health.append(watch.seconds * 1000)
            if response.status_code != 200:
                out.problems.append(f"/health answered {response.status_code}")

        def patient_items(value: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
            return [("patient:identifier", f"{system}|{value}"), *extra, ("_count", "50")]

        def one_round(record: bool) -> None:
            who = rng.choice(patients)
            bundle = search("patient", patient_items(who), record=record)
            if bundle.get("total") != stats["visible_by_patient"][who]:
                out.problems.append(
                    f"patient total {bundle.get('total')} != {stats['visible_by_patient'][who]}"
                )
            health(record)
            search(
                "patient, date>=today",
                patient_items(rng.choice(patients), ("date", f"ge{today}")),
                record=record,
            )
            day = plan.first_day + timedelta(days=rng.randrange(plan.days))
            search(
                "one day, all patients",
                [("date", f"ge{day}"), ("date", f"lt{day + timedelta(days=1)}"), ("_count", "50")],
                record=record,
            )
            health(record)
            heavy = search("heavy patient, page 1", patient_items(dataset.HEAVY_PATIENT), record=record)
            follow("next link", heavy, NEXT_HOPS if record else 0)
            since = stamps[max(0, len(stamps) - rng.randrange(60, min(2000, len(stamps)) + 1))]
            sync = search(
                "_lastUpdated sync",
                [("_lastUpdated", f"gt{_fhir_instant(since)}"), ("_sort", "_lastUpdated"), ("_count", "50")],
                record=record,
            )
            follow("next link", sync, NEXT_HOPS if record else 0)
            health(record)

        for _ in range(3):  # warm-up: connections, statement caches, pages
            one_round(record=False)
        for _ in range(rounds):
            one_round(record=True)
    return out


def _patient_system() -> str:
    from gateway import mappings as mapping_tables
    from mocks.population import OIDS

    return mapping_tables.load().fhir_system_for(OIDS["personnummer"])


def _fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check(response: httpx.Response, kind: str, out: Samples) -> dict[str, Any]:
    if response.status_code != 200:
        out.problems.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
        return {}
    bundle: dict[str, Any] = orjson.loads(response.content)
    entries = bundle.get("entry", [])
    out.entries += len(entries)
    if bundle.get("resourceType") != "Bundle" or len(entries) > 50:
        out.problems.append(f"{kind}: not a searchset of at most 50")
    return bundle


def _sql_ms(engine: Engine, items: list[tuple[str, str]]) -> float:
    """The same search straight through the store's query function (no HTTP, no Bundle)."""
    q = parse_appointment_query(items)
    watch = Stopwatch()
    with engine.connect() as conn:
        queries.search_appointments(conn, q)
    return watch.seconds * 1000


def _report(result: Result, backend: str, s: Samples) -> None:
    every = [x for k in KINDS for x in s.http[k]]
    health = Series.of(backend, "http", "GET /health (baseline)", s.health)
    overall = Series.of(backend, "http", "all searches", every)
    result.series += [health, overall]
    for kind in KINDS:
        result.series.append(Series.of(backend, "http", kind, s.http[kind]))
    for kind in KINDS:
        result.series.append(Series.of(backend, "sql", kind, s.sql[kind]))
    goal = f"p99 < {GOAL_P99_MS:.0f} ms"
    result.figures.append(Figure(backend, "search p50", "ms", overall.p50, health.p50, "/health p50"))
    result.figures.append(
        Figure(
            backend,
            "search p99",
            "ms",
            overall.p99,
            health.p99,
            "/health p99",
            goal,
            overall.p99 < GOAL_P99_MS,
        )
    )
    for kind in KINDS:
        series = next(
            x for x in result.series if x.backend == backend and x.subject == "http" and x.name == kind
        )
        result.figures.append(
            Figure(
                backend,
                f"{kind} p99",
                "ms",
                series.p99,
                health.p99,
                "/health p99",
                goal,
                series.p99 < GOAL_P99_MS,
            )
        )
    result.details[backend] = {"entries_returned": s.entries, "problems": s.problems[:20]}
    if health.p50 > 30:
        result.notes.append(
            f"{backend}: GET /health takes {health.p50:.0f} ms: small HTTP responses wait for the client's "
            "delayed ACK (Nagle; no TCP_NODELAY on the gateway's HTTP socket), see bench/README.md"
        )
    if s.problems:
        result.notes.append(f"{backend}: {len(s.problems)} unexpected answers, e.g. {s.problems[0]}")
