"""Generate a day of bookings as a TakeCare-like journal would push them, and send them.

Messages are written as ER7 text by the gateway's one SIU builder
(``gateway/journal_adapter/siu_builder.py``; fast enough for benchmarks); ``tests/unit/
test_hl7_reference.py`` validates them with hl7apy, the reference implementation. The mix is
realistic: mostly v2.5.1 with TQ1 and ISO 8859-1 (as Swedish journals commonly send), some
v2.3 with SCH-11 and UTF-8; time types visible and hidden; reschedules, modifications,
cancellations, deletions and no-shows; reasons with å, ä, ö and characters that must be escaped.
Every booking it makes or changes is also written to its ``book`` (``book.py``), which its
booking web service (``booking_ws.py``) answers from.

Beside the bookings, :meth:`JournalSimulator.letters` writes a day's e-documents as MDM (the
one MDM builder, ``gateway/journal_adapter/mdm_builder.py``): kallelser for bookings it sent,
e-brev, e-remissbekräftelser, letters with a near-miss control code or none, one with a PDF
bilaga, and T10 replacements. It draws from a random stream of its own, so asking for letters
never changes the bookings a seed gives.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypedDict
from zoneinfo import ZoneInfo

from gateway.domain.booking import JournalBooking, JournalStatus, Resource
from gateway.domain.letter import Attachment
from gateway.journal_adapter.mdm_builder import MdmDocument, TextType, build_mdm, minimal_pdf
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


class LetterKind(StrEnum):
    """What the simulated journal meant a letter to be (tests and the demo compare with it)."""

    E_KALLELSE = "e-kallelse"
    E_BREV = "e-brev"  # [4US:LPAT] in the footer
    E_REMISSBEKRAFTELSE = "e-remissbekräftelse"  # [4US:RPAT]
    NEAR_MISS = "near-miss"  # "[4US: LPAT]": does not count (R-DOC-2)
    NO_CODE = "no-code"  # a BREV without any control code (R-DOC-3)


@dataclass(frozen=True)
class JournalLetter:
    """One MDM message as the journal sends it, with what it is about."""

    data: bytes
    control_id: str
    trigger: str  # T02 new, T10 replacement
    document_number: str  # TXA-12.1; a T10 repeats its T02's
    document_type: str  # TXA-2: KALLELSE or BREV
    kind: LetterKind
    person_id: str
    booking_id: str | None  # TXA-13 of a kallelse: the SCH-2 booking id it was sent for
    title: str
    text: str
    attachments: tuple[Attachment, ...]
    charset: str
    version: str
    text_type: str

    @property
    def lane(self) -> str:
        """A kallelse travels with its booking (after its S12 on one connection), a letter alone."""
        return self.booking_id or self.document_number


@dataclass(frozen=True)
class _Letter:
    kind: LetterKind
    document_type: str
    document_number: str
    person: TestPerson
    unit: Unit
    author: tuple[str, str, str]
    title: str
    text: str
    booking_id: str | None = None
    attachments: tuple[Attachment, ...] = ()


_LETTER_FLAVOURS: tuple[tuple[str, str, TextType], ...] = (
    ("2.5.1", "8859/1", "TX"),
    ("2.5.1", "UNICODE UTF-8", "FT"),
    ("2.5.1", "8859/1", "FT"),
    ("2.3", "8859/1", "TX"),
)


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
        self._seed = seed
        self._seq_document = 0
        #: Every booking sent, by id, with the trigger of its latest message (for kallelser).
        self.sent: dict[str, tuple[_Booking, str]] = {}

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
        self.sent[booking.booking_id] = (booking, trigger)
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

    def letters(self, day: date, *, kallelser: int = 5, now: datetime | None = None) -> list[JournalLetter]:
        """A day's e-documents, beside the bookings :meth:`day` sent (call it first for kallelser).

        In order: a kallelse (TXA-13 = the booking's SCH-2) for each of the first ``kallelser``
        bookings still booked; an e-brev with ``[4US:LPAT]`` in the footer (to Tolvan when the
        population has him), an e-remissbekräftelse with ``[4US:RPAT]``, a letter with the near
        miss ``[4US: LPAT]``, one with no code, an e-brev with a PDF bilaga, e-brev to a protected
        person and to a child with a protected guardian (both held for staff); then T10
        replacements of the first kallelse and of the e-brev (same TXA-12, whole new text).
        """
        rng = random.Random(f"letters:{self._seed}:{self.run_id}:{day.isoformat()}")
        now = now or datetime.now(STOCKHOLM)
        letters: list[_Letter] = []
        booked = [b for b, trigger in self.sent.values() if trigger in ("S12", "S13", "S14")]
        for booking in booked[:kallelser]:
            letters.append(self._kallelse(booking, day))
        persons = self.population.persons
        tolvan = self.population.find("191212121212")
        brev = self._brev(LetterKind.E_BREV, tolvan or rng.choice(persons), day, rng)
        letters.append(brev)
        for kind in (LetterKind.E_REMISSBEKRAFTELSE, LetterKind.NEAR_MISS, LetterKind.NO_CODE):
            letters.append(self._brev(kind, rng.choice(persons), day, rng))
        pdf = Attachment("Provsvar.pdf", "application/pdf", minimal_pdf(f"Provsvar {day.isoformat()}"))
        letters.append(self._brev(LetterKind.E_BREV, rng.choice(persons), day, rng, attachments=(pdf,)))
        # Held for staff (R-ID-3, R-ID-4): a letter to a protected person, and one to a child
        # whose guardian is protected, when the population has them.
        for protected in ("197605010128", "201803142387"):
            person = self.population.find(protected)
            if person is not None:
                letters.append(self._brev(LetterKind.E_BREV, person, day, rng))

        out = [self._send("T02", letter, rng, now) for letter in letters]
        if letters and letters[0].kind is LetterKind.E_KALLELSE:
            first = letters[0]
            corrected = first.text.replace(
                "Om du inte kan komma", "Ta med giltig legitimation.\n\nOm du inte kan komma"
            )
            out.append(self._send("T10", replace(first, text=corrected), rng, now))
        replaced = brev.text.replace("Hej,", "Hej igen,\n\nVi har rättat ett provsvar i brevet nedan.")
        out.append(self._send("T10", replace(brev, text=replaced), rng, now))
        return out

    def _next_document(self, day: date) -> str:
        self._seq_document += 1
        return f"D{self.run_id}{day:%y%m%d}{self._seq_document:05d}"

    def _kallelse(self, booking: _Booking, day: date) -> _Letter:
        p = booking.person
        _, pr_family, pr_given = booking.practitioner
        start = booking.start.astimezone(STOCKHOLM)
        visit = TYPE_NAMES[booking.time_type].lower()
        text = "\n".join(
            [
                booking.unit.name,
                "",
                f"Hej {p.given} {p.family},",
                "",
                f"Du är välkommen på {visit} {start:%Y-%m-%d} kl. {start:%H.%M}"
                f" ({booking.minutes} minuter) hos {pr_given} {pr_family}.",
                f"Besöket gäller: {booking.reason}",
                "",
                "Om du inte kan komma, avboka senast 24 timmar före besöket.",
                "",
                "Med vänliga hälsningar",
                booking.unit.name,
            ]
        )
        return _Letter(
            kind=LetterKind.E_KALLELSE,
            document_type="KALLELSE",
            document_number=self._next_document(day),
            person=p,
            unit=booking.unit,
            author=booking.practitioner,
            title=f"Kallelse till {TYPE_NAMES[booking.time_type].lower()}",
            text=text,
            booking_id=booking.booking_id,
        )

    def _brev(
        self,
        kind: LetterKind,
        person: TestPerson,
        day: date,
        rng: random.Random,
        *,
        attachments: tuple[Attachment, ...] = (),
    ) -> _Letter:
        unit = rng.choice(UNITS)
        author = rng.choice(unit.practitioners)
        footer = {
            LetterKind.E_BREV: "[4US:LPAT]",
            LetterKind.E_REMISSBEKRAFTELSE: "[4US:RPAT]",
            LetterKind.NEAR_MISS: "[4US: LPAT]",
            LetterKind.NO_CODE: "",
        }[kind]
        if kind is LetterKind.E_REMISSBEKRAFTELSE:
            title = "Bekräftelse på mottagen remiss"
            body = [
                "Vi har tagit emot en remiss från din vårdcentral. Du får en kallelse när en tid",
                "har bokats. Väntetiden är för närvarande cirka åtta veckor.",
            ]
        else:
            title = "Svar på provtagning" if not attachments else "Provsvar (se bilaga)"
            body = [
                "Här kommer svaret på dina provtagningar: blodstatus | CRP & glukos.",
                "Alla värden är inom det förväntade och någon åtgärd behövs inte.",
            ]
            if attachments:
                body.append("Provsvaren finns i bilagan.")
        _, pr_family, pr_given = author
        lines = [
            unit.name,
            "",
            "Hej,",
            "",
            *body,
            "",
            "Med vänliga hälsningar",
            f"{pr_given} {pr_family}",
            "",
            f"{unit.name} · Telefon 08-123 456 78" + (f" · {footer}" if footer else ""),
        ]
        return _Letter(
            kind=kind,
            document_type="BREV",
            document_number=self._next_document(day),
            person=person,
            unit=unit,
            author=author,
            title=title,
            text="\n".join(lines),
            attachments=attachments,
        )

    def _send(self, trigger: str, letter: _Letter, rng: random.Random, now: datetime) -> JournalLetter:
        version, charset, text_type = rng.choice(_LETTER_FLAVOURS)
        control_id = self._control_id()
        p = letter.person
        pr_id, pr_family, pr_given = letter.author
        data = build_mdm(
            trigger,
            MdmDocument(
                document_number=letter.document_number,
                namespace=NAMESPACE,
                document_type=letter.document_type,
                patient_id=p.id,
                patient_oid=p.oid,
                text=letter.text,
                title=letter.title,
                booking_id=letter.booking_id,
                written_at=now,
                author=Practitioner(pr_id, pr_family, pr_given),
                unit=Resource(letter.unit.hsa_id, letter.unit.name),
                attachments=letter.attachments,
                family=p.family,
                given=p.given,
            ),
            control_id=control_id,
            now=now,
            sending=(self.sending_application, self.sending_facility),
            version=version,
            charset=charset,
            text_type=text_type,
        )
        return JournalLetter(
            data=data,
            control_id=control_id,
            trigger=trigger,
            document_number=letter.document_number,
            document_type=letter.document_type,
            kind=letter.kind,
            person_id=p.id,
            booking_id=letter.booking_id,
            title=letter.title,
            text=letter.text,
            attachments=letter.attachments,
            charset=charset,
            version=version,
            text_type=text_type,
        )

    def _flavour(self) -> _Flavour:
        roll = self.rng.random()
        if roll < 0.7:
            return _Flavour(version="2.5.1", charset="8859/1")
        if roll < 0.85:
            return _Flavour(version="2.5.1", charset="UNICODE UTF-8")
        return _Flavour(version="2.3", charset="8859/1")


async def push(
    messages: Sequence[JournalMessage | JournalLetter | bytes], host: str, port: int, *, connections: int = 1
) -> list[bytes]:
    """Send over MLLP on ``connections`` parallel connections; return the ACKs in message order.

    Messages about the same booking keep their order: each booking goes on one connection, and
    a kallelse with its booking; a letter's T02 and T10 go on one connection too.
    """
    acks: list[bytes] = [b""] * len(messages)
    lanes: list[list[int]] = [[] for _ in range(connections)]
    for i, m in enumerate(messages):
        if isinstance(m, JournalLetter):
            key = m.lane
        else:
            key = m.booking_id if isinstance(m, JournalMessage) else str(i)
        lanes[hash(key) % connections].append(i)

    async def lane(indexes: list[int]) -> None:
        if not indexes:
            return
        async with MllpClient(host, port) as client:
            for i in indexes:
                m = messages[i]
                acks[i] = await client.send(m if isinstance(m, bytes) else m.data)

    await asyncio.gather(*(lane(ix) for ix in lanes))
    return acks
