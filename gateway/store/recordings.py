"""The recording in the gateway's database: the writer of outbound calls, export, import, pruning.

The :class:`Recorder` takes exchanges from the event loop (never blocking it) and writes them
from a thread of its own, everything queued in one transaction, as the inbox does. Export puts
a recording file together from three tables: ``messages`` (inbound, raw bytes and ACK),
``recorded_exchanges`` (outbound) and ``appointments``/``documents`` (the FHIR outputs).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, select

import gateway
from gateway.recording import fileformat
from gateway.recording.fileformat import Recording, put_bytes
from gateway.recording.matching import mentions
from gateway.store.tables import appointments, documents, messages, recorded_exchanges

log = structlog.get_logger(__name__)

LIVE = ""  # the source of what this gateway recorded itself


def _ids_text(ids: Iterable[int]) -> str:
    ids = list(ids)
    return "," + ",".join(str(i) for i in ids) + "," if ids else ""


class Recorder:
    """Writes outbound exchanges to ``recorded_exchanges`` from its own thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, line: dict[str, Any]) -> None:
        """The transports' sink: queue one exchange (from any thread or loop)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
                    self._thread.start()
        self._queue.put(line)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first] if first is not None else []
            stopping = first is None
            while not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        rows = [
            {
                "source": LIVE,
                "kind": "outbound",
                "at": datetime.fromisoformat(line["at"]),
                "service": line["service"],
                "message_ids": _ids_text(line.get("message_ids", ())),
                "control_id": "",
                "message_type": "",
                "patient": None,
                "line": orjson.dumps(line),
            }
            for line in batch
        ]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(recorded_exchanges), rows)
            self.written += len(rows)
        except Exception as exc:  # a recording must never stop the gateway
            log.error("recording.write_failed", error=type(exc).__name__, lost=len(rows))


def prune(engine: Engine, older_than_days: float, *, now: datetime | None = None) -> int:
    """Delete recorded outbound calls older than ``older_than_days``; returns how many.

    Only what this gateway recorded itself: imported recordings stay until deleted by name.
    Inbound messages are the gateway's own records and are not pruned here.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    with engine.begin() as conn:
        result = conn.execute(
            delete(recorded_exchanges).where(
                recorded_exchanges.c.source == LIVE, recorded_exchanges.c.at < cutoff
            )
        )
    return int(result.rowcount or 0)


def drop_source(engine: Engine, source: str) -> int:
    with engine.begin() as conn:
        result = conn.execute(delete(recorded_exchanges).where(recorded_exchanges.c.source == source))
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    patient: str | None = None
    message_type: str | None = None
    trigger: str | None = None

    def about(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "patient": self.patient,
            "message_type": self.message_type,
            "trigger": self.trigger,
        }


def export_lines(engine: Engine, f: ExportFilter, *, source: str = LIVE) -> Iterator[dict[str, Any]]:
    """The lines of a recording file for the messages ``f`` selects (header first)."""
    if source != LIVE:
        yield from _export_imported(engine, f, source)
        return
    with engine.connect() as conn:
        inbound = list(_inbound(conn, f))
        ids = {line["message_id"] for line in inbound}
        control = {line["message_id"]: line["control_id"] for line in inbound}
        patients = {line["patient"] for line in inbound if line.get("patient")}
        outbound = list(_outbound(conn, f, ids, patients, control))
        outputs = list(_outputs(conn, ids, control))
    yield fileformat.header(
        created_at=datetime.now(UTC).isoformat(),
        gateway_version=gateway.__version__,
        filter=f.about(),
        counts={"inbound": len(inbound), "outbound": len(outbound), "output": len(outputs)},
    )
    yield from inbound
    yield from outbound
    yield from outputs


def _message_where(f: ExportFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.since is not None:
        where.append(messages.c.received_at >= f.since)
    if f.until is not None:
        where.append(messages.c.received_at < f.until)
    if f.patient:
        where.append(messages.c.patient == f.patient.replace("-", ""))
    if f.message_type:
        where.append(messages.c.message_type == f.message_type)
    if f.trigger:
        where.append(messages.c.trigger == f.trigger)
    return where


def _inbound(conn: Connection, f: ExportFilter) -> Iterator[dict[str, Any]]:
    rows = conn.execute(select(messages).where(*_message_where(f)).order_by(messages.c.id))
    for row in rows.mappings():
        line: dict[str, Any] = {
            "type": "inbound",
            "message_id": row["id"],
            "control_id": row["control_id"],
            "received_at": row["received_at"].isoformat(),
            "transport": row["transport"],
            "sending_application": row["sending_application"],
            "sending_facility": row["sending_facility"],
            "message_type": row["message_type"],
            "trigger": row["trigger"],
            "charset": row["charset"],
            "patient": row["patient"],
        }
        put_bytes(line, "raw", row["raw"])
        line.update(
            ack=row["ack"],
            ack_code=row["ack_code"],
            state=row["state"],
            error=row["error"],
            duplicate_of=row["duplicate_of"],
        )
        yield line


def _outbound(
    conn: Connection, f: ExportFilter, ids: set[int], patients: set[str], control: dict[int, str]
) -> Iterator[dict[str, Any]]:
    """Calls made for the selected messages; calls made for no message (the mailbox outbox) in
    the time range, and, with a patient filter, only those that name the patient."""
    where: list[ColumnElement[bool]] = [recorded_exchanges.c.source == LIVE]
    if f.since is not None:
        where.append(recorded_exchanges.c.at >= f.since)
    rows = conn.execute(
        select(recorded_exchanges.c.line, recorded_exchanges.c.at)
        .where(*where)
        .order_by(recorded_exchanges.c.at, recorded_exchanges.c.id)
    )
    filtered = f.patient is not None or f.message_type is not None or f.trigger is not None
    for raw, at in rows:
        line = orjson.loads(raw)
        made_for = [i for i in line.get("message_ids", []) if i in ids]
        if line.get("message_ids"):
            if not made_for:
                continue
        else:
            if f.until is not None and at >= f.until + timedelta(hours=1):
                continue
            if filtered and not mentions(
                fileformat.get_bytes(line.get("request", {}), "body"), line.get("url", ""), patients
            ):
                continue
        line["control_ids"] = [control[i] for i in made_for]
        yield line


def _outputs(conn: Connection, ids: set[int], control: dict[int, str]) -> Iterator[dict[str, Any]]:
    """Each resource as it stands now, with the message that last changed it (if selected)."""
    for table, kind in ((appointments, "Appointment"), (documents, "Communication")):
        rows = conn.execute(
            select(table.c.id, table.c.last_message_id, table.c.visible, table.c.resource).order_by(
                table.c.last_message_id, table.c.id
            )
        )
        for row in rows:
            if row.last_message_id not in ids:
                continue
            yield {
                "type": "output",
                "resource_type": kind,
                "id": row.id,
                "message_id": row.last_message_id,
                "control_id": control[row.last_message_id],
                "served": bool(row.visible),
                "resource": orjson.loads(row.resource),
            }


def import_recording(engine: Engine, recording: Recording, source: str) -> int:
    """Store every line of ``recording`` under ``source`` (replacing an earlier import of it)."""
    if not source:
        raise ValueError("an imported recording needs a name")
    drop_source(engine, source)
    rows: list[dict[str, Any]] = []
    for line in recording.lines():
        at = line.get("received_at") or line.get("at") or line.get("created_at")
        rows.append(
            {
                "source": source,
                "kind": line["type"],
                "at": datetime.fromisoformat(at) if at else datetime.now(UTC),
                "service": line.get("service", "") or "",
                "message_ids": _ids_text(
                    line.get("message_ids", [])
                    or ([line["message_id"]] if line.get("message_id") is not None else [])
                ),
                "control_id": (line.get("control_id") or "")[:199],
                "message_type": (line.get("message_type") or "")[:8],
                "patient": line.get("patient"),
                "line": orjson.dumps(line),
            }
        )
    with engine.begin() as conn:
        for start in range(0, len(rows), 500):
            conn.execute(insert(recorded_exchanges), rows[start : start + 500])
    return len(rows)


def sources(engine: Engine) -> dict[str, int]:
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(
            select(recorded_exchanges.c.source, func.count()).group_by(recorded_exchanges.c.source)
        ).all()
    return {source: n for source, n in rows}


def _export_imported(engine: Engine, f: ExportFilter, source: str) -> Iterator[dict[str, Any]]:
    """An imported recording again, narrowed by the same filter (on its inbound lines)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(recorded_exchanges.c.line)
            .where(recorded_exchanges.c.source == source)
            .order_by(recorded_exchanges.c.id)
        ).scalars()
        lines = [orjson.loads(raw) for raw in rows]
    if not lines:
        raise fileformat.RecordingFormatError(f"no imported recording named {source!r}")
    recording = Recording(lines[0], [], [], [])
    for line in lines[1:]:
        {"inbound": recording.inbound, "outbound": recording.outbound, "output": recording.outputs}[
            line["type"]
        ].append(line)

    def selected(line: dict[str, Any]) -> bool:
        received = datetime.fromisoformat(line["received_at"])
        return (
            (f.since is None or received >= f.since)
            and (f.until is None or received < f.until)
            and (f.patient is None or line.get("patient") == f.patient.replace("-", ""))
            and (f.message_type is None or line.get("message_type") == f.message_type)
            and (f.trigger is None or line.get("trigger") == f.trigger)
        )

    inbound = [line for line in recording.inbound if selected(line)]
    ids = {line["message_id"] for line in inbound}
    patients = {line["patient"] for line in inbound if line.get("patient")}
    everything = len(inbound) == len(recording.inbound)
    outbound = [
        line
        for line in recording.outbound
        if everything
        or set(line.get("message_ids", [])) & ids
        or (
            not line.get("message_ids")
            and mentions(fileformat.get_bytes(line.get("request", {}), "body"), line.get("url", ""), patients)
        )
    ]
    outputs = [line for line in recording.outputs if line.get("message_id") in ids]
    yield {**recording.header, "filter": f.about(), "imported_as": source}
    yield from inbound
    yield from outbound
    yield from outputs
