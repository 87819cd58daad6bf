"""MLLP (Minimal Lower Layer Protocol): ``0x0B message 0x1C 0x0D`` over TCP.

The server takes several messages per connection, messages split across reads, any number of
concurrent connections, closes idle connections, and refuses oversized frames. Messages on one
connection are handled in order (each ACK before the next message is read), as MLLP senders
expect. The client is used by the simulated journal, the benchmarks and replay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

START = b"\x0b"
END = b"\x1c\x0d"


def frame(message: bytes) -> bytes:
    return START + message + END


class FrameTooLarge(Exception):
    pass


class FrameReader:
    """Accumulates bytes and yields complete MLLP frames; bytes outside a frame are dropped."""

    def __init__(self, max_bytes: int) -> None:
        self._buf = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while True:
            start = self._buf.find(START)
            if start < 0:
                self._buf.clear()
                return frames
            if start > 0:
                del self._buf[:start]
            end = self._buf.find(END, 1)
            if end < 0:
                # START + the content so far + perhaps the 0x1C of an END split across reads.
                if len(self._buf) > self._max + 2:
                    raise FrameTooLarge(f"frame larger than {self._max} bytes")
                return frames
            if end - 1 > self._max:
                # A frame that arrived whole in one read is held to the same limit.
                raise FrameTooLarge(f"frame larger than {self._max} bytes")
            frames.append(bytes(self._buf[1:end]))
            del self._buf[: end + 2]


Handler = Callable[[bytes, str], Awaitable[bytes]]


@dataclass
class MllpServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 2575
    idle_timeout: float = 300.0
    max_message_bytes: int = 1_048_576
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=2**20)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("mllp.listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        frames = FrameReader(self.max_message_bytes)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.idle_timeout)
                except TimeoutError:
                    log.info("mllp.idle_timeout", peer=peer)
                    return
                if not data:
                    return
                try:
                    complete = frames.feed(data)
                except FrameTooLarge as exc:
                    log.warning("mllp.frame_too_large", peer=peer, limit=self.max_message_bytes)
                    writer.write(frame(_too_large_nack(str(exc))))
                    await writer.drain()
                    return
                for message in complete:
                    ack = await self.handler(message, peer)
                    writer.write(frame(ack))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _too_large_nack(reason: str) -> bytes:
    # The message was never read whole, so its MSH cannot be echoed.
    return f"MSH|^~\\&|GATEWAY||||||ACK|TOOLARGE|P|2.5.1\rMSA|AR||{reason}\r".encode("ascii")


class MllpClient:
    """A simple MLLP client: send one message, wait for its ACK."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._frames = FrameReader(64 * 2**20)
        self._pending: list[bytes] = []

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None

    async def send(self, message: bytes) -> bytes:
        assert self._writer is not None and self._reader is not None, "connect() first"
        self._writer.write(frame(message))
        await self._writer.drain()
        return await self.receive()

    async def receive(self) -> bytes:
        assert self._reader is not None
        while not self._pending:
            data = await asyncio.wait_for(self._reader.read(65536), self.timeout)
            if not data:
                raise ConnectionError("connection closed before the ACK came")
            self._pending.extend(self._frames.feed(data))
        return self._pending.pop(0)
