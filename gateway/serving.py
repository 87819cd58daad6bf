"""uvicorn as the gateway and its development mocks run it: started and stopped by their owner.

uvicorn's own loop polls ``should_exit`` every 0.1 s and installs signal handlers; the gateway
stops all its parts together on one signal (``bootstrap.install_signal_handlers``), and a stop
asked for is noticed at once, so a restart, a test or the demo does not wait on a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn

__all__ = ["OwnedServer"]


class OwnedServer(uvicorn.Server):
    """A uvicorn server without signal handling whose :meth:`request_exit` is noticed at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def request_exit(self) -> None:
        """Stop serving; callable from any thread."""
        self.should_exit = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it has stopped
                loop.call_soon_threadsafe(self._exit.set)

    async def main_loop(self) -> None:
        # uvicorn's loop, with the 0.1 s sleep replaced by a wait a stop request ends.
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 0.1)
            should_exit = await self.on_tick(counter)
