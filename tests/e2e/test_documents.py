"""E-documents end to end: MDM over the real MLLP port -> routing -> FHIR Communication over HTTP.

The outside systems are fakes of the ports (register, accounts, mailbox directory); the clock
of the worker is the test's, so the 48-hour rule runs at once.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation
from gateway.domain.booking import Resource
from gateway.domain.documents import MailboxProvider, MailboxReachability
from gateway.domain.letter import Attachment
from gateway.domain.notifications import STOCKHOLM
from gateway.errors import MailboxRefused, TransientUpstreamError
from gateway.fhir.communication import CATEGORY_SYSTEM, MAILBOX_EXTENSION
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm, minimal_pdf
from gateway.settings import Settings
from gateway.store.tables import document_events, documents, mailbox_outbox, messages, print_items
from gateway.testing import GatewayThread
from tests.conftest import wait_processed
from tests.fakes import CHILD, FakeAccounts, FakeDelivery, FakeMailbox, FakeRegister, pnr
from tests.support import (
    PNR_OID,
    PNR_SYSTEM,
    RESERV_OID,
    TOLVAN,
    ack_code,
    control_id,
    migrated,
    mllp_exchange,
    siu,
)

SEKRET = "197605010128"
CHILD_PNR = CHILD.person.value
GUARDIAN = "198503141239"
BLOCKED_GUARDIAN = "198709224565"
MAILBOX_PERSON = "195511302134"  # emigrated in the fake register, but routed like anyone (R-ID-5)
RESERV = "991234567890"
LETTER = "Hej!\nVälkommen till Vårdcentralen Tolvåsen.\nMed vänlig hälsning\n[4US:LPAT]"
START = "202612100900"


@dataclass
class Clock:
    """The worker's clock: real time plus an offset the test moves."""

    offset: timedelta = timedelta()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self.lock:
            return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        with self.lock:
            self.offset += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def delivery() -> FakeDelivery:
    return FakeDelivery()


@pytest.fixture
def docs_gateway(
    tmp_path: Path,
    register: FakeRegister,
    accounts: FakeAccounts,
    mailbox: FakeMailbox,
    delivery: FakeDelivery,
    clock: Clock,
) -> Iterator[GatewayThread]:
    accounts.accounts[TOLVAN] = Account(pnr(TOLVAN), AccountStatus.ACTIVE)
    accounts.accounts[SEKRET] = Account(pnr(SEKRET), AccountStatus.ACTIVE)
    accounts.accounts[CHILD_PNR] = Account(
        pnr(CHILD_PNR),
        AccountStatus.NONE,
        proxies=(
            Proxy(pnr(GUARDIAN), ProxyRelation.GUARDIAN),
            Proxy(pnr(BLOCKED_GUARDIAN), ProxyRelation.GUARDIAN, blocked=True),
        ),
    )
    mailbox.answers[MAILBOX_PERSON] = MailboxReachability(MailboxProvider.KIVRA)
    settings = Settings(
        data_dir=migrated(tmp_path),
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.1,
        kallelse_booking_wait=600,
        outbox_backoff_initial=0.05,
        outbox_max_attempts=3,
        log_level="WARNING",
        unit_exceptions={"SE2321000016-PAPR": {"print_kinds": ["e-brev"], "note": "paper only"}},
    )
    with GatewayThread(
        settings,
        register=register,
        accounts=accounts,
        mailbox=mailbox,
        mailbox_delivery=delivery,
        clock=clock,
    ) as gw:
        yield gw


@pytest.fixture
def api(docs_gateway: GatewayThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=docs_gateway.http_url, timeout=10) as client:
        yield client


def _send(gw: GatewayThread, *payloads: bytes) -> list[str]:
    host, port = gw.mllp_address
    return [ack_code(a) for a in mllp_exchange(host, port, payloads)]


def mdm(
    number: str,
    *,
    kind: str = "BREV",
    patient: str = TOLVAN,
    oid: str = PNR_OID,
    text: str = LETTER,
    booking: str | None = None,
    trigger: str = "T02",
    unit: str = "SE2321000016-15CQ",
    attachments: tuple[Attachment, ...] = (),
    title: str = "Brev från vårdcentralen",
) -> bytes:
    doc = MdmDocument(
        document_number=number,
        namespace="TAKECARE",
        document_type=kind,
        patient_id=patient,
        patient_oid=oid,
        text=text,
        title=title,
        booking_id=booking,
        unit=Resource(unit, "Vårdcentralen Tolvåsen"),
        attachments=attachments,
    )
    return build_mdm(trigger, doc, control_id=control_id(), now=datetime.now(UTC))


def _communications(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    bundle = api.get("/fhir/Communication", params=params).json()
    assert bundle["resourceType"] == "Bundle", bundle
    return [e["resource"] for e in bundle.get("entry", [])]


def _doc(gw: GatewayThread, number: str) -> Any:
    with gw.gateway.engine.connect() as conn:
        return conn.execute(select(documents).where(documents.c.document_number == number)).one()


def _messages(gw: GatewayThread) -> list[Any]:
    with gw.gateway.engine.connect() as conn:
        return list(conn.execute(select(messages).order_by(messages.c.id)).all())


def _wait(api: httpx.Client) -> None:
    wait_processed(api)


def test_r_doc_4_kallelse_reaches_the_platform_as_communication_about_its_appointment(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    acks = _send(
        docs_gateway,
        siu("S12", booking="BK-K1", start=START),
        mdm("DOC-K1", kind="KALLELSE", booking="BK-K1", text="Välkommen den 10 december kl 09.00."),
    )
    assert acks == ["AA", "AA"]
    _wait(api)
    (comm,) = _communications(api, **{"subject:identifier": f"{PNR_SYSTEM}|{TOLVAN}"})
    appt = api.get("/fhir/Appointment", params={"identifier": "BK-K1"}).json()["entry"][0]["resource"]
    assert comm["about"] == [{"reference": f"Appointment/{appt['id']}", "type": "Appointment"}]
    assert comm["category"][0]["coding"][0] == {
        "system": CATEGORY_SYSTEM,
        "code": "e-kallelse",
        "display": "E-kallelse",
    }
    assert comm["status"] == "completed" and "statusReason" not in comm
    assert comm["recipient"] == [{"type": "Patient", "identifier": {"system": PNR_SYSTEM, "value": TOLVAN}}]
    assert comm["payload"][0]["contentString"] == "Välkommen den 10 december kl 09.00."
    assert comm["sent"] and "received" not in comm
    assert comm["identifier"][0]["value"] == "TAKECARE|DOC-K1"
    assert api.get(f"/fhir/Communication/{comm['id']}").json()["id"] == comm["id"]
    code_system = api.get("/fhir/CodeSystem/edocument-category").json()
    assert code_system["url"] == CATEGORY_SYSTEM
    assert {c["code"] for c in code_system["concept"]} == {"e-kallelse", "e-brev", "e-remissbekraftelse"}


def test_r_doc_1_letter_kind_comes_from_its_control_code(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        mdm("DOC-B1"),
        mdm("DOC-R1", text="Vi har tagit emot din remiss.\n[4US:RPAT]", title="Remissbekräftelse"),
    )
    _wait(api)
    found = {c["identifier"][0]["value"]: c for c in _communications(api)}
    assert found["TAKECARE|DOC-B1"]["category"][0]["coding"][0]["code"] == "e-brev"
    assert found["TAKECARE|DOC-R1"]["category"][0]["coding"][0]["code"] == "e-remissbekraftelse"
    only_brev = _communications(api, category=f"{CATEGORY_SYSTEM}|e-brev")
    assert [c["identifier"][0]["value"] for c in only_brev] == ["TAKECARE|DOC-B1"]


def test_r_doc_3_letter_without_its_control_code_goes_to_the_print_list(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, mdm("DOC-NC", text="Hej!\nIngen kod här.\n[4US: LPAT]"))
    _wait(api)
    (comm,) = _communications(api)
    assert comm["status"] == "completed"
    reason = comm["statusReason"]
    assert reason["coding"][0]["code"] == "print-list"
    assert "near miss" in reason["text"] and "[4US: LPAT]" in reason["text"]
    row = _doc(docs_gateway, "DOC-NC")
    assert row.outcome == "print-list" and "R-DOC-3" in row.rules.split() and "R-DOC-2" in row.rules.split()
    with docs_gateway.gateway.engine.connect() as conn:
        (item,) = conn.execute(select(print_items)).all()
    assert item.document_id == comm["id"] and item.handled_at is None


def test_r_doc_7_unit_exception_prints_every_letter(docs_gateway: GatewayThread, api: httpx.Client) -> None:
    _send(docs_gateway, mdm("DOC-U1", unit="SE2321000016-PAPR"))
    _wait(api)
    row = _doc(docs_gateway, "DOC-U1")
    assert row.outcome == "print-list" and row.rules == "R-DOC-7"
    assert "paper only" in row.reason


def test_r_id_4_kallelse_for_a_protected_person_is_held_and_never_served(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        siu("S12", booking="BK-S1", patient=SEKRET, start=START),
        mdm("DOC-S1", kind="KALLELSE", patient=SEKRET, booking="BK-S1"),
    )
    _wait(api)
    row = _doc(docs_gateway, "DOC-S1")
    assert row.outcome == "hold" and row.rules.split()[0] == "R-ID-4"
    assert row.restricted and not row.visible and row.status == "on-hold"
    assert _communications(api, **{"subject:identifier": SEKRET}) == []
    assert api.get(f"/fhir/Communication/{row.id}").status_code == 404


def test_r_doc_6_kallelse_for_a_hidden_time_type_is_refused(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        siu("S12", booking="BK-H1", time_type="DOLD^Dold tid", start=START),
        mdm("DOC-H1", kind="KALLELSE", booking="BK-H1"),
    )
    _wait(api)
    row = _doc(docs_gateway, "DOC-H1")
    assert row.outcome == "refuse" and "R-DOC-6" in row.rules.split() and not row.visible
    assert _communications(api) == []


def test_r_id_2_reservnummer_letters_are_printed_and_not_served(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, mdm("DOC-RN", patient=RESERV, oid=RESERV_OID))
    _wait(api)
    row = _doc(docs_gateway, "DOC-RN")
    assert row.outcome == "print-list" and row.rules.split()[:2] == ["R-ID-2", "R-DOC-5"]
    assert not row.visible


def test_r_id_6_child_under_13_gets_it_through_guardians_not_blocked_ones(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, mdm("DOC-C1", patient=CHILD_PNR))
    _wait(api)
    (comm,) = _communications(api, **{"recipient:identifier": GUARDIAN})
    assert comm["subject"]["identifier"]["value"] == CHILD_PNR
    assert comm["recipient"] == [
        {"type": "RelatedPerson", "identifier": {"system": PNR_SYSTEM, "value": GUARDIAN}}
    ]
    assert _communications(api, **{"recipient:identifier": BLOCKED_GUARDIAN}) == []


def test_r_doc_4_adult_with_mailbox_gets_it_there_and_it_never_waits_for_48_hours(
    docs_gateway: GatewayThread, api: httpx.Client, mailbox: FakeMailbox
) -> None:
    _send(docs_gateway, mdm("DOC-M1", patient=MAILBOX_PERSON))
    _wait(api)
    (comm,) = _communications(api, **{"subject:identifier": MAILBOX_PERSON})
    (ext,) = [e for e in comm["extension"] if e["url"] == MAILBOX_EXTENSION]
    assert ext["valueCoding"]["display"] == "Kivra"
    row = _doc(docs_gateway, "DOC-M1")
    assert row.mailbox_provider == "Kivra" and row.print_due_at is None
    assert any(MAILBOX_PERSON in call for call in mailbox.calls)


def test_r_doc_5_unread_for_48_hours_goes_to_the_print_list_read_ones_do_not(
    docs_gateway: GatewayThread, api: httpx.Client, clock: Clock
) -> None:
    _send(docs_gateway, mdm("DOC-48A"), mdm("DOC-48B"))
    _wait(api)
    read, unread = _doc(docs_gateway, "DOC-48A"), _doc(docs_gateway, "DOC-48B")
    opened = (read.sent_at + timedelta(hours=3)).isoformat()
    clock.advance(timedelta(hours=3))
    body = {"resourceType": "Parameters", "parameter": [{"name": "readAt", "valueDateTime": opened}]}
    marked = api.post(f"/fhir/Communication/{read.id}/$mark-read", json=body)
    assert marked.status_code == 200, marked.text
    assert marked.json()["received"] and marked.json()["meta"]["versionId"] == "2"
    processor = docs_gateway.gateway.processor
    assert processor.run_timers() == 0  # 3 hours: too early
    clock.advance(timedelta(hours=46))
    assert processor.run_timers() == 1
    assert processor.run_timers() == 0  # once only
    with docs_gateway.gateway.engine.connect() as conn:
        listed = conn.execute(select(print_items.c.document_id, print_items.c.rules)).all()
    assert listed == [(unread.id, "R-DOC-5")]
    comm = api.get(f"/fhir/Communication/{unread.id}").json()
    assert comm["statusReason"]["coding"][0]["code"] == "print-list-unread"


def test_mark_read_rejects_bad_parameters_with_operation_outcome(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, mdm("DOC-MR"))
    _wait(api)
    doc_id = _doc(docs_gateway, "DOC-MR").id
    url = f"/fhir/Communication/{doc_id}/$mark-read"
    for body, words in [
        ({"resourceType": "Parameters"}, "readAt"),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "readAt", "valueDateTime": "2026-01-01"}]},
            "time",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "readAt", "valueDateTime": "2020-01-01T10:00:00Z"}],
            },
            "before",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "readAt", "valueDateTime": "2099-01-01T10:00:00Z"}],
            },
            "future",
        ),
    ]:
        answer = api.post(url, json=body)
        assert answer.status_code == 400, body
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert words in answer.json()["issue"][0]["diagnostics"]
    assert (
        api.post(
            "/fhir/Communication/nope/$mark-read",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "readAt", "valueDateTime": "2026-01-01T10:00:00Z"}],
            },
        ).status_code
        == 404
    )


def test_kallelse_waits_for_its_booking_then_goes_out(docs_gateway: GatewayThread, api: httpx.Client) -> None:
    (ack,) = _send(docs_gateway, mdm("DOC-W1", kind="KALLELSE", booking="BK-LATE"))
    assert ack == "AA"
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while datetime.now(UTC) < deadline:
        waiting = [m for m in _messages(docs_gateway) if m.state == "waiting"]
        if waiting:
            break
    assert waiting and "BK-LATE" in waiting[0].error
    _send(docs_gateway, siu("S12", booking="BK-LATE", start=START))
    # The waiting kallelse is retried after its backoff (5 s at first).
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while datetime.now(UTC) < deadline and not _communications(api):
        threading.Event().wait(0.2)
    (comm,) = _communications(api)
    assert comm["about"][0]["reference"].startswith("Appointment/")


def test_kallelse_for_a_booking_that_never_comes_fails_visibly(
    docs_gateway: GatewayThread, api: httpx.Client, clock: Clock
) -> None:
    _send(docs_gateway, mdm("DOC-W2", kind="KALLELSE", booking="BK-NEVER"))
    clock.advance(timedelta(hours=2))  # past kallelse_booking_wait
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    failed: list[Any] = []
    while datetime.now(UTC) < deadline and not failed:
        failed = [m for m in _messages(docs_gateway) if m.state == "failed"]
        threading.Event().wait(0.2)
    assert failed and "BK-NEVER" in failed[0].error and "gave up" in failed[0].error
    listed = api.get("/messages", params={"state": "failed"}).json()
    assert listed["total"] == 1


def test_t10_replaces_the_document_as_a_new_version_and_repeats_change_nothing(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, mdm("DOC-V1"))
    _wait(api)
    (first,) = _communications(api)
    _send(docs_gateway, mdm("DOC-V1"))  # the same content under a new MSH-10
    _send(docs_gateway, mdm("DOC-V1", trigger="T10", text=LETTER.replace("Hej!", "Hej igen!")))
    _wait(api)
    (second,) = _communications(api)
    assert second["id"] == first["id"] and second["meta"]["versionId"] == "2"
    assert second["payload"][0]["contentString"].startswith("Hej igen!")
    _send(docs_gateway, mdm("DOC-V1", text="Ett helt annat brev\n[4US:LPAT]"))  # T02 reusing TXA-12
    _wait(api)
    failed = [m for m in _messages(docs_gateway) if m.state == "failed"]
    assert len(failed) == 1 and "TXA-12" in failed[0].error and "T10" in failed[0].error


def test_attachments_are_served_as_binary(docs_gateway: GatewayThread, api: httpx.Client) -> None:
    pdf = minimal_pdf("Bilaga ett")
    _send(docs_gateway, mdm("DOC-A1", attachments=(Attachment("provsvar.pdf", "application/pdf", pdf),)))
    _wait(api)
    (comm,) = _communications(api)
    attachment = comm["payload"][1]["contentAttachment"]
    assert attachment["title"] == "provsvar.pdf" and attachment["size"] == len(pdf)
    got = api.get(f"/fhir/{attachment['url']}", headers={"Accept": "application/pdf"})
    assert got.status_code == 200 and got.content == pdf
    assert got.headers["content-type"] == "application/pdf"


def test_r_bk_3_a_rescheduled_booking_marks_its_sent_kallelse_outdated(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        siu("S12", booking="BK-R1", start=START),
        mdm("DOC-RK", kind="KALLELSE", booking="BK-R1"),
    )
    _wait(api)
    before = api.get(f"/fhir/Communication/{_doc(docs_gateway, 'DOC-RK').id}").json()
    _send(docs_gateway, siu("S13", booking="BK-R1", start="202612111000"))
    _wait(api)
    row = _doc(docs_gateway, "DOC-RK")
    assert row.outdated_at is not None and "R-BK-3" in row.outdated_reason
    after = api.get(f"/fhir/Communication/{row.id}").json()
    assert after == before  # the letter itself is not changed, nor re-sent
    (shown,) = api.get(f"/patients/{TOLVAN}").json()["documents"]  # staff see the mark
    assert shown["outdated"] is True and "send a new kallelse" in shown["outdated_reason"]


def test_search_pages_and_filters_by_status_and_last_updated(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(docs_gateway, *(mdm(f"DOC-P{i}") for i in range(5)))
    _wait(api)
    page = api.get("/fhir/Communication", params={"_count": "2"}).json()
    assert page["total"] == 5 and len(page["entry"]) == 2
    seen = [e["resource"]["id"] for e in page["entry"]]
    while nxt := [link["url"] for link in page["link"] if link["relation"] == "next"]:
        page = httpx.get(nxt[0]).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(set(seen)) == 5
    assert len(_communications(api, status="completed")) == 5
    assert _communications(api, status="on-hold") == []
    assert _communications(api, _lastUpdated="gt2099-01-01") == []
    bad = api.get("/fhir/Communication", params={"status": "sent"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_r_id_4_staff_release_a_held_kallelse_or_print_it_and_the_history_says_who(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        siu("S12", booking="BK-HR", patient=SEKRET, start=START),
        mdm("DOC-HR1", kind="KALLELSE", patient=SEKRET, booking="BK-HR"),
        mdm("DOC-HR2", patient=SEKRET),
    )
    _wait(api)
    listed = api.get("/held").json()
    assert listed["total"] == 2
    first = next(i for i in listed["items"] if i["kind"] == "e-kallelse")
    assert first["protected"] is True and first["rules"][0] == "R-ID-4"
    assert api.post(f"/held/{first['id']}/release", json={"by": "ssk-anna"}).status_code == 400
    released = api.post(
        f"/held/{first['id']}/release", json={"by": "ssk-anna", "why": "agreed by phone: kallelse in 1177"}
    )
    assert released.status_code == 200, released.text
    assert released.json()["outcome"] == "deliver" and released.json()["rules"][0] == "R-ID-4"
    comm = api.get(f"/fhir/Communication/{first['id']}").json()
    assert comm["status"] == "completed"
    assert comm["meta"]["security"][0]["code"] == "sekretessmarkering"
    again = api.post(f"/held/{first['id']}/release", json={"by": "ssk-anna", "why": "twice"})
    assert again.status_code == 400 and "not held" in again.json()["issue"][0]["diagnostics"]

    letter = next(i for i in listed["items"] if i["kind"] == "e-brev")
    printed = api.post(f"/held/{letter['id']}/print", json={"by": "ssk-bo", "why": "paper, as agreed"})
    assert printed.status_code == 200 and printed.json()["outcome"] == "print-list"
    assert api.get(f"/fhir/Communication/{letter['id']}").status_code == 404  # still not served
    assert api.get("/held").json()["total"] == 0
    with docs_gateway.gateway.engine.connect() as conn:
        events = conn.execute(
            select(document_events.c.event, document_events.c.actor, document_events.c.detail)
            .where(document_events.c.document_id == first["id"])
            .order_by(document_events.c.id)
        ).all()
    assert ("released", "ssk-anna", "agreed by phone: kallelse in 1177") in events
    assert api.post("/held/nope/release", json={"by": "x", "why": "y"}).status_code == 404


def test_r_doc_8_r_doc_9_pushed_letters_reach_print_list_pdf_and_report_csv(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    pdf = minimal_pdf("Provsvar bifogat")
    _send(
        docs_gateway,
        mdm(
            "DOC-PL1",
            text="Hej Tolvan!\nDitt provsvar är klart.\nMed vänlig hälsning, Vårdcentralen Tolvåsen",
            title="Provsvar",
            attachments=(Attachment("provsvar.pdf", "application/pdf", pdf),),
        ),
        mdm("DOC-PL2"),
    )
    _wait(api)
    listed = api.get("/print-list", params={"state": "open"}).json()
    (item,) = listed["items"]
    assert item["title"] == "Provsvar" and "R-DOC-3" in item["rules"] and item["personnummer"] == TOLVAN
    got = api.get(f"/print-list/{item['id']}/document.pdf")
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(got.content)).pages)
    assert "Ditt provsvar är klart." in text and "Provsvar bifogat" in text
    handled = api.post("/print-list/handle", json={"ids": [item["id"]], "by": "ssk-anna"})
    assert handled.status_code == 200 and handled.json()["changed"] == [item["id"]]
    assert api.get("/print-list", params={"state": "open"}).json()["total"] == 0

    today = datetime.now(STOCKHOLM).date()  # the report's days are Stockholm's (23-24 UTC is tomorrow)
    report = api.get(
        "/reports/documents",
        params={
            "from": str(today - timedelta(days=1)),
            "to": str(today + timedelta(days=1)),
            "format": "csv",
        },
    )
    assert report.status_code == 200
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig")), delimiter=";"))
    by_title = {r["Dokumentnamn"]: r for r in rows}
    assert by_title["Provsvar"]["På utskriftslistan"] == "ja"
    assert by_title["Brev från vårdcentralen"]["Status i plattformen"] == "oläst"
    assert by_title["Brev från vårdcentralen"]["Digital brevlåda"] == "ingen"
    assert all(r["Personnummer"] == "19121212-1212" for r in rows)


def test_r_id_3_message_browser_hides_a_protected_persons_letter_and_pid(
    docs_gateway: GatewayThread, api: httpx.Client
) -> None:
    _send(
        docs_gateway,
        mdm("DOC-MB1", patient=SEKRET, text="Till Sekret Markersson, Hemliga vägen 1\n[4US:LPAT]"),
    )
    _wait(api)
    (listed,) = api.get("/messages", params={"type": "MDM"}).json()["items"]
    shown = api.get(f"/messages/{listed['id']}").json()
    assert shown["restricted"] is True
    assert "Hemliga vägen" not in shown["raw"] and SEKRET not in shown["raw"]
    assert "PID|Dold uppgift" in shown["raw"] and "||Dold uppgift" in shown["raw"]


def _wait_outbox(gw: GatewayThread, states: set[str], timeout: float = 10) -> list[Any]:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while datetime.now(UTC) < deadline:
        with gw.gateway.engine.connect() as conn:
            rows = list(conn.execute(select(mailbox_outbox).order_by(mailbox_outbox.c.id)).all())
        if rows and all(r.state in states for r in rows):
            return rows
        threading.Event().wait(0.05)
    raise AssertionError(f"outbox not in {states}: {[(r.state, r.last_error) for r in rows]}")


def test_r_doc_4_mailbox_letter_goes_through_the_outbox_once_and_the_receipt_shows(
    docs_gateway: GatewayThread, api: httpx.Client, delivery: FakeDelivery
) -> None:
    pdf = minimal_pdf("Bilaga")
    _send(
        docs_gateway,
        mdm("DOC-OB1", patient=MAILBOX_PERSON, attachments=(Attachment("a.pdf", "application/pdf", pdf),)),
    )
    _wait(api)
    (row,) = _wait_outbox(docs_gateway, {"delivered"})
    (letter,) = delivery.delivered.values()
    assert letter.message_id == row.message_id and letter.recipient.value == MAILBOX_PERSON
    assert letter.text == LETTER and letter.attachments[0].data == pdf
    assert "vård" not in letter.subject.lower()  # a neutral subject (004)
    comm = api.get(f"/fhir/Communication/{row.document_id}").json()
    (receipt,) = [e for e in comm["extension"] if e["url"].endswith("mailbox-delivery")]
    assert {e["url"]: e for e in receipt["extension"]}["receipt"]["valueString"] == row.transaction_id
    doc = api.get(f"/documents/{row.document_id}").json()
    assert doc["mailbox"] == "Kivra" and "mailbox-delivered" in [h["event"] for h in doc["history"]]
    assert api.get("/print-list").json()["total"] == 0  # R-DOC-5: in a mailbox it counts as read


def test_r_doc_5_transient_mailbox_errors_are_retried_then_delivered(
    docs_gateway: GatewayThread, api: httpx.Client, delivery: FakeDelivery
) -> None:
    delivery.failures = [TransientUpstreamError("Kivra timed out"), TransientUpstreamError("Kivra 503")]
    _send(docs_gateway, mdm("DOC-OB2", patient=MAILBOX_PERSON))
    _wait(api)
    (row,) = _wait_outbox(docs_gateway, {"delivered"})
    assert row.attempts == 3 and delivery.calls == 3 and len(delivery.delivered) == 1


def test_r_doc_5_a_refused_or_dead_mailbox_letter_goes_to_the_print_list_and_staff_can_retry(
    docs_gateway: GatewayThread, api: httpx.Client, delivery: FakeDelivery
) -> None:
    delivery.refuse[MAILBOX_PERSON] = MailboxRefused("recipient not reachable", code="not-reachable")
    _send(docs_gateway, mdm("DOC-OB3", patient=MAILBOX_PERSON))
    _wait(api)
    (row,) = _wait_outbox(docs_gateway, {"refused"})
    (item,) = api.get("/print-list").json()["items"]
    assert item["document_id"] == row.document_id and "not reachable" in item["reason"]
    comm = api.get(f"/fhir/Communication/{row.document_id}").json()
    assert not [e for e in comm["extension"] if e["url"] == MAILBOX_EXTENSION]
    listed = api.get("/outbox", params={"state": "refused"}).json()
    assert listed["total"] == 1
    del delivery.refuse[MAILBOX_PERSON]
    assert api.post(f"/outbox/{row.id}/retry", json={"by": "ssk-anna"}).status_code == 200
    (row,) = _wait_outbox(docs_gateway, {"delivered"})
    assert api.post(f"/outbox/{row.id}/retry", json={"by": "ssk-anna"}).status_code == 400

    delivery.failures = [TransientUpstreamError("down")] * 3  # max_attempts is 3 here
    _send(docs_gateway, mdm("DOC-OB4", patient=MAILBOX_PERSON))
    _wait(api)
    rows = _wait_outbox(docs_gateway, {"delivered", "dead"})
    dead = rows[-1]
    assert dead.state == "dead" and "3 attempts" in dead.last_error
    assert any(i["document_id"] == dead.document_id for i in api.get("/print-list").json()["items"])


def test_a_replacement_before_delivery_cancels_the_older_letter(
    docs_gateway: GatewayThread, api: httpx.Client, delivery: FakeDelivery
) -> None:
    delivery.failures = [TransientUpstreamError("slow")] * 2
    _send(docs_gateway, mdm("DOC-OB5", patient=MAILBOX_PERSON))
    _send(docs_gateway, mdm("DOC-OB5", patient=MAILBOX_PERSON, trigger="T10", text="Ny version\n[4US:LPAT]"))
    _wait(api)
    rows = _wait_outbox(docs_gateway, {"delivered", "cancelled"})
    states = [r.state for r in rows]
    if states == ["delivered", "delivered"]:  # the first went before the T10 was processed
        assert len(delivery.delivered) == 2
    else:
        assert states == ["cancelled", "delivered"]
        (letter,) = delivery.delivered.values()
        assert letter.text.startswith("Ny version")
