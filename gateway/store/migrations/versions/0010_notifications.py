"""SMS reminders and notices: the durable plan and what became of each (R-NOT-1..5, R-BK-5).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(12), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("patient_system", sa.String(120), nullable=False),
        sa.Column("patient_value", sa.String(32), nullable=False),
        sa.Column("recipient_system", sa.String(120), nullable=False),
        sa.Column("recipient_value", sa.String(32), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=True),
        sa.Column("visit_start", UTCDateTime, nullable=True),
        sa.Column("rules", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=True),
        sa.Column("sending_since", UTCDateTime, nullable=True),
        sa.Column("provider_id", sa.String(120), nullable=True),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index("ix_notifications_due", "notifications", ["state", "next_attempt_at", "id"])
    op.create_index("ix_notifications_subject", "notifications", ["subject", "subject_id"])
    op.create_index("ix_notifications_patient", "notifications", ["patient_value", "patient_system"])


def downgrade() -> None:
    op.drop_table("notifications")
