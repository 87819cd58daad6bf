"""The console's small pure helpers: local times, redirect targets, ids from a form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api.console.app import _local, _patient_number
from gateway.api.console.web import ids, local_time


def test_times_are_shown_in_swedish_local_time_summer_and_winter() -> None:
    assert local_time(datetime(2026, 12, 1, 8, 0, tzinfo=UTC)) == "2026-12-01 09:00"
    assert local_time("2026-07-01T08:00:00+00:00") == "2026-07-01 10:00"
    assert local_time(datetime(2026, 12, 1, 8, 0, 5), seconds=True) == "2026-12-01 09:00:05"  # naive is UTC
    assert local_time(None) == ""


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/console/utskriftslista?state=open", True),
        ("/console/", True),
        ("https://evil.example/", False),
        ("//evil.example/console/", False),
        ("/console//evil.example", False),
        ("/console/\\evil", False),
        ("/print-list", False),
    ],
)
def test_redirects_stay_inside_the_console(target: str, allowed: bool) -> None:
    assert _local(target, "/console/") is allowed


def test_ids_from_a_form_are_numbers_or_the_form_is_refused() -> None:
    assert ids({"id": ["3", "12"]}) == [3, 12]
    assert ids({}) == []
    for bad in ("-1", "1e3", "x", "9" * 19):
        with pytest.raises(ValueError):
            ids({"id": [bad]})


def test_a_typed_number_is_kept_as_digits_for_the_audit_trail() -> None:
    assert _patient_number(" 19121212-1212 ") == "191212121212"
