"""The staff print list and the document report through the real HTTP server (R-DOC-9, R-DOC-8)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pypdf import PdfReader

from gateway.testing import GatewayThread
from tests.conftest import emptied
from tests.documents_factory import InsertedDocument, insert_document, pdf_attachment


@pytest.fixture
def gateway(module_gateway: GatewayThread) -> GatewayThread:
    """One gateway for the module, emptied before each test (the tests are about what it answers,
    not about starting up); still reached through its real ports."""
    return emptied(module_gateway)


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _insert(gateway: GatewayThread, **values: object) -> InsertedDocument:
    with gateway.gateway.engine.begin() as conn:
        return insert_document(conn, **values)  # type: ignore[arg-type]


def _item_id(doc: InsertedDocument) -> int:
    assert doc.print_item_id is not None
    return doc.print_item_id


def test_r_doc_9_staff_list_handle_in_bulk_unhandle_and_see_the_history(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    a = _insert(gateway, added_at=T0, title="Brev ett")
    b = _insert(gateway, added_at=T0 + timedelta(minutes=1), kind="e-kallelse", title="Kallelse två")
    c = _insert(gateway, added_at=T0 + timedelta(minutes=2), unit_hsa_id="SE2321000016-7Q2X")

    body = http.get("/print-list").json()
    assert body["state"] == "open" and body["total"] == 3
    assert [i["id"] for i in body["items"]] == [_item_id(a), _item_id(b), _item_id(c)]
    first = body["items"][0]
    assert first["document_id"] == a.document_id
    assert first["personnummer"] == "191212121212"
    assert first["title"] == "Brev ett" and first["kind"] == "e-brev"
    assert first["unit"] == "SE2321000016-15CQ" and first["unit_name"] == "Vårdcentralen Tolvåsen"
    assert first["rules"] == ["R-DOC-3", "R-DOC-5"] and "control code" in first["reason"]
    assert first["added_at"] == T0.isoformat()
    assert (first["handled"], first["handled_at"], first["handled_by"], first["outdated"]) == (
        False,
        None,
        None,
        False,
    )
    assert [i["id"] for i in http.get("/print-list", params={"kind": "e-kallelse"}).json()["items"]] == [
        _item_id(b)
    ]
    assert [
        i["id"] for i in http.get("/print-list", params={"unit": "SE2321000016-7Q2X"}).json()["items"]
    ] == [_item_id(c)]
    page = http.get("/print-list", params={"_count": 1, "_offset": 1}).json()
    assert (page["total"], [i["id"] for i in page["items"]]) == (3, [_item_id(b)])

    # One item, then several at once; the one already handled is reported and left alone.
    r = http.post("/print-list/handle", json={"ids": [_item_id(a)], "by": "anna"})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == [_item_id(a)] and r.json()["items"][0]["handled_by"] == "anna"
    r = http.post("/print-list/handle", json={"ids": [_item_id(a), _item_id(b), _item_id(c)], "by": "bertil"})
    assert (r.json()["changed"], r.json()["unchanged"]) == ([_item_id(b), _item_id(c)], [_item_id(a)])
    assert [i["handled_by"] for i in r.json()["items"]] == ["anna", "bertil", "bertil"]
    assert http.get("/print-list").json()["total"] == 0
    handled = http.get("/print-list", params={"state": "handled"}).json()
    assert handled["total"] == 3

    r = http.post("/print-list/unhandle", json={"ids": [_item_id(a)], "by": "cecilia"})
    assert r.json()["changed"] == [_item_id(a)]
    assert [i["id"] for i in http.get("/print-list").json()["items"]] == [_item_id(a)]
    assert http.get("/print-list", params={"state": "all"}).json()["total"] == 3

    item = http.get(f"/print-list/{_item_id(a)}").json()
    assert item["handled"] is False
    assert [(e["event"], e["actor"]) for e in item["history"]] == [
        ("received", None),
        ("print-listed", None),
        ("print-handled", "anna"),
        ("print-unhandled", "cecilia"),
    ]


def test_r_doc_9_an_unknown_item_is_a_404_naming_it_and_nothing_changes(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    a = _insert(gateway)
    r = http.post("/print-list/handle", json={"ids": [_item_id(a), 424242], "by": "anna"})
    assert r.status_code == 404
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "424242" in outcome["issue"][0]["diagnostics"]
    assert http.get("/print-list").json()["total"] == 1
    assert http.get("/print-list/424242").status_code == 404
    assert http.get("/print-list/424242/document.pdf").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/print-list", {"params": {"state": "done"}}),
        ("GET", "/print-list", {"params": {"kind": "sms"}}),
        ("GET", "/print-list", {"params": {"_count": 0}}),
        ("POST", "/print-list/handle", {"json": {"ids": [], "by": "anna"}}),
        ("POST", "/print-list/handle", {"json": {"ids": [1]}}),
        ("POST", "/print-list/unhandle", {"json": {"ids": [1], "by": "  "}}),
        ("GET", "/reports/documents", {"params": {"from": "2026-12-01"}}),
        ("GET", "/reports/documents", {"params": {"from": "igår", "to": "2026-12-02"}}),
        (
            "GET",
            "/reports/documents",
            {"params": {"from": "2026-12-01", "to": "2026-12-02", "format": "xlsx"}},
        ),
    ],
)
def test_r_doc_9_bad_requests_are_400_operation_outcomes(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, object]
) -> None:
    r = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_r_doc_9_the_pdf_is_the_letter_with_its_attachment_pages(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    doc = _insert(
        gateway,
        title="Kallelse till blodtryckskontroll",
        text="Hej Åsa Öberg!\nVälkommen den 3 december kl. 09.00.\nMed vänliga hälsningar",
        attachments=(pdf_attachment("Vägbeskrivning till mottagningen", filename="karta.pdf"),),
    )
    r = http.get(f"/print-list/{_item_id(doc)}/document.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert "191212121212" not in r.headers["content-disposition"]
    reader = PdfReader(io.BytesIO(r.content))
    assert len(reader.pages) == 2
    letter = reader.pages[0].extract_text()
    assert "Vårdcentralen Tolvåsen" in letter and "Kallelse till blodtryckskontroll" in letter
    assert "Hej Åsa Öberg!\nVälkommen den 3 december kl. 09.00.\nMed vänliga hälsningar" in letter
    assert "Vägbeskrivning till mottagningen" in reader.pages[1].extract_text()
    item = http.get(f"/print-list/{_item_id(doc)}").json()
    assert [(f["position"], f["filename"], f["content_type"]) for f in item["attachments"]] == [
        (1, "karta.pdf", "application/pdf")
    ]


def test_r_id_3_a_protected_persons_document_released_to_the_list_is_flagged_and_still_prints(
    gateway: GatewayThread, http: httpx.Client
) -> None:
    doc = _insert(gateway, restricted=True, outcome="hold", print_item=True, rules=("R-ID-3", "R-ID-4"))
    item = http.get(f"/print-list/{_item_id(doc)}").json()
    assert item["restricted"] is True
    r = http.get(f"/print-list/{_item_id(doc)}/document.pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")


def test_r_doc_8_the_report_as_json_and_as_csv_for_excel(gateway: GatewayThread, http: httpx.Client) -> None:
    read = _insert(
        gateway,
        outcome="deliver",
        created_at=T0,
        sent_at=T0,
        read_at=T0 + timedelta(hours=2),
        last_read_at=T0 + timedelta(days=1),
        mailbox_provider="Kivra",
    )
    printed = _insert(
        gateway, created_at=T0 + timedelta(hours=1), handled_at=T0 + timedelta(days=1), handled_by="anna"
    )
    _insert(gateway, created_at=T0 + timedelta(days=2))  # outside the period

    body = http.get("/reports/documents", params={"from": "2026-12-01", "to": "2026-12-02"}).json()
    assert body["from"] == "2026-12-01T00:00:00+01:00" and body["to"] == "2026-12-02T00:00:00+01:00"
    assert body["total"] == 2
    first, second = body["documents"]
    assert first["document_id"] == read.document_id
    assert (first["date"], first["personnummer"], first["kind"], first["outcome"]) == (
        T0.isoformat(),
        "191212121212",
        "e-brev",
        "deliver",
    )
    assert (first["platform_status"], first["mailbox"], first["last_read_at"]) == (
        "read",
        "Kivra",
        (T0 + timedelta(days=1)).isoformat(),
    )
    assert (first["on_print_list"], first["outdated"]) == (False, False)
    assert second["document_id"] == printed.document_id
    assert (second["platform_status"], second["on_print_list"], second["print_handled"]) == (
        "not-sent",
        True,
        True,
    )

    for kwargs in (
        {"params": {"from": "2026-12-01", "to": "2026-12-02", "format": "csv"}},
        {"params": {"from": "2026-12-01", "to": "2026-12-02"}, "headers": {"Accept": "text/csv"}},
    ):
        r = http.get("/reports/documents", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert 'filename="dokumentrapport_2026-12-01_2026-12-02.csv"' in r.headers["content-disposition"]
        assert r.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline=""), delimiter=";"))
        assert [row["Dokument-id"] for row in rows] == [read.document_id, printed.document_id]
        assert rows[0]["Personnummer"] == "19121212-1212"
        assert rows[0]["Dokumentnamn"] == "Kallelse till blodtryckskontroll på Vårdcentralen Tolvåsen"
        assert (rows[0]["Status i plattformen"], rows[0]["Digital brevlåda"], rows[0]["Senast öppnad"]) == (
            "läst",
            "Kivra",
            "2026-12-02 09:00",
        )
        assert (rows[1]["På utskriftslistan"], rows[1]["Hanterad av"]) == ("ja", "anna")

    r = http.get(
        "/reports/documents",
        params={"from": "2026-12-01", "to": "2026-12-02"},
        headers={"Accept": "application/xml"},
    )
    assert r.status_code == 406
