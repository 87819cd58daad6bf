"""The document report's period and CSV (R-DOC-8), without I/O."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from gateway.api.reports import CSV_COLUMNS, report_csv
from gateway.errors import InvalidRequest
from gateway.store.reports import STOCKHOLM, ReportRow, parse_bound, period


def test_r_doc_8_a_bare_date_is_midnight_in_stockholm_winter_and_summer() -> None:
    assert parse_bound("from", "2026-12-01") == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert parse_bound("from", "2026-07-01") == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert parse_bound("to", "2026-07-01T10:00") == datetime(2026, 7, 1, 10, 0, tzinfo=STOCKHOLM)
    assert parse_bound("to", "2026-07-01T10:00:00Z") == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (None, "2026-12-02", "from: required"),
        ("2026-12-01", None, "to: required"),
        ("1 december", "2026-12-02", "from: '1 december' is not a date"),
        ("2026-12-01", "2026-13-01", "to: '2026-13-01' is not a date"),
        ("2026-12-02", "2026-12-01", "to must be after from"),
        ("2025-01-01", "2026-12-01", "at most 366 days"),
    ],
)
def test_r_doc_8_a_bad_period_is_refused_naming_the_parameter(
    start: str | None, end: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        period(start, end)


def _row(**overrides: object) -> ReportRow:
    t0 = datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
    values: dict[str, object] = {
        "document_id": "doc-1",
        "created_at": t0,
        "patient_system": "http://electronichealth.se/identifier/personnummer",
        "personnummer": "191212121212",
        "title": "Kallelse till Vårdcentralen Tolvåsen; åäö",
        "kind": "e-kallelse",
        "unit_hsa_id": "SE2321000016-15CQ",
        "unit_name": "Vårdcentralen Tolvåsen",
        "outcome": "deliver",
        "rules": ("R-DOC-4",),
        "platform_status": "read",
        "read_at": t0 + timedelta(hours=1),
        "mailbox_provider": None,
        "last_read_at": t0 + timedelta(days=1),
        "print_item_id": None,
        "print_handled_at": None,
        "print_handled_by": None,
        "outdated_at": None,
        "restricted": False,
    }
    values.update(overrides)
    return ReportRow(**values)  # type: ignore[arg-type]


def test_r_doc_8_csv_is_utf8_with_bom_semicolons_and_swedish_headers() -> None:
    data = report_csv(
        [
            _row(),
            _row(
                document_id="doc-2",
                title="=HYPERLINK(1)",
                outcome="print-list",
                platform_status="not-sent",
                read_at=None,
                last_read_at=None,
                mailbox_provider="MinMyndighetspost",
                print_item_id=7,
                print_handled_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
                print_handled_by="anna",
                outdated_at=datetime(2026, 12, 4, tzinfo=UTC),
                restricted=True,
            ),
        ]
    )
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert list(rows[0]) == [header for header, _ in CSV_COLUMNS]
    first, second = rows
    assert first["Datum"] == "2026-12-01 09:05"  # Stockholm time
    assert first["Personnummer"] == "19121212-1212"
    assert first["Dokumentnamn"] == "Kallelse till Vårdcentralen Tolvåsen; åäö"
    assert (first["Status i plattformen"], first["Öppnad"], first["Senast öppnad"]) == (
        "läst",
        "2026-12-01 10:05",
        "2026-12-02 09:05",
    )
    assert (first["Digital brevlåda"], first["På utskriftslistan"], first["Hanterad"]) == ("ingen", "nej", "")
    assert (first["Utfall"], first["Inaktuell"], first["Skyddad"]) == ("levererad", "nej", "nej")
    assert second["Dokumentnamn"] == "'=HYPERLINK(1)"  # never a formula in Excel
    assert (second["Status i plattformen"], second["Digital brevlåda"]) == (
        "ej skickat",
        "Min Myndighetspost",
    )
    assert (second["På utskriftslistan"], second["Hanterad"], second["Hanterad av"]) == (
        "ja",
        "2026-12-03 13:00",
        "anna",
    )
    assert (second["Utfall"], second["Inaktuell"], second["Skyddad"]) == ("utskriftslista", "ja", "ja")
