"""The FastAPI application. Routes are thin; errors become OperationOutcomes in one place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

import gateway
from gateway.api import audit as audit_api
from gateway.api import (
    auth,
    documents,
    fhir_self_service,
    headers,
    health,
    held,
    journal,
    limits,
    messages,
    outbox,
    patients,
    print_list,
    reports,
    rivta_scheduling,
)
from gateway.api import fhir as fhir_routes
from gateway.api.deps import NotAcceptable
from gateway.domain.accounts import AccountDirectory
from gateway.domain.documents import MailboxDirectory
from gateway.domain.notifications import Policy
from gateway.domain.register import PopulationRegister
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PermanentUpstreamError,
    Refused,
    TransientUpstreamError,
)
from gateway.fhir.outcome import outcome
from gateway.mappings import Mappings
from gateway.service.intake import Intake
from gateway.service.refresh import BookingSource
from gateway.settings import Settings
from gateway.store.audit import AuditWriter


def create_app(
    settings: Settings,
    engine: Engine,
    intake: Intake,
    *,
    mappings: Mappings,
    register: PopulationRegister,
    accounts: AccountDirectory,
    journal_service: BookingSource,
    mailbox: MailboxDirectory | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    notifications: Policy | None = None,
) -> FastAPI:
    app = FastAPI(
        dependencies=[Depends(auth.authorize)],
        title="Healthcare integration gateway",
        version=gateway.__version__,
        description="HL7 v2 from journal systems in; FHIR R4 Appointments out to the citizen platform.",
        # Served below as ordinary routes, so they too need a token (FastAPI's own skip the
        # app's dependencies): every route but /health does.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def openapi_docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")

    app.state.settings = settings
    app.state.engine = engine
    app.state.intake = intake
    app.state.mappings = mappings
    app.state.register = register
    app.state.accounts = accounts
    app.state.journal_service = journal_service
    app.state.clock = clock
    app.state.verifier = auth.verifier_for(settings)
    app.state.mailbox = mailbox
    #: R-NOT-2: a document staff release to the platform gets its notice (gateway/held.py).
    app.state.notification_policy = notifications
    # Body size and read time (gateway/api/limits.py), inside the audit trail so refusals are audited.
    limits.install(
        app,
        journal_bytes=settings.max_message_bytes,
        other_bytes=settings.max_body_bytes,
        read_timeout=settings.http_read_timeout,
    )
    # The audit trail (docs/audit.md): every access to personal data, written in the background.
    app.state.audit = AuditWriter(engine)
    auth_on = app.state.verifier is not None
    app.add_middleware(audit_api.AuditMiddleware, writer=app.state.audit, auth_on=auth_on)
    # Outermost of ours: the audit trail's 503 and the body limits' 413 get the headers too.
    app.add_middleware(headers.SecurityHeaders)
    app.include_router(audit_api.router)
    health.install(app, settings, engine, app.state.audit)  # /health*, /metrics
    app.include_router(fhir_self_service.router)  # before the read routes: POST/PATCH/PUT
    app.include_router(rivta_scheduling.router)
    app.include_router(fhir_routes.router)
    app.include_router(fhir_routes.binary_router)
    app.include_router(journal.router)
    app.include_router(messages.router)
    app.include_router(patients.router)
    app.include_router(held.router)
    app.include_router(documents.router)
    app.include_router(outbox.router)
    app.include_router(print_list.router)
    app.include_router(reports.router)

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, exc: GatewayError) -> Response:
        if isinstance(exc, auth.Unauthorized | auth.Forbidden | auth.AuthorizationTooLarge):
            return _refused(exc)
        if isinstance(exc, NotFound):
            return outcome(404, "not-found", str(exc))
        if isinstance(exc, InvalidRequest):
            return outcome(400, "invalid", str(exc))
        if isinstance(exc, Refused):
            return outcome(exc.status, "forbidden" if exc.status == 403 else "processing", str(exc))
        if isinstance(exc, NotAcceptable):
            return outcome(406, "not-supported", str(exc))
        if isinstance(exc, TransientUpstreamError):
            return outcome(503, "transient", f"an outside system is unavailable, try again: {exc}")
        if isinstance(exc, PermanentUpstreamError):
            return outcome(502, "exception", f"an outside system refused the request: {exc}")
        return outcome(500, "exception", "internal error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in exc.errors()
        )
        return outcome(400, "invalid", problems or "invalid request")

    # A number the request carries that the database cannot hold (an id or offset past 64 bits:
    # SQLite's driver raises OverflowError, PostgreSQL a data exception): bad input, not ours.
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(_request: Request, _exc: Exception) -> Response:
        return outcome(400, "invalid", "a value in the request is out of range")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # The router refuses a method before the route's dependencies run: check the token
            # here, so a method no route takes is no way past it, and the audit trail names the
            # caller (docs/audit.md).
            try:
                await auth.authorize(request)
            except (auth.Unauthorized, auth.Forbidden, auth.AuthorizationTooLarge) as refused:
                return _refused(refused)
        code = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}.get(
            exc.status_code, "processing"
        )
        return outcome(exc.status_code, code, str(exc.detail))  # type: ignore[arg-type]

    # Anything unforeseen: still an OperationOutcome. Starlette runs this handler outside the
    # middleware, so it adds the security headers itself (and re-raises to the server's log).
    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> Response:
        answer = outcome(500, "exception", "internal error")
        answer.headers.update({k.decode(): v.decode() for k, v in headers.security_headers(request.url.path)})
        return answer

    return app


def _refused(exc: auth.Unauthorized | auth.Forbidden | auth.AuthorizationTooLarge) -> Response:
    if isinstance(exc, auth.Unauthorized):
        answer = outcome(401, "login", str(exc))
        answer.headers["WWW-Authenticate"] = exc.challenge()
        return answer
    if isinstance(exc, auth.Forbidden):
        return outcome(403, "forbidden", str(exc))
    return outcome(431, "too-costly", str(exc))
