"""Generate a day of bookings as a TakeCare-like journal would push them, and send them.

Messages are written as ER7 text by the gateway's one SIU builder
(``gateway/journal_adapter/siu_builder.py``; fast enough for benchmarks); ``tests/unit/
test_hl7_reference.py`` validates them with hl7apy, the reference implementation. The mix is
realistic: mostly v2.5.1 with TQ1 and ISO 8859-1 (as Swedish journals commonly send), some
v2.3 with SCH-11 and UTF-8; time types visible and hidden; reschedules, modifications,
cancellations, deletions and no-shows; reasons with å, ä, ö and characters that must be escaped.
Every booking it makes or changes is also written to its ``book`` (``book.py``), which its
booking web service (``booking_ws.py``) answers from.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypedDict
from zoneinfo import ZoneInfo

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.journal_adapter.mllp import MllpClient
from gateway.journal_adapter.siu_builder import Practitioner, SiuBooking, build_siu
from mocks.journal.book import JournalBook
from mocks.population import Population, TestPerson
from mocks.population import load as load_population

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NAMESPACE = "TAKECARE"  # SCH-2.2: the namespace of the journal's booking ids


@dataclass(frozen=True)
class Unit:
    hsa_id: str
    name: str
    practitioners: tuple[tuple[str, str, str], ...]  # (hsa_id, family, given)


UNITS: tuple[Unit, ...] = (
    Unit(
        "SE2321000016-15CQ",
        "Vårdcentralen Tolvåsen",
        (("SE2321000016-1A2B", "Läkare", "Anna"), ("SE2321000016-1A2C", "Sjöström", "Örjan")),
    ),
    Unit("SE2321000016-7P3K", "Barnavårdscentralen Solängen", (("SE2321000016-2B3C", "Öberg", "Åsa"),)),
    Unit("SE2321000016-9XYZ", "Psykiatrimottagning Söder", (("SE2321000016-3C4D", "Bäckström", "Märta"),)),
)

REASONS = (
    "Kontroll av blodtryck & vikt",
    "Uppföljning efter operation",
    "Provtagning: blodstatus | CRP",
    "Vaccination mot säsongsinfluensa",
    "Samtal om sömnbesvär",
    "Årskontroll diabetes",
    "Läkarbesök ^ förnyelse av recept",
    "Hälsobesök 4 år",
)

VISIBLE_TYPES = ("NYB", "ATB", "TEL", "VIDEO", "LAB", "VACC", "BVC")
HIDDEN_TYPES = ("ADM", "KONF", "DOLD")
TYPE_NAMES = {
    "NYB": "Nybesök",
    "ATB": "Återbesök",
    "TEL": "Telefontid",
    "VIDEO": "Videobesök",
    "LAB": "Provtagning",
    "VACC": "Vaccination",
    "BVC": "BVC-besök",
    "ADM": "Administrativ tid",
    "KONF": "Intern konferens",
    "DOLD": "Dold tid",
}


class _Flavour(TypedDict):
    version: str
    charset: str


@dataclass(frozen=True)
class JournalMessage:
    """One message as the journal sends it, with what it is about (for tests and the demo)."""

    data: bytes
    control_id: str
    trigger: str
    booking_id: str
    person_id: str
    time_type: str
    charset: str
    version: str


@dataclass
class _Booking:
    booking_id: str
    person: TestPerson
    unit: Unit
    practitioner: tuple[str, str, str]
    time_type: str
    start: datetime
    minutes: int
    reason: str


class JournalSimulator:
    """Deterministic for a given seed, so demo runs and tests are repeatable."""

    sending_application = "TAKECARE"
    sending_facility = "SLL"

    def __init__(
        self,
        population: Population | None = None,
        *,
        seed: int = 1,
        run_id: str = "",
        book: JournalBook | None = None,
    ) -> None:
        self.population = population or load_population()
        #: What the journal holds now; its booking web service answers from this (R-BK-4).
        self.book = book if book is not None else JournalBook(p.id for p in self.population.persons)
        self.rng = random.Random(seed)
        self.run_id = run_id
        self._seq = 0
        self._seq_booking = 0

    def _control_id(self) -> str:
        self._seq += 1
        return f"TC{self.run_id}{self._seq:07d}"

    def booking_message(
        self,
        trigger: str,
        booking: _Booking,
        *,
        version: str = "2.5.1",
        charset: str = "8859/1",
        filler_status: str = "Booked",
        now: datetime | None = None,
    ) -> JournalMessage:
        now = now or datetime.now(STOCKHOLM)
        control_id = self._control_id()
        p = booking.person
        pr_id, pr_family, pr_given = booking.practitioner
        data = build_siu(
            trigger,
            SiuBooking(
                booking_id=booking.booking_id,
                namespace=NAMESPACE,
                patient_id=p.id,
                patient_oid=p.oid,
                start=booking.start,
                minutes=booking.minutes,
                time_type=booking.time_type,
                time_type_name=TYPE_NAMES[booking.time_type],
                reason=booking.reason,
                unit=Resource(booking.unit.hsa_id, booking.unit.name),
                practitioner=Practitioner(pr_id, pr_family, pr_given),
                family=p.family,
                given=p.given,
            ),
            control_id=control_id,
            now=now,
            sending=(self.sending_application, self.sending_facility),
            version=version,
            charset=charset,
            filler_status=filler_status,
        )
        self._record(trigger, booking)
        return JournalMessage(
            data=data,
            control_id=control_id,
            trigger=trigger,
            booking_id=booking.booking_id,
            person_id=p.id,
            time_type=booking.time_type,
            charset=charset,
            version=version,
        )

    def _record(self, trigger: str, booking: _Booking) -> None:
        """Keep the journal's own book in step with what it sends (R-BK-4)."""
        if trigger == "S17":
            self.book.remove(booking.booking_id)
            return
        status = {"S15": JournalStatus.CANCELLED, "S26": JournalStatus.NOSHOW}.get(
            trigger, JournalStatus.BOOKED
        )
        self.book.put(self.journal_booking(booking, status))

    @staticmethod
    def journal_booking(booking: _Booking, status: JournalStatus = JournalStatus.BOOKED) -> JournalBooking:
        """A simulated booking as the journal's booking service tells it."""
        pr_id, pr_family, pr_given = booking.practitioner
        return JournalBooking(
            booking_id=booking.booking_id,
            patient_id=booking.person.id,
            start=booking.start,
            end=booking.start + timedelta(minutes=booking.minutes),
            status=status,
            time_type=booking.time_type,
            time_type_name=TYPE_NAMES[booking.time_type],
            reason=booking.reason,
            practitioners=(Resource(pr_id, f"{pr_given} {pr_family}"),),
            units=(Resource(booking.unit.hsa_id, booking.unit.name),),
        )

    def lost_booking(self, day: date, person: TestPerson | None = None, *, hidden: bool = False) -> _Booking:
        """A booking the journal made whose message never reached the gateway: only in the book."""
        booking = self.new_booking(day, person, hidden=hidden)
        self.book.put(self.journal_booking(booking))
        return booking

    def new_booking(
        self, day: date, person: TestPerson | None = None, *, hidden: bool | None = None
    ) -> _Booking:
        rng = self.rng
        unit = rng.choice(UNITS)
        if hidden is None:
            hidden = rng.random() < 0.12
        slot = rng.randrange(8 * 4, 16 * 4)  # quarter hours 08:00-16:00
        start = datetime.combine(day, time(slot // 4, (slot % 4) * 15), STOCKHOLM)
        self._seq_booking += 1
        return _Booking(
            booking_id=f"B{self.run_id}{day:%y%m%d}{self._seq_booking:05d}",
            person=person or rng.choice(self.population.persons),
            unit=unit,
            practitioner=rng.choice(unit.practitioners),
            time_type=rng.choice(HIDDEN_TYPES if hidden else VISIBLE_TYPES),
            start=start,
            minutes=rng.choice((15, 20, 30, 45, 60)),
            reason=rng.choice(REASONS),
        )

    def day(self, day: date, bookings: int = 40) -> list[JournalMessage]:
        """A day of traffic: new bookings, then changes to some of them, in journal order."""
        rng = self.rng
        out: list[JournalMessage] = []
        made: list[_Booking] = []
        # Tolvan always gets a visible booking, so the demo has a known person to show.
        tolvan = (
            self.population.by_id("191212121212")
            if any(p.id == "191212121212" for p in self.population.persons)
            else None
        )
        for i in range(bookings):
            b = self.new_booking(day, tolvan if i == 0 else None, hidden=False if i == 0 else None)
            made.append(b)
            out.append(self.booking_message("S12", b, **self._flavour()))
        for b in made[1:]:
            roll = rng.random()
            if roll < 0.15:
                b.start += timedelta(days=rng.choice((1, 2, 7)), minutes=rng.choice((0, 30, -30)))
                out.append(self.booking_message("S13", b, **self._flavour()))
            elif roll < 0.25:
                b.reason = rng.choice(REASONS)
                out.append(self.booking_message("S14", b, **self._flavour()))
            elif roll < 0.35:
                out.append(self.booking_message("S15", b, filler_status="Cancelled", **self._flavour()))
            elif roll < 0.38:
                out.append(self.booking_message("S17", b, filler_status="Deleted", **self._flavour()))
            elif roll < 0.43:
                out.append(self.booking_message("S26", b, filler_status="Noshow", **self._flavour()))
        return out

    def _flavour(self) -> _Flavour:
        roll = self.rng.random()
        if roll < 0.7:
            return _Flavour(version="2.5.1", charset="8859/1")
        if roll < 0.85:
            return _Flavour(version="2.5.1", charset="UNICODE UTF-8")
        return _Flavour(version="2.3", charset="8859/1")


async def push(
    messages: Sequence[JournalMessage | bytes], host: str, port: int, *, connections: int = 1
) -> list[bytes]:
    """Send over MLLP on ``connections`` parallel connections; return the ACKs in message order.

    Messages about the same booking keep their order: each booking goes on one connection.
    """
    acks: list[bytes] = [b""] * len(messages)
    lanes: list[list[int]] = [[] for _ in range(connections)]
    for i, m in enumerate(messages):
        key = m.booking_id if isinstance(m, JournalMessage) else str(i)
        lanes[hash(key) % connections].append(i)

    async def lane(indexes: list[int]) -> None:
        if not indexes:
            return
        async with MllpClient(host, port) as client:
            for i in indexes:
                m = messages[i]
                acks[i] = await client.send(m.data if isinstance(m, JournalMessage) else m)

    await asyncio.gather(*(lane(ix) for ix in lanes))
    return acks
