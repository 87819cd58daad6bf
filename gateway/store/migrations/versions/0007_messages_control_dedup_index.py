"""One index for deduplication and control id lookups on ``messages``.

Before: a unique constraint on ``dedup_key`` and an index on ``control_id``, two B-trees whose
keys arrive in no order, each updated by every message the inbox stores before its ACK. Now one
unique index on ``(control_id, dedup_key)``: unique exactly when ``dedup_key`` is (the key holds
the control id), and a control id lookup uses its first column. ``dedup_key`` stays NULL for
messages that were not accepted, so they never conflict.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot drop a table constraint in place: batch mode copies the table.
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_dedup_key", type_="unique")
        batch.drop_index("ix_messages_control_id")
        batch.create_index("uq_messages_control_dedup", ["control_id", "dedup_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("uq_messages_control_dedup")
        batch.create_index("ix_messages_control_id", ["control_id"])
        batch.create_unique_constraint("uq_messages_dedup_key", ["dedup_key"])
