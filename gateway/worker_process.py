"""The processing worker in its own OS process: the default for ``gateway serve``.

The worker (``gateway/service/processing.py``) is CPU-heavy Python (parse again, FHIR resources,
validation, hashing). In the serving process it shares the GIL with the MLLP loop and the inbox
writer, and every ACK waited behind it (``bench/README.md``, finding 2). Here it runs in a
spawned child that builds its own engine and adapters from the same settings
(``bootstrap.build_worker``, the same parts ``bootstrap.build`` runs in-process), and is woken through
a pipe after every inbox commit with new work, as the in-process worker is woken by an event.

* The child stops when the parent closes the pipe (``stop()``) or dies (end of file on the
  pipe), so no orphan keeps processing; SIGINT is ignored in the child (a Ctrl-C reaches the
  whole process group; the parent decides when to stop) and SIGTERM stops it.
* If the child exits on its own, :meth:`WorkerProcess.supervise` starts a new one, backing off
  while it keeps failing. Stored messages wait meanwhile; nothing is lost (the raw message is
  the truth and processing is idempotent).
* Several workers coordinate as several instances do (``gateway/store/lease.py``).
* The built-in mocks run in the parent only: the child is pointed at them through the
  adapters' URL variables, so a tester's switch on a mock (the SPAR outage) reaches the worker.
* ``register_factory`` (``"module:callable"``) replaces the population register in the child,
  as tests and benchmarks pass their own register in-process (``bench/README.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal

import structlog

from gateway.settings import AdapterSettings, Settings

log = structlog.get_logger(__name__)

#: Where the processing worker runs: ``process`` (its own OS process, ``gateway serve``'s
#: default), ``inline`` (a task on the serving loop: tests, the demo, ``GatewayThread``).
WorkerMode = Literal["process", "inline"]
WORKER_MODES: tuple[WorkerMode, ...] = ("process", "inline")


class WorkerProcess:
    """Starts, wakes, supervises and stops the worker's process (from the serving process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        register_factory: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.register_factory = register_factory
        self.env = dict(env or {})
        self._ctx = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._wake_fd: int | None = None
        self._wake_conn: Connection | None = None
        # Shared with the child: 1 once it has cleared its wake event to look for work again.
        self._armed: Any = None
        self._ready: Any = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        self._ready = self._ctx.Event()
        armed = self._ctx.Value("b", 1, lock=False)
        # Never more than the settings, the factory path, the extra variables and the pipe's end.
        settings = self.settings.model_copy(update={"mocks_port": 0})  # a leftover mock: any port
        process = self._ctx.Process(
            target=_child_main,
            args=(settings, reader, armed, self._ready, self.register_factory, self.env),
            name="gateway-worker",
            daemon=True,
        )
        process.start()
        reader.close()  # the child has its own copy; ours would hide the parent's end of file
        os.set_blocking(writer.fileno(), False)
        self._process, self._wake_conn, self._wake_fd = process, writer, writer.fileno()
        self._armed = armed
        self.starts += 1
        log.info("worker.process_started", pid=process.pid)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the child has built its parts and is about to look for work."""
        return self._ready is not None and bool(self._ready.wait(timeout))

    def wake(self) -> None:
        """Tell the worker there is new work (from the inbox writer thread; never blocks).

        At most once each time the worker looks for work: it arms the flag when it clears its
        wake event (before it claims), and the first commit after that disarms it and writes.
        A commit before the arming is seen by the claim that follows it. So a busy worker is
        not woken by every inbox commit (hundreds a second), only a waiting one at once."""
        fd, armed = self._wake_fd, self._armed
        if fd is None or armed is None or not armed.value:
            return
        armed.value = 0
        with contextlib.suppress(OSError):  # pipe full: a wake is pending anyway; or it is gone
            os.write(fd, b"w")

    def stop(self, timeout: float = 8.0) -> None:
        """Close the pipe (the child finishes its batch and exits); terminate it if it will not."""
        conn, self._wake_conn, self._wake_fd = self._wake_conn, None, None
        if conn is not None:
            conn.close()
        process, self._process = self._process, None
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            log.warning("worker.process_terminated", pid=process.pid)
            process.terminate()
            process.join(5)
        if process.pid is not None:
            from gateway.metrics import process_gone

            process_gone(process.pid)
        process.close()

    async def supervise(self, stop: asyncio.Event, *, check_every: float = 1.0) -> None:
        """Keep a worker process running until ``stop`` is set, then stop it."""
        backoff = 1.0
        try:
            if not self.alive:
                self.start()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_every)
                if stop.is_set() or self.alive:
                    continue
                exitcode = self._process.exitcode if self._process is not None else None
                log.error("worker.process_exited", exitcode=exitcode, restart_in=backoff)
                await asyncio.to_thread(self.stop, 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                if not stop.is_set():
                    self.start()
                    backoff = min(backoff * 2, 60.0)
        finally:
            await asyncio.to_thread(self.stop)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _child_main(
    settings: Settings,
    wake: Connection,
    armed: Any,
    ready: Any,
    register_factory: str | None,
    env: dict[str, str],
) -> None:
    """The worker process: build only the processing side from settings and run it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    from gateway import logging as gw_logging
    from gateway.bootstrap import build_worker
    from gateway.gc_tuning import tune_for_serving

    gw_logging.configure(settings.log_format, settings.log_level)
    register = _load(register_factory)() if register_factory else None
    # Its own tree, from its own environment (the parent's, plus the mocks' URLs in ``env``).
    worker = build_worker(settings, register=register, adapters=AdapterSettings())
    tune_for_serving()
    ready.set()
    try:
        asyncio.run(_child_run(worker, wake, armed))
    finally:
        worker.engine.dispose()


class _ArmedWake(asyncio.Event):
    """The worker's wake event: clearing it (the worker is about to look for work) arms the
    parent's next wake (WorkerProcess.wake)."""

    def __init__(self, armed: Any) -> None:
        super().__init__()
        self._armed = armed

    def clear(self) -> None:
        super().clear()
        self._armed.value = 1


async def _child_run(worker: Any, wake_conn: Connection, armed: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    wake = _ArmedWake(armed)
    fd = wake_conn.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the parent closed its end or is gone
            loop.remove_reader(fd)
            stop.set()
        wake.set()

    loop.add_reader(fd, readable)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    log.info("worker.process_ready", pid=os.getpid())
    try:
        await worker.run(stop, wake)
    finally:
        await worker.outside.aclose()
        log.info("worker.process_stopped", pid=os.getpid())
