"""The durable outbox to the digital mailboxes, and the receipt on the document.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("mailbox_delivered_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("mailbox_receipt", sa.String(120), nullable=True))
    op.create_table(
        "mailbox_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("recipient_system", sa.String(120), nullable=False),
        sa.Column("recipient_value", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("transaction_id", sa.String(120), nullable=True),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("message_id", name="uq_mailbox_outbox_message_id"),
    )
    op.create_index("ix_mailbox_outbox_due", "mailbox_outbox", ["state", "next_attempt_at", "id"])
    op.create_index("ix_mailbox_outbox_document", "mailbox_outbox", ["document_id"])


def downgrade() -> None:
    op.drop_table("mailbox_outbox")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("mailbox_receipt")
        batch.drop_column("mailbox_delivered_at")
