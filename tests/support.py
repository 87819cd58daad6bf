"""Helpers shared by the tests: an SIU builder for hand-made cases, a plain MLLP socket client, and
inbound records for the inbox."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.inbox import RECEIVED, REJECTED, InboundRecord, Inbox, Stored

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, *, timeout: float = 15, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what``.

    For an observable state another thread or process brings about (the worker, the outbox,
    a mock); never to wait out a race (make the race happen instead)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


PNR_OID = "1.2.752.129.2.1.3.1"
SAMO_OID = "1.2.752.129.2.1.3.3"
RESERV_OID = "1.2.752.97.3.1.3"
PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMO_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
RESERV_SYSTEM = "urn:oid:1.2.752.97.3.1.3"
TOLVAN = "191212121212"

_counter = iter(range(1, 10**9))


def control_id() -> str:
    return f"T{time.time_ns() % 10**12}{next(_counter):06d}"


def siu(
    trigger: str = "S12",
    *,
    control: str | None = None,
    patient: str = TOLVAN,
    oid: str = PNR_OID,
    booking: str = "BK1",
    start: str = "202612010900",
    minutes: str = "30",
    time_type: str = "NYB^Nybesök",
    reason: str = "^Kontroll av blodtryck",
    version: str = "2.5.1",
    charset: str = "UNICODE UTF-8",
    filler_status: str = "Booked",
    sending: str = "TAKECARE|SLL",
    message_type: str = "SIU",
    unit: str = "SE2321000016-15CQ^^^^^^^^Vårdcentralen Tolvåsen",
    practitioner: str = "SE2321000016-1A2B^Anna Läkare",
    extra_sch11: str | None = None,
    processing: str = "P",
) -> bytes:
    """One SIU message in the profile's shape (docs/hl7-profile.md); every part can be bent."""
    control = control or control_id()
    tq1 = version != "2.3"
    sch11 = extra_sch11 if extra_sch11 is not None else ("" if tq1 else f"^^{minutes}^{start}")
    segments = [
        f"MSH|^~\\&|{sending}|GATEWAY|REGION|20261124080000||{message_type}^{trigger}|{control}|{processing}|{version}"
        + (f"||||||{charset}" if charset else ""),
        f"SCH||{booking}^TAKECARE|||||{reason}|{time_type}|{minutes}|MIN|{sch11}"
        f"||||||||||||||{filler_status}",
    ]
    if tq1:
        segments.append(f"TQ1|1||||||{start}")
    segments += [
        f"PID|1||{patient}^^^&{oid}&ISO||Tolvansson^Tolvan",
        "RGS|1",
        f"AIG|1||{practitioner}",
        f"AIL|1||{unit}",
    ]
    text = "\r".join(segments) + "\r"
    codec = "latin-1" if charset == "8859/1" else "utf-8"
    return text.encode(codec)


def mllp_exchange(
    host: str,
    port: int,
    messages: Sequence[bytes],
    *,
    chunk: int | None = None,
    timeout: float = 10,
    tls: ssl.SSLContext | None = None,
) -> list[bytes]:
    """Send messages on one connection (optionally in tiny chunks, optionally over TLS with the
    client context ``tls``) and return their ACKs."""
    payload = b"".join(b"\x0b" + m + b"\x1c\x0d" for m in messages)
    plain = socket.create_connection((host, port), timeout=timeout)
    with tls.wrap_socket(plain, server_hostname=host) if tls is not None else plain as sock:
        if chunk is None:
            sock.sendall(payload)
        else:
            for i in range(0, len(payload), chunk):
                sock.sendall(payload[i : i + chunk])
                time.sleep(0.001)
        buf = b""
        acks: list[bytes] = []
        while len(acks) < len(messages):
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed before all ACKs arrived")
            buf += data
            while b"\x1c\x0d" in buf:
                framed, buf = buf.split(b"\x1c\x0d", 1)
                acks.append(framed.lstrip(b"\x0b"))
    return acks


def ack_fields(ack: bytes, segment: str) -> list[str]:
    for line in ack.decode("latin-1").split("\r"):
        if line.startswith(segment + "|"):
            return line.split("|")
    raise AssertionError(f"no {segment} segment in ACK: {ack!r}")


def ack_code(ack: bytes) -> str:
    return ack_fields(ack, "MSA")[1]


def inbound_record(control_id: str, *, rejected: bool = False, at: datetime | None = None) -> InboundRecord:
    """What the intake hands the inbox for one message from APP at FAC (accepted, or AE)."""
    return InboundRecord(
        received_at=at or datetime.now(UTC),
        transport="mllp",
        peer="test",
        sending_application="APP",
        sending_facility="FAC",
        control_id=control_id,
        message_type="SIU",
        trigger="S12",
        version="2.5.1",
        charset="",
        patient=TOLVAN,
        raw=f"MSH|^~\\&|APP|FAC|||||SIU^S12|{control_id}".encode(),
        state=REJECTED if rejected else RECEIVED,
        error="bad" if rejected else None,
        ack_code="AE" if rejected else "AA",
        ack="MSH|...",
    )


def submit_all(inbox: Inbox, records: list[InboundRecord]) -> list[Stored]:
    """Submit everything before the writer starts, so it goes in as one batch (as the MLLP
    listener submits); then stop the inbox."""

    async def run() -> list[Stored]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Stored]] = []
        for record in records:
            future: asyncio.Future[Stored] = loop.create_future()
            inbox.submit(record, lambda outcome, f=future: f.set_result(outcome))  # type: ignore[misc]
            futures.append(future)
        inbox.start()
        return list(await asyncio.gather(*futures))

    try:
        return asyncio.run(run())
    finally:
        inbox.stop()


# --- a store already at the schema head ---------------------------------------------------------


@functools.cache
def _migrated_store() -> bytes:
    """An empty SQLite store migrated to the head, made once per test process."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "gateway.db"
        engine = make_engine(f"sqlite:///{path.as_posix()}")
        migrate.upgrade(engine)
        engine.dispose()  # closes the last connection: the WAL is checkpointed into the file
        return path.read_bytes()


def migrated(data_dir: Path, name: str = "gateway.db") -> Path:
    """``data_dir`` with its SQLite store (``name``, the default store file) already at the schema
    head, copied from one migrated once per test process: a gateway built on it finds nothing to
    upgrade. Running every migration on every test's fresh file cost 0.1 s of CPU each; the
    upgrade itself is tested where it is the subject (test_operations, test_audit, the processes
    and the installed wheel start from an empty file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / name
    if not target.exists():
        target.write_bytes(_migrated_store())
    return data_dir
