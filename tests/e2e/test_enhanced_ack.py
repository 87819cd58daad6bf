"""Enhanced acknowledgement mode end to end (docs/hl7-profile.md 5.4): a commit ACK on the
connection once the message is stored, the application ACK after processing to the sender's own
MLLP endpoint, retried durably until the sender takes it. Original mode stays the default."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.store.tables import hl7_app_acks
from gateway.testing import GatewayThread
from tests.conftest import _settings, wait_processed
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister
from tests.support import PNR_OID, TOLVAN, ack_code, ack_fields, eventually, mllp_exchange


class SenderEndpoint:
    """The journal's own MLLP listener for application ACKs: records each, answers CA (after
    refusing the first ``drop_first`` connections outright, as a sender that is down)."""

    def __init__(self, drop_first: int = 0) -> None:
        self.received: list[bytes] = []
        self.drop_first = drop_first
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                if self.drop_first > 0:
                    self.drop_first -= 1
                    continue
                conn.settimeout(5)
                buf = b""
                while b"\x1c\r" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                frame = buf.split(b"\x1c\r", 1)[0].lstrip(b"\x0b")
                if not frame:
                    continue
                self.received.append(frame)
                control = frame.decode("latin-1").split("\r")[0].split("|")[9]
                commit = (
                    f"MSH|^~\\&|EPIC|EPICADT|GATEWAY|REGION|20261124080000||ACK|R{control}|P|2.5.1\r"
                    f"MSA|CA|{control}\r"
                )
                conn.sendall(b"\x0b" + commit.encode() + b"\x1c\r")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def endpoint() -> Iterator[SenderEndpoint]:
    found = SenderEndpoint(drop_first=1)
    yield found
    found.close()


@pytest.fixture
def enhanced_gateway(tmp_path: Path, endpoint: SenderEndpoint) -> Iterator[GatewayThread]:
    settings = _settings(tmp_path).model_copy(
        update={"hl7_app_ack_endpoints": {"EPIC|*": f"127.0.0.1:{endpoint.port}"}}
    )
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        gw.gateway.app_acks.backoff_initial = 0.1  # type: ignore[union-attr]
        yield gw


@pytest.fixture
def client(enhanced_gateway: GatewayThread) -> Iterator[httpx.Client]:
    """Its HTTP API (not the ``http`` fixture, which would start a second gateway on the same
    database without the endpoints)."""
    with httpx.Client(base_url=enhanced_gateway.http_url, timeout=10) as found:
        yield found


def message(control: str, msh15: str = "AL", msh16: str = "AL", *, patient: str = TOLVAN) -> bytes:
    return (
        f"MSH|^~\\&|EPIC|EPICADT^1.2.3^ISO|GATEWAY|REGION|20261124080000||SIU^S12|{control}|P|2.8|||{msh15}|{msh16}"
        "|SWE|UNICODE UTF-8\r"
        f"SCH||BK-{control}^EPIC|||||^Kontroll|NYB|30|MIN|" + "|" * 14 + "Booked\r"
        "TQ1|1||||||202612011000\r"
        f"PID|1||{patient}^^^&{PNR_OID}&ISO\r"
    ).encode()


def _wait_for(check: object, timeout: float = 15) -> None:
    eventually(check, "the expected state", timeout=timeout)  # type: ignore[arg-type]


def _rows(gw: GatewayThread) -> list[dict[str, object]]:
    with gw.gateway.engine.connect() as conn:
        return [
            dict(r._mapping) for r in conn.execute(select(hl7_app_acks).order_by(hl7_app_acks.c.message_id))
        ]


def test_commit_ack_now_application_ack_after_processing_retried_until_taken(
    enhanced_gateway: GatewayThread, endpoint: SenderEndpoint, client: httpx.Client
) -> None:
    host, port = enhanced_gateway.mllp_address
    good, bad = message("E1"), message("E2", patient="191212121213")
    commit_good, commit_bad = mllp_exchange(host, port, [good, bad])
    # Both are stored: CA; the content error is told in the application ACK.
    assert ack_code(commit_good) == "CA" and ack_code(commit_bad) == "CA"
    assert ack_fields(commit_good, "MSH")[5] == "EPICADT^1.2.3^ISO"
    wait_processed(client)
    _wait_for(lambda: len(endpoint.received) == 2)
    acks = {ack_fields(a, "MSA")[2]: a for a in endpoint.received}
    assert ack_code(acks["E1"]) == "AA"
    assert ack_code(acks["E2"]) == "AE"
    assert ack_fields(acks["E2"], "ERR")[2] == "PID^1^3^1^1"
    _wait_for(lambda: [r["state"] for r in _rows(enhanced_gateway)] == ["delivered", "delivered"])
    assert max(int(r["attempts"]) for r in _rows(enhanced_gateway)) >= 2  # the first try found it down
    # The message browser shows what became of each message's application ACK.
    first = _rows(enhanced_gateway)[0]["message_id"]
    shown = client.get(f"/messages/{first}").json()
    assert shown["ack_code"] == "CA"
    assert shown["application_ack"]["state"] == "delivered" and shown["application_ack"]["ack_code"] == "AA"


def test_msh_15_ne_gets_no_commit_ack_on_the_connection_and_msh_16_ne_no_application_ack(
    enhanced_gateway: GatewayThread, endpoint: SenderEndpoint, client: httpx.Client
) -> None:
    host, port = enhanced_gateway.mllp_address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\x0b" + message("N1", "NE", "NE") + b"\x1c\r")
        sock.sendall(b"\x0b" + message("N2", "", "") + b"\x1c\r")  # original mode after it
        buf = b""
        while b"\x1c\r" not in buf:
            buf += sock.recv(65536)
    (only,) = [f for f in buf.split(b"\x1c\r") if f]
    assert ack_fields(only.lstrip(b"\x0b"), "MSA")[1:3] == ["AA", "N2"]  # N1 answered nothing
    wait_processed(client)
    _wait_for(lambda: [r["state"] for r in _rows(enhanced_gateway)] == ["skipped"])
    assert endpoint.received == []


def test_a_message_not_taken_gets_cr_and_no_application_ack(
    enhanced_gateway: GatewayThread, endpoint: SenderEndpoint, client: httpx.Client
) -> None:
    host, port = enhanced_gateway.mllp_address
    raw = message("R1").replace(b"|P|2.8|", b"|T|2.8|")
    (commit,) = mllp_exchange(host, port, [raw])
    assert ack_code(commit) == "CR"
    assert ack_fields(commit, "ERR")[3].startswith("202^")
    wait_processed(client)
    app_acks = enhanced_gateway.gateway.app_acks
    assert app_acks is not None and app_acks.collect() == 0  # nothing is owed for a message not taken
    assert _rows(enhanced_gateway) == [] and endpoint.received == []


def test_http_always_answers_with_the_commit_ack(
    enhanced_gateway: GatewayThread, client: httpx.Client
) -> None:
    response = client.post(
        "/journal/hl7", content=message("H1", "NE", "NE"), headers={"content-type": "application/hl7-v2"}
    )
    assert response.status_code == 200
    assert ack_fields(response.content, "MSA")[1:3] == ["CA", "H1"]
