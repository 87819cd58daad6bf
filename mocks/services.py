"""All mocks behind one port: ``/spar/…``, ``/accounts/…``, ``/booking`` (the journal's service),
``/mailbox/…`` (the mailbox recipient service and the operators' delivery services), ``/sms/…``
(a 46elks-style SMS provider), ``/oidc/…`` (the identity provider the staff console signs in with).

Each mock is its own ASGI app whose routes already carry its prefix; this dispatcher only
picks the app by the first path segment, so the mocks stay independent and each can also be
served alone (tests stop one to show an outage of that system only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from gateway.journal_adapter.timestamps import STOCKHOLM
from mocks.journal.book import JournalBook
from mocks.journal.calendar import JournalCalendar
from mocks.population import Population
from mocks.population import load as load_population
from mocks.runner import ServedApp

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PrefixDispatcher:
    """Route by the first path segment to one of several ASGI apps; 404 otherwise."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        first = scope.get("path", "/").lstrip("/").split("/", 1)[0]
        app = self.apps.get(first)
        if app is None:
            body = f"no mock at /{first}; mocks: {', '.join('/' + p for p in sorted(self.apps))}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)


@dataclass
class MockServices:
    """The built-in mocks on one port; ``apps`` maps a path prefix to its ASGI app."""

    population: Population
    apps: dict[str, ASGIApp] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    #: The journal's calendar behind the booking service's write operations (self-service).
    calendar: JournalCalendar | None = None
    _served: ServedApp | None = None

    def journal_pushes_to(self, host: str, port: int) -> None:
        """Where the journal pushes the SIU of each calendar change (the gateway's MLLP port)."""
        if self.calendar is not None:
            self.calendar.push_to = (host, port)

    @classmethod
    def default(
        cls,
        population: Population | None = None,
        *,
        journal_book: JournalBook | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> MockServices:
        """``journal_book``: what the journal's booking service answers (the demo shares its own)."""
        population = population or load_population()
        book = journal_book if journal_book is not None else JournalBook()
        calendar = demo_calendar(book)
        for person in population.persons:  # the journal knows the test population's patients
            calendar.know(person.id)
        return cls(
            population, build_apps(population, book, calendar), host=host, port=port, calendar=calendar
        )

    @property
    def url(self) -> str:
        if self._served is None:
            raise RuntimeError("mocks are not started")
        return self._served.url

    def start(self) -> MockServices:
        self._served = ServedApp(PrefixDispatcher(self.apps), host=self.host, port=self.port).start()
        self.port = self._served.port
        return self

    def stop(self) -> None:
        if self._served is not None:
            self._served.stop()


def demo_calendar(book: JournalBook, *, days: int = 14) -> JournalCalendar:
    """Free slots from tomorrow for ``days`` days at each simulated unit: visible time types on
    weekday mornings and one hidden (ADM) hour, so self-service can be tried at once."""
    from mocks.journal.simulator import UNITS

    calendar = JournalCalendar(book)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(STOCKHOLM).date()
    for offset in range(days):
        day = tomorrow + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for unit in UNITS:
            at = datetime.combine(day, time(8, 0), STOCKHOLM)
            calendar.open_slots(unit.hsa_id, "NYB", at, 4)
            calendar.open_slots(unit.hsa_id, "ATB", at + timedelta(hours=2), 2)
            calendar.open_slots(unit.hsa_id, "TEL", at + timedelta(hours=5), 4, minutes=15)
            calendar.open_slots(unit.hsa_id, "ADM", at + timedelta(hours=7), 2)
    return calendar


def calendar_pusher(calendar: JournalCalendar) -> Callable[[list[bytes]], Awaitable[None]]:
    """Push a change's SIU over MLLP to ``calendar.push_to``, as a journal does (none set: kept
    in ``calendar.outbox`` only)."""
    from mocks.journal.simulator import push

    async def pusher(messages: list[bytes]) -> None:
        if calendar.push_to is not None:
            await push(messages, *calendar.push_to)

    return pusher


def build_apps(
    population: Population, journal_book: JournalBook, calendar: JournalCalendar | None = None
) -> dict[str, ASGIApp]:
    """Every built-in mock by its path prefix."""
    from mocks.accounts import create_app as accounts_app
    from mocks.journal.booking_ws import create_app as journal_app
    from mocks.mailbox import create_app as mailbox_app
    from mocks.oidc import create_app as oidc_app
    from mocks.sms import create_app as sms_app
    from mocks.spar import create_app as spar_app

    return {
        "spar": spar_app(population),
        "accounts": accounts_app(population),
        "booking": journal_app(
            journal_book,
            calendar=calendar,
            pusher=calendar_pusher(calendar) if calendar is not None else None,
        ),
        "mailbox": mailbox_app(population),
        "sms": sms_app(),
        "oidc": oidc_app(),
    }
