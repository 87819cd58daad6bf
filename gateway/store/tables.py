"""The schema. Changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from gateway.store.db import UTCDateTime

metadata = MetaData()

# Every inbound message, raw, before it is acknowledged. `dedup_key` is set only for accepted
# messages (sending app|facility|MSH-10), so a repeat of an accepted message is found by it.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("transport", String(8), nullable=False),
    Column("peer", String(64), nullable=True),
    Column("sending_application", String(180), nullable=False, default=""),
    Column("sending_facility", String(180), nullable=False, default=""),
    Column("control_id", String(199), nullable=False, default=""),
    Column("message_type", String(8), nullable=False, default=""),
    Column("trigger", String(8), nullable=False, default=""),
    Column("version", String(10), nullable=False, default=""),
    Column("charset", String(20), nullable=False, default=""),
    Column("patient", String(32), nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("state", String(12), nullable=False),
    Column("error", Text, nullable=True),
    Column("ack_code", String(2), nullable=False),
    Column("ack", Text, nullable=False),
    Column("dedup_key", String(600), nullable=True),
    Column("duplicate_of", Integer, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("processed_at", UTCDateTime, nullable=True),
    # About a protected person (R-ID-3): shown with its PID segment masked.
    Column("restricted", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("dedup_key", name="uq_messages_dedup_key"),
)
Index("ix_messages_state_id", messages.c.state, messages.c.id)
Index("ix_messages_received_at", messages.c.received_at)
Index("ix_messages_control_id", messages.c.control_id)
Index("ix_messages_patient", messages.c.patient)

# The current state of each booking as a FHIR Appointment, validated once and stored as JSON.
appointments = Table(
    "appointments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("namespace", String(180), nullable=False),
    Column("booking_id", String(180), nullable=False),
    Column("patient_system", String(120), nullable=False),
    Column("patient_value", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("time_type", String(40), nullable=True),
    Column("visible", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
    Column("last_message_id", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("resource", LargeBinary, nullable=False),
    # Why the booking is not shown (rule id and text); NULL when it is shown.
    Column("withheld_reason", Text, nullable=True),
    # The number the journal used when the register says it has changed (R-ID-5).
    Column("journal_patient_value", String(32), nullable=True),
    UniqueConstraint("namespace", "booking_id", name="uq_appointments_booking"),
)
Index(
    "ix_appointments_patient_start",
    appointments.c.patient_value,
    appointments.c.patient_system,
    appointments.c.start,
)
Index("ix_appointments_start", appointments.c.start, appointments.c.id)
Index("ix_appointments_last_updated", appointments.c.last_updated, appointments.c.id)
