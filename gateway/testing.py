"""Harnesses for tests, benchmarks and the demo: a whole gateway in a background thread.

Not used by ``gateway serve``: production runs :meth:`gateway.bootstrap.Gateway.run` on the main
thread's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.bootstrap import bind_socket, build
from gateway.domain.accounts import AccountDirectory
from gateway.domain.documents import MailboxDirectory
from gateway.domain.mailbox import MailboxDelivery
from gateway.domain.register import PopulationRegister
from gateway.service.refresh import BookingSource
from gateway.settings import AdapterSettings, Settings
from gateway.worker_process import WorkerMode

if TYPE_CHECKING:
    from gateway.dev import JournalBook

__all__ = ["GatewayThread"]


class GatewayThread:
    """Runs a whole gateway in a background thread with its own loop (demo, tests, benchmarks)."""

    def __init__(
        self,
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
        adapters: AdapterSettings | None = None,
    ) -> None:
        self.gateway = build(
            settings,
            register=register,
            accounts=accounts,
            mailbox=mailbox,
            mailbox_delivery=mailbox_delivery,
            journal=journal,
            journal_book=journal_book,
            clock=clock,
            worker=worker,
            worker_register=worker_register,
            adapters=adapters if adapters is not None else AdapterSettings(),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> GatewayThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        started = threading.Event()
        sock = bind_socket(self.gateway.settings.http_host, self.gateway.settings.http_port)

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            ready = asyncio.Event()

            async def run() -> None:
                task = asyncio.create_task(self.gateway.run(http_socket=sock, ready=ready))
                waiter = asyncio.create_task(ready.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                started.set()
                await task

            try:
                loop.run_until_complete(run())
            except BaseException as exc:  # surfaced by start()/stop()
                self._error = exc
                started.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="gateway", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or self._error is not None:
            raise RuntimeError("gateway did not start") from self._error

    @property
    def http_url(self) -> str:
        return f"http://{self.gateway.settings.http_host}:{self.gateway.http_port}"

    @property
    def mllp_address(self) -> tuple[str, int]:
        return self.gateway.mllp.host, self.gateway.mllp.port

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.gateway.stop_event.set)
            self._thread.join(timeout=30)
        self.gateway.engine.dispose()
