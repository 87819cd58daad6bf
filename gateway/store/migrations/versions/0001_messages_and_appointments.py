"""Messages (raw inbound, with state and ACK) and appointments (current FHIR state).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("peer", sa.String(64), nullable=True),
        sa.Column("sending_application", sa.String(180), nullable=False),
        sa.Column("sending_facility", sa.String(180), nullable=False),
        sa.Column("control_id", sa.String(199), nullable=False),
        sa.Column("message_type", sa.String(8), nullable=False),
        sa.Column("trigger", sa.String(8), nullable=False),
        sa.Column("version", sa.String(10), nullable=False),
        sa.Column("charset", sa.String(20), nullable=False),
        sa.Column("patient", sa.String(32), nullable=True),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("ack_code", sa.String(2), nullable=False),
        sa.Column("ack", sa.Text, nullable=False),
        sa.Column("dedup_key", sa.String(600), nullable=True),
        sa.Column("duplicate_of", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("processed_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_messages_dedup_key"),
    )
    op.create_index("ix_messages_state_id", "messages", ["state", "id"])
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_control_id", "messages", ["control_id"])
    op.create_index("ix_messages_patient", "messages", ["patient"])
    op.create_table(
        "appointments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(180), nullable=False),
        sa.Column("booking_id", sa.String(180), nullable=False),
        sa.Column("patient_system", sa.String(120), nullable=False),
        sa.Column("patient_value", sa.String(32), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("start", UTCDateTime, nullable=False),
        sa.Column("end", UTCDateTime, nullable=False),
        sa.Column("time_type", sa.String(40), nullable=True),
        sa.Column("visible", sa.Boolean, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", UTCDateTime, nullable=False),
        sa.Column("last_message_id", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("resource", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("namespace", "booking_id", name="uq_appointments_booking"),
    )
    op.create_index(
        "ix_appointments_patient_start", "appointments", ["patient_value", "patient_system", "start"]
    )
    op.create_index("ix_appointments_start", "appointments", ["start", "id"])
    op.create_index("ix_appointments_last_updated", "appointments", ["last_updated", "id"])


def downgrade() -> None:
    op.drop_table("appointments")
    op.drop_table("messages")
