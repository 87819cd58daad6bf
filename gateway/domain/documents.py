"""Where an e-document goes (R-DOC-*, R-ID-*, R-ACC-*): one pure function, no I/O.

:func:`route_document` takes what the gateway knows when a document arrives (the document,
the person's register record and platform account, mailbox reachability, the unit's local
exceptions, today) and returns a :class:`RoutingDecision`: deliver (to whom), the print list,
HOLD for a manual decision, or REFUSE. Every decision names the rule ids that led to it.
The 48-hour unread check is a later step: :func:`needs_print_after_unread`.

The checks run in this order, the first that applies decides (a stricter outcome always wins:
REFUSE before HOLD before the print list before delivery):

1. REFUSE  deceased (R-ID-5)
2. REFUSE  e-kallelse for a hidden time type (R-DOC-6)
3. PRINT   reservnummer (R-ID-2, R-DOC-5)
4. HOLD    not in the register, or deregistered other than emigrated (R-ID-7, R-ID-5)
5. HOLD    protected identity, either level (R-ID-3, R-ID-4)
6. PRINT   a letter without its exact control code (R-DOC-3, R-DOC-2)
7. PRINT   the unit's local exception (R-DOC-7)
8. HOLD    a guardian or proxy who would get it has a protected identity (R-ID-3, R-ID-4)
9. DELIVER to the platform account, a mailbox, guardians, proxies (R-DOC-4) -- or PRINT when
           no one can take it digitally (R-DOC-5)

Decisions where DOMAIN.md and the seeds leave room:

- **Letters to a protected person are held too**, not only kallelser. 000 names the kallelse
  ("Innan kallelse skickas till en invånare med skyddade personuppgifter/känd hotbild ska
  vårdpersonalen haft en dialog med invånaren och gjort en överenskommelse om hur hen vill bli
  kallad"), but a letter or referral confirmation names the unit and what is planned just the
  same, its header usually carries name and address, and R-ID-3 says "name/address never leave
  the gateway". The gateway cannot read the letter to tell, so staff decide (rule R-ID-3; the
  kallelse also carries R-ID-4).
- **Emigrated** (SPAR ``UV``) is routed like anyone else and flagged: 001 "Utvandrad" only
  shows a marker ("När en patient är folkbokförd utanför Sverige visas en markering om detta"),
  the person may keep BankID, account and mailbox, and DOMAIN.md stops only the deceased.
  The flag tells staff the register may hold no Swedish address if it ends on the print list.
- **Not found in the register** (a personnummer with no svarspost) and other deregistrations
  (annulled, false identity, an old number not followed) are HELD: protection cannot be ruled
  out (R-ID-7), so nothing leaves automatically.
- **"Neither account nor mailbox"** (R-DOC-5) is read as *no one can take it digitally*: a child
  without an account of its own whose guardians are active proxies gets it through them (001
  "För kallelser gällande barn under 13 år så kommer det notifieras till barnets registrerade
  ombud"), and the 48-hour unread rule then covers it.
- **A locked account** stops platform delivery to the person and every proxy (R-ACC-1), not the
  mailbox: the mailbox is outside the platform and opted out of separately (000 "Om invånaren
  även har digital brevlåda kan invånaren tacka nej till att få e-dokumentet dit").
- **A letter whose code is the other kind's** (an e-brev carrying ``[4US:RPAT]``) lacks *its*
  control code: print list (R-DOC-3). Both codes at once is the same (the scan's kind is NONE).
- **Unit exceptions never loosen a rule**: they apply after REFUSE and HOLD.
- **Guardians and proxies are checked in the register too** (R-ID-3, R-ID-7): each copy names
  its recipient, and the platform would serve a protected parent's number beside the child and
  the other parent (the usual reason a parent is protected is the other parent). So a document
  that would reach a *protected* guardian or proxy is HELD for staff with the reason; released,
  it goes to the others only and the protected one is reached as staff agreed (never listed
  beside anyone else). A guardian or proxy the register does not know, could not be asked
  about, or that is deceased or deregistered gets no copy (protection cannot be ruled out, or
  there is no one to send to); a reservnummer has no BankID and gets none either (R-ID-2). A
  changed number is followed to the number now in use (R-ID-5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from gateway.control_codes import CodeKind, ControlCodeScan
from gateway.domain.accounts import (
    Account,
    AccountStatus,
    Proxy,
    ProxyRelation,
    active_proxies,
    mailbox_allowed,
)
from gateway.domain.booking import BookingAction
from gateway.domain.identity import PersonId
from gateway.domain.register import RegisterRecord, Resolved

#: R-DOC-5: a document only in the platform goes to the print list if unread this long.
UNREAD_LIMIT = timedelta(hours=48)


class DocumentKind(StrEnum):
    """R-DOC-1: the three kinds of e-document."""

    E_KALLELSE = "e-kallelse"
    E_BREV = "e-brev"
    E_REMISSBEKRAFTELSE = "e-remissbekräftelse"

    @property
    def is_letter(self) -> bool:
        """Letters come from a template and need a control code; a kallelse does not."""
        return self is not DocumentKind.E_KALLELSE


_CODE_KIND = {
    DocumentKind.E_BREV: CodeKind.E_BREV,
    DocumentKind.E_REMISSBEKRAFTELSE: CodeKind.E_REMISSBEKRAFTELSE,
}


@dataclass(frozen=True, slots=True)
class Document:
    """What routing needs to know of one e-document.

    ``control_codes``: for a letter, the scan of its text (required). ``time_type_hidden``: for a
    kallelse, whether its booking's time type is hidden (dold tidstyp); a caller that cannot
    tell (an unmapped time type) passes True, as a kallelse cannot be taken back (R-DOC-6).
    """

    kind: DocumentKind
    control_codes: ControlCodeScan | None = None
    time_type_hidden: bool = False

    def __post_init__(self) -> None:
        if self.kind.is_letter and self.control_codes is None:
            raise ValueError(f"an {self.kind.value} needs the control-code scan of its text")
        if self.kind.is_letter and self.time_type_hidden:
            raise ValueError("only a kallelse has a booking and a time type")

    @classmethod
    def kallelse(cls, *, time_type_hidden: bool) -> Document:
        return cls(DocumentKind.E_KALLELSE, time_type_hidden=time_type_hidden)

    @classmethod
    def letter(cls, kind: DocumentKind, control_codes: ControlCodeScan) -> Document:
        return cls(kind, control_codes)


class MailboxProvider(StrEnum):
    """The mailbox operators (Mina meddelanden ``ServiceSupplier``)."""

    KIVRA = "Kivra"
    BILLO = "Billo"
    MIN_MYNDIGHETSPOST = "MinMyndighetspost"


@dataclass(frozen=True, slots=True)
class MailboxReachability:
    """The recipient service's answer for one person (``isReachable``).

    ``declined``: the person has a mailbox but turned down mail from the sector (000 "tacka
    nej-webben"). ``sender_accepted``: False when the person (or operator) does not accept this
    sender. Either way nothing goes to the mailbox. ``unusable``: the service named a mailbox the
    gateway may not deliver to (an operator not in its supplier table, an address off the
    allowlist): routed as no mailbox, and the reason goes into the decision staff see.
    """

    provider: MailboxProvider | None = None
    declined: bool = False
    sender_accepted: bool = True
    unusable: str | None = None

    @property
    def deliverable(self) -> bool:
        return self.provider is not None and not self.declined and self.sender_accepted


NO_MAILBOX = MailboxReachability()


@dataclass(frozen=True, slots=True)
class UnitExceptions:
    """R-DOC-7: a unit's local exceptions (000 "Eventuella lokala undantag per mottagning").

    ``print_list_kinds``: kinds this unit always sends to the print list (all three: the unit
    prints everything). ``no_mailbox``: this unit never sends to digital mailboxes.
    """

    print_list_kinds: frozenset[DocumentKind] = frozenset()
    no_mailbox: bool = False
    #: Said in the decision's reason, e.g. "BUP: paper only, decided 2025-03".
    note: str | None = None

    @classmethod
    def print_everything(cls, note: str | None = None) -> UnitExceptions:
        return cls(frozenset(DocumentKind), note=note)


NO_EXCEPTIONS = UnitExceptions()


class Outcome(StrEnum):
    DELIVER = "deliver"
    PRINT_LIST = "print-list"
    HOLD = "hold"
    REFUSE = "refuse"


class Channel(StrEnum):
    """Where one copy of a document goes."""

    #: The person's own account in the citizen platform.
    PLATFORM = "platform"
    #: The person's digital mailbox (never a guardian's or proxy's own, R-DOC-4).
    MAILBOX = "mailbox"
    #: A guardian's view of the child in the platform (R-ID-6).
    GUARDIAN = "guardian"
    #: A registered proxy's (ombud) view of the person in the platform.
    PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: Channel
    recipient: PersonId
    provider: MailboxProvider | None = None


class Flag(StrEnum):
    """Things staff should see on a decision, whatever the outcome."""

    #: R-ID-5: emigrated per SPAR; the register may hold no Swedish postal address.
    EMIGRATED = "emigrated"
    #: R-DOC-2: the letter's text has near misses of a control code; fix the template.
    TEMPLATE_NEAR_MISS = "template-near-miss"


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """The outcome, the copies to deliver, and why (rule ids in the order they applied)."""

    outcome: Outcome
    rules: tuple[str, ...]
    reason: str
    deliveries: tuple[Delivery, ...] = ()
    flags: frozenset[Flag] = field(default_factory=frozenset)

    @property
    def to_platform(self) -> bool:
        return any(d.channel is Channel.PLATFORM for d in self.deliveries)

    @property
    def mailbox(self) -> MailboxProvider | None:
        return next((d.provider for d in self.deliveries if d.channel is Channel.MAILBOX), None)

    @property
    def guardians(self) -> tuple[PersonId, ...]:
        return tuple(d.recipient for d in self.deliveries if d.channel is Channel.GUARDIAN)

    @property
    def proxies(self) -> tuple[PersonId, ...]:
        return tuple(d.recipient for d in self.deliveries if d.channel is Channel.PROXY)


def route_document(
    document: Document,
    *,
    person: PersonId,
    record: RegisterRecord | None,
    account: Account,
    mailbox: MailboxReachability,
    unit: UnitExceptions = NO_EXCEPTIONS,
    proxies: Mapping[PersonId, Resolved] | None = None,
    today: date,
) -> RoutingDecision:
    """Decide where ``document`` for ``person`` goes (see the module docstring for the order).

    ``record`` is the register's answer for the person's *current* number (a changed number
    already followed, R-ID-5), ``None`` when the register has no such person or the person has a
    reservnummer. ``account`` is the platform's (``no_account(person)`` when it has none).
    ``proxies``: the register's answer for each of the account's guardians and proxies, keyed by
    the number the account names; one missing was not checked and gets no copy (R-ID-7).
    """
    if account.person.value != person.value or (record is not None and record.person.value != person.value):
        raise ValueError("the register record and the account must be the routed person's")
    flags = _flags(document, record)

    def decide(
        outcome: Outcome, rules: tuple[str, ...], reason: str, *deliveries: Delivery
    ) -> RoutingDecision:
        return RoutingDecision(outcome, rules, reason, deliveries, flags)

    kind = document.kind.value
    if record is not None and record.deceased:
        died = f" ({record.deceased_date.isoformat()})" if record.deceased_date else ""
        return decide(
            Outcome.REFUSE, ("R-ID-5",), f"deceased{died} per the population register: nothing is sent"
        )
    if document.kind is DocumentKind.E_KALLELSE and document.time_type_hidden:
        return decide(
            Outcome.REFUSE,
            ("R-DOC-6", "R-BK-1"),
            "kallelse for a booking on a hidden time type (dold tidstyp): once sent it cannot be hidden",
        )
    if person.is_reservnummer:
        return decide(
            Outcome.PRINT_LIST,
            ("R-ID-2", "R-DOC-5"),
            f"reservnummer: no BankID, so no platform account and no mailbox; the {kind} is printed",
        )
    if record is None:
        return decide(
            Outcome.HOLD,
            ("R-ID-7",),
            "not found in the population register: protection cannot be ruled out; staff decide",
        )
    if record.deregistration is not None and not record.emigrated:
        code = record.deregistration
        what = "an old number: route to the number now in use" if record.changed_number else "staff decide"
        return decide(
            Outcome.HOLD,
            ("R-ID-5",),
            f"deregistered in the population register ({code.value}, "
            f"{code.name.lower().replace('_', ' ')}); {what}",
        )
    if record.protected:
        level = record.protection.value
        if document.kind is DocumentKind.E_KALLELSE:
            return decide(
                Outcome.HOLD,
                ("R-ID-4", "R-ID-3"),
                f"kallelse for a protected person ({level}): staff must first agree with the "
                "person how to be called",
            )
        return decide(
            Outcome.HOLD,
            ("R-ID-3", "R-ID-4"),
            f"{kind} for a protected person ({level}): the letter may reveal name, address or "
            "whereabouts; staff decide how to send it",
        )
    if document.kind.is_letter:
        missing = _missing_code(document)
        if missing is not None:
            near = ("R-DOC-2",) if Flag.TEMPLATE_NEAR_MISS in flags else ()
            return decide(Outcome.PRINT_LIST, ("R-DOC-3", *near, "R-DOC-5"), missing)
    if document.kind in unit.print_list_kinds:
        note = f" ({unit.note})" if unit.note else ""
        return decide(Outcome.PRINT_LIST, ("R-DOC-7",), f"the unit prints every {kind}{note}")
    return _recipients(document, person, account, mailbox, unit, today, flags, proxies or {})


def _flags(document: Document, record: RegisterRecord | None) -> frozenset[Flag]:
    flags = set()
    if record is not None and record.emigrated:
        flags.add(Flag.EMIGRATED)
    if document.control_codes is not None and document.control_codes.near_misses:
        flags.add(Flag.TEMPLATE_NEAR_MISS)
    return frozenset(flags)


def _missing_code(document: Document) -> str | None:
    """Why a letter lacks *its* exact control code (R-DOC-3), or None when it has it."""
    scan = document.control_codes
    assert scan is not None  # Document checks letters carry their scan
    wanted = _CODE_KIND[document.kind]
    if scan.kind is wanted:
        return None
    if scan.conflicting:
        what = "carries both [4US:LPAT] and [4US:RPAT]"
    elif scan.kind is not CodeKind.NONE:
        what = f"carries {scan.kind.code}, the {scan.kind.value} code, not {wanted.code}"
    elif scan.near_misses:
        first = scan.near_misses[0]
        what = f"has no exact {wanted.code}, only a near miss {first.text!r} at {first.position}"
    else:
        what = f"has no control code {wanted.code}"
    return f"the {document.kind.value} {what}; letters without their exact code are printed"


def _recipients(
    document: Document,
    person: PersonId,
    account: Account,
    mailbox: MailboxReachability,
    unit: UnitExceptions,
    today: date,
    flags: frozenset[Flag],
    registered: Mapping[PersonId, Resolved],
    *,
    released: bool = False,
) -> RoutingDecision:
    rules: list[str] = ["R-DOC-4"]
    notes: list[str] = []
    deliveries: list[Delivery] = []

    if account.status is AccountStatus.ACTIVE:
        deliveries.append(Delivery(Channel.PLATFORM, person))
    elif account.status is AccountStatus.LOCKED:
        rules.append("R-ACC-1")
        notes.append("account locked: nothing to the platform, for the person nor any proxy")

    adult = mailbox_allowed(person, today)
    if mailbox.provider is not None and not adult:
        rules.append("R-ID-6")
        notes.append("under 18: no digital mailbox")
    elif mailbox.provider is not None and not mailbox.sender_accepted:
        notes.append(f"{mailbox.provider.value} does not accept this sender")
    elif mailbox.provider is not None and mailbox.declined:
        notes.append(f"declined mail to {mailbox.provider.value}")
    elif mailbox.deliverable and unit.no_mailbox:
        rules.append("R-DOC-7")
        notes.append("the unit never sends to digital mailboxes" + (f" ({unit.note})" if unit.note else ""))
    elif mailbox.deliverable:
        deliveries.append(Delivery(Channel.MAILBOX, person, mailbox.provider))
    elif mailbox.unusable is not None:
        notes.append(f"mailbox not used: {mailbox.unusable}")

    proxies = active_proxies(account, today)
    blocked = [p for p in account.proxies if p.blocked]
    if blocked and account.status is not AccountStatus.LOCKED:
        rules.append("R-ACC-2")
        notes.append(f"{len(blocked)} blocked guardian(s)/proxy(ies) get nothing")
    guardians = [p for p in proxies if p.relation is ProxyRelation.GUARDIAN]
    if guardians:
        rules.append("R-ID-6")
        notes.append("under 13: guardians get it in the platform, never in their own mailboxes")
    checked = _checked_proxies(proxies, registered)
    if checked.protected and not released:
        return RoutingDecision(
            Outcome.HOLD,
            ("R-ID-3", "R-ID-4"),
            f"{checked.protected_text()} has a protected identity: the {document.kind.value} would "
            "name them beside the person and the other recipients; staff decide how each gets it",
            (),
            flags,
        )
    rules += checked.rules
    notes += checked.notes
    deliveries += checked.deliveries
    # Flags are not why the document goes where it goes: their rules come last.
    flagged: list[str] = []
    if Flag.EMIGRATED in flags:
        flagged.append("R-ID-5")
        notes.append("emigrated per the population register: it may hold no Swedish address")
    if Flag.TEMPLATE_NEAR_MISS in flags and document.control_codes is not None:
        first = document.control_codes.near_misses[0]
        flagged.append("R-DOC-2")
        notes.append(f"the template has a near miss {first.text!r} at {first.position}: fix it")
    detail = "; ".join(notes)
    if not deliveries:
        return RoutingDecision(
            Outcome.PRINT_LIST,
            _unique([*rules[1:], "R-DOC-5", *flagged]),
            f"no one can take the {document.kind.value} digitally"
            f" ({_why_nobody(account, mailbox)}{'; ' + detail if detail else ''}); it is printed",
            (),
            flags,
        )
    where = ", ".join(_describe(d) for d in deliveries)
    return RoutingDecision(
        Outcome.DELIVER,
        _unique([*rules, *flagged]),
        f"to {where}" + (f" ({detail})" if detail else ""),
        tuple(deliveries),
        flags,
    )


def _why_nobody(account: Account, mailbox: MailboxReachability) -> str:
    has_account = {
        AccountStatus.NONE: "no platform account",
        AccountStatus.LOCKED: "platform account locked",
        AccountStatus.ACTIVE: "platform account",
    }[account.status]
    if mailbox.provider is None:
        return f"{has_account}, no digital mailbox"
    return f"{has_account}, mailbox {mailbox.provider.value} not usable"


def _describe(delivery: Delivery) -> str:
    if delivery.channel is Channel.MAILBOX and delivery.provider is not None:
        return f"mailbox {delivery.provider.value}"
    if delivery.channel is Channel.PLATFORM:
        return "the person's platform account"
    return f"{delivery.channel.value} {delivery.recipient.masked()} in the platform"


@dataclass(slots=True)
class _CheckedProxies:
    """The account's active guardians and proxies as the register let them be (R-ID-3, R-ID-5)."""

    deliveries: list[Delivery] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protected: list[Proxy] = field(default_factory=list)

    def protected_text(self) -> str:
        kinds = sorted({p.relation.value for p in self.protected})
        return f"{len(self.protected)} {'/'.join(kinds)}(s)"


_CHANNEL = {ProxyRelation.GUARDIAN: Channel.GUARDIAN, ProxyRelation.PROXY: Channel.PROXY}


def _checked_proxies(proxies: Sequence[Proxy], registered: Mapping[PersonId, Resolved]) -> _CheckedProxies:
    out = _CheckedProxies()
    left_out: dict[str, int] = {}
    for proxy in proxies:
        answer = registered.get(proxy.person)
        why = _why_no_copy(proxy.person, answer)
        if why is not None:
            left_out[why] = left_out.get(why, 0) + 1
            continue
        assert answer is not None and answer.record is not None
        if answer.record.protected:
            out.protected.append(proxy)
            continue
        out.deliveries.append(Delivery(_CHANNEL[proxy.relation], answer.current))
    for why, count in left_out.items():
        out.rules.append(_NO_COPY_RULES[why])
        out.notes.append(f"{count} guardian(s)/proxy(ies) get no copy: {why}")
    if out.protected:
        out.rules += ["R-ID-3", "R-ID-4"]
        out.notes.append(
            f"{out.protected_text()} with a protected identity get no copy in the platform beside "
            "anyone else: reach them as agreed"
        )
    return out


_NOT_CHECKED = "not checked in the population register"
_NOT_FOUND = "not in the population register, so protection cannot be ruled out"
_RESERVNUMMER = "reservnummer, so no BankID and no platform login"
_DECEASED = "deceased per the population register"
_DEREGISTERED = "deregistered in the population register"
_NO_COPY_RULES = {
    _NOT_CHECKED: "R-ID-7",
    _NOT_FOUND: "R-ID-7",
    _RESERVNUMMER: "R-ID-2",
    _DECEASED: "R-ID-5",
    _DEREGISTERED: "R-ID-5",
}


def _why_no_copy(person: PersonId, answer: Resolved | None) -> str | None:
    if person.is_reservnummer:
        return _RESERVNUMMER
    if answer is None:
        return _NOT_CHECKED
    record = answer.record
    if record is None:
        return _NOT_FOUND
    if record.deceased:
        return _DECEASED
    if record.deregistration is not None and not record.emigrated:
        return _DEREGISTERED
    return None


def _unique(rules: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(rules))


def needs_print_after_unread(
    delivered_to: Iterable[Channel],
    delivered_at: datetime,
    read_at: datetime | None,
    now: datetime,
) -> bool:
    """R-DOC-5: whether a delivered document goes to the print list for being unread for 48 h.

    ``delivered_to``: the channels the document reached. A document that reached a digital
    mailbox counts as read and never goes to the print list (000 "Dokument som skickats via
    e-brev till invånare som har digital brevlåda kommer aldrig att hamna på utskriftslistan").
    A document that reached no one is not this rule's business (it was printed or held at
    routing). Otherwise: not opened within 48 hours of delivery (by the person or a guardian or
    proxy) and 48 hours have passed. Opened *after* the 48 hours still counts as unread within
    them, as the routine words it ("inte blivit lästa inom 48 timmar"). Datetimes must be aware.
    """
    channels = set(delivered_to)
    for moment in (delivered_at, now, read_at):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError("needs_print_after_unread needs timezone-aware datetimes")
    if not channels or Channel.MAILBOX in channels:
        return False
    deadline = delivered_at + UNREAD_LIMIT
    if now < deadline:
        return False
    return read_at is None or read_at > deadline


def kallelse_outdated_by(action: BookingAction) -> bool:
    """R-BK-3: whether this change to a booking makes an e-kallelse already sent for it outdated.

    The kallelse is a letter and is never changed (001 "Ombokning eller avbokning": "Eventuella
    ändringar i bokningen kommer inte generera ändringar i skickad kallelse. Kom ihåg att skicka
    ny kallelse."); the gateway only marks it outdated so staff send a new one. Any change to
    the booking counts; a new booking or a no-show does not.
    """
    return action in (
        BookingAction.RESCHEDULE,
        BookingAction.MODIFY,
        BookingAction.CANCEL,
        BookingAction.DISCONTINUE,
        BookingAction.DELETE,
    )


class MailboxDirectory(Protocol):
    """The port to the national recipient service (Mina meddelanden ``isReachable``)."""

    async def reachability(self, persons: Sequence[PersonId]) -> Mapping[PersonId, MailboxReachability]:
        """Each person's mailbox, asked in as few calls as the service allows. A person the
        service does not know is :data:`NO_MAILBOX`. Raises TransientUpstreamError or
        PermanentUpstreamError (gateway.errors) when the service cannot answer."""
        ...


def route_released(
    document: Document,
    *,
    person: PersonId,
    account: Account,
    mailbox: MailboxReachability,
    unit: UnitExceptions = NO_EXCEPTIONS,
    proxies: Mapping[PersonId, Resolved] | None = None,
    today: date,
    staff: str,
    why: str,
) -> RoutingDecision:
    """R-ID-4: staff released a held document after a manual decision (for a protected person:
    after agreeing with them how to be reached). It then goes to whoever can take it, as any
    document does (R-DOC-4), or to the print list when no one can (R-DOC-5). The hold's own
    checks are not run again: deciding them is what the release was. A protected guardian or
    proxy still gets no copy beside the others (R-ID-3): staff reach them as they agreed."""
    if not staff.strip() or not why.strip():
        raise ValueError("a release names who decided and why")
    decided = _recipients(
        document, person, account, mailbox, unit, today, frozenset(), proxies or {}, released=True
    )
    return RoutingDecision(
        decided.outcome,
        _unique(("R-ID-4", *decided.rules)),
        f"released by {staff}: {why}; {decided.reason}",
        decided.deliveries,
        decided.flags,
    )
