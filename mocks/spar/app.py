"""The SPAR PersonSök mock: SOAP 1.1 over HTTP, answering from the one test population.

``POST /spar/personsok``   one ``SPARPersonsokningFraga`` in a SOAP envelope (SOAPAction checked,
                           the body validated against ``wsdl/spar-personsok.xsd``)
``GET  /spar/personsok?wsdl``        the WSDL, ``soap:address`` pointing where it was fetched from
``GET  /spar/personsok?xsd=<file>``  the schemas the WSDL imports
``GET|PUT /spar/_switches``          the failure switches as JSON (PUT changes only what it names)

A malformed envelope, a wrong SOAPAction or a request the schema refuses is a SOAP 1.1 Fault
(``soap:Client``, HTTP 500); an invalid IdNummer, as in SPAR, an in-band ``Undantag``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from mocks import population as population_file
from mocks.population import Population, TestPerson
from mocks.soap import add_switch_routes, request_element

PATH = "/spar/personsok"
SWITCHES_PATH = "/spar/_switches"
SOAP_ACTION = "http://skatteverket.se/spar/personsok/2021.1/PersonSok"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_INSTANS = "http://skatteverket.se/spar/instans/1.0"
NS_KOMPONENT = "http://skatteverket.se/spar/komponent/1.0"
WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_FILE = "PersonsokService.wsdl"
SCHEMA_FILES = ("spar-personsok.xsd", "spar-komponent.xsd")
#: What ``garbage`` answers: a SOAP answer cut off mid-way, served complete with status 200.
GARBAGE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="' + NS_SOAP.encode() + b'">'
    b"<soap:Body><spain:SPARPersonsokningSvar xmlns:spain="
)
XML_TYPE = "text/xml; charset=utf-8"

_TWELVE_DIGITS = re.compile(r"\d{12}")
_SCHEMA_LOCATION = re.compile(r'schemaLocation="([^"/]+\.xsd)"')
_SOAP_ADDRESS = re.compile(r'(<soap:address location=")[^"]*(")')


class Switches(BaseModel):
    """Failure switches, applied to every PersonSök request (not to the WSDL or the switches)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(0.0, ge=0, description="Seconds to wait before answering.")
    generellt_fel: bool = Field(False, description="Answer Undantag GENERELLT_FEL.")
    http_500: bool = Field(False, description="Answer HTTP 500 with a plain-text body (no SOAP).")
    fail_next: int = Field(0, ge=0, description="Answer HTTP 500 to the next N requests, then normally.")
    outage: bool = Field(False, description="Service down: 503, as a load balancer with no SPAR behind.")
    garbage: bool = Field(False, description="Answer HTTP 200 with XML cut off mid-way.")


def _k(tag: str) -> str:
    return f"{{{NS_KOMPONENT}}}{tag}"


def _i(tag: str) -> str:
    return f"{{{NS_INSTANS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _k(tag))
    if text is not None:
        element.text = text
    return element


def _optional(parent: etree._Element, tag: str, value: str | date | None) -> None:
    if value is not None:
        _sub(parent, tag, value.isoformat() if isinstance(value, date) else value)


def _birth_date(number: str) -> date:
    day = int(number[6:8])
    return date(int(number[0:4]), int(number[4:6]), day - 60 if day > 60 else day)


def svarspost(person: TestPerson) -> etree._Element:
    """One ``PersonsokningSvarspost`` as SPAR would give it for this test person."""
    spar = person.spar
    post = etree.Element(_i("PersonsokningSvarspost"))
    person_id = _sub(post, "PersonId")
    _sub(person_id, "IdNummer", person.id)
    _sub(person_id, "Typ", "SAMORDNINGSNUMMER" if person.id_type == "samordningsnummer" else "PERSONNUMMER")
    _sub(post, "Sekretessmarkering", "JA" if spar.protection == "sekretessmarkering" else "NEJ")
    _sub(post, "SkyddadFolkbokforing", "JA" if spar.protection == "skyddadFolkbokforing" else "NEJ")
    name = _sub(post, "Namn")
    _sub(name, "Fornamn", person.given)
    _optional(name, "Mellannamn", spar.middle)
    _sub(name, "Efternamn", person.family)
    _optional(name, "Aviseringsnamn", spar.notification_name)
    if spar.address is not None:
        # Skyddad folkbokföring: the file holds the forwarding address SPAR gives; the gateway
        # decides what leaves it (R-ID-3), not the register.
        address = _sub(_sub(post, "Folkbokforingsadress"), "SvenskAdress")
        _optional(address, "CareOf", spar.address.care_of)
        _optional(address, "Utdelningsadress1", spar.address.street1)
        _optional(address, "Utdelningsadress2", spar.address.street2)
        _optional(address, "PostNr", spar.address.postal_code)
        _optional(address, "Postort", spar.address.city)
    details = _sub(post, "Persondetaljer")
    _sub(details, "Fodelsedatum", _birth_date(person.id).isoformat())
    _optional(details, "AvregistreringsorsakKod", spar.deregistration)
    _optional(details, "Avregistreringsdatum", spar.deregistration_date)
    _optional(details, "Avlidendatum", spar.deceased_date)
    for number, direction in ((spar.referred_to, "Till"), (spar.referred_from, "Fran")):
        if number is not None:
            referral = _sub(details, "Hanvisning")
            _sub(referral, "IdNummer", number)
            _sub(referral, "Typ", direction)
    return post


def _envelope(body_child: etree._Element) -> bytes:
    envelope = etree.Element(
        f"{{{NS_SOAP}}}Envelope",
        nsmap={"soap": NS_SOAP, "spain": NS_INSTANS, "spako": NS_KOMPONENT},
    )
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Body").append(body_child)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def answer(id_nummer: str, posts: list[etree._Element], undantag: tuple[str, str] | None = None) -> bytes:
    """A whole ``SPARPersonsokningSvar`` envelope: the question echoed, then posts or an Undantag."""
    svar = etree.Element(_i("SPARPersonsokningSvar"))
    _sub(etree.SubElement(svar, _i("PersonsokningFraga")), "IdNummer", id_nummer)
    for post in posts:
        svar.append(post)
    if undantag is not None:
        element = etree.SubElement(svar, _i("Undantag"))
        _sub(element, "Kod", undantag[0])
        _sub(element, "Beskrivning", undantag[1])
    return _envelope(svar)


def fault(code: str, text: str) -> Response:
    """A SOAP 1.1 Fault; SOAP 1.1 over HTTP carries every fault with status 500."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP})
    body = etree.SubElement(envelope, f"{{{NS_SOAP}}}Body")
    node = etree.SubElement(body, f"{{{NS_SOAP}}}Fault")
    etree.SubElement(node, "faultcode").text = f"soap:{code}"
    etree.SubElement(node, "faultstring").text = text
    content = bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    return Response(content, status_code=500, media_type=XML_TYPE)


def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(WSDL_DIR / SCHEMA_FILES[0])))


def _served(text: str, base: str) -> str:
    """A contract file as served: schema locations and the service address at ``base``."""
    text = _SCHEMA_LOCATION.sub(lambda m: f'schemaLocation="{base}?xsd={m.group(1)}"', text)
    return _SOAP_ADDRESS.sub(lambda m: f"{m.group(1)}{base}{m.group(2)}", text)


def create_app(population: Population | None = None, switches: Switches | None = None) -> FastAPI:
    """The mock for ``population`` (default: ``mocks.population.load()``, which honours
    ``GATEWAY_MOCK_PERSONS``). Pass ``switches`` to flip failures from a test without HTTP."""
    people = population if population is not None else population_file.load()
    state = switches if switches is not None else Switches()
    schema = _schema()

    app = FastAPI(title="SPAR PersonSök (mock)", version="2021.1", openapi_url=None)

    @app.get(PATH)
    async def contract(request: Request) -> Response:
        base = str(request.url.replace(query=None, fragment=None))
        if "wsdl" in request.query_params:
            text = (WSDL_DIR / WSDL_FILE).read_text(encoding="utf-8")
            return Response(_served(text, base), media_type=XML_TYPE)
        name = request.query_params.get("xsd")
        if name in SCHEMA_FILES:
            text = (WSDL_DIR / name).read_text(encoding="utf-8")
            return Response(_served(text, base), media_type=XML_TYPE)
        return Response("ask ?wsdl, or ?xsd=<file> for a schema it imports\n", status_code=404)

    @app.post(PATH)
    async def personsok(request: Request) -> Response:
        if state.outage:
            return Response("Service Unavailable\n", status_code=503, media_type="text/plain")
        if state.latency:
            await asyncio.sleep(state.latency)
        if state.fail_next:
            state.fail_next -= 1
            return Response("Internal Server Error\n", status_code=500, media_type="text/plain")
        if state.http_500:
            return Response("Internal Server Error\n", status_code=500, media_type="text/plain")
        if state.garbage:
            return Response(GARBAGE_BODY, media_type=XML_TYPE)
        found = request_element(
            await request.body(),
            request.headers.get("soapaction"),
            SOAP_ACTION,
            what="one SPARPersonsokningFraga",
        )
        if isinstance(found, tuple):
            return fault(*found)
        question = found
        if not schema.validate(question):
            return fault("Client", f"request does not follow the schema: {schema.error_log}")
        id_nummer = (question.findtext(f"{_i('PersonsokningFraga')}/{_k('IdNummer')}") or "").strip()
        if state.generellt_fel:
            return _xml(answer(id_nummer, [], ("GENERELLT_FEL", "Tekniskt fel, försök igen senare")))
        if not _TWELVE_DIGITS.fullmatch(id_nummer):
            return _xml(answer(id_nummer, [], ("OGILTIG_INPARAMETER", "IdNummer ska vara 12 siffror")))
        person = people.find(id_nummer)
        if person is None or not person.in_register:
            return _xml(answer(id_nummer, []))  # no svarspost: nobody has that number
        return _xml(answer(id_nummer, [svarspost(person)]))

    add_switch_routes(app, SWITCHES_PATH, state)

    return app


def _xml(content: bytes) -> Response:
    return Response(content, media_type=XML_TYPE)
