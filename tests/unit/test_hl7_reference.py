"""hl7apy, the reference HL7 v2 implementation, checks the gateway's fast reader and its ACKs.

The intake hot path reads ER7 with ``gateway/journal_adapter/er7.py`` (a full hl7apy parse
costs ~8 ms a message); these tests hold that reader, the ACK builder and the simulated
journal to hl7apy on the same messages.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hl7apy.parser import parse_message

from gateway.errors import Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import build_ack
from gateway.journal_adapter.siu import read_header
from mocks.journal import JournalSimulator

DAY = JournalSimulator(seed=7).day(date(2026, 12, 1), bookings=30)


def _reference(text: str) -> object:
    return parse_message(text.replace("\n", "\r"), find_groups=False, validation_level=2)


@pytest.mark.parametrize("message", DAY, ids=lambda m: f"{m.trigger}-{m.version}-{m.charset or 'none'}")
def test_the_fast_reader_agrees_with_hl7apy_on_every_simulated_message(message: object) -> None:
    text, _ = er7.decode(message.data)  # type: ignore[attr-defined]
    ours = er7.parse(text)
    ref = _reference(text)
    msh = ref.msh  # type: ignore[attr-defined]
    assert ours.msh.get(10) == msh.msh_10.to_er7()
    assert ours.msh.get(9, 2) == msh.msh_9.msh_9_2.to_er7()
    assert ours.msh.get(12) == msh.msh_12.to_er7()
    pid = ref.pid  # type: ignore[attr-defined]
    assert ours.first("PID") is not None
    assert ours.first("PID").get(3) == pid.pid_3.pid_3_1.to_er7()  # type: ignore[union-attr]
    sch = ref.sch  # type: ignore[attr-defined]
    booking = sch.sch_2.to_er7().split("^")[0]
    assert ours.first("SCH").get(2) == er7.unescape(booking)  # type: ignore[union-attr]
    reason = sch.sch_7.to_er7().split("^")[1]
    assert ours.first("SCH").get(7, 2) == er7.unescape(reason)  # type: ignore[union-attr]


def _header() -> object:
    text, _ = er7.decode(DAY[0].data)
    return read_header(er7.parse(text))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AA", None),
        ("AE", MalformedMessage("personnummer check digit is wrong", Location("PID", 3, 1))),
        ("AR", UnsupportedMessage("ADT is not taken", Location("MSH", 9))),
    ],
)
def test_every_kind_of_ack_is_valid_hl7_with_msa_2_echoing_msh_10(
    code: str, error: MalformedMessage | UnsupportedMessage | None
) -> None:
    header = _header()
    ack = build_ack(
        code,  # type: ignore[arg-type]
        header,  # type: ignore[arg-type]
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        sender=("GATEWAY", "REGION"),
        error=error,
    )
    ref = _reference(ack)
    assert ref.msa.msa_1.to_er7() == code  # type: ignore[attr-defined]
    assert ref.msa.msa_2.to_er7() == DAY[0].control_id  # type: ignore[attr-defined]
    if error is not None:
        err = ref.err  # type: ignore[attr-defined]
        assert err.err_2.to_er7().startswith(error.location.segment)  # type: ignore[union-attr]
        assert err.err_3.to_er7().startswith(error.hl7_error_code)
