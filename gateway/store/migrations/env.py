"""Alembic environment: the gateway passes its own connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from gateway.store.tables import audit_metadata, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=[metadata, audit_metadata],
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
