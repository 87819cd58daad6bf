"""Register lookups per second through the SPAR adapter against the SPAR mock, cold and cached.

Baseline: the same SOAP request, captured from the adapter, posted raw with httpx at the same
concurrency to the same mock: what any client could get from this mock on this machine. The
adapter's cold figure is what zeep's envelope building and parsing, the translation to domain
objects, the retry policy and the breaker cost on top; the cached figure is what the TTL cache
saves a worker that asks for the same persons again (a day's bookings are mostly repeat patients).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.common import Context, Figure, Result, Series
from gateway.domain.identity import IdKind, PersonId
from gateway.spar_adapter import SparRegister, SparSettings
from mocks.population import load as load_population
from mocks.runner import ServedApp
from mocks.spar import PATH, SOAP_ACTION, create_app

NAME = "register"
TITLE = "SPAR lookups/s through the adapter (zeep on async httpx) vs the raw SOAP request, same mock"
CONCURRENCY = 8
OIDS = {"personnummer": "1.2.752.129.2.1.3.1", "samordningsnummer": "1.2.752.129.2.1.3.3"}


def _persons() -> list[PersonId]:
    out = []
    for p in load_population().persons:
        if p.id_type in OIDS:
            out.append(PersonId(IdKind(p.id_type), p.id, OIDS[p.id_type]))
    return out


async def _drive(count: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """``count`` calls, ``CONCURRENCY`` at a time; returns (calls/s, latencies in ms)."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started), latencies


async def _measure(url: str, count: int) -> dict[str, tuple[float, list[float]]]:
    persons = _persons()
    captured: list[bytes] = []

    async def capture(request: httpx.Request) -> None:
        if not captured and request.method == "POST":
            captured.append(request.content)

    base = {"url": url, "retry_attempts": 1}
    async with httpx.AsyncClient(event_hooks={"request": [capture]}) as client:
        cold = SparRegister(SparSettings(**base, cache_ttl=0), client=client)  # type: ignore[arg-type]
        await cold.lookup(persons[0])  # warm: WSDL loaded, connection open, request captured
        cold_rate = await _drive(count, lambda i: cold.lookup(persons[i % len(persons)]))
        cached = SparRegister(SparSettings(**base, cache_ttl=3600), client=client)  # type: ignore[arg-type]
        for p in persons:
            await cached.lookup(p)
        cached_rate = await _drive(count * 10, lambda i: cached.lookup(persons[i % len(persons)]))
    async with httpx.AsyncClient() as raw:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}
        body = captured[0]

        async def post(_: int) -> None:
            response = await raw.post(url, content=body, headers=headers)
            response.raise_for_status()

        await post(0)
        raw_rate = await _drive(count, post)
    return {"raw": raw_rate, "cold": cold_rate, "cached": cached_rate}


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, ctx.quick)
    count = 60 if ctx.quick else 2_000
    result.params = {"lookups": count, "cached_lookups": count * 10, "concurrency": CONCURRENCY}
    with ServedApp(create_app(load_population())) as served:
        figures = asyncio.run(_measure(served.url + PATH, count))
    (raw, raw_ms), (cold, cold_ms), (cached, cached_ms) = figures["raw"], figures["cold"], figures["cached"]
    result.figures += [
        Figure("http", "lookups/s cold (no cache)", "lookups/s", cold, raw, "raw SOAP POST/s"),
        Figure("http", "lookups/s cached", "lookups/s", cached, cold, "cold lookups/s"),
    ]
    result.series += [
        Series.of("http", "raw SOAP POST", "latency", raw_ms),
        Series.of("http", "adapter cold", "latency", cold_ms),
        Series.of("http", "adapter cached", "latency", cached_ms),
    ]
    return result
