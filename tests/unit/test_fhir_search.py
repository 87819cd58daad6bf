"""FHIR search parameter parsing: ranges by precision, prefixes, and clear 400s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.errors import InvalidRequest
from gateway.fhir.search import parse_appointment_query, parse_date


def test_a_day_is_the_whole_local_day() -> None:
    f = parse_date("date", "ge2026-12-01")
    assert f.prefix == "ge"
    assert f.low.astimezone(UTC) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert (f.high - f.low).days == 1


def test_precision_decides_the_range() -> None:
    assert parse_date("date", "2026").high.year == 2027
    assert parse_date("date", "2026-12").high.month == 1
    second = parse_date("date", "2026-12-01T10:00:00Z")
    assert (second.high - second.low).total_seconds() == 1
    millis = parse_date("date", "2026-12-01T10:00:00.123Z")
    assert (millis.high - millis.low).total_seconds() == pytest.approx(0.001)


@pytest.mark.parametrize(
    "items",
    [
        [("colour", "blue")],
        [("date", "sa2026-01-01")],
        [("date", "2026-13-01")],
        [("status", "happy")],
        [("_count", "many")],
        [("_count", "100000")],
        [("_sort", "name")],
        [("patient:identifier", "system|")],
    ],
)
def test_bad_parameters_are_rejected_by_name(items: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_appointment_query(items)
    assert items[0][0].split(":")[0] in str(err.value) or items[0][0] in str(err.value)


def test_a_full_query_parses() -> None:
    q = parse_appointment_query(
        [
            ("patient:identifier", "http://electronichealth.se/identifier/personnummer|19121212-1212"),
            ("date", "ge2026-12-01"),
            ("date", "lt2026-12-08"),
            ("status", "booked,cancelled"),
            ("_count", "10"),
            ("_sort", "-date"),
            ("_format", "json"),
        ]
    )
    assert q.patients == [("http://electronichealth.se/identifier/personnummer", "191212121212")]
    assert len(q.dates) == 2 and q.statuses == ["booked", "cancelled"]
    assert q.count == 10 and q.sort == [("date", True)]


def test_repeated_parameters_are_and_and_commas_are_or() -> None:
    q = parse_appointment_query(
        [
            ("status", "booked,cancelled,noshow"),
            ("status", "noshow,booked"),
            ("patient:identifier", "191212121212"),
            ("patient:identifier", "|201605152386"),
            ("identifier", "T1"),
            ("identifier", "TAKECARE|T2"),
        ]
    )
    assert q.statuses == ["booked", "noshow"]
    assert q.patients == [(None, "191212121212"), ("", "201605152386")]  # "" is no system
    assert q.identifiers == [(None, "T1"), ("TAKECARE", "T2")]
    assert parse_appointment_query([("status", "booked"), ("status", "cancelled")]).statuses == []
    assert parse_appointment_query([]).statuses is None
