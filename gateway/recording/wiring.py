"""What the composition root asks of recording: wrap each adapter's HTTP client, and close.

``GATEWAY_RECORD=true``: every client gets a :class:`RecordingTransport` writing to the
gateway's database. ``GATEWAY_OFFLINE_RECORDING=FILE``: every client gets an
:class:`OfflineTransport` answering from that recording, and no outside system (nor mock) is
contacted. Offline wins when both are set: a replay is not recorded again.
"""

from __future__ import annotations

import httpx
import structlog
from sqlalchemy import Engine

from gateway.errors import ConfigurationError
from gateway.recording import fileformat
from gateway.recording.transport import OfflineTransport, RecordedAnswers, RecordingTransport, wrap_client
from gateway.settings import Settings
from gateway.store.recordings import Recorder

log = structlog.get_logger(__name__)

#: The base URL adapters get offline when none is configured (never contacted).
OFFLINE_URL = "http://offline.invalid"

#: The service names recorded, one per adapter (the ``service`` of an outbound line).
SERVICES = ("spar", "accounts", "mailbox", "journal")


class Instruments:
    def __init__(self, settings: Settings) -> None:
        self.recorder: Recorder | None = None
        self.answers: RecordedAnswers | None = None
        self._engine: Engine | None = None
        #: Offline: the mailbox addresses the recording's calls went to (its letters' operators).
        self.recorded_addresses: tuple[str, ...] = ()
        if settings.offline_recording is not None:
            try:
                recording = fileformat.read(settings.offline_recording)
            except fileformat.RecordingFormatError as exc:
                raise ConfigurationError(f"GATEWAY_OFFLINE_RECORDING: {exc}") from exc
            self.answers = RecordedAnswers(recording.outbound)
            # Where the recorded letters went: offline, a letter may go to the same addresses
            # (the allowlist of ServiceAdress, docs/mailbox.md); they are answered from the file.
            self.recorded_addresses = tuple(
                sorted(
                    {
                        str(line.get("url", ""))
                        for line in recording.outbound
                        if line.get("service") == "mailbox" and line.get("url")
                    }
                )
            )
            log.info("recording.offline", answers=len(self.answers), file=str(settings.offline_recording))
        elif settings.record:
            from gateway.store.db import make_engine

            self._engine = make_engine(settings.database_url(), pool_size=1)
            self.recorder = Recorder(self._engine)
            log.info("recording.on", retention_days=settings.record_retention_days)

    @property
    def offline(self) -> bool:
        return self.answers is not None

    def wrap(self, client: httpx.AsyncClient, service: str) -> httpx.AsyncClient:
        answers, recorder = self.answers, self.recorder
        if answers is not None:
            wrap_client(client, lambda _inner: OfflineTransport(answers, service))
        elif recorder is not None:
            wrap_client(client, lambda inner: RecordingTransport(inner, service, recorder))
        return client

    async def aclose(self) -> None:
        import asyncio

        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        if self._engine is not None:
            self._engine.dispose()
        if self.answers is not None and self.answers.misses:
            log.warning("recording.offline_misses", misses=len(self.answers.misses))
