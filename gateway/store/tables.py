"""The schema. Changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
# One unique index on (control_id, dedup_key) serves both deduplication and control id lookups
# (migration 0007): each index is a B-tree write for every message before its ACK.
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
    # A message waiting for something other than the register (a kallelse for a booking not yet
    # received) is tried again from this time, without holding up the messages after it.
    Column("retry_at", UTCDateTime, nullable=True),
)
Index("ix_messages_state_id", messages.c.state, messages.c.id)
Index("ix_messages_received_at", messages.c.received_at)
Index("uq_messages_control_dedup", messages.c.control_id, messages.c.dedup_key, unique=True)
Index("ix_messages_patient", messages.c.patient)
# Enhanced acknowledgement mode (docs/hl7-profile.md 5.4): the messages given a commit ACK CA,
# for the application ACK sender to find; a partial index, so original-mode messages (nearly all)
# add nothing to it.
Index(
    "ix_messages_enhanced",
    messages.c.id,
    sqlite_where=messages.c.ack_code == "CA",
    postgresql_where=messages.c.ack_code == "CA",
)

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

# One row per e-document (journal namespace + TXA-12): its latest version, the routing decision
# and the FHIR Communication served for it. ``text`` is the letter (for the PDF); never logged.
documents = Table(
    "documents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("namespace", String(180), nullable=False),
    Column("document_number", String(180), nullable=False),
    Column("document_type", String(12), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("patient_system", String(120), nullable=False),
    Column("patient_value", String(32), nullable=False),
    Column("journal_patient_value", String(32), nullable=True),
    Column("booking_id", String(180), nullable=True),
    Column("appointment_id", String(64), nullable=True),
    Column("unit_hsa_id", String(64), nullable=True),
    Column("unit_name", String(200), nullable=True),
    Column("author", String(200), nullable=True),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("written_at", UTCDateTime, nullable=True),
    # The routing decision (gateway.domain.documents.RoutingDecision).
    Column("outcome", String(12), nullable=False),
    Column("rules", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("flags", String(200), nullable=False, default=""),
    Column("mailbox_provider", String(40), nullable=True),
    # The operator's receipt once the outbox delivered it (transaction id, time).
    Column("mailbox_delivered_at", UTCDateTime, nullable=True),
    Column("mailbox_receipt", String(120), nullable=True),
    Column("status", String(20), nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("read_at", UTCDateTime, nullable=True),
    Column("last_read_at", UTCDateTime, nullable=True),
    # R-DOC-5: when a platform-only delivery goes to the print list unless read before it.
    Column("print_due_at", UTCDateTime, nullable=True),
    # R-BK-3: a kallelse whose booking changed after it was sent.
    Column("outdated_at", UTCDateTime, nullable=True),
    Column("outdated_reason", Text, nullable=True),
    # About a protected person (R-ID-3); never served to the platform unless released by staff.
    Column("restricted", Boolean, nullable=False, default=False),
    Column("protection", String(24), nullable=True),
    # Served over FHIR to the citizen platform.
    Column("visible", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
    Column("last_message_id", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    # The journal's content of the latest version: a repeat changes nothing, a clash is an error.
    Column("source_hash", String(64), nullable=False),
    Column("resource", LargeBinary, nullable=False),
    UniqueConstraint("namespace", "document_number", name="uq_documents_number"),
)
Index("ix_documents_patient", documents.c.patient_value, documents.c.patient_system, documents.c.last_updated)
Index("ix_documents_last_updated", documents.c.last_updated, documents.c.id)
Index("ix_documents_appointment", documents.c.appointment_id)
Index("ix_documents_outcome", documents.c.outcome, documents.c.last_updated)
Index("ix_documents_print_due", documents.c.print_due_at)
Index("ix_documents_created_at", documents.c.created_at, documents.c.id)

# Who got a copy of a document (routing's deliveries): the person, a mailbox, guardians, proxies.
document_recipients = Table(
    "document_recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False),
    Column("channel", String(12), nullable=False),
    Column("system", String(120), nullable=False),
    Column("value", String(32), nullable=False),
    Column("provider", String(40), nullable=True),
)
Index("ix_document_recipients_document", document_recipients.c.document_id)
Index("ix_document_recipients_value", document_recipients.c.value, document_recipients.c.document_id)

# The bilagor of a document's latest version (OBX ED), in message order.
document_attachments = Table(
    "document_attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index("ix_document_attachments_document", document_attachments.c.document_id, document_attachments.c.position)

# The staff print list (utskriftslista, R-DOC-5, R-DOC-9): one item per document; handled or not.
# Every change is also a row in document_events, so the history is kept.
print_items = Table(
    "print_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False),
    Column("unit_hsa_id", String(64), nullable=True),
    Column("kind", String(24), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("rules", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("handled_at", UTCDateTime, nullable=True),
    Column("handled_by", String(120), nullable=True),
    UniqueConstraint("document_id", name="uq_print_items_document"),
)
Index("ix_print_items_open", print_items.c.handled_at, print_items.c.added_at)

# What happened to each document, append-only: received, routed, held, released, printed,
# print-list handled/unhandled, read, outdated, replaced. Staff views read their history here.
document_events = Table(
    "document_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(24), nullable=False),
    Column("actor", String(120), nullable=True),
    Column("detail", Text, nullable=True),
)
Index("ix_document_events_document", document_events.c.document_id, document_events.c.id)

# The durable outbox to the digital mailboxes: a row is written in the same transaction as the
# routing decision; workers claim rows (claimed_until), deliver, and record the receipt. The
# message_id is the operator's idempotency key: a crash between send and commit re-sends the
# same letter, which the operator takes once.
mailbox_outbox = Table(
    "mailbox_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(64), nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("recipient_system", String(120), nullable=False),
    Column("recipient_value", String(32), nullable=False),
    # pending, delivered, refused (a permanent error), dead (gave up on transient errors),
    # cancelled (a newer version replaced the document before it went)
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("transaction_id", String(120), nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", name="uq_mailbox_outbox_message_id"),
)
Index("ix_mailbox_outbox_due", mailbox_outbox.c.state, mailbox_outbox.c.next_attempt_at, mailbox_outbox.c.id)
Index("ix_mailbox_outbox_document", mailbox_outbox.c.document_id)

# Application ACKs (enhanced mode, MSH-16) owed to senders, one per message given a commit ACK
# CA: sent to the sender's MLLP endpoint after processing and retried durably, like the mailbox
# outbox. state: pending, delivered, refused (the sender answered CR/AR), dead (gave up),
# skipped (MSH-16 asked for none), unroutable (no endpoint configured for the sender).
hl7_app_acks = Table(
    "hl7_app_acks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Integer, nullable=False),
    Column("sending_application", String(180), nullable=False),
    Column("sending_facility", String(180), nullable=False),
    Column("endpoint", String(260), nullable=True),
    Column("ack_code", String(2), nullable=False),
    Column("ack", Text, nullable=False),
    Column("charset", String(20), nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", name="uq_hl7_app_acks_message_id"),
)
Index("ix_hl7_app_acks_due", hl7_app_acks.c.state, hl7_app_acks.c.next_attempt_at, hl7_app_acks.c.id)

# Record and replay (gateway/recording, docs/recording.md). With GATEWAY_RECORD on, one row per
# call to an outside system (source ""), the message ids it was made for in ``message_ids``
# (",12,13,"). ``gateway record import`` adds a recording file's lines under its name. The
# inbound messages and their ACKs are the messages table's rows; the FHIR outputs the
# appointments' and documents' rows: a recording is put together from all three on export.
recorded_exchanges = Table(
    "recorded_exchanges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(120), nullable=False, default=""),
    Column("kind", String(12), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("service", String(20), nullable=False, default=""),
    Column("message_ids", Text, nullable=False, default=""),
    Column("control_id", String(199), nullable=False, default=""),
    Column("message_type", String(8), nullable=False, default=""),
    Column("patient", String(32), nullable=True),
    # The line as in a recording file (JSON).
    Column("line", LargeBinary, nullable=False),
)
Index("ix_recorded_exchanges_source_at", recorded_exchanges.c.source, recorded_exchanges.c.at)

# R-ID-5: an old number the register says was replaced (GN/GS ``Hanvisning`` Till from the old
# one, ``Fran`` on the current one), so a search by the old number finds the person's current
# bookings and documents. Learnt by the worker at every lookup; never served as such.
identifier_links = Table(
    "identifier_links",
    metadata,
    Column("old_value", String(32), primary_key=True),
    Column("old_system", String(200), nullable=False),
    Column("current_value", String(32), nullable=False),
    Column("current_system", String(200), nullable=False),
    Column("learned_at", UTCDateTime, nullable=False),
)
Index("ix_identifier_links_current", identifier_links.c.current_value)

# The audit trail (docs/audit.md, Patientdatalagen): one row per HTTP request to a route that
# reads or changes personal data, allowed or refused. Append-only: no route changes it, and
# triggers (migration 0006) refuse UPDATE and DELETE. In a MetaData of its own, so nothing that
# clears or copies the working tables (tests, tools) ever touches it.
audit_metadata = MetaData()
audit_events = Table(
    "audit_events",
    audit_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    # The token's subject; "anonymous" with auth off, "unauthenticated" before a token was trusted.
    Column("caller", String(200), nullable=False),
    Column("client", String(200), nullable=True),
    Column("scope", String(20), nullable=True),
    # read, search, create, update (or the method, for a refused one: delete, ...)
    Column("action", String(12), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("resource_id", String(200), nullable=True),
    # The personnummer (or samordnings-/reservnummer) the access concerned, when known.
    Column("patient", String(32), nullable=True),
    Column("purpose", String(100), nullable=False),
    Column("method", String(8), nullable=False),
    # The route template (/fhir/Appointment/{appointment_id}), never the raw path.
    Column("route", String(200), nullable=False),
    # The search parameters as sent (query string, or the form body of POST _search).
    Column("query", Text, nullable=True),
    Column("result", Integer, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("peer", String(64), nullable=True),
)
Index("ix_audit_events_patient_at", audit_events.c.patient, audit_events.c.at)
Index("ix_audit_events_caller_at", audit_events.c.caller, audit_events.c.at)
Index("ix_audit_events_at", audit_events.c.at)

# SMS reminders and notices (gateway/domain/notifications.py): the plan, written in the same
# transaction as the booking or document change it follows, and what became of each. A row
# that will not be sent (``skipped``, ``cancelled``) keeps why, for staff. ``idempotency_key``
# is set when planned and never changes: the worker marks ``sending`` before the provider call
# and after a crash asks the provider by the same key, so an SMS goes at most once.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    # appointment or document, and its id
    Column("subject", String(12), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("patient_system", String(120), nullable=False),
    Column("patient_value", String(32), nullable=False),
    Column("recipient_system", String(120), nullable=False),
    Column("recipient_value", String(32), nullable=False),
    Column("role", String(12), nullable=False),
    # planned, skipped, cancelled, sending, sent, dead
    Column("state", String(12), nullable=False),
    Column("due_at", UTCDateTime, nullable=True),
    Column("visit_start", UTCDateTime, nullable=True),
    Column("rules", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("idempotency_key", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("sending_since", UTCDateTime, nullable=True),
    Column("provider_id", String(120), nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
)
Index("ix_notifications_due", notifications.c.state, notifications.c.next_attempt_at, notifications.c.id)
Index("ix_notifications_subject", notifications.c.subject, notifications.c.subject_id)
Index("ix_notifications_patient", notifications.c.patient_value, notifications.c.patient_system)
# The staff console's server-side sessions (gateway/api/console): the browser's cookie carries
# only a random token; the row is keyed by its SHA-256, so a copy of this table signs no one in.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # JSON: the sign-in in progress (state, nonce, PKCE verifier), then who signed in, their
    # roles and the form (CSRF) token.
    Column("data", Text, nullable=False),
)
Index("ix_console_sessions_expires_at", console_sessions.c.expires_at)

# Citizen self-service (issue 21, docs/self-service.md): one row per idempotency key, written
# before the journal is called; state pending -> done | failed. ``result_booking_id`` links the
# journal's SIU for the change back to the command (``echoed_at``).
booking_commands = Table(
    "booking_commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("patient", String(32), nullable=False),
    Column("unit", String(64), nullable=False),
    Column("booking_id", String(64)),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("time_type", String(32)),
    Column("state", String(16), nullable=False),
    Column("result_booking_id", String(64)),
    Column("detail", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("echoed_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("idempotency_key", name="uq_booking_commands_key"),
)
Index("ix_booking_commands_result", booking_commands.c.result_booking_id)
