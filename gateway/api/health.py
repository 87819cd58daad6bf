"""Health and metrics for operations: ``/health``, ``/health/live``, ``/health/ready``, ``/metrics``.

* ``/health/live``: the process answers (restart it when not). Touches nothing else.
* ``/health/ready``: send it traffic? The database answers, its schema is at this code's
  migration head, some instance holds the worker lease (PostgreSQL; SQLite has one process and
  no lease), and not every circuit breaker (of any process) is open. 503 when not, and the JSON
  body says which check failed and why.
* ``/health``: the database check as it always was (kept for existing probes).
* ``/metrics``: Prometheus text (``gateway/metrics.py``). Not open: like every route not listed
  in ``gateway/api/auth.py`` it needs an ``admin`` token. Prometheus scrapes the separate,
  unauthenticated metrics port instead (``GATEWAY_METRICS_PORT``, ``docs/operations.md``).

The health routes are open and carry no personal data.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from gateway import metrics
from gateway.resilience import BreakerState, breakers
from gateway.settings import Settings
from gateway.store import migrate, ops
from gateway.store.audit import AuditWriter

log = structlog.get_logger(__name__)

router = APIRouter(tags=["Operations"])


def install(app: FastAPI, settings: Settings, engine: Engine, audit: AuditWriter) -> None:
    """The routes, and the collector of the figures read at scrape time."""
    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(engine, audit=audit, certificates=certificates(settings)))
    app.state.metrics_registry = registry
    app.include_router(router)


def certificates(settings: Settings) -> dict[str, Path]:
    """The certificates whose expiry is watched: MLLP TLS and the mailbox signing certificate."""
    from gateway.mailbox_adapter import MailboxSettings

    found: dict[str, Path] = {}
    if settings.mllp_tls_cert is not None:
        found["mllp_tls"] = settings.mllp_tls_cert
    if settings.mllp_tls_client_ca is not None:
        found["mllp_client_ca"] = settings.mllp_tls_client_ca
    try:
        sign_cert = MailboxSettings().sign_cert
    except ValueError:  # pydantic's ValidationError; the adapter itself reports the setting
        sign_cert = None
    if sign_cert is not None:
        found["mailbox_signing"] = Path(sign_cert)
    return found


@router.get("/health", summary="Liveness and database check")
async def health(request: Request) -> Response:
    engine: Engine = request.app.state.engine

    try:
        await run_in_threadpool(ops.ping, engine)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"})


@router.get("/health/live", summary="The process is up")
async def live() -> Response:
    return JSONResponse({"status": "ok"})


#: How long /health/ready waits for the database before it answers "not ready".
READY_SECONDS = 3.0


@router.get("/health/ready", summary="Ready for traffic: database, schema, worker lease, breakers")
async def ready(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    try:
        # A probe must answer: a database that takes connections but never answers (or a pool
        # whose connections all hang) is "not ready" after a bound, not a probe that times out.
        checks = await asyncio.wait_for(run_in_threadpool(readiness, engine), READY_SECONDS)
    except TimeoutError:
        why = f"cannot reach the database: no answer within {READY_SECONDS:g} s"
        checks = {
            "database": {"ok": False, "why": why},
            "migrations": {"ok": False, "why": "unknown: the database cannot be read"},
            "worker_lease": {"ok": False, "why": "unknown: the database cannot be read"},
        }
    ok = all(check["ok"] for check in checks.values())
    if not ok:
        log.warning("health.not_ready", failing=sorted(k for k, v in checks.items() if not v["ok"]))
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


def readiness(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each check: ``ok`` and ``why``."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            current = migrate.current(conn)
            lease = ops.worker_lease_held(conn)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        why = f"cannot reach the database: {type(cause).__name__}: {(str(cause) or '?').splitlines()[0]}"
        checks["database"] = {"ok": False, "why": why}
        checks["migrations"] = {"ok": False, "why": "unknown: the database cannot be read"}
        checks["worker_lease"] = {"ok": False, "why": "unknown: the database cannot be read"}
    else:
        head = migrate.head()
        checks["database"] = {"ok": True, "why": f"{engine.dialect.name} answers"}
        checks["migrations"] = {
            "ok": current == head,
            "why": f"schema at {current}, code at {head}"
            + ("" if current == head else ": run `gateway db upgrade`"),
        }
        if engine.dialect.name == "postgresql":
            checks["worker_lease"] = {
                "ok": lease,
                "why": "an instance holds the worker lease"
                if lease
                else "no instance holds the worker lease: nothing processes stored messages",
            }
        else:
            checks["worker_lease"] = {"ok": True, "why": "SQLite: one process, no lease"}
    # Every process's breakers where the worker runs apart (gateway serve); else this process's.
    opened = metrics.breakers_open_everywhere()
    if opened is None:
        opened = {b.name: b.state is not BreakerState.CLOSED for b in breakers()}
    all_open = bool(opened) and all(opened.values())
    checks["breakers"] = {
        "ok": not all_open,
        "why": ", ".join(
            f"{name} {'open' if is_open else 'closed'}" for name, is_open in sorted(opened.items())
        )
        or "none",
    }
    return checks


@router.get("/metrics", summary="Prometheus metrics (also on GATEWAY_METRICS_PORT, unauthenticated)")
async def metrics_text(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = await run_in_threadpool(metrics.exposition, registry)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)
