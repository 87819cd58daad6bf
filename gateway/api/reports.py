"""The unit's document report (R-DOC-8) over HTTP: ``GET /reports/documents?from=&to=``.

JSON by default; CSV for Excel with ``format=csv`` or ``Accept: text/csv``. The CSV is what
Swedish Excel opens by double-click: UTF-8 with a byte-order mark (else Excel reads it as
Windows-1252 and å ä ö break), ``;`` between fields (Swedish Excel's list separator, since
``,`` is the decimal comma), CRLF line ends, a header row in Swedish, times in Swedish local
time (``2026-12-01 09:00``), personnummer as ``YYYYMMDD-NNNN`` so Excel keeps it as text
instead of turning it into a number, and a ``'`` before any text starting with ``= + - @`` so
no cell becomes a formula (CSV injection). JSON keeps machine forms: UTC ISO 8601, 12 digits.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from gateway.api.deps import NotAcceptable, StoreDep
from gateway.errors import InvalidRequest
from gateway.store import reports
from gateway.store.reports import STOCKHOLM, Period, ReportRow

router = APIRouter(tags=["Reports"])

#: (header, what it holds) in column order; docs/print-list.md lists the same.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Datum", "when the gateway received the document (local time)"),
    ("Personnummer", "the document's patient number"),
    ("Dokumentnamn", "title"),
    ("Typ", "e-kallelse, e-brev, e-remissbekräftelse"),
    ("Vårdenhet", "unit name"),
    ("HSA-id", "unit HSA-id"),
    ("Utfall", "routing outcome"),
    ("Status i plattformen", "oläst, läst or ej skickat"),
    ("Öppnad", "first opened"),
    ("Digital brevlåda", "Kivra, Billo, Min Myndighetspost or ingen"),
    ("Senast öppnad", "last opened"),
    ("På utskriftslistan", "ja/nej"),
    ("Hanterad", "when handled on the print list"),
    ("Hanterad av", "who handled it"),
    ("Inaktuell", "ja/nej: an e-kallelse whose booking changed (R-BK-3)"),
    ("Skyddad", "ja/nej: protected person (R-ID-3)"),
    ("Dokument-id", "the gateway's document id"),
)

_OUTCOME_SV = {"deliver": "levererad", "print-list": "utskriftslista", "hold": "vilande", "refuse": "stoppad"}
_STATUS_SV = {"read": "läst", "unread": "oläst", "not-sent": "ej skickat"}
_MAILBOX_SV = {"MinMyndighetspost": "Min Myndighetspost"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def row_json(row: ReportRow) -> dict[str, Any]:
    return {
        "document_id": row.document_id,
        "date": row.created_at.isoformat(),
        "personnummer": row.personnummer,
        "patient_system": row.patient_system,
        "title": row.title,
        "kind": row.kind,
        "unit": row.unit_hsa_id,
        "unit_name": row.unit_name,
        "outcome": row.outcome,
        "rules": list(row.rules),
        "platform_status": row.platform_status,
        "read_at": _iso(row.read_at),
        "mailbox": row.mailbox_provider,
        "last_read_at": _iso(row.last_read_at),
        "on_print_list": row.on_print_list,
        "print_item_id": row.print_item_id,
        "print_handled": row.print_handled,
        "print_handled_at": _iso(row.print_handled_at),
        "print_handled_by": row.print_handled_by,
        "outdated": row.outdated_at is not None,
        "outdated_at": _iso(row.outdated_at),
        "restricted": row.restricted,
    }


def _local(value: datetime | None) -> str:
    return value.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _text(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _number(value: str) -> str:
    return f"{value[:8]}-{value[8:]}" if len(value) == 12 and value.isdigit() else _text(value)


def _yes(value: bool) -> str:
    return "ja" if value else "nej"


def report_csv(rows: Sequence[ReportRow]) -> bytes:
    """The report as CSV for Swedish Excel (see the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([header for header, _ in CSV_COLUMNS])
    for r in rows:
        writer.writerow(
            [
                _local(r.created_at),
                _number(r.personnummer),
                _text(r.title),
                r.kind,
                _text(r.unit_name),
                _text(r.unit_hsa_id),
                _OUTCOME_SV.get(r.outcome, r.outcome),
                _STATUS_SV.get(r.platform_status, r.platform_status),
                _local(r.read_at),
                _MAILBOX_SV.get(r.mailbox_provider, r.mailbox_provider) if r.mailbox_provider else "ingen",
                _local(r.last_read_at),
                _yes(r.on_print_list),
                _local(r.print_handled_at),
                _text(r.print_handled_by),
                _yes(r.outdated_at is not None),
                _yes(r.restricted),
                r.document_id,
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def wants_csv(request: Request, fmt: str | None) -> bool:
    """``format`` decides; else the first media type in Accept that we can produce."""
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise InvalidRequest("format must be json or csv")
        return fmt == "csv"
    accept = request.headers.get("accept")
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("text/csv", "text/*"):
            return True
        if media in ("application/json", "application/*", "*/*"):
            return False
    raise NotAcceptable(f"cannot produce {accept!r}; this report is application/json or text/csv")


def _filename(p: Period) -> str:
    return f"dokumentrapport_{_local(p.start)[:10]}_{_local(p.end)[:10]}.csv"


@router.get("/reports/documents", summary="R-DOC-8: per document in a period, for the unit's staff")
def document_report(
    request: Request,
    store: StoreDep,
    start: Annotated[
        str | None,
        Query(alias="from", description="inclusive: 2026-12-01 (Stockholm midnight) or a datetime"),
    ] = None,
    end: Annotated[str | None, Query(alias="to", description="exclusive, same forms as from")] = None,
    fmt: Annotated[str | None, Query(alias="format", description="json (default) or csv")] = None,
    unit: Annotated[str | None, Query(description="only this unit's documents (HSA-id)")] = None,
) -> Response:
    csv_out = wants_csv(request, fmt)
    p = reports.period(start, end)
    with store.connect() as conn:
        rows = reports.document_report(conn, p, unit or None)
    if csv_out:
        return Response(
            report_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_filename(p)}"'},
        )
    return JSONResponse(
        {
            "from": p.start.isoformat(),
            "to": p.end.isoformat(),
            "total": len(rows),
            "documents": [row_json(r) for r in rows],
        }
    )
