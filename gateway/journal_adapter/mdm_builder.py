"""One builder for MDM e-document messages (T02 new, T10 replacement) in the profile's shape.

For the tests, the simulated journal (``mocks/journal/simulator.py``) and the demo, as
``siu_builder.py`` is for bookings. Text is written by hand, escapes by ``er7.escape``;
``tests/unit/test_hl7_reference.py`` holds the result to hl7apy. :func:`minimal_pdf` makes a
tiny valid PDF for attachments, so no binary file needs to be kept anywhere.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.domain.booking import Resource
from gateway.domain.letter import Attachment
from gateway.journal_adapter.er7 import escape
from gateway.journal_adapter.siu_builder import CODECS, Practitioner
from gateway.journal_adapter.timestamps import STOCKHOLM

__all__ = ["CODECS", "MdmDocument", "Practitioner", "TextType", "build_mdm", "minimal_pdf"]

#: OBX-2 of the text: TX (plain lines) or FT (formatted text, ``\.br\`` for line breaks).
TextType = Literal["TX", "FT"]


@dataclass(frozen=True, slots=True)
class MdmDocument:
    """What one MDM message says about a document: the whole of it (a T10 too)."""

    document_number: str  # TXA-12.1
    namespace: str  # TXA-12.2 (and TXA-13.2): the journal's namespace, as SCH-2.2 for bookings
    document_type: str  # TXA-2: KALLELSE or BREV (a str, so tests can send anything)
    patient_id: str
    patient_oid: str
    text: str  # lines separated by "\n"
    title: str | None = None  # OBX-3.2 of the text
    booking_id: str | None = None  # TXA-13.1, for a KALLELSE
    written_at: datetime | None = None  # TXA-6 and TXA-4
    author: Practitioner | None = None  # TXA-9
    unit: Resource | None = None  # PV1-3: HSA-id in .1, name in .9
    attachments: tuple[Attachment, ...] = ()  # OBX ED, base64
    family: str = ""
    given: str = ""
    notify_direct: bool = False  # ZNT-2 "D": notify at once (R-NOT-2)


def build_mdm(
    trigger: str,
    document: MdmDocument,
    *,
    control_id: str,
    now: datetime,
    sending: tuple[str, str] = ("TAKECARE", "SLL"),
    receiving: tuple[str, str] = ("GATEWAY", "REGION"),
    version: str = "2.5.1",
    charset: str = "8859/1",
    text_type: TextType = "TX",
    obx_per_line: bool = False,
) -> bytes:
    """An MDM^``trigger`` message as bytes in ``charset``; times in Swedish local time.

    TX text is one OBX with a repetition per line, or with ``obx_per_line`` one OBX per line;
    FT text is one OBX with ``\\.br\\`` between lines. Each attachment is one more OBX (ED).
    """
    e = escape
    stamp = now.astimezone(STOCKHOLM) if now.tzinfo is not None else now
    # T02 and T10 share MDM_T02; MSH-9.3 exists from v2.3.1 on
    structure = "^MDM_T02" if version >= "2.3.1" else ""
    msh = (
        f"MSH|^~\\&|{e(sending[0])}|{e(sending[1])}|{e(receiving[0])}|{e(receiving[1])}|"
        f"{stamp:%Y%m%d%H%M%S}||MDM^{trigger}{structure}|{control_id}|P|{version}"
        + ("|||||SWE|" + charset if charset else "")
    )
    d = document
    pid = f"PID|1||{e(d.patient_id)}^^^&{d.patient_oid}&ISO"
    if d.family or d.given:
        pid += f"||{e(d.family)}^{e(d.given)}"
    pv1 = "PV1|1|O"
    if d.unit is not None:
        pv1 += f"|{e(d.unit.hsa_id or '')}^^^^^^^^{e(d.unit.name or '')}"
    written = d.written_at.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S") if d.written_at else ""
    author = ""
    if d.author is not None:
        author = f"{e(d.author.hsa_id)}^{e(d.author.family)}^{e(d.author.given)}".rstrip("^")
    txa = [""] * 18
    txa[0] = "TXA"
    txa[1] = "1"
    txa[2] = e(d.document_type)
    txa[3] = text_type
    txa[4] = written  # activity date/time
    txa[6] = written  # origination date/time
    txa[9] = author
    txa[12] = f"{e(d.document_number)}^{e(d.namespace)}"
    txa[13] = f"{e(d.booking_id)}^{e(d.namespace)}" if d.booking_id else ""
    txa[17] = "AU"  # document completion status: authenticated
    segments = [msh, f"EVN|{trigger}|{stamp:%Y%m%d%H%M%S}", pid, pv1, "|".join(txa)]

    code = e(d.document_type.upper() or "DOKUMENT")
    observation = f"{code}^{e(d.title)}" if d.title else code
    text = d.text.replace("\r\n", "\n")
    values: list[str]
    if text_type == "FT":
        values = [e(text)]
    elif obx_per_line:
        values = [e(line) for line in text.split("\n")]
    else:
        values = ["~".join(e(line) for line in text.split("\n"))]
    obx: list[str] = [f"{text_type}|{observation}||{value}" for value in values]
    for number, attachment in enumerate(d.attachments, start=1):
        subtype = attachment.content_type.rsplit("/", 1)[-1].upper()
        data = base64.b64encode(attachment.data).decode("ascii")
        name = e(attachment.filename or f"bilaga-{number}.pdf")
        obx.append(f"ED|BILAGA^{name}||^AP^{subtype}^Base64^{data}")
    segments += [f"OBX|{i}|{body}||||||F" for i, body in enumerate(obx, start=1)]
    if d.notify_direct:
        segments.append("ZNT|1|D")
    return ("\r".join(segments) + "\r").encode(CODECS[charset])


def minimal_pdf(text: str = "") -> bytes:
    """A small valid PDF 1.4: one A4 page, ``text`` on one line in Helvetica (none if empty).

    Written out with a correct cross-reference table so readers open it without repairs.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    ]
    if text:
        literal = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = b"BT /F1 12 Tf 72 770 Td (" + literal.encode("latin-1", "replace") + b") Tj ET"
        objects += [
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        ]
    else:
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
