"""Self-service rules (issue 21; R-ACC-1..3, R-BK-1, R-ID-3, R-BK-6..R-BK-9): pure, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.domain.accounts import Account, AccountStatus, Proxy, ProxyRelation
from gateway.domain.register import Protection
from gateway.domain.self_service import (
    ExistingBooking,
    FreeSlot,
    RefusalKind,
    Request,
    SelfServiceAction,
    SelfServicePolicy,
    UnitPolicy,
    decide,
)
from gateway.errors import ConfigurationError
from gateway.self_service_mappings import load_self_service
from tests.fakes import pnr, record

TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
UNIT = "SE2321000016-15CQ"
TOLVAN = pnr("191212121212")
CHILD = pnr("201605152386")
PARENT = pnr("198503141239")
BLOCKED_PARENT = pnr("198709224565")
STRANGER = pnr("198001012382")

ACTIVE = Account(TOLVAN, AccountStatus.ACTIVE, UNIT)
POLICY = UnitPolicy(UNIT, timedelta(hours=24), timedelta(hours=2))
BOOKING = ExistingBooking("B1", UNIT, NOW + timedelta(days=3), True, True, True)
SLOT = FreeSlot(UNIT, NOW + timedelta(days=5), True)

BASE = Request(
    action=SelfServiceAction.CANCEL,
    actor=TOLVAN,
    account=ACTIVE,
    record=record("191212121212"),
    today=TODAY,
    now=NOW,
    policy=POLICY,
    booking=BOOKING,
    slot=SLOT,
)
CHILD_ACCOUNT = Account(
    CHILD,
    AccountStatus.NONE,
    UNIT,
    proxies=(
        Proxy(PARENT, ProxyRelation.GUARDIAN),
        Proxy(BLOCKED_PARENT, ProxyRelation.GUARDIAN, blocked=True),
    ),
)
HEALTH_CENTRE = replace(POLICY, health_centre=True)
LISTED_ELSEWHERE = replace(ACTIVE, listing_unit="SE2321000016-7P3K")
CHILD_BASE = replace(BASE, account=CHILD_ACCOUNT, record=record("201605152386"), actor=PARENT)

CASES: list[tuple[str, Request, str | None, RefusalKind | None]] = [
    # (rule id in the name, request, refused by rule, kind)
    ("R-BK-6 patient may cancel", BASE, None, None),
    ("R-BK-6 patient may book", replace(BASE, action=SelfServiceAction.BOOK), None, None),
    ("R-BK-6 patient may rebook", replace(BASE, action=SelfServiceAction.RESCHEDULE), None, None),
    ("R-BK-6 patient may list", replace(BASE, action=SelfServiceAction.LIST), None, None),
    ("R-BK-6 guardian of a child under 13 may cancel", CHILD_BASE, None, None),
    ("R-BK-6 a stranger may not", replace(BASE, actor=STRANGER), "R-BK-6", RefusalKind.FORBIDDEN),
    (
        "R-BK-6 no account, no self-service",
        replace(BASE, account=replace(ACTIVE, status=AccountStatus.NONE)),
        "R-BK-6",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-BK-6 unit offers no web booking",
        replace(BASE, policy=replace(POLICY, enabled=False)),
        "R-BK-6",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-1 locked account: the patient may not",
        replace(BASE, account=replace(ACTIVE, status=AccountStatus.LOCKED)),
        "R-ACC-1",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-1 locked account: not even listing",
        replace(BASE, action=SelfServiceAction.LIST, account=replace(ACTIVE, status=AccountStatus.LOCKED)),
        "R-ACC-1",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-1 locked account: nor a proxy",
        replace(CHILD_BASE, account=replace(CHILD_ACCOUNT, status=AccountStatus.LOCKED)),
        "R-ACC-1",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-2 a blocked guardian may not",
        replace(CHILD_BASE, actor=BLOCKED_PARENT),
        "R-ACC-2",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ID-3 sekretessmarkering: not even listing",
        replace(
            BASE,
            action=SelfServiceAction.LIST,
            record=record("191212121212", protection=Protection.SEKRETESSMARKERING),
        ),
        "R-ID-3",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ID-3 skyddad folkbokföring: no cancel",
        replace(BASE, record=record("191212121212", protection=Protection.SKYDDAD_FOLKBOKFORING)),
        "R-ID-3",
        RefusalKind.FORBIDDEN,
    ),
    ("R-ID-7 not in the register", replace(BASE, record=None), "R-ID-7", RefusalKind.FORBIDDEN),
    (
        "R-BK-1 hidden time type booking cannot be cancelled",
        replace(BASE, booking=replace(BOOKING, time_type_visible=False)),
        "R-BK-1",
        RefusalKind.UNPROCESSABLE,
    ),
    (
        "R-BK-1 hidden time type slot cannot be booked",
        replace(BASE, action=SelfServiceAction.BOOK, slot=replace(SLOT, time_type_visible=False)),
        "R-BK-1",
        RefusalKind.UNPROCESSABLE,
    ),
    (
        "R-BK-8 CancelAllowed=0",
        replace(BASE, booking=replace(BOOKING, cancel_allowed=False)),
        "R-BK-8",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-8 CancelAllowed absent is not allowed",
        replace(BASE, booking=replace(BOOKING, cancel_allowed=None)),
        "R-BK-8",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-8 RescheduleAllowed=0",
        replace(
            BASE, action=SelfServiceAction.RESCHEDULE, booking=replace(BOOKING, reschedule_allowed=False)
        ),
        "R-BK-8",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-8 RescheduleAllowed=0 does not stop a cancel",
        replace(BASE, booking=replace(BOOKING, reschedule_allowed=False)),
        None,
        None,
    ),
    (
        "R-BK-9 cancel 23h before: too late",
        replace(BASE, booking=replace(BOOKING, start=NOW + timedelta(hours=23))),
        "R-BK-9",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-9 cancel exactly 24h before: in time",
        replace(BASE, booking=replace(BOOKING, start=NOW + timedelta(hours=24))),
        None,
        None,
    ),
    (
        "R-BK-9 rebook 23h before: too late",
        replace(
            BASE,
            action=SelfServiceAction.RESCHEDULE,
            booking=replace(BOOKING, start=NOW + timedelta(hours=23)),
        ),
        "R-BK-9",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-9 book a slot within the unit's lead",
        replace(BASE, action=SelfServiceAction.BOOK, slot=replace(SLOT, start=NOW + timedelta(hours=1))),
        "R-BK-9",
        RefusalKind.CONFLICT,
    ),
    (
        "R-BK-9 book a past slot",
        replace(
            BASE,
            action=SelfServiceAction.BOOK,
            policy=replace(POLICY, book_lead=timedelta(0)),
            slot=replace(SLOT, start=NOW),
        ),
        "R-BK-9",
        RefusalKind.CONFLICT,
    ),
    # R-ACC-3: errands (a new booking) only with the health centre the citizen is listed at.
    (
        "R-ACC-3 listed at this health centre: may book",
        replace(BASE, action=SelfServiceAction.BOOK, policy=HEALTH_CENTRE),
        None,
        None,
    ),
    (
        "R-ACC-3 listed elsewhere: may not book a new time at this health centre",
        replace(BASE, action=SelfServiceAction.BOOK, policy=HEALTH_CENTRE, account=LISTED_ELSEWHERE),
        "R-ACC-3",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-3 not listed anywhere: may not book at a health centre",
        replace(
            BASE,
            action=SelfServiceAction.BOOK,
            policy=HEALTH_CENTRE,
            account=replace(ACTIVE, listing_unit=None),
        ),
        "R-ACC-3",
        RefusalKind.FORBIDDEN,
    ),
    (
        "R-ACC-3 listed elsewhere: may still rebook a time the health centre gave",
        replace(BASE, action=SelfServiceAction.RESCHEDULE, policy=HEALTH_CENTRE, account=LISTED_ELSEWHERE),
        None,
        None,
    ),
    (
        "R-ACC-3 listed elsewhere: may still cancel",
        replace(BASE, policy=HEALTH_CENTRE, account=LISTED_ELSEWHERE),
        None,
        None,
    ),
    (
        "R-ACC-3 listed elsewhere: may still list",
        replace(BASE, action=SelfServiceAction.LIST, policy=HEALTH_CENTRE, account=LISTED_ELSEWHERE),
        None,
        None,
    ),
    (
        "R-ACC-3 not a health centre: anyone may book",
        replace(BASE, action=SelfServiceAction.BOOK, account=LISTED_ELSEWHERE),
        None,
        None,
    ),
]


@pytest.mark.parametrize(("name", "req", "rule", "kind"), CASES, ids=[c[0] for c in CASES])
def test_r_bk_6_to_9_self_service_decisions(
    name: str, req: Request, rule: str | None, kind: RefusalKind | None
) -> None:
    refused = decide(req)
    if rule is None:
        assert refused is None, name
    else:
        assert refused is not None, name
        assert (refused.rule, refused.kind) == (rule, kind), name
        assert "1912121212" not in str(refused)


def test_r_bk_9_per_unit_deadline_is_data() -> None:
    policy = load_self_service()
    assert policy.for_unit(UNIT).change_deadline == timedelta(hours=24)
    assert policy.for_unit("SE2321000016-7P3K").change_deadline == timedelta(hours=48)
    assert policy.for_unit("SE-unknown").change_deadline == timedelta(hours=24)


def test_r_bk_9_bad_policy_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "self_service.yaml").write_text("default: {change_deadline_hours: soon}\n")
    with pytest.raises(ConfigurationError, match=r"self_service\.yaml"):
        load_self_service(tmp_path)


def test_r_acc_3_health_centres_are_data() -> None:
    policy = load_self_service()
    assert policy.for_unit(UNIT).health_centre  # Vårdcentralen Tolvåsen
    assert not policy.for_unit("SE2321000016-7P3K").health_centre
    assert not policy.for_unit("SE-unknown").health_centre


def test_r_bk_9_default_policy_without_units() -> None:
    assert SelfServicePolicy().for_unit(UNIT).change_deadline == timedelta(hours=24)
