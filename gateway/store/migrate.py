"""Run the Alembic migrations programmatically (no alembic.ini needed).

Safe while other instances serve the same database: on PostgreSQL the upgrade holds a
transaction-level advisory lock, so two instances starting (or ``gateway db upgrade`` beside a
serving one) migrate one after the other, and the second finds the schema current and does
nothing. On SQLite the write lock of the file does the same.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_SCRIPTS = Path(__file__).resolve().parent / "migrations"

#: The advisory lock migrations take on PostgreSQL (any fixed number; not the worker's).
MIGRATION_LOCK_KEY = 0x6761746577617932  # "gateway2"


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def head() -> str | None:
    """The revision this code's migrations end at."""
    return ScriptDirectory.from_config(config()).get_current_head()


def current(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Migrate to ``revision``; True when anything was run, False when it was current already."""
    cfg = config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        if revision == "head" and current(conn) == head():
            return False
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return True
