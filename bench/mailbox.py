"""Mailbox deliveries/s through the durable outbox, at 0 ms and 50 ms provider latency.

Subject: the real :class:`gateway.service.outbox.Outbox` (claim, deliver, receipt in the store) with the
real :class:`gateway.mailbox_adapter.MailboxDeliveryClient` (the request built with lxml and
both XML-DSig signatures written on it with the throwaway certificate, async httpx, the answer
read with lxml when plain (zeep otherwise), retries, breakers, one ``isReachable`` per claimed
batch), draining N pending letters with ``Outbox.drain`` (the pipeline ``run`` uses: no batch
barrier, receipts written in batches), with the gateway's default ``outbox_batch`` and
``outbox_concurrency``.

The mailbox mock (``mocks.mailbox``) runs in a separate, spawned process on a real port, so its
own XML work (schema validation, signature verification) does not share the outbox's GIL, and
examines deliveries in ``MOCK_WORKERS`` worker processes of its own (the same checks); its
``latency`` switch (``PUT /mailbox/_switches``) sets the provider latency for every SOAP request.

The letters are made through the gateway's own code: ``document_flow.process_document`` (the
routing decision R-DOC-4, the store writers and ``gateway.service.outbox.enqueue`` in one transaction,
as the processing worker calls it) for e-brev to the test population's adults whose mailbox
takes the sender; the outside answers (register, account, mailbox) are given, not asked.

Baselines, same run: at 50 ms the ideal, ``concurrency / latency`` (8 / 50 ms = 160/s); at 0 ms
the very signed ``deliverSecure`` request the client sent, captured and posted raw with httpx
at the same concurrency to the same mock: what the adapter and the outbox cost over the wire
and the mock (as ``bench/register.py`` does for SPAR).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
from lxml import etree
from sqlalchemy import Engine, func, select

from bench.common import (
    POSTGRESQL,
    SQLITE,
    Context,
    Figure,
    PostgresUnavailable,
    Result,
    Series,
    gateway_settings,
    pg_database,
)
from gateway import mappings as mapping_tables
from gateway.domain.accounts import Account, AccountStatus
from gateway.domain.documents import NO_EXCEPTIONS, MailboxProvider, MailboxReachability
from gateway.domain.identity import IdKind, PersonId
from gateway.domain.letter import Attachment, DocumentAction, DocumentEvent, JournalDocumentType
from gateway.domain.mailbox import MailboxReceipt, OutgoingLetter
from gateway.domain.register import Protection, RegisterRecord
from gateway.mailbox_adapter import (
    MailboxDeliveryClient,
    MailboxDirectoryClient,
    MailboxSettings,
    sign_delivery,
)
from gateway.mailbox_adapter._signing import SIGNED_DELIVERY
from gateway.mappings import Mappings
from gateway.service import document_flow
from gateway.service.outbox import DELIVERED, Outbox, _Claim, _Outcome
from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.tables import mailbox_outbox

NAME = "mailbox"
TITLE = "Mailbox outbox deliveries/s (real Outbox + signing client) vs ideal and raw signed SOAP POSTs"
LATENCIES_MS = (0, 50)
OIDS = {"personnummer": "1.2.752.129.2.1.3.1", "samordningsnummer": "1.2.752.129.2.1.3.3"}
PROVIDERS = {p.value: p for p in MailboxProvider}
TEXT = (
    "Hej!\nDu har fått svar på din remiss till Vårdcentralen Tolvåsen.\n"
    + "Provsvaren är normala och du behöver inte göra något mer. " * 12
    + "\nMed vänlig hälsning\nVårdcentralen Tolvåsen\n[4US:LPAT]"
)
#: One small PDF-typed attachment per letter (the mock checks the type and MD5, not the PDF).
PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 32 + b"\n%%EOF\n"


# -- the mock, in its own process --------------------------------------------------------------


#: Worker processes the mock examines deliveries in (schema, both signatures, the letter): the
#: same checks, off its serving loop, so eight letters answered together are not checked one
#: after another on one core.
MOCK_WORKERS = 2


def _serve_mock(pipe: Pipe, workers: int) -> None:
    """Entry point of the mock process: serve, send the URL, wait for the word to stop."""
    from mocks.mailbox import create_app
    from mocks.runner import ServedApp

    app = create_app(workers=workers)
    try:
        with ServedApp(app) as served:
            pipe.send(served.url)
            pipe.recv()
    finally:
        app.state.close()


def _cpu_seconds_with_children(pid: int) -> float:
    """:func:`_cpu_seconds` of ``pid`` and of its child processes (the mock's workers)."""
    total = _cpu_seconds(pid)
    for child in _children(pid):
        total += _cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them (Linux ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Mock:
    url: str
    pid: int


@contextlib.contextmanager
def _mock_process(workers: int) -> Iterator[_Mock]:
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    # Not a daemon: a daemonic process may not start the mock's worker processes.
    process = spawn.Process(target=_serve_mock, args=(theirs, workers), name="mailbox-mock")
    process.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("the mailbox mock process did not start")
        assert process.pid is not None
        yield _Mock(str(ours.recv()), process.pid)
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)
        ours.close()
        theirs.close()


def _set_latency(mock_url: str, seconds: float) -> None:
    response = httpx.put(f"{mock_url}/mailbox/_switches", json={"latency": seconds})
    response.raise_for_status()


def _mock_deliveries(mock_url: str) -> int:
    response = httpx.get(f"{mock_url}/mailbox/_deliveries")
    response.raise_for_status()
    return len(response.json()["deliveries"])


# -- the letters, through the gateway's own code ------------------------------------------------


def _recipients() -> list[tuple[PersonId, MailboxProvider]]:
    """The test population's adults whose mailbox takes the gateway's sender."""
    from mocks.population import load as load_population

    today = date.today()
    out = []
    for p in load_population().persons:
        if p.id_type not in OIDS or p.mailbox not in PROVIDERS or not p.mailbox_sender_accepted:
            continue
        day = int(p.id[6:8])
        born = date(int(p.id[0:4]), int(p.id[4:6]), day - 60 if day > 60 else day)
        if (today.year - born.year - ((today.month, today.day) < (born.month, born.day))) < 18:
            continue
        out.append((PersonId(IdKind(p.id_type), p.id, OIDS[p.id_type]), PROVIDERS[p.mailbox]))
    return out


def _fill(engine: Engine, mappings: Mappings, namespace: str, count: int, first_message: int) -> None:
    """``count`` e-brev routed to a mailbox, each with its pending outbox row, 100 a transaction."""
    recipients = _recipients()
    now = datetime.now(UTC)
    for start in range(0, count, 100):
        with engine.begin() as conn:
            for i in range(start, min(count, start + 100)):
                person, provider = recipients[i % len(recipients)]
                event = DocumentEvent(
                    action=DocumentAction.NEW,
                    namespace=namespace,
                    document_number=f"D{i:06d}",
                    document_type=JournalDocumentType.BREV,
                    patient=person,
                    title="Svar på remiss",
                    text=TEXT,
                    written_at=now,
                    unit_hsa_id="SE2321000016-15CQ",
                    unit_name="Vårdcentralen Tolvåsen",
                    author="Dr Doktorsson",
                    attachments=(Attachment("provsvar.pdf", "application/pdf", PDF_BYTES),),
                )
                who = document_flow.Circumstances(
                    person,
                    RegisterRecord(person=person, protection=Protection.NONE),
                    Account(person, AccountStatus.ACTIVE),
                    MailboxReachability(provider),
                    NO_EXCEPTIONS,
                )
                handled = document_flow.process_document(
                    conn,
                    first_message + i,
                    event,
                    who,
                    mappings,
                    now=now,
                    received_at=now,
                    attempts=0,
                    booking_wait=timedelta(hours=1),
                )
                if handled.result is not document_flow.Result.PROCESSED:
                    raise RuntimeError(f"letter {i} not routed: {handled}")


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(mailbox_outbox).where(mailbox_outbox.c.state == "pending")
            ).scalar_one()
        )


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(mailbox_outbox.c.state, func.count()).group_by(mailbox_outbox.c.state)
        ).all()
    return {str(state): int(n) for state, n in rows}


# -- timing wrappers (behaviour unchanged) ------------------------------------------------------


class _TimedDelivery:
    """The MailboxDelivery port around the real client: notes each ``deliver`` call's time."""

    def __init__(self, inner: MailboxDeliveryClient) -> None:
        self.inner = inner
        self.ms: list[float] = []
        self.prefetches: list[int] = []

    async def prefetch(self, letters: Sequence[OutgoingLetter]) -> None:
        self.prefetches.append(len(letters))
        await self.inner.prefetch(letters)

    async def deliver(self, letter: OutgoingLetter) -> MailboxReceipt:
        started = time.perf_counter()
        receipt = await self.inner.deliver(letter)
        self.ms.append((time.perf_counter() - started) * 1000)
        return receipt


class _TimedOutbox(Outbox):
    """The real Outbox; notes how long each claim and each receipt's transaction take."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claim_ms: list[float] = []
        self.receipt_ms: list[float] = []
        self.receipt_batches: list[int] = []
        #: CPU seconds of the claims' and the receipt transactions' own threads (``thread_time``).
        self.claim_cpu = 0.0
        self.receipt_cpu = 0.0

    def _claim(self) -> list[_Claim]:
        started, cpu = time.perf_counter(), time.thread_time()
        claims = super()._claim()
        self.claim_cpu += time.thread_time() - cpu
        self.claim_ms.append((time.perf_counter() - started) * 1000)
        return claims

    def _record(self, outcomes: list[_Outcome]) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        super()._record(outcomes)
        self.receipt_cpu += time.thread_time() - cpu
        self.receipt_ms.append((time.perf_counter() - started) * 1000)
        self.receipt_batches.append(len(outcomes))


# -- measuring ----------------------------------------------------------------------------------


async def _drain(outbox: _TimedOutbox) -> tuple[float, int]:
    """``drain`` until nothing is due; returns (seconds, batches claimed)."""
    claims = len(outbox.claim_ms)
    started = time.perf_counter()
    await outbox.drain()
    # Each drain ends with one empty claim (nothing due): not a batch.
    return time.perf_counter() - started, len(outbox.claim_ms) - claims - 1


async def _concurrent(
    count: int, width: int, call: Callable[[], Awaitable[None]]
) -> tuple[float, list[float]]:
    """``count`` calls, ``width`` at a time; returns (calls/s, latencies in ms)."""
    latencies: list[float] = []
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return count / (time.perf_counter() - started), latencies


class _Captured:
    """The first request of each kind the client sends (body and headers), for the raw baseline."""

    def __init__(self) -> None:
        self.requests: dict[str, tuple[str, bytes, dict[str, str]]] = {}

    async def __call__(self, request: httpx.Request) -> None:
        if request.method != "POST":
            return
        kind = "recipient" if request.url.path.endswith("/recipient") else "deliver"
        if kind not in self.requests:
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("content-type", "soapaction")
            }
            self.requests[kind] = (str(request.url), request.content, headers)


async def _outbox_runs(
    engine: Engine,
    mappings: Mappings,
    settings: Settings,
    mock: _Mock,
    counts: dict[int, int],
    captured: _Captured,
) -> dict[int, dict[str, Any]]:
    """Per provider latency: fill ``counts[ms]`` letters, drain them, check every one arrived."""
    mock_url = mock.url
    mailbox = MailboxSettings(
        url=f"{mock_url}/mailbox/recipient", service_addresses={"*": [f"{mock_url}/mailbox/"]}
    )
    out: dict[int, dict[str, Any]] = {}
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(mailbox.timeout), event_hooks={"request": [captured]}
    ) as http:
        # The clients gateway.bootstrap builds (one transport here, so every request is captured).
        directory = MailboxDirectoryClient(mailbox, client=http)
        client = MailboxDeliveryClient(mailbox, directory=directory, client=http)
        timed = _TimedDelivery(client)
        outbox = _TimedOutbox(
            engine,
            timed,
            mappings,
            batch_size=settings.outbox_batch,
            concurrency=settings.outbox_concurrency,
            max_attempts=settings.outbox_max_attempts,
            backoff_initial=settings.outbox_backoff_initial,
            backoff_max=settings.outbox_backoff_max,
            claim_seconds=settings.outbox_claim_seconds,
        )
        message = 1
        delivered = 0
        # Warm-up, not measured: zeep's proxies, connections, the signer, the mock's first answers.
        await asyncio.to_thread(_set_latency, mock_url, 0.0)
        warm = settings.outbox_concurrency
        await asyncio.to_thread(_fill, engine, mappings, f"WARM{uuid.uuid4().hex[:6]}", warm, message)
        message += warm
        await _drain(outbox)
        delivered += warm
        for ms, count in counts.items():
            await asyncio.to_thread(_set_latency, mock_url, ms / 1000)
            namespace = f"L{ms}{uuid.uuid4().hex[:6]}"
            await asyncio.to_thread(_fill, engine, mappings, namespace, count, message)
            message += count
            before = await asyncio.to_thread(_mock_deliveries, mock_url)
            timed.ms.clear()
            outbox.claim_ms.clear()
            outbox.receipt_ms.clear()
            outbox.receipt_batches.clear()
            outbox.claim_cpu = outbox.receipt_cpu = 0.0
            timed.prefetches.clear()
            load_before = os.getloadavg()[0]
            cpu, mock_cpu = time.process_time(), _cpu_seconds_with_children(mock.pid)
            seconds, batches = await _drain(outbox)
            cpu, mock_cpu = time.process_time() - cpu, _cpu_seconds_with_children(mock.pid) - mock_cpu
            load_after = os.getloadavg()[0]
            arrived = await asyncio.to_thread(_mock_deliveries, mock_url) - before
            states = await asyncio.to_thread(_states, engine)
            problems = []
            if arrived != count:
                problems.append(f"the mock accepted {arrived} new deliveries, not {count}")
            delivered += count
            if states != {DELIVERED: delivered}:
                problems.append(f"outbox states after the drain: {states}")
            # The baseline right after, so both see the same load on the shared machine.
            raw = await _raw(captured, count, settings.outbox_concurrency)
            out[ms] = {
                "raw": raw,
                "count": count,
                "seconds": seconds,
                "rate": count / seconds,
                "batches": batches,
                "deliver_ms": list(timed.ms),
                "claim_ms": list(outbox.claim_ms),
                "receipt_ms": list(outbox.receipt_ms),
                "receipt_batches": list(outbox.receipt_batches),
                "prefetches": list(timed.prefetches),
                "problems": problems,
                # CPU per letter, whatever the machine's load: the outbox's process (every thread:
                # claim, client, receipts) and the mock's (isReachable and deliverSecure).
                "cpu_ms_per_letter": cpu * 1000 / count,
                "mock_cpu_ms_per_letter": mock_cpu * 1000 / count,
                "claim_cpu_ms_per_letter": outbox.claim_cpu * 1000 / count,
                "receipt_cpu_ms_per_letter": outbox.receipt_cpu * 1000 / count,
                "load_average": (round(load_before, 1), round(load_after, 1)),
            }
        await asyncio.to_thread(_set_latency, mock_url, 0.0)
    return out


async def _raw(captured: _Captured, count: int, width: int) -> dict[str, tuple[float, list[float]]]:
    """The captured signed deliverSecure posted raw, and the pair the client sends (isReachable,
    then deliverSecure), ``width`` at a time, at the mock's current latency."""
    async with httpx.AsyncClient(timeout=30) as raw:

        async def post(kind: str) -> None:
            url, body, headers = captured.requests[kind]
            response = await raw.post(url, content=body, headers=headers)
            response.raise_for_status()

        async def deliver() -> None:
            await post("deliver")

        async def pair() -> None:
            await post("recipient")
            await post("deliver")

        await pair()  # connections open
        return {
            "deliver": await _concurrent(count, width, deliver),
            "pair": await _concurrent(count, width, pair),
        }


def _signing_ms(captured: _Captured, rounds: int) -> float:
    """CPU time of signing one captured SignedDelivery (signxml), in this process, ms each."""
    from gateway.mailbox_adapter import throwaway_identity

    _, body, _ = captured.requests["deliver"]
    node = etree.fromstring(body).find(f".//{SIGNED_DELIVERY}")
    assert node is not None
    for signature in node.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        node.remove(signature)
    identity = throwaway_identity(MailboxSettings().sender_name)
    sign_delivery(node, identity)
    started = time.process_time()
    for _ in range(rounds):
        sign_delivery(node, identity)
    return (time.process_time() - started) * 1000 / rounds


@contextlib.contextmanager
def _database(ctx: Context, backend: str) -> Iterator[str]:
    if backend == SQLITE:
        yield f"sqlite:///{(ctx.workdir / f'mailbox-{uuid.uuid4().hex[:8]}.db').as_posix()}"
    else:
        with pg_database(ctx.pg_admin_url, prefix="gw_bench_mailbox") as url:
            yield url


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    counts = {0: 40, 50: 24} if ctx.quick else {0: 1000, 50: 480}
    settings = gateway_settings(ctx, "sqlite://")
    width, batch = settings.outbox_concurrency, settings.outbox_batch
    # Quick runs (the smoke test) stay on SQLite; full runs add PostgreSQL when it is there.
    backends = [b for b in ctx.backends if not (ctx.quick and b == POSTGRESQL)]
    mappings = mapping_tables.load()
    captured = _Captured()
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    # --quick checks that the benchmark works: the mock checks deliveries on its own loop there
    # (two worker processes more would be most of the smoke test's time).
    with _mock_process(0 if ctx.quick else MOCK_WORKERS) as mock:
        for backend in backends:
            try:
                with _database(ctx, backend) as db_url:
                    engine = make_engine(db_url)
                    try:
                        migrate.upgrade(engine)
                        runs[backend] = asyncio.run(
                            _outbox_runs(engine, mappings, settings, mock, counts, captured)
                        )
                    finally:
                        engine.dispose()
            except PostgresUnavailable as exc:
                result.skipped[backend] = str(exc)
        if not runs:
            return result
    signing = _signing_ms(captured, 20 if ctx.quick else 200)
    result.params = {
        "letters": counts,
        "raw_posts": "as many as letters, right after each drain: deliver alone, then the pair",
        "outbox_concurrency": width,
        "outbox_batch": batch,
        "letter": f"e-brev, {len(TEXT.encode())} bytes of text + one {len(PDF_BYTES):,}-byte PDF",
        "request_bytes": {k: len(v[1]) for k, v in captured.requests.items()},
        "mock": "separate spawned process, mocks.mailbox.create_app(), latency switch per SOAP request",
        "signing": "on (throwaway RSA-2048 certificate), verified by the mock against KeyInfo",
        "log_level": ctx.log_level,
    }
    for backend, by_ms in runs.items():
        r0, r50 = by_ms[0], by_ms[50]
        d0 = Series.of(backend, "outbox", "deliver() at 0 ms", r0["deliver_ms"])
        d50 = Series.of(backend, "outbox", "deliver() at 50 ms", r50["deliver_ms"])
        ideal = width / 0.050
        raw_rate0, raw_ms0 = r0["raw"]["deliver"]
        raw_rate50 = r50["raw"]["deliver"][0]
        ratio50 = r50["rate"] / ideal
        raw0 = Series.of(backend, "raw signed deliverSecure POST", "at 0 ms", raw_ms0)
        result.figures += [
            Figure(backend, "deliveries/s at 0 ms", "letters/s", r0["rate"], raw_rate0, "raw signed POST/s"),
            Figure(backend, "deliver() p50 at 0 ms", "ms", d0.p50, raw0.p50, "raw POST p50"),
            Figure(backend, "deliver() p99 at 0 ms", "ms", d0.p99, raw0.p99, "raw POST p99"),
            Figure(
                backend,
                "deliveries/s at 50 ms",
                "letters/s",
                r50["rate"],
                ideal,
                f"ideal {width} / 50 ms",
                goal=">= 0.8x",
                met=ratio50 >= 0.8,
            ),
            Figure(
                backend,
                "deliveries/s at 50 ms vs raw",
                "letters/s",
                r50["rate"],
                raw_rate50,
                "raw signed POST/s at 50 ms",
            ),
            Figure(backend, "deliver() p50 at 50 ms", "ms", d50.p50, 50.0, "provider latency"),
            Figure(backend, "deliver() p99 at 50 ms", "ms", d50.p99, 50.0, "provider latency"),
        ]
        result.series += [d0, d50]
        for ms in LATENCIES_MS:
            result.series += [
                Series.of(backend, "outbox", f"claim (batch of {batch}) at {ms} ms", by_ms[ms]["claim_ms"]),
                Series.of(
                    backend, "outbox", f"receipt transaction (a batch) at {ms} ms", by_ms[ms]["receipt_ms"]
                ),
            ]
        for ms in LATENCIES_MS:
            for kind, what in (
                ("deliver", "raw signed deliverSecure POST"),
                ("pair", "raw isReachable + deliverSecure"),
            ):
                _, samples = by_ms[ms]["raw"][kind]
                result.series.append(Series.of(backend, what, f"at {ms} ms", samples))
        result.details[backend] = {
            str(ms): {
                "letters": r["count"],
                "seconds": round(r["seconds"], 3),
                "deliveries_per_s": round(r["rate"], 1),
                "raw_deliver_per_s": round(r["raw"]["deliver"][0], 1),
                "raw_pair_per_s": round(r["raw"]["pair"][0], 1),
                "batches": r["batches"],
                "isreachable_calls": len(r["prefetches"]),
                "receipt_transactions": len(r["receipt_batches"]),
                "cpu_ms_per_letter": round(r["cpu_ms_per_letter"], 2),
                "claim_cpu_ms_per_letter": round(r["claim_cpu_ms_per_letter"], 2),
                "receipt_cpu_ms_per_letter": round(r["receipt_cpu_ms_per_letter"], 2),
                "mock_cpu_ms_per_letter": round(r["mock_cpu_ms_per_letter"], 2),
                "load_average_before_after": r["load_average"],
                "problems": r["problems"],
            }
            for ms, r in by_ms.items()
        }
    result.details["signing_ms_per_delivery_cpu"] = round(signing, 2)
    result.notes += [
        "raw baseline: one captured signed deliverSecure posted again and again; the mock verifies its "
        "signature every time and answers the first receipt again (same message id), as for a new one",
        f"ideal at 50 ms = outbox_concurrency / latency = {width} / 0.050 s = {width / 0.05:.0f}/s; "
        f"one isReachable per claimed batch of {batch}, then one deliverSecure per letter",
        f"drain claims the next batch of {batch} once {2 * width} or fewer claimed letters are not yet "
        "delivered (a round in flight, a round waiting; no batch barrier); finished letters gather "
        "for up to 50 ms (or a batch) while others fly, then one transaction records them",
        (
            "the mock examines deliveries (schema, both signatures, the letter) on its own loop (--quick)"
            if ctx.quick
            else f"the mock examines deliveries (schema, both signatures, the letter) in {MOCK_WORKERS} "
            "worker processes; mock_cpu_ms_per_letter counts them"
        ),
    ]
    return result
