"""An SMS provider in the shape of 46elks' API (``/a1/sms``), recording every SMS it takes.

- ``POST /sms/a1/sms`` (form ``from``, ``to``, ``message``; HTTP Basic accepted, not checked):
  records the SMS and answers ``{"id": ..., "status": "created", ...}`` as 46elks does. A
  sender over 11 characters or a ``to`` not in E.164 is refused with 400 (R-NOT-3).
  Unlike 46elks, an ``Idempotency-Key`` header is honoured: a repeat gets the first SMS's answer
  and nothing is recorded twice (``duplicates`` counts them).
- ``GET /sms/a1/sms?to=&end=`` the history, newest first (46elks: ``end`` = after this time).
- ``GET /sms/_received`` everything taken, oldest first, for tests and outside checks;
  ``POST /sms/_reset`` forgets it; ``GET|PUT /sms/_switches`` latency, errors and outage, and
  ``hang_after_accept`` (record, then wait before answering: a crash in that window).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PREFIX = "/sms"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_Next = Callable[[Request], Awaitable[Response]]


class Switches(BaseModel):
    latency: float = Field(0.0, ge=0, description="Seconds before each /a1 answer.")
    hang_after_accept: float = Field(0.0, ge=0, description="Seconds to wait after recording an SMS.")
    fail_next: int = Field(0, ge=0, description="Answer this many /a1 requests with 500, then recover.")
    http_500: bool = False
    outage: bool = Field(False, description="Answer 503, as a load balancer in front of a dead service.")


class Received(BaseModel):
    id: str
    created: str
    direction: str = "outgoing"
    sender: str = Field(serialization_alias="from")
    to: str
    message: str
    status: str = "delivered"
    idempotency_key: str | None = None


class Recorder:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.by_key: dict[str, Received] = {}
        self.duplicates = 0
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"s{next(self._ids):032x}"


def create_app(switches: Switches | None = None, recorder: Recorder | None = None) -> FastAPI:
    state = switches if switches is not None else Switches()
    rec = recorder if recorder is not None else Recorder()
    app = FastAPI(title="SMS provider (46elks-style mock)", version="1")

    @app.middleware("http")
    async def apply_switches(request: Request, call_next: _Next) -> Response:
        if not request.url.path.startswith(PREFIX + "/a1"):
            return await call_next(request)
        if state.latency:
            await asyncio.sleep(state.latency)
        if state.outage:
            return Response(b"service unavailable", status_code=503, media_type="text/plain")
        if state.fail_next:
            state.fail_next -= 1
            return Response(b"internal error", status_code=500, media_type="text/plain")
        if state.http_500:
            return Response(b"internal error", status_code=500, media_type="text/plain")
        return await call_next(request)

    @app.post(f"{PREFIX}/a1/sms")
    async def send(request: Request, idempotency_key: Annotated[str | None, Header()] = None) -> Response:
        # A form as 46elks takes it, read by hand (no python-multipart needed for a plain form).
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        sender, to, message = form.get("from", ""), form.get("to", ""), form.get("message", "")
        if idempotency_key and idempotency_key in rec.by_key:
            rec.duplicates += 1
            return JSONResponse(rec.by_key[idempotency_key].model_dump(by_alias=True))
        if not sender or (not sender.startswith("+") and (len(sender) > 11 or not sender.isalnum())):
            return Response(b"Invalid from: at most 11 letters and digits", status_code=400)
        if not _E164.match(to):
            return Response(b"Invalid to: E.164 expected", status_code=400)
        sms = Received(
            id=rec.next_id(),
            created=datetime.now(UTC).replace(tzinfo=None).isoformat(),
            sender=sender,
            to=to,
            message=message,
            idempotency_key=idempotency_key,
        )
        rec.received.append(sms)
        if idempotency_key:
            rec.by_key[idempotency_key] = sms
        # Held until the time is up or the switch is turned off (a test's crash window ends).
        loop = asyncio.get_running_loop()
        until = loop.time() + state.hang_after_accept
        while state.hang_after_accept and loop.time() < until:
            await asyncio.sleep(0.05)
        return JSONResponse(sms.model_dump(by_alias=True) | {"status": "created"})

    @app.get(f"{PREFIX}/a1/sms")
    async def history(to: str | None = None, end: str | None = None, limit: int = 100) -> dict[str, object]:
        items = [
            s
            for s in reversed(rec.received)
            if (to is None or s.to == to) and (end is None or s.created >= end)
        ]
        return {"data": [s.model_dump(by_alias=True) for s in items[: min(limit, 100)]]}

    @app.get(f"{PREFIX}/_received")
    async def received() -> dict[str, object]:
        return {"received": [s.model_dump(by_alias=True) for s in rec.received], "duplicates": rec.duplicates}

    @app.post(f"{PREFIX}/_reset")
    async def reset() -> dict[str, str]:
        rec.received.clear()
        rec.by_key.clear()
        rec.duplicates = 0
        for name, field in Switches.model_fields.items():
            setattr(state, name, field.default)
        return {"status": "reset"}

    @app.get(f"{PREFIX}/_switches")
    async def get_switches() -> Switches:
        return state

    @app.put(f"{PREFIX}/_switches")
    async def put_switches(new: Switches) -> Switches:
        for name in Switches.model_fields:
            setattr(state, name, getattr(new, name))
        return state

    return app
