"""Citizen self-service on bookings (issue 21): who may list, book, rebook and cancel, and when.

Pure functions over domain objects, no I/O, no clock (``now`` is passed in). Every refusal
names the rule it comes from (R-ACC-1/2/3, R-BK-1, R-ID-3 and the self-service rules
R-BK-6..11 proposed in ``docs/self-service.md``) and a :class:`RefusalKind` the faces translate
into their own vocabulary (FHIR 403/409/422, crm:scheduling result codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from gateway.domain.accounts import Account, AccountStatus, can_log_in
from gateway.domain.identity import PersonId
from gateway.domain.register import RegisterRecord


class SelfServiceAction(StrEnum):
    LIST = "list"
    BOOK = "book"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"


class RefusalKind(StrEnum):
    #: The actor may not act for this person at all (FHIR 403).
    FORBIDDEN = "forbidden"
    #: The booking exists but the change is not allowed now (FHIR 409).
    CONFLICT = "conflict"
    #: The request asks for something that can never be done this way (FHIR 422).
    UNPROCESSABLE = "unprocessable"


@dataclass(frozen=True, slots=True)
class Refusal:
    rule: str
    kind: RefusalKind
    reason: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


#: The default deadline when a unit lists none: seed 001, "Om du behöver avboka din tid ska
#: detta göras senast 24 timmar före besöket".
DEFAULT_DEADLINE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class UnitPolicy:
    """A care unit's self-service rule, as data (``mappings/self_service.yaml``).

    ``change_deadline``: a booking can be rebooked or cancelled by the citizen no later than this
    long before its start (R-BK-9). ``book_lead``: a free slot can be booked no later than this
    long before its start. ``enabled``: whether the unit offers web booking at all.
    ``health_centre``: the unit is a health centre (vårdcentral), where only the citizens listed
    there run errands (R-ACC-3).
    """

    unit: str
    change_deadline: timedelta = DEFAULT_DEADLINE
    book_lead: timedelta = timedelta(0)
    enabled: bool = True
    health_centre: bool = False


@dataclass(frozen=True, slots=True)
class SelfServicePolicy:
    default: UnitPolicy = field(default_factory=lambda: UnitPolicy("*"))
    units: tuple[UnitPolicy, ...] = ()

    def for_unit(self, unit: str) -> UnitPolicy:
        for policy in self.units:
            if policy.unit == unit:
                return policy
        return UnitPolicy(
            unit,
            self.default.change_deadline,
            self.default.book_lead,
            self.default.enabled,
            self.default.health_centre,
        )


@dataclass(frozen=True, slots=True)
class ExistingBooking:
    """What the journal says of a booking the citizen wants to change (``GetBookings``)."""

    booking_id: str
    unit: str
    start: datetime
    time_type_visible: bool
    #: ``CancelAllowed`` / ``RescheduleAllowed`` (optional in the contract: absent is *not* allowed).
    cancel_allowed: bool | None
    reschedule_allowed: bool | None


@dataclass(frozen=True, slots=True)
class FreeSlot:
    unit: str
    start: datetime
    time_type_visible: bool


def check_actor(account: Account, actor: PersonId, today: date) -> Refusal | None:
    """R-BK-6 with R-ACC-1, R-ACC-2, R-ID-6: whoever may open the account (the patient with an
    active account, or an active proxy: :func:`~gateway.domain.accounts.can_log_in`) may act;
    anyone else is refused with the rule that says why."""
    if can_log_in(account, actor, today):
        return None
    if account.status is AccountStatus.LOCKED:
        return Refusal("R-ACC-1", RefusalKind.FORBIDDEN, "the account is locked (spärrat konto)")
    if actor == account.person:
        return Refusal("R-BK-6", RefusalKind.FORBIDDEN, "the person has no platform account")
    if any(proxy.person == actor and proxy.blocked for proxy in account.proxies):
        return Refusal("R-ACC-2", RefusalKind.FORBIDDEN, "the proxy is blocked for this person")
    return Refusal("R-BK-6", RefusalKind.FORBIDDEN, "the actor is neither the patient nor an active proxy")


def check_listing(account: Account, policy: UnitPolicy) -> Refusal | None:
    """R-ACC-3: a citizen runs errands only with the health centre they are listed at (seed 000).
    A new booking is an errand; rebooking or cancelling a booking the unit already gave is not."""
    if not policy.health_centre or account.listing_unit == policy.unit:
        return None
    return Refusal(
        "R-ACC-3",
        RefusalKind.FORBIDDEN,
        "a new time at a health centre is booked only by the citizens listed there; "
        "contact the health centre you are listed at",
    )


def check_register(record: RegisterRecord | None, patient: PersonId) -> Refusal | None:
    """R-BK-10 (R-ID-3, R-ID-2, R-ID-5, R-ID-7): a protected person's bookings are neither
    listed nor changed through the platform; so neither are those the register cannot clear."""
    if patient.is_reservnummer:
        return Refusal("R-ID-2", RefusalKind.FORBIDDEN, "a reservnummer has no platform self-service")
    if record is None:
        return Refusal(
            "R-ID-7", RefusalKind.FORBIDDEN, "not in the population register; protection not ruled out"
        )
    if record.protected:
        return Refusal(
            "R-ID-3", RefusalKind.FORBIDDEN, "protected identity: bookings are handled by the unit only"
        )
    if record.deceased:
        return Refusal("R-ID-5", RefusalKind.FORBIDDEN, "deceased according to the population register")
    return None


def check_time_type(visible: bool) -> Refusal | None:
    """R-BK-7 (R-BK-1): only bookings and slots on patient-visible time types."""
    if visible:
        return None
    return Refusal("R-BK-1", RefusalKind.UNPROCESSABLE, "hidden time type (dold tidstyp)")


def check_journal_allows(action: SelfServiceAction, booking: ExistingBooking) -> Refusal | None:
    """R-BK-8: the journal's ``CancelAllowed`` / ``RescheduleAllowed`` decide; absent is no."""
    if action is SelfServiceAction.CANCEL and booking.cancel_allowed is not True:
        return Refusal(
            "R-BK-8", RefusalKind.CONFLICT, "the journal does not allow this booking to be cancelled"
        )
    if action is SelfServiceAction.RESCHEDULE and booking.reschedule_allowed is not True:
        return Refusal(
            "R-BK-8", RefusalKind.CONFLICT, "the journal does not allow this booking to be rebooked"
        )
    return None


def check_deadline(start: datetime, now: datetime, policy: UnitPolicy) -> Refusal | None:
    """R-BK-9: a change no later than the unit's deadline before the booked start."""
    if start - now < policy.change_deadline:
        hours = int(policy.change_deadline.total_seconds() // 3600)
        return Refusal(
            "R-BK-9",
            RefusalKind.CONFLICT,
            f"too late: the unit takes changes no later than {hours} hours before the visit",
        )
    return None


def check_slot(slot: FreeSlot, now: datetime, policy: UnitPolicy) -> Refusal | None:
    """R-BK-7 and R-BK-9 for the time booked: visible, in the future, within the unit's lead."""
    if (refused := check_time_type(slot.time_type_visible)) is not None:
        return refused
    if slot.start - now < policy.book_lead or slot.start <= now:
        return Refusal("R-BK-9", RefusalKind.CONFLICT, "the slot starts too soon to be booked on the web")
    return None


@dataclass(frozen=True, slots=True)
class Request:
    """Everything a decision needs, gathered by the use case before it decides."""

    action: SelfServiceAction
    actor: PersonId
    account: Account
    record: RegisterRecord | None
    today: date
    now: datetime
    policy: UnitPolicy
    #: The booking changed (RESCHEDULE, CANCEL).
    booking: ExistingBooking | None = None
    #: The slot taken (BOOK, RESCHEDULE).
    slot: FreeSlot | None = None


def decide(req: Request) -> Refusal | None:
    """The first refusal in rule order, or ``None``: the action may go to the journal.

    Order: who acts (R-ACC-1, R-ACC-2, R-BK-6), whose data (R-ID-3 ...), the unit offers it
    (R-BK-6) and, for a new booking at a health centre, to this citizen (R-ACC-3), then the
    booking (R-BK-1, R-BK-8, R-BK-9) and the new slot (R-BK-1, R-BK-9).
    """
    patient = req.account.person
    checks: list[Refusal | None] = [
        check_actor(req.account, req.actor, req.today),
        check_register(req.record, patient),
    ]
    if req.action is not SelfServiceAction.LIST and not req.policy.enabled:
        checks.append(Refusal("R-BK-6", RefusalKind.FORBIDDEN, "the unit offers no web booking"))
    if req.action is SelfServiceAction.BOOK:
        checks.append(check_listing(req.account, req.policy))
    if req.action in (SelfServiceAction.RESCHEDULE, SelfServiceAction.CANCEL):
        if req.booking is None:
            raise ValueError(f"{req.action.value} needs the booking")
        checks += [
            check_time_type(req.booking.time_type_visible),
            check_journal_allows(req.action, req.booking),
            check_deadline(req.booking.start, req.now, req.policy),
        ]
    if req.action in (SelfServiceAction.BOOK, SelfServiceAction.RESCHEDULE):
        if req.slot is None:
            raise ValueError(f"{req.action.value} needs the slot")
        checks.append(check_slot(req.slot, req.now, req.policy))
    return next((c for c in checks if c is not None), None)


def listable(time_type_visible: bool) -> bool:
    """R-BK-1: which of the person's bookings the list shows (the others stay in the journal)."""
    return time_type_visible
