"""MDM^T02/T10 to DocumentEvent (docs/hl7-profile.md section 10): every field, every error.

Messages are hand-written segments after a standard MSH, so each case bends one thing; the
builder's messages are checked by a round trip at the end.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gateway.control_codes import CodeKind, scan
from gateway.domain.booking import BookingEvent, Resource
from gateway.domain.documents import DocumentKind
from gateway.domain.identity import IdKind
from gateway.domain.letter import (
    Attachment,
    DocumentAction,
    DocumentEvent,
    JournalDocumentType,
    document_kind,
)
from gateway.errors import InvalidIdentifier, MalformedMessage, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.ack import build_ack
from gateway.journal_adapter.header import Header, check_header, read_header
from gateway.journal_adapter.inbound import translate
from gateway.journal_adapter.mdm import to_document_event
from gateway.journal_adapter.mdm_builder import MdmDocument, Practitioner, build_mdm, minimal_pdf
from gateway.journal_adapter.siu import to_booking_event
from gateway.journal_adapter.timestamps import STOCKHOLM
from gateway.mappings import load
from mocks.journal import JournalSimulator, LetterKind
from tests.support import PNR_OID, SAMO_OID, TOLVAN, siu

MAPPINGS = load()
PID = f"PID|1||{TOLVAN}^^^&{PNR_OID}&ISO||Tolvansson^Tolvan"
PV1 = "PV1|1|O|SE2321000016-15CQ^^^^^^^^Vårdcentralen Tolvåsen"
PDF = minimal_pdf("Bilaga")
PDF64 = base64.b64encode(PDF).decode("ascii")


def txa(
    doc_type: str = "KALLELSE",
    *,
    number: str = "DOC-1^TAKECARE",
    booking: str = "BK-1^TAKECARE",
    origination: str = "202611240815",
    activity: str = "",
    author: str = "SE2321000016-1A2B^Läkare^Anna",
) -> str:
    fields = ["TXA", "1", doc_type, "TX", activity, "", origination, "", "", author, "", "", number, booking]
    return "|".join([*fields, "", "", "", "AU"])


def tx(text: str, title: str = "Kallelse till återbesök", set_id: int = 1) -> str:
    return f"OBX|{set_id}|TX|KALLELSE^{title}||{text}||||||F"


def ed(value: str, name: str = "provsvar.pdf", set_id: int = 2) -> str:
    return f"OBX|{set_id}|ED|BILAGA^{name}||{value}||||||F"


def parsed(
    *segments: str, trigger: str = "T02", version: str = "2.5.1", message_type: str = "MDM"
) -> tuple[er7.Message, Header]:
    msh = (
        f"MSH|^~\\&|TAKECARE|SLL|GATEWAY|REGION|20261124080000||{message_type}^{trigger}|C1|P|{version}"
        "|||||SWE|UNICODE UTF-8"
    )
    msg = er7.parse("\r".join((msh, *segments)) + "\r")
    return msg, read_header(msg)


def document(*segments: str, **kw: str) -> DocumentEvent:
    msg, header = parsed(*segments, **kw)
    check_header(header)
    event = translate(msg, header, MAPPINGS)
    assert isinstance(event, DocumentEvent)
    return event


def rejected(*segments: str, **kw: str) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        document(*segments, **kw)
    return caught.value


def where(error: MalformedMessage) -> tuple[str, int | None, int | None, int, str]:
    loc = error.location
    assert loc is not None
    return (loc.segment, loc.field, loc.component, loc.sequence, error.hl7_error_code)


KALLELSE = ("EVN|T02|202611240815", PID, PV1, txa(), tx("Välkommen~Tid: 1 december kl. 09.00"))


# --- The header: MDM is taken beside SIU ------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "action"), [("T02", DocumentAction.NEW), ("T10", DocumentAction.REPLACE)]
)
def test_t02_is_a_new_document_and_t10_replaces_it(trigger: str, action: DocumentAction) -> None:
    assert document(*KALLELSE, trigger=trigger).action is action


@pytest.mark.parametrize("trigger", ["T01", "T04", "T11", ""])
def test_other_mdm_triggers_get_ar_201_naming_msh_9_2(trigger: str) -> None:
    _, header = parsed(*KALLELSE, trigger=trigger)
    with pytest.raises(UnsupportedMessage) as caught:
        check_header(header)
    assert caught.value.hl7_error_code == "201"
    assert caught.value.location is not None and caught.value.location.component == 2
    assert "(T02, T10)" in caught.value.message


@pytest.mark.parametrize("message_type", ["ADT", "ORU", "MDN", ""])
def test_message_types_other_than_siu_and_mdm_get_ar_200(message_type: str) -> None:
    _, header = parsed(*KALLELSE, message_type=message_type)
    with pytest.raises(UnsupportedMessage) as caught:
        check_header(header)
    assert caught.value.hl7_error_code == "200"
    assert "(SIU or MDM only)" in caught.value.message


def test_siu_triggers_are_still_checked_as_before() -> None:
    msg = er7.parse(siu("S18").decode("utf-8"))
    with pytest.raises(UnsupportedMessage) as caught:
        check_header(read_header(msg))
    assert caught.value.message == "trigger event S18 is not taken (S12, S13, S14, S15, S16, S17, S26)"


def test_translate_gives_a_booking_event_for_siu_and_refuses_other_types() -> None:
    msg = er7.parse(siu().decode("utf-8"))
    assert isinstance(translate(msg, read_header(msg), MAPPINGS), BookingEvent)
    other, header = parsed(*KALLELSE, message_type="ADT", trigger="A08")
    with pytest.raises(UnsupportedMessage):
        translate(other, header, MAPPINGS)


def test_each_translator_refuses_the_other_kind_instead_of_failing_deep_inside() -> None:
    msg, header = parsed(*KALLELSE, "SCH||BK-1^TAKECARE")
    with pytest.raises(UnsupportedMessage):
        to_booking_event(msg, header, MAPPINGS)
    booking = er7.parse(siu().decode("utf-8"))
    with pytest.raises(UnsupportedMessage):
        to_document_event(booking, read_header(booking), MAPPINGS)


# --- Every field -------------------------------------------------------------------------------


def test_r_doc_1_a_kallelse_is_read_whole_with_its_booking() -> None:
    event = document(*KALLELSE)
    assert event.document_type is JournalDocumentType.KALLELSE
    assert (event.namespace, event.document_number, event.booking_id) == ("TAKECARE", "DOC-1", "BK-1")
    assert (event.patient.kind, event.patient.value) == (IdKind.PERSONNUMMER, TOLVAN)
    assert event.title == "Kallelse till återbesök"
    assert event.text == "Välkommen\nTid: 1 december kl. 09.00"
    assert event.written_at == datetime(2026, 11, 24, 8, 15, tzinfo=STOCKHOLM)
    assert (event.unit_hsa_id, event.unit_name) == ("SE2321000016-15CQ", "Vårdcentralen Tolvåsen")
    assert event.author == "Anna Läkare"
    assert event.attachments == ()


def test_a_brev_has_no_booking_even_when_txa_13_is_sent() -> None:
    event = document(PID, txa("BREV", booking="BK-9^OTHER"), tx("Hej"))
    assert event.document_type is JournalDocumentType.BREV
    assert event.booking_id is None


@pytest.mark.parametrize("value", ["kallelse", " Kallelse ", "KALLELSE^Kallelse"])
def test_txa_2_is_read_in_any_case_from_its_first_component(value: str) -> None:
    assert document(PID, txa(value), tx("x")).document_type is JournalDocumentType.KALLELSE


@pytest.mark.parametrize(
    ("number", "booking", "namespace"),
    [
        ("DOC-1^TC^1.2.752.97.99^ISO", "BK-1^TC^1.2.752.97.99^ISO", "1.2.752.97.99"),
        ("DOC-1^TC", "BK-1^TC", "TC"),
        ("DOC-1", "BK-1", "TAKECARE"),
        ("DOC-1", "BK-1^TAKECARE", "TAKECARE"),
        ("DOC-1^TC", "BK-1", "TC"),
    ],
    ids=["universal-id", "namespace-id", "msh-3", "booking-names-msh-3", "booking-without-namespace"],
)
def test_document_namespace_is_txa_12_universal_id_else_namespace_id_else_msh_3_as_for_sch_2(
    number: str, booking: str, namespace: str
) -> None:
    event = document(PID, txa(number=number, booking=booking), tx("x"))
    assert (event.namespace, event.document_number, event.booking_id) == (namespace, "DOC-1", "BK-1")


def test_a_kallelse_whose_txa_13_names_another_namespace_gets_ae_naming_txa_13() -> None:
    error = rejected(PID, txa(number="DOC-1^TC", booking="BK-1^OTHER"), tx("x"))
    assert where(error) == ("TXA", 13, 2, 1, "102")


@pytest.mark.parametrize(
    ("origination", "activity", "expected"),
    [
        ("202611240815", "202611230900", datetime(2026, 11, 24, 8, 15, tzinfo=STOCKHOLM)),
        ("", "202611230900", datetime(2026, 11, 23, 9, 0, tzinfo=STOCKHOLM)),
        ("202611240815^M", "", datetime(2026, 11, 24, 8, 15, tzinfo=STOCKHOLM)),
        ("20261124081530+0000", "", datetime(2026, 11, 24, 8, 15, 30, tzinfo=UTC)),
        ("", "", None),
    ],
    ids=["txa-6-wins", "txa-4-else", "degree-of-precision", "offset-kept", "none"],
)
def test_written_at_is_txa_6_origination_else_txa_4_activity(
    origination: str, activity: str, expected: datetime | None
) -> None:
    written = document(PID, txa(origination=origination, activity=activity), tx("x")).written_at
    assert written == expected
    if expected is not None and written is not None:
        assert written.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("origination", "activity", "field"),
    [("2026-11-24", "", 6), ("202613240815", "", 6), ("", "20261124", 4)],
)
def test_a_bad_timestamp_gets_ae_102_naming_its_field(origination: str, activity: str, field: int) -> None:
    error = rejected(PID, txa(origination=origination, activity=activity), tx("x"))
    assert where(error) == ("TXA", field, None, 1, "102")


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("SE2321000016-1A2B^Läkare^Anna", "Anna Läkare"),
        ("^Läkare", "Läkare"),
        ("^^Anna", "Anna"),
        ("SE2321000016-1A2B", None),
        ("", None),
        ("X^Öberg^Åsa~Y^Other^Name", "Åsa Öberg"),
    ],
)
def test_author_is_txa_9_given_then_family_name(author: str, expected: str | None) -> None:
    assert document(PID, txa(author=author), tx("x")).author == expected


@pytest.mark.parametrize(
    ("pv1", "hsa_id", "name"),
    [
        (PV1, "SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),
        ("PV1|1|O|SE2321000016-7P3K", "SE2321000016-7P3K", None),
        ("PV1|1|O|^^^^^^^^BVC \\T\\ MVC", None, "BVC & MVC"),
        ("PV1|1|O", None, None),
        (None, None, None),
    ],
    ids=["hsa-and-name", "hsa-only", "name-only", "empty", "no-pv1"],
)
def test_unit_is_pv1_3_hsa_id_in_component_1_and_name_in_component_9(
    pv1: str | None, hsa_id: str | None, name: str | None
) -> None:
    segments = [PID, *([pv1] if pv1 else []), txa(), tx("x")]
    event = document(*segments)
    assert (event.unit_hsa_id, event.unit_name) == (hsa_id, name)


def test_the_patient_is_read_as_for_siu() -> None:
    event = document(f"PID|1||X-1^^^&1.2.3&ISO~199002712934^^^&{SAMO_OID}&ISO", txa(), tx("x"))
    assert (event.patient.kind, event.patient.value) == (IdKind.SAMORDNINGSNUMMER, "199002712934")
    with pytest.raises(InvalidIdentifier) as caught:
        document(f"PID|1||191212121213^^^&{PNR_OID}&ISO", txa(), tx("x"))
    assert where(caught.value) == ("PID", 3, 1, 1, "102")


# --- Text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obx", "text"),
    [
        ([tx("Rad 1~Rad 2~~Rad 4")], "Rad 1\nRad 2\n\nRad 4"),
        ([tx("Rad 1", set_id=1), tx("", set_id=2), tx("Rad 3~Rad 4", set_id=3)], "Rad 1\n\nRad 3\nRad 4"),
        (["OBX|1|FT|BREV^Brev||Rad 1\\.br\\Rad 2\\.br\\\\.br\\Rad 4||||||F"], "Rad 1\nRad 2\n\nRad 4"),
        (["OBX|1|FT|BREV^Brev||A\\.sp\\B\\.sp2\\C\\.sp 3\\D||||||F"], "A\nB\n\nC\n\n\nD"),
        (
            ["OBX|1|FT|BREV^Brev||\\.ce\\\\.in4\\Rubrik\\.br\\\\.ti+2\\x\\.sk2\\y\\.fi\\\\.nf\\z||||||F"],
            "Rubrik\nx  yz",
        ),
        (["OBX|1|FT|BREV^Brev||\\H\\Viktigt\\N\\: ta med \\Z01\\||||||F"], "Viktigt: ta med \\Z01\\"),
        (["OBX|1|TX|BREV^Brev||Ett~Två", "OBX|2|FT|BREV^Brev||Tre\\.br\\Fyra"], "Ett\nTvå\nTre\nFyra"),
        (["OBX|1|TX|||Sluttext~"], "Sluttext\n"),
    ],
    ids=[
        "tx-repetitions",
        "tx-obx-per-line",
        "ft-br",
        "ft-sp",
        "ft-layout-dropped",
        "highlight",
        "mixed",
        "trailing",
    ],
)
def test_text_keeps_every_line_break_tx_repetitions_and_obx_and_ft_commands(
    obx: list[str], text: str
) -> None:
    assert document(PID, txa("BREV"), *obx).text == text


def test_escapes_are_decoded_in_text_title_and_names() -> None:
    event = document(
        PID,
        txa("BREV", author="X^Bäck\\T\\ström^Märta"),
        r"OBX|1|TX|BREV^Svar \T\ råd||A \F\ B \S\ C \T\ D \R\ E \E\ F \XE5\~G^H&I||||||F",
    )
    assert event.title == "Svar & råd"
    assert event.text == "A | B ^ C & D ~ E \\ F å\nG^H&I"  # a stray ^ or & in text stays text
    assert event.author == "Märta Bäck&ström"


def test_only_tx_and_ft_are_text_in_message_order_and_other_value_types_are_not_read() -> None:
    event = document(
        PID,
        txa("BREV"),
        "OBX|1|ST|X^Rubrik||inte text||||||F",
        "OBX|2|NM|X^Värde||42||||||F",
        "OBX|3|FT|BREV^Provsvar||Första||||||F",
        ed(f"^AP^PDF^Base64^{PDF64}", set_id=4),
        "OBX|5|TX|BREV^Annan rubrik||Andra||||||F",
    )
    assert (event.title, event.text) == ("Provsvar", "Första\nAndra")


@pytest.mark.parametrize(
    ("doc_type", "obx", "title"),
    [
        ("KALLELSE", "OBX|1|TX|||Hej||||||F", "Kallelse"),
        ("BREV", "OBX|1|TX|BREV||Hej||||||F", "Brev"),
        ("BREV", "OBX|1|TX|BREV^  ||Hej||||||F", "Brev"),
    ],
)
def test_title_defaults_to_the_document_type_when_obx_3_2_is_empty(
    doc_type: str, obx: str, title: str
) -> None:
    assert document(PID, txa(doc_type), obx).title == title


@pytest.mark.parametrize(
    "obx",
    [
        [],
        [ed(f"^AP^PDF^Base64^{PDF64}", set_id=1)],
        ["OBX|1|TX|BREV^Brev||||||||F"],
        ["OBX|1|TX|BREV^Brev||~ ~||||||F", "OBX|2|FT|BREV^Brev||\\.br\\||||||F"],
        ["OBX|1|ST|BREV^Brev||Text i fel typ||||||F"],
    ],
    ids=["no-obx", "attachment-only", "empty-tx", "blank-lines-only", "st-only"],
)
def test_a_document_without_text_gets_ae_101_naming_obx_5(obx: list[str]) -> None:
    assert where(rejected(PID, txa("BREV"), *obx)) == ("OBX", 5, None, 1, "101")


def test_r_doc_2_line_breaks_survive_so_a_near_miss_is_reported_at_its_line_and_column() -> None:
    event = document(
        PID,
        txa("BREV"),
        "OBX|1|FT|BREV^Provsvar||Hej,\\.br\\\\.br\\Alla värden är bra."
        "\\.br\\Vårdcentralen · [4US: LPAT]||||||F",
    )
    result = scan(event.text)
    assert result.kind is CodeKind.NONE
    (miss,) = result.near_misses
    assert (miss.position.line, miss.position.column) == (4, 17)


def test_r_doc_1_the_exact_codes_are_found_in_the_decoded_text() -> None:
    lpat = document(PID, txa("BREV"), tx("Hej~~Vårdcentralen \\F\\ [4US:LPAT]"))
    rpat = document(PID, txa("BREV"), tx("Remiss mottagen~[4US:RPAT]"))
    assert (scan(lpat.text).kind, scan(rpat.text).kind) == (CodeKind.E_BREV, CodeKind.E_REMISSBEKRAFTELSE)


# --- Attachments -------------------------------------------------------------------------------


def test_pdf_attachments_are_decoded_with_their_names_in_order() -> None:
    other = minimal_pdf()
    event = document(
        PID,
        txa("BREV"),
        tx("Se bilagor"),
        ed(f"^AP^PDF^Base64^{PDF64}", name="Provsvar 2026-11.pdf", set_id=2),
        ed(f"^AP^application/pdf^base64^{base64.b64encode(other).decode()}", name="", set_id=3),
        ed(f"^^pdf^BASE64^{PDF64}", name="", set_id=4),
    )
    assert event.attachments == (
        Attachment("Provsvar 2026-11.pdf", "application/pdf", PDF),
        Attachment("bilaga-2.pdf", "application/pdf", other),
        Attachment("bilaga-3.pdf", "application/pdf", PDF),
    )
    assert event.text == "Se bilagor"


@pytest.mark.parametrize(
    ("value", "component", "code"),
    [
        ("", None, "101"),
        (f"^AP^PNG^Base64^{PDF64}", 3, "103"),
        (f"^AP^^Base64^{PDF64}", 3, "103"),
        (f"^AP^PDF^Hex^{PDF.hex()}", 4, "103"),
        (f"^AP^PDF^^{PDF64}", 4, "103"),
        ("^AP^PDF^Base64^JVBERi0x*LjQ=", 5, "102"),
        ("^AP^PDF^Base64^JVBERi0xLjQ", 5, "102"),
        (f"^AP^PDF^Base64^{base64.b64encode(b'GIF89a not a pdf').decode()}", 5, "102"),
        ("^AP^PDF^Base64^", 5, "102"),
    ],
    ids=["empty", "png", "no-subtype", "hex", "no-encoding", "bad-char", "bad-padding", "not-pdf", "no-data"],
)
def test_an_attachment_that_is_not_a_base64_pdf_gets_ae_naming_its_obx_and_obx_5(
    value: str, component: int | None, code: str
) -> None:
    error = rejected(PID, txa("BREV"), tx("x"), ed(f"^AP^PDF^Base64^{PDF64}", set_id=2), ed(value, set_id=3))
    assert where(error) == ("OBX", 5, component, 3, code)
    assert error.message.startswith("OBX 3:")


def test_the_ack_for_a_bad_attachment_names_the_obx_occurrence_in_err_2() -> None:
    error = rejected(PID, txa("BREV"), tx("x"), ed("^AP^PNG^Base64^AAAA", set_id=2))
    _, header = parsed(PID)
    ack = build_ack("AE", header, datetime(2026, 11, 24, 8, 0, tzinfo=UTC), sender=("GW", "R"), error=error)
    err = next(line for line in ack.split("\r") if line.startswith("ERR|"))
    assert err.split("|")[2] == "OBX^2^5^1^3"
    assert err.split("|")[3] == "103^Table value not found^HL70357"


# --- Required parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ((txa(), tx("x")), ("PID", None, None, 1, "100")),
        ((PID, tx("x")), ("TXA", None, None, 1, "100")),
        ((PID, txa(""), tx("x")), ("TXA", 2, None, 1, "101")),
        ((PID, txa("REMISS"), tx("x")), ("TXA", 2, None, 1, "103")),
        ((PID, txa(number=""), tx("x")), ("TXA", 12, 1, 1, "101")),
        ((PID, txa(number="^TAKECARE"), tx("x")), ("TXA", 12, 1, 1, "101")),
        ((PID, txa("KALLELSE", booking=""), tx("x")), ("TXA", 13, 1, 1, "101")),
        ((PID, txa("KALLELSE", booking="^TAKECARE"), tx("x")), ("TXA", 13, 1, 1, "101")),
        (("PID|1", txa(), tx("x")), ("PID", 3, None, 1, "101")),
    ],
    ids=[
        "no-pid",
        "no-txa",
        "no-type",
        "unknown-type",
        "no-number",
        "number-without-id",
        "kallelse-without-booking",
        "kallelse-booking-without-id",
        "empty-pid-3",
    ],
)
def test_every_missing_or_wrong_required_part_gets_ae_naming_segment_and_field(
    segments: tuple[str, ...], expected: tuple[str, int | None, int | None, int, str]
) -> None:
    assert where(rejected(*segments)) == expected


def test_a_brev_needs_no_txa_13() -> None:
    assert document(PID, txa("BREV", booking=""), tx("x")).booking_id is None


def test_evn_and_pv1_are_optional_and_segment_order_is_not_checked() -> None:
    event = document(tx("Text först"), txa(), PID)
    assert (event.text, event.booking_id, event.unit_hsa_id) == ("Text först", "BK-1", None)


# --- The builder: what it writes is read back the same -----------------------------------------

TEXT = "Hej Tolvan,\n\nDin tid: 1 december | kl. 09.00 ^ rum 3 & 4 ~ plan 2 \\ A\n\n[4US:LPAT]\n"


@pytest.mark.parametrize("version", ["2.5.1", "2.3"])
@pytest.mark.parametrize("charset", ["8859/1", "UNICODE UTF-8"])
@pytest.mark.parametrize(("text_type", "per_line"), [("TX", False), ("TX", True), ("FT", False)])
def test_builder_messages_translate_back_to_what_was_built(
    version: str, charset: str, text_type: str, per_line: bool
) -> None:
    written = datetime(2026, 11, 24, 7, 15, tzinfo=UTC)
    built = MdmDocument(
        document_number="D-1|2",
        namespace="TAKECARE",
        document_type="KALLELSE",
        patient_id=TOLVAN,
        patient_oid=PNR_OID,
        text=TEXT,
        title="Kallelse & information",
        booking_id="BK^1",
        written_at=written,
        author=Practitioner("SE2321000016-1A2B", "Läkare", "Anna"),
        unit=Resource("SE2321000016-15CQ", "Vårdcentralen Tolvåsen"),
        attachments=(Attachment("bilaga ö.pdf", "application/pdf", PDF),),
        family="Tolvansson",
        given="Tolvan",
    )
    raw = build_mdm(
        "T10",
        built,
        control_id="C-1",
        now=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        version=version,
        charset=charset,
        text_type=text_type,  # type: ignore[arg-type]
        obx_per_line=per_line,
    )
    text, declared = er7.decode(raw)
    assert declared == charset
    msg = er7.parse(text)
    header = read_header(msg)
    check_header(header)
    assert (header.message_type, header.trigger, header.version) == ("MDM", "T10", version)
    event = translate(msg, header, MAPPINGS)
    assert event == DocumentEvent(
        action=DocumentAction.REPLACE,
        namespace="TAKECARE",
        document_number="D-1|2",
        document_type=JournalDocumentType.KALLELSE,
        patient=event.patient,
        title="Kallelse & information",
        text=TEXT,
        written_at=written.astimezone(STOCKHOLM).replace(tzinfo=STOCKHOLM),
        booking_id="BK^1",
        unit_hsa_id="SE2321000016-15CQ",
        unit_name="Vårdcentralen Tolvåsen",
        author="Anna Läkare",
        attachments=(Attachment("bilaga ö.pdf", "application/pdf", PDF),),
    )
    assert event.patient.value == TOLVAN


def test_minimal_pdf_is_a_pdf_with_a_correct_cross_reference_table() -> None:
    for pdf in (minimal_pdf(), minimal_pdf("Provsvar (kopia) \\ 2026")):
        assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
        start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
        assert pdf[start:].startswith(b"xref\n")
        offsets = [int(m) for m in re.findall(rb"^(\d{10}) 00000 n $", pdf, re.M)]
        for number, offset in enumerate(offsets, start=1):
            assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    assert len(minimal_pdf()) < 400


def test_formatted_unescape_leaves_other_fields_as_before() -> None:
    assert er7.unescape("A\\.sp\\B\\.br\\C") == "A\\.sp\\B\nC"
    assert er7.unescape("A\\.sp\\B", formatted=True) == "A\nB"


def test_written_at_keeps_a_sent_offset() -> None:
    event = document(PID, txa(origination="202607010800+0200"), tx("x"))
    assert event.written_at is not None
    assert event.written_at.utcoffset() == timedelta(hours=2)
    assert event.written_at.tzinfo == timezone(timedelta(hours=2))


# --- The simulated journal's letters -----------------------------------------------------------


def test_r_doc_1_simulated_letters_translate_to_what_the_journal_meant() -> None:
    journal = JournalSimulator(seed=7, run_id="L")
    bookings = journal.day(date(2026, 12, 1), bookings=20)
    letters = journal.letters(date(2026, 12, 1), kallelser=3)
    sent = {m.booking_id: m for m in bookings}
    expected = {
        LetterKind.E_KALLELSE: DocumentKind.E_KALLELSE,
        LetterKind.E_BREV: DocumentKind.E_BREV,
        LetterKind.E_REMISSBEKRAFTELSE: DocumentKind.E_REMISSBEKRAFTELSE,
        LetterKind.NEAR_MISS: DocumentKind.E_BREV,
        LetterKind.NO_CODE: DocumentKind.E_BREV,
    }
    events: list[DocumentEvent] = []
    for letter in letters:
        text, _ = er7.decode(letter.data)
        msg = er7.parse(text)
        header = read_header(msg)
        check_header(header)
        event = translate(msg, header, MAPPINGS)
        assert isinstance(event, DocumentEvent)
        events.append(event)
        assert (event.document_number, event.text, event.attachments) == (
            letter.document_number,
            letter.text,
            letter.attachments,
        )
        assert event.patient.value == letter.person_id
        found = scan(event.text)
        assert document_kind(event.document_type, found) is expected[letter.kind]
        assert bool(found.near_misses) == (letter.kind is LetterKind.NEAR_MISS)
        if letter.kind is LetterKind.E_KALLELSE:
            assert event.booking_id is not None and event.namespace == "TAKECARE"
            assert sent[event.booking_id].person_id == letter.person_id  # TXA-13 is its SCH-2
        else:
            assert found.kind is not CodeKind.NONE or letter.kind in (
                LetterKind.NEAR_MISS,
                LetterKind.NO_CODE,
            )
    kinds = [letter.kind for letter in letters if letter.trigger == "T02"]
    assert kinds.count(LetterKind.E_KALLELSE) == 3
    assert {LetterKind.NEAR_MISS, LetterKind.NO_CODE, LetterKind.E_REMISSBEKRAFTELSE} <= set(kinds)
    assert sum(len(e.attachments) for e in events) == 1
    replacements = [
        (letter, event) for letter, event in zip(letters, events, strict=True) if letter.trigger == "T10"
    ]
    assert [letter.kind for letter, _ in replacements] == [LetterKind.E_KALLELSE, LetterKind.E_BREV]
    for letter, event in replacements:
        original = next(
            o for o in letters if o.trigger == "T02" and o.document_number == letter.document_number
        )
        assert event.action is DocumentAction.REPLACE and event.text != original.text
    assert len({letter.control_id for letter in letters} | {m.control_id for m in bookings}) == len(
        letters
    ) + len(bookings)


def test_asking_for_letters_leaves_the_bookings_a_seed_gives_unchanged() -> None:
    def without_msh_7(data: bytes) -> bytes:
        return re.sub(rb"\|\d{14}\|\|", b"|||", data, count=1)

    plain = JournalSimulator(seed=5, run_id="S")
    with_letters = JournalSimulator(seed=5, run_id="S")
    first = [without_msh_7(m.data) for m in plain.day(date(2026, 12, 1), bookings=15)]
    assert [without_msh_7(m.data) for m in with_letters.day(date(2026, 12, 1), bookings=15)] == first
    with_letters.letters(date(2026, 12, 1))
    later = [(m.booking_id, m.trigger, m.person_id) for m in plain.day(date(2026, 12, 2), bookings=15)]
    assert [(m.booking_id, m.trigger, m.person_id) for m in with_letters.day(date(2026, 12, 2), 15)] == later
