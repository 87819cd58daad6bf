"""TakeCare XChange write operations: the inner ``ProfdocHISMessage`` documents, as pure functions.

``GetTimeTypes``, ``GetAvailableDates``, ``GetAvailableTimeslots``, ``MakeBooking``,
``RescheduleBooking`` and ``CancelBooking`` travel
like ``GetBookings`` (FACTS.md): the SOAP element's ``xml`` string carries an escaped request
``ProfdocHISMessage`` (``MsgType="Request"``, ``Time``, ``InvokingSystem``, ``CareUnitIdType``,
``CareUnitId``) and ``<Operation>Result`` holds a ``Response`` or an ``Error`` document. The
published facts name the operations but not their inner children; the children used here
(``docs/self-service.md``, "Inner documents") follow the ``GetBookings`` vocabulary: times as
``yyyyMMddHHmm`` Swedish local time, ``TimeTypeId`` numbers, ``BookingId``, ``PatientId`` digits.
A booking a write answers is read with the ``GetBookings`` reader, so one set of checks applies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs in the project

from gateway.domain.booking import JournalBooking
from gateway.domain.identity import PersonId
from gateway.journal_adapter.takecare_booking import (
    ROOT,
    AnswerError,
    _child_text,
    _error_answer,
    _local,
    local_stamp,
    parse_document,
    parse_local_time,
    read_answer,
)


@dataclass(frozen=True, slots=True)
class FreeTimeslot:
    """A free time in the journal's calendar (``GetAvailableTimeslots``)."""

    unit: str
    start: datetime
    end: datetime
    time_type_id: str
    #: The mapped time-type code; ``None``: the id is unknown, so hidden (R-BK-1).
    time_type: str | None
    time_type_name: str | None
    resource_id: str | None
    resource_name: str | None


@dataclass(frozen=True, slots=True)
class TimeType:
    """A time type of the journal at a unit (``GetTimeTypes``)."""

    time_type_id: str
    #: The mapped time-type code; ``None``: the id is unknown, so hidden (R-BK-1).
    time_type: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class AvailableDate:
    """A day with at least one free time of a time type (``GetAvailableDates``)."""

    unit: str
    day: date
    time_type_id: str
    time_type: str | None
    time_type_name: str | None


def _request(now: datetime, invoking_system: str, unit_type: str, unit: str) -> etree._Element:
    root = etree.Element(ROOT)
    root.set("MsgType", "Request")
    root.set("Time", local_stamp(now, seconds=True))
    root.set("InvokingSystem", invoking_system)
    etree.SubElement(root, "CareUnitIdType").text = unit_type
    etree.SubElement(root, "CareUnitId").text = unit
    return root


def _add(root: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(root, name).text = value


def _text(root: etree._Element) -> str:
    return str(etree.tostring(root, encoding="unicode"))


def timeslots_request(
    *,
    unit_type: str,
    unit: str,
    time_type_id: str,
    first: date,
    last: date,
    invoking_system: str,
    now: datetime,
) -> str:
    root = _request(now, invoking_system, unit_type, unit)
    _add(root, "TimeTypeId", time_type_id)
    _add(root, "StartDate", first.strftime("%Y%m%d"))
    _add(root, "EndDate", last.strftime("%Y%m%d"))
    return _text(root)


def time_types_request(*, unit_type: str, unit: str, invoking_system: str, now: datetime) -> str:
    return _text(_request(now, invoking_system, unit_type, unit))


def available_dates_request(
    *,
    unit_type: str,
    unit: str,
    time_type_id: str,
    first: date,
    last: date,
    invoking_system: str,
    now: datetime,
) -> str:
    """Same children as ``GetAvailableTimeslots``: a time type and a range of days."""
    return timeslots_request(
        unit_type=unit_type,
        unit=unit,
        time_type_id=time_type_id,
        first=first,
        last=last,
        invoking_system=invoking_system,
        now=now,
    )


def _checked(text: str, transient_codes: Collection[str], what: str) -> etree._Element:
    doc = parse_document(text)
    errors = [el for el in doc if _local(el) == "Error"]
    if (doc.get("MsgType") or "").strip().lower() == "error" or errors:
        raise _error_answer(errors, transient_codes, what)
    return doc


def _type_id(item: etree._Element, what: str) -> str:
    raw = (_child_text(item, "TimeTypeId") or "").strip()
    if not raw.isdigit():
        raise ValueError(f"a {what}'s TimeTypeId is not a number")
    return str(int(raw))


def read_time_types(
    text: str,
    time_type_ids: Mapping[str, str],
    *,
    transient_codes: Collection[str] = (),
    what: str = "journal-ws: GetTimeTypes",
) -> tuple[TimeType, ...]:
    """``TimeTypes`` with ``TimeType`` (``TimeTypeId``, ``TimeTypeName``)."""
    doc = _checked(text, transient_codes, what)
    found: list[TimeType] = []
    try:
        for container in (el for el in doc if _local(el) == "TimeTypes"):
            for item in (el for el in container if _local(el) == "TimeType"):
                tt_id = _type_id(item, "time type")
                name = (_child_text(item, "TimeTypeName") or "").strip() or None
                found.append(TimeType(tt_id, time_type_ids.get(tt_id), name))
    except ValueError as exc:
        raise AnswerError(f"{what}: a time type breaks the contract ({exc})") from exc
    return tuple(found)


def read_available_dates(
    text: str,
    time_type_ids: Mapping[str, str],
    *,
    transient_codes: Collection[str] = (),
    what: str = "journal-ws: GetAvailableDates",
) -> tuple[AvailableDate, ...]:
    """``AvailableDates`` (``CareUnitId``) with ``AvailableDate`` (``Date`` as ``yyyyMMdd``,
    ``TimeTypeId``, ``TimeTypeName``)."""
    doc = _checked(text, transient_codes, what)
    found: list[AvailableDate] = []
    try:
        for container in (el for el in doc if _local(el) == "AvailableDates"):
            unit = (container.get("CareUnitId") or "").strip()
            for item in (el for el in container if _local(el) == "AvailableDate"):
                day = datetime.strptime((_child_text(item, "Date") or "").strip(), "%Y%m%d").date()
                tt_id = _type_id(item, "date")
                name = (_child_text(item, "TimeTypeName") or "").strip() or None
                found.append(AvailableDate(unit, day, tt_id, time_type_ids.get(tt_id), name))
    except ValueError as exc:
        raise AnswerError(f"{what}: a date breaks the contract ({exc})") from exc
    return tuple(found)


def make_booking_request(
    *,
    unit_type: str,
    unit: str,
    patient_id: str,
    start: datetime,
    end: datetime,
    time_type_id: str,
    resource_id: str | None,
    reason: str | None,
    invoking_system: str,
    now: datetime,
) -> str:
    root = _request(now, invoking_system, unit_type, unit)
    _add(root, "PatientId", patient_id)
    _add(root, "StartTime", local_stamp(start, seconds=False))
    _add(root, "EndTime", local_stamp(end, seconds=False))
    _add(root, "TimeTypeId", time_type_id)
    _add(root, "ResourceId", resource_id)
    _add(root, "PatientReason", reason)
    return _text(root)


def reschedule_request(
    *,
    unit_type: str,
    unit: str,
    patient_id: str,
    booking_id: str,
    start: datetime,
    end: datetime,
    invoking_system: str,
    now: datetime,
) -> str:
    root = _request(now, invoking_system, unit_type, unit)
    _add(root, "PatientId", patient_id)
    _add(root, "BookingId", booking_id)
    _add(root, "StartTime", local_stamp(start, seconds=False))
    _add(root, "EndTime", local_stamp(end, seconds=False))
    return _text(root)


def cancel_request(
    *,
    unit_type: str,
    unit: str,
    patient_id: str,
    booking_id: str,
    reason: str | None,
    invoking_system: str,
    now: datetime,
) -> str:
    root = _request(now, invoking_system, unit_type, unit)
    _add(root, "PatientId", patient_id)
    _add(root, "BookingId", booking_id)
    _add(root, "CancelReason", reason)
    return _text(root)


def read_timeslots(
    text: str,
    time_type_ids: Mapping[str, str],
    *,
    transient_codes: Collection[str] = (),
    what: str = "journal-ws: GetAvailableTimeslots",
) -> tuple[FreeTimeslot, ...]:
    doc = _checked(text, transient_codes, what)
    slots: list[FreeTimeslot] = []
    try:
        for container in (el for el in doc if _local(el) == "Timeslots"):
            unit = (container.get("CareUnitId") or "").strip()
            for item in (el for el in container if _local(el) == "Timeslot"):
                tt_id = _type_id(item, "timeslot")
                start = parse_local_time(_child_text(item, "StartTime") or "")
                end = parse_local_time(_child_text(item, "EndTime") or "")
                if end <= start:
                    raise ValueError("a timeslot ends before it starts")
                slots.append(
                    FreeTimeslot(
                        unit=unit,
                        start=start,
                        end=end,
                        time_type_id=tt_id,
                        time_type=time_type_ids.get(tt_id),
                        time_type_name=(_child_text(item, "TimeTypeName") or "").strip() or None,
                        resource_id=(_child_text(item, "ResourceId") or "").strip() or None,
                        resource_name=(_child_text(item, "ResourceName") or "").strip() or None,
                    )
                )
    except ValueError as exc:
        raise AnswerError(f"{what}: a timeslot breaks the contract ({exc})") from exc
    return tuple(slots)


def read_booking_answer(
    text: str,
    patient: PersonId,
    time_type_ids: Mapping[str, str],
    *,
    transient_codes: Collection[str] = (),
    what: str,
) -> JournalBooking | None:
    """The booking a ``MakeBooking``/``RescheduleBooking`` answer holds (``None``: none, as after
    ``CancelBooking``); error documents and contract breaches raise as for ``GetBookings``."""
    answer = read_answer(text, patient, time_type_ids, transient_codes=transient_codes, what=what)
    if len(answer.bookings) > 1:
        raise AnswerError(f"{what}: the answer holds {len(answer.bookings)} bookings, not one")
    return answer.bookings[0] if answer.bookings else None
