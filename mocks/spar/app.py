"""The SPAR PersonSök 2021.1 mock: SOAP 1.1 over HTTP, answering from the one test population.

It speaks the official contract's shapes (namespaces, history lists, ``sattAvSPAR``) from its own
copy of the gateway's contract files (``contract/2021.1/``).

``POST /spar/personsok``   one ``SPARPersonsokningFraga`` in a SOAP envelope (SOAPAction checked,
                           the body validated against ``contract/2021.1/PersonsokningFraga.xsd``)
``GET  /spar/personsok?wsdl``        the WSDL, ``soap:address`` pointing where it was fetched from
``GET  /spar/personsok?xsd=<file>``  the schemas the WSDL imports
``GET|PUT /spar/_switches``          the failure switches as JSON (PUT changes only what it names)

A malformed envelope, a wrong SOAPAction or a request the schema refuses is a SOAP 1.1 Fault
(``soap:Client``, HTTP 500); an unknown IdNummer with a wrong check digit, as in SPAR, an
in-band ``Undantag``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from pathlib import Path

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from mocks import population as population_file
from mocks.population import AddressEntry, Population, TestPerson
from mocks.soap import add_switch_routes, request_element

PATH = "/spar/personsok"
SWITCHES_PATH = "/spar/_switches"
#: The contract version the mock speaks (``contract/<version>/``, the same files as the gateway's).
CONTRACT_VERSION = "2021.1"
SOAP_ACTION = "http://skatteverket.se/spar/personsok/2021.1/PersonsokService/Personsok"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_S = "http://statenspersonadressregister.se/schema"
#: The 2021.1 namespaces of what the mock writes, by the prefix it writes them with.
NS = {
    "fraga": f"{_S}/personsok/2021.1/personsokningfraga",
    "svar": f"{_S}/personsok/2021.1/personsokningsvar",
    "sok": f"{_S}/komponent/sok/personsokningsokparametrar-1.1",
    "undantag": f"{_S}/komponent/sok/undantag-1.0",
    "person": f"{_S}/komponent/person/person-1.2",
    "skydd": f"{_S}/komponent/person/skyddadepersonuppgifter-1.1",
    "namn": f"{_S}/komponent/person/namn/namn-1.0",
    "dn": f"{_S}/komponent/person/namn/deladenamnelement-1.0",
    "pdt": f"{_S}/komponent/person/persondetaljer-1.2",
    "avreg": f"{_S}/komponent/person/avregistrering-1.0",
    "hanvisning": f"{_S}/komponent/person/hanvisning-1.0",
    "fba": f"{_S}/komponent/person/adress/folkbokforingsadress-1.1",
    "adress": f"{_S}/komponent/person/adress/deladeadresselement-1.1",
    "datumtid": f"{_S}/komponent/generellt/datumtid-1.1",
}
CONTRACT_DIR = Path(__file__).resolve().parent / "contract" / CONTRACT_VERSION
WSDL_FILE = "personsok.wsdl"
SCHEMA_FILES = tuple(sorted(p.name for p in CONTRACT_DIR.glob("*.xsd")))
#: The question's schema: what every request is validated against.
QUESTION_SCHEMA = "PersonsokningFraga.xsd"
#: What ``garbage`` answers: a SOAP answer cut off mid-way, served complete with status 200.
GARBAGE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="' + NS_SOAP.encode() + b'">'
    b"<soap:Body><svar:SPARPersonsokningSvar xmlns:svar="
)
XML_TYPE = "text/xml; charset=utf-8"
#: History: the mock gives every person born before it an earlier name, address and details
#: that ended the day before, so every answer exercises SPAR's history lists (docs/spar.md).
HISTORY_SPLIT = date(2020, 1, 1)
OPEN_END = date(9999, 12, 31)
EARLIER_FAMILY = "Tidigarenamn"
EARLIER_ADDRESS = ("Gamla vägen 1", "11120", "STOCKHOLM")

_SCHEMA_LOCATION = re.compile(r'schemaLocation="([^"/]+\.xsd)"')
_SOAP_ADDRESS = re.compile(r'(<soap:address location=")[^"]*(")')


class Switches(BaseModel):
    """Failure switches, applied to every PersonSök request (not to the WSDL or the switches)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(0.0, ge=0, description="Seconds to wait before answering.")
    generellt_fel: bool = Field(False, description="Answer Undantag GENERELLT_FEL.")
    max_antal: bool = Field(False, description="Answer OverstigerMaxAntalSvarsposter.")
    http_500: bool = Field(False, description="Answer HTTP 500 with a plain-text body (no SOAP).")
    fail_next: int = Field(0, ge=0, description="Answer HTTP 500 to the next N requests, then normally.")
    outage: bool = Field(False, description="Service down: 503, as a load balancer with no SPAR behind.")
    garbage: bool = Field(False, description="Answer HTTP 200 with XML cut off mid-way.")


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def _sub(parent: etree._Element, prefix: str, tag: str, text: str | date | None = None) -> etree._Element:
    element = etree.SubElement(parent, _q(prefix, tag))
    if text is not None:
        element.text = text.isoformat() if isinstance(text, date) else text
    return element


def _optional(parent: etree._Element, prefix: str, tag: str, value: str | date | None) -> None:
    if value is not None:
        _sub(parent, prefix, tag, value)


def _birth_date(number: str) -> date:
    day = int(number[6:8])
    return date(int(number[0:4]), int(number[4:6]), day - 60 if day > 60 else day)


def _period(parent: etree._Element, start: date, end: date) -> None:
    _sub(parent, "datumtid", "DatumFrom", start)
    _sub(parent, "datumtid", "DatumTill", end)


def _name(post: etree._Element, person: TestPerson, start: date, end: date, *, earlier: bool) -> None:
    name = _sub(post, "namn", "Namn")
    _period(name, start, end)
    family = EARLIER_FAMILY if earlier else person.family
    _optional(name, "dn", "Aviseringsnamn", None if earlier else person.spar.notification_name)
    _sub(name, "dn", "Fornamn", person.given)
    _optional(name, "dn", "Mellannamn", None if earlier else person.spar.middle)
    _sub(name, "dn", "Efternamn", family)


def _details(post: etree._Element, person: TestPerson, start: date, end: date, *, earlier: bool) -> None:
    spar = person.spar
    details = _sub(post, "pdt", "Persondetaljer")
    _period(details, start, end)
    secret = "NEJ" if earlier or spar.protection == "none" else "JA"
    _sub(details, "skydd", "Sekretessmarkering", secret)
    sheltered = "JA" if not earlier and spar.protection == "skyddadFolkbokforing" else "NEJ"
    _sub(details, "skydd", "SkyddadFolkbokforing", sheltered)
    if not earlier:
        _optional(details, "avreg", "AvregistreringsorsakKod", spar.deregistration)
        _optional(details, "avreg", "Avregistreringsdatum", spar.deregistration_date)
        _optional(details, "avreg", "Avlidendatum", spar.deceased_date)
    _sub(details, "pdt", "Fodelsedatum", _birth_date(person.id))
    for number, direction in ((spar.referred_to, "Till"), (spar.referred_from, "Fran")):
        if number is not None:
            referral = _sub(details, "hanvisning", "Hanvisning")
            _sub(referral, "person", "IdNummer", number)
            _sub(referral, "hanvisning", "Typ", direction)


def _address(post: etree._Element, lines: AddressEntry, start: date, end: date) -> None:
    address = _sub(_sub(post, "fba", "Folkbokforingsadress"), "adress", "SvenskAdress")
    _period(address, start, end)
    _optional(address, "adress", "CareOf", lines.care_of)
    _optional(address, "adress", "Utdelningsadress1", lines.street1)
    _optional(address, "adress", "Utdelningsadress2", lines.street2)
    _optional(address, "adress", "PostNr", lines.postal_code)
    _optional(address, "adress", "Postort", lines.city)


def svarspost(person: TestPerson) -> etree._Element:
    """One ``PersonsokningSvarspost`` as SPAR 2021.1 gives it for this test person, with history."""
    spar = person.spar
    post = etree.Element(_q("svar", "PersonsokningSvarspost"))
    person_id = _sub(post, "person", "PersonId")
    _sub(person_id, "person", "IdNummer", person.id)
    _sub(
        person_id,
        "person",
        "Typ",
        "SAMORDNINGSNUMMER" if person.id_type == "samordningsnummer" else "PERSONNUMMER",
    )
    secret = _sub(post, "skydd", "Sekretessmarkering", "NEJ" if spar.protection == "none" else "JA")
    if spar.protection == "skyddadFolkbokforing":
        # Folkbokföringen gives skyddad folkbokföring; SPAR adds the sekretessmarkering itself.
        secret.set("sattAvSPAR", "JA")
    _sub(post, "skydd", "SkyddadFolkbokforing", "JA" if spar.protection == "skyddadFolkbokforing" else "NEJ")
    born = _birth_date(person.id)
    periods = [(born, HISTORY_SPLIT - timedelta(days=1), True)] if born < HISTORY_SPLIT else []
    periods.append((max(born, HISTORY_SPLIT), OPEN_END, False))
    for start, end, earlier in periods:
        _name(post, person, start, end, earlier=earlier)
    for start, end, earlier in periods:
        _details(post, person, start, end, earlier=earlier)
    if spar.address is not None:
        # Skyddad folkbokföring: the file holds the forwarding address SPAR gives; the gateway
        # decides what leaves it (R-ID-3), not the register.
        for start, end, earlier in periods:
            street, code, city = EARLIER_ADDRESS
            lines = AddressEntry(street1=street, postal_code=code, city=city) if earlier else spar.address
            _address(post, lines, start, end)
    return post


def _envelope(body_child: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soap": NS_SOAP, **NS})
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Body").append(body_child)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def answer(
    id_nummer: str,
    posts: list[etree._Element],
    undantag: tuple[str, str] | None = None,
    too_many: tuple[int, int] | None = None,
) -> bytes:
    """A whole ``SPARPersonsokningSvar`` envelope: the question echoed, then posts, an Undantag
    or ``OverstigerMaxAntalSvarsposter`` (found, most answered)."""
    svar = etree.Element(_q("svar", "SPARPersonsokningSvar"))
    _sub(etree.SubElement(svar, _q("sok", "PersonsokningFraga")), "person", "IdNummer", id_nummer)
    for post in posts:
        svar.append(post)
    if undantag is not None:
        element = _sub(svar, "undantag", "Undantag")
        _sub(element, "undantag", "Kod", undantag[0])
        _sub(element, "undantag", "Beskrivning", undantag[1])
    if too_many is not None:
        element = _sub(svar, "undantag", "OverstigerMaxAntalSvarsposter")
        _sub(element, "undantag", "AntalPoster", str(too_many[0]))
        _sub(element, "undantag", "MaxAntalSvarsposter", str(too_many[1]))
    return _envelope(svar)


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, digit in enumerate(int(c) for c in number[2:]):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


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
    return etree.XMLSchema(etree.parse(str(CONTRACT_DIR / QUESTION_SCHEMA)))


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
            text = (CONTRACT_DIR / WSDL_FILE).read_text(encoding="utf-8")
            return Response(_served(text, base), media_type=XML_TYPE)
        name = request.query_params.get("xsd")
        if name in SCHEMA_FILES:
            text = (CONTRACT_DIR / name).read_text(encoding="utf-8")
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
        if question.tag != _q("fraga", "SPARPersonsokningFraga"):
            return fault("Client", "the SOAP Body must hold one SPARPersonsokningFraga")
        if not schema.validate(question):
            return fault("Client", f"request does not follow the schema: {schema.error_log}")
        id_nummer = question.findtext(f"{_q('sok', 'PersonsokningFraga')}/{_q('person', 'IdNummer')}") or ""
        if state.generellt_fel:
            return _xml(answer(id_nummer, [], ("GENERELLT_FEL", "Tekniskt fel, försök igen senare")))
        if state.max_antal:
            return _xml(answer(id_nummer, [], too_many=(120, 100)))
        if not id_nummer:
            return _xml(answer(id_nummer, [], too_many=(10_000, 100)))  # a search by name: not mocked
        person = people.find(id_nummer)
        if person is None and not _luhn_ok(id_nummer):
            return _xml(answer(id_nummer, [], ("OGILTIG_INPARAMETER", "IdNummer har fel kontrollsiffra")))
        if person is None or not person.in_register:
            return _xml(answer(id_nummer, []))  # no svarspost: nobody has that number
        return _xml(answer(id_nummer, [svarspost(person)]))

    add_switch_routes(app, SWITCHES_PATH, state)

    return app


def _xml(content: bytes) -> Response:
    return Response(content, media_type=XML_TYPE)
