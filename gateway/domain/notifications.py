"""SMS reminders and notices (R-NOT-1..5, R-BK-5): who gets which SMS, when, with what text.

Pure functions over domain objects and a ``now`` passed in; the store keeps the plan
(``gateway/service/notification_flow.py``) and the worker sends it (``gateway/service/notifier.py``).

Two moments decide:

- **Planning**, in the same transaction as the booking or document change: what to send and
  when (:func:`plan_booking`, :func:`plan_document`). Everything the journal and the register
  told is known here: the booking's state, time, time type and unit; protection, death, age.
- **Sending**, when a notification is due (:func:`decide_send`): what only the account service
  knows and may change until the last moment -- the consent (R-NOT-1), the mobile number, a
  locked account -- and whether a document was read meanwhile (R-NOT-2).

The text is rendered from templates (``mappings/notifications.yaml``) that may only use the
date, the time and the login link (R-NOT-5): never a reason, unit, time type, name or content.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.domain.accounts import GUARDIAN_AGE_LIMIT, Account, AccountStatus, sms_reminder_allowed
from gateway.domain.identity import PersonId, age_on

STOCKHOLM = ZoneInfo("Europe/Stockholm")

#: R-NOT-3: an alphanumeric SMS sender is at most 11 characters.
SENDER_MAX = 11

#: R-NOT-5: the only values a template may use.
TEMPLATE_FIELDS = frozenset({"date", "time", "link"})

_MONTHS = ("jan", "feb", "mars", "april", "maj", "juni", "juli", "aug", "sep", "okt", "nov", "dec")


class Kind(StrEnum):
    #: R-NOT-1: before a booked visit, to a citizen who consented.
    REMINDER = "reminder"
    #: R-BK-5: a video booking was made.
    VIDEO_BOOKED = "video-booked"
    #: R-BK-5: the video meeting starts in 15 minutes.
    VIDEO_REMINDER = "video-reminder"
    #: R-NOT-2: a new document in the platform.
    DOCUMENT = "document"

    @property
    def is_reminder(self) -> bool:
        """Reminders need the SMS-reminder consent and are never for a child under 13 (R-NOT-4)."""
        return self in (Kind.REMINDER, Kind.VIDEO_REMINDER)


class Role(StrEnum):
    """Who the SMS goes to, relative to the person it is about."""

    PATIENT = "patient"
    GUARDIAN = "guardian"
    PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class LeadTime:
    """When a reminder is due before the visit: ``days_before`` at ``at`` local time (the evening
    before: 1 day, 18:00), or ``before`` the start (a tester's few minutes)."""

    days_before: int = 1
    at: time = time(18, 0)
    before: timedelta | None = None

    def due(self, start: datetime) -> datetime:
        if self.before is not None:
            return start - self.before
        local = start.astimezone(STOCKHOLM)
        day = local.date() - timedelta(days=self.days_before)
        return datetime.combine(day, self.at, tzinfo=STOCKHOLM)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No SMS from ``start`` to ``end`` local time (e.g. 21:00-08:00, across midnight)."""

    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        t = moment.astimezone(STOCKHOLM).time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_end(self, moment: datetime) -> datetime:
        """The first moment after ``moment`` when the quiet hours end."""
        local = moment.astimezone(STOCKHOLM)
        end = datetime.combine(local.date(), self.end, tzinfo=STOCKHOLM)
        return (
            end
            if end > local
            else datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=STOCKHOLM)
        )

    def last_start(self, moment: datetime) -> datetime:
        """The last moment before ``moment`` when the quiet hours began."""
        local = moment.astimezone(STOCKHOLM)
        begin = datetime.combine(local.date(), self.start, tzinfo=STOCKHOLM)
        return (
            begin
            if begin <= local
            else datetime.combine(local.date() - timedelta(days=1), self.start, tzinfo=STOCKHOLM)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """The region's choices (``mappings/notifications.yaml``), loaded and checked at start-up."""

    login_link: str = "https://www.1177.se"
    default_lead: LeadTime = LeadTime()
    #: Lead time per unit (HSA-id) and per time type; "UNIT/TIMETYPE" beats either alone.
    leads: Mapping[str, LeadTime] = field(default_factory=dict)
    #: Remind a booking made inside its lead time (at once, quiet hours allowing).
    remind_when_booked_late: bool = False
    quiet_hours: QuietHours | None = QuietHours(time(21, 0), time(8, 0))
    video_booked_notice: bool = True
    video_reminder_before: timedelta = timedelta(minutes=15)
    document_delay: timedelta = timedelta(minutes=15)
    templates: Mapping[Kind, str] = field(default_factory=dict)

    def lead_for(self, unit: str | None, time_type: str | None) -> LeadTime:
        for key in (f"{unit}/{time_type}", time_type, unit):
            if key and key in self.leads:
                return self.leads[key]
        return self.default_lead


def check_template(kind: Kind, text: str) -> None:
    """R-NOT-5: a template may only use {date}, {time} and {link}; raise ValueError otherwise."""
    used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    unknown = used - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"template {kind.value} uses {', '.join(sorted(unknown))}: only {{date}}, {{time}} and {{link}} "
            "may appear in an SMS (R-NOT-5)"
        )
    if "link" not in used:
        raise ValueError(f"template {kind.value} has no {{link}}: an SMS carries a login link (R-NOT-5)")


def check_sender(sender: str) -> str:
    """R-NOT-3: the SMS sender name, at most 11 characters, letters and digits (alphanumeric
    sender ids carry no spaces or punctuation reliably). Raise ValueError otherwise."""
    if not sender or len(sender) > SENDER_MAX:
        raise ValueError(f"SMS sender name must be 1-{SENDER_MAX} characters (R-NOT-3), got {len(sender)}")
    if not sender.isascii() or not sender.isalnum():
        raise ValueError("SMS sender name must be letters A-Z and digits only (R-NOT-3)")
    return sender


def render(policy: Policy, kind: Kind, visit_start: datetime | None) -> str:
    """The SMS text: the kind's template with the visit's local date and time and the login link.
    Nothing else about the person or the visit can reach it (R-NOT-5)."""
    local = visit_start.astimezone(STOCKHOLM) if visit_start is not None else None
    values = {
        "date": f"{local.day} {_MONTHS[local.month - 1]}" if local else "",
        "time": f"{local:%H:%M}" if local else "",
        "link": policy.login_link,
    }
    return policy.templates[kind].format(**values)


# --- planning -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Booking:
    """A booking as the gateway now holds it, with what the register said of its person."""

    appointment_id: str
    patient: PersonId
    status: str
    start: datetime
    #: The time type's kind from ``time_types.yaml``: physical, video, phone (None: unknown).
    contact: str | None
    time_type: str | None
    unit: str | None
    #: Shown on the platform (R-BK-1, R-ID-3); ``withheld`` says why not.
    visible: bool
    withheld: str | None
    protected: bool
    deceased: bool
    #: Made just now (first version): a video booking gets its notice (R-BK-5).
    new: bool
    #: A booked-notice for this booking was planned or sent already.
    notice_exists: bool = False
    #: On a hidden time type (dold tidstyp): shown to nobody outside the journal (R-BK-1),
    #: whoever the person is.
    hidden_time_type: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """One planned SMS (``due_at`` set), or one that will not be sent and why (``due_at`` None)."""

    kind: Kind
    recipient: PersonId
    role: Role
    due_at: datetime | None
    rules: tuple[str, ...]
    why: str

    @property
    def planned(self) -> bool:
        return self.due_at is not None


def _quiet(policy: Policy, due: datetime, now: datetime, deadline: datetime | None) -> datetime | None:
    """Move ``due`` out of the quiet hours: to the morning while still before ``deadline`` (the
    visit), else to the evening before the quiet hours began if that is still ahead; None when
    neither fits. Never before ``now``."""
    due = max(due, now)
    hours = policy.quiet_hours
    if hours is None or not hours.contains(due):
        return due
    morning = hours.next_end(due)
    if deadline is None or morning < deadline:
        return morning
    evening = hours.last_start(due) - timedelta(minutes=1)
    return evening if evening >= now else None


def plan_booking(booking: Booking, policy: Policy, now: datetime) -> tuple[Decision, ...]:
    """What to send about a booking in its current state (R-NOT-1, R-NOT-4, R-BK-5, R-ID-3/5).

    Consent and the mobile number are checked when the SMS is due (:func:`decide_send`).
    """
    patient = booking.patient
    video = booking.contact == "video"
    kinds = [Kind.VIDEO_REMINDER] if video else [Kind.REMINDER]
    if video and policy.video_booked_notice and booking.new and not booking.notice_exists:
        kinds.insert(0, Kind.VIDEO_BOOKED)

    def nobody(rules: tuple[str, ...], why: str) -> tuple[Decision, ...]:
        return tuple(Decision(k, patient, Role.PATIENT, None, rules, why) for k in kinds)

    if booking.status != "booked":
        return nobody(("R-NOT-1",), f"no booked visit: the booking is {booking.status}")
    if booking.start <= now:
        return nobody(("R-NOT-1",), "the visit has begun or passed")
    if booking.deceased:
        return nobody(("R-ID-5",), "the person is deceased: nothing is sent")
    if booking.hidden_time_type:
        return nobody(("R-BK-1",), "a hidden time type (dold tidstyp) is shown to nobody outside the journal")
    if not booking.visible and not booking.protected:
        rule = (booking.withheld or "R-BK-1").split(":", 1)[0]
        return nobody((rule,), f"the booking is not shown to the citizen ({booking.withheld})")
    age = age_on(patient, now.astimezone(STOCKHOLM).date())
    if age is None:
        return nobody(("R-ID-2",), "a reservnummer has no platform account or SMS consent")
    if age < GUARDIAN_AGE_LIMIT:
        return nobody(
            ("R-NOT-4",), f"a child under {GUARDIAN_AGE_LIMIT}: no SMS reminders, guardians cannot consent"
        )
    neutral = (
        " (neutral text; the booking itself is withheld from the platform, R-ID-3)"
        if booking.protected
        else ""
    )
    rules_extra: tuple[str, ...] = ("R-ID-3", "R-NOT-5") if booking.protected else ("R-NOT-5",)
    out: list[Decision] = []
    for kind in kinds:
        if kind is Kind.VIDEO_BOOKED:
            wanted, rules = now, ("R-BK-5", *rules_extra)
            why = "notice that a video booking was made"
        elif kind is Kind.VIDEO_REMINDER:
            wanted, rules = booking.start - policy.video_reminder_before, ("R-BK-5", *rules_extra)
            why = f"video meeting reminder {_minutes(policy.video_reminder_before)} before the start"
        else:
            lead = policy.lead_for(booking.unit, booking.time_type)
            wanted, rules = lead.due(booking.start), ("R-NOT-1", *rules_extra)
            why = "reminder before the booked visit, if the citizen consents to SMS reminders"
        if wanted < now and kind is not Kind.VIDEO_BOOKED and not policy.remind_when_booked_late:
            out.append(Decision(kind, patient, Role.PATIENT, None, rules, "booked inside the lead time"))
            continue
        due = _quiet(policy, wanted, now, booking.start)
        if due is None:
            why = "no time outside the quiet hours before the visit"
            out.append(Decision(kind, patient, Role.PATIENT, None, rules, why))
            continue
        if due != max(wanted, now):
            why += " (moved out of the quiet hours)"
        out.append(Decision(kind, patient, Role.PATIENT, due, rules, why + neutral))
    return tuple(out)


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


@dataclass(frozen=True, slots=True)
class DeliveredDocument:
    """A document as routing delivered it (R-DOC-4): who sees it in the platform."""

    document_id: str
    patient: PersonId
    #: Delivered to the platform and nowhere else (no digital mailbox).
    platform_only: bool
    #: Shown in the platform (not held, not for a protected or deceased person).
    visible: bool
    #: The platform recipients: the person, guardians of a child under 13, proxies.
    recipients: tuple[tuple[PersonId, Role], ...]
    #: Marked by the journal to notify at once ("aviseras direkt", ZNT-2 ``D``).
    direct: bool = False


def plan_document(document: DeliveredDocument, policy: Policy, now: datetime) -> tuple[Decision, ...]:
    """R-NOT-2: a notice to each platform recipient 15 minutes after a document delivered to the
    platform only, at once when marked direct. A document in a digital mailbox is notified by the
    mailbox; a held or withheld one is notified by nobody."""
    out: list[Decision] = []
    for person, role in document.recipients:
        if not document.visible:
            out.append(
                Decision(
                    Kind.DOCUMENT,
                    person,
                    role,
                    None,
                    ("R-NOT-2",),
                    "the document is not shown in the platform",
                )
            )
            continue
        if not document.platform_only:
            out.append(
                Decision(
                    Kind.DOCUMENT,
                    person,
                    role,
                    None,
                    ("R-NOT-2",),
                    "delivered to a digital mailbox, which notifies",
                )
            )
            continue
        wanted = now if document.direct else now + policy.document_delay
        due = _quiet(policy, wanted, now, None)
        assert due is not None  # no deadline: the morning always fits
        why = (
            "new document, marked to notify at once"
            if document.direct
            else (
                f"new document, notice {_minutes(policy.document_delay)} after it arrived unless read by then"
            )
        )
        if due != wanted:
            why += " (moved out of the quiet hours)"
        out.append(Decision(Kind.DOCUMENT, person, role, due, ("R-NOT-2", "R-DOC-4", "R-NOT-5"), why))
    return tuple(out)


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    to: str


@dataclass(frozen=True, slots=True)
class DontSend:
    rules: tuple[str, ...]
    why: str


def decide_send(
    kind: Kind,
    role: Role,
    subject: PersonId,
    account: Account,
    today: date,
    *,
    booked: bool = True,
    read: bool = False,
) -> Send | DontSend:
    """The last check when an SMS is due, with the recipient's account as the service says now.

    ``subject`` is the person the SMS is about; ``account`` the recipient's (with the mobile).
    """
    if kind is Kind.DOCUMENT and read:
        return DontSend(("R-NOT-2",), "the document was read before the notice was due")
    if kind is not Kind.DOCUMENT and not booked:
        return DontSend(("R-NOT-1",), "the booking is no longer booked")
    age = age_on(subject, today)
    if kind.is_reminder and (age is None or age < GUARDIAN_AGE_LIMIT):
        return DontSend(("R-NOT-4",), f"a child under {GUARDIAN_AGE_LIMIT}: no SMS reminders")
    if account.status is not AccountStatus.ACTIVE:
        return DontSend(("R-NOT-1", "R-ACC-1"), f"the recipient's platform account is {account.status.value}")
    if kind.is_reminder:
        if not sms_reminder_allowed(account, has_booking=booked):
            return DontSend(("R-NOT-1",), "no consent to SMS reminders in the platform")
    elif not account.sms_consent:
        return DontSend(("R-NOT-1",), "no consent to SMS in the platform")
    if not account.mobile:
        return DontSend(("R-NOT-1",), "the platform has no mobile number for the recipient")
    return Send(account.mobile)
