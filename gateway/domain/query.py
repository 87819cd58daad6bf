"""Query value types shared by the FHIR search parsers (which build them) and the store (which
runs them): date ranges, tokens, the Appointment query, the Communication query, the Swedish time
zone and the content digest. Pure values, so ``store`` needs neither ``fhir`` nor HL7.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

#: The booking identifier's system (FHIR NamingSystem); the store matches tokens against it.
BOOKING_ID_SYSTEM = "http://gateway.vard.example/fhir/NamingSystem/journal-booking-id"

STOCKHOLM = ZoneInfo("Europe/Stockholm")
APPOINTMENT_STATUSES = frozenset(
    {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    }
)
#: Statuses a search leaves out unless it asks for them (:attr:`AppointmentQuery.left_out`).
HIDDEN_UNLESS_ASKED = ("entered-in-error",)
DEFAULT_COUNT = 50
MAX_COUNT = 500

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le"]
SortKey = Literal["date", "_lastUpdated"]


@dataclass(frozen=True, slots=True)
class DateFilter:
    """A date parameter as the half-open range [low, high) its precision implies, plus a prefix."""

    prefix: Prefix
    low: datetime
    high: datetime


# A token as (system, value): system None is any system ("VALUE"), "" is no system ("|VALUE").
Token = tuple[str | None, str]


@dataclass(slots=True)
class AppointmentQuery:
    """Repeated parameters are AND (FHIR search): every token in ``patients`` and
    ``identifiers`` must match, and the status must be in ``statuses``, the intersection of
    each ``status`` parameter's comma-separated (OR) values; None is no status filter."""

    patients: list[Token] = field(default_factory=list)
    identifiers: list[Token] = field(default_factory=list)
    dates: list[DateFilter] = field(default_factory=list)
    last_updated: list[DateFilter] = field(default_factory=list)
    statuses: list[str] | None = None
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[tuple[SortKey, bool]] = field(default_factory=lambda: [("date", False)])
    total: bool = True

    @property
    def left_out(self) -> tuple[str, ...]:
        """R-BK-2: a deleted booking (``entered-in-error``) is in the incremental sync (any
        ``_lastUpdated``, so a platform that cached it removes it) and wherever ``status`` asks
        for it, but a patient's booking list, and any other search, leaves it out."""
        if self.statuses is not None or self.last_updated:
            return ()
        return HIDDEN_UNLESS_ASKED


# Parameters that carry no filter but are allowed on any FHIR request.


@dataclass(slots=True)
class CommunicationQuery:
    """Repeated parameters are AND, comma-separated values OR (as for Appointment).

    ``kinds`` holds, per ``category`` parameter, the document kinds its codes name."""

    subjects: list[Token] = field(default_factory=list)
    recipients: list[Token] = field(default_factory=list)
    kinds: list[list[str]] = field(default_factory=list)
    statuses: list[list[str]] = field(default_factory=list)
    last_updated: list[DateFilter] = field(default_factory=list)
    count: int = 50
    offset: int = 0
    sort_desc: bool = False
    total: bool = True


def content_hash(resource: dict[str, Any]) -> str:
    """The digest that tells whether a stored resource changed (sorted keys, so stable)."""
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
