"""The Appointment the worker stores is valid FHIR: proved over the mapping's input space.

The worker checks each resource with :func:`gateway.fhir.appointment.check`, which asks the
full fhir.resources (R4B) model only when the strict, cheap :func:`conforms` does not vouch for
the resource (bench/README.md, finding 7). Two things must hold, and hypothesis looks for a
counterexample to each:

1. ``conforms`` is never more lenient than the model: whatever it vouches for, the model
   accepts (over the mapping's output and over resources with any part replaced by anything).
2. The mapping produces valid FHIR for every booking the reader can hand it: any trigger and
   status, every time type (and unknown ones), any characters in the journal's free text and
   names, any kind of person identifier, start times in any time zone.

So a bug in the mapping is caught here, and at run time ``check`` still refuses (the message
fails) whatever the model refuses: an invalid resource is never stored.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.appointment import Appointment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain.booking import BookingEvent, Resource
from gateway.domain.identity import PersonId
from gateway.fhir.appointment import _text as fhir_text
from gateway.fhir.appointment import build_appointment, check, conforms
from gateway.journal_adapter import er7
from gateway.journal_adapter.header import SIU_TRIGGERS, read_header
from gateway.journal_adapter.inbound import translate
from gateway.mappings import default_local_system, load
from mocks.journal.simulator import JournalSimulator
from tests.vendor_corpus import schema_errors

MAPPINGS = load()
STOCKHOLM = ZoneInfo("Europe/Stockholm")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _model_accepts(resource: dict[str, Any]) -> bool:
    try:
        Appointment.model_validate(resource)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return False
    return True


# Any text the reader can hand over: every character but lone surrogates (bytes decoded as
# UTF-8 or ISO 8859-1, and \X..\ escapes, never give those), controls and whitespace included.
_any_text = st.text(st.characters(codec="utf-8"), max_size=30)


def _has_content(text: str) -> bool:
    """Not made only of whitespace other than space, tab, CR, LF: FHIR's string needs one
    character of ``[ \\r\\n\\t\\S]``, so a name that is only a form feed or a no-break space
    is refused (test_blank_text_fhir_cannot_carry_is_refused)."""
    return not text.isspace() or set(text) <= set(" \t\r\n")


_text = _any_text.filter(_has_content)
_plain = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
_either = st.one_of(_text, _plain)
_optional = st.one_of(st.none(), _either)
_local_system = st.builds(default_local_system, _either, _either)


@st.composite
def _resource(draw: st.DrawFn) -> Resource:
    """A resource as the SIU reader makes one: an HSA-id or the sender's own id (never both), a
    name, a room (issue 17)."""
    hsa, name = draw(_optional), draw(_optional)
    local = None if hsa else draw(_optional)
    return Resource(
        hsa,
        name,
        local_id=local,
        local_system=draw(_local_system) if local else None,
        room_id=draw(_optional),
        room_name=draw(_optional),
    )


_resources = st.lists(_resource(), max_size=3).map(tuple)


@st.composite
def _patient(draw: st.DrawFn) -> PersonId:
    mapping = draw(st.sampled_from(MAPPINGS.identifiers.persons))
    value = draw(st.from_regex(r"[0-9A-Z]{6,12}", fullmatch=True))
    return PersonId(mapping.kind, value, mapping.oid)


# Offsets FHIR can state (-14:00 to +14:00, whole minutes), Stockholm's and UTC.
_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_zones = st.one_of(st.just(STOCKHOLM), st.just(UTC), _offsets)


@st.composite
def _event(draw: st.DrawFn) -> BookingEvent:
    trigger = draw(st.sampled_from(sorted(SIU_TRIGGERS)))
    filler = draw(st.one_of(st.none(), st.sampled_from(sorted(MAPPINGS.statuses.filler_status)), _text))
    start = draw(
        st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2200, 1, 1), timezones=_zones)
    )
    # The reader takes durations in seconds too; FHIR's minutesDuration is a positiveInt, so a
    # booking shorter than a minute is refused (test_sub_minute_booking_is_refused).
    length = draw(st.integers(min_value=60, max_value=60 * 24 * 60))
    time_types = sorted(MAPPINGS.time_types.time_types)
    return BookingEvent(
        action=SIU_TRIGGERS[trigger],
        namespace=draw(_either.filter(bool)),
        booking_id=draw(_either.filter(bool)),
        patient=draw(_patient()),
        status=MAPPINGS.status_for(trigger, filler),
        start=start,
        end=start + timedelta(seconds=length),
        reason=draw(_optional),
        time_type=draw(st.one_of(st.none(), st.sampled_from(time_types), _text)),
        time_type_display=draw(_optional),
        cancelation_reason=MAPPINGS.statuses.triggers[trigger].cancelation_reason,
        practitioners=draw(_resources),
        locations=draw(_resources),
        personnel=draw(_resources),
        devices=draw(_resources),
        patient_instruction=draw(_optional),
    )


@PROPERTY
@given(_event())
def test_the_mapping_produces_valid_fhir_for_any_booking(event: BookingEvent) -> None:
    resource = build_appointment(event, MAPPINGS)
    assert _model_accepts(resource), resource
    assert schema_errors(resource) == [], resource  # the official FHIR R4 JSON schema too
    check(resource)  # and the worker's check lets it through
    if conforms(resource):
        assert _model_accepts(resource)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths to every value in a JSON tree (containers included)."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _leaves(v, (*path, i))
    return out


def _replace(tree: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    if len(path) == 1:
        tree[path[0]] = new  # also adds an element that was not there
        return tree
    tree[path[0]] = _replace(tree[path[0]], path[1:], new)
    return tree


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40), _text, _plain,
    st.sampled_from(["booked", "cancelled", "noshow", "accepted", "required", "Patient", "x y", "",
                     "2027-01-04T09:00:00+01:00", "2027-02-30T09:00:00+01:00", "2027-01-04T09:00:00",
                     "2027-01-04T09:00:00Z", "2027-01-04T24:00:00Z", "2016-12-31T23:59:60Z"]),
)  # fmt: skip
_json = st.recursive(
    _json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["system", "code", "text", "x"]), inner)
    ),
    max_leaves=6,
)


@PROPERTY
@given(_event(), st.data())
def test_conforms_never_vouches_for_what_the_model_refuses(event: BookingEvent, data: st.DataObject) -> None:
    resource = build_appointment(event, MAPPINGS)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _leaves(resource)
        path = data.draw(st.sampled_from(paths[1:]))
        if data.draw(st.booleans()) and isinstance(path[-1], str):
            parent = resource
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]  # a required element dropped, or an optional one
        else:
            resource = _replace(copy.deepcopy(resource), path, data.draw(_json))
    if conforms(resource):
        assert _model_accepts(resource), resource
    else:  # the worker's check then decides as the model does
        if _model_accepts(resource):
            check(resource)
        else:
            with pytest.raises(ValueError):
                check(resource)


def _simulated() -> list[dict[str, Any]]:
    sim = JournalSimulator(seed=7, run_id="C")
    out = []
    for message in sim.day(date(2027, 1, 4), bookings=60):
        text, _ = er7.decode(message.data)
        msg = er7.parse(text)
        event = translate(msg, read_header(msg), MAPPINGS)
        assert isinstance(event, BookingEvent)
        out.append(build_appointment(event, MAPPINGS))
    return out


def test_conforms_vouches_for_the_journal_traffic() -> None:
    """The cheap check covers what journals send (else every message pays for the model)."""
    resources = _simulated()
    assert resources and all(conforms(r) for r in resources)


def _base() -> dict[str, Any]:
    return _simulated()[0]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("description",), ""),
        (("description",), " leading space"),
        (("description",), "bell\x07"),
        (("start",), "2027-01-04T09:00:00"),  # no time zone
        (("start",), "2027-02-30T09:00:00+01:00"),
        (("end",), "2027-01-04T09:00:00+14:30"),
        (("minutesDuration",), 0),
        (("minutesDuration",), True),
        (("minutesDuration",), "30"),
        (("status",), "maybe"),
        (("id",), "has space"),
        (("id",), "x" * 65),
        (("participant",), []),
        (("participant", 0, "status"), "happy"),
        (("participant", 0, "required"), "sometimes"),
        (("participant", 0, "actor", "identifier", "system"), "not a uri"),
        (("identifier", 0), {}),
        (("unknownElement",), "x"),
    ],
)
def test_conforms_refuses_what_it_cannot_vouch_for(path: tuple[Any, ...], value: Any) -> None:
    resource = _replace(_base(), path, value)
    assert not conforms(resource)


@pytest.mark.parametrize("drop", ["status", "participant", "start", "end", "resourceType", "id"])
def test_conforms_needs_the_required_elements(drop: str) -> None:
    resource = _base()
    del resource[drop]
    assert not conforms(resource)


def test_a_participant_needs_its_status() -> None:
    resource = _base()
    del resource["participant"][0]["status"]
    assert not conforms(resource)
    with pytest.raises(ValueError):
        check(resource)  # and the model refuses it too: never stored


@pytest.mark.parametrize("blank", ["\x0c", "\xa0", "\u2003\x0b"])
def test_blank_text_fhir_cannot_carry_is_refused(blank: str) -> None:
    """Free text made only of whitespace FHIR's string does not count (a form feed, a no-break
    space) is not a valid FHIR string: the check refuses the resource, nothing is stored."""
    resource = _base()
    resource["description"] = blank
    assert not conforms(resource)
    with pytest.raises(ValueError):
        check(resource)


def test_sub_minute_booking_is_refused() -> None:
    """A booking shorter than a minute (SCH-9 in seconds) maps to minutesDuration 0, which is
    not a FHIR positiveInt: the worker's check refuses it, so the message fails, nothing stored."""
    start = datetime(2027, 1, 4, 9, 0, tzinfo=STOCKHOLM)
    event = BookingEvent(
        action=SIU_TRIGGERS["S12"],
        namespace="TAKECARE",
        booking_id="B1",
        patient=PersonId(
            MAPPINGS.identifiers.persons[0].kind, "191212121212", MAPPINGS.identifiers.persons[0].oid
        ),
        status="booked",
        start=start,
        end=start + timedelta(seconds=30),
        reason=None,
        time_type=None,
        time_type_display=None,
    )
    with pytest.raises(ValueError):
        check(build_appointment(event, MAPPINGS))


def test_verdicts_are_remembered_by_the_exact_json_and_anything_else_goes_to_the_check() -> None:
    from gateway.fhir.appointment import _Verdicts

    asked: list[Any] = []

    def judge(value: Any) -> bool:
        asked.append(value)
        return type(value.get("at")) is str

    verdicts = _Verdicts(judge, limit=2)
    plain = {"at": "2027-01-04T09:00:00+01:00"}
    assert verdicts(plain) and verdicts(dict(plain)) and len(asked) == 1  # equal JSON: asked once
    # A datetime would be written as the same JSON, but is not plain JSON: the check decides.
    moment = {"at": datetime(2027, 1, 4, 8, tzinfo=UTC)}
    assert not verdicts(moment) and not verdicts(moment) and len(asked) == 3
    # Another order of the keys is other JSON: asked again. Full: forgotten, asked again.
    for value in ({"at": "x", "b": 1}, {"b": 1, "at": "x"}, plain):
        assert verdicts(value)
    assert len(asked) == 6


def test_a_byte_order_mark_is_whitespace_to_the_fhir_schema_and_becomes_a_space() -> None:
    """Found by the property above: U+FEFF is not whitespace to Python but is to the schema's
    ECMAScript pattern, so a text of only a BOM is no text, and one inside a text is a space."""
    assert fhir_text("\ufeff") is None
    assert fhir_text("Ta med\ufefflegitimation") == "Ta med legitimation"
