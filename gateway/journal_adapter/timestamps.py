"""HL7 v2 TS/DTM values to aware datetimes. Without an offset, the region's local time."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gateway.errors import Location, MalformedMessage

STOCKHOLM = ZoneInfo("Europe/Stockholm")

_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")


def parse_dtm(value: str, where: Location, tz: ZoneInfo = STOCKHOLM) -> datetime:
    """Parse a DTM with at least minute precision (YYYYMMDDHHMM[SS[.S+]][+/-ZZZZ])."""
    try:
        return _parsed(value, tz)
    except _Invalid:
        return _parse(value, where, tz)  # again, to raise with where it was


class _Invalid(Exception):
    pass


@functools.lru_cache(maxsize=4096)
def _parsed(value: str, tz: ZoneInfo) -> datetime:
    """The same times recur (a day's appointment slots, one message's own): each is parsed
    once. An aware datetime is immutable, so sharing it is safe; failures are not kept."""
    try:
        return _parse(value, Location("?"), tz)
    except MalformedMessage as exc:
        raise _Invalid from exc


def _parse(value: str, where: Location, tz: ZoneInfo) -> datetime:
    text = value.split("^", 1)[0].strip()  # TS.2 "degree of precision" (v2.3/2.4) is ignored
    match = _DTM.match(text)
    if match is None:
        raise MalformedMessage(f"timestamp {text!r} is not YYYYMMDDHHMM[SS][+/-ZZZZ]", where, code="102")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        micro = int((frac or "0").ljust(6, "0"))
        naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    except ValueError as exc:
        raise MalformedMessage(f"timestamp {text!r} is not a real date/time", where, code="102") from exc
    if offset:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            raise MalformedMessage(f"timestamp {text!r} has an invalid offset", where, code="102")
        return naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    return naive.replace(tzinfo=tz)


def format_dtm(moment: datetime) -> str:
    """An aware datetime as DTM with seconds and offset, in Swedish local time."""
    return moment.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S%z")
