"""HL7 v2 acknowledgements: the one place that turns outcomes and InboundErrors into ACKs.

Built from a template, not with hl7apy (5 ms an ACK there); ``tests/unit/test_hl7_reference.py`` parses
and validates every kind with hl7apy.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from typing import Literal

from gateway.errors import InboundError
from gateway.journal_adapter.er7 import DEFAULT_DELIMITERS, escape
from gateway.journal_adapter.header import Header, version_taken
from gateway.journal_adapter.timestamps import format_dtm

#: Original mode (and application ACKs in enhanced mode): AA, AE, AR. Enhanced mode's commit
#: (accept) ACK: CA stored, CE not stored (send again), CR not taken (HL7 table 0008).
AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]

_counter = itertools.count(1)
_PREFIX = f"{os.getpid() % 100000:05d}"

#: (the second, MSH-7 for it, the control id's time part): the time zone conversion and the two
#: strftime calls are most of an ACK's cost, and every ACK within one second shares them.
_stamps: tuple[datetime, str, str] | None = None


def _times(now: datetime) -> tuple[str, str]:
    global _stamps
    second = now.replace(microsecond=0)
    cached = _stamps
    if cached is None or cached[0] != second or cached[0].tzinfo is not second.tzinfo:
        cached = _stamps = (second, format_dtm(second), f"{second:%Y%m%d%H%M%S}")
    return cached[1], cached[2]


def _version_or_default(header: Header | None) -> str:
    if header is not None and version_taken(header.version):
        return header.version
    return "2.5.1"


def build_ack(
    code: AckCode,
    header: Header | None,
    now: datetime,
    *,
    sender: tuple[str, str],
    error: InboundError | None = None,
    ask_commit: bool = False,
) -> str:
    """An ACK for ``header`` (which may be None when the MSH itself was unreadable).

    ``ask_commit``: an enhanced-mode application ACK, which asks the sender for a commit ACK
    (MSH-15 ``AL``) and no application ACK of its own (MSH-16 ``NE``), so its delivery is known."""
    e = escape
    d = DEFAULT_DELIMITERS
    version = _version_or_default(header)
    trigger = header.trigger if header is not None else ""
    control_id = header.control_id if header is not None else ""
    timestamp, control_time = _times(now)
    msh = [
        "MSH",
        d.encoding_characters,
        e(sender[0]),
        e(sender[1]),
        (header.sending_application_whole or e(header.sending_application)) if header else "",
        (header.sending_facility_whole or e(header.sending_facility)) if header else "",
        timestamp,
        "",
        f"ACK^{e(trigger)}^ACK" if trigger else "ACK",
        f"GW{control_time}{_PREFIX}{next(_counter) % 1000000:06d}",
        e(header.processing_id) if header else "P",
        version,
    ]
    charset = e(header.charset) if header is not None and header.charset else ""
    if ask_commit:
        msh += ["", "", "AL", "NE", "", charset]
    elif charset:
        msh += ["", "", "", "", "", charset]
    msa = ["MSA", code, e(control_id)]
    segments = ["|".join(msh)]
    if error is None:
        segments.append("|".join(msa))
        return "\r".join(segments) + "\r"
    msa.append(e(error.message[:80]))
    segments.append("|".join(msa))
    segments.append(_err_segment(error, version))
    return "\r".join(segments) + "\r"


def _err_segment(error: InboundError, version: str) -> str:
    e = escape
    loc = error.location
    code = f"{error.hl7_error_code}^{e(error.hl7_error_text)}^HL70357"
    if version in ("2.3", "2.3.1", "2.4"):
        # ERR-1 ELD: segment^sequence^field^code&text&table
        seg = loc.segment if loc else ""
        seq = str(loc.sequence) if loc else ""
        fld = str(loc.field) if loc and loc.field is not None else ""
        eld = f"{seg}^{seq}^{fld}^{error.hl7_error_code}&{e(error.hl7_error_text)}&HL70357"
        return f"ERR|{eld}"
    # v2.5: ERR-2 ERL segment^sequence^field^repetition^component, ERR-3 code, ERR-4 severity,
    # ERR-8 user message.
    erl = ""
    if loc is not None:
        parts = [loc.segment, str(loc.sequence)]
        if loc.field is not None:
            parts += [str(loc.field), "1"]
            if loc.component is not None:
                parts.append(str(loc.component))
        erl = "^".join(parts)
    return "|".join(["ERR", "", erl, code, "E", "", "", "", e(error.message)])
