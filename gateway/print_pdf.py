"""A document as one printable A4 PDF for the print list (R-DOC-5, R-DOC-9): pure, no I/O.

:func:`render_pdf` lays out the letter (unit name, date, title, the text with its line breaks,
and a list of the attachments) with fpdf2, then appends each attachment page by page:

- a PDF attachment: its pages as they are (pypdf), so what the journal attached is what prints;
- a PNG or JPEG: one page with the image fitted to it;
- plain text: laid out like the letter;
- anything else, or a PDF that cannot be read (damaged, encrypted): one page saying which
  attachment could not be printed and why, so staff see something is missing instead of a
  shorter print.

Text is set in the PDF core font Helvetica with the Windows-1252 encoding (WinAnsiEncoding),
which covers Swedish å ä ö and the typographic dashes, quotes and € of Swedish letters, with no
font file to ship. A character outside it is replaced by its base letter when it has one
(NFKD: ``ś`` -> ``s``) or ``?``. A template needing other scripts would need a TTF font.

Decisions: the PDF carries only what the journal wrote (title, text, attachments) and the
unit's name: never a name or address from the register, so a protected person's letter
(R-ID-3) renders like any other, and staff decide how to post it. Nothing here logs.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # fpdf2 and pypdf are imported when a PDF is made: half a second of every
    # process start (the worker process and the register never print)
    from fpdf import FPDF
    from pypdf import PdfWriter

STOCKHOLM = ZoneInfo("Europe/Stockholm")
ENCODING = "windows-1252"
_FONT = "Helvetica"
_MARGIN_MM = 20


@dataclass(frozen=True, slots=True)
class PrintAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PrintableDocument:
    """What goes on paper. ``date``: when the journal wrote it, else when the gateway got it."""

    title: str
    text: str
    date: datetime | date | None = None
    unit_name: str | None = None
    attachments: Sequence[PrintAttachment] = field(default_factory=tuple)


def printable(value: str) -> str:
    """``value`` with what the core font cannot show replaced (see the module docstring)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n")):
        if ch in "\n\t" or _encodable(ch):
            out.append(" " * 4 if ch == "\t" else ch)
            continue
        if unicodedata.category(ch)[0] == "C":  # other control characters print as nothing
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if _encodable(c) and not unicodedata.combining(c)
        )
        out.append(base or "?")
    return "".join(out)


def _encodable(ch: str) -> bool:
    if unicodedata.category(ch)[0] == "C":
        return False
    try:
        ch.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def _date_text(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(STOCKHOLM).date().isoformat()
    return value.isoformat()


def _new_pdf() -> FPDF:
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.core_fonts_encoding = ENCODING
    pdf.set_margins(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM)
    pdf.set_auto_page_break(auto=True, margin=_MARGIN_MM)
    pdf.set_creator("gateway print list")
    return pdf


def _paragraphs(pdf: FPDF, text: str, size: float = 11) -> None:
    pdf.set_font(_FONT, size=size)
    pdf.multi_cell(0, size * 0.5, printable(text), new_x="LMARGIN", new_y="NEXT")


def _letter(doc: PrintableDocument) -> bytes:
    pdf = _new_pdf()
    pdf.add_page()
    pdf.set_font(_FONT, size=10)
    if doc.unit_name:
        pdf.cell(0, 5, printable(doc.unit_name), new_x="LMARGIN", new_y="NEXT")
    when = _date_text(doc.date)
    if when:
        pdf.cell(0, 5, when, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(_FONT, style="B", size=14)
    pdf.multi_cell(0, 7, printable(doc.title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _paragraphs(pdf, doc.text)
    if doc.attachments:
        pdf.ln(6)
        pdf.set_font(_FONT, style="B", size=10)
        pdf.cell(0, 5, "Bilagor", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(_FONT, size=10)
        for n, a in enumerate(doc.attachments, 1):
            pdf.cell(0, 5, printable(f"{n}. {a.filename}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _notice(n: int, attachment: PrintAttachment, why: str) -> bytes:
    pdf = _new_pdf()
    pdf.add_page()
    pdf.set_font(_FONT, style="B", size=12)
    pdf.multi_cell(0, 6, printable(f"Bilaga {n}: {attachment.filename}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    _paragraphs(pdf, f"Bilagan kan inte skrivas ut härifrån ({attachment.content_type}): {why}.")
    return bytes(pdf.output())


def _text_page(attachment: PrintAttachment) -> bytes:
    pdf = _new_pdf()
    pdf.add_page()
    _paragraphs(pdf, attachment.data.decode("utf-8", errors="replace"))
    return bytes(pdf.output())


def _image_page(attachment: PrintAttachment) -> bytes:
    pdf = _new_pdf()
    pdf.add_page()
    width = pdf.w - 2 * _MARGIN_MM
    height = pdf.h - 2 * _MARGIN_MM
    pdf.image(
        io.BytesIO(attachment.data), x=_MARGIN_MM, y=_MARGIN_MM, w=width, h=height, keep_aspect_ratio=True
    )
    return bytes(pdf.output())


def _append(writer: PdfWriter, pdf_bytes: bytes) -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf_bytes))
    for page in reader.pages:
        writer.add_page(page)


def _checked(pdf_bytes: bytes) -> bytes:
    """A PDF attachment copied whole into a fresh file: pypdf reads lazily, so a damaged one
    fails here, before any of its pages are in the print."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError

    reader = PdfReader(io.BytesIO(pdf_bytes))
    if reader.is_encrypted and not reader.decrypt(""):
        raise PyPdfError("encrypted with a password")
    copy = PdfWriter()
    for page in reader.pages:
        copy.add_page(page)
    out = io.BytesIO()
    copy.write(out)
    return out.getvalue()


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def render_pdf(doc: PrintableDocument) -> bytes:
    """The letter and then its attachments as one A4 PDF."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    _append(writer, _letter(doc))
    for n, a in enumerate(doc.attachments, 1):
        media = _media(a.content_type)
        try:
            if media == "application/pdf" or (media == "application/octet-stream" and a.data[:5] == b"%PDF-"):
                pages = _checked(a.data)
            elif media in ("image/png", "image/jpeg"):
                pages = _image_page(a)
            elif media == "text/plain":
                pages = _text_page(a)
            else:
                pages = _notice(n, a, "the gateway prints only PDF, PNG, JPEG and plain text")
        except Exception as exc:  # a damaged attachment must not stop the letter from printing
            pages = _notice(n, a, f"it could not be read ({type(exc).__name__})")
        _append(writer, pages)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def combine(pdfs: Sequence[bytes]) -> bytes:
    """Several printable PDFs as one file, in order (the console prints a selection at once)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for pdf_bytes in pdfs:
        _append(writer, pdf_bytes)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
