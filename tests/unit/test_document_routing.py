"""Where an e-document goes: one row per case, each id naming the rules it proves.

``route_document`` is pure, so every case is a row: the document, the person's register record,
platform account and mailbox, the unit's exceptions, and what must come out (outcome, the rule
that decided, and each copy delivered). Persons and numbers are those of ``mocks/persons.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gateway.control_codes import scan
from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation, no_account
from gateway.domain.booking import BookingAction
from gateway.domain.documents import (
    NO_EXCEPTIONS,
    NO_MAILBOX,
    Channel,
    Document,
    DocumentKind,
    Flag,
    MailboxProvider,
    MailboxReachability,
    Outcome,
    RoutingDecision,
    UnitExceptions,
    kallelse_outdated_by,
    needs_print_after_unread,
    route_document,
    route_released,
)
from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import Deregistration, Protection, RegisterRecord, Resolved
from tests import fakes

TODAY = date(2026, 11, 25)

RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")
PARENT = fakes.pnr("198503141239")
BLOCKED_PARENT = fakes.pnr("198709224565")
OMBUD = fakes.pnr("197306142659")

KIVRA = MailboxReachability(MailboxProvider.KIVRA)
BILLO = MailboxReachability(MailboxProvider.BILLO)
DECLINED = MailboxReachability(MailboxProvider.KIVRA, declined=True)
SENDER_NOT_ACCEPTED = MailboxReachability(MailboxProvider.MIN_MYNDIGHETSPOST, sender_accepted=False)

KALLELSE = Document.kallelse(time_type_hidden=False)
HIDDEN_KALLELSE = Document.kallelse(time_type_hidden=True)
BREV = Document.letter(DocumentKind.E_BREV, scan("Hälsningar\n[4US:LPAT]"))
REMISS = Document.letter(DocumentKind.E_REMISSBEKRAFTELSE, scan("Vi har tagit emot remissen. [4US:RPAT]"))
BREV_NO_CODE = Document.letter(DocumentKind.E_BREV, scan("Hälsningar, utan styrkod"))
BREV_NEAR_MISS = Document.letter(DocumentKind.E_BREV, scan("Hälsningar\n[4US: LPAT]"))
BREV_WRONG_CODE = Document.letter(DocumentKind.E_BREV, scan("Hälsningar\n[4US:RPAT]"))
BREV_BOTH_CODES = Document.letter(DocumentKind.E_BREV, scan("[4US:LPAT] [4US:RPAT]"))
BREV_CODE_AND_NEAR_MISS = Document.letter(DocumentKind.E_BREV, scan("[4US:LPAT]\n[4us:lpat]"))


def born(day: date) -> RegisterRecord:
    """A register record for someone born on ``day`` (age rules read only the date part)."""
    return RegisterRecord(
        PersonId(IdKind.PERSONNUMMER, day.strftime("%Y%m%d") + "0000", fakes.PNR), Protection.NONE
    )


def active(record: RegisterRecord | PersonId, *proxies: Proxy) -> Account:
    person = record.person if isinstance(record, RegisterRecord) else record
    return Account(person, AccountStatus.ACTIVE, proxies=proxies)


def locked(record: RegisterRecord, *proxies: Proxy) -> Account:
    return Account(record.person, AccountStatus.LOCKED, proxies=proxies)


def without_account(record: RegisterRecord | PersonId, *proxies: Proxy) -> Account:
    person = record.person if isinstance(record, RegisterRecord) else record
    return Account(person, AccountStatus.NONE, proxies=proxies)


GUARDIAN = Proxy(PARENT, ProxyRelation.GUARDIAN)
BLOCKED_GUARDIAN = Proxy(BLOCKED_PARENT, ProxyRelation.GUARDIAN, blocked=True)
REGISTERED_OMBUD = Proxy(OMBUD, ProxyRelation.PROXY)

ADULT = fakes.TOLVAN
CHILD = fakes.CHILD  # 10 on TODAY
TEEN = fakes.TEEN  # 17 on TODAY
TWELVE_TURNS_13_TOMORROW = born(date(2013, 11, 26))
THIRTEEN_TODAY = born(date(2013, 11, 25))
SEVENTEEN_TURNS_18_TOMORROW = born(date(2008, 11, 26))
EIGHTEEN_TODAY = born(date(2008, 11, 25))
ANNULLED = fakes.record("199002712934", deregistration=Deregistration.ANNULLED_SAMORDNINGSNUMMER)


@dataclass(frozen=True)
class Case:
    """One row: the inputs (defaults: an ordinary adult with nothing) and the expected decision."""

    outcome: Outcome
    #: The rule that decided: the decision's first rule id.
    rule: str
    document: Document = KALLELSE
    record: RegisterRecord | None = ADULT
    person: PersonId | None = None  # defaults to the record's
    account: Account | None = None  # defaults to no account
    mailbox: MailboxReachability = NO_MAILBOX
    unit: UnitExceptions = NO_EXCEPTIONS
    #: Each copy as (channel, number, mailbox provider).
    to: frozenset[tuple[Channel, str, MailboxProvider | None]] = frozenset()
    flags: frozenset[Flag] = field(default_factory=frozenset)
    #: The register's answer for the guardians and proxies; None: each an ordinary person.
    proxies: Mapping[PersonId, Resolved] | None = None

    def route(self) -> RoutingDecision:
        person = self.person or (self.record.person if self.record else None)
        assert person is not None
        account = self.account or no_account(person)
        return route_document(
            self.document,
            person=person,
            record=self.record,
            account=account,
            mailbox=self.mailbox,
            unit=self.unit,
            proxies=ordinary(account) if self.proxies is None else self.proxies,
            today=TODAY,
        )


def ordinary(account: Account) -> dict[PersonId, Resolved]:
    """The register knows each of the account's guardians and proxies, unprotected and alive."""
    return {p.person: Resolved(p.person, fakes.record(p.person.value)) for p in account.proxies}


def to(
    *copies: tuple[Channel, RegisterRecord | PersonId] | tuple[Channel, RegisterRecord, MailboxProvider],
) -> Any:
    out = set()
    for copy in copies:
        channel, who, *provider = copy
        person = who.person if isinstance(who, RegisterRecord) else who
        out.add((channel, person.value, provider[0] if provider else None))
    return frozenset(out)


P, M, G, PX = Channel.PLATFORM, Channel.MAILBOX, Channel.GUARDIAN, Channel.PROXY
DELIVER, PRINT, HOLD, REFUSE = Outcome.DELIVER, Outcome.PRINT_LIST, Outcome.HOLD, Outcome.REFUSE

ROWS = [
    # R-DOC-4: who receives ---------------------------------------------------------------------
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            account=active(ADULT),
            mailbox=KIVRA,
            to=to((P, ADULT), (M, ADULT, MailboxProvider.KIVRA)),
        ),
        id="R-DOC-4 adult with account and Kivra -> platform and Kivra",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", account=active(ADULT), to=to((P, ADULT))),
        id="R-DOC-4 adult with account, no mailbox -> platform only",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", mailbox=BILLO, to=to((M, ADULT, MailboxProvider.BILLO))),
        id="R-DOC-4 adult without account with Billo -> mailbox only",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", account=active(ADULT), mailbox=DECLINED, to=to((P, ADULT))),
        id="R-DOC-4 account and declined mailbox mail -> platform only",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", account=active(ADULT, REGISTERED_OMBUD), to=to((P, ADULT), (PX, OMBUD))),
        id="R-DOC-4 registered proxy (ombud) -> person and proxy in the platform",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", account=without_account(ADULT, REGISTERED_OMBUD), to=to((PX, OMBUD))),
        id="R-DOC-4 no account of its own but a registered proxy -> proxy in the platform",
    ),
    # R-DOC-5: the print list at routing time ----------------------------------------------------
    pytest.param(Case(PRINT, "R-DOC-5"), id="R-DOC-5 no account no mailbox -> print list"),
    pytest.param(
        Case(PRINT, "R-DOC-5", mailbox=DECLINED),
        id="R-DOC-5 no account and declined mailbox mail -> print list",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-5", mailbox=SENDER_NOT_ACCEPTED),
        id="R-DOC-5 no account, mailbox does not accept the sender -> print list",
    ),
    pytest.param(
        Case(PRINT, "R-ID-2", record=None, person=RESERV),
        id="R-ID-2 R-DOC-5 reservnummer kallelse -> print list",
    ),
    pytest.param(
        Case(PRINT, "R-ID-2", document=BREV, record=None, person=RESERV, mailbox=KIVRA),
        id="R-ID-2 R-DOC-5 reservnummer e-brev, even with a mailbox answer -> print list",
    ),
    # R-ID-6: age limits (13 for guardians, 18 for mailboxes) --------------------------------------
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=CHILD,
            account=without_account(CHILD, GUARDIAN),
            mailbox=KIVRA,
            to=to((G, PARENT)),
        ),
        id="R-ID-6 R-DOC-4 under 13 -> guardians in the platform, never a mailbox",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=CHILD,
            account=without_account(CHILD, GUARDIAN, BLOCKED_GUARDIAN),
            to=to((G, PARENT)),
        ),
        id="R-ACC-2 R-ID-6 under 13 -> the blocked guardian gets nothing",
    ),
    pytest.param(
        Case(PRINT, "R-ACC-2", record=CHILD, account=without_account(CHILD, BLOCKED_GUARDIAN)),
        id="R-ACC-2 R-DOC-5 under 13, only guardian blocked, no account -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=TWELVE_TURNS_13_TOMORROW,
            account=without_account(TWELVE_TURNS_13_TOMORROW, GUARDIAN),
            to=to((G, PARENT)),
        ),
        id="R-ID-6 12 (13 tomorrow) -> guardians still automatic",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-5", record=THIRTEEN_TODAY, account=without_account(THIRTEEN_TODAY, GUARDIAN)),
        id="R-ID-6 R-DOC-5 13 today, no account -> guardians no longer automatic -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=THIRTEEN_TODAY,
            account=active(THIRTEEN_TODAY, GUARDIAN),
            to=to((P, THIRTEEN_TODAY)),
        ),
        id="R-ID-6 13 today with an account -> own platform only, not the guardian",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", record=TEEN, account=active(TEEN), mailbox=KIVRA, to=to((P, TEEN))),
        id="R-ID-6 17 with account and a mailbox answer -> platform only, no mailbox under 18",
    ),
    pytest.param(
        Case(PRINT, "R-ID-6", record=TEEN, mailbox=KIVRA),
        id="R-ID-6 R-DOC-5 17 without account, mailbox answer -> print list",
    ),
    pytest.param(
        Case(PRINT, "R-ID-6", record=SEVENTEEN_TURNS_18_TOMORROW, mailbox=KIVRA),
        id="R-ID-6 R-DOC-5 17 (18 tomorrow), no account -> still no mailbox -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=EIGHTEEN_TODAY,
            mailbox=KIVRA,
            to=to((M, EIGHTEEN_TODAY, MailboxProvider.KIVRA)),
        ),
        id="R-ID-6 R-DOC-4 18 today without account -> mailbox",
    ),
    # R-ACC-1: locked account --------------------------------------------------------------------
    pytest.param(
        Case(PRINT, "R-ACC-1", account=locked(ADULT, REGISTERED_OMBUD)),
        id="R-ACC-1 R-DOC-5 locked, no mailbox -> nothing to person nor proxy -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            account=locked(ADULT, REGISTERED_OMBUD),
            mailbox=KIVRA,
            to=to((M, ADULT, MailboxProvider.KIVRA)),
        ),
        id="R-ACC-1 R-DOC-4 locked with Kivra -> mailbox only, no proxy",
    ),
    pytest.param(
        Case(PRINT, "R-ACC-1", record=CHILD, account=locked(CHILD, GUARDIAN)),
        id="R-ACC-1 R-DOC-5 locked child (LVU) -> guardians get nothing -> print list",
    ),
    # R-ID-3 / R-ID-4: protected identity --------------------------------------------------------
    pytest.param(
        Case(HOLD, "R-ID-4", record=fakes.SEKRET, account=active(fakes.SEKRET), mailbox=KIVRA),
        id="R-ID-4 kallelse sekretessmarkering -> hold",
    ),
    pytest.param(
        Case(HOLD, "R-ID-4", record=fakes.SKYDDAD, account=active(fakes.SKYDDAD), mailbox=KIVRA),
        id="R-ID-4 kallelse skyddad folkbokföring -> hold",
    ),
    pytest.param(
        Case(HOLD, "R-ID-3", document=BREV, record=fakes.SEKRET, account=active(fakes.SEKRET)),
        id="R-ID-3 e-brev sekretessmarkering -> hold",
    ),
    pytest.param(
        Case(HOLD, "R-ID-3", document=REMISS, record=fakes.SKYDDAD, mailbox=KIVRA),
        id="R-ID-3 e-remissbekräftelse skyddad folkbokföring -> hold",
    ),
    pytest.param(
        Case(HOLD, "R-ID-3", document=BREV_NO_CODE, record=fakes.SKYDDAD),
        id="R-ID-3 protected beats R-DOC-3 print list -> hold",
    ),
    # R-ID-5 / R-ID-7: the register says deceased, emigrated, nothing ------------------------------
    pytest.param(
        Case(REFUSE, "R-ID-5", record=fakes.DECEASED, account=active(fakes.DECEASED), mailbox=KIVRA),
        id="R-ID-5 deceased kallelse -> refuse",
    ),
    pytest.param(
        Case(REFUSE, "R-ID-5", document=BREV_NO_CODE, record=fakes.DECEASED),
        id="R-ID-5 deceased, no account, no code -> refuse, not even the print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            record=fakes.EMIGRATED,
            account=active(fakes.EMIGRATED),
            mailbox=KIVRA,
            to=to((P, fakes.EMIGRATED), (M, fakes.EMIGRATED, MailboxProvider.KIVRA)),
            flags=frozenset({Flag.EMIGRATED}),
        ),
        id="R-ID-5 emigrated -> routed as usual, flagged",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-5", record=fakes.EMIGRATED, flags=frozenset({Flag.EMIGRATED})),
        id="R-ID-5 R-DOC-5 emigrated, no account no mailbox -> print list, flagged",
    ),
    pytest.param(
        Case(HOLD, "R-ID-7", record=None, person=ADULT.person, account=active(ADULT)),
        id="R-ID-7 not found in the register -> hold",
    ),
    pytest.param(Case(HOLD, "R-ID-5", record=ANNULLED), id="R-ID-5 annulled samordningsnummer -> hold"),
    pytest.param(Case(HOLD, "R-ID-5", record=fakes.OLD_NUMBER), id="R-ID-5 old number not followed -> hold"),
    # R-DOC-1..3: control codes ------------------------------------------------------------------
    pytest.param(
        Case(DELIVER, "R-DOC-4", document=BREV, account=active(ADULT), to=to((P, ADULT))),
        id="R-DOC-1 e-brev with [4US:LPAT] -> delivered",
    ),
    pytest.param(
        Case(DELIVER, "R-DOC-4", document=REMISS, mailbox=BILLO, to=to((M, ADULT, MailboxProvider.BILLO))),
        id="R-DOC-1 e-remissbekräftelse with [4US:RPAT] -> delivered",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-3", document=BREV_NO_CODE, account=active(ADULT), mailbox=KIVRA),
        id="R-DOC-3 e-brev missing control code -> print list",
    ),
    pytest.param(
        Case(
            PRINT,
            "R-DOC-3",
            document=BREV_NEAR_MISS,
            account=active(ADULT),
            mailbox=KIVRA,
            flags=frozenset({Flag.TEMPLATE_NEAR_MISS}),
        ),
        id="R-DOC-3 R-DOC-2 e-brev with only a near-miss control code -> print list, flagged",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-3", document=BREV_WRONG_CODE, account=active(ADULT)),
        id="R-DOC-3 e-brev carrying the remissbekräftelse code -> print list",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-3", document=BREV_BOTH_CODES, account=active(ADULT)),
        id="R-DOC-3 both control codes -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            document=BREV_CODE_AND_NEAR_MISS,
            account=active(ADULT),
            to=to((P, ADULT)),
            flags=frozenset({Flag.TEMPLATE_NEAR_MISS}),
        ),
        id="R-DOC-2 exact code plus a near miss -> delivered, flagged",
    ),
    # R-DOC-6: hidden time type ------------------------------------------------------------------
    pytest.param(
        Case(REFUSE, "R-DOC-6", document=HIDDEN_KALLELSE, account=active(ADULT), mailbox=KIVRA),
        id="R-DOC-6 kallelse for a hidden time type -> refuse",
    ),
    pytest.param(
        Case(REFUSE, "R-DOC-6", document=HIDDEN_KALLELSE, record=fakes.SKYDDAD),
        id="R-DOC-6 hidden time type beats R-ID-4 hold -> refuse",
    ),
    pytest.param(
        Case(REFUSE, "R-DOC-6", document=HIDDEN_KALLELSE, record=None, person=RESERV),
        id="R-DOC-6 hidden time type beats R-ID-2 print list -> refuse",
    ),
    # R-DOC-7: unit exceptions -------------------------------------------------------------------
    pytest.param(
        Case(
            PRINT,
            "R-DOC-7",
            account=active(ADULT),
            mailbox=KIVRA,
            unit=UnitExceptions.print_everything("BUP"),
        ),
        id="R-DOC-7 unit prints everything -> print list",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            document=BREV,
            account=active(ADULT),
            unit=UnitExceptions(frozenset({DocumentKind.E_REMISSBEKRAFTELSE})),
            to=to((P, ADULT)),
        ),
        id="R-DOC-7 unit prints only remissbekräftelser -> an e-brev is still delivered",
    ),
    pytest.param(
        Case(
            DELIVER,
            "R-DOC-4",
            account=active(ADULT),
            mailbox=KIVRA,
            unit=UnitExceptions(no_mailbox=True),
            to=to((P, ADULT)),
        ),
        id="R-DOC-7 unit never sends to mailboxes -> platform only",
    ),
    pytest.param(
        Case(PRINT, "R-DOC-7", mailbox=KIVRA, unit=UnitExceptions(no_mailbox=True)),
        id="R-DOC-7 R-DOC-5 unit never sends to mailboxes, no account -> print list",
    ),
    pytest.param(
        Case(HOLD, "R-ID-4", record=fakes.SEKRET, unit=UnitExceptions.print_everything()),
        id="R-DOC-7 a unit exception does not loosen R-ID-4 -> hold",
    ),
    pytest.param(
        Case(REFUSE, "R-ID-5", record=fakes.DECEASED, unit=UnitExceptions.print_everything()),
        id="R-DOC-7 a unit exception does not loosen R-ID-5 -> refuse",
    ),
]


@pytest.mark.parametrize("case", ROWS)
def test_r_doc_4_r_doc_5_r_id_4_r_id_5_r_acc_1_r_acc_2_r_doc_7_routing_table(case: Case) -> None:
    decision = case.route()
    assert decision.outcome is case.outcome, decision
    assert decision.rules[0] == case.rule, decision
    got = {(d.channel, d.recipient.value, d.provider) for d in decision.deliveries}
    assert got == case.to, decision
    assert decision.flags == case.flags, decision
    assert decision.reason
    if case.outcome is not Outcome.DELIVER:
        assert decision.deliveries == ()


@pytest.mark.parametrize("case", ROWS)
def test_r_id_3_a_reason_never_shows_a_whole_personnummer(case: Case) -> None:
    reason = case.route().reason
    for number in (PARENT.value, BLOCKED_PARENT.value, OMBUD.value, RESERV.value, ADULT.person.value):
        assert number not in reason


def test_r_doc_5_print_list_reasons_name_the_rule_and_the_cause() -> None:
    decision = Case(PRINT, "R-DOC-5", mailbox=DECLINED).route()
    assert decision.rules == ("R-DOC-5",)
    assert "no platform account, mailbox Kivra not usable" in decision.reason
    assert "declined mail to Kivra" in decision.reason


def test_r_doc_5_a_mailbox_the_gateway_may_not_use_is_no_mailbox_and_the_reason_says_why() -> None:
    """An operator not in the supplier table, or an address off the allowlist (docs/mailbox.md):
    routed as if there were no mailbox, never silently: staff see why in the decision."""
    unusable = MailboxReachability(unusable="mailbox operator 165599999999 is not in the supplier table")
    decision = Case(PRINT, "R-DOC-5", mailbox=unusable).route()
    assert decision.outcome is Outcome.PRINT_LIST
    assert "no digital mailbox" in decision.reason
    assert "mailbox not used: mailbox operator 165599999999 is not in the supplier table" in decision.reason


def test_r_doc_3_a_letter_with_no_code_at_all_names_r_doc_3_and_r_doc_5() -> None:
    decision = Case(PRINT, "R-DOC-3", document=BREV_NO_CODE).route()
    assert decision.rules == ("R-DOC-3", "R-DOC-5")
    assert "has no control code [4US:LPAT]" in decision.reason


def test_r_id_5_emigrated_is_named_in_rules_and_reason() -> None:
    decision = Case(PRINT, "R-DOC-5", record=fakes.EMIGRATED).route()
    assert decision.rules == ("R-DOC-5", "R-ID-5")
    assert "emigrated" in decision.reason


def test_r_doc_2_a_delivered_letter_still_asks_for_the_template_to_be_fixed() -> None:
    decision = Case(DELIVER, "R-DOC-4", document=BREV_CODE_AND_NEAR_MISS, account=active(ADULT)).route()
    assert decision.rules == ("R-DOC-4", "R-DOC-2")
    assert "near miss '[4us:lpat]' at 2:1: fix it" in decision.reason


def test_r_doc_3_the_reason_points_at_the_near_miss() -> None:
    decision = Case(PRINT, "R-DOC-3", document=BREV_NEAR_MISS).route()
    assert decision.rules == ("R-DOC-3", "R-DOC-2", "R-DOC-5")
    assert "near miss '[4US: LPAT]' at 2:1" in decision.reason


def test_r_id_4_the_hold_reason_says_staff_must_agree_first() -> None:
    decision = Case(HOLD, "R-ID-4", record=fakes.SKYDDAD).route()
    assert decision.rules == ("R-ID-4", "R-ID-3")
    assert "skyddadFolkbokforing" in decision.reason and "agree" in decision.reason


def test_r_doc_4_guardians_are_named_masked_in_the_reason() -> None:
    decision = Case(DELIVER, "R-DOC-4", record=CHILD, account=without_account(CHILD, GUARDIAN)).route()
    assert decision.guardians == (PARENT,)
    assert decision.mailbox is None and not decision.to_platform and decision.proxies == ()
    assert "guardian 19850314-**** in the platform" in decision.reason
    assert decision.rules == ("R-DOC-4", "R-ID-6")


def test_r_doc_4_convenience_views_of_a_decision() -> None:
    decision = Case(DELIVER, "R-DOC-4", account=active(ADULT, REGISTERED_OMBUD), mailbox=KIVRA).route()
    assert decision.to_platform
    assert decision.mailbox is MailboxProvider.KIVRA
    assert decision.proxies == (OMBUD,)


def test_r_doc_1_a_letter_must_come_with_its_scan_and_a_kallelse_alone_has_a_time_type() -> None:
    with pytest.raises(ValueError, match="control-code scan"):
        Document(DocumentKind.E_BREV)
    with pytest.raises(ValueError, match="time type"):
        Document(DocumentKind.E_REMISSBEKRAFTELSE, scan("[4US:RPAT]"), time_type_hidden=True)


def test_routing_refuses_a_record_or_account_of_someone_else() -> None:
    with pytest.raises(ValueError, match="routed person"):
        route_document(
            KALLELSE,
            person=ADULT.person,
            record=CHILD,
            account=no_account(ADULT.person),
            mailbox=NO_MAILBOX,
            today=TODAY,
        )
    with pytest.raises(ValueError, match="routed person"):
        route_document(
            KALLELSE,
            person=ADULT.person,
            record=ADULT,
            account=no_account(CHILD.person),
            mailbox=NO_MAILBOX,
            today=TODAY,
        )


# R-DOC-5: unread after 48 hours ------------------------------------------------------------------

SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("delivered_to", "read_at", "now", "printed"),
    [
        pytest.param(
            {Channel.PLATFORM}, None, SENT + 48 * H, True, id="R-DOC-5 platform only, unread 48 h -> print"
        ),
        pytest.param(
            {Channel.PLATFORM}, None, SENT + 47 * H, False, id="R-DOC-5 platform only, 47 h -> not yet"
        ),
        pytest.param(
            {Channel.PLATFORM}, SENT + 3 * H, SENT + 60 * H, False, id="R-DOC-5 read within 48 h -> no"
        ),
        pytest.param(
            {Channel.PLATFORM}, SENT + 50 * H, SENT + 60 * H, True, id="R-DOC-5 read only after 48 h -> print"
        ),
        pytest.param(
            {Channel.GUARDIAN}, None, SENT + 49 * H, True, id="R-DOC-5 guardians only, unread -> print"
        ),
        pytest.param(
            {Channel.PLATFORM, Channel.MAILBOX},
            None,
            SENT + 500 * H,
            False,
            id="R-DOC-5 mailbox counts as read -> never",
        ),
        pytest.param({Channel.MAILBOX}, None, SENT + 500 * H, False, id="R-DOC-5 mailbox only -> never"),
        pytest.param(
            set(), None, SENT + 500 * H, False, id="R-DOC-5 delivered nowhere -> not this rule's business"
        ),
    ],
)
def test_r_doc_5_unread_48h_goes_to_print_list(
    delivered_to: set[Channel], read_at: datetime | None, now: datetime, printed: bool
) -> None:
    assert needs_print_after_unread(delivered_to, SENT, read_at, now) is printed


def test_r_doc_5_unread_check_wants_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        needs_print_after_unread({Channel.PLATFORM}, SENT.replace(tzinfo=None), None, SENT + 49 * H)


def test_r_doc_5_a_routed_decision_feeds_the_unread_check() -> None:
    decision = Case(DELIVER, "R-DOC-4", account=active(ADULT), mailbox=KIVRA).route()
    channels = {d.channel for d in decision.deliveries}
    assert not needs_print_after_unread(channels, SENT, None, SENT + 100 * H)


# R-BK-3: a sent kallelse is a letter ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "outdated"),
    [
        pytest.param(BookingAction.RESCHEDULE, True, id="R-BK-3 reschedule -> outdated"),
        pytest.param(BookingAction.CANCEL, True, id="R-BK-3 cancel -> outdated"),
        pytest.param(BookingAction.DELETE, True, id="R-BK-3 delete -> outdated"),
        pytest.param(BookingAction.MODIFY, True, id="R-BK-3 modify -> outdated"),
        pytest.param(BookingAction.NEW, False, id="R-BK-3 new -> nothing to outdate"),
        pytest.param(BookingAction.NOSHOW, False, id="R-BK-3 no-show -> the kallelse was right"),
    ],
)
def test_r_bk_3_changes_to_a_booking_outdate_its_kallelse(action: BookingAction, outdated: bool) -> None:
    assert kallelse_outdated_by(action) is outdated


def test_r_id_4_a_released_document_goes_to_whoever_can_take_it_and_names_who_decided() -> None:
    sekret = fakes.SEKRET
    released = route_released(
        KALLELSE,
        person=sekret.person,
        account=active(sekret),
        mailbox=KIVRA,
        proxies={},
        today=TODAY,
        staff="ssk-anna",
        why="agreed by phone",
    )
    assert released.outcome is Outcome.DELIVER
    assert released.rules[:2] == ("R-ID-4", "R-DOC-4")
    assert released.reason.startswith("released by ssk-anna: agreed by phone")
    assert released.to_platform and released.mailbox is MailboxProvider.KIVRA
    nobody = route_released(
        KALLELSE,
        person=sekret.person,
        account=no_account(sekret.person),
        mailbox=NO_MAILBOX,
        today=TODAY,
        staff="ssk-anna",
        why="no phone",
    )
    assert nobody.outcome is Outcome.PRINT_LIST and "R-DOC-5" in nobody.rules
    with pytest.raises(ValueError, match="who decided"):
        route_released(
            KALLELSE,
            person=sekret.person,
            account=active(sekret),
            mailbox=NO_MAILBOX,
            today=TODAY,
            staff=" ",
            why="x",
        )


# R-ID-3 for guardians and proxies: each is checked in the register before a copy names them ----

SECOND_PARENT = fakes.pnr("198709224565")
PROTECTED_PARENT = fakes.record("198709224565", protection=Protection.SEKRETESSMARKERING)
TWO_GUARDIANS = without_account(CHILD, GUARDIAN, Proxy(SECOND_PARENT, ProxyRelation.GUARDIAN))


def test_r_id_3_r_id_4_a_protected_guardian_holds_the_childs_document() -> None:
    for document in (KALLELSE, BREV, REMISS):
        decision = Case(
            HOLD,
            "R-ID-3",
            document=document,
            record=CHILD,
            account=TWO_GUARDIANS,
            proxies={
                PARENT: Resolved(PARENT, fakes.record(PARENT.value)),
                SECOND_PARENT: Resolved(SECOND_PARENT, PROTECTED_PARENT),
            },
        ).route()
        assert decision.outcome is Outcome.HOLD and decision.rules == ("R-ID-3", "R-ID-4")
        assert decision.deliveries == ()  # nothing names the protected parent, nor the other
        assert "protected identity" in decision.reason and SECOND_PARENT.value not in decision.reason


def test_r_id_3_a_protected_proxy_of_an_adult_holds_the_document_too() -> None:
    decision = Case(
        HOLD,
        "R-ID-3",
        account=active(ADULT, REGISTERED_OMBUD),
        mailbox=KIVRA,
        proxies={
            OMBUD: Resolved(OMBUD, fakes.record(OMBUD.value, protection=Protection.SKYDDAD_FOLKBOKFORING))
        },
    ).route()
    assert decision.outcome is Outcome.HOLD and decision.deliveries == ()


def test_r_id_3_released_the_protected_guardian_is_never_listed_beside_the_others() -> None:
    released = route_released(
        KALLELSE,
        person=CHILD.person,
        account=TWO_GUARDIANS,
        mailbox=NO_MAILBOX,
        proxies={
            PARENT: Resolved(PARENT, fakes.record(PARENT.value)),
            SECOND_PARENT: Resolved(SECOND_PARENT, PROTECTED_PARENT),
        },
        today=TODAY,
        staff="ssk-anna",
        why="the protected parent gets it by post as agreed",
    )
    assert released.outcome is Outcome.DELIVER
    assert released.guardians == (PARENT,)
    assert "R-ID-3" in released.rules and "reach them as agreed" in released.reason


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        pytest.param(None, "R-ID-7", id="R-ID-7 not asked: no copy"),
        pytest.param(Resolved(PARENT, None), "R-ID-7", id="R-ID-7 not in the register: no copy"),
        pytest.param(
            Resolved(PARENT, fakes.record(PARENT.value, deregistration=Deregistration.DECEASED)),
            "R-ID-5",
            id="R-ID-5 deceased guardian: no copy",
        ),
    ],
)
def test_r_id_7_r_id_5_a_guardian_the_register_does_not_clear_gets_no_copy(
    answer: Resolved | None, rule: str
) -> None:
    proxies = {} if answer is None else {PARENT: answer}
    decision = Case(
        PRINT, "R-DOC-5", record=CHILD, account=without_account(CHILD, GUARDIAN), proxies=proxies
    ).route()
    assert decision.outcome is Outcome.PRINT_LIST and decision.deliveries == ()
    assert rule in decision.rules and "get no copy" in decision.reason


def test_r_id_5_a_guardian_with_a_changed_number_gets_it_under_the_number_now_in_use() -> None:
    old, new = fakes.OLD_NUMBER.person, fakes.NEW_NUMBER.person
    account = without_account(CHILD, Proxy(old, ProxyRelation.GUARDIAN))
    decision = Case(
        DELIVER, "R-DOC-4", record=CHILD, account=account, proxies={old: Resolved(new, fakes.NEW_NUMBER)}
    ).route()
    assert decision.guardians == (new,)
