"""SIU scheduling messages (the profile in ``docs/hl7-profile.md``) to domain BookingEvents.

Every problem raises a MalformedMessage naming the segment and field, so the journal gets an
AE with an ERR segment it can act on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.domain.booking import BookingEvent, Resource, ResourceKind
from gateway.domain.identity import IdKind, PersonId, is_hsa_id, parse_reservnummer, parse_swedish_id
from gateway.errors import InvalidIdentifier, Location, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter.er7 import Message, Segment, component_of, unescape
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


#: HD.3 universal id types (HL7 table 0301): with one of these, HD.2 is an id, not a name.
_UNIVERSAL_ID_TYPES = frozenset({"ISO", "UUID", "DNS", "URI", "GUID", "CLIA", "CLIP", "HL7", "X400", "X500"})


def _hd_text(subs: list[str]) -> str | None:
    """A name carried in an HD-like component (``11&X-Ray Room&L``): its second part, unless
    the third says that part is a universal id (an OID, a UUID...)."""
    if len(subs) >= 2 and subs[1] and (len(subs) < 3 or subs[2].upper() not in _UNIVERSAL_ID_TYPES):
        return subs[1]
    return None


class _Ids:
    """Ids as the sender gives them: an HSA-id only when the value has the HSA-id form, any
    other id in the sender's own identifier system (mappings/senders.yaml)."""

    def __init__(self, header: Header, mappings: Mappings) -> None:
        self._system = mappings.local_system(header.sending_application, header.sending_facility)

    def resource(
        self,
        value: str,
        name: str | None,
        kind: ResourceKind,
        room_id: str | None = None,
        room_name: str | None = None,
    ) -> Resource:
        hsa = value if value and is_hsa_id(value) else None
        local = value if value and hsa is None else None
        return Resource(
            hsa,
            name,
            local_id=local,
            local_system=self._system if local else None,
            kind=kind,
            room_id=room_id,
            room_name=room_name,
        )


def _general_resources(segments: list[Segment], ids: _Ids, mappings: Mappings) -> list[Resource]:
    """AIG-3 (CE/CWE: id^text) of the kind AIG-4 (resource type) says (mappings/resource_types.yaml)."""
    out: list[Resource] = []
    for seg in segments:
        value, name = seg.get(3, 1), seg.get(3, 2) or None
        if value or name:
            kind = mappings.resource_types.kind_of(seg.get(4, 1), seg.get(4, 2))
            out.append(ids.resource(value, name, kind))
    return out


def _locations(segments: list[Segment], ids: _Ids) -> list[Resource]:
    """AIL-3 (PL): PL.1 point of care (an HD from v2.7: id&name&type), PL.2 room, PL.9 the
    description, read as the name; PL.4 facility when there is no point of care."""
    out: list[Resource] = []
    for seg in segments:
        point = seg.subcomponents(3, 1)
        value = seg.get(3, 1) or seg.get(3, 4)
        name = seg.get(3, 9) or _hd_text(point) or _hd_text(seg.subcomponents(3, 4))
        room = seg.subcomponents(3, 2)
        room_id = room[0] if room and room[0] else None
        room_name = _hd_text(room)
        if value or name or room_id or room_name:
            out.append(ids.resource(value, name, ResourceKind.LOCATION, room_id=room_id, room_name=room_name))
    return out


def _personnel(segments: list[Segment], ids: _Ids) -> list[Resource]:
    """AIP-3 (XCN): XCN.1 id, XCN.2 family name (FN.1 surname from v2.5), XCN.3 given name."""
    out: list[Resource] = []
    for seg in segments:
        value = seg.get(3, 1)
        name = " ".join(p for p in (seg.get(3, 3), seg.get(3, 2)) if p) or None
        if value or name:
            out.append(ids.resource(value, name, ResourceKind.PERSON))
    return out


#: NTE-4 comment type (HL7 table 0364) of the notes the citizen is meant to read.
PATIENT_INSTRUCTIONS = "PI"


def _patient_instruction(msg: Message) -> str | None:
    """Every NTE with NTE-4 ``PI``, NTE-3 (FT, may repeat: one line each) in message order.
    Other notes (remarks, ancillary or general instructions) are for staff and never read."""
    parts: list[str] = []
    for nte in msg.all("NTE"):
        if nte.get(4, 1).strip().upper() != PATIENT_INSTRUCTIONS:
            continue
        d = nte.delimiters
        text = "\n".join(unescape(rep, d, formatted=True) for rep in nte.repetitions(3)).strip()
        if text:
            parts.append(text)
    return "\n".join(parts) or None


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
    cancelation_reason = trigger_map.cancelation_reason
    if trigger_map.reason_from_event:  # S15, S16: the journal's own reason, SCH-6 text or code
        cancelation_reason = sch.get(6, 2) or sch.get(6, 1) or cancelation_reason
    ids = _Ids(header, mappings)
    general = _general_resources(msg.all("AIG"), ids, mappings)
    places = _locations(msg.all("AIL"), ids)
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
        cancelation_reason=cancelation_reason,
        practitioners=tuple(r for r in general if r.kind is ResourceKind.PERSON),
        devices=tuple(r for r in general if r.kind is ResourceKind.EQUIPMENT),
        locations=tuple(r for r in general if r.kind is ResourceKind.LOCATION) + tuple(places),
        personnel=tuple(_personnel(msg.all("AIP"), ids)),
        patient_instruction=_patient_instruction(msg),
    )
