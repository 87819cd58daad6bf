"""The journal intake under bad input: MLLP over TLS with client certificates, the sender
allowlist on both transports, and the limits (sizes, connections, slow senders, broken framing).

Every case ends by sending a good message on a fresh connection: the gateway keeps serving.
What each bad input gets back is listed in docs/hl7-profile.md 1.3; this file proves that list.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from gateway.journal_adapter.mllp import MllpClient, MllpServer
from gateway.settings import Settings
from gateway.testing import GatewayThread
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister
from tests.support import ack_code, ack_fields, control_id, mllp_exchange, siu

START, END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE = 8192
MAX_BODY = 4096
IDLE = 3.0
READ = 1.0
MAX_CONNECTIONS = 5
PROFILE = Path(__file__).resolve().parents[2] / "docs" / "hl7-profile.md"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "http_port": 0,
        "mllp_port": 0,
        "mocks_port": 0,
        "mllp_idle_timeout": IDLE,
        "mllp_read_timeout": READ,
        "http_read_timeout": READ,
        "mllp_max_connections": MAX_CONNECTIONS,
        "max_message_bytes": MAX_MESSAGE,
        "max_body_bytes": MAX_BODY,
        "worker_poll_interval": 0.2,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _run(settings: Settings) -> GatewayThread:
    return GatewayThread(settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox())


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayThread]:
    with _run(_settings(tmp_path)) as gateway:
        yield gateway


def _connect(gateway: GatewayThread, timeout: float = 10) -> socket.socket:
    return socket.create_connection(gateway.mllp_address, timeout=timeout)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes; a reset counts as closed."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _acks(data: bytes) -> list[bytes]:
    return [part.lstrip(START) for part in data.split(END) if part.strip(START)]


def _still_serving(gateway: GatewayThread, tls: ssl.SSLContext | None = None) -> None:
    """A good message on a fresh connection is taken: the gateway did not fall over."""
    (ack,) = mllp_exchange(*gateway.mllp_address, [siu()], tls=tls)
    assert ack_code(ack) == "AA"
    assert gateway._thread is not None and gateway._thread.is_alive()


# --- MLLP over TLS with client certificates ---------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The region's CA (server and journal certificates) and a stranger's CA."""
    base = tmp_path_factory.mktemp("mllp-pki")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    journal = ca.issue_cert(
        "takecare.sll.example", common_name="takecare.sll.example", organization_name="Region Stockholm"
    )
    stranger = other.issue_cert("takecare.sll.example")
    files = {name: base / f"{name}.pem" for name in ("ca", "server", "server_key", "journal", "stranger")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files["server"]), append=True)
    journal.private_key_and_cert_chain_pem.write_to_path(str(files["journal"]))
    stranger.private_key_and_cert_chain_pem.write_to_path(str(files["stranger"]))
    return files


def _client(pki: dict[str, Path], cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if cert is not None:
        context.load_cert_chain(str(pki[cert]))
    return context


@pytest.fixture
def tls_gw(tmp_path: Path, pki: dict[str, Path]) -> Iterator[GatewayThread]:
    settings = _settings(
        tmp_path,
        mllp_tls_cert=pki["server"],
        mllp_tls_key=pki["server_key"],
        mllp_tls_client_ca=pki["ca"],
    )
    with _run(settings) as gateway:
        yield gateway


def test_mllp_over_tls_takes_a_journal_with_a_certificate_from_the_trusted_ca(
    tls_gw: GatewayThread, pki: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    acks = mllp_exchange(*tls_gw.mllp_address, [siu(), siu(booking="BK-TLS-2")], tls=_client(pki, "journal"))
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    # Who connected is logged by the certificate's subject (the system, not a person).
    logged = capfd.readouterr().out
    assert "mllp.tls_connected" in logged and "o=Region Stockholm," in logged
    assert ",cn=takecare.sll.example'" in logged


@pytest.mark.parametrize(
    "cert", [None, "stranger"], ids=["no-client-certificate", "certificate-of-another-ca"]
)
def test_mllp_over_tls_refuses_a_client_without_a_trusted_certificate_at_the_handshake(
    tls_gw: GatewayThread, pki: dict[str, Path], cert: str | None, capfd: pytest.CaptureFixture[str]
) -> None:
    # Under TLS 1.3 the client's side of the handshake ends before the server has checked its
    # certificate, so the refusal may arrive on the first read instead; no ACK either way.
    # More refusals than connections may be open at once: a refused handshake frees its place.
    for _ in range(MAX_CONNECTIONS + 1):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            mllp_exchange(*tls_gw.mllp_address, [siu()], tls=_client(pki, cert))
    _still_serving(tls_gw, _client(pki, "journal"))
    assert "mllp.tls_refused" in capfd.readouterr().out


def test_plain_tcp_to_the_tls_port_gets_no_ack_and_is_closed(
    tls_gw: GatewayThread, pki: dict[str, Path]
) -> None:
    with _connect(tls_gw) as sock:
        sock.sendall(START + siu() + END)
        assert b"MSA" not in _read_until_closed(sock)
    _still_serving(tls_gw, _client(pki, "journal"))


def test_a_tls_handshake_never_begun_is_dropped_after_the_read_timeout(
    tls_gw: GatewayThread, pki: dict[str, Path]
) -> None:
    with _connect(tls_gw) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock) == b""
        assert READ * 0.8 < time.monotonic() - started < IDLE + 2
    _still_serving(tls_gw, _client(pki, "journal"))


# --- Sender allowlist (MSH-3/MSH-4), both transports ------------------------------------------


@pytest.fixture
def allow_gw(tmp_path: Path) -> Iterator[GatewayThread]:
    with _run(_settings(tmp_path, mllp_allowed_senders=["TAKECARE|SLL", "COSMIC|*"])) as gateway:
        yield gateway


@pytest.mark.parametrize("transport", ["mllp", "http"])
def test_only_allowed_senders_are_taken_others_get_ar_204_naming_msh_3_or_msh_4(
    allow_gw: GatewayThread, transport: str
) -> None:
    cases = [
        ("TAKECARE|SLL", "AA", None),
        ("COSMIC|UPPSALA", "AA", None),
        ("TAKECARE|GOTLAND", "AR", "MSH^1^4^1"),  # the application is known, not at that facility
        ("MELIOR|SLL", "AR", "MSH^1^3^1"),
        ("|SLL", "AR", "MSH^1^3^1"),
    ]
    with httpx.Client(base_url=allow_gw.http_url, timeout=10) as http:
        for sending, expected, location in cases:
            cid = control_id()
            message = siu(control=cid, sending=sending)
            if transport == "mllp":
                (ack,) = mllp_exchange(*allow_gw.mllp_address, [message])
            else:
                ack = http.post("/journal/hl7", content=message).content
            assert ack_code(ack) == expected, sending
            assert ack_fields(ack, "MSA")[2] == cid
            if location is not None:
                err = ack_fields(ack, "ERR")
                assert err[2] == location and err[3] == "204^Unknown key identifier^HL70357"
                app, facility = sending.split("|")
                assert err[8] == f"sender '{app}' at '{facility}' (MSH-3, MSH-4) is not allowed to send here"
                if sending == "TAKECARE|GOTLAND":  # the ERR shown in docs/hl7-profile.md 5.3
                    assert "|".join(err) in PROFILE.read_text(encoding="utf-8")
        # Refused senders are stored as rejected, with the reason: nothing is lost, all is auditable.
        rejected = http.get("/messages", params={"state": "rejected"}).json()
        assert rejected["total"] == 3
        assert all("is not allowed to send here" in item["error"] for item in rejected["items"])


def test_a_refused_sender_gets_ar_even_when_its_bytes_are_broken_too(allow_gw: GatewayThread) -> None:
    broken = siu(sending="MELIOR|SLL").replace("å".encode(), b"\xe5")  # says UTF-8, is not
    (ack,) = mllp_exchange(*allow_gw.mllp_address, [broken])
    assert ack_code(ack) == "AR" and ack_fields(ack, "ERR")[3].startswith("204^")


def test_the_allowlist_setting_takes_only_app_bar_facility(tmp_path: Path) -> None:
    for bad in (["TAKECARE"], ["*|SLL"], ["A|B|C"], ["TAKECARE|"]):
        with pytest.raises(ValueError, match="APP"):
            _settings(tmp_path, mllp_allowed_senders=bad)


# --- Sizes ------------------------------------------------------------------------------------


def _sized(size: int) -> bytes:
    base = siu(booking=f"BK-SIZE-{size}")
    return base + b"ZPD|" + b"x" * (size - len(base) - 5) + b"\r"


@pytest.mark.parametrize("whole", [True, False], ids=["in-one-read", "in-many-reads"])
def test_an_oversized_frame_gets_an_ar_nack_then_the_connection_is_closed(
    gw: GatewayThread, whole: bool
) -> None:
    payload = START + _sized(MAX_MESSAGE + 1) + END
    with _connect(gw) as sock:
        if whole:
            sock.sendall(payload)
        else:
            for i in range(0, len(payload), 1000):
                sock.sendall(payload[i : i + 1000])
        (nack,) = _acks(_read_until_closed(sock))
    assert ack_code(nack) == "AR" and f"larger than {MAX_MESSAGE} bytes".encode() in nack
    _still_serving(gw)


def test_http_bodies_over_the_limit_get_413_operation_outcomes_without_being_read_whole(
    gw: GatewayThread,
) -> None:
    with httpx.Client(base_url=gw.http_url, timeout=10) as http:
        at_limit = http.post("/journal/hl7", content=_sized(MAX_MESSAGE))
        assert ack_code(at_limit.content) == "AA"
        answers = [
            http.post("/journal/hl7", content=_sized(MAX_MESSAGE + 1)),  # Content-Length says so
            http.post("/journal/hl7", content=iter([_sized(MAX_MESSAGE + 1)])),  # chunked: counted
            http.post("/print-list/handle", json={"ids": list(range(2000)), "by": "x"}),  # other routes
            http.post("/fhir/Appointment/_search", content=b"status=booked&" * 400),
        ]
        for answer in answers:
            assert answer.status_code == 413, answer.request.url
            body = answer.json()
            assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "too-costly"
        small = http.post("/print-list/handle", json={"ids": [], "by": "x"})
        assert small.status_code != 413
    # A declared length far over the limit is refused before one byte of the body is sent.
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /journal/hl7 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        head = _read_until_closed(sock)
    assert head.startswith(b"HTTP/1.1 413") and b"OperationOutcome" in head
    _still_serving(gw)


def test_an_http_body_that_stalls_gets_408_and_the_connection_is_closed(gw: GatewayThread) -> None:
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /journal/hl7 HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nMSH|^~\\&|")
        started = time.monotonic()
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b'"timeout"' in answer
    assert READ * 0.8 < time.monotonic() - started < READ + 3
    _still_serving(gw)


# --- Connections ------------------------------------------------------------------------------


def test_connections_over_the_maximum_are_closed_at_once_and_the_open_ones_go_on(gw: GatewayThread) -> None:
    held = [_connect(gw) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each is being served
            sock.sendall(START + siu() + END)
            assert b"MSA|AA|" in sock.recv(65536)
        refused = [_connect(gw) for _ in range(3 * MAX_CONNECTIONS)]
        for sock in refused:
            with sock:
                started = time.monotonic()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(START + siu() + END)
                assert b"MSA" not in _read_until_closed(sock)
                assert time.monotonic() - started < IDLE  # closed at once, not left to idle out
        for sock in held:
            sock.sendall(START + siu() + END)
            assert b"MSA|AA|" in sock.recv(65536)
        held.pop().close()
        deadline = time.monotonic() + 5
        while gw.gateway.mllp.active_connections >= MAX_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.02)
        _still_serving(gw)  # a freed place is taken again
    finally:
        for sock in held:
            sock.close()


# --- Slow senders -----------------------------------------------------------------------------


def test_slowloris_a_frame_trickled_byte_by_byte_is_dropped_after_the_read_timeout(gw: GatewayThread) -> None:
    payload = START + siu()
    with _connect(gw) as sock:
        started = time.monotonic()
        try:
            for byte in payload:  # one byte every 0.2 s: never idle, never done
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _read_until_closed(sock) == b""
        assert time.monotonic() - started < READ + 2
    _still_serving(gw)


def test_garbage_trickled_outside_any_frame_does_not_keep_a_connection_open(gw: GatewayThread) -> None:
    with _connect(gw) as sock:
        started = time.monotonic()
        try:
            while time.monotonic() - started < IDLE + 3:
                sock.sendall(b"x")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _read_until_closed(sock) == b""
        assert IDLE * 0.8 < time.monotonic() - started < IDLE + 3
    _still_serving(gw)


# --- Broken framing and floods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"noise\r\n" + START + siu() + END + b"\x00\xff" * 100 + START + siu() + END, ["AA", "AA"]),
        (b"x" * (4 * MAX_MESSAGE) + START + siu() + END, ["AA"]),  # garbage longer than any frame
        (END + START + siu() + END, ["AA"]),  # a frame end without a start
        (END + END + b"MSH|^~\\&|" + END + START + siu() + END, ["AA"]),
        (START + END + START + siu() + END, ["AE", "AA"]),  # an empty frame
        (START + b"MSH|^~\\&|TAKECARE" + START + siu() + END, ["AA"]),  # a start inside a frame
        (START + bytes(range(256)) + END + START + siu() + END, ["AE", "AA"]),  # binary in a frame
    ],
    ids=[
        "garbage-between-frames",
        "long-garbage-before-a-frame",
        "frame-end-without-start",
        "several-ends-without-start",
        "empty-frame",
        "start-inside-a-frame",
        "binary-frame",
    ],
)
def test_broken_framing_is_answered_frame_by_frame_and_never_ends_the_connection(
    gw: GatewayThread, payload: bytes, expected: list[str]
) -> None:
    with _connect(gw) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # half-closed: the ACKs still come, then the gateway closes
        acks = _acks(_read_until_closed(sock))
    assert [ack_code(a) for a in acks] == expected
    for ack in acks:
        if ack_code(ack) == "AE":  # nothing in the frame reads as an MSH
            assert ack_fields(ack, "ERR")[2:4] == ["MSH^1", "100^Segment sequence error^HL70357"]
    _still_serving(gw)


def test_half_closed_connections_get_their_acks_and_a_half_sent_frame_gets_none(gw: GatewayThread) -> None:
    with _connect(gw) as sock:
        sock.sendall(START + siu() + END + START + siu()[:40])
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        acks = _acks(_read_until_closed(sock))
        assert time.monotonic() - started < READ  # closed on the sender's FIN, not by a timeout
    assert [ack_code(a) for a in acks] == ["AA"]
    with _connect(gw) as sock:
        sock.shutdown(socket.SHUT_WR)  # closed before anything was sent
        assert _read_until_closed(sock) == b""
    _still_serving(gw)


def test_a_flood_of_tiny_messages_on_one_connection_is_answered_one_by_one(gw: GatewayThread) -> None:
    count = 2000
    tiny = [f"MSH|^~\\&|TAKECARE|SLL|||||SIU^S12|F{i}|T|2.5.1\r".encode() for i in range(count)]
    payload = b"".join(START + m + END for m in tiny)
    with _connect(gw, timeout=60) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = b""
        while received.count(END) < count:
            chunk = sock.recv(65536)
            assert chunk, "closed before every ACK came"
            received += chunk
        sender.join()
    acks = _acks(received)
    assert len(acks) == count and {ack_code(a) for a in acks} == {"AR"}  # processing id T
    assert [ack_fields(a, "MSA")[2] for a in acks] == [f"F{i}" for i in range(count)]  # in order
    _still_serving(gw)


async def test_a_sender_that_never_reads_its_acks_is_dropped_after_the_read_timeout() -> None:
    # The MLLP server alone, with big ACKs, so the socket buffers fill fast: a sender that
    # sends and never reads would otherwise hold its connection (and its place) for ever.
    async def handler(_raw: bytes, _peer: str) -> bytes:
        return b"MSA|AA|" + b"x" * 16384

    server = MllpServer(handler, port=0, read_timeout=READ, idle_timeout=IDLE)
    await server.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((START + b"MSH" + END) * 2000)  # 32 MB of ACKs, none of them read
        while not server.active_connections:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        while server.active_connections and time.monotonic() - started < READ + 5:
            await asyncio.sleep(0.05)
        assert server.active_connections == 0
        assert READ * 0.8 < time.monotonic() - started < READ + 3
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    finally:
        await server.stop()


async def test_a_fault_of_ours_ends_that_connection_without_an_ack_and_the_others_go_on() -> None:
    # The MLLP server alone: a handler that fails on one message (synchronously, or by
    # answering with an exception) ends that sender's connection, unanswered, so it sends the
    # message again; other connections, and the messages before it, are answered as usual.
    def submit(raw: bytes, _peer: str, done: Callable[[bytes | BaseException], None]) -> None:
        if raw == b"RAISE":
            raise RuntimeError("a bug")
        if raw == b"ANSWER-AN-ERROR":
            done(RuntimeError("a bug, found later"))
            return
        done(b"MSA|AA|" + raw)

    server = MllpServer(submit=submit, port=0, read_timeout=READ, idle_timeout=IDLE)
    await server.start()
    try:
        for bad in (b"RAISE", b"ANSWER-AN-ERROR"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(START + b"ONE" + END + START + bad + END + START + b"TWO" + END)
            answered = await asyncio.wait_for(reader.read(), READ + 5)  # until the server closes
            assert answered == START + b"MSA|AA|ONE" + END
            writer.close()
            async with MllpClient("127.0.0.1", server.port) as other:
                assert await other.send(b"THREE") == b"MSA|AA|THREE"
        while server.active_connections:
            await asyncio.sleep(0.01)
    finally:
        await server.stop()
