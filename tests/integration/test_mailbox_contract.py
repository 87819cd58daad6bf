"""Conformance to the official Mina meddelanden v3 contract (issue 15, items 1-4 and 7).

The official WSDLs and XSDs live beside the repository, in ``../shared/contracts/mina-meddelanden-v3``
(MIT, as published with an open municipal sender); the project ships contract files of its own.
Here, with lxml against the OFFICIAL schemas:

- every request the adapter sends (captured on the wire from a run against the mock, with the
  packaged WSDLs and with the official WSDL files unchanged) validates;
- every answer the mock gives (isReachable for the whole test population, deliverSecure,
  applicationFault) validates;
- hand-built official-valid answers fed through the adapter read as documented (isReachable with
  Secure, Not, pending, sender not accepted, unknown operator, address off the allowlist;
  deliverSecure receipts; numeric application faults), and nothing official-valid crashes it;
- both signatures are what the service wants: enveloped, exclusive c14n, RSA-SHA256, SHA-256.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.domain.documents import MailboxProvider, MailboxReachability
from gateway.domain.letter import Attachment
from gateway.domain.mailbox import PDF, OutgoingLetter, RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.mailbox_adapter import MailboxDeliveryClient, MailboxDirectoryClient, MailboxSettings
from mocks.mailbox import RECIPIENT_PATH, Recorder, create_app
from mocks.population import load as load_population
from mocks.runner import ServedApp
from tests.fakes import pnr

ROOT = Path(__file__).resolve().parents[2]
#: The official files, as a region receives them (the repository's parent holds ``shared/``).
OFFICIAL = ROOT.parent / "shared" / "contracts" / "mina-meddelanden-v3"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_RCP3 = "http://minameddelanden.gov.se/schema/Recipient/v3"
NS_RCP = "http://minameddelanden.gov.se/schema/Recipient"
NS_SVC3 = "http://minameddelanden.gov.se/schema/Service/v3"
NS_SVC = "http://minameddelanden.gov.se/schema/Service"
NS_MSG3 = "http://minameddelanden.gov.se/schema/Message/v3"
NS_CMN3 = "http://minameddelanden.gov.se/schema/Common/v3"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
TODAY = date(2026, 11, 25)
TOLVAN = pnr("191212121212")
KIVRA_ID = "165568402266"
KIVRA_AT = "https://kivra.mm.test/deliver"
FAST = {"retry_attempts": 1, "timeout": 5.0}
PDF_BYTES = b"%PDF-1.4\n% a small test document\n%%EOF\n"


@pytest.fixture(scope="module")
def official() -> etree.XMLSchema:
    """One schema over the official v3 request, answer and fault elements."""
    assert OFFICIAL.is_dir(), f"the official contract is missing: {OFFICIAL}"
    v3 = OFFICIAL / "schema" / "v3"
    wrapper = etree.XML(
        f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:conformance">
          <xs:import namespace="{NS_RCP3}" schemaLocation="{(v3 / "Recipient.xsd").as_uri()}"/>
          <xs:import namespace="{NS_SVC3}" schemaLocation="{(v3 / "Service.xsd").as_uri()}"/>
          <xs:import namespace="{NS_CMN3}" schemaLocation="{(v3 / "Common.xsd").as_uri()}"/>
        </xs:schema>"""
    )
    return etree.XMLSchema(wrapper)


def assert_official(schema: etree.XMLSchema, element: etree._Element) -> None:
    assert schema.validate(element), f"{etree.QName(element).localname}: {schema.error_log}"


def body_element(wire: bytes) -> etree._Element:
    body = etree.fromstring(wire).find(f"{{{NS_SOAP}}}Body")
    assert body is not None
    return body[0]


def letter(message_id: str) -> OutgoingLetter:
    return OutgoingLetter(
        message_id, TOLVAN, MailboxProvider.KIVRA, "Hej", (Attachment("a.pdf", PDF, PDF_BYTES),)
    )


# -- what the adapter sends, and what the mock answers --------------------------------------------


class Wire:
    """Every SOAP request and answer that crossed an httpx client, as bytes."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.answered: list[bytes] = []

    async def request(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.sent.append(request.content)

    async def response(self, response: httpx.Response) -> None:
        if response.request.method == "POST":
            self.answered.append(await response.aread())


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServedApp, Recorder]]:
    recorder = Recorder()
    with ServedApp(create_app(recorder=recorder, today=lambda: TODAY)) as app:
        yield app, recorder


def mock_settings(served: ServedApp, **changes: object) -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "url": served.url + RECIPIENT_PATH,
            "service_addresses": {"*": [served.url + "/mailbox/"]},
            **FAST,
            **changes,
        }
    )


@pytest.mark.parametrize("wsdls", ["packaged", "official"])
async def test_requests_and_the_mocks_answers_validate_against_the_official_schemas(
    served: tuple[ServedApp, Recorder], official: etree.XMLSchema, wsdls: str
) -> None:
    """Item 1: also with GATEWAY_MAILBOX_*_WSDL pointed at the official files, unchanged."""
    app, recorder = served
    files = (
        {"recipient_wsdl": str(OFFICIAL / "Recipient.wsdl"), "delivery_wsdl": str(OFFICIAL / "Service.wsdl")}
        if wsdls == "official"
        else {}
    )
    wire = Wire()
    hooks = {"request": [wire.request], "response": [wire.response]}
    message_id = f"conform-{wsdls}-{uuid.uuid4().hex[:6]}"
    async with (
        httpx.AsyncClient(event_hooks=hooks) as http,
        MailboxDeliveryClient(mock_settings(app, **files), client=http) as client,
    ):
        await client.directory.reachability([TOLVAN])
        receipt = await client.deliver(letter(message_id))
    assert receipt.transaction_id
    kinds = [etree.QName(body_element(w)).localname for w in wire.sent]
    assert kinds == ["isReachable", "isReachable", "deliverSecure"]
    for sent in wire.sent:
        assert_official(official, body_element(sent))
    for answer in wire.answered:
        assert_official(official, body_element(answer))
    [got] = recorder.delivered(message_id)
    assert got.signature_verified and got.seal_verified


async def test_the_mocks_isreachable_answers_for_the_whole_population_validate(
    served: tuple[ServedApp, Recorder], official: etree.XMLSchema
) -> None:
    app, _ = served
    ids = [p.id for p in load_population().persons if p.id_type != "reservnummer"]
    request = etree.Element(f"{{{NS_RCP3}}}isReachable")
    etree.SubElement(request, f"{{{NS_RCP3}}}senderOrgNr").text = "162321000016"
    for number in ids:
        etree.SubElement(request, f"{{{NS_RCP3}}}recipientId").text = number
    assert_official(official, request)
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            app.url + RECIPIENT_PATH, content=envelope(request), headers={"SOAPAction": '""'}
        )
    assert answer.status_code == 200
    element = body_element(answer.content)
    assert_official(official, element)
    assert len(element) == len(ids)


async def test_the_mock_refuses_what_breaks_the_contract_with_a_clear_fault(
    served: tuple[ServedApp, Recorder],
) -> None:
    """Item 2: a 10-digit senderOrgNr (the old shape) is a soap:Client fault naming the schema."""
    app, _ = served
    request = etree.Element(f"{{{NS_RCP3}}}isReachable")
    etree.SubElement(request, f"{{{NS_RCP3}}}senderOrgNr").text = "2321000016"
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            app.url + RECIPIENT_PATH, content=envelope(request), headers={"SOAPAction": '""'}
        )
    assert answer.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in answer.text and "senderOrgNr" in answer.text


async def test_the_mocks_application_fault_validates(
    served: tuple[ServedApp, Recorder], official: etree.XMLSchema
) -> None:
    app, _ = served
    wire = Wire()
    minor = pnr("201004202386")  # 16, with a Kivra account: the operator refuses (R-ID-6)
    async with (
        httpx.AsyncClient(event_hooks={"response": [wire.response]}) as http,
        MailboxDeliveryClient(mock_settings(app), client=http) as client,
    ):
        with pytest.raises(MailboxRefused) as refused:
            await client.deliver(
                OutgoingLetter(f"minor-{uuid.uuid4().hex[:6]}", minor, MailboxProvider.KIVRA, "Hej")
            )
    assert refused.value.code == RefusalCode.UNDER_18
    fault = etree.fromstring(wire.answered[-1]).find(f".//{{{NS_CMN3}}}applicationFault")
    assert fault is not None
    assert_official(official, fault)


# -- the signatures -------------------------------------------------------------------------------


async def test_both_signatures_are_enveloped_exclusive_c14n_rsa_sha256_by_the_sender(
    served: tuple[ServedApp, Recorder],
) -> None:
    """Item 4: SignedDelivery signed, then SealedDelivery (after Seal) signed, both verifiable
    with the sender's certificate and nothing weaker than the service wants."""
    app, _ = served
    wire = Wire()
    async with (
        httpx.AsyncClient(event_hooks={"request": [wire.request]}) as http,
        MailboxDeliveryClient(mock_settings(app), client=http) as client,
    ):
        await client.deliver(letter(f"sig-{uuid.uuid4().hex[:6]}"))
        certificate = client.identity.certificate
    sealed = body_element(wire.sent[-1])[0]
    assert etree.QName(sealed).localname == "deliverSecure"
    assert [etree.QName(c).localname for c in sealed] == ["SignedDelivery", "Seal", "Signature"]
    signed = sealed.find(f"{{{NS_MSG3}}}SignedDelivery")
    assert signed is not None and [etree.QName(c).localname for c in signed] == ["Delivery", "Signature"]
    expected = SignatureConfiguration(
        location="./",
        signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
    for element in (signed, sealed):
        signature = element.find(f"{{{NS_DS}}}Signature")
        assert signature is not None
        c14n = signature.find(f"{{{NS_DS}}}SignedInfo/{{{NS_DS}}}CanonicalizationMethod")
        assert c14n is not None
        assert c14n.get("Algorithm") == CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
        transforms = [t.get("Algorithm") for t in signature.iter(f"{{{NS_DS}}}Transform")]
        assert "http://www.w3.org/2000/09/xmldsig#enveloped-signature" in transforms
        verified = XMLVerifier().verify(
            etree.fromstring(etree.tostring(element)), x509_cert=certificate, expect_config=expected
        )
        assert not isinstance(verified, list)


# -- official-valid answers, hand-built, through the adapter --------------------------------------


def envelope(child: etree._Element) -> bytes:
    root = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP})
    etree.SubElement(root, f"{{{NS_SOAP}}}Body").append(child)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def reachability(
    kind: str = "Secure",
    *,
    pending: bool = False,
    accepted: bool = True,
    supplier: str | None = KIVRA_ID,
    address: str = KIVRA_AT,
    extras: bool = False,
) -> etree._Element:
    """An isReachableResponse for TOLVAN, as the real service writes it."""
    answer = etree.Element(f"{{{NS_RCP3}}}isReachableResponse", nsmap={"ns2": NS_RCP3, "ns3": NS_RCP})
    status = etree.SubElement(answer, f"{{{NS_RCP3}}}return")
    account = etree.SubElement(status, f"{{{NS_RCP}}}AccountStatus")
    etree.SubElement(account, f"{{{NS_RCP}}}RecipientId").text = TOLVAN.value
    etree.SubElement(account, f"{{{NS_RCP}}}Type").text = kind
    etree.SubElement(account, f"{{{NS_RCP}}}Pending").text = "true" if pending else "false"
    if supplier is not None:
        s = etree.SubElement(account, f"{{{NS_RCP}}}ServiceSupplier")
        etree.SubElement(s, f"{{{NS_RCP}}}Id").text = supplier
        etree.SubElement(s, f"{{{NS_RCP}}}Name").text = "Kivra AB"
        if extras:
            etree.SubElement(s, f"{{{NS_RCP}}}Logo").text = "https://kivra.mm.test/logo.png"
        etree.SubElement(s, f"{{{NS_RCP}}}ServiceAdress").text = address
        if extras:
            etree.SubElement(s, f"{{{NS_RCP}}}UIAdress").text = "https://kivra.test/"
        etree.SubElement(s, f"{{{NS_RCP}}}InternalServiceAdress").text = address
    if extras:
        etree.SubElement(account, f"{{{NS_RCP}}}LastRegistration").text = "2024-03-01T10:00:00+01:00"
    etree.SubElement(status, f"{{{NS_RCP}}}SenderAccepted").text = "true" if accepted else "false"
    if extras:
        etree.SubElement(status, f"{{{NS_RCP}}}LastSenderAcceptChange").text = "2024-03-02T10:00:00Z"
    return answer


def delivery_result(*statuses: tuple[str, bool]) -> etree._Element:
    answer = etree.Element(f"{{{NS_SVC3}}}deliverSecureResponse", nsmap={"ns2": NS_SVC3, "ns3": NS_SVC})
    result = etree.SubElement(answer, f"{{{NS_SVC3}}}return")
    etree.SubElement(result, f"{{{NS_SVC}}}TransId").text = "T-4711"
    for recipient, delivered in statuses:
        status = etree.SubElement(result, f"{{{NS_SVC}}}Status")
        etree.SubElement(status, f"{{{NS_SVC}}}RecipientId").text = recipient
        etree.SubElement(status, f"{{{NS_SVC}}}Delivered").text = "true" if delivered else "false"
    return answer


def application_fault(code: int) -> bytes:
    """A JAX-WS service's declared fault: soap:Server with the applicationFault in detail."""
    fault = etree.Element(f"{{{NS_CMN3}}}applicationFault", nsmap={"ns2": NS_CMN3})
    etree.SubElement(fault, f"{{{NS_CMN3}}}ErrorCode").text = str(code)
    etree.SubElement(fault, f"{{{NS_CMN3}}}Description").text = "Tolvan Tolvansson: refused"
    etree.SubElement(fault, f"{{{NS_CMN3}}}CallId").text = "a1b2c3d4e5f60718293a4b5c"
    root = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP})
    node = etree.SubElement(etree.SubElement(root, f"{{{NS_SOAP}}}Body"), f"{{{NS_SOAP}}}Fault")
    etree.SubElement(node, "faultcode").text = "soap:Server"
    etree.SubElement(node, "faultstring").text = f"Error {code}"
    etree.SubElement(node, "detail").append(fault)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


Handler = Callable[[httpx.Request], httpx.Response]


def playing(isreachable: etree._Element | bytes, deliver: etree._Element | bytes | None = None) -> Handler:
    """The real services, played from hand-built answers: isReachable at the recipient service,
    deliverSecure at KIVRA_AT."""

    def answer(request: httpx.Request) -> httpx.Response:
        given = deliver if str(request.url).startswith(KIVRA_AT) else isreachable
        assert given is not None
        if isinstance(given, bytes):
            return httpx.Response(500, content=given, headers={"Content-Type": "text/xml"})
        return httpx.Response(200, content=envelope(given), headers={"Content-Type": "text/xml"})

    return answer


def real_settings(**changes: object) -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "url": "https://mm.test/Recipient/v3",
            "service_addresses": {KIVRA_ID: [KIVRA_AT]},
            **FAST,
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (reachability(), MailboxReachability(MailboxProvider.KIVRA)),
        (reachability(extras=True), MailboxReachability(MailboxProvider.KIVRA)),
        (reachability("Not", supplier=None, accepted=False), MailboxReachability()),
        (reachability(pending=True), MailboxReachability()),
        (reachability("Anonymous"), MailboxReachability()),
        (reachability(accepted=False), MailboxReachability(MailboxProvider.KIVRA, sender_accepted=False)),
        (reachability("Not"), MailboxReachability(MailboxProvider.KIVRA, declined=True)),
    ],
    ids=[
        "secure",
        "secure-all-optional-parts",
        "not",
        "pending",
        "anonymous",
        "sender-not-accepted",
        "declined",
    ],
)
async def test_r_doc_5_official_isreachable_answers_read_as_documented(
    official: etree.XMLSchema, answer: etree._Element, expected: MailboxReachability
) -> None:
    assert_official(official, answer)
    http = httpx.AsyncClient(transport=httpx.MockTransport(playing(answer)))
    async with MailboxDirectoryClient(real_settings(), client=http) as directory:
        found = await directory.reachability([TOLVAN])
    await http.aclose()
    assert found[TOLVAN] == expected


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (reachability(supplier="165599999999"), "not in the supplier table"),
        (reachability(address="https://forged.example/deliver"), "not on the allowlist"),
        (reachability(address="http://kivra.mm.test/deliver"), "not on the allowlist"),
        (reachability(supplier=None), "named no mailbox operator"),
    ],
    ids=["unknown-operator", "forged-address", "plain-http", "secure-without-operator"],
)
async def test_r_doc_5_a_mailbox_the_gateway_may_not_use_is_no_mailbox_with_the_reason_and_no_letter(
    official: etree.XMLSchema, answer: etree._Element, why: str
) -> None:
    """Items 5 and 7: logged, routed as no mailbox, the reason kept; the operator is never called."""
    assert_official(official, answer)
    called: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        called.append(str(request.url))
        return playing(answer)(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with MailboxDeliveryClient(real_settings(), client=http) as client:
        found = (await client.directory.reachability([TOLVAN]))[TOLVAN]
        with pytest.raises(MailboxRefused) as refused:
            await client.deliver(letter("never-1"))
    await http.aclose()
    assert found.provider is None and why in (found.unusable or "")
    assert refused.value.code == RefusalCode.NOT_REACHABLE and why in str(refused.value)
    assert all(url == "https://mm.test/Recipient/v3" for url in called)


async def test_an_official_delivery_result_becomes_the_receipt(official: etree.XMLSchema) -> None:
    result = delivery_result((TOLVAN.value, True))
    assert_official(official, result)
    http = httpx.AsyncClient(transport=httpx.MockTransport(playing(reachability(), result)))
    async with MailboxDeliveryClient(real_settings(), client=http) as client:
        receipt = await client.deliver(letter("receipt-1"))
    await http.aclose()
    assert (receipt.transaction_id, receipt.provider, receipt.message_id) == (
        "T-4711",
        MailboxProvider.KIVRA,
        "receipt-1",
    )
    assert receipt.delivered_at.tzinfo is not None


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (delivery_result((TOLVAN.value, False)), MailboxRefused),
        (delivery_result(("198503141239", True)), PermanentUpstreamError),  # not our recipient
    ],
    ids=["not-delivered", "another-recipient"],
)
async def test_an_official_delivery_result_that_is_no_receipt_is_a_gateway_error(
    official: etree.XMLSchema, result: etree._Element, expected: type[UpstreamError]
) -> None:
    assert_official(official, result)
    http = httpx.AsyncClient(transport=httpx.MockTransport(playing(reachability(), result)))
    async with MailboxDeliveryClient(real_settings(), client=http) as client:
        with pytest.raises(expected):
            await client.deliver(letter("odd-1"))
    await http.aclose()


@pytest.mark.parametrize(
    ("code", "expected", "refusal"),
    [
        (1, MailboxRefused, RefusalCode.INVALID_REQUEST),
        (1101, MailboxRefused, RefusalCode.SIGNATURE_INVALID),
        (4999, MailboxRefused, RefusalCode.INVALID_REQUEST),
        (5000, TransientUpstreamError, None),
        (5003, TransientUpstreamError, None),
        (6002, MailboxRefused, RefusalCode.UNDER_18),
        (6004, MailboxRefused, RefusalCode.NOT_REACHABLE),
        (9998, MailboxRefused, RefusalCode.NOT_REACHABLE),
    ],
)
async def test_numeric_application_faults_are_classed_by_their_number(
    official: etree.XMLSchema, code: int, expected: type[UpstreamError], refusal: RefusalCode | None
) -> None:
    fault = application_fault(code)
    detail = etree.fromstring(fault).find(f".//{{{NS_CMN3}}}applicationFault")
    assert detail is not None
    assert_official(official, detail)
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return playing(reachability(), fault)(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with MailboxDeliveryClient(real_settings(), client=http) as client:
        with pytest.raises(expected) as caught:
            await client.deliver(letter(f"fault-{code}"))
    await http.aclose()
    assert "Tolvan" not in str(caught.value)  # the service's Description is not carried
    if refusal is not None:
        assert isinstance(caught.value, MailboxRefused) and caught.value.code == refusal
        assert caught.value.service_code == str(code)
    assert calls.count(KIVRA_AT) == 1  # retry_attempts=1


async def test_an_application_fault_to_isreachable_is_a_gateway_error(official: etree.XMLSchema) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(playing(application_fault(1001))))
    async with MailboxDirectoryClient(real_settings(), client=http) as directory:
        with pytest.raises(MailboxRefused):
            await directory.reachability([TOLVAN])
    await http.aclose()
