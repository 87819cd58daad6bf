"""R-ID-5 both ways: the old numbers the register says were replaced, and by which.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identifier_links",
        sa.Column("old_value", sa.String(32), primary_key=True),
        sa.Column("old_system", sa.String(200), nullable=False),
        sa.Column("current_value", sa.String(32), nullable=False),
        sa.Column("current_system", sa.String(200), nullable=False),
        sa.Column("learned_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_identifier_links_current", "identifier_links", ["current_value"])


def downgrade() -> None:
    op.drop_index("ix_identifier_links_current", "identifier_links")
    op.drop_table("identifier_links")
