"""FHIR search parameters for Appointment, parsed strictly: anything unknown or bad is a 400."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.domain.query import (
    APPOINTMENT_STATUSES,
    MAX_COUNT,
    STOCKHOLM,
    AppointmentQuery,
    DateFilter,
    Prefix,
    SortKey,
    Token,
)
from gateway.errors import InvalidRequest

_IGNORED = frozenset({"_format", "_pretty"})
SEARCH_PARAMS = ("patient:identifier", "identifier", "date", "status", "_lastUpdated")
CONTROL_PARAMS = ("_count", "_offset", "_sort", "_total")

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_date(param: str, raw: str) -> DateFilter:
    prefix: Prefix = "eq"
    value = raw
    if len(raw) > 2 and raw[:2] in ("eq", "ne", "gt", "lt", "ge", "le"):
        prefix = raw[:2]  # type: ignore[assignment]
        value = raw[2:]
    elif len(raw) > 2 and raw[:2] in ("sa", "eb", "ap"):
        raise InvalidRequest(f"{param}: prefix {raw[:2]!r} is not supported (use eq, ne, gt, lt, ge, le)")
    m = _DATE.match(value)
    if m is None:
        raise InvalidRequest(f"{param}: {value!r} is not a FHIR date or dateTime")
    try:
        tz = STOCKHOLM
        if m["tz"]:
            tz_text = m["tz"]
            if tz_text == "Z":
                tz = ZoneInfo("UTC")
            else:
                tz = datetime.strptime(tz_text.replace(":", ""), "%z").tzinfo  # type: ignore[assignment]
        year = int(m["y"])
        if m["m"] is None:
            low = datetime(year, 1, 1, tzinfo=tz)
            high = datetime(year + 1, 1, 1, tzinfo=tz)
        elif m["d"] is None:
            month = int(m["m"])
            low = datetime(year, month, 1, tzinfo=tz)
            high = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
        elif m["H"] is None:
            low = datetime(year, int(m["m"]), int(m["d"]), tzinfo=tz)
            high = low + timedelta(days=1)
        else:
            frac = (m["f"] or "")[:6].ljust(6, "0")
            low = datetime(
                year,
                int(m["m"]),
                int(m["d"]),
                int(m["H"]),
                int(m["M"]),
                int(m["S"] or 0),
                int(frac),
                tzinfo=tz,
            )
            if m["f"]:
                step = timedelta(microseconds=10 ** (6 - min(len(m["f"]), 6)))
            elif m["S"]:
                step = timedelta(seconds=1)
            else:
                step = timedelta(minutes=1)
            high = low + step
    except ValueError as exc:
        raise InvalidRequest(f"{param}: {value!r} is not a valid date") from exc
    return DateFilter(prefix, low, high)


def _token(param: str, raw: str) -> Token:
    if "|" in raw:
        system, value = raw.split("|", 1)
        if not value:
            raise InvalidRequest(f"{param}: a value is needed after '|'")
        return system, value
    if not raw:
        raise InvalidRequest(f"{param}: empty value")
    return None, raw


def _int(param: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{param}: {raw!r} is not a whole number") from exc
    if not low <= value <= high:
        raise InvalidRequest(f"{param}: {value} is outside {low}..{high}")
    return value


def parse_appointment_query(items: list[tuple[str, str]]) -> AppointmentQuery:
    q = AppointmentQuery()
    for name, raw in items:
        if name in _IGNORED:
            continue
        if name in ("patient:identifier", "patient.identifier"):
            system, value = _token(name, raw)
            q.patients.append((system, value.replace("-", "")))
        elif name == "identifier":
            q.identifiers.append(_token(name, raw))
        elif name == "date":
            q.dates.append(parse_date(name, raw))
        elif name == "_lastUpdated":
            q.last_updated.append(parse_date(name, raw))
        elif name == "status":
            any_of: list[str] = []
            for status in raw.split(","):
                if status not in APPOINTMENT_STATUSES:
                    raise InvalidRequest(f"status: {status!r} is not an Appointment status")
                any_of.append(status)
            q.statuses = any_of if q.statuses is None else [s for s in q.statuses if s in any_of]
        elif name == "_count":
            q.count = _int(name, raw, 0, MAX_COUNT)
        elif name == "_offset":
            q.offset = _int(name, raw, 0, 10_000_000)
        elif name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise InvalidRequest("_total: use none, estimate or accurate")
            q.total = raw != "none"
        elif name == "_sort":
            sort: list[tuple[SortKey, bool]] = []
            for key in raw.split(","):
                desc = key.startswith("-")
                bare = key.lstrip("-")
                if bare not in ("date", "_lastUpdated"):
                    raise InvalidRequest(f"_sort: {bare!r} is not supported (date, _lastUpdated)")
                sort.append((bare, desc))  # type: ignore[arg-type]
            q.sort = sort
        else:
            raise InvalidRequest(
                f"unknown search parameter {name!r}; supported: " + ", ".join(SEARCH_PARAMS + CONTROL_PARAMS)
            )
    return q
