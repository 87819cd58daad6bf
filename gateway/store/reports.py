"""The unit's document report (R-DOC-8, 001 "Vårdenhetens rapporter"): one row per document.

Per document created in a period (``documents.created_at``, ``start`` inclusive, ``end``
exclusive): date, personnummer, document name, kind, unit, routing outcome, status in the
platform, the mailbox it went to, when it was first and last opened, whether it is on the
print list and handled, and whether it is outdated (R-BK-3).

Decisions:

- **Period bounds** (:func:`parse_bound`): a bare date is midnight in Europe/Stockholm (the
  units' day); a datetime without an offset is Stockholm local time too; one with an offset is
  taken as it is. So ``from=2026-12-01&to=2026-12-02`` is that Swedish day, summer or winter.
- **Status in the platform**: ``read`` once opened (``read_at``); ``unread`` when it reached the
  platform (routed ``deliver`` or ``sent_at`` set) and was not opened; ``not-sent`` when it never
  reached the platform (printed, held, refused), where "unread" would mislead.
- **Mailbox**: the provider's code (``Kivra``, ``Billo``, ``MinMyndighetspost``) or None.
- **Protected persons** (R-ID-3) are listed like everyone else with ``restricted`` set: the
  report is a staff view and has no name or address to hide.
- The rows carry personnummer (R-DOC-8 asks for them): callers must never log them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from gateway.errors import InvalidRequest
from gateway.store.print_list import split_rules
from gateway.store.tables import documents, print_items

STOCKHOLM = ZoneInfo("Europe/Stockholm")

#: A report spans at most this long, so one request cannot pull the whole table.
MAX_PERIOD = timedelta(days=366)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ReportRow:
    document_id: str
    created_at: datetime
    patient_system: str
    personnummer: str
    title: str
    kind: str
    unit_hsa_id: str | None
    unit_name: str | None
    outcome: str
    rules: tuple[str, ...]
    platform_status: str
    read_at: datetime | None
    mailbox_provider: str | None
    last_read_at: datetime | None
    print_item_id: int | None
    print_handled_at: datetime | None
    print_handled_by: str | None
    outdated_at: datetime | None
    restricted: bool

    @property
    def on_print_list(self) -> bool:
        return self.print_item_id is not None

    @property
    def print_handled(self) -> bool:
        return self.print_handled_at is not None


def parse_bound(name: str, value: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO 8601 datetime; without an offset it is Stockholm time."""
    text = value.strip()
    try:
        if _DATE.fullmatch(text):
            return datetime.combine(date.fromisoformat(text), time(), STOCKHOLM)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{name}: {value!r} is not a date (2026-12-01) or datetime (2026-12-01T08:00:00+01:00)"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=STOCKHOLM)


def period(start: str | None, end: str | None) -> Period:
    """The report period from the ``from`` and ``to`` parameters (both required)."""
    if not start:
        raise InvalidRequest("from: required (a date such as 2026-12-01, or a datetime)")
    if not end:
        raise InvalidRequest("to: required (exclusive; a date such as 2027-01-01, or a datetime)")
    p = Period(parse_bound("from", start), parse_bound("to", end))
    if p.end <= p.start:
        raise InvalidRequest("to must be after from (from is inclusive, to exclusive)")
    if p.end - p.start > MAX_PERIOD:
        raise InvalidRequest(f"the period is at most {MAX_PERIOD.days} days; ask for it in parts")
    return p


def _platform_status(outcome: str, sent_at: datetime | None, read_at: datetime | None) -> str:
    if read_at is not None:
        return "read"
    if outcome == "deliver" or sent_at is not None:
        return "unread"
    return "not-sent"


def document_report(conn: Connection, p: Period, unit: str | None = None) -> list[ReportRow]:
    """R-DOC-8: the documents created in ``p`` (for one unit's HSA-id, if given), oldest first."""
    d = documents.c
    by_unit = [d.unit_hsa_id == unit] if unit else []
    rows = conn.execute(
        select(
            d.id,
            d.created_at,
            d.patient_system,
            d.patient_value,
            d.title,
            d.kind,
            d.unit_hsa_id,
            d.unit_name,
            d.outcome,
            d.rules,
            d.sent_at,
            d.read_at,
            d.mailbox_provider,
            d.last_read_at,
            d.outdated_at,
            d.restricted,
            print_items.c.id.label("print_item_id"),
            print_items.c.handled_at,
            print_items.c.handled_by,
        )
        .select_from(documents.outerjoin(print_items, print_items.c.document_id == d.id))
        .where(d.created_at >= p.start, d.created_at < p.end, *by_unit)
        .order_by(d.created_at, d.id)
    ).all()
    return [
        ReportRow(
            document_id=r.id,
            created_at=r.created_at,
            patient_system=r.patient_system,
            personnummer=r.patient_value,
            title=r.title,
            kind=r.kind,
            unit_hsa_id=r.unit_hsa_id,
            unit_name=r.unit_name,
            outcome=r.outcome,
            rules=split_rules(r.rules),
            platform_status=_platform_status(r.outcome, r.sent_at, r.read_at),
            read_at=r.read_at,
            mailbox_provider=r.mailbox_provider,
            last_read_at=r.last_read_at,
            print_item_id=r.print_item_id,
            print_handled_at=r.handled_at,
            print_handled_by=r.handled_by,
            outdated_at=r.outdated_at,
            restricted=bool(r.restricted),
        )
        for r in rows
    ]
