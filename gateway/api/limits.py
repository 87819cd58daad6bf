"""Request body limits for every HTTP route: size (413) and how slowly a body may arrive (408).

An ASGI middleware, so no route buffers more than its limit: a declared ``Content-Length`` over
the limit is answered 413 before one byte of the body is read; a body without one (chunked) is
counted as it arrives and refused as soon as it passes the limit. ``POST /journal/hl7`` takes
``GATEWAY_MAX_MESSAGE_BYTES`` (the same as MLLP), every other route ``GATEWAY_MAX_BODY_BYTES``.
A body whose next part does not arrive within ``GATEWAY_HTTP_READ_TIMEOUT`` seconds is
answered 408. Both are OperationOutcomes (docs/hl7-profile.md 1.3).
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.fhir.outcome import outcome

log = structlog.get_logger(__name__)

JOURNAL_PATH = "/journal/hl7"


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyTooSlow(StarletteHTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body did not arrive within {seconds:g} seconds")


class BodyLimits:
    """The ASGI middleware; installed by :func:`install`."""

    def __init__(self, app: ASGIApp, *, journal_bytes: int, other_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.journal_bytes = journal_bytes
        self.other_bytes = other_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.journal_bytes if scope["path"] == JOURNAL_PATH else self.other_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isascii() and value.isdigit() and int(value) > limit:
                    _log_refused(scope, 413, int(value))
                    await _answer(BodyTooLarge(limit), scope, receive, send)
                    return
                break
        received = 0
        done = False
        timeout = self.read_timeout

        async def limited() -> Message:
            nonlocal received, done
            if done:  # the body is in; what follows is a disconnect, however late
                return await receive()
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                _log_refused(scope, 408, received)
                raise BodyTooSlow(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    _log_refused(scope, 413, received)
                    raise BodyTooLarge(limit)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except (BodyTooLarge, BodyTooSlow) as exc:  # raised where no exception handler saw it
            if started:
                raise
            await _answer(exc, scope, receive, send)


def install(app: FastAPI, *, journal_bytes: int, other_bytes: int, read_timeout: float) -> None:
    """The middleware, and the handlers that turn its errors into OperationOutcomes wherever in
    a route the body is read (FastAPI re-raises HTTP exceptions from body parsing)."""
    app.add_middleware(
        BodyLimits, journal_bytes=journal_bytes, other_bytes=other_bytes, read_timeout=read_timeout
    )

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTooLarge | BodyTooSlow)
        return _response(exc)

    app.add_exception_handler(BodyTooLarge, refused)
    app.add_exception_handler(BodyTooSlow, refused)


def _response(exc: BodyTooLarge | BodyTooSlow) -> Response:
    if isinstance(exc, BodyTooLarge):
        response = outcome(413, "too-costly", exc.detail)
    else:
        response = outcome(408, "timeout", exc.detail)
    # The rest of the body is not read: the connection ends with this answer (uvicorn closes it).
    response.headers["Connection"] = "close"
    return response


async def _answer(exc: BodyTooLarge | BodyTooSlow, scope: Scope, receive: Receive, send: Send) -> None:
    await _response(exc)(scope, receive, send)


def _log_refused(scope: Scope, status: int, size: int) -> None:
    client = scope.get("client")
    log.warning(
        "http.body_refused",
        status=status,
        method=scope.get("method"),
        path=scope.get("path"),
        bytes=size,
        peer=f"{client[0]}:{client[1]}" if client else None,
    )
