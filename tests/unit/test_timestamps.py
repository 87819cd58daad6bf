"""HL7 DTM values: parsed once per distinct value, and an error always names where it was."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.errors import Location, MalformedMessage
from gateway.journal_adapter.timestamps import STOCKHOLM, parse_dtm


def test_a_recurring_time_reads_the_same_each_time() -> None:
    first = parse_dtm("202701040930", Location("TQ1", 7))
    again = parse_dtm("202701040930", Location("AIS", 4))
    assert first == again == datetime(2027, 1, 4, 9, 30, tzinfo=STOCKHOLM)
    assert parse_dtm("202701040930+0000", Location("TQ1", 7)).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("where", [Location("TQ1", 7), Location("SCH", 11, 4), Location("TQ1", 7)])
def test_a_bad_time_names_the_place_it_was_read_from_every_time(where: Location) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_dtm("20270231", where)
    assert caught.value.location == where
    with pytest.raises(MalformedMessage) as caught:
        parse_dtm("202702310900", where)  # a 31st of February: not a real date
    assert caught.value.location == where
