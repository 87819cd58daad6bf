"""The gateway as shipped: the wheel, installed with its real dependencies and no dev extras into a
fresh virtual environment, serves on SQLite and PostgreSQL, takes bookings and a letter, and
tells an operator what it did: FHIR, ``/metrics`` with counters that match what was sent and no
personal data, ``/health/ready`` turning 503 when the PostgreSQL database is dropped.

This is what broke before: the mapping tables were not in the wheel, and zeep's AsyncTransport
needed ``packaging`` that only the dev extras brought. Nothing here imports the repository's
source: the installed ``gateway`` command runs from a directory outside it.

Speed: the wheel is built once per session with pip (``pip wheel --no-deps``), and the bare
environment is made and filled by uv (``uv venv``, ``uv pip install --no-index``) from a
wheelhouse of the dependencies: about 2 s where pip took 26 to 47 s. The wheelhouse is filled
with pip from the package index (through pip's cache and the machine's pip configuration) the
first time and kept, keyed by the dependency list and the Python version, under
``~/.cache/gateway-tests`` (``GATEWAY_TEST_WHEELHOUSE`` to move it); a new dependency makes a
new one. The first fill took 23 s with pip's cache warm, 85 s cold.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from gateway.domain.booking import Resource
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm
from tests.conftest import PG_ADMIN_URL
from tests.processes import free_port, start, wait_until_up
from tests.support import PNR_OID, PNR_SYSTEM, TOLVAN, control_id, siu

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    venv: Path
    seconds: dict[str, float]

    @property
    def gateway(self) -> Path:
        return self.venv / "bin" / "gateway"


def _run(args: list[str], **kwargs: object) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise AssertionError(f"{args!r} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _wheelhouse() -> Path:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    key = hashlib.sha256("\n".join([sys.version, *sorted(project["dependencies"])]).encode()).hexdigest()[:16]
    base = Path(os.environ.get("GATEWAY_TEST_WHEELHOUSE", Path.home() / ".cache" / "gateway-tests"))
    return base / f"wheelhouse-{key}"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    seconds: dict[str, float] = {}
    started = time.monotonic()
    _run([*pip, "wheel", "--no-deps", "-w", str(work / "dist"), str(ROOT)])
    (wheel,) = (work / "dist").glob("gateway-*.whl")
    seconds["build"] = time.monotonic() - started
    house = _wheelhouse()
    if not house.is_dir():  # dependencies from the index, once per dependency list
        started = time.monotonic()
        filling = house.with_name(house.name + f".{os.getpid()}")
        _run([*pip, "wheel", "-w", str(filling), str(wheel)])
        for own in filling.glob("gateway-*.whl"):
            own.unlink()
        try:
            filling.rename(house)
        except OSError:  # another session filled it meanwhile: use theirs
            shutil.rmtree(filling, ignore_errors=True)
        seconds["wheelhouse"] = time.monotonic() - started
    started = time.monotonic()
    venv = work / "venv"
    uv = [sys.executable, "-m", "uv", "--quiet", "--no-config"]
    _run([*uv, "venv", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    # Only the wheel's declared dependencies, from the wheelhouse: no index, no dev extras.
    _run(
        [*uv, "pip", "install", "--python", str(python), "--no-index", "--find-links", str(house), str(wheel)]
    )
    seconds["install"] = time.monotonic() - started
    # As shipped: none of the dev extras came along.
    probe = subprocess.run([str(python), "-c", "import pytest"], capture_output=True, check=False)
    assert probe.returncode != 0, "pytest is importable in the installed environment: dev extras leaked"
    print(f"\nwheel test environment: {', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())}")
    return Installed(venv, seconds)


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"gw_wheel_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _poll_ready(url: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/health/ready")
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def _poll(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _figures(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _letter(number: str) -> bytes:
    document = MdmDocument(
        document_number=number,
        namespace="TAKECARE",
        document_type="BREV",
        patient_id=TOLVAN,
        patient_oid=PNR_OID,
        text=LETTER_TEXT,
        title="Brev från vårdcentralen",
        unit=Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),
    )
    return build_mdm("T02", document, control_id=control_id(), now=datetime.now(UTC))


LETTER_TEXT = "Hej!\nVälkommen till Vårdcentralen Tolvåsen.\nMed vänlig hälsning\n[4US:LPAT]"


def _serve_and_book(installed: Installed, tmp_path: Path, db_url: str | None) -> None:
    """Serve, push three bookings, one refused booking and one letter, then read what an
    operator reads: FHIR, /metrics (counters as sent, nothing personal) and /health/ready
    (503 once the PostgreSQL database is dropped)."""
    http_port, mllp_port, metrics_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"GATEWAY_MOCKS_PORT": "0", "GATEWAY_LOG_FORMAT": "json"}  # authentication on, as shipped
    env |= {"GATEWAY_METRICS_PORT": str(metrics_port)}
    if db_url is not None:
        env["GATEWAY_DB_URL"] = db_url
    args = [str(installed.gateway), "serve", "--http-port", str(http_port), "--mllp-port", str(mllp_port)]
    serve = start(args, env, tmp_path / "serve.log", tmp_path)  # cwd outside the repository
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_until_up(f"{url}/health", serve.process, timeout=60)
        ready = _poll_ready(url)  # PostgreSQL: ready once the worker's process holds the lease
        assert ready.status_code == 200, ready.text
        token = subprocess.run(
            [
                str(installed.gateway),
                "token",
                "--scope",
                "journal",
                "--scope",
                "platform",
                "--scope",
                "admin",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        hl7 = {"Content-Type": "application/hl7-v2", **auth}
        sent = [siu(booking=f"WHEEL{n}", start=f"20261201{9 + n:02d}00") for n in range(3)]
        sent += [siu(booking="WHEELX", patient="19121212121"), _letter("WHEEL-L1")]
        acks = [httpx.post(f"{url}/journal/hl7", content=raw, headers=hl7).text for raw in sent]
        assert ["MSA|AA|" in a for a in acks] == [True, True, True, False, True], acks
        assert "MSA|AE|" in acks[3]

        def bookings() -> int:
            params = {"patient:identifier": f"{PNR_SYSTEM}|{TOLVAN}"}
            total: int = (
                httpx.get(f"{url}/fhir/Appointment", params=params, headers=auth).json().get("total", 0)
            )
            return total

        _poll(lambda: bookings() == 3, "three bookings in FHIR")
        open_port = f"http://127.0.0.1:{metrics_port}/metrics"
        _poll(
            lambda: _figures(httpx.get(open_port).text).get(("gateway_backlog_messages", frozenset())) == 0,
            "the backlog empty",
        )
        body = httpx.get(open_port).text
        assert httpx.get(f"{url}/metrics").status_code == 401  # the API's /metrics needs a token
        assert httpx.get(f"{url}/metrics", headers=auth).status_code == 200
        figures = _figures(body)

        def figure(name: str, **labels: str) -> float:
            return figures.get((name, frozenset(labels.items())), 0.0)

        siu_s12 = {"transport": "http", "type": "SIU", "trigger": "S12"}
        assert figure("gateway_messages_received_total", **siu_s12) == 4
        assert figure("gateway_messages_acknowledged_total", ack_code="AA", **siu_s12) == 3
        assert figure("gateway_messages_acknowledged_total", ack_code="AE", **siu_s12) == 1
        mdm_t02 = {"transport": "http", "type": "MDM", "trigger": "T02"}
        assert figure("gateway_messages_acknowledged_total", ack_code="AA", **mdm_t02) == 1
        assert figure("gateway_messages_processed_total", outcome="processed") == 4  # counted in the worker
        assert figure("gateway_messages", state="processed") == 4
        assert figure("gateway_messages", state="rejected") == 1
        assert figure("gateway_upstream_calls_total", upstream="spar", result="ok") >= 1
        for personal in (TOLVAN, "19121212121", "Tolvansson", "Tolvan", "Välkommen"):
            assert personal not in body
        if db_url is not None:  # the database goes away: not ready, and says why
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
            admin.dispose()
            _poll(lambda: httpx.get(f"{url}/health/ready").status_code == 503, "readiness 503")
            why = httpx.get(f"{url}/health/ready").json()["checks"]["database"]["why"]
            assert why.startswith("cannot reach the database"), why
            assert httpx.get(f"{url}/health/live").status_code == 200
    finally:
        code = serve.stop()
    assert code == 0, serve.output()


@pytest.mark.postgres
def test_the_installed_wheel_serves_sqlite_and_postgresql_counts_what_was_sent_and_tells_readiness(
    installed: Installed, tmp_path: Path, scratch_pg: str
) -> None:
    # One test for both backends: under xdist each worker would otherwise build its own venv.
    (tmp_path / "sqlite").mkdir()
    _serve_and_book(installed, tmp_path / "sqlite", None)
    (tmp_path / "postgresql").mkdir()
    _serve_and_book(installed, tmp_path / "postgresql", scratch_pg)
