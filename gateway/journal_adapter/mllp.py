"""MLLP (Minimal Lower Layer Protocol): ``0x0B message 0x1C 0x0D`` over TCP, optionally TLS.

The server takes several messages per connection, messages split across reads, up to
``max_connections`` concurrent connections (more are accepted and closed at once), closes idle
connections and connections on which a frame is not completed within ``read_timeout`` (slow
senders), refuses oversized frames, and, given an ``ssl.SSLContext``, speaks TLS (with client
certificates when the context requires them). Messages on one connection are handled in order
(each ACK written before the next message is handed over), as MLLP senders expect. What each bad input gets
back: ``docs/hl7-profile.md`` section 1.3. The client is used by the simulated journal, the
benchmarks and replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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


#: An MLLP message handler: the message and the peer in, the ACK out.
Handler = Callable[[bytes, str], Awaitable[bytes]]
#: The same without a coroutine: called with the message, the peer and a callback that it calls
#: (on the loop's thread) with the ACK, or with the exception that kept it from one.
Submit = Callable[[bytes, str, Callable[[bytes | BaseException], None]], None]


@dataclass
class MllpServer:
    """The listener. ``handler`` (a coroutine function) answers each message, or, when given,
    ``submit`` does without a coroutine per message (the gateway's intake)."""

    handler: Handler | None = None
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
    submit: Submit | None = None
    _server: asyncio.Server | None = None
    _active: int = 0
    _connections: set[_Connection] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.handler is None and self.submit is None:
            raise ValueError("an MLLP server needs a handler or a submit function")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self, loop), self.host, self.port)
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
            # A sender whose message is not acknowledged yet sends it again to the next instance.
            for connection in list(self._connections):
                connection.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    @property
    def active_connections(self) -> int:
        return self._active


class _TooLarge:
    """In a connection's queue: the frame after the ones before it was too large."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


#: Frames read ahead of the one being handled before reading pauses (a sender that does not
#: wait for its ACKs is held to this, as the kernel's buffers hold it beyond).
_READ_AHEAD = 64


class _Connection(asyncio.Protocol):
    """One MLLP connection, as a protocol rather than a stream and a task: at thousands of
    messages a second the stream machinery (a task, a read and a timeout context per message)
    cost more than the intake's own checks (bench/README.md).

    Messages are handled one at a time, in the order sent: the next is handed over only once
    the previous one's ACK is written. Deadlines (idle, frame, TLS handshake, stalled ACK write)
    are kept as numbers and checked by one timer, re-armed only when it fires early.
    """

    def __init__(self, server: MllpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.frames = FrameReader(server.max_message_bytes)
        self.queue: deque[bytes | _TooLarge] = deque()
        self.counted = False  # taken as one of the server's active connections
        self.ready = False  # plain TCP, or the TLS handshake done
        self.busy = False  # a message handed over, its ACK not written yet
        self.eof = False  # the sender has closed its side (half-close)
        self.closed = False
        self.write_paused = False
        self.read_paused = False
        now = loop.time()
        self.idle_deadline = now + server.idle_timeout
        self.frame_deadline = 0.0
        self.write_deadline = 0.0
        self.last_data = now
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        info = transport.get_extra_info("peername")
        self.peer = f"{info[0]}:{info[1]}" if info else "?"
        server = self.server
        if server._active >= server.max_connections:
            # Refused before any TLS work: the sender sees the connection closed without an ACK
            # and sends again later (docs/hl7-profile.md 1.3); the connections served go on.
            log.warning("mllp.connection_refused", peer=self.peer, limit=server.max_connections)
            self.closed = True
            transport.abort()
            return
        server._active += 1
        server._connections.add(self)
        self.counted = True
        # Pause writing as soon as an ACK cannot go to the kernel at once: a sender that does
        # not read its ACKs is then on the write deadline.
        transport.set_write_buffer_limits(high=0)
        if server.tls is not None:
            transport.pause_reading()  # start_tls resumes it under TLS
            self.loop.create_task(self._handshake(transport, server.tls))
        else:
            self.ready = True
            self._rearm()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = self.loop.time()
        self.last_data = now
        was_in_frame = self.frames.in_frame
        try:
            complete = self.frames.feed(data)
        except FrameTooLarge as exc:
            log.warning("mllp.frame_too_large", peer=self.peer, limit=self.server.max_message_bytes)
            self.queue.append(_TooLarge(str(exc)))
            self._pause_reading()
            self.eof = True  # nothing more is read from this sender
            if not self.busy:
                self._next()
            return
        if complete:
            self.queue.extend(complete)
            if self.frames.in_frame:
                self.frame_deadline = now + self.server.read_timeout
            if len(self.queue) >= _READ_AHEAD:
                self._pause_reading()
            if not self.busy:
                self._next()
                return
        elif not was_in_frame and self.frames.in_frame:
            self.frame_deadline = now + self.server.read_timeout
        self._rearm()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy and not self.queue:
            self._close()
        # Keep the write side open for the ACKs still to come; TLS cannot half-close.
        return self.server.tls is None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_deadline = self.loop.time() + self.server.read_timeout
        self._rearm()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._release()

    def _release(self) -> None:
        """No longer one of the server's active connections (once, whichever comes first)."""
        if self.counted:
            self.counted = False
            self.server._active -= 1
            self.server._connections.discard(self)

    # -- handling, in order

    def _next(self) -> None:
        """Hand over the next queued message, if the connection may go on."""
        if self.closed or self.write_paused or not self.ready:
            self._rearm()
            return
        if not self.queue:
            self.busy = False
            if self.eof:
                self._close()
                return
            if self.read_paused:
                self.read_paused = False
                assert self.transport is not None
                self.transport.resume_reading()
            self._rearm()
            return
        item = self.queue.popleft()
        if isinstance(item, _TooLarge):
            assert self.transport is not None
            self.transport.write(frame(_too_large_nack(item.reason)))
            self._close()
            return
        self.busy = True
        server = self.server
        try:
            if server.submit is not None:
                server.submit(item, self.peer, self._answered)
            else:
                assert server.handler is not None
                task = asyncio.ensure_future(server.handler(item, self.peer))
                task.add_done_callback(self._task_done)
        except Exception:  # a fault of ours: this connection ends, the others go on
            log.exception("mllp.connection_failed", peer=self.peer)
            self.abort()

    def _task_done(self, task: asyncio.Future[bytes]) -> None:
        if task.cancelled():
            self.abort()
            return
        error = task.exception()
        self._answered(error if error is not None else task.result())

    def _answered(self, ack: bytes | BaseException) -> None:
        if self.closed:
            return  # the sender went away; it sends the message again and gets the ACK then
        if isinstance(ack, BaseException):
            log.error("mllp.connection_failed", peer=self.peer, error=repr(ack))
            self.abort()
            return
        assert self.transport is not None
        if ack:  # empty: enhanced mode, and the sender asked for no commit ACK (MSH-15)
            self.transport.write(frame(ack))
        now = self.loop.time()
        # Between frames the idle deadline runs from the last ACK (bytes outside a frame do not
        # keep a connection open); a frame already begun gets read_timeout from now.
        self.idle_deadline = now + self.server.idle_timeout
        if self.frames.in_frame:
            self.frame_deadline = now + self.server.read_timeout
        self.busy = False
        self._next()

    async def _handshake(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            tls = await self.loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.server.read_timeout,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning("mllp.tls_refused", peer=self.peer, reason=_tls_reason(exc))
            self.closed = True
            transport.abort()
            self._release()  # the TLS layer may not pass the loss of a connection it never made
            return
        if tls is None or self.closed:
            return
        self.transport = tls  # with the TLS layer's own write limits (it resumes from those)
        log.info("mllp.tls_connected", peer=self.peer, **_certificate_subject(tls))
        self.ready = True
        self.idle_deadline = self.loop.time() + self.server.idle_timeout
        self._next()

    # -- deadlines

    def _deadline(self) -> float | None:
        if self.write_paused:
            return self.write_deadline
        if self.busy or not self.ready:  # waiting for the store; the handshake has its own
            return None
        if self.frames.in_frame:
            return min(self.frame_deadline, self.last_data + self.server.idle_timeout)
        return self.idle_deadline

    def _rearm(self) -> None:
        if self.closed:
            return
        deadline = self._deadline()
        if deadline is None:
            return  # a timer already set finds nothing due and is re-armed when one is
        if self.timer is not None and self.timer_at <= deadline:
            return  # it fires early, finds the later deadline and waits for it then
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = deadline
        self.timer = self.loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.closed:
            return
        deadline = self._deadline()
        now = self.loop.time()
        if deadline is None:
            return
        if now < deadline:
            self._rearm()
            return
        if self.write_paused:
            log.warning("mllp.write_timeout", peer=self.peer, seconds=self.server.read_timeout)
            self.abort()
        elif self.frames.in_frame and now >= self.frame_deadline:
            log.warning("mllp.read_timeout", peer=self.peer, seconds=self.server.read_timeout)
            self._close()
        else:
            log.info("mllp.idle_timeout", peer=self.peer)
            self._close()

    # -- ending

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _close(self) -> None:
        """Close after what is written has been sent."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()


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


def _certificate_subject(transport: asyncio.BaseTransport) -> dict[str, str]:
    cert = transport.get_extra_info("peercert")
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
