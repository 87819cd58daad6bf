"""Prometheus metrics (``prometheus-client``): what operations watch, never who it is about.

Two kinds of figures, chosen by where the truth is:

* **Events**, counted where they happen: messages received and acknowledged (serving process),
  processing outcomes and latency (worker), calls to outside systems and their latency (both),
  circuit breakers (both). The worker runs in its own process by default (``gateway serve``),
  so ``gateway serve`` switches prometheus-client to its multiprocess mode
  (:func:`use_multiprocess`): each process writes its figures to files in one directory
  (``PROMETHEUS_MULTIPROC_DIR``, or a fresh temporary one per instance) and ``/metrics`` adds
  them up. Without it (``GatewayThread``, the demo, tests) they are plain in-memory figures.
* **States**, read from the database at scrape time (:class:`StoreCollector`): messages by
  state, backlog and worker lag, outbox by state and dead letters, open print-list items and
  held documents. They are right whichever process or instance did the work.

Labels are closed sets (message type, trigger, ACK code, state, outcome, adapter name,
certificate name): a personnummer, name, address or letter text can never become a label.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.domain.notifications import Kind as NotificationKind
from gateway.store import ops
from gateway.store.audit import AuditWriter
from gateway.store.notifications import STATES as notification_states

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MeteredTransport",
    "StoreCollector",
    "breaker_changed",
    "exposition",
    "message_acknowledged",
    "message_received",
    "messages_processed",
    "use_multiprocess",
]

log = structlog.get_logger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROCESSING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: Message types and triggers are the HL7 profile's, but a sender may send anything: labels
#: keep only what looks like a code, so a broken header cannot make unbounded label values.
_KNOWN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


_SMS_STATES = frozenset(notification_states)
_SMS_KINDS = frozenset(k.value for k in NotificationKind)


def _code(value: str) -> str:
    value = value.upper()[:3]
    return value if value and set(value) <= _KNOWN else "other"


RECEIVED = Counter(
    "gateway_messages_received_total",
    "Inbound HL7 messages read, by transport, message type (MSH-9.1) and trigger (MSH-9.2).",
    ["transport", "type", "trigger"],
)
ACKNOWLEDGED = Counter(
    "gateway_messages_acknowledged_total",
    "ACKs sent, by transport, message type, trigger and ACK code (AA, AE, AR).",
    ["transport", "type", "trigger", "ack_code"],
)
ACK_LATENCY = Histogram(
    "gateway_ack_latency_seconds",
    "From a message read to its ACK ready (the durable store included).",
    ["transport"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSED = Counter(
    "gateway_messages_processed_total",
    "Processing outcomes: processed, failed (final), waiting (an outside system; retried).",
    ["outcome"],
)
PROCESSING_LATENCY = Histogram(
    "gateway_processing_latency_seconds",
    "From a message received to its final state (processed or failed) committed by the worker.",
    ["outcome"],
    buckets=_PROCESSING_BUCKETS,
)
UPSTREAM_CALLS = Counter(
    "gateway_upstream_calls_total",
    "HTTP/SOAP calls to outside systems, by adapter and result (ok, http_4xx, http_5xx, error).",
    ["upstream", "result"],
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_latency_seconds",
    "Latency of one HTTP/SOAP call to an outside system (each retry is a call).",
    ["upstream"],
    buckets=_LATENCY_BUCKETS,
)
BREAKER_OPEN = Gauge(
    "gateway_upstream_breaker_open",
    "1 while the adapter's circuit breaker is open or half-open (failing fast), 0 when closed.",
    ["upstream"],
    multiprocess_mode="livemax",
)


def message_received(transport: str, message_type: str, trigger: str) -> None:
    RECEIVED.labels(transport, _code(message_type), _code(trigger)).inc()


def message_acknowledged(
    transport: str, message_type: str, trigger: str, ack_code: str, seconds: float
) -> None:
    ACKNOWLEDGED.labels(transport, _code(message_type), _code(trigger), _code(ack_code)).inc()
    ACK_LATENCY.labels(transport).observe(seconds)


def messages_processed(outcomes: Iterable[tuple[str, datetime | None]], now: datetime) -> None:
    """Count a committed batch: each message's state and, for a final one, its age."""
    for outcome, received_at in outcomes:
        PROCESSED.labels(outcome).inc()
        if outcome != "waiting" and received_at is not None:
            PROCESSING_LATENCY.labels(outcome).observe(max(0.0, (now - received_at).total_seconds()))


def breaker_changed(upstream: str, is_open: bool) -> None:
    BREAKER_OPEN.labels(upstream).set(1 if is_open else 0)


#: The last failed call to each outside system seen by this process: (what, when). The class
#: of a transport error or the HTTP status only, never a message (it may quote the request).
LAST_UPSTREAM_ERROR: dict[str, tuple[str, datetime]] = {}


@dataclass(frozen=True, slots=True)
class UpstreamSummary:
    """One outside system as operations see it (the console's Översikt)."""

    upstream: str
    calls: int
    failed: int
    mean_ms: float | None
    breaker_open: bool | None
    last_error: str | None
    last_error_at: datetime | None


def upstream_summary() -> list[UpstreamSummary]:
    """Calls, failures and mean latency per outside system from the counted figures (every
    process's in multiprocess mode), the breaker and this process's last failed call."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    calls: dict[str, int] = {}
    failed: dict[str, int] = {}
    seconds: dict[str, float] = {}
    timed: dict[str, int] = {}
    breakers: dict[str, bool] = {}
    for family in registry.collect():
        for sample in family.samples:
            upstream = sample.labels.get("upstream")
            if upstream is None:
                continue
            if sample.name == "gateway_upstream_calls_total":
                calls[upstream] = calls.get(upstream, 0) + int(sample.value)
                if sample.labels.get("result") != "ok":
                    failed[upstream] = failed.get(upstream, 0) + int(sample.value)
            elif sample.name == "gateway_upstream_latency_seconds_sum":
                seconds[upstream] = seconds.get(upstream, 0.0) + sample.value
            elif sample.name == "gateway_upstream_latency_seconds_count":
                timed[upstream] = timed.get(upstream, 0) + int(sample.value)
            elif sample.name == "gateway_upstream_breaker_open":
                breakers[upstream] = breakers.get(upstream, False) or sample.value >= 1
    out = []
    for upstream in sorted(set(calls) | set(breakers) | set(LAST_UPSTREAM_ERROR)):
        last = LAST_UPSTREAM_ERROR.get(upstream)
        n = timed.get(upstream, 0)
        out.append(
            UpstreamSummary(
                upstream,
                calls.get(upstream, 0),
                failed.get(upstream, 0),
                round(seconds[upstream] / n * 1000, 1) if n and upstream in seconds else None,
                breakers.get(upstream),
                last[0] if last else None,
                last[1] if last else None,
            )
        )
    return out


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts and times every call an adapter's client makes (put under it by the composition root)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, upstream: str) -> None:
        self._inner = inner
        self._upstream = upstream
        UPSTREAM_CALLS.labels(upstream, "ok")  # the series exists (0) before the first call

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        result = "error"
        what = "error"
        try:
            response = await self._inner.handle_async_request(request)
            status = response.status_code
            result = "ok" if status < 400 else ("http_4xx" if status < 500 else "http_5xx")
            what = f"HTTP {status}"
            return response
        except Exception as exc:
            what = type(exc).__name__  # the class only: a message may quote the request
            raise
        finally:
            UPSTREAM_LATENCY.labels(self._upstream).observe(time.perf_counter() - started)
            UPSTREAM_CALLS.labels(self._upstream, result).inc()
            if result != "ok":
                LAST_UPSTREAM_ERROR[self._upstream] = (what, datetime.now(UTC))

    async def aclose(self) -> None:
        await self._inner.aclose()


def meter_client(client: httpx.AsyncClient, upstream: str) -> httpx.AsyncClient:
    from gateway.recording.transport import wrap_client

    wrap_client(client, lambda inner: MeteredTransport(inner, upstream))
    return client


class StoreCollector(Collector):
    """Figures read from the database and the serving process's own parts at scrape time."""

    def __init__(
        self,
        engine: Engine,
        *,
        audit: AuditWriter | None = None,
        certificates: dict[str, Path] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._certificates = dict(certificates or {})
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_database_up", "1 when the last scrape could read the database.")
        try:
            with self._engine.connect() as conn:
                figures = ops.figures(conn)
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unavailable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            yield from self._process_figures()
            return
        up.add_metric([], 1)
        yield up
        by_state = GaugeMetricFamily(
            "gateway_messages", "Stored inbound messages by state.", labels=["state"]
        )
        for state, n in sorted(figures.messages_by_state.items()):
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily(
            "gateway_backlog_messages",
            "Messages accepted and not yet in a final state (received or waiting).",
            value=figures.backlog,
        )
        lag = 0.0
        if figures.oldest_unfinished is not None:
            lag = max(0.0, (self._clock() - figures.oldest_unfinished).total_seconds())
        yield GaugeMetricFamily(
            "gateway_worker_lag_seconds",
            "Age of the oldest message the worker has not brought to a final state (0: none).",
            value=lag,
        )
        outbox = GaugeMetricFamily(
            "gateway_outbox_letters", "Mailbox outbox letters by state.", labels=["state"]
        )
        for state in ("pending", "delivered", "refused", "dead", "cancelled"):
            outbox.add_metric([state], figures.outbox_by_state.get(state, 0))
        yield outbox
        yield GaugeMetricFamily(
            "gateway_outbox_dead_letters",
            "Letters the outbox gave up on after transient errors (GET /outbox; staff act on them).",
            value=figures.outbox_by_state.get("dead", 0),
        )
        yield GaugeMetricFamily(
            "gateway_print_list_open",
            "Print-list items not yet handled by staff.",
            value=figures.print_list_open,
        )
        yield GaugeMetricFamily(
            "gateway_held_documents", "Documents held for a staff decision (R-ID-4).", value=figures.held
        )
        sms = GaugeMetricFamily(
            "gateway_notifications",
            "SMS reminders and notices by state (planned, skipped, cancelled, sending, sent, dead) and kind.",
            labels=["state", "kind"],
        )
        counted: dict[tuple[str, str], int] = {}
        for (state, kind), n in figures.notifications.items():  # closed sets only as labels
            key = (state if state in _SMS_STATES else "other", kind if kind in _SMS_KINDS else "other")
            counted[key] = counted.get(key, 0) + n
        for (state, kind), n in sorted(counted.items()):
            sms.add_metric([state, kind], n)
        yield sms
        yield from self._process_figures()

    def _process_figures(self) -> Iterator[Metric]:
        if self._audit is not None:
            since = self._audit.writing_since
            yield GaugeMetricFamily(
                "gateway_audit_backlog_events",
                "Audit events queued in this process and not yet committed.",
                value=self._audit.backlog,
            )
            yield GaugeMetricFamily(
                "gateway_audit_lag_seconds",
                "Age of the oldest audit event not yet committed (0: none in flight).",
                value=0.0 if since is None else max(0.0, (self._clock() - since).total_seconds()),
            )
            yield GaugeMetricFamily(
                "gateway_audit_writer_failing",
                "1 while the audit writer cannot commit (requests with personal data are refused).",
                value=1 if self._audit.failing else 0,
            )
        expiry = GaugeMetricFamily(
            "gateway_certificate_expiry_timestamp_seconds",
            "When a configured certificate stops being valid (Unix time; notAfter).",
            labels=["certificate"],
        )
        for name, path in sorted(self._certificates.items()):
            not_after = certificate_not_after(path)
            if not_after is not None:
                expiry.add_metric([name], not_after.timestamp())
        yield expiry


def certificate_not_after(path: Path) -> datetime | None:
    """The first certificate's notAfter in a PEM file (None: unreadable; logged)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("metrics.certificate_unreadable", certificate=str(path), error=type(exc).__name__)
        return None
    return cert.not_valid_after_utc


def use_multiprocess(directory: Path | None = None) -> Path:
    """Switch this process, and the processes it starts, to prometheus-client's multiprocess mode.

    Call before any figure is counted (``gateway serve`` does, before it builds the gateway).
    ``directory``: ``PROMETHEUS_MULTIPROC_DIR`` if set (cleared of an earlier run's files), else
    a fresh temporary directory of this instance's own."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory is None and configured:
        directory = Path(configured)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # the worker's process inherits it
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return directory


def process_gone(pid: int) -> None:
    """A process that wrote figures has exited (the worker's, before a restart): its live gauges
    (the breakers) stop counting; its counters stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def breakers_open_everywhere() -> dict[str, bool] | None:
    """Each adapter's breaker, open (or half-open) in any live process: the worker's included.
    None outside multiprocess mode (then only this process's breakers are known)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return {
        sample.labels["upstream"]: sample.value >= 1
        for family in registry.collect()
        if family.name == "gateway_upstream_breaker_open"
        for sample in family.samples
    }


def exposition(own: CollectorRegistry) -> bytes:
    """The text exposition: the counted figures (of every process) and ``own`` collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
        return generate_latest(counted) + generate_latest(own)
    return generate_latest(REGISTRY) + generate_latest(own)


class MetricsServer:
    """The unauthenticated metrics port (``GATEWAY_METRICS_PORT``): ``GET /metrics`` only.

    For Prometheus on the region's monitoring network; bind it to an address only that
    network reaches. The figures carry no personal data."""

    def __init__(self, host: str, port: int, own: CollectorRegistry) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exposition(own)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every 15 s are not news

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics.serving", port=self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
