"""Enhanced acknowledgement mode: the application ACKs owed to senders, and a partial index on
``messages`` for the messages given a commit ACK (docs/hl7-profile.md 5.4).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hl7_app_acks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Integer, nullable=False),
        sa.Column("sending_application", sa.String(180), nullable=False),
        sa.Column("sending_facility", sa.String(180), nullable=False),
        sa.Column("endpoint", sa.String(260), nullable=True),
        sa.Column("ack_code", sa.String(2), nullable=False),
        sa.Column("ack", sa.Text, nullable=False),
        sa.Column("charset", sa.String(20), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("message_id", name="uq_hl7_app_acks_message_id"),
    )
    op.create_index("ix_hl7_app_acks_due", "hl7_app_acks", ["state", "next_attempt_at", "id"])
    enhanced = sa.text("ack_code = 'CA'")
    op.create_index(
        "ix_messages_enhanced", "messages", ["id"], sqlite_where=enhanced, postgresql_where=enhanced
    )


def downgrade() -> None:
    op.drop_index("ix_messages_enhanced", table_name="messages")
    op.drop_index("ix_hl7_app_acks_due", table_name="hl7_app_acks")
    op.drop_table("hl7_app_acks")
