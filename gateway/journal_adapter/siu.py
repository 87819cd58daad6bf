"""SIU scheduling messages (the profile in ``docs/hl7-profile.md``) to domain BookingEvents.

Every problem raises a MalformedMessage naming the segment and field, so the journal gets an
AE with an ERR segment it can act on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.domain.booking import BookingEvent, Resource
from gateway.domain.identity import IdKind, PersonId, parse_reservnummer, parse_swedish_id
from gateway.errors import InvalidIdentifier, Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter.er7 import Message, Segment, component_of
from gateway.journal_adapter.header import (
    PROCESSING_ID,
    SUPPORTED_VERSIONS,
    Header,
    check_header,
    read_header,
)
from gateway.journal_adapter.header import SIU_TRIGGERS as TRIGGERS
from gateway.journal_adapter.timestamps import parse_dtm
from gateway.mappings import Mappings

# The MSH is read and checked in header.py (it covers MDM too); these stay importable from here.
__all__ = [
    "PROCESSING_ID",
    "SUPPORTED_VERSIONS",
    "TRIGGERS",
    "Header",
    "check_header",
    "read_header",
    "read_patient",
    "to_booking_event",
]


def _require(segment: Segment | None, name: str) -> Segment:
    if segment is None:
        raise MalformedMessage(f"segment {name} is missing", Location(name), code="100")
    return segment


def read_patient(pid: Segment, mappings: Mappings) -> PersonId:
    """PID-3: the first repetition whose assigning authority OID (CX-4.2) we know."""
    reps = pid.repetitions(3)
    if not reps:
        raise MalformedMessage("PID-3 patient identifier is missing", Location("PID", 3), code="101")
    d = pid.delimiters
    seen: list[str] = []
    for rep in reps:
        value = component_of(rep, d, 1)
        oid = component_of(rep, d, 4, 2) or component_of(rep, d, 4, 1)
        mapping = mappings.persons_by_oid.get(oid)
        if mapping is None:
            seen.append(oid or "(none)")
            continue
        where = Location("PID", 3, 1)
        try:
            if mapping.kind is IdKind.RESERVNUMMER:
                return parse_reservnummer(value, oid, mappings.reservnummer_patterns[oid])
            return parse_swedish_id(value, mapping.kind, oid)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(exc.message, where) from exc
    raise MalformedMessage(
        f"PID-3 has no identifier with a known assigning authority OID in CX-4.2 (got {', '.join(seen)})",
        Location("PID", 3, 4),
        code="103",
    )


def _duration(value: str, units: str, where: Location) -> timedelta:
    try:
        amount = int(value)
    except ValueError as exc:
        raise MalformedMessage(f"duration {value!r} is not a whole number", where, code="102") from exc
    unit = (units or "MIN").upper()
    factor = {"MIN": 60, "M": 60, "S": 1, "SEC": 1, "H": 3600, "HR": 3600, "HOUR": 3600}.get(unit)
    if factor is None or amount <= 0:
        raise MalformedMessage(f"duration {value} {unit} is not a positive time", where, code="102")
    return timedelta(seconds=amount * factor)


def _resources(
    segments: list[Segment], field: int, *, xcn: bool = False, pl: bool = False
) -> tuple[Resource, ...]:
    out: list[Resource] = []
    for seg in segments:
        hsa = seg.get(field, 1) or None
        if xcn:  # AIP-3 XCN: id^family^given
            name = " ".join(p for p in (seg.get(field, 3), seg.get(field, 2)) if p) or None
        elif pl:  # AIL-3 PL: unit HSA-id in .1, name in .9 (location description)
            name = seg.get(field, 9) or None
        else:  # AIG-3 CE: id^text
            name = seg.get(field, 2) or None
        if hsa or name:
            out.append(Resource(hsa, name))
    return tuple(out)


#: Where each value is, for its error (made once, not for every message).
_AT_AIS_4 = Location("AIS", 4)
_AT_AIS_7 = Location("AIS", 7)
_AT_SCH_11_4 = Location("SCH", 11, 4)
_AT_SCH_11_5 = Location("SCH", 11, 5)
_AT_SCH_2 = Location("SCH", 2)
_AT_SCH_9 = Location("SCH", 9)
_AT_TQ1_7 = Location("TQ1", 7)
_AT_TQ1_8 = Location("TQ1", 8)


def to_booking_event(msg: Message, header: Header, mappings: Mappings) -> BookingEvent:
    """Translate a checked SIU message to a BookingEvent, or raise naming what is wrong."""
    if header.message_type != "SIU" or header.trigger not in TRIGGERS:
        # check_header lets MDM through too; a caller that has not moved to inbound.translate
        # gets an error here rather than a KeyError further down.
        raise UnsupportedMessage(
            f"{header.message_type}^{header.trigger} is not an SIU booking message",
            Location("MSH", 9),
            code="200",
        )
    sch = _require(msg.first("SCH"), "SCH")
    pid = _require(msg.first("PID"), "PID")

    booking_id = sch.get(2, 1)
    if not booking_id:
        raise MalformedMessage(
            "SCH-2 filler appointment id (the booking id) is missing", _AT_SCH_2, code="101"
        )
    namespace = sch.get(2, 3) or sch.get(2, 2) or header.sending_application
    patient = read_patient(pid, mappings)

    # Start: TQ1-7 (v2.5), else SCH-11.4 (v2.3 TQ), else AIS-4.
    tq1 = msg.first("TQ1")
    ais = msg.first("AIS")
    start: datetime | None = None
    end: datetime | None = None
    if tq1 is not None and tq1.get(7):
        start = parse_dtm(tq1.get(7), _AT_TQ1_7)
        if tq1.get(8):
            end = parse_dtm(tq1.get(8), _AT_TQ1_8)
    elif sch.get(11, 4, 1):
        # SCH-11 is a TQ: its start/end are TS components, so a v2.3 degree of precision
        # (TS.2) arrives as a subcomponent ("200612010900&M"); the time is subcomponent 1.
        start = parse_dtm(sch.get(11, 4, 1), _AT_SCH_11_4)
        if sch.get(11, 5, 1):
            end = parse_dtm(sch.get(11, 5, 1), _AT_SCH_11_5)
    elif ais is not None and ais.get(4):
        start = parse_dtm(ais.get(4), _AT_AIS_4)
    if start is None:
        raise MalformedMessage(
            "appointment start is missing (TQ1-7, SCH-11.4 or AIS-4)", _AT_SCH_11_4, code="101"
        )
    if end is None:
        if sch.get(9):
            end = start + _duration(sch.get(9), sch.get(10, 1), _AT_SCH_9)
        elif ais is not None and ais.get(7):
            end = start + _duration(ais.get(7), ais.get(8, 1), _AT_AIS_7)
        else:
            raise MalformedMessage(
                "appointment duration is missing (SCH-9/SCH-10, AIS-7/AIS-8 or an end time)",
                _AT_SCH_9,
                code="101",
            )
    if end <= start:
        raise MalformedMessage("appointment ends before it starts", _AT_SCH_9, code="102")

    reason = sch.get(7, 2) or sch.get(7, 1) or None
    time_type = sch.get(8, 1) or None
    trigger_map = mappings.statuses.triggers[header.trigger]
    return BookingEvent(
        action=TRIGGERS[header.trigger],
        namespace=namespace,
        booking_id=booking_id,
        patient=patient,
        status=mappings.status_for(header.trigger, sch.get(25, 1) or None),
        start=start,
        end=end,
        reason=reason,
        time_type=time_type,
        time_type_display=sch.get(8, 2) or None,
        # SCH-6 event reason, when the sender says why (a refresh's cancellation does), else the table's.
        cancelation_reason=sch.get(6, 2) or trigger_map.cancelation_reason,
        practitioners=_resources(msg.all("AIG"), 3),
        locations=_resources(msg.all("AIL"), 3, pl=True),
        personnel=_resources(msg.all("AIP"), 3, xcn=True),
    )
