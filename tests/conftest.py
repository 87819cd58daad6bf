"""Fixtures: a real gateway on ephemeral ports, and store engines on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from gateway.settings import Settings
from gateway.store import intake_journal, migrate
from gateway.store.db import make_engine
from gateway.store.tables import metadata
from gateway.testing import GatewayThread
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister
from tests.support import eventually, migrated

# Authentication is proven in tests/e2e/test_auth.py; everywhere else the routes are open, so
# each test is about its own subject. Subprocess tests pass it on in their environment.
os.environ["GATEWAY_AUTH"] = "off"

PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the suite needs PostgreSQL: say so plainly instead of skipping
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); start it (see .ci/run)")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{(migrated(tmp_path, 'store.db') / 'store.db').as_posix()}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated, empty database on each backend."""
    eng = make_engine(store_url)
    migrate.upgrade(eng)
    with eng.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield eng
    eng.dispose()


def _settings(tmp_path: Path, db_url: str | None = None) -> Settings:
    return Settings(
        data_dir=migrated(tmp_path) if db_url is None else tmp_path,
        db_url=db_url,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        mllp_idle_timeout=2.0,
        worker_poll_interval=0.2,
        log_level="WARNING",
    )


@pytest.fixture
def register() -> FakeRegister:
    return FakeRegister()


@pytest.fixture
def accounts() -> FakeAccounts:
    return FakeAccounts()


@pytest.fixture
def mailbox() -> FakeMailbox:
    return FakeMailbox()


@pytest.fixture
def gateway(
    tmp_path: Path, register: FakeRegister, accounts: FakeAccounts, mailbox: FakeMailbox
) -> Iterator[GatewayThread]:
    """A whole gateway (HTTP, MLLP, worker) on SQLite and ephemeral ports, with fake outside systems."""
    with GatewayThread(_settings(tmp_path), register=register, accounts=accounts, mailbox=mailbox) as gw:
        yield gw


def _journal_entries(gw: GatewayThread) -> int:
    """Entries the worker has not yet moved from the SQLite intake journal into ``messages``."""
    journal = intake_journal.beside(gw.gateway.engine)
    if journal is None or not journal.path.exists():
        return 0
    with sqlite3.connect(f"file:{journal.path}?mode=ro", uri=True) as conn:
        try:
            count: int = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        except sqlite3.OperationalError:  # no entries table yet: nothing was ever stored
            return 0
    return count


def emptied(gw: GatewayThread) -> GatewayThread:
    """The gateway with every table emptied, as a fresh one would be, once the worker has moved
    every journal entry (an entry still in the journal would come back after the truncation)."""
    eventually(lambda: _journal_entries(gw) == 0, "the intake journal to be moved into messages")
    with gw.gateway.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return gw


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """One whole gateway for a module whose tests only need an empty one: started once, its
    tables emptied before each test by :func:`emptied` (see a module's ``gateway`` fixture)."""
    settings = _settings(tmp_path_factory.mktemp("module-gateway"))
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        yield gw


@pytest.fixture
def gateway_on(tmp_path: Path, store_url: str) -> Iterator[GatewayThread]:
    """The same on each database backend."""
    eng = make_engine(store_url)
    migrate.upgrade(eng)
    with eng.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    eng.dispose()
    settings = _settings(tmp_path, store_url)
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        yield gw


@pytest.fixture
def http(gateway: GatewayThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=10) as client:
        yield client


def wait_processed(client: httpx.Client, timeout: float = 10) -> None:
    """Wait until no message is left in state ``received``."""
    eventually(
        lambda: client.get("/messages", params={"state": "received", "limit": 1}).json()["total"] == 0,
        "no message left in state received",
        timeout=timeout,
    )
