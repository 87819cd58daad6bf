"""Durable storage: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL, Alembic migrations."""
