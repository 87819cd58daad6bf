"""One builder for SIU messages in the profile's shape (``docs/hl7-profile.md``).

The simulated journal (``mocks/journal/simulator.py``) writes its traffic with it, and the
refresh from the journal (R-BK-4, ``gateway/service/refresh.py``) writes what the journal's booking
service answered as the same kind of message, so both go through the one intake pipeline.
Text is written by hand rather than with hl7apy: it is fast, and ``er7.escape`` covers what
free text needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.domain.booking import Resource
from gateway.journal_adapter.er7 import escape
from gateway.journal_adapter.timestamps import STOCKHOLM

#: MSH-18 value -> the codec the message bytes are written in.
CODECS = {"8859/1": "latin-1", "UNICODE UTF-8": "utf-8", "": "utf-8"}


@dataclass(frozen=True, slots=True)
class Practitioner:
    """AIG/AIP: a practitioner by HSA-id; a name the journal gives whole goes in ``family``."""

    hsa_id: str
    family: str = ""
    given: str = ""


@dataclass(frozen=True, slots=True)
class SiuBooking:
    """What one SIU message says about a booking: its full current state."""

    booking_id: str
    namespace: str  # SCH-2.2, the journal's booking-id namespace
    patient_id: str
    patient_oid: str
    start: datetime
    minutes: int
    time_type: str | None
    time_type_name: str | None
    reason: str | None
    unit: Resource | None = None
    practitioner: Practitioner | None = None
    family: str = ""
    given: str = ""
    #: SCH-6 event reason (text), e.g. why a refresh cancels a booking (R-BK-4).
    event_reason: str | None = None


def build_siu(
    trigger: str,
    booking: SiuBooking,
    *,
    control_id: str,
    now: datetime,
    sending: tuple[str, str] = ("TAKECARE", "SLL"),
    receiving: tuple[str, str] = ("GATEWAY", "REGION"),
    version: str = "2.5.1",
    charset: str = "8859/1",
    filler_status: str = "Booked",
) -> bytes:
    """An SIU^``trigger`` message as bytes in ``charset``; times are written in Swedish local time."""
    e = escape
    ts = booking.start.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S")
    stamp = now.astimezone(STOCKHOLM) if now.tzinfo is not None else now
    structure = "^SIU_S12" if version >= "2.4" else ""  # every SIU trigger uses SIU_S12
    msh = (
        f"MSH|^~\\&|{e(sending[0])}|{e(sending[1])}|{e(receiving[0])}|{e(receiving[1])}|"
        f"{stamp:%Y%m%d%H%M%S}||SIU^{trigger}{structure}|{control_id}|P|{version}"
        + ("|||||" + charset if charset else "")
    )
    time_type = _coded(booking.time_type, booking.time_type_name)
    reason = f"^{e(booking.reason)}" if booking.reason else ""
    event_reason = f"^{e(booking.event_reason)}" if booking.event_reason else ""
    sch11 = f"^^{booking.minutes}^{ts}" if version == "2.3" else ""
    segments = [
        msh,
        f"SCH||{e(booking.booking_id)}^{e(booking.namespace)}||||{event_reason}"
        f"|{reason}|{time_type}|{booking.minutes}|MIN|{sch11}||||||||||||||{e(filler_status)}",
    ]
    if version != "2.3":
        segments.append(f"TQ1|1||||||{ts}")
    pid = f"PID|1||{e(booking.patient_id)}^^^&{booking.patient_oid}&ISO"
    if booking.family or booking.given:
        pid += f"||{e(booking.family)}^{e(booking.given)}"
    segments.append(pid)
    segments.append("RGS|1")
    segments.append(f"AIS|1||{time_type}|{ts}|||{booking.minutes}|MIN")
    pr = booking.practitioner
    if pr is not None:
        display = " ".join(e(part) for part in (pr.given, pr.family) if part)
        segments.append(f"AIG|1||{e(pr.hsa_id)}^{display}")
    if booking.unit is not None:
        segments.append(f"AIL|1||{e(booking.unit.hsa_id or '')}^^^^^^^^{e(booking.unit.name or '')}")
    if pr is not None:
        segments.append(f"AIP|1||{e(pr.hsa_id)}^{e(pr.family)}^{e(pr.given)}".rstrip("^"))
    text = "\r".join(segments) + "\r"
    return text.encode(CODECS[charset])


def _coded(code: str | None, text: str | None) -> str:
    if not code:
        return ""
    return f"{escape(code)}^{escape(text)}" if text else escape(code)
