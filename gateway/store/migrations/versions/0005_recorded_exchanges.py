"""Record and replay: outbound calls to outside systems, and imported recordings.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recorded_exchanges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("service", sa.String(20), nullable=False),
        sa.Column("message_ids", sa.Text, nullable=False),
        sa.Column("control_id", sa.String(199), nullable=False),
        sa.Column("message_type", sa.String(8), nullable=False),
        sa.Column("patient", sa.String(32), nullable=True),
        sa.Column("line", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_recorded_exchanges_source_at", "recorded_exchanges", ["source", "at"])


def downgrade() -> None:
    op.drop_table("recorded_exchanges")
