"""Test fakes implementing the gateway's ports (the same Protocols the real adapters implement)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.domain.accounts import Account, no_account
from gateway.domain.documents import NO_MAILBOX, MailboxReachability
from gateway.domain.identity import IdKind, PersonId
from gateway.domain.mailbox import MailboxReceipt, OutgoingLetter
from gateway.domain.register import Address, Deregistration, Protection, RegisterRecord
from gateway.errors import TransientUpstreamError

PNR = "1.2.752.129.2.1.3.1"
SAMO = "1.2.752.129.2.1.3.3"


def pnr(value: str) -> PersonId:
    return PersonId(IdKind.PERSONNUMMER, value, PNR)


def record(value: str, **kwargs: object) -> RegisterRecord:
    kind = IdKind.SAMORDNINGSNUMMER if int(value[6:8]) > 60 else IdKind.PERSONNUMMER
    person = PersonId(kind, value, SAMO if kind is IdKind.SAMORDNINGSNUMMER else PNR)
    defaults: dict[str, object] = {
        "protection": Protection.NONE,
        "given_name": "Test",
        "family_name": "Testsson",
    }
    defaults.update(kwargs)
    return RegisterRecord(person=person, **defaults)  # type: ignore[arg-type]


# Register answers for the persons the tests use (numbers as in mocks/persons.yaml).
TOLVAN = record(
    "191212121212",
    given_name="Tolvan",
    family_name="Tolvansson",
    address=Address(None, "Tolvansvägen 12", None, "12345", "Tolvåsen"),
)
CHILD = record("201605152386")
TEEN = record("200903012391")
SEKRET = record(
    "197605010128", protection=Protection.SEKRETESSMARKERING, given_name="Sekret", family_name="Markersson"
)
SKYDDAD = record(
    "198203152452",
    protection=Protection.SKYDDAD_FOLKBOKFORING,
    given_name="Skyddad",
    family_name="Folkbokförd",
    address=Address("Skatteverket", "Särskild postförmedling", "Box 2820", "40320", "Göteborg"),
)
DECEASED = record("193804262628", deregistration=Deregistration.DECEASED)
EMIGRATED = record("195511302134", deregistration=Deregistration.EMIGRATED)
NEW_NUMBER = record("197306142659", referred_from=(pnr("197306142642"),))
OLD_NUMBER = record(
    "197306142642", deregistration=Deregistration.OLD_NUMBER_GN, referred_to=NEW_NUMBER.person
)
SAMORDNING = record("199002712934")
LOCKED = record("196208152568")
#: The child's guardians (mocks/persons.yaml): the register must clear them too (R-ID-3).
GUARDIAN = record("198503141239")
BLOCKED_GUARDIAN = record("198709224565")


@dataclass
class FakeRegister:
    """An in-memory population register with an outage switch; counts lookups per number."""

    records: dict[str, RegisterRecord] = field(
        default_factory=lambda: {
            r.person.value: r
            for r in (
                TOLVAN,
                CHILD,
                TEEN,
                SEKRET,
                SKYDDAD,
                DECEASED,
                EMIGRATED,
                NEW_NUMBER,
                OLD_NUMBER,
                SAMORDNING,
                LOCKED,
                GUARDIAN,
                BLOCKED_GUARDIAN,
            )
        }
    )
    down: bool = False
    calls: Counter[str] = field(default_factory=Counter)

    async def lookup(self, person: PersonId) -> RegisterRecord | None:
        self.calls[person.value] += 1
        if self.down:
            raise TransientUpstreamError("register unreachable (fake outage)")
        return self.records.get(person.value)


@dataclass
class FakeAccounts:
    """An in-memory account service (the port the platform's account adapter implements)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    down: bool = False

    async def account(self, person: PersonId) -> Account:
        if self.down:
            raise TransientUpstreamError("account service unreachable (fake outage)")
        return self.accounts.get(person.value) or no_account(person)


@dataclass
class FakeMailbox:
    """The recipient service as a dict: person value -> reachability (default: no mailbox)."""

    answers: dict[str, MailboxReachability] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    down: bool = False

    async def reachability(self, persons: Sequence[PersonId]) -> Mapping[PersonId, MailboxReachability]:
        self.calls.append(tuple(p.value for p in persons))
        if self.down:
            raise TransientUpstreamError("mailbox recipient service is down (fake)")
        return {p: self.answers.get(p.value, NO_MAILBOX) for p in persons}


@dataclass
class FakeDelivery:
    """The mailbox operators as a dict: idempotent on message id; scripted failures.

    ``failures``: raised one per call, in order, before anything is delivered (transient ones
    then succeed). ``refuse``: person value -> the refusal every delivery to them gets.
    """

    delivered: dict[str, OutgoingLetter] = field(default_factory=dict)
    receipts: dict[str, MailboxReceipt] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)
    refuse: dict[str, Exception] = field(default_factory=dict)
    calls: int = 0

    async def deliver(self, letter: OutgoingLetter) -> MailboxReceipt:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        if letter.recipient.value in self.refuse:
            raise self.refuse[letter.recipient.value]
        if letter.message_id not in self.receipts:
            self.delivered[letter.message_id] = letter
            self.receipts[letter.message_id] = MailboxReceipt(
                letter.message_id, f"T-{len(self.receipts) + 1}", letter.provider, datetime.now(UTC)
            )
        return self.receipts[letter.message_id]
