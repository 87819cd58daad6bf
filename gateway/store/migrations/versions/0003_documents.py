"""E-documents: documents (with their Communication), attachments, the print list, history.

Also messages.retry_at: a kallelse waiting for its booking is tried again later without
holding up the messages after it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("retry_at", UTCDateTime, nullable=True))
    op.create_table(
        "documents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(180), nullable=False),
        sa.Column("document_number", sa.String(180), nullable=False),
        sa.Column("document_type", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("patient_system", sa.String(120), nullable=False),
        sa.Column("patient_value", sa.String(32), nullable=False),
        sa.Column("journal_patient_value", sa.String(32), nullable=True),
        sa.Column("booking_id", sa.String(180), nullable=True),
        sa.Column("appointment_id", sa.String(64), nullable=True),
        sa.Column("unit_hsa_id", sa.String(64), nullable=True),
        sa.Column("unit_name", sa.String(200), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("written_at", UTCDateTime, nullable=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("rules", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("flags", sa.String(200), nullable=False, server_default=""),
        sa.Column("mailbox_provider", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("read_at", UTCDateTime, nullable=True),
        sa.Column("last_read_at", UTCDateTime, nullable=True),
        sa.Column("print_due_at", UTCDateTime, nullable=True),
        sa.Column("outdated_at", UTCDateTime, nullable=True),
        sa.Column("outdated_reason", sa.Text, nullable=True),
        sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("protection", sa.String(24), nullable=True),
        sa.Column("visible", sa.Boolean, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_updated", UTCDateTime, nullable=False),
        sa.Column("last_message_id", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("resource", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("namespace", "document_number", name="uq_documents_number"),
    )
    op.create_index("ix_documents_appointment", "documents", ["appointment_id"])
    op.create_index("ix_documents_last_updated", "documents", ["last_updated", "id"])
    op.create_index("ix_documents_patient", "documents", ["patient_value", "patient_system", "last_updated"])
    op.create_index("ix_documents_print_due", "documents", ["print_due_at"])
    op.create_index("ix_documents_created_at", "documents", ["created_at", "id"])
    op.create_index("ix_documents_outcome", "documents", ["outcome", "last_updated"])
    op.create_table(
        "document_recipients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("system", sa.String(120), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(40), nullable=True),
    )
    op.create_index("ix_document_recipients_document", "document_recipients", ["document_id"])
    op.create_index("ix_document_recipients_value", "document_recipients", ["value", "document_id"])
    op.create_table(
        "document_attachments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_document_attachments_document", "document_attachments", ["document_id", "position"])
    op.create_table(
        "print_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("unit_hsa_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("rules", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("handled_at", UTCDateTime, nullable=True),
        sa.Column("handled_by", sa.String(120), nullable=True),
        sa.UniqueConstraint("document_id", name="uq_print_items_document"),
    )
    op.create_index("ix_print_items_open", "print_items", ["handled_at", "added_at"])
    op.create_table(
        "document_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(120), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_document_events_document", "document_events", ["document_id", "id"])


def downgrade() -> None:
    for table in (
        "document_events",
        "print_items",
        "document_attachments",
        "document_recipients",
        "documents",
    ):
        op.drop_table(table)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("retry_at")
