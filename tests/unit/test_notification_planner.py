"""The notification planner as a table: each row names the rules it proves (R-BK-5, R-NOT-1..5)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from gateway.domain.accounts import Account, AccountStatus
from gateway.domain.identity import IdKind, PersonId
from gateway.domain.notifications import (
    STOCKHOLM,
    Booking,
    DeliveredDocument,
    DontSend,
    Kind,
    LeadTime,
    Policy,
    QuietHours,
    Role,
    Send,
    check_sender,
    check_template,
    decide_send,
    plan_booking,
    plan_document,
    render,
)
from gateway.errors import ConfigurationError
from gateway.mappings import DEFAULT_DIR, load_notifications

PNR = "1.2.752.129.2.1.3.1"
ADULT = PersonId(IdKind.PERSONNUMMER, "191212121212", PNR)
CHILD = PersonId(IdKind.PERSONNUMMER, "201605152386", PNR)  # 10 in Dec 2026
TEEN = PersonId(IdKind.PERSONNUMMER, "200903012391", PNR)  # 17
GUARDIAN = PersonId(IdKind.PERSONNUMMER, "198503141239", PNR)
RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")

TEMPLATES = {
    Kind.REMINDER: "Påminnelse {date} kl {time}. {link}",
    Kind.VIDEO_BOOKED: "Videomöte bokat {date} kl {time}. {link}",
    Kind.VIDEO_REMINDER: "Videomöte kl {time}. {link}",
    Kind.DOCUMENT: "Nytt meddelande. {link}",
}
POLICY = Policy(templates=TEMPLATES, leads={"LAB": LeadTime(before=timedelta(hours=2))})
QUIET_OFF = replace(POLICY, quiet_hours=None)


def local(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 12, day, hh, mm, tzinfo=STOCKHOLM)


NOW = local(7, 10)  # Monday 7 December, 10:00


def booking(**changes: object) -> Booking:
    base = Booking(
        appointment_id="a1",
        patient=ADULT,
        status="booked",
        start=local(10, 9, 30),
        contact="physical",
        time_type="NYB",
        unit="SE2321000016-15CQ",
        visible=True,
        withheld=None,
        protected=False,
        deceased=False,
        new=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Row:
    name: str
    rules: tuple[str, ...]
    booking: Booking
    expected: tuple[tuple[Kind, datetime | None], ...]
    policy: Policy = POLICY
    now: datetime = NOW


ROWS = [
    Row("default: the evening before at 18:00", ("R-NOT-1",), booking(), ((Kind.REMINDER, local(9, 18)),)),
    Row(
        "lead time per time type as data",
        ("R-NOT-1",),
        booking(time_type="LAB", start=local(10, 11)),
        ((Kind.REMINDER, local(10, 9)),),
    ),
    Row(
        "unit/time type beats the time type",
        ("R-NOT-1",),
        booking(time_type="LAB", start=local(10, 11)),
        ((Kind.REMINDER, local(10, 10, 30)),),
        policy=replace(
            POLICY,
            leads={
                "LAB": LeadTime(before=timedelta(hours=2)),
                "SE2321000016-15CQ/LAB": LeadTime(before=timedelta(minutes=30)),
            },
        ),
    ),
    Row(
        "booked inside the lead time: no reminder",
        ("R-NOT-1",),
        booking(start=local(7, 15)),
        ((Kind.REMINDER, None),),
    ),
    Row(
        "booked inside the lead time, configured to remind: at once",
        ("R-NOT-1",),
        booking(start=local(7, 15)),
        ((Kind.REMINDER, NOW),),
        policy=replace(POLICY, remind_when_booked_late=True),
    ),
    Row(
        "quiet hours: a reminder due at 06:30 moves to 08:00 before a 09:00 visit",
        ("R-NOT-1",),
        booking(time_type="LAB", start=local(10, 8, 30)),
        ((Kind.REMINDER, local(10, 8)),),
        policy=replace(POLICY, leads={"LAB": LeadTime(before=timedelta(hours=2))}),
    ),
    Row(
        "quiet hours: the morning is too late, so the evening before",
        ("R-NOT-1",),
        booking(time_type="LAB", start=local(10, 7, 30)),
        ((Kind.REMINDER, local(9, 20, 59)),),
    ),
    Row(
        "quiet hours off: due in the night",
        ("R-NOT-1",),
        booking(time_type="LAB", start=local(10, 7, 30)),
        ((Kind.REMINDER, local(10, 5, 30)),),
        policy=QUIET_OFF,
    ),
    Row(
        "video: a notice when booked and a reminder 15 minutes before",
        ("R-BK-5",),
        booking(contact="video", time_type="VIDEO"),
        ((Kind.VIDEO_BOOKED, NOW), (Kind.VIDEO_REMINDER, local(10, 9, 15))),
    ),
    Row(
        "video moved: no second booked-notice",
        ("R-BK-5",),
        booking(contact="video", time_type="VIDEO", new=False, notice_exists=True),
        ((Kind.VIDEO_REMINDER, local(10, 9, 15)),),
    ),
    Row(
        "video booked at night: the notice waits for the morning",
        ("R-BK-5",),
        booking(contact="video", time_type="VIDEO"),
        ((Kind.VIDEO_BOOKED, local(8, 8)), (Kind.VIDEO_REMINDER, local(10, 9, 15))),
        now=local(7, 23),
    ),
    Row(
        "child under 13: nothing (guardians cannot consent)",
        ("R-NOT-4",),
        booking(patient=CHILD),
        ((Kind.REMINDER, None),),
    ),
    Row(
        "teenager 13-17: reminded (own consent)",
        ("R-NOT-1", "R-NOT-4"),
        booking(patient=TEEN),
        ((Kind.REMINDER, local(9, 18)),),
    ),
    Row("deceased: nothing", ("R-ID-5",), booking(deceased=True), ((Kind.REMINDER, None),)),
    Row("reservnummer: nothing", ("R-ID-2",), booking(patient=RESERV), ((Kind.REMINDER, None),)),
    Row(
        "hidden time type: nothing",
        ("R-BK-1",),
        booking(visible=False, withheld="R-BK-1: hidden time type"),
        ((Kind.REMINDER, None),),
    ),
    Row(
        "hidden time type of a protected person: nothing",
        ("R-BK-1",),
        booking(visible=False, withheld="R-BK-1: hidden", protected=True, hidden_time_type=True),
        ((Kind.REMINDER, None),),
    ),
    Row(
        "not in the register: nothing (protection not ruled out)",
        ("R-ID-7",),
        booking(visible=False, withheld="R-ID-7: not found in the population register"),
        ((Kind.REMINDER, None),),
    ),
    Row(
        "protected person: reminded, neutral text",
        ("R-ID-3", "R-NOT-5"),
        booking(visible=False, withheld="R-ID-3", protected=True),
        ((Kind.REMINDER, local(9, 18)),),
    ),
    Row("cancelled: nothing", ("R-NOT-1",), booking(status="cancelled"), ((Kind.REMINDER, None),)),
    Row("passed: nothing", ("R-NOT-1",), booking(start=local(7, 9)), ((Kind.REMINDER, None),)),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{'+'.join(r.rules)} {r.name}")
def test_plan_booking(row: Row) -> None:
    decisions = plan_booking(row.booking, row.policy, row.now)
    assert tuple((d.kind, d.due_at) for d in decisions) == row.expected
    for d in decisions:
        assert set(row.rules) & set(d.rules), d
        assert d.recipient == row.booking.patient and d.role is Role.PATIENT
        assert d.why


DOC = DeliveredDocument("d1", ADULT, platform_only=True, visible=True, recipients=((ADULT, Role.PATIENT),))


@pytest.mark.parametrize(
    ("name", "document", "now", "expected"),
    [
        ("R-NOT-2 fifteen minutes after", DOC, NOW, (NOW + timedelta(minutes=15),)),
        ("R-NOT-2 marked direct: at once", replace(DOC, direct=True), NOW, (NOW,)),
        ("R-NOT-2 at night: in the morning", DOC, local(7, 22), (local(8, 8),)),
        ("R-NOT-2 in a mailbox: the mailbox notifies", replace(DOC, platform_only=False), NOW, (None,)),
        ("R-NOT-2 held: nobody", replace(DOC, visible=False), NOW, (None,)),
        (
            "R-DOC-4 child under 13: each guardian",
            replace(DOC, patient=CHILD, recipients=((GUARDIAN, Role.GUARDIAN),)),
            NOW,
            (NOW + timedelta(minutes=15),),
        ),
    ],
)
def test_plan_document(
    name: str, document: DeliveredDocument, now: datetime, expected: tuple[object, ...]
) -> None:
    decisions = plan_document(document, POLICY, now)
    assert tuple(d.due_at for d in decisions) == expected
    assert all("R-NOT-2" in d.rules for d in decisions)
    assert [(d.recipient, d.role) for d in decisions] == list(document.recipients)


CONSENTING = Account(ADULT, AccountStatus.ACTIVE, sms_consent=True, mobile="+46701234567")
TODAY = NOW.date()


@pytest.mark.parametrize(
    ("name", "kind", "subject", "account", "extra", "expected"),
    [
        ("R-NOT-1 consent and mobile: send", Kind.REMINDER, ADULT, CONSENTING, {}, Send("+46701234567")),
        (
            "R-NOT-1 no consent: not sent",
            Kind.REMINDER,
            ADULT,
            replace(CONSENTING, sms_consent=False),
            {},
            DontSend(("R-NOT-1",), "no consent to SMS reminders in the platform"),
        ),
        ("R-NOT-1 no mobile", Kind.REMINDER, ADULT, replace(CONSENTING, mobile=None), {}, "R-NOT-1"),
        ("R-NOT-1 booking gone", Kind.REMINDER, ADULT, CONSENTING, {"booked": False}, "R-NOT-1"),
        (
            "R-ACC-1 locked account",
            Kind.DOCUMENT,
            ADULT,
            replace(CONSENTING, status=AccountStatus.LOCKED),
            {},
            "R-ACC-1",
        ),
        ("R-NOT-4 child: no reminder", Kind.VIDEO_REMINDER, CHILD, CONSENTING, {}, "R-NOT-4"),
        ("R-NOT-2 read meanwhile", Kind.DOCUMENT, ADULT, CONSENTING, {"read": True}, "R-NOT-2"),
        (
            "R-DOC-4 guardian's notice about a child",
            Kind.DOCUMENT,
            CHILD,
            replace(CONSENTING, person=GUARDIAN),
            {},
            Send("+46701234567"),
        ),
    ],
)
def test_decide_send(
    name: str, kind: Kind, subject: PersonId, account: Account, extra: dict[str, bool], expected: object
) -> None:
    got = decide_send(kind, Role.PATIENT, subject, account, TODAY, **extra)
    if isinstance(expected, str):
        assert isinstance(got, DontSend) and expected in got.rules
    else:
        assert got == expected


def test_texts_carry_only_date_time_and_link_R_NOT_5() -> None:
    start = datetime(2026, 12, 10, 8, 30, tzinfo=UTC)
    assert render(POLICY, Kind.REMINDER, start) == "Påminnelse 10 dec kl 09:30. https://www.1177.se"
    check_template(Kind.REMINDER, "Hej {date} {link}")
    with pytest.raises(ValueError, match="R-NOT-5"):
        check_template(Kind.REMINDER, "Din tid hos {unit} {link}")
    with pytest.raises(ValueError, match="R-NOT-5"):
        check_template(Kind.DOCUMENT, "Nytt meddelande")


@pytest.mark.parametrize(
    ("sender", "ok"),
    [("RegHalland", True), ("1177", True), ("RegionHalland", False), ("Reg Halland", False), ("", False)],
)
def test_sender_name_at_most_11_characters_R_NOT_3(sender: str, ok: bool) -> None:
    if ok:
        assert check_sender(sender) == sender
    else:
        with pytest.raises(ValueError, match="R-NOT-3"):
            check_sender(sender)


def test_quiet_hours_across_midnight() -> None:
    hours = QuietHours(time(21), time(8))
    assert hours.contains(local(7, 23)) and hours.contains(local(8, 7, 59))
    assert not hours.contains(local(8, 8)) and not hours.contains(local(7, 20, 59))


def test_the_shipped_mapping_loads_and_a_tester_sets_minutes_and_no_quiet_hours(tmp_path: Path) -> None:
    policy = load_notifications()
    assert policy.default_lead == LeadTime(days_before=1, at=time(18))
    assert policy.quiet_hours == QuietHours(time(21), time(8))
    text = (DEFAULT_DIR / "notifications.yaml").read_text(encoding="utf-8")
    text = text.replace('default: {days_before: 1, at: "18:00"}', "default: {minutes_before: 5}")
    text = text.replace('quiet_hours: {start: "21:00", end: "08:00"}', "quiet_hours: null")
    (tmp_path / "notifications.yaml").write_text(text, encoding="utf-8")
    mine = load_notifications(tmp_path)
    assert mine.default_lead.due(NOW) == NOW - timedelta(minutes=5) and mine.quiet_hours is None


def test_a_template_naming_the_unit_is_refused_at_start_R_NOT_5(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / "notifications.yaml").read_text(encoding="utf-8")
    text = text.replace("Du har fått ett nytt meddelande från vården.", "Nytt från {unit}.")
    (tmp_path / "notifications.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="R-NOT-5"):
        load_notifications(tmp_path)
