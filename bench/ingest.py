"""Sustained MLLP ingest: the full gateway against the floor server, same senders, same run.

Eight simulated journals, each on its own persistent MLLP connection, each sending its next
message when the previous ACK has come (as journals do), for a fixed time after a warm-up. The
subject is first the floor server (``bench/floor.py``: frame, durable store, ACK) and then the
whole gateway (``GatewayThread``: decode, parse, check, translate, durable store (on SQLite
the intake journal, on PostgreSQL the ``messages`` table), ACK; plus the HTTP server beside it
and the processing worker in its own process, as ``gateway serve`` runs it). In full runs the
pair is measured twice, alternating, and pooled, so that drift in the machine's load hits both
alike.

"Sustained" counts the worker too: besides the ACKed rate, the rate at which messages reached a
final state (processed or failed, by the worker's ``processed_at``) within the same window, and
the backlog left at its end. A gateway that ACKs fast while its backlog grows is not sustaining.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from bench.common import (
    INLINE_WORKER,
    POSTGRESQL,
    SQLITE,
    BenchRegister,
    Context,
    Figure,
    PostgresUnavailable,
    Result,
    Series,
    gateway_settings,
    pg_database,
)
from bench.floor import FloorStore, FloorThread
from bench.loadgen import LoadSpec, drive
from gateway.store import queries
from gateway.store.inbox import FAILED, PROCESSED, RECEIVED, WAITING
from gateway.store.tables import messages
from gateway.testing import GatewayThread

NAME = "ingest"
TITLE = "MLLP ingest, 8 concurrent senders: full gateway vs floor server"
SENDERS = 8
GOAL_RATIO = 0.5
GOAL_SQLITE_RATE = 1000.0
#: The population register in the worker's process: not part of any figure (bench/README.md).
BENCH_REGISTER = "bench.common:BenchRegister"


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    warmup, duration = (0.2, 0.8) if ctx.quick else (1.0, 6.0)
    # Alternating pairs, pooled: one 6 s pair varies by +-10 to 15% with the machine's drift.
    rounds = {SQLITE: 1 if ctx.quick else 2, POSTGRESQL: 2}
    # Quick runs (the smoke test) stay on SQLite; full runs add PostgreSQL when it is there.
    backends = [b for b in ctx.backends if not (ctx.quick and b == POSTGRESQL)]
    result.params = {
        "senders": SENDERS,
        "warmup_s": warmup,
        "window_s": duration,
        "rounds": {b: rounds[b] for b in backends},
        "log_level": ctx.log_level,
        "load": "separate process; one message in flight per connection",
        "worker": "inline (--worker-inline)"
        if INLINE_WORKER in ctx.what_if
        else "own process (gateway serve's default), register = BenchRegister",
    }
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        pool.submit(_warm).result()  # pay the process start-up and imports before measuring
        for backend in backends:
            try:
                _run_backend(ctx, result, pool, backend, rounds[backend], warmup, duration)
            except PostgresUnavailable as exc:
                result.skipped[backend] = str(exc)
    return result


def _warm() -> int:
    return 0


def _run_backend(
    ctx: Context,
    result: Result,
    pool: concurrent.futures.Executor,
    backend: str,
    rounds: int,
    warmup: float,
    duration: float,
) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "gateway": []}
    for r in range(rounds):
        for subject in ("floor", "gateway"):
            spec_args = {
                "senders": SENDERS,
                "warmup_s": warmup,
                "duration_s": duration,
                "run_id": f"{subject[0].upper()}{r}",
                "seed": 1,
            }
            runner = _floor_run if subject == "floor" else _gateway_run
            runs[subject].append(runner(ctx, pool, backend, spec_args))
    rate = {s: _rate(rs) for s, rs in runs.items()}
    processed = _processed_rate(runs["gateway"])
    lat = {
        s: Series.of(backend, s, "ACK latency", [x for r in rs for x in r["latencies_ms"]])
        for s, rs in runs.items()
    }
    result.series += [lat["floor"], lat["gateway"]]
    ratio_ok = rate["gateway"] >= GOAL_RATIO * rate["floor"]
    if backend == SQLITE:
        goal = f">= {GOAL_RATIO:.0%} of floor and >= {GOAL_SQLITE_RATE:,.0f} msg/s"
        met = ratio_ok and rate["gateway"] >= GOAL_SQLITE_RATE
    else:
        goal = f">= {GOAL_RATIO:.0%} of floor"
        met = ratio_ok
    result.figures.append(
        Figure(backend, "throughput (ACKed)", "msg/s", rate["gateway"], rate["floor"], "floor", goal, met)
    )
    # The floor has no worker: what it ACKs is all it does, so its ACK rate is the baseline.
    processed_met = met and processed >= GOAL_RATIO * rate["floor"]
    if backend == SQLITE:
        processed_met = processed_met and processed >= GOAL_SQLITE_RATE
    result.figures.append(
        Figure(
            backend,
            "throughput (processed)",
            "msg/s",
            processed,
            rate["floor"],
            "floor",
            goal,
            processed_met,
        )
    )
    for q in ("p50", "p99"):
        result.figures.append(
            Figure(
                backend,
                f"ACK latency {q}",
                "ms",
                getattr(lat["gateway"], q),
                getattr(lat["floor"], q),
                "floor",
            )
        )
    result.details[backend] = {
        s: [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rs] for s, rs in runs.items()
    }
    not_aa = sum(n for r in runs["gateway"] for code, n in r["ack_codes"].items() if code != "AA")
    if not_aa:
        result.notes.append(f"{backend}: the gateway answered {not_aa} messages with something other than AA")


def _rate(runs: list[dict[str, Any]]) -> float:
    window = sum(r["window_s"] for r in runs)
    return sum(len(r["latencies_ms"]) for r in runs) / window if window else 0.0


def _processed_rate(runs: list[dict[str, Any]]) -> float:
    window = sum(r["window_s"] for r in runs)
    return sum(r["finished_in_window"] for r in runs) / window if window else 0.0


def _worker_figures(conn: Connection, window: list[float]) -> dict[str, int]:
    """What the worker finished within the load's window, and what it had left at its end."""
    start, end = (datetime.fromtimestamp(t, UTC) for t in window)
    finished = conn.execute(
        select(func.count())
        .select_from(messages)
        .where(
            messages.c.state.in_((PROCESSED, FAILED)),
            messages.c.processed_at >= start,
            messages.c.processed_at < end,
        )
    ).scalar_one()
    # Accepted by the end of the window and not finished by then: finished later, or still open
    # (in `messages`, or on SQLite not yet moved there from the intake journal).
    finished_later = conn.execute(
        select(func.count())
        .select_from(messages)
        .where(
            messages.c.received_at < end,
            messages.c.state.in_((PROCESSED, FAILED)),
            messages.c.processed_at >= end,
        )
    ).scalar_one()
    still_open = sum(
        queries.list_messages(conn, queries.MessageFilter(state=state, until=end, limit=1))[0]
        for state in (RECEIVED, WAITING)
    )
    backlog = finished_later + still_open
    return {"finished_in_window": int(finished), "backlog_at_window_end": int(backlog)}


@contextmanager
def _database(ctx: Context, backend: str, tag: str) -> Iterator[str]:
    if backend == SQLITE:
        yield f"sqlite:///{(ctx.workdir / f'{tag}-{uuid.uuid4().hex[:8]}.db').as_posix()}"
    else:
        with pg_database(ctx.pg_admin_url, prefix=f"gw_bench_{tag}") as url:
            yield url


def _drive(
    pool: concurrent.futures.Executor, address: tuple[str, int], spec_args: dict[str, Any]
) -> dict[str, Any]:
    spec = LoadSpec(host=address[0], port=address[1], **spec_args)
    out: dict[str, Any] = pool.submit(drive, spec).result(timeout=spec.warmup_s + spec.duration_s + 120)
    return out


def _floor_run(
    ctx: Context, pool: concurrent.futures.Executor, backend: str, spec_args: dict[str, Any]
) -> dict[str, Any]:
    with _database(ctx, backend, "floor") as url:
        store = FloorStore.sqlite(_sqlite_path(url)) if backend == SQLITE else FloorStore.postgresql(url)
        with FloorThread(store) as floor:
            out = _drive(pool, floor.mllp_address, spec_args)
        out.update(stored=store.stored, commits=store.commits)
    out["mean_commit_batch"] = out["stored"] / out["commits"] if out["commits"] else 0.0
    out["rate"] = len(out["latencies_ms"]) / out["window_s"]
    return out


def _gateway_run(
    ctx: Context, pool: concurrent.futures.Executor, backend: str, spec_args: dict[str, Any]
) -> dict[str, Any]:
    with _database(ctx, backend, "gateway") as url:
        settings = gateway_settings(ctx, url)
        # As `gateway serve` runs it: the worker in its own process. BenchRegister stands in for
        # SPAR there (by factory path, since the worker builds its own adapters) and here.
        inline = INLINE_WORKER in ctx.what_if
        gw = GatewayThread(
            settings,
            register=BenchRegister(),
            worker="inline" if inline else "process",
            worker_register=BENCH_REGISTER,
        )
        with gw:
            worker = gw.gateway.worker_process
            # A serving gateway is long-running: its worker's start-up is not in the window.
            if not inline and (worker is None or not worker.wait_ready(60)):
                raise RuntimeError("the gateway's worker process did not start")
            out = _drive(pool, gw.mllp_address, spec_args)
            with gw.gateway.engine.connect() as conn:
                out["states_at_end"] = queries.count_by_state(conn)
                out.update(_worker_figures(conn, out["window_epoch"]))
    out["stored"] = sum(out["states_at_end"].values())
    out["rate"] = len(out["latencies_ms"]) / out["window_s"]
    out["processed_rate"] = out["finished_in_window"] / out["window_s"]
    return out


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
