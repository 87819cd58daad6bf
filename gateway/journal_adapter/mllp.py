"""MLLP (Minimal Lower Layer Protocol): ``0x0B message 0x1C 0x0D`` over TCP, optionally TLS.

The server takes several messages per connection, messages split across reads, up to
``max_connections`` concurrent connections (more are accepted and closed at once), closes idle
connections and connections on which a frame is not completed within ``read_timeout`` (slow
senders), refuses oversized frames, and, given an ``ssl.SSLContext``, speaks TLS (with client
certificates when the context requires them). Messages on one connection are handled in order
(each ACK before the next message is read), as MLLP senders expect. What each bad input gets
back: ``docs/hl7-profile.md`` section 1.3. The client is used by the simulated journal, the
benchmarks and replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
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
    """Accumulates bytes and yields complete MLLP frames; bytes outside a frame are dropped, and
    so is an unfinished frame when a new one starts (a 0x0B inside a frame)."""

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
                    restart = self._buf.rfind(START, 1)
                    if restart > 0:  # an unfinished frame, then a new one: only the new one counts
                        del self._buf[:restart]
                        continue
                    raise FrameTooLarge(f"frame larger than {self._max} bytes")
                return frames
            restart = self._buf.rfind(START, 1, end)
            if restart > 0:
                # A start inside a frame: the frame before it never ended and is dropped.
                del self._buf[:restart]
                end -= restart
            if end - 1 > self._max:
                # A frame that arrived whole in one read is held to the same limit.
                raise FrameTooLarge(f"frame larger than {self._max} bytes")
            frames.append(bytes(self._buf[1:end]))
            del self._buf[: end + 2]

    @property
    def in_frame(self) -> bool:
        """A frame has started (0x0B seen) and not ended yet."""
        return bool(self._buf)


Handler = Callable[[bytes, str], Awaitable[bytes]]


@dataclass
class MllpServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 2575
    #: Seconds a connection may wait between frames (no frame started) before it is closed.
    idle_timeout: float = 300.0
    #: Seconds a started frame (and a TLS handshake, and a stalled ACK write) may take.
    read_timeout: float = 30.0
    max_message_bytes: int = 1_048_576
    #: Connections served at once; one more is accepted and closed at once.
    max_connections: int = 512
    #: TLS for every connection when set (``server_tls_context``); None: plain TCP.
    tls: ssl.SSLContext | None = None
    _server: asyncio.Server | None = None
    _active: int = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        paused = self.tls is not None

        def connection() -> _Protocol:
            return _Protocol(asyncio.StreamReader(limit=2**20, loop=loop), self._accept, paused=paused)

        self._server = await loop.create_server(connection, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info(
            "mllp.listening",
            host=self.host,
            port=self.port,
            tls=self.tls is not None,
            client_certificates=self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED,
            max_connections=self.max_connections,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    @property
    def active_connections(self) -> int:
        return self._active

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        if self._active >= self.max_connections:
            # Refused before any TLS work: the sender sees the connection closed without an ACK
            # and sends again later (docs/hl7-profile.md 1.3); the connections served go on.
            log.warning("mllp.connection_refused", peer=peer, limit=self.max_connections)
            writer.transport.abort()
            return
        self._active += 1
        try:
            if self.tls is not None:
                try:
                    await writer.start_tls(self.tls, ssl_handshake_timeout=self.read_timeout)
                except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                    log.warning("mllp.tls_refused", peer=peer, reason=_tls_reason(exc))
                    writer.transport.abort()
                    return
                log.info("mllp.tls_connected", peer=peer, **_certificate_subject(writer))
            await self._serve(reader, writer, peer)
        finally:
            self._active -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        frames = FrameReader(self.max_message_bytes)
        loop = asyncio.get_running_loop()
        # Between frames the idle deadline runs from the last ACK (bytes outside a frame do not
        # keep a connection open). Once a frame starts it must end within read_timeout, and
        # nothing at all arriving for idle_timeout ends it too.
        idle_deadline = loop.time() + self.idle_timeout
        frame_deadline = 0.0
        in_frame = False
        try:
            while True:
                deadline = min(frame_deadline, loop.time() + self.idle_timeout) if in_frame else idle_deadline
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(65536)
                except TimeoutError:
                    if in_frame and loop.time() >= frame_deadline:
                        log.warning("mllp.read_timeout", peer=peer, seconds=self.read_timeout)
                    else:
                        log.info("mllp.idle_timeout", peer=peer)
                    return
                if not data:
                    return
                try:
                    complete = frames.feed(data)
                except FrameTooLarge as exc:
                    log.warning("mllp.frame_too_large", peer=peer, limit=self.max_message_bytes)
                    writer.write(frame(_too_large_nack(str(exc))))
                    await self._drain(writer, peer)
                    return
                for message in complete:
                    ack = await self.handler(message, peer)
                    writer.write(frame(ack))
                if complete:
                    now = loop.time()
                    idle_deadline = now + self.idle_timeout
                    in_frame = frames.in_frame
                    frame_deadline = now + self.read_timeout
                elif not in_frame and frames.in_frame:
                    in_frame = True
                    frame_deadline = loop.time() + self.read_timeout
                if complete:
                    if writer.transport.get_write_buffer_size():  # the sender is behind: bound it
                        if not await self._drain(writer, peer):
                            return
                    else:
                        await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        except Exception:  # a fault of ours: this connection ends, the others go on
            log.exception("mllp.connection_failed", peer=peer)
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _drain(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Send the ACKs written; False when the sender has not read them within read_timeout."""
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer.drain()
        except TimeoutError:
            log.warning("mllp.write_timeout", peer=peer, seconds=self.read_timeout)
            writer.transport.abort()
            return False
        return True


class _Protocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol; for TLS, reading waits for the handshake, so no byte of the
    client's hello can reach the plain stream before ``start_tls`` takes the connection over."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        *,
        paused: bool,
    ) -> None:
        super().__init__(reader, accept)
        self._paused_at_start = paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._paused_at_start and isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()  # start_tls resumes it under TLS
        super().connection_made(transport)


def server_tls_context(cert: str, key: str | None = None, client_ca: str | None = None) -> ssl.SSLContext:
    """The MLLP server's TLS context: its certificate and key, and, with ``client_ca``, client
    certificates required and verified against that CA (mutual TLS). TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


#: Subject attributes logged for a client certificate: the system and its organisation. Not
#: serialNumber or emailAddress, which in a personal certificate can name a person.
_LOGGED_SUBJECT = {
    "commonName": "cn",
    "organizationName": "o",
    "organizationalUnitName": "ou",
    "countryName": "c",
}


def _certificate_subject(writer: asyncio.StreamWriter) -> dict[str, str]:
    cert = writer.get_extra_info("peercert")
    if not cert:
        return {"client_certificate": "none"}
    return {"client_subject": _name(cert.get("subject", ())), "client_issuer": _name(cert.get("issuer", ()))}


def _name(rdns: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    return ",".join(
        f"{_LOGGED_SUBJECT[name]}={value}" for rdn in rdns for name, value in rdn if name in _LOGGED_SUBJECT
    )


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or type(exc).__name__
    return type(exc).__name__


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
