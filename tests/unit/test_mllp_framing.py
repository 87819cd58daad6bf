"""The MLLP frame reader on its own: what it makes of broken framing (docs/hl7-profile.md 1.3)."""

from __future__ import annotations

import pytest

from gateway.journal_adapter.mllp import FrameReader, FrameTooLarge

S, E = b"\x0b", b"\x1c\x0d"


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    stream = S + b"one" + E + b"junk" + S + b"two" + E
    for cut in range(1, len(stream)):
        reader = FrameReader(100)
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == [b"one", b"two"], cut
        assert not reader.in_frame


def test_bytes_outside_frames_and_ends_without_starts_are_dropped() -> None:
    reader = FrameReader(100)
    assert reader.feed(E + b"noise" + E + E) == []
    assert not reader.in_frame
    assert reader.feed(b"x" * 1000) == []  # garbage is never held, whatever its length
    assert reader.feed(S + b"msg" + E) == [b"msg"]


def test_a_start_inside_a_frame_drops_the_unfinished_frame() -> None:
    reader = FrameReader(100)
    assert reader.feed(S + b"cut off" + S + b"whole" + E) == [b"whole"]
    assert reader.feed(S + b"cut off") == []
    assert reader.in_frame
    assert reader.feed(S + b"next" + E) == [b"next"]


def test_a_frame_over_the_limit_is_refused_whole_or_in_parts_and_a_restart_is_not() -> None:
    with pytest.raises(FrameTooLarge):
        FrameReader(10).feed(S + b"x" * 11 + E)
    reader = FrameReader(10)
    reader.feed(S + b"x" * 10)
    with pytest.raises(FrameTooLarge):
        reader.feed(b"xyz")
    restarted = FrameReader(10)
    assert restarted.feed(S + b"x" * 9 + S + b"y" * 5) == []  # 16 bytes, but the frame is 5
    assert restarted.feed(E) == [b"y" * 5]
    assert FrameReader(10).feed(S + b"x" * 10 + E) == [b"x" * 10]
