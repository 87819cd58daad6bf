"""Register outcome: why a booking is withheld, the journal's number (R-ID-5), restricted messages.

A message about a protected person (R-ID-3) is ``restricted``: its PID segment is masked
wherever the message is shown.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("withheld_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("journal_patient_value", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        batch.drop_column("journal_patient_value")
        batch.drop_column("withheld_reason")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("restricted")
