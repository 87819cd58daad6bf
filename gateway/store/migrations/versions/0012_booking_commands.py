"""Citizen self-service booking commands, stored before the journal is called (issue 21).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("patient", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.String(64)),
        sa.Column("start", UTCDateTime),
        sa.Column("end", UTCDateTime),
        sa.Column("time_type", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result_booking_id", sa.String(64)),
        sa.Column("detail", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("echoed_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_booking_commands_key"),
    )
    op.create_index("ix_booking_commands_result", "booking_commands", ["result_booking_id"])


def downgrade() -> None:
    op.drop_index("ix_booking_commands_result", "booking_commands")
    op.drop_table("booking_commands")
