"""Replay rate: a 10,000-message recording replayed into a fresh gateway, beside the live ingest
rate of the same messages (docs/recording.md).

**Live** (the baseline): a gateway recording (``GATEWAY_RECORD=true``, the built-in mocks) takes
the simulated journal's messages on one MLLP connection, each after the previous one's ACK,
the way ``gateway replay`` sends; messages/s from the first send to the last ACK. The recording
is then exported as a file.

**Replay**: ``gateway replay`` (:func:`gateway.recording.replay.replay`) sends the same file
into a fresh gateway, offline (every outside call answered from the recording), then settles
and compares every ACK, every message's state and every FHIR resource. Figures: the replay's
send rate against the live rate (same messages, same connection discipline: the ratio is what
replaying costs over ingesting), and the whole replay (send, settle, compare) in messages/s.
SQLite only: the replay tool's rate, not the database, is the subject.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date

import httpx

from bench.common import SQLITE, Context, Figure, Result, Series, bench_headers, gateway_settings
from gateway.journal_adapter.mllp import MllpClient
from gateway.recording import fileformat
from gateway.recording import replay as rp
from gateway.recording.diff import Ignore
from gateway.store.db import make_engine
from gateway.store.recordings import ExportFilter, export_lines
from gateway.testing import GatewayThread
from mocks.journal import JournalSimulator

NAME = "replay"
TITLE = "gateway replay: messages/s of a recording replayed offline vs the live ingest of the same messages"


def _messages(count: int) -> list[bytes]:
    journal = JournalSimulator(seed=11, run_id="RB")
    day = journal.day(date.today(), bookings=int(count / 1.4) + 10)
    return [m.data for m in day[:count]]


async def _send(messages: list[bytes], host: str, port: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with MllpClient(host, port) as client:
        started = time.perf_counter()
        for raw in messages:
            t0 = time.perf_counter()
            await client.send(raw)
            latencies.append((time.perf_counter() - t0) * 1000)
        return time.perf_counter() - started, latencies


def _wait_processed(base: str, headers: dict[str, str], timeout: float = 600) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.get("/messages", params={"state": "received", "limit": 1}).json()["total"] == 0:
                break
            time.sleep(0.2)
    return time.perf_counter() - started


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    count = 120 if ctx.quick else 10_000
    messages = _messages(count)
    result.params = {"messages": len(messages), "connections": 1, "backend": SQLITE, "replay": "offline"}
    live_dir = ctx.workdir / "live"
    live_dir.mkdir()
    live_settings = gateway_settings(ctx, f"sqlite:///{(live_dir / 'live.db').as_posix()}").model_copy(
        update={"record": True, "data_dir": live_dir}
    )
    with GatewayThread(live_settings) as gw:
        host, port = gw.mllp_address
        live_seconds, live_ms = asyncio.run(_send(messages, host, port))
        live_processing = _wait_processed(gw.http_url, bench_headers(ctx))
    engine = make_engine(live_settings.database_url())
    path = ctx.workdir / "recording.jsonl"
    lines = fileformat.write(path, export_lines(engine, ExportFilter()))
    engine.dispose()
    recording = fileformat.read(path)

    replay_dir = ctx.workdir / "replay"
    replay_dir.mkdir()
    replay_settings = gateway_settings(ctx, f"sqlite:///{(replay_dir / 'replay.db').as_posix()}").model_copy(
        update={"offline_recording": path, "data_dir": replay_dir, "mocks": False}
    )
    with GatewayThread(replay_settings) as gw:
        host, port = gw.mllp_address
        target = rp.Target("mllp", host, port, gw.http_url, bench_headers(ctx)["Authorization"].split()[1])
        started = time.perf_counter()
        report = asyncio.run(rp.replay(recording, target, ignore=Ignore(), outbox_wait=5))
        whole = time.perf_counter() - started
    live_rate = len(messages) / live_seconds
    result.figures += [
        Figure(
            SQLITE, "replay send rate (offline target)", "msg/s", report.rate, live_rate, "live ingest msg/s"
        ),
        Figure(
            SQLITE,
            "whole replay: send, settle, compare",
            "msg/s",
            len(messages) / whole,
            live_rate,
            "live ingest msg/s",
        ),
    ]
    result.series += [
        Series.of(SQLITE, "live ingest", "ACK latency", live_ms),
        Series.of(SQLITE, "replay", "ACK latency", [c.seconds * 1000 for c in report.cases]),
    ]
    result.details = {
        "recording_lines": lines,
        "recording_bytes": path.stat().st_size,
        "outbound_calls": len(recording.outbound),
        "outputs_compared": report.outputs_compared,
        "differences": report.differences,
        "live_processing_seconds_after_last_ack": round(live_processing, 2),
        "replay_send_seconds": round(report.send_seconds, 2),
        "replay_settle_seconds": round(report.settle_seconds, 2),
        "replay_compare_seconds": round(report.compare_seconds, 2),
    }
    if report.differences:
        result.notes.append(f"the replay found {report.differences} difference(s): it should find none")
    result.notes += report.notes
    return result
