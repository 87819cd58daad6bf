"""The mailbox adapter's pure parts: how isReachable and DeliveryResult answers read, the error
map (complete for zeep and lxml), the letter's rules, the settings and the signing identity."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from pydantic import ValidationError
from signxml.verifier import SignatureConfiguration, XMLVerifier
from structlog.testing import capture_logs
from zeep import exceptions as zeep_exc

from gateway.domain.documents import NO_MAILBOX, MailboxProvider, MailboxReachability
from gateway.domain.identity import IdKind, PersonId
from gateway.domain.letter import Attachment
from gateway.domain.mailbox import PDF, OutgoingLetter, RefusalCode
from gateway.errors import (
    ConfigurationError,
    MailboxRefused,
    PermanentUpstreamError,
    TransientUpstreamError,
)
from gateway.mailbox_adapter import (
    WSDL_DIR,
    MailboxSettings,
    load_identity,
    sign_delivery,
    throwaway_identity,
    translate_exception,
)
from gateway.mailbox_adapter._suppliers import Supplier, SupplierTable, allowed, load_suppliers
from gateway.mailbox_adapter._translate import (
    Reachable,
    delivery_result,
    reachability_answer,
    refusal_before_delivery,
)
from gateway.soap import DECISIONS as MAPPING
from mocks.mailbox import WSDL_DIR as MOCK_WSDL_DIR
from mocks.population import Population
from tests.fakes import pnr

SUPPLIERS = load_suppliers().with_addresses({"165568402266": ["https://kivra.test/deliver"]})
TOLVAN = pnr("191212121212")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KIVRA = {
    "Id": "165568402266",
    "Name": "Kivra AB",
    "ServiceAdress": "https://kivra.test/deliver",
    "InternalServiceAdress": "https://kivra.test/deliver",
}


def status(person: PersonId, kind: str = "Secure", **changes: Any) -> dict[str, Any]:
    account: dict[str, Any] = {
        "RecipientId": person.value,
        "Type": kind,
        "Pending": False,
        "ServiceSupplier": KIVRA,
    }
    account.update(changes.pop("account", {}))
    return {"AccountStatus": account, "SenderAccepted": changes.pop("accepted", True), **changes}


def test_the_gateways_contract_is_the_one_the_mock_serves() -> None:
    names = sorted(p.name for p in WSDL_DIR.iterdir() if p.is_file())
    assert names == sorted(p.name for p in MOCK_WSDL_DIR.iterdir() if p.is_file())
    for name in names:
        assert (WSDL_DIR / name).read_bytes() == (MOCK_WSDL_DIR / name).read_bytes(), name


# -- isReachable --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (status(TOLVAN), MailboxReachability(MailboxProvider.KIVRA)),
        (status(TOLVAN, accepted=False), MailboxReachability(MailboxProvider.KIVRA, sender_accepted=False)),
        (status(TOLVAN, "Not"), MailboxReachability(MailboxProvider.KIVRA, declined=True)),
        (
            status(TOLVAN, "Not", accepted=False),
            MailboxReachability(MailboxProvider.KIVRA, declined=True, sender_accepted=False),
        ),
        (status(TOLVAN, "Not", account={"ServiceSupplier": None}, accepted=False), NO_MAILBOX),
        (status(TOLVAN, "Anonymous"), NO_MAILBOX),
        (status(TOLVAN, account={"Pending": True}), NO_MAILBOX),
    ],
    ids=["secure", "not-accepted", "declined", "declined-not-accepted", "none", "anonymous", "pending"],
)
def test_r_doc_5_isreachable_reads_as_documented(
    answer: dict[str, Any], expected: MailboxReachability
) -> None:
    assert reachability_answer([answer], [TOLVAN], SUPPLIERS)[TOLVAN].reachability == expected


def test_r_doc_5_an_operator_not_in_the_supplier_table_counts_as_no_mailbox_with_the_reason() -> None:
    answer = status(TOLVAN, account={"ServiceSupplier": {**KIVRA, "Id": "165599999999"}})
    with capture_logs() as logs:
        found = reachability_answer([answer], [TOLVAN], SUPPLIERS)[TOLVAN]
    assert found.reachability.provider is None and found.service_address is None
    assert found.reachability.unusable is not None and "165599999999" in found.reachability.unusable
    assert logs[0]["event"] == "mailbox.unknown_supplier" and TOLVAN.value not in str(logs)


@pytest.mark.parametrize(
    "address",
    [
        "https://evil.test/deliver",  # another host
        "http://kivra.test/deliver",  # not TLS
        "https://kivra.test:8443/deliver",  # another port
        "https://kivra.test/other",  # another path
        "https://user@kivra.test/deliver",  # credentials in the URL
        "file:///etc/passwd",
    ],
)
def test_a_service_address_off_the_allowlist_is_not_used_and_says_why(address: str) -> None:
    """Item 7: a forged or wrong isReachable answer cannot redirect a letter."""
    answer = status(TOLVAN, account={"ServiceSupplier": {**KIVRA, "ServiceAdress": address}})
    with capture_logs() as logs:
        found = reachability_answer([answer], [TOLVAN], SUPPLIERS)[TOLVAN]
    assert found.service_address is None and not found.reachability.deliverable
    assert "allowlist" in (found.reachability.unusable or "")
    assert logs[0]["event"] == "mailbox.address_not_allowed" and TOLVAN.value not in str(logs)
    refused = refusal_before_delivery(found, letter())
    assert refused is not None and refused.code == RefusalCode.NOT_REACHABLE and "allowlist" in str(refused)


def test_secure_without_an_operator_counts_as_no_mailbox_with_the_reason() -> None:
    answer = status(TOLVAN, account={"ServiceSupplier": None})
    found = reachability_answer([answer], [TOLVAN], SUPPLIERS)[TOLVAN]
    assert found.reachability.provider is None and found.reachability.unusable


def test_the_supplier_table_is_checked_and_settings_add_addresses(tmp_path: Path) -> None:
    table = load_suppliers()
    assert {s.mailbox for s in table.by_id.values()} == set(MailboxProvider)
    assert table.by_id["165568402266"].mailbox is MailboxProvider.KIVRA
    wider = table.with_addresses({"*": ["https://mm.example/"]})
    assert all(wider.address_allowed(s, "https://mm.example/kivra") for s in wider.by_id.values())
    with pytest.raises(ConfigurationError, match="unknown suppliers"):
        table.with_addresses({"161234567890": ["https://x.test/"]})
    broken = tmp_path / "suppliers.yaml"
    broken.write_text("suppliers:\n  - {id: Kivra, mailbox: Kivra, name: Kivra}\n")
    with pytest.raises(ConfigurationError, match="invalid"):
        load_suppliers(broken)
    twice = tmp_path / "twice.yaml"
    twice.write_text("suppliers:\n" + "  - {id: '165568402266', mailbox: Kivra, name: Kivra}\n" * 2)
    with pytest.raises(ConfigurationError, match="twice"):
        load_suppliers(twice)


def test_allowed_compares_scheme_host_port_and_path() -> None:
    assert allowed("https://a.test/mm/kivra", ["https://a.test/mm/"])
    assert not allowed("https://a.test.evil/mm/kivra", ["https://a.test/mm/"])
    assert not allowed("https://a.test:99999/mm/", ["https://a.test/mm/"])  # a bad port
    assert (
        SupplierTable({}).by_id == {}
        and Supplier(id="165568402266", mailbox=MailboxProvider.KIVRA, name="K").service_addresses == ()
    )


@pytest.mark.parametrize(
    "answers",
    [
        [],  # nobody answered for
        [status(TOLVAN), status(TOLVAN)],  # twice
        [status(TOLVAN), status(pnr("198503141239"))],  # someone not asked about
        [status(TOLVAN, "Maybe")],
    ],
    ids=["missing", "twice", "not-asked", "unknown-type"],
)
def test_an_answer_that_breaks_the_contract_is_permanent(answers: list[dict[str, Any]]) -> None:
    with pytest.raises(PermanentUpstreamError):
        reachability_answer(answers, [TOLVAN], SUPPLIERS)


def letter(**changes: Any) -> OutgoingLetter:
    values: dict[str, Any] = {
        "message_id": "doc-1.v1",
        "recipient": TOLVAN,
        "provider": MailboxProvider.KIVRA,
        "text": "Hej",
    }
    values.update(changes)
    return OutgoingLetter(**values)


@pytest.mark.parametrize(
    ("mailbox", "code"),
    [
        (NO_MAILBOX, RefusalCode.NOT_REACHABLE),
        (MailboxReachability(MailboxProvider.KIVRA, declined=True), RefusalCode.NOT_REACHABLE),
        (MailboxReachability(MailboxProvider.KIVRA, sender_accepted=False), RefusalCode.SENDER_NOT_ACCEPTED),
    ],
)
def test_a_letter_is_refused_before_sending_when_the_recipient_service_says_so(
    mailbox: MailboxReachability, code: RefusalCode
) -> None:
    refused = refusal_before_delivery(Reachable(mailbox, "https://kivra.test"), letter())
    assert refused is not None and refused.code == code
    assert TOLVAN.value not in str(refused)  # masked


# -- DeliveryResult -----------------------------------------------------------------------------


def test_a_delivery_result_becomes_a_receipt_dated_when_it_came() -> None:
    answer = {"TransId": "t-1", "Status": [{"RecipientId": TOLVAN.value, "Delivered": True}]}
    receipt = delivery_result(answer, letter(), MailboxProvider.KIVRA, NOW)
    assert receipt.transaction_id == "t-1" and receipt.message_id == "doc-1.v1"
    assert receipt.delivered_at == NOW  # DeliveryResult carries no time


def test_not_delivered_is_a_refusal_and_a_result_without_transid_breaks_the_contract() -> None:
    with pytest.raises(MailboxRefused):
        delivery_result(
            {"TransId": "t", "Status": [{"RecipientId": TOLVAN.value, "Delivered": False}]},
            letter(),
            MailboxProvider.KIVRA,
            NOW,
        )
    with pytest.raises(PermanentUpstreamError):
        delivery_result({"Status": []}, letter(), MailboxProvider.KIVRA, NOW)


# -- errors -------------------------------------------------------------------------------------


def _library_exceptions(module: Any) -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith(module.__name__.split(".")[0])
    ]


def test_every_zeep_and_lxml_exception_has_an_explicit_mapping() -> None:
    zeep_classes = [c for c in _library_exceptions(zeep_exc) if not issubclass(c, Warning)]
    lxml_classes = [etree.XMLSyntaxError, etree.LxmlError, etree.Error]
    assert len(zeep_classes) > 10
    assert [c.__name__ for c in [*zeep_classes, *lxml_classes] if c not in MAPPING] == []


def _fault(code: str, error_code: str | None) -> zeep_exc.Fault:
    """A Fault as zeep raises it; ``error_code`` the applicationFault's ErrorCode text."""
    detail = None
    if error_code is not None:
        ns = "http://minameddelanden.gov.se/schema/Common/v3"
        detail = etree.Element("detail")
        fault = etree.SubElement(detail, f"{{{ns}}}applicationFault")
        etree.SubElement(fault, f"{{{ns}}}ErrorCode").text = error_code
        etree.SubElement(fault, f"{{{ns}}}Description").text = "Tolvan Tolvansson is 16"
        etree.SubElement(fault, f"{{{ns}}}CallId").text = "call-7-0123456789abcdef"
    return zeep_exc.Fault("x", code=code, detail=detail)


@pytest.mark.parametrize(
    ("exc", "expected", "code"),
    [
        (_fault("soap:Server", "6002"), MailboxRefused, RefusalCode.UNDER_18),
        (_fault("soap:Server", "6001"), MailboxRefused, RefusalCode.NOT_REACHABLE),
        (_fault("soap:Server", "6003"), MailboxRefused, RefusalCode.SENDER_NOT_ACCEPTED),
        (_fault("soap:Server", "6004"), MailboxRefused, RefusalCode.NOT_REACHABLE),
        (_fault("soap:Server", "1101"), MailboxRefused, RefusalCode.SIGNATURE_INVALID),
        (_fault("soap:Server", "1102"), MailboxRefused, RefusalCode.INVALID_LETTER),
        (_fault("soap:Server", "4999"), MailboxRefused, RefusalCode.INVALID_REQUEST),
        (_fault("soap:Server", "1"), MailboxRefused, RefusalCode.INVALID_REQUEST),
        (_fault("soap:Server", "9998"), MailboxRefused, RefusalCode.NOT_REACHABLE),
        (_fault("soap:Server", "5000"), TransientUpstreamError, None),
        (_fault("soap:Server", "5005"), TransientUpstreamError, None),
        (_fault("soap:Client", "5999"), TransientUpstreamError, None),
        (_fault("soap:Server", "RECIPIENT_UNDER_18"), PermanentUpstreamError, None),
        (_fault("soap:Server", None), TransientUpstreamError, None),
        (_fault("soap:Client", None), PermanentUpstreamError, None),
        (zeep_exc.TransportError(status_code=200), TransientUpstreamError, None),
        (zeep_exc.TransportError(status_code=503), TransientUpstreamError, None),
        (zeep_exc.TransportError(status_code=404), PermanentUpstreamError, None),
        (zeep_exc.XMLSyntaxError("cut off"), TransientUpstreamError, None),
        (zeep_exc.ValidationError("bad"), PermanentUpstreamError, None),
        (httpx.ConnectError("refused"), TransientUpstreamError, None),
        (httpx.ReadTimeout("slow"), TransientUpstreamError, None),
    ],
)
def test_library_errors_map_to_the_gateways_tree(
    exc: BaseException, expected: type[Exception], code: RefusalCode | None
) -> None:
    error = translate_exception(exc, "Kivra delivery service")
    assert type(error) is expected
    if code is not None:
        assert isinstance(error, MailboxRefused) and error.code == code
        assert "CallId call-7-0123456789abcdef" in str(error)
        assert error.service_code == str(int(error.service_code or "0"))
        assert "Tolvan" not in str(error)  # the service's description is not carried


def test_a_bug_is_not_translated() -> None:
    assert translate_exception(KeyError("x"), "mailbox") is None


# -- the letter, the population, the settings, the signature ------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": "has space"},
        {"message_id": ""},
        {"recipient": PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")},
        {"text": "  "},
        {"attachments": (Attachment("a.docx", "application/msword", b"x"),)},
    ],
)
def test_a_letter_that_a_mailbox_cannot_take_is_refused_at_construction(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        letter(**changes)


def test_a_letter_with_only_a_pdf_is_fine() -> None:
    assert letter(text="", attachments=(Attachment("a.pdf", PDF, b"%PDF"),)).attachments


@pytest.mark.parametrize(
    "person",
    [
        {
            "id": "191212121212",
            "id_type": "personnummer",
            "mailbox": "none",
            "mailbox_sender_accepted": False,
        },
        {"id": "999929013705", "id_type": "reservnummer", "mailbox": "Kivra"},
    ],
)
def test_the_population_file_refuses_mailbox_entries_that_cannot_be(person: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Population.model_validate({"persons": [{"given": "A", "family": "B", **person}]})


def test_settings_refuse_a_key_without_certificate_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        MailboxSettings(sign_key=tmp_path / "key.pem")
    with pytest.raises(ValidationError):
        MailboxSettings(sign_cert=tmp_path / "missing.pem")
    with pytest.raises(ValidationError):
        MailboxSettings(batch_size=1001)


def _write_identity(tmp_path: Path, name: str, password: bytes | None = None) -> tuple[Path, Path]:
    identity = throwaway_identity(name)
    cert = tmp_path / f"{name}.crt"
    key = tmp_path / f"{name}.key"
    cert.write_bytes(identity.certificate_pem)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    key.write_bytes(
        identity.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert, key


def test_a_real_certificate_and_key_are_read_from_the_settings_files(tmp_path: Path) -> None:
    cert, key = _write_identity(tmp_path, "Region Test", b"secret")
    identity = load_identity(MailboxSettings(sign_cert=cert, sign_key=key, sign_key_password="secret"))
    assert not identity.throwaway
    assert identity.fingerprint == throwaway_identity("Region Test").fingerprint


def test_a_key_that_does_not_belong_to_the_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    cert, _ = _write_identity(tmp_path, "One")
    _, other_key = _write_identity(tmp_path, "Two")
    with pytest.raises(ConfigurationError, match="does not belong"):
        load_identity(MailboxSettings(sign_cert=cert, sign_key=other_key))


def test_without_a_certificate_a_throwaway_one_is_made_once_per_process() -> None:
    first = load_identity(MailboxSettings())
    assert first.throwaway and first is load_identity(MailboxSettings())


def test_settings_write_the_sender_org_number_as_mina_meddelanden_does() -> None:
    assert MailboxSettings(sender_org_nr="2321000016").sender_org_nr == "162321000016"
    assert MailboxSettings(sender_org_nr="162321000016").sender_org_nr == "162321000016"
    with pytest.raises(ValidationError):
        MailboxSettings(sender_org_nr="232100-0016")


def test_the_signature_still_verifies_once_the_delivery_sits_in_a_soap_envelope() -> None:
    ns = "http://minameddelanden.gov.se/schema/Message/v3"
    signed_delivery = etree.Element(f"{{{ns}}}SignedDelivery", nsmap={"msg": ns})
    etree.SubElement(etree.SubElement(signed_delivery, f"{{{ns}}}Delivery"), f"{{{ns}}}Header").text = "x"
    identity = throwaway_identity("Region Stockholm")
    signed = sign_delivery(signed_delivery, identity)
    envelope = etree.Element("{http://schemas.xmlsoap.org/soap/envelope/}Envelope", nsmap={"soap": "urn:x"})
    etree.SubElement(envelope, "{urn:other}Body", nsmap={"o": "urn:other"}).append(signed)
    wire = etree.fromstring(etree.tostring(envelope))
    extracted = wire.find(f".//{{{ns}}}SignedDelivery")
    assert extracted is not None
    XMLVerifier().verify(
        extracted, x509_cert=identity.certificate, expect_config=SignatureConfiguration(location="./")
    )
