"""The printable PDF of a print-list document (R-DOC-9, R-DOC-5), read back with pypdf."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader

from gateway.print_pdf import PrintableDocument, PrintAttachment, printable, render_pdf
from tests.documents_factory import LETTER_TEXT, image_png, pdf_bytes

A4 = (595, 842)  # points, rounded


def _pages(data: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def _letter(*attachments: PrintAttachment, text: str = LETTER_TEXT) -> PrintableDocument:
    return PrintableDocument(
        title="Kallelse till blodtryckskontroll",
        text=text,
        # 23:30 UTC on 30 November is 1 December in Stockholm.
        date=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        unit_name="Vårdcentralen Tolvåsen",
        attachments=attachments,
    )


def test_r_doc_9_the_pdf_has_the_letter_with_swedish_letters_then_each_attachment_page() -> None:
    attachment = PrintAttachment(
        "vägbeskrivning.pdf", "application/pdf", pdf_bytes("Vägbeskrivning sida 1", "Sida två: Öppettider")
    )
    data = render_pdf(_letter(attachment))
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 3
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == A4
    letter, first, second = _pages(data)
    assert "Vårdcentralen Tolvåsen" in letter
    assert "2026-12-01" in letter
    assert "Kallelse till blodtryckskontroll" in letter
    lines = letter.splitlines()
    # The letter's line breaks survive: each of its lines is a line of the page.
    for line in LETTER_TEXT.splitlines():
        if line:
            assert line in lines
    assert "Åtgärder och övriga frågor" in letter
    assert "1. vägbeskrivning.pdf" in letter  # the attachments are listed on the letter
    assert "Vägbeskrivning sida 1" in first
    assert "Sida två: Öppettider" in second


def test_r_doc_9_a_letter_without_attachments_is_one_page() -> None:
    assert len(_pages(render_pdf(_letter()))) == 1


def test_r_doc_9_text_and_image_attachments_get_a_page_each() -> None:
    data = render_pdf(
        _letter(
            PrintAttachment(
                "info.txt", "text/plain; charset=utf-8", "Parkering finns på gården.\nVälkommen!".encode()
            ),
            PrintAttachment("karta.png", "image/png", image_png()),
        )
    )
    pages = _pages(data)
    assert len(pages) == 3
    assert "Parkering finns på gården." in pages[1]
    assert PdfReader(io.BytesIO(data)).pages[2].images  # the image is on its page


def test_r_doc_9_an_unreadable_or_unknown_attachment_prints_as_a_notice_not_a_failure() -> None:
    data = render_pdf(
        _letter(
            PrintAttachment("trasig.pdf", "application/pdf", b"%PDF-1.7 this is not really a PDF"),
            PrintAttachment("journal.docx", "application/vnd.openxmlformats-officedocument", b"PK\x03\x04"),
        )
    )
    _, broken, unknown = _pages(data)
    assert "Bilaga 1: trasig.pdf" in broken and "kan inte skrivas ut" in broken
    assert "Bilaga 2: journal.docx" in unknown and "kan inte skrivas ut" in unknown


def test_r_doc_9_characters_outside_the_font_are_replaced_not_fatal() -> None:
    assert printable("Łódź – ”citat” 😀 e\u0301") == "?ódz – ”citat” ? é"
    assert printable("rad ett\r\nrad två\rrad tre\x07") == "rad ett\nrad två\nrad tre"
    pages = _pages(render_pdf(_letter(text="Hej Ğa 😀\n€ 100 – tack")))
    assert "Hej Ga ?" in pages[0] and "€ 100 – tack" in pages[0]
