"""Bookings and documents through intake and processing into the plan, and the notifier sending
it, with an injected clock (no waiting) and a fake provider that counts each SMS.

The rules themselves are proven row by row in tests/unit/test_notification_planner.py; here the
plan follows the journal's messages (S12 book, S13 move, S15 cancel, MDM) in the processing
transaction, and the notifier asks the account service at the last moment (R-NOT-1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gateway import mappings as mapping_tables
from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation
from gateway.domain.documents import MailboxProvider, MailboxReachability
from gateway.domain.notifications import STOCKHOLM
from gateway.domain.sms import OutgoingSms, SmsReceipt
from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.fhir.communication import document_id
from gateway.journal_adapter.mdm_builder import MdmDocument, build_mdm
from gateway.service import document_flow
from gateway.service.intake import Intake
from gateway.service.notifier import Notifier
from gateway.service.processing import Processor
from gateway.store.inbox import Inbox
from gateway.store.tables import notifications
from tests.fakes import FakeAccounts, FakeMailbox, FakeRegister, pnr
from tests.support import PNR_OID, TOLVAN, control_id, siu

MAPPINGS = mapping_tables.load()
POLICY = mapping_tables.load_notifications()
CHILD, GUARDIAN, TEEN, SEKRET = "201605152386", "198503141239", "200903012391", "197605010128"
MOBILE = {TOLVAN: "+46701740605", GUARDIAN: "+46701740606", TEEN: "+46701740607", SEKRET: "+46701740608"}
UNIT_NAME = "Vårdcentralen Tolvåsen"


def local(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 12, day, hh, mm, tzinfo=STOCKHOLM)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: local(7, 10))

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@dataclass
class FakeSms:
    """The provider: deduplicates by idempotency key, as the mock does; ``lose_answer`` takes
    the SMS and then fails the call, as a crash between the provider's answer and our commit."""

    sent: list[OutgoingSms] = field(default_factory=list)
    lose_answer: int = 0
    refuse: bool = False
    down: bool = False

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        if self.refuse:
            raise PermanentUpstreamError("sms: POST /a1/sms: HTTP 400")
        if self.down:
            raise TransientUpstreamError("sms: POST /a1/sms: HTTP 503")
        if all(s.idempotency_key != sms.idempotency_key for s in self.sent):
            self.sent.append(sms)
        if self.lose_answer:
            self.lose_answer -= 1
            raise TransientUpstreamError("sms: connection lost before the answer (fake)")
        return SmsReceipt(f"s-{sms.idempotency_key}")

    async def find_sent(self, sms: OutgoingSms, since: datetime) -> SmsReceipt | None:
        found = [s for s in self.sent if s.to == sms.to and s.text == sms.text]
        return SmsReceipt(f"s-{found[0].idempotency_key}") if found else None

    def to(self, person: str) -> list[str]:
        return [s.text for s in self.sent if s.to == MOBILE[person]]


def account(person: str, **changes: Any) -> Account:
    base = Account(pnr(person), AccountStatus.ACTIVE, sms_consent=True, mobile=MOBILE.get(person))
    return replace(base, **changes)


@dataclass
class World:
    engine: Engine
    clock: Clock
    accounts: FakeAccounts
    mailbox: FakeMailbox
    sms: FakeSms
    processor: Processor
    notifier: Notifier

    def journal(self, *messages: bytes) -> None:
        async def put() -> None:
            inbox = Inbox(self.engine)
            inbox.start()
            try:
                intake = Intake(MAPPINGS, inbox)
                for raw in messages:
                    result = await intake.handle(raw, transport="mllp")
                    assert b"MSA|AA" in result.ack, result.ack
            finally:
                inbox.stop()

        asyncio.run(put())
        while self.processor.run_once():
            pass

    def at(self, when: datetime) -> int:
        """Move the clock and let the notifier send what is due."""
        self.clock.now = when
        return asyncio.run(self.notifier.send_due())

    def rows(self, subject_id: str | None = None) -> list[Any]:
        with self.engine.connect() as conn:
            q = select(notifications).order_by(notifications.c.id)
            if subject_id is not None:
                q = q.where(notifications.c.subject_id == subject_id)
            return list(conn.execute(q).all())


@pytest.fixture
def world(engine: Engine) -> World:
    clock = Clock()
    accounts = FakeAccounts(
        {p: account(p) for p in (TOLVAN, TEEN, SEKRET, GUARDIAN)}
        | {
            CHILD: Account(
                pnr(CHILD), AccountStatus.NONE, proxies=(Proxy(pnr(GUARDIAN), ProxyRelation.GUARDIAN),)
            )
        }
    )
    mailbox = FakeMailbox()
    sms = FakeSms()
    processor = Processor(
        engine,
        MAPPINGS,
        FakeRegister(),
        accounts=accounts,
        mailbox=mailbox,
        clock=clock,
        notifications=POLICY,
    )
    notifier = Notifier(engine, sms, accounts, POLICY, MAPPINGS, sender="RegHalland", clock=clock)
    return World(engine, clock, accounts, mailbox, sms, processor, notifier)


def booking(trigger: str = "S12", *, patient: str = TOLVAN, start: str = "202612100930", **kw: Any) -> bytes:
    return siu(trigger, patient=patient, start=start, control=control_id(), **kw)


def test_booked_reminded_once_the_evening_before_with_a_neutral_text_R_NOT_1_R_NOT_5(world: World) -> None:
    world.journal(booking())
    (row,) = world.rows()
    assert (row.kind, row.state, row.due_at) == ("reminder", "planned", local(9, 18).astimezone(UTC))
    assert world.at(local(9, 17, 59)) == 0 and world.sms.sent == []
    world.at(local(9, 18))
    (text,) = world.sms.to(TOLVAN)
    assert "10 dec kl 09:30" in text and "https://www.1177.se" in text
    for leak in ("blodtryck", UNIT_NAME, "Nybesök", "Tolvan"):
        assert leak not in text
    assert world.sms.sent[0].sender == "RegHalland"
    world.at(local(9, 19))
    assert len(world.sms.sent) == 1 and world.rows()[0].state == "sent"


def test_moved_S13_replans_in_the_same_transaction_and_reminds_for_the_new_time_only(world: World) -> None:
    world.journal(booking())
    world.journal(booking("S13", start="202612111400"))
    first, second = world.rows()
    assert (first.state, first.reason) == (
        "cancelled",
        "the booking was moved; planned again for the new time",
    )
    assert (second.state, second.due_at) == ("planned", local(10, 18).astimezone(UTC))
    world.at(local(9, 18, 30))
    assert world.sms.sent == []
    world.at(local(10, 18))
    assert ["11 dec kl 14:00" in t for t in world.sms.to(TOLVAN)] == [True]


def test_cancelled_S15_sends_nothing(world: World) -> None:
    world.journal(booking())
    world.journal(booking("S15", filler_status="Cancelled"))
    assert [r.state for r in world.rows()] == ["cancelled", "skipped"]
    world.at(local(9, 18))
    assert world.sms.sent == []


def test_consent_withdrawn_before_the_reminder_is_due_R_NOT_1(world: World) -> None:
    world.journal(booking())
    world.accounts.accounts[TOLVAN] = account(TOLVAN, sms_consent=False)
    world.at(local(9, 18))
    assert world.sms.sent == []
    (row,) = world.rows()
    assert (row.state, row.rules) == ("cancelled", "R-NOT-1")
    assert "consent" in row.reason


def test_child_under_13_gets_no_reminder_and_nor_do_the_guardians_R_NOT_4(world: World) -> None:
    world.journal(booking(patient=CHILD))
    (row,) = world.rows()
    assert (row.state, row.rules) == ("skipped", "R-NOT-4")
    world.at(local(9, 18))
    assert world.sms.sent == []


def test_protected_person_reminded_with_the_neutral_text_only_R_ID_3_R_NOT_5(world: World) -> None:
    world.journal(booking(patient=SEKRET))
    (row,) = world.rows()
    assert row.state == "planned" and "R-ID-3" in row.rules
    world.at(local(9, 18))
    (text,) = world.sms.to(SEKRET)
    for leak in (UNIT_NAME, "blodtryck", "Nybesök", "Sekret"):
        assert leak not in text


def test_video_notice_when_booked_and_reminder_15_minutes_before_R_BK_5(world: World) -> None:
    world.journal(booking(time_type="VIDEO^Videobesök"))
    assert [(r.kind, r.state) for r in world.rows()] == [
        ("video-booked", "planned"),
        ("video-reminder", "planned"),
    ]
    world.at(local(7, 10))
    assert len(world.sms.to(TOLVAN)) == 1 and "videomöte" in world.sms.to(TOLVAN)[0]
    world.journal(booking("S13", start="202612101000", time_type="VIDEO^Videobesök"))
    world.at(local(10, 9, 15))  # the old reminder's time: cancelled by the move
    assert len(world.sms.sent) == 1
    world.at(local(10, 9, 45))
    assert len(world.sms.sent) == 2 and "10:00" in world.sms.to(TOLVAN)[1]


def mdm(number: str, patient: str, *, direct: bool = False) -> bytes:
    doc = MdmDocument(
        document_number=number,
        namespace="TAKECARE",
        document_type="BREV",
        patient_id=patient,
        patient_oid=PNR_OID,
        text="Hej!\nDina provsvar är klara.\n[4US:LPAT]",
        title="Provsvar",
        notify_direct=direct,
    )
    return build_mdm("T02", doc, control_id=control_id(), now=datetime.now(UTC))


def test_document_notice_15_minutes_later_or_at_once_when_marked_direct_R_NOT_2(world: World) -> None:
    world.journal(mdm("D1", TEEN), mdm("D2", TEEN, direct=True))
    delayed, direct = world.rows()
    assert delayed.due_at == (local(7, 10, 15)).astimezone(UTC) and direct.due_at == local(7, 10).astimezone(
        UTC
    )
    world.at(local(7, 10))
    assert len(world.sms.to(TEEN)) == 1
    world.at(local(7, 10, 15))
    assert len(world.sms.to(TEEN)) == 2
    assert all("Provsvar" not in t and "provsvar" not in t for t in world.sms.to(TEEN))


def test_document_read_before_the_notice_is_dropped_R_NOT_2(world: World) -> None:
    world.journal(mdm("D3", TEEN))
    with world.engine.begin() as conn:
        document_flow.mark_read(conn, document_id("TAKECARE", "D3"), world.clock(), world.clock())
    world.at(local(7, 10, 15))
    assert world.sms.sent == []
    (row,) = world.rows()
    assert (row.state, row.rules) == ("cancelled", "R-NOT-2")


def test_document_in_a_mailbox_notifies_nobody_and_a_childs_goes_to_the_guardian_R_DOC_4(
    world: World,
) -> None:
    world.mailbox.answers[TOLVAN] = MailboxReachability(MailboxProvider.KIVRA)
    world.journal(mdm("D4", TOLVAN), mdm("D5", CHILD))
    world.at(local(7, 11))
    assert world.sms.to(TOLVAN) == [] and len(world.sms.to(GUARDIAN)) == 1


def test_lost_answer_is_recovered_by_the_key_without_a_second_sms(world: World) -> None:
    world.journal(booking())
    world.sms.lose_answer = 1
    world.at(local(9, 18))
    (row,) = world.rows()
    assert row.state == "sending" and len(world.sms.sent) == 1
    world.at(local(9, 18) + timedelta(minutes=30))
    (row,) = world.rows()
    assert row.state == "sent" and len(world.sms.sent) == 1


def test_provider_down_is_retried_with_backoff_then_dead_with_the_reason(world: World) -> None:
    world.journal(booking())
    world.sms.down = True
    when = local(9, 18)
    for attempt in range(1, 9):
        world.at(when)
        (row,) = world.rows()
        assert row.attempts == attempt and "503" in row.last_error
        if row.state == "dead":
            break
        assert row.state == "sending" and row.next_attempt_at > when.astimezone(UTC)
        when = row.next_attempt_at + timedelta(seconds=1)
    assert row.state == "dead" and "gave up after 8 attempts" in row.reason
    assert world.sms.sent == []


def test_provider_refusal_is_dead_at_once_with_the_reason(world: World) -> None:
    world.journal(booking())
    world.sms.refuse = True
    world.at(local(9, 18))
    (row,) = world.rows()
    assert row.state == "dead" and "refused" in row.reason and "HTTP 400" in row.reason


def test_a_row_that_cannot_be_handled_is_dead_and_does_not_hold_up_the_others(world: World) -> None:
    world.journal(booking(), booking(patient=SEKRET, booking="BK2"))
    first_id = world.rows()[0].id  # ids go on from earlier tests on PostgreSQL (sequences)
    with world.engine.begin() as conn:  # an identifier the tables no longer recognise
        conn.execute(
            notifications.update()
            .where(notifications.c.id == first_id)
            .values(recipient_value="not-a-number")
        )
    world.at(local(9, 18))
    first, second = world.rows()
    assert first.state == "dead" and "cannot be sent" in first.reason
    assert second.state == "sent" and len(world.sms.to(SEKRET)) == 1
