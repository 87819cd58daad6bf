"""The digital mailbox mock on the Mina meddelanden v3 contract: a recipient service and one
delivery service per mailbox operator, SOAP 1.1 over HTTP, answering from the one test population.
Requests are validated against the contract (a ``soap:Client`` fault naming what is wrong).

``POST /mailbox/recipient``            ``isReachable``: per person a ``ReachabilityStatus``
``POST /mailbox/{kivra|billo|minmyndighetspost}``   ``deliverSecure`` at that operator
``GET  /mailbox/recipient?wsdl``, ``/mailbox/kivra?wsdl`` (…)   the WSDLs; ``?xsd=<file>`` the schemas
``GET|PUT /mailbox/_switches``         the failure switches as JSON (PUT changes only what it names)
``GET|DELETE /mailbox/_deliveries``    what the operators received (no bodies), and forgetting it

How declined, not accepted and minors look on the wire, and the error codes: ``docs/mailbox.md``.
Both XML-DSig signatures of a delivery (over ``SignedDelivery`` and over the whole
``SealedDelivery``, after ``Seal``) are verified against the certificate the mock is given
(``trusted_certificate``) or, without one, the certificate in the signature's own KeyInfo (then
only integrity is shown, not who signed). Every delivery request is recorded in a
:class:`Recorder` so tests count deliveries and check signatures.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import multiprocessing
import random
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from mocks import population as population_file
from mocks.population import Population, TestPerson
from mocks.soap import add_switch_routes, request_element

PREFIX = "/mailbox"
RECIPIENT_PATH = f"{PREFIX}/recipient"
SWITCHES_PATH = f"{PREFIX}/_switches"
DELIVERIES_PATH = f"{PREFIX}/_deliveries"
#: Mina meddelanden v3 binds every operation with an empty SOAPAction.
RECIPIENT_ACTION = ""
DELIVER_ACTION = ""
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_RECIPIENT_V3 = "http://minameddelanden.gov.se/schema/Recipient/v3"
NS_RECIPIENT = "http://minameddelanden.gov.se/schema/Recipient"
NS_SENDER = "http://minameddelanden.gov.se/schema/Sender"
NS_MESSAGE_V1 = "http://minameddelanden.gov.se/schema/Message"
NS_MESSAGE_V2 = "http://minameddelanden.gov.se/schema/Message/v2"
NS_MESSAGE = "http://minameddelanden.gov.se/schema/Message/v3"
NS_SERVICE_V1 = "http://minameddelanden.gov.se/schema/Service"
NS_SERVICE = "http://minameddelanden.gov.se/schema/Service/v3"
NS_COMMON = "http://minameddelanden.gov.se/schema/Common/v3"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
RECIPIENT_WSDL = "Recipient.wsdl"
DELIVERY_WSDL = "Service.wsdl"
SCHEMA_FILES = tuple(sorted(p.name for p in WSDL_DIR.glob("*.xsd")))
XML_TYPE = "text/xml; charset=utf-8"
PDF = "application/pdf"
BODY_TYPES = frozenset({"text/plain", "text/html"})
ADULT_AGE = 18


@dataclass(frozen=True, slots=True)
class Operator:
    """A mailbox operator: its ``ServiceSupplier`` Id (16 + org number) and Name, and its path
    under ``/mailbox``. The Ids are the ones in ``mappings/mailbox_suppliers.yaml``."""

    slug: str
    id: str
    name: str


#: By the ``mailbox`` value in persons.yaml.
OPERATORS = {
    "Kivra": Operator("kivra", "165568402266", "Kivra"),
    "Billo": Operator("billo", "165591386718", "Billo"),
    "MinMyndighetspost": Operator("minmyndighetspost", "162021006883", "Min Myndighetspost"),
}
_BY_SLUG = {op.slug: op for op in OPERATORS.values()}
#: ``mailbox: declined`` names no operator; the mock says the person declined at Kivra.
DECLINED_AT = OPERATORS["Kivra"]


class ErrorCode:
    """The ``applicationFault`` ErrorCodes the mock answers: numbers, as the real services send
    (1-9998); the ranges follow the gateway's reading (docs/mailbox.md)."""

    SIGNATURE_INVALID = 1101
    INVALID_MESSAGE = 1102
    DUPLICATE_MESSAGE_ID = 1103
    SERVICE_TROUBLE = 5000
    RECIPIENT_NOT_REACHABLE = 6001
    RECIPIENT_UNDER_18 = 6002
    SENDER_NOT_ACCEPTED = 6003


class Switches(BaseModel):
    """Failure switches, applied to every SOAP request (not to the WSDLs, switches or records)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(
        0.0, ge=0, description="Seconds from a request's arrival to its answer (its checks included)."
    )
    error_rate: float = Field(
        0.0, ge=0, le=1, description="Share of requests answered with a soap:Server Fault (HTTP 500)."
    )
    fail_next: int = Field(0, ge=0, description="Answer HTTP 500 (plain text) to the next N requests.")
    outage: bool = Field(False, description="Services down: 503 to every SOAP request.")
    delivery_outage: bool = Field(False, description="Operators down: 503 to deliverSecure only.")
    fail_next_delivery: int = Field(0, ge=0, description="Answer HTTP 500 to the next N deliverSecure only.")


@dataclass
class ReceivedAttachment:
    filename: str
    content_type: str
    size: int
    checksum_ok: bool


@dataclass
class Received:
    """One ``deliverSecure`` as an operator saw it (accepted or refused)."""

    operator: str
    message_id: str
    recipient: str
    sender_id: str
    sender_name: str
    #: The seal's signature (over the whole SealedDelivery) verified too.
    seal_verified: bool
    subject: str
    reference: str | None
    correlation_id: str | None
    content_type: str
    body: bytes
    attachments: list[ReceivedAttachment]
    #: The XML-DSig signature verified (against the trusted certificate, or the KeyInfo's own).
    signature_verified: bool
    #: SHA-256 of the certificate the signature was checked with (hex), when there was one.
    certificate_sha256: str | None
    #: The trusted certificate configured at the mock was the one checked against.
    trusted_certificate: bool
    error_code: int | None = None
    trans_id: str | None = None
    delivered_at: datetime | None = None
    #: How many more times the same message id was delivered (answered with the same result).
    repeats: int = 0

    @property
    def accepted(self) -> bool:
        return self.error_code is None

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("body")
        data["body_size"] = len(self.body)
        data["delivered_at"] = self.delivered_at.isoformat() if self.delivered_at else None
        return data


@dataclass
class Recorder:
    """What the mock received. ``deliveries``: accepted, one per (sender, message id)."""

    deliveries: dict[tuple[str, str], Received] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    #: Number of recipient ids in each isReachable call, in order.
    reachability_calls: list[int] = field(default_factory=list)

    @property
    def refused(self) -> list[Received]:
        return [r for r in self.requests if not r.accepted]

    def delivered(self, message_id: str) -> list[Received]:
        return [d for (_, m), d in self.deliveries.items() if m == message_id]

    def clear(self) -> None:
        self.deliveries.clear()
        self.requests.clear()
        self.reachability_calls.clear()


class _Fault(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


_SCHEMA_LOCATION = re.compile(r'schemaLocation="([^"/]+\.xsd)"')
_SOAP_ADDRESS = re.compile(r'(<soap:address location=")[^"]*(")')


def _served(text: str, base: str) -> str:
    text = _SCHEMA_LOCATION.sub(lambda m: f'schemaLocation="{base}?xsd={m.group(1)}"', text)
    return _SOAP_ADDRESS.sub(lambda m: f"{m.group(1)}{base}{m.group(2)}", text)


def _envelope(body_child: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP})
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Body").append(body_child)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _xml(content: bytes) -> Response:
    return Response(content, media_type=XML_TYPE)


def soap_fault(code: str, text: str, detail: etree._Element | None = None) -> Response:
    """A SOAP 1.1 Fault (HTTP 500); ``detail`` carries an ``applicationFault``."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP})
    node = etree.SubElement(etree.SubElement(envelope, f"{{{NS_SOAP}}}Body"), f"{{{NS_SOAP}}}Fault")
    etree.SubElement(node, "faultcode").text = f"soap:{code}"
    etree.SubElement(node, "faultstring").text = text
    if detail is not None:
        etree.SubElement(node, "detail").append(detail)
    content = bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    return Response(content, status_code=500, media_type=XML_TYPE)


def application_fault(code: int, description: str) -> Response:
    """The declared fault, as a JAX-WS service throws it: ``soap:Server`` with the detail."""
    fault = etree.Element(f"{{{NS_COMMON}}}applicationFault", nsmap={"mmc": NS_COMMON})
    etree.SubElement(fault, f"{{{NS_COMMON}}}ErrorCode").text = str(code)
    etree.SubElement(fault, f"{{{NS_COMMON}}}Description").text = description
    etree.SubElement(fault, f"{{{NS_COMMON}}}CallId").text = uuid.uuid4().hex
    return soap_fault("Server", f"{code}: {description}", fault)


def _r(tag: str) -> str:
    return f"{{{NS_RECIPIENT}}}{tag}"


def _r3(tag: str) -> str:
    return f"{{{NS_RECIPIENT_V3}}}{tag}"


def _m(tag: str) -> str:
    return f"{{{NS_MESSAGE}}}{tag}"


def _m1(tag: str) -> str:
    return f"{{{NS_MESSAGE_V1}}}{tag}"


def _m2(tag: str) -> str:
    return f"{{{NS_MESSAGE_V2}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _birth_date(number: str) -> date:
    day = int(number[6:8])
    return date(int(number[0:4]), int(number[4:6]), day - 60 if day > 60 else day)


def _age(number: str, today: date) -> int:
    born = _birth_date(number)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def reachability_status(person: TestPerson | None, recipient_id: str, base_url: str) -> etree._Element:
    """One ``ReachabilityStatus`` for ``recipient_id`` (see docs/mailbox.md for the conventions)."""
    status = etree.Element(_r3("return"))
    account = _sub(status, _r("AccountStatus"))
    _sub(account, _r("RecipientId"), recipient_id)
    choice = "none" if person is None or person.id_type == "reservnummer" else person.mailbox
    if choice == "none":
        _sub(account, _r("Type"), "Not")
        _sub(account, _r("Pending"), "false")
        _sub(status, _r("SenderAccepted"), "false")
        return status
    operator = DECLINED_AT if choice == "declined" else OPERATORS[choice]
    # Declined mail from the sector: "Not" reachable, yet the operator is named (docs/mailbox.md).
    _sub(account, _r("Type"), "Not" if choice == "declined" else "Secure")
    _sub(account, _r("Pending"), "false")
    supplier = _sub(account, _r("ServiceSupplier"))
    _sub(supplier, _r("Id"), operator.id)
    _sub(supplier, _r("Name"), operator.name)
    _sub(supplier, _r("ServiceAdress"), f"{base_url}{PREFIX}/{operator.slug}")
    _sub(supplier, _r("InternalServiceAdress"), f"{base_url}{PREFIX}/{operator.slug}")
    accepted = choice == "declined" or (person is not None and person.mailbox_sender_accepted)
    _sub(status, _r("SenderAccepted"), "true" if accepted else "false")
    return status


def _certificate_in(signature: etree._Element) -> x509.Certificate | None:
    text = signature.findtext(f"{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/{{{NS_DS}}}X509Certificate")
    if not text:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Verified:
    ok: bool
    signed: etree._Element | None
    certificate_sha256: str | None
    trusted: bool


#: What a delivery's signatures must use (Mina meddelanden): RSA-SHA256 (or ECDSA-SHA256), SHA-256
#: digests, exclusive canonicalization, enveloped, the signature a direct child of what it signs.
EXPECTED = SignatureConfiguration(
    location="./",
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


def verify_signature(signed_delivery: etree._Element, trusted: x509.Certificate | None) -> Verified:
    """Check the enveloped signature over ``SignedDelivery`` (or ``SealedDelivery``); on success
    ``signed`` is what it covers (read the delivery from there: "see what is signed"). signxml
    works on a copy of its own (it serialises and parses the element), so this one is kept."""
    signature = signed_delivery.find(f"{{{NS_DS}}}Signature")
    if signature is None:
        return Verified(False, None, None, False)
    certificate = trusted if trusted is not None else _certificate_in(signature)
    if certificate is None:
        return Verified(False, None, None, False)
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
    try:
        result = XMLVerifier().verify(signed_delivery, x509_cert=certificate, expect_config=EXPECTED)
    except (SignXMLException, ValueError):
        return Verified(False, None, fingerprint, trusted is not None)
    assert not isinstance(result, list)  # one reference expected
    return Verified(True, result.signed_xml, fingerprint, trusted is not None)


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    """A contract schema, parsed once per process."""
    return etree.XMLSchema(etree.parse(str(WSDL_DIR / name)))


@functools.lru_cache(maxsize=4)
def _certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


@dataclass(frozen=True, slots=True)
class Examined:
    """What a ``deliverSecure`` request is, before the operator's own state is asked: the SOAP
    fault for a request that breaks the contract, or what was received and, when its
    signatures or letter are wrong, the ``applicationFault`` (code, description) to answer."""

    fault: tuple[str, str] | None = None
    received: Received | None = None
    refusal: tuple[int, str] | None = None


def examine_delivery(
    operator_slug: str, body: bytes, soap_action: str | None, trusted_pem: bytes | None
) -> Examined:
    """The checks of a delivery that need nothing but the request, in the order the operator
    makes them: the contract (SOAPAction, envelope, schema), both signatures (``1101``), the
    letter (``1102``). A pure function, so it may run in a worker process (``create_app``'s
    ``workers``): the XML work, signxml's above all, is most of a delivery's CPU."""
    operator = _BY_SLUG[operator_slug]
    found = request_element(body, soap_action, DELIVER_ACTION, what="one request element")
    if isinstance(found, tuple):
        return Examined(fault=found)
    schema = _schema("mm-service-v3.xsd")
    if not schema.validate(found):
        return Examined(fault=("Client", f"request does not follow the schema: {schema.error_log}"))
    sealed = found.find(f"{{{NS_SERVICE}}}deliverSecure")
    assert sealed is not None  # the schema requires it
    trusted = _certificate(trusted_pem) if trusted_pem else None
    # The seal's signature covers the whole SealedDelivery; the letter's covers SignedDelivery.
    seal = verify_signature(sealed, trusted)
    outer = seal.signed if seal.signed is not None else sealed
    signed_delivery = outer.find(_m("SignedDelivery"))
    assert signed_delivery is not None  # the schema requires it
    verified = verify_signature(signed_delivery, trusted)
    # Read what was signed when the signature holds; otherwise what came, to record it.
    source = verified.signed if verified.signed is not None else signed_delivery
    received = _read(operator, source, verified, seal.ok)
    if not verified.ok:
        return Examined(
            received=received,
            refusal=(ErrorCode.SIGNATURE_INVALID, "the delivery's XML signature does not verify"),
        )
    if not seal.ok:
        return Examined(
            received=received,
            refusal=(ErrorCode.SIGNATURE_INVALID, "the seal's XML signature does not verify"),
        )
    try:
        _check_message(source)
    except _Fault as fault:
        return Examined(received=received, refusal=(fault.code, fault.description))
    return Examined(received=received)


def _check_message(signed_delivery: etree._Element) -> None:
    messages = signed_delivery.findall(f"{_m('Delivery')}/{_m('Message')}")
    if len(messages) != 1:
        raise _Fault(ErrorCode.INVALID_MESSAGE, "the mock takes one Message per delivery")
    message = messages[0]
    content_type = message.findtext(f"{_m('Body')}/{_m1('ContentType')}") or ""
    if content_type.split(";")[0].strip() not in BODY_TYPES:
        raise _Fault(ErrorCode.INVALID_MESSAGE, f"body ContentType {content_type!r} is not taken")
    for attachment in message.findall(_m("Attachment")):
        if attachment.findtext(_m1("ContentType")) != PDF:
            raise _Fault(ErrorCode.INVALID_MESSAGE, "attachments must be application/pdf")
        data = _b64(attachment.findtext(_m1("Body")))
        if hashlib.md5(data).hexdigest() != (attachment.findtext(_m1("Checksum")) or "").lower():
            raise _Fault(ErrorCode.INVALID_MESSAGE, "attachment Checksum (MD5) does not match")


def _warm() -> None:
    """A worker process's start: the schema parsed before the first delivery."""
    _schema("mm-service-v3.xsd")


def create_app(
    population: Population | None = None,
    switches: Switches | None = None,
    *,
    recorder: Recorder | None = None,
    trusted_certificate: bytes | None = None,
    today: Callable[[], date] = date.today,
    rng: random.Random | None = None,
    workers: int = 0,
) -> FastAPI:
    """The mock for ``population`` (default: ``mocks.population.load()``). Pass ``switches`` and
    ``recorder`` to flip failures and read what was delivered from a test without HTTP;
    ``trusted_certificate`` (PEM) is the sender certificate signatures must verify against.
    ``workers`` > 0 examines deliveries (schema, both signatures, the letter) in that many
    worker processes, the same checks off the serving loop; ``app.state.close()`` ends them."""
    people = population if population is not None else population_file.load()
    state = switches if switches is not None else Switches()
    record = recorder if recorder is not None else Recorder()
    if trusted_certificate:
        _certificate(trusted_certificate)  # a bad certificate fails here, not at a delivery
    chance = rng if rng is not None else random.Random()
    recipient_schema = _schema("mm-recipient-v3.xsd")
    _schema("mm-service-v3.xsd")
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
        if workers > 0
        else None
    )

    app = FastAPI(title="Digital mailboxes, Mina meddelanden v3 (mock)", version="3", openapi_url=None)
    app.state.close = (lambda: pool.shutdown(cancel_futures=True)) if pool is not None else (lambda: None)

    async def examine(slug: str, body: bytes, soap_action: str | None) -> Examined:
        if pool is None:
            return examine_delivery(slug, body, soap_action, trusted_certificate)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            pool, examine_delivery, slug, body, soap_action, trusted_certificate
        )

    def refused_now(delivery: bool = False) -> Response | None:
        """The switches that answer at once: the service is down, or fails the next delivery."""
        if state.outage or (delivery and state.delivery_outage):
            return Response("Service Unavailable\n", status_code=503, media_type="text/plain")
        if delivery and state.fail_next_delivery:
            state.fail_next_delivery -= 1
            return Response("Internal Server Error\n", status_code=500, media_type="text/plain")
        return None

    def failing() -> Response | None:
        """The switches that answer after the latency, as a busy service does."""
        if state.fail_next:
            state.fail_next -= 1
            return Response("Internal Server Error\n", status_code=500, media_type="text/plain")
        if state.error_rate and chance.random() < state.error_rate:
            return soap_fault("Server", "temporary failure (error_rate switch)")
        return None

    async def answer_at(started: float, response: Response) -> Response:
        """The ``latency`` switch is the service's answer time, counted from the request's
        arrival: the checks of the request are part of it, not added on top (a provider with
        50 ms latency answers in 50 ms; the benchmark's ideal assumes exactly that)."""
        left = started + state.latency - asyncio.get_running_loop().time()
        if left > 0:
            await asyncio.sleep(left)
        return response

    async def question(request: Request, action: str, schema: etree.XMLSchema) -> etree._Element | Response:
        """The one element in the SOAP Body, checked; or the Fault to answer."""
        found = request_element(
            await request.body(), request.headers.get("soapaction"), action, what="one request element"
        )
        if isinstance(found, tuple):
            return soap_fault(*found)
        if not schema.validate(found):
            return soap_fault("Client", f"request does not follow the schema: {schema.error_log}")
        return found

    def contract(request: Request, wsdl: str) -> Response:
        base = str(request.url.replace(query=None, fragment=None))
        if "wsdl" in request.query_params:
            return _xml(_served((WSDL_DIR / wsdl).read_text(encoding="utf-8"), base).encode())
        name = request.query_params.get("xsd")
        if name in SCHEMA_FILES:
            return _xml(_served((WSDL_DIR / name).read_text(encoding="utf-8"), base).encode())
        return Response("ask ?wsdl, or ?xsd=<file> for a schema it imports\n", status_code=404)

    add_switch_routes(app, SWITCHES_PATH, state)

    @app.get(DELIVERIES_PATH)
    async def get_deliveries() -> Response:
        return JSONResponse(
            {
                "deliveries": [d.summary() for d in record.deliveries.values()],
                "refused": [r.summary() for r in record.refused],
                "reachability_calls": record.reachability_calls,
            }
        )

    @app.delete(DELIVERIES_PATH)
    async def forget_deliveries() -> Response:
        record.clear()
        return Response(status_code=204)

    @app.get(RECIPIENT_PATH)
    async def recipient_contract(request: Request) -> Response:
        return contract(request, RECIPIENT_WSDL)

    @app.post(RECIPIENT_PATH)
    async def is_reachable(request: Request) -> Response:
        started = asyncio.get_running_loop().time()
        refused = refused_now()
        if refused is not None:
            return refused
        failed = failing()
        if failed is not None:
            return await answer_at(started, failed)
        asked = await question(request, RECIPIENT_ACTION, recipient_schema)
        if isinstance(asked, Response):
            return await answer_at(started, asked)
        # The schema checked senderOrgNr (16 + 10 digits) and every recipientId.
        ids = [(e.text or "").strip() for e in asked.findall(_r3("recipientId"))]
        record.reachability_calls.append(len(ids))
        base = f"{request.url.scheme}://{request.url.netloc}"
        answer = etree.Element(
            _r3("isReachableResponse"), nsmap={"rcp3": NS_RECIPIENT_V3, "rcp": NS_RECIPIENT}
        )
        for recipient_id in ids:
            answer.append(reachability_status(people.find(recipient_id), recipient_id, base))
        return await answer_at(started, _xml(_envelope(answer)))

    @app.get(f"{PREFIX}/{{slug}}")
    async def delivery_contract(request: Request, slug: str) -> Response:
        if slug not in _BY_SLUG:
            return Response(f"no operator {slug!r}\n", status_code=404)
        return contract(request, DELIVERY_WSDL)

    @app.post(f"{PREFIX}/{{slug}}")
    async def deliver_secure(request: Request, slug: str) -> Response:
        operator = _BY_SLUG.get(slug)
        if operator is None:
            return Response(f"no operator {slug!r}\n", status_code=404)
        started = asyncio.get_running_loop().time()
        refused = refused_now(delivery=True)
        if refused is not None:
            return refused
        failed = failing()
        if failed is not None:
            return await answer_at(started, failed)
        examined = await examine(slug, await request.body(), request.headers.get("soapaction"))
        if examined.fault is not None:
            return await answer_at(started, soap_fault(*examined.fault))
        assert examined.received is not None
        return await answer_at(started, _deliver(operator, examined.received, examined.refusal))

    def _deliver(operator: Operator, received: Received, refusal: tuple[int, str] | None) -> Response:
        record.requests.append(received)
        try:
            if refusal is not None:
                raise _Fault(*refusal)
            key = (received.sender_id, received.message_id)
            earlier = record.deliveries.get(key)
            if earlier is not None:
                if (earlier.operator, earlier.recipient, earlier.body) != (
                    received.operator,
                    received.recipient,
                    received.body,
                ):
                    raise _Fault(ErrorCode.DUPLICATE_MESSAGE_ID, "message id already used for another letter")
                earlier.repeats += 1
                received.trans_id, received.delivered_at = earlier.trans_id, earlier.delivered_at
                return _result(earlier)
            _check_recipient(operator, received.recipient)
        except _Fault as fault:
            received.error_code = fault.code
            return application_fault(fault.code, fault.description)
        received.trans_id = uuid.uuid4().hex
        received.delivered_at = datetime.now(UTC).replace(microsecond=0)
        record.deliveries[(received.sender_id, received.message_id)] = received
        return _result(received)

    def _check_recipient(operator: Operator, recipient: str) -> None:
        person = people.find(recipient)
        if person is None or OPERATORS.get(person.mailbox) != operator:
            raise _Fault(ErrorCode.RECIPIENT_NOT_REACHABLE, f"recipient has no mailbox at {operator.name}")
        if _age(person.id, today()) < ADULT_AGE:
            raise _Fault(ErrorCode.RECIPIENT_UNDER_18, "operators take no mail for persons under 18")
        if not person.mailbox_sender_accepted:
            raise _Fault(ErrorCode.SENDER_NOT_ACCEPTED, "the recipient does not accept this sender")

    return app


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except ValueError:
        return b""


def _read(operator: Operator, signed_delivery: etree._Element, verified: Verified, seal_ok: bool) -> Received:
    delivery = signed_delivery.find(_m("Delivery"))
    assert delivery is not None  # the schema requires it

    def text(*path: str) -> str | None:
        return delivery.findtext("/".join(path))

    header = (_m("Header"),)
    message_header = (_m("Message"), _m("Header"))
    body = (_m("Message"), _m("Body"))
    message = delivery.find(_m("Message"))
    attachments = []
    if message is not None:
        for a in message.findall(_m("Attachment")):
            data = _b64(a.findtext(_m1("Body")))
            attachments.append(
                ReceivedAttachment(
                    filename=a.findtext(_m1("Filename")) or "",
                    content_type=a.findtext(_m1("ContentType")) or "",
                    size=len(data),
                    checksum_ok=hashlib.md5(data).hexdigest() == (a.findtext(_m1("Checksum")) or "").lower(),
                )
            )
    return Received(
        operator=operator.id,
        message_id=(text(*message_header, _m("Id")) or "").strip(),
        recipient=(text(*header, _m2("Recipient")) or "").strip(),
        sender_id=(text(*header, _m2("Sender"), f"{{{NS_SENDER}}}Id") or "").strip(),
        sender_name=text(*header, _m2("Sender"), f"{{{NS_SENDER}}}Name") or "",
        seal_verified=seal_ok,
        subject=text(*message_header, _m("Subject")) or "",
        reference=text(*header, _m2("Reference")),
        correlation_id=text(*header, _m2("CorrelationId")),
        content_type=text(*body, _m1("ContentType")) or "",
        body=_b64(text(*body, _m1("Body"))),
        attachments=attachments,
        signature_verified=verified.ok,
        certificate_sha256=verified.certificate_sha256,
        trusted_certificate=verified.trusted,
    )


def _result(received: Received) -> Response:
    assert received.trans_id is not None and received.delivered_at is not None
    response = etree.Element(
        f"{{{NS_SERVICE}}}deliverSecureResponse", nsmap={"svc3": NS_SERVICE, "svc": NS_SERVICE_V1}
    )
    result = _sub(response, f"{{{NS_SERVICE}}}return")
    _sub(result, f"{{{NS_SERVICE_V1}}}TransId", received.trans_id)
    status = _sub(result, f"{{{NS_SERVICE_V1}}}Status")
    _sub(status, f"{{{NS_SERVICE_V1}}}RecipientId", received.recipient)
    _sub(status, f"{{{NS_SERVICE_V1}}}Delivered", "true")
    return _xml(_envelope(response))
