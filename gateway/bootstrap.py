"""The composition root: builds the gateway from settings and runs it in one process.

One asyncio loop carries the HTTP API (uvicorn), the MLLP listener and the processing worker;
the inbox writer is one thread beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
import structlog
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway import mappings as mapping_tables
from gateway import metrics, tls
from gateway.accounts_adapter import AccountsClient
from gateway.api.console.settings import OidcSettings
from gateway.domain.accounts import AccountDirectory
from gateway.domain.documents import MailboxDirectory
from gateway.domain.mailbox import MailboxDelivery
from gateway.domain.notifications import Policy
from gateway.domain.register import PopulationRegister
from gateway.domain.sms import SmsSender
from gateway.errors import ConfigurationError, GatewayError
from gateway.gc_tuning import tune_for_serving
from gateway.journal_adapter.booking_service import JournalBookingService
from gateway.journal_adapter.booking_service import make_http_client as make_journal_http_client
from gateway.journal_adapter.booking_write import JournalBookingWriter
from gateway.mailbox_adapter import MailboxDeliveryClient, MailboxDirectoryClient
from gateway.mailbox_adapter import http_client as mailbox_http_client
from gateway.mappings import Mappings
from gateway.recording.wiring import OFFLINE_URL, Instruments
from gateway.self_service_mappings import load_self_service
from gateway.service.app_acks import AppAckSender
from gateway.service.intake import Intake, IntakeResult
from gateway.service.notifier import Notifier
from gateway.service.outbox import Outbox
from gateway.service.processing import Processor
from gateway.service.refresh import BookingSource
from gateway.service.self_service import SelfService
from gateway.settings import AdapterSettings, Settings
from gateway.sms_adapter import ElksSmsClient, SmsSettings
from gateway.spar_adapter import SparRegister
from gateway.spar_adapter import http_client as spar_http_client
from gateway.store import intake_journal, migrate
from gateway.store.db import make_engine
from gateway.store.inbox import Inbox
from gateway.worker_process import WorkerMode, WorkerProcess

if TYPE_CHECKING:  # the serving side only: the worker process never imports it
    from fastapi import FastAPI

    from gateway.dev import JournalBook, MockServices
    from gateway.journal_adapter.mllp import MllpServer
    from gateway.serving import OwnedServer

log = structlog.get_logger(__name__)


@dataclass
class Gateway:
    settings: Settings
    mappings: Mappings
    engine: Engine
    inbox: Inbox
    intake: Intake
    processor: Processor
    app: FastAPI
    mllp: MllpServer
    outside: Outside
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: The worker in its own OS process (``gateway serve``); None: a task on this loop.
    worker_process: WorkerProcess | None = None
    #: Delivers queued letters to the digital mailboxes; runs beside the processing worker.
    outbox: Outbox | None = None
    #: Enhanced mode's application ACKs to the senders; runs beside the processing worker.
    app_acks: AppAckSender | None = None
    #: Sends the planned SMS reminders and notices (gateway/service/notifier.py).
    notifier: Notifier | None = None
    http_port: int | None = None
    #: The unauthenticated metrics port, when GATEWAY_METRICS_PORT is set.
    metrics_server: metrics.MetricsServer | None = None
    _uvicorn: OwnedServer | None = None

    def _submit_mllp(self, raw: bytes, peer: str, done: Callable[[bytes | BaseException], None]) -> None:
        def answered(result: IntakeResult | BaseException) -> None:
            done(result if isinstance(result, BaseException) else result.ack)

        self.intake.submit(raw, transport="mllp", peer=peer, done=answered)

    async def run(self, http_socket: socket.socket | None = None, ready: asyncio.Event | None = None) -> None:
        """Serve until stop() is called (or the process gets SIGINT/SIGTERM through uvicorn)."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        if self.worker_process is not None:
            self.inbox.on_commit(self.worker_process.wake)
            worker = asyncio.create_task(self.worker_process.supervise(self.stop_event))
        else:
            self.inbox.on_commit(lambda: _call_soon(loop, wake.set))
            worker = asyncio.create_task(self.run_processor(self.stop_event, wake))
        tune_for_serving()
        sweeper = asyncio.create_task(self._sweep_self_service(self.stop_event))
        self.inbox.start()
        await self.mllp.start()
        if self.outside.mocks is not None:  # the simulated journal pushes its changes here
            self.outside.mocks.journal_pushes_to(self.mllp.host, self.mllp.port)
        if self.settings.metrics_port is not None:
            self.metrics_server = metrics.MetricsServer(
                self.settings.metrics_host, self.settings.metrics_port, self.app.state.metrics_registry
            ).start()
        if http_socket is None:
            http_socket = bind_socket(self.settings.http_host, self.settings.http_port)
        self.http_port = http_socket.getsockname()[1]
        import uvicorn

        from gateway.serving import OwnedServer

        # No "server: uvicorn" banner (gateway/api/headers.py).
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", server_header=False
        )
        self._uvicorn = OwnedServer(config)
        log.info(
            "gateway.started",
            http=f"http://{self.settings.http_host}:{self.http_port}",
            mllp=f"mllp://{self.mllp.host}:{self.mllp.port}",
            database=self.engine.url.render_as_string(hide_password=True),
        )
        server_task = asyncio.create_task(self._uvicorn.serve(sockets=[http_socket]))
        while not self._uvicorn.started and not server_task.done():
            await asyncio.sleep(0.01)
        if ready is not None:
            ready.set()
        stop_task = asyncio.create_task(self.stop_event.wait())
        try:
            await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stop_event.set()
            wake.set()  # the processing worker notices the stop now, not at its next poll
            self._uvicorn.request_exit()
            await self.mllp.stop()
            if self.metrics_server is not None:
                await asyncio.to_thread(self.metrics_server.stop)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server_task, 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker, 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sweeper, 10)
            stop_task.cancel()
            await asyncio.to_thread(self.inbox.stop)
            await asyncio.to_thread(self.app.state.audit.stop)  # writes what is queued
            await self.outside.aclose()
            log.info("gateway.stopped")

    async def _sweep_self_service(self, stop: asyncio.Event) -> None:
        """R-BK-11: every ``self_service_sweep_interval`` seconds, close the self-service commands
        a gateway stopped mid-call left pending, by asking the journal (``SelfService.resolve_stale``)."""
        service: SelfService | None = getattr(self.app.state, "self_service", None)
        interval = self.settings.self_service_sweep_interval
        if service is None or interval <= 0:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await service.resolve_stale()
            except (GatewayError, SQLAlchemyError) as exc:
                log.warning("self_service.sweep_failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def run_processor(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """The processing worker and the mailbox outbox until ``stop``, on this loop."""
        await _run_worker_parts(
            self.settings, self.processor, self.outbox, self.app_acks, self.notifier, stop, wake
        )

    def stop(self) -> None:
        self.stop_event.set()


async def _run_worker_parts(
    settings: Settings,
    processor: Processor,
    outbox: Outbox | None,
    app_acks: AppAckSender | None,
    notifier: Notifier | None,
    stop: asyncio.Event,
    wake: asyncio.Event,
) -> None:
    parts = [
        processor.run(
            stop,
            wake,
            poll_interval=settings.worker_poll_interval,
            timer_interval=settings.timer_interval,
            gather=settings.worker_gather,
        )
    ]
    if outbox is not None:
        parts.append(outbox.run(stop, asyncio.Event(), poll_interval=settings.worker_poll_interval))
    if app_acks is not None:
        parts.append(app_acks.run(stop, poll_interval=settings.worker_poll_interval))
    if notifier is not None:
        parts.append(notifier.run(stop, poll_interval=settings.worker_poll_interval))
    await asyncio.gather(*parts)


@dataclass
class Worker:
    """What processes: the worker, the mailbox outbox, the application ACKs and the SMS notifier,
    over the store and the outside systems. No HTTP and no MLLP (``gateway serve``'s worker
    process runs only this)."""

    settings: Settings
    mappings: Mappings
    engine: Engine
    outside: Outside
    processor: Processor
    outbox: Outbox | None
    app_acks: AppAckSender
    notifier: Notifier | None
    #: The SQLite intake journal beside the store (None on PostgreSQL), shared with the inbox.
    intake_journal: intake_journal.IntakeJournal | None = None
    #: The SMS reminders and notices as data (mappings/notifications.yaml), for the app too.
    notification_policy: Policy | None = None

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        await _run_worker_parts(
            self.settings, self.processor, self.outbox, self.app_acks, self.notifier, stop, wake
        )


def install_signal_handlers(gateway: Gateway) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.stop)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    loop.call_soon_threadsafe(fn)


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # asyncio only turns Nagle off on sockets it creates; uvicorn writes headers and body apart,
    # and without this every small response waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def build_worker(
    settings: Settings,
    *,
    register: PopulationRegister | None = None,
    accounts: AccountDirectory | None = None,
    mailbox: MailboxDirectory | None = None,
    mailbox_delivery: MailboxDelivery | None = None,
    journal: BookingSource | None = None,
    journal_book: JournalBook | None = None,
    clock: Callable[[], datetime] | None = None,
    sms: SmsSender | None = None,
    adapters: AdapterSettings | None = None,
) -> Worker:
    """The processing side alone, from settings: what the worker process runs (no HTTP, no MLLP).
    Tests may pass their own adapters for the ports, their settings (``adapters``; none: from
    the environment), and a clock for the timers."""
    adapters = adapters if adapters is not None else AdapterSettings()
    mappings = mapping_tables.load(settings.mappings_dir)
    notification_policy = mapping_tables.load_notifications(settings.mappings_dir)
    outside = connect_outside(
        settings,
        register=register,
        accounts=accounts,
        mailbox=mailbox,
        mailbox_delivery=mailbox_delivery,
        journal=journal,
        journal_book=journal_book,
        mappings=mappings,
        sms=sms,
        adapters=adapters,
    )
    engine = make_engine(settings.database_url())
    migrate.upgrade(engine)
    # SQLite: the inbox writes its own file, so ACKs do not wait for the worker's transactions.
    intake_file = intake_journal.beside(engine)
    processor = Processor(
        engine,
        mappings,
        outside.register,
        accounts=outside.accounts,
        mailbox=outside.mailbox,
        units=settings.unit_rules,
        batch_size=settings.worker_batch,
        booking_wait=settings.kallelse_booking_wait,
        journal=intake_file,
        notifications=notification_policy,
        **({"clock": clock} if clock is not None else {}),
    )
    outbox = None
    if outside.mailbox_delivery is not None:
        outbox = Outbox(
            engine,
            outside.mailbox_delivery,
            mappings,
            batch_size=settings.outbox_batch,
            concurrency=settings.outbox_concurrency,
            max_attempts=settings.outbox_max_attempts,
            backoff_initial=settings.outbox_backoff_initial,
            backoff_max=settings.outbox_backoff_max,
            claim_seconds=settings.outbox_claim_seconds,
        )
        if clock is not None:
            outbox.clock = clock
    app_acks = AppAckSender(
        engine,
        mappings,
        settings.hl7_app_ack_endpoints,
        sender=(settings.ack_application, settings.ack_facility),
    )
    if clock is not None:
        app_acks.clock = clock
    notifier = None
    if outside.sms is not None:
        sms_config = adapters.sms
        notifier = Notifier(
            engine,
            outside.sms,
            outside.accounts,
            notification_policy,
            mappings,
            sender=sms_config.sender,
            batch_size=sms_config.batch_size,
            max_attempts=sms_config.max_attempts,
            backoff_initial=sms_config.backoff_initial,
            backoff_max=sms_config.backoff_max,
            claim_seconds=sms_config.claim_seconds,
            **({"clock": clock} if clock is not None else {}),
        )
    return Worker(
        settings=settings,
        mappings=mappings,
        engine=engine,
        outside=outside,
        processor=processor,
        outbox=outbox,
        app_acks=app_acks,
        notifier=notifier,
        intake_journal=intake_file,
        notification_policy=notification_policy,
    )


def build(
    settings: Settings,
    *,
    register: PopulationRegister | None = None,
    accounts: AccountDirectory | None = None,
    mailbox: MailboxDirectory | None = None,
    mailbox_delivery: MailboxDelivery | None = None,
    journal: BookingSource | None = None,
    journal_book: JournalBook | None = None,
    clock: Callable[[], datetime] | None = None,
    worker: WorkerMode = "inline",
    worker_register: str | None = None,
    sms: SmsSender | None = None,
    adapters: AdapterSettings | None = None,
) -> Gateway:
    """Build the gateway from settings and the outside systems' settings (``adapters``; none:
    from the environment); tests may pass their own adapters for the ports, and a clock for the
    worker (its timers, e.g. the 48-hour rule)."""
    adapters = adapters if adapters is not None else AdapterSettings()
    worker_parts = build_worker(
        settings,
        register=register,
        accounts=accounts,
        mailbox=mailbox,
        mailbox_delivery=mailbox_delivery,
        journal=journal,
        journal_book=journal_book,
        clock=clock,
        sms=sms,
        adapters=adapters,
    )
    mappings, engine, outside = worker_parts.mappings, worker_parts.engine, worker_parts.outside
    inbox = Inbox(engine, journal=worker_parts.intake_journal)
    intake = Intake(
        mappings,
        inbox,
        sender=(settings.ack_application, settings.ack_facility),
        allowed_senders=settings.mllp_allowed_senders,
    )
    processor = worker_parts.processor
    outbox, app_acks, notifier = worker_parts.outbox, worker_parts.app_acks, worker_parts.notifier
    from gateway.api.app import create_app  # the HTTP side: not in the worker process
    from gateway.journal_adapter.mllp import MllpServer

    app = create_app(
        settings,
        engine,
        intake,
        mappings=mappings,
        register=outside.register,
        accounts=outside.accounts,
        journal_service=outside.journal,
        mailbox=outside.mailbox,
        notifications=worker_parts.notification_policy,
        **({"clock": clock} if clock is not None else {}),
    )
    app.state.self_service = self_service_for(settings, engine, outside, mappings, intake)
    if outside.oidc is not None:
        mount_console(app, outside, adapters)
    worker_process = None
    if worker == "process":
        # The child builds its own adapters; it uses our built-in mocks, not mocks of its own.
        env = outside.fallback.env() if outside.fallback is not None else {}
        worker_process = WorkerProcess(settings, register_factory=worker_register, env=env)

    gw = Gateway(
        settings=settings,
        notifier=notifier,
        worker_process=worker_process,
        app_acks=app_acks,
        mappings=mappings,
        engine=engine,
        inbox=inbox,
        intake=intake,
        processor=processor,
        outbox=outbox,
        app=app,
        outside=outside,
        mllp=MllpServer(
            submit=lambda raw, peer, done: gw._submit_mllp(raw, peer, done),
            host=settings.mllp_host,
            port=settings.mllp_port,
            idle_timeout=settings.mllp_idle_timeout,
            read_timeout=settings.mllp_read_timeout,
            max_message_bytes=settings.max_message_bytes,
            max_connections=settings.mllp_max_connections,
            tls=mllp_tls_context(settings),
        ),
    )
    return gw


def _sms_client(
    settings: SmsSettings,
    mocks: Fallback | None,
    http_client: Callable[[], httpx.AsyncClient],
) -> SmsSender | None:
    """The SMS adapter from its settings; no URL: the built-in mock (no credentials needed).

    With the mocks off (or a replay offline) and no URL there is no provider: notifications
    are still planned, and staff see them, but none is sent; the start-up log says so.
    """
    if settings.url is None:
        if mocks is None:
            log.warning("sms.off", reason="GATEWAY_SMS_URL is not set and the built-in mocks are off")
            return None
        settings = settings.model_copy(update={"url": mocks.url("sms")})
    else:
        try:
            settings.require_credentials()
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    return ElksSmsClient(settings, http_client())


def mllp_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the MLLP port when ``GATEWAY_MLLP_TLS_CERT`` is set, client certificates required
    when ``GATEWAY_MLLP_TLS_CLIENT_CA`` is."""
    if settings.mllp_tls_cert is None:
        return None
    key = str(settings.mllp_tls_key) if settings.mllp_tls_key else None
    ca = str(settings.mllp_tls_client_ca) if settings.mllp_tls_client_ca else None
    from gateway.journal_adapter.mllp import server_tls_context

    try:
        return server_tls_context(str(settings.mllp_tls_cert), key, ca)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(f"MLLP TLS certificate, key or client CA cannot be used: {exc}") from exc


def mount_console(app: FastAPI, outside: Outside, adapters: AdapterSettings) -> None:
    """The staff console under /console, signing in with the configured identity provider."""
    from gateway.api.console.app import create_console
    from gateway.api.console.oidc import OidcClient

    assert outside.oidc is not None
    http = httpx.AsyncClient(verify=tls.system_trust())
    outside.clients.append(http)
    app.mount("/console", create_console(app.state, adapters.console, OidcClient(outside.oidc, http)))


@dataclass
class Outside:
    """The adapters to outside systems, the HTTP clients they own, and the embedded mocks."""

    register: PopulationRegister
    accounts: AccountDirectory
    mailbox: MailboxDirectory
    journal: BookingSource
    #: Delivery to digital mailboxes (Mina meddelanden deliverSecure), for the outbox.
    mailbox_delivery: MailboxDelivery | None = None
    #: The SMS provider (R-NOT-3), for the notifier.
    sms: SmsSender | None = None
    #: What serves the systems with no URL: the built-in mocks or a replay (:func:`fallback_for`).
    fallback: Fallback | None = None
    #: The console's identity provider; None: no console (turned off, or no provider).
    oidc: OidcSettings | None = None
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            await close()
        for client in self.clients:
            await client.aclose()
        if self.fallback is not None:
            await asyncio.to_thread(self.fallback.stop)

    @property
    def mocks(self) -> MockServices | None:
        """The built-in mocks' server, when they serve something (development and tests)."""
        return self.fallback.services if self.fallback is not None else None


class Fallback(Protocol):
    """What serves an outside system whose URL is not set (:func:`fallback_for`)."""

    #: Whether it answers live (the mocks); a replay answers from the recording only, so the
    #: SMS provider and the console's identity provider stay off.
    serves_live: bool
    journal_units: tuple[str, ...]
    oidc_secret: str

    @property
    def services(self) -> MockServices | None: ...
    def url(self, system: str) -> str: ...
    def base_url(self) -> str: ...
    def env(self) -> dict[str, str]: ...
    def stop(self) -> None: ...


def fallback_for(
    settings: Settings, *, offline: bool, journal_book: JournalBook | None = None
) -> Fallback | None:
    """The one decision about a system with no URL.

    A replay offline answers it from the recording; with ``GATEWAY_MOCKS`` on (development, the
    demo, tests) the built-in mocks serve it; otherwise its missing URL is a configuration error.
    Only the first two import the development wiring (``gateway/dev.py``, the mocks).
    """
    if not offline and not settings.mocks:
        return None
    from gateway import dev  # development and replay only: production never loads the mocks

    if offline:
        return dev.Offline(OFFLINE_URL)
    return dev.BuiltInMocks(settings, journal_book)


def self_service_for(
    settings: Settings, engine: Engine, outside: Outside, mappings: Mappings, intake: Intake | None = None
) -> SelfService | None:
    """Citizen self-service (issue 21) when the journal is the XChange service; else none."""
    if not isinstance(outside.journal, JournalBookingService):
        return None
    return SelfService(
        engine,
        JournalBookingWriter(outside.journal),
        outside.accounts,
        outside.register,
        load_self_service(settings.mappings_dir),
        mappings.time_type_visible,
        namespace=outside.journal.namespace,
        in_flight=timedelta(seconds=settings.self_service_in_flight),
        intake=intake,
        mappings=mappings,
        facility=outside.journal.facility,
    )


def connect_outside(
    settings: Settings,
    *,
    register: PopulationRegister | None = None,
    accounts: AccountDirectory | None = None,
    mailbox: MailboxDirectory | None = None,
    journal: BookingSource | None = None,
    journal_book: JournalBook | None = None,
    mailbox_delivery: MailboxDelivery | None = None,
    mappings: Mappings | None = None,
    sms: SmsSender | None = None,
    adapters: AdapterSettings | None = None,
) -> Outside:
    """Build each adapter from its own settings (``adapters``; none: from the environment); a
    system with no URL gets its built-in mock.

    Tests pass their own adapters for the ports they replace.
    """
    adapters = adapters if adapters is not None else AdapterSettings()
    clients: list[httpx.AsyncClient] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    # Record and replay (docs/recording.md): each client below is wrapped by service name.
    instruments = Instruments(settings)
    fallback = fallback_for(settings, offline=instruments.offline, journal_book=journal_book)

    def mock_url(missing: str, system: str) -> str:
        if fallback is None:
            raise ConfigurationError(f"{missing} is not set and the built-in mocks are off (GATEWAY_MOCKS)")
        return fallback.url(system)

    def instrumented(client: httpx.AsyncClient, service: str) -> httpx.AsyncClient:
        """Recorded or answered offline (docs/recording.md), and counted (gateway/metrics.py)."""
        return metrics.meter_client(instruments.wrap(client, service), service)

    def http_client() -> httpx.AsyncClient:
        client = httpx.AsyncClient(verify=tls.system_trust())
        clients.append(client)
        return client

    try:
        if accounts is None:
            accounts_settings = adapters.accounts
            if accounts_settings.url is None:
                url = mock_url("GATEWAY_ACCOUNTS_URL", "accounts")
                accounts_settings = accounts_settings.model_copy(update={"url": url})
            accounts = AccountsClient(accounts_settings, instrumented(http_client(), "accounts"))
        if register is None:
            spar_settings = adapters.spar
            if "url" not in spar_settings.model_fields_set:  # GATEWAY_SPAR_URL not given
                url = mock_url("GATEWAY_SPAR_URL", "spar")
                spar_settings = spar_settings.model_copy(update={"url": url})
            spar_client = instrumented(spar_http_client(spar_settings), "spar")
            clients.append(spar_client)
            register = SparRegister(spar_settings, client=spar_client)
        if mailbox is None or mailbox_delivery is None:
            mailbox_settings = adapters.mailbox
            if mailbox_settings.url is None:
                url = mock_url("GATEWAY_MAILBOX_URL", "mailbox")
                base = fallback.base_url() if fallback is not None else url
                # The mock's operators answer under its own address: allow it for every supplier
                # (offline: the addresses the recording's letters went to).
                here = [f"{base}/mailbox/", *instruments.recorded_addresses]
                addresses = mailbox_settings.service_addresses | {"*": here}
                mailbox_settings = mailbox_settings.model_copy(
                    update={"url": url, "service_addresses": addresses}
                )
            mailbox_http = instrumented(mailbox_http_client(mailbox_settings), "mailbox")
            operators_http = mailbox_http_client(mailbox_settings, operators=True)
            operators_http = instrumented(operators_http, "mailbox")
            clients += [mailbox_http, operators_http]
            directory = MailboxDirectoryClient(mailbox_settings, client=mailbox_http)
            mailbox = mailbox if mailbox is not None else directory
            if mailbox_delivery is None:
                mailbox_delivery = MailboxDeliveryClient(
                    mailbox_settings, directory=directory, client=operators_http
                )
        if journal is None:
            journal_settings = adapters.journal
            if journal_settings.url is None:
                url = mock_url("GATEWAY_JOURNAL_WS_URL", "journal")
                # The simulated journal's units, so "Uppdatera nu" without a unit asks them all.
                units = journal_settings.care_units or list(fallback.journal_units if fallback else ())
                journal_settings = journal_settings.model_copy(update={"url": url, "care_units": units})
            journal_http = instrumented(make_journal_http_client(journal_settings), "journal")
            clients.append(journal_http)
            tables = mappings if mappings is not None else mapping_tables.load(settings.mappings_dir)
            service = JournalBookingService(
                journal_settings,
                journal_http,
                time_type_ids=tables.journal_time_type_ids(journal_settings.instance),
            )
            closers.append(service.aclose)
            journal = service
        if sms is None:
            sms = _sms_client(
                adapters.sms,
                fallback if fallback is not None and fallback.serves_live else None,
                lambda: metrics.meter_client(http_client(), "sms"),  # counted like every upstream
            )
        oidc: OidcSettings | None = None
        if adapters.console.enabled:
            oidc = adapters.oidc
            if oidc.issuer is None and fallback is not None and fallback.serves_live:
                url = fallback.url("oidc")
                oidc = oidc.model_copy(
                    update={"issuer": url, "client_secret": SecretStr(fallback.oidc_secret)}
                )
            elif oidc.issuer is None:
                log.warning("console.off", hint="GATEWAY_OIDC_ISSUER is not set and the mocks are off")
                oidc = None
            elif oidc.client_secret is None:
                raise ConfigurationError("GATEWAY_OIDC_CLIENT_SECRET must be set with GATEWAY_OIDC_ISSUER")
    except Exception:
        if fallback is not None:
            fallback.stop()
        raise
    closers.append(instruments.aclose)  # last: calls still in flight are written
    return Outside(
        register=register,
        accounts=accounts,
        mailbox=mailbox,
        journal=journal,
        mailbox_delivery=mailbox_delivery,
        sms=sms,
        fallback=fallback,
        oidc=oidc,
        clients=clients,
        closers=closers,
    )
