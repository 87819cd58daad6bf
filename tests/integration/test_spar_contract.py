"""Conformance with Skatteverket's own SPAR PersonSök 2021.1 contract (WSDL and XSDs, Apache-2.0).

The official files are not in the project: they sit beside the checkout, in
``../shared/contracts/spar-personsok-2021.1/`` (here and in CI alike). These tests prove that

- every request the adapter sends is valid under the official XSD;
- every answer the mock gives (each test person, each in-band error) is valid under it, and so are
  the fixture answers the other SPAR tests use;
- the adapter runs unchanged on the official WSDL (``GATEWAY_SPAR_WSDL``), and understands
  hand-built answers that are valid under the official XSD, on the official WSDL and on the
  packaged contract alike: history lists, ``sattAvSPAR``, incomplete dates, legacy removal codes,
  ``Hanvisning`` both ways, ``Undantag``, ``OverstigerMaxAntalSvarsposter``, and the parts the
  gateway never reads;
- the packaged contract is equivalent where it matters: binding, SOAPAction, namespaces, elements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
import respx
from lxml import etree

from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import Address, Deregistration, Protection, RegisterRecord, resolve
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.spar_adapter import CONTRACT_VERSION, CONTRACTS, PACKAGED_WSDL, SparRegister, SparSettings
from mocks.population import OIDS
from mocks.population import load as load_population
from mocks.spar import PATH, Switches, create_app
from tests.fakes import pnr

REPO = Path(__file__).resolve().parents[2]
#: Beside the checkout, wherever it is cloned (``../shared`` from the repository root).
OFFICIAL = (REPO / ".." / "shared" / "contracts" / "spar-personsok-2021.1").resolve()
OFFICIAL_WSDL = OFFICIAL / "granssnitt" / "personsok" / "2021.1" / "personsok-local.wsdl"
FIXTURES = REPO / "tests" / "fixtures" / "spar"
URL = "https://spar.test/spar/personsok"
TODAY = date(2026, 12, 7)
CONTRACT = CONTRACTS[CONTRACT_VERSION]

_S = "http://statenspersonadressregister.se/schema"
NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "fraga": f"{_S}/personsok/2021.1/personsokningfraga",
    "svar": f"{_S}/personsok/2021.1/personsokningsvar",
    "sok": f"{_S}/komponent/sok/personsokningsokparametrar-1.1",
    "und": f"{_S}/komponent/sok/undantag-1.0",
    "p": f"{_S}/komponent/person/person-1.2",
    "sk": f"{_S}/komponent/person/skyddadepersonuppgifter-1.1",
    "ink": f"{_S}/komponent/person/inkomsttaxering-1.2",
    "n": f"{_S}/komponent/person/namn/namn-1.0",
    "dn": f"{_S}/komponent/person/namn/deladenamnelement-1.0",
    "pd": f"{_S}/komponent/person/persondetaljer-1.2",
    "av": f"{_S}/komponent/person/avregistrering-1.0",
    "h": f"{_S}/komponent/person/hanvisning-1.0",
    "sn": f"{_S}/komponent/person/samordningsnummer-1.0",
    "fb": f"{_S}/komponent/person/folkbokforing-1.0",
    "fba": f"{_S}/komponent/person/adress/folkbokforingsadress-1.1",
    "spa": f"{_S}/komponent/person/adress/sarskildpostadress-1.1",
    "ua": f"{_S}/komponent/person/adress/utlandsadress-1.1",
    "ka": f"{_S}/komponent/person/adress/kontaktadress-1.0",
    "a": f"{_S}/komponent/person/adress/deladeadresselement-1.1",
    "r": f"{_S}/komponent/person/relation-1.2",
    "dt": f"{_S}/komponent/generellt/datumtid-1.1",
}


@pytest.fixture(scope="module")
def official() -> etree.XMLSchema:
    """The official schema, both messages. Missing files fail: CI must check the real contract."""
    if not (OFFICIAL / "all-personsok.xsd").is_file():
        pytest.fail(
            f"the official SPAR PersonSök 2021.1 contract is not at {OFFICIAL}: it belongs beside the "
            "checkout (../shared/contracts/spar-personsok-2021.1/ from the repository root)"
        )
    return etree.XMLSchema(etree.parse(str(OFFICIAL / "all-personsok.xsd")))


def body_of(envelope: bytes) -> etree._Element:
    """The one element in a SOAP 1.1 Body."""
    root = etree.fromstring(envelope)
    body = root.find("soap:Body", NS)
    assert body is not None and len(body) == 1, "one element in the SOAP Body"
    return body[0]


def assert_valid(schema: etree.XMLSchema, element: etree._Element, what: str) -> None:
    assert schema.validate(element), f"{what}: {schema.error_log}"


# --- the packaged contract is equivalent where it matters -------------------------------------


def _global_elements(folder: Path) -> set[tuple[str, str]]:
    found = set()
    for path in folder.rglob("*.xsd"):
        schema = etree.parse(str(path)).getroot()
        namespace = schema.get("targetNamespace") or ""
        for element in schema.findall("{http://www.w3.org/2001/XMLSchema}element"):
            found.add((namespace, element.get("name") or ""))
    return found


def test_the_packaged_contract_declares_only_official_elements_in_official_namespaces(
    official: etree.XMLSchema,
) -> None:
    ours = _global_elements(PACKAGED_WSDL.parent)
    missing = ours - _global_elements(OFFICIAL)
    assert not missing, f"elements the official contract does not have: {sorted(missing)}"
    assert (NS["svar"], "SPARPersonsokningSvar") in ours and (NS["fraga"], "SPARPersonsokningFraga") in ours


def test_the_packaged_wsdl_has_the_official_binding_operation_and_soapaction(
    official: etree.XMLSchema,
) -> None:
    def facts(wsdl: Path) -> tuple[str | None, ...]:
        root = etree.parse(str(wsdl)).getroot()
        w = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/"}

        def attribute(path: str, name: str) -> str | None:
            found = root.find(path, w)
            assert found is not None, path
            return found.get(name)

        return (
            root.get("targetNamespace"),
            attribute("w:binding", "name"),
            attribute("w:binding/w:operation", "name"),
            attribute("w:binding/w:operation/s:operation", "soapAction"),
            attribute("w:service/w:port", "name"),
        )

    assert facts(PACKAGED_WSDL) == facts(OFFICIAL_WSDL)
    namespace, name = CONTRACT.binding[1:].split("}")
    assert facts(OFFICIAL_WSDL)[:2] == (namespace, name)
    assert facts(OFFICIAL_WSDL)[2:4] == (CONTRACT.operation, CONTRACT.soap_action)


# --- requests and the mock's answers under the official XSD -----------------------------------


@dataclass
class Exchange:
    request: bytes
    response: bytes


class Captured:
    """An httpx client on the mock in-process (no port) that keeps every exchange."""

    def __init__(self, switches: Switches | None = None) -> None:
        self.exchanges: list[Exchange] = []
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(switches=switches)),
            event_hooks={"response": [self._keep]},
        )

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append(Exchange(response.request.content, response.content))


@pytest.fixture
async def captured() -> AsyncIterator[Captured]:
    captured = Captured()
    yield captured
    await captured.client.aclose()


def _persons() -> list[PersonId]:
    return [
        PersonId(IdKind(p.id_type), p.id, p.oid)
        for p in load_population().persons
        if p.id_type in ("personnummer", "samordningsnummer")
    ]


@pytest.mark.parametrize("wsdl", [None, OFFICIAL_WSDL], ids=["packaged", "official"])
async def test_every_request_and_every_mock_answer_is_valid_under_the_official_xsd(
    official: etree.XMLSchema, captured: Captured, wsdl: Path | None
) -> None:
    settings = SparSettings.model_validate(
        {
            "url": "http://spar.test" + PATH,
            "retry_attempts": 1,
            "kund_nr_leverans_mottagare": 599999,
            "kund_nr_slutkund": 500001,
            "uppdrag_id": 9_000_000_000,
            "slut_anvandar_id": "x" * 256,
            **({"wsdl": str(wsdl)} if wsdl else {}),
        }
    )
    register = SparRegister(settings, client=captured.client)
    persons = _persons()
    for person in persons:
        await register.lookup(person)
    assert len(captured.exchanges) == len(persons) > 10
    for exchange in captured.exchanges:
        assert_valid(official, body_of(exchange.request), "request")
        assert_valid(official, body_of(exchange.response), "mock answer")


@pytest.mark.parametrize(
    ("switch", "number", "error"),
    [
        (None, "191212121213", PermanentUpstreamError),  # wrong check digit: Undantag
        ("generellt_fel", "191212121212", TransientUpstreamError),
        ("max_antal", "191212121212", PermanentUpstreamError),
        (None, "198512242242", None),  # not in the register: no svarspost
    ],
    ids=["undantag-ogiltig", "undantag-generellt-fel", "overstiger-max", "no-svarspost"],
)
async def test_the_mocks_errors_and_empty_answers_are_valid_under_the_official_xsd(
    official: etree.XMLSchema, switch: str | None, number: str, error: type[UpstreamError] | None
) -> None:
    switches = Switches()
    if switch:
        setattr(switches, switch, True)
    captured = Captured(switches)
    register = SparRegister(
        SparSettings(url="http://spar.test" + PATH, retry_attempts=1), client=captured.client
    )
    person = PersonId(IdKind.PERSONNUMMER, number, OIDS["personnummer"])
    if error is None:
        assert await register.lookup(person) is None
    else:
        with pytest.raises(error):
            await register.lookup(person)
    await captured.client.aclose()
    (exchange,) = captured.exchanges
    assert_valid(official, body_of(exchange.response), "mock answer")


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in FIXTURES.glob("svar-*.xml") if p.name != "svar-utan-skyddsflaggor.xml"),
)
def test_the_fixture_answers_are_valid_under_the_official_xsd(official: etree.XMLSchema, name: str) -> None:
    assert_valid(official, body_of((FIXTURES / name).read_bytes()), name)


def test_the_broken_fixture_is_invalid_under_the_official_xsd_too(official: etree.XMLSchema) -> None:
    assert not official.validate(body_of((FIXTURES / "svar-utan-skyddsflaggor.xml").read_bytes()))


async def test_r_id_3_r_id_5_the_gateway_runs_on_the_official_wsdl_against_the_mock(
    captured: Captured,
) -> None:
    settings = SparSettings(url="http://spar.test" + PATH, wsdl=str(OFFICIAL_WSDL), retry_attempts=1)
    register = SparRegister(settings, client=captured.client)
    secret = await register.lookup(pnr("197605010128"))
    assert secret is not None and secret.protection is Protection.SEKRETESSMARKERING
    sheltered = await register.lookup(pnr("198203152452"))
    assert sheltered is not None and sheltered.protection is Protection.SKYDDAD_FOLKBOKFORING
    dead = await register.lookup(pnr("193804262628"))
    assert dead is not None and dead.deceased
    resolved = await resolve(register, pnr("197306142642"))
    assert resolved.current == pnr("197306142659")
    assert resolved.record is not None and pnr("197306142642") in resolved.record.referred_from
    tolvan = await register.lookup(pnr("191212121212"))
    assert tolvan is not None and (tolvan.given_name, tolvan.family_name) == ("Tolvan", "Tolvansson")


# --- hand-built answers, valid under the official XSD, through the adapter --------------------

XMLNS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


def envelope(inner: str, echo: str = "191212121212") -> bytes:
    question = (
        f"<sok:PersonsokningFraga><p:IdNummer>{echo}</p:IdNummer></sok:PersonsokningFraga>" if echo else ""
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope {XMLNS}><soap:Body>'
        f"<svar:SPARPersonsokningSvar>{question}{inner}<svar:UUID>5f0c6a1e</svar:UUID>"
        "</svar:SPARPersonsokningSvar></soap:Body></soap:Envelope>"
    ).encode()


def svarspost(
    *parts: str,
    number: str = "191212121212",
    typ: str = "PERSONNUMMER",
    secret: str = "<sk:Sekretessmarkering>NEJ</sk:Sekretessmarkering>",
    sheltered: str = "NEJ",
    secret_since: str = "",
) -> str:
    return (
        f"<svar:PersonsokningSvarspost><p:PersonId><p:IdNummer>{number}</p:IdNummer><p:Typ>{typ}</p:Typ>"
        f"</p:PersonId>{secret}{secret_since}<sk:SkyddadFolkbokforing>{sheltered}</sk:SkyddadFolkbokforing>"
        + "".join(parts)
        + "</svar:PersonsokningSvarspost>"
    )


def period(start: str, end: str) -> str:
    return f"<dt:DatumFrom>{start}</dt:DatumFrom><dt:DatumTill>{end}</dt:DatumTill>"


def namn(family: str, when: str = "") -> str:
    return f"<n:Namn>{when}<dn:Fornamn>Tolvan</dn:Fornamn><dn:Efternamn>{family}</dn:Efternamn></n:Namn>"


def details(inner: str, when: str = "") -> str:
    return f"<pd:Persondetaljer>{when}{inner}</pd:Persondetaljer>"


def adress(street: str, when: str = "") -> str:
    return (
        f"<fba:Folkbokforingsadress><a:SvenskAdress>{when}<a:Utdelningsadress2>{street}</a:Utdelningsadress2>"
        "<a:PostNr>12345</a:PostNr><a:Postort>TOLVÅSEN</a:Postort></a:SvenskAdress></fba:Folkbokforingsadress>"
    )


def hanvisning(number: str, typ: str | None) -> str:
    kind = f"<h:Typ>{typ}</h:Typ>" if typ else ""
    return f"<h:Hanvisning><p:IdNummer>{number}</p:IdNummer>{kind}</h:Hanvisning>"


#: Everything SPAR may add that the gateway never reads, in its place in the sequence.
UNREAD_SECRET_SINCE = "<sk:SekretessDatum>2019-03-01</sk:SekretessDatum>"
UNREAD_TOP = (
    "<sk:SkyddadFolkbokforingDatum>2019-03-01</sk:SkyddadFolkbokforingDatum>",
    "<p:SenasteAndringSPAR>2026-01-02</p:SenasteAndringSPAR>",
    "<ink:SummeradInkomst>350000</ink:SummeradInkomst><ink:InkomstAr>2025</ink:InkomstAr>",
)
UNREAD_DETAILS = (
    "<pd:Fodelsedatum>1912-12-12</pd:Fodelsedatum><pd:FodelselanKod>01</pd:FodelselanKod>"
    "<pd:Fodelseforsamling>Tolvå</pd:Fodelseforsamling><pd:Kon>MAN</pd:Kon>"
    "<pd:SvenskMedborgare>JA</pd:SvenskMedborgare>"
)
UNREAD_AFTER_NAMES = (
    "<fb:Folkbokforing>"
    + period("2020-01-01", "9999-12-31")
    + "<fb:FolkbokfordLanKod>01</fb:FolkbokfordLanKod><fb:FolkbokfordKommunKod>80</fb:FolkbokfordKommunKod>"
    "<fb:Hemvist>Skriven på adressen</fb:Hemvist><fb:Folkbokforingsdatum>2020-01-01</fb:Folkbokforingsdatum>"
    "<fb:DistriktKod>123456</fb:DistriktKod></fb:Folkbokforing>"
)
UNREAD_TAIL = (
    "<spa:SarskildPostadress><a:SvenskAdress><a:Utdelningsadress1>Box 1</a:Utdelningsadress1>"
    "</a:SvenskAdress></spa:SarskildPostadress>"
    "<ua:Utlandsadress><a:InternationellAdress><a:Utdelningsadress1>1 Rue X</a:Utdelningsadress1>"
    "<a:Land>FRANKRIKE</a:Land></a:InternationellAdress></ua:Utlandsadress>"
    "<ka:Kontaktadress><a:InternationellAdress><a:Land>NORGE</a:Land></a:InternationellAdress></ka:Kontaktadress>"
    "<r:Relation><r:Relationstyp>VÅRDNADSHAVARE</r:Relationstyp><p:IdNummer>197605010128</p:IdNummer>"
    "</r:Relation>"
)
OLD, NEW, OTHER = "197306142642", "197306142659", "197605010128"


@dataclass(frozen=True)
class Case:
    answer: bytes
    asked: str = "191212121212"
    #: Attributes of the record that must hold, or the error class expected.
    expect: dict[str, object] | type[UpstreamError] | None = None


CASES: dict[str, Case] = {
    "history-picks-the-current-entries": Case(
        envelope(
            svarspost(
                *UNREAD_TOP,
                namn("Förrsson", period("1912-12-12", "2019-12-31")),
                namn("Tolvansson", period("2020-01-01", "9999-12-31")),
                namn("Senaresson", period("2027-01-01", "9999-12-31")),
                details(
                    "<sk:Sekretessmarkering>NEJ</sk:Sekretessmarkering>" + UNREAD_DETAILS,
                    period("1912-12-12", "2019-12-31"),
                ),
                details(
                    "<av:AvregistreringsorsakKod>UV</av:AvregistreringsorsakKod>"
                    "<av:Avregistreringsdatum>2020-06-01</av:Avregistreringsdatum>"
                    + UNREAD_DETAILS
                    + "<sn:SnStatus>Aktivt</sn:SnStatus>",
                    period("2020-01-01", "9999-12-31"),
                ),
                UNREAD_AFTER_NAMES,
                adress("Gamla vägen 1", period("1912-12-12", "2019-12-31")),
                adress("Tolvansvägen 12", period("2020-01-01", "9999-12-31")),
                UNREAD_TAIL,
                secret_since=UNREAD_SECRET_SINCE,
            )
        ),
        expect={
            "family_name": "Tolvansson",
            "address": Address(None, None, "Tolvansvägen 12", "12345", "TOLVÅSEN"),
            "emigrated": True,
            "deregistration_date": date(2020, 6, 1),
            "birth_date": date(1912, 12, 12),
            "protection": Protection.NONE,
        },
    ),
    "r-id-3-sekretessmarkering-satt-av-spar": Case(
        envelope(
            svarspost(
                namn("Tolvansson"),
                secret='<sk:Sekretessmarkering sattAvSPAR="JA">JA</sk:Sekretessmarkering>',
                sheltered="JA",
            )
        ),
        expect={"protection": Protection.SKYDDAD_FOLKBOKFORING},
    ),
    "r-id-3-sekretessmarkering": Case(
        envelope(svarspost(secret="<sk:Sekretessmarkering>JA</sk:Sekretessmarkering>")),
        expect={"protection": Protection.SEKRETESSMARKERING},
    ),
    "r-id-3-protected-in-the-current-details": Case(
        envelope(
            svarspost(
                details(
                    "<sk:SkyddadFolkbokforing>JA</sk:SkyddadFolkbokforing>",
                    period("2026-01-01", "9999-12-31"),
                )
            )
        ),
        expect={"protection": Protection.SKYDDAD_FOLKBOKFORING},
    ),
    "r-id-5-incomplete-dates": Case(
        envelope(
            svarspost(
                details(
                    "<av:AvregistreringsorsakKod>AV</av:AvregistreringsorsakKod>"
                    "<av:Avlidendatum>2019-01-00</av:Avlidendatum>"
                )
            )
        ),
        expect={"deceased": True, "deceased_date": date(2019, 1, 1)},
    ),
    "r-id-5-date-without-month": Case(
        envelope(
            svarspost(
                details(
                    "<av:AvregistreringsorsakKod>TA</av:AvregistreringsorsakKod>"
                    "<av:Avregistreringsdatum>2019-00-00</av:Avregistreringsdatum>"
                )
            )
        ),
        expect={"deregistration": Deregistration.TECHNICAL, "deregistration_date": date(2019, 1, 1)},
    ),
    "r-id-5-unknown-date": Case(
        envelope(
            svarspost(
                details(
                    "<av:AvregistreringsorsakKod>A</av:AvregistreringsorsakKod>"
                    "<av:Avlidendatum>0000-00-00</av:Avlidendatum>"
                )
            )
        ),
        expect={"deceased": True, "deceased_date": None},
    ),
    "r-id-5-legacy-a-deceased": Case(
        envelope(svarspost(details("<av:AvregistreringsorsakKod>A</av:AvregistreringsorsakKod>"))),
        expect={"deregistration": Deregistration.DECEASED, "deceased": True},
    ),
    "r-id-5-legacy-g-old-number": Case(
        envelope(
            svarspost(
                details("<av:AvregistreringsorsakKod>G</av:AvregistreringsorsakKod>" + hanvisning(NEW, None)),
                number=OLD,
            ),
            echo=OLD,
        ),
        asked=OLD,
        expect={"changed_number": True, "referred_to": pnr(NEW)},
    ),
    "r-id-5-legacy-o-other-reason": Case(
        envelope(svarspost(details("<av:AvregistreringsorsakKod>O</av:AvregistreringsorsakKod>"))),
        expect={"deregistration": Deregistration.OTHER_REASON, "deceased": False},
    ),
    "r-id-5-unknown-removal-code": Case(
        envelope(svarspost(details("<av:AvregistreringsorsakKod>ZZ</av:AvregistreringsorsakKod>"))),
        expect=PermanentUpstreamError,
    ),
    "r-id-5-hanvisning-till": Case(
        envelope(
            svarspost(
                details(
                    "<av:AvregistreringsorsakKod>GN</av:AvregistreringsorsakKod>"
                    "<av:Avregistreringsdatum>2024-03-01</av:Avregistreringsdatum>" + hanvisning(NEW, "Till")
                ),
                number=OLD,
            ),
            echo=OLD,
        ),
        asked=OLD,
        expect={"changed_number": True, "referred_to": pnr(NEW), "referred_from": ()},
    ),
    "r-id-5-hanvisning-fran": Case(
        envelope(
            svarspost(details(hanvisning(OLD, "Fran") + hanvisning(OTHER, None)), number=NEW),
            echo=NEW,
        ),
        asked=NEW,
        expect={"referred_to": None, "referred_from": (pnr(OLD), pnr(OTHER)), "deregistration": None},
    ),
    "samordningsnummer": Case(
        envelope(svarspost(number="199002712934", typ="SAMORDNINGSNUMMER"), echo="199002712934"),
        asked="199002712934",
        expect={"person": PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", OIDS["samordningsnummer"])},
    ),
    "no-svarspost-no-echo": Case(envelope("", echo=""), expect=None),
    "undantag": Case(
        envelope(
            "<und:Undantag><und:Kod>OGILTIG_INPARAMETER</und:Kod><und:Beskrivning>Fel</und:Beskrivning></und:Undantag>"
        ),
        expect=PermanentUpstreamError,
    ),
    "undantag-generellt-fel": Case(
        envelope(
            "<und:Undantag><und:Kod>GENERELLT_FEL</und:Kod><und:Beskrivning>Fel</und:Beskrivning></und:Undantag>"
        ),
        expect=TransientUpstreamError,
    ),
    "overstiger-max-antal-svarsposter": Case(
        envelope(
            "<und:OverstigerMaxAntalSvarsposter><und:AntalPoster>120</und:AntalPoster>"
            "<und:MaxAntalSvarsposter>100</und:MaxAntalSvarsposter></und:OverstigerMaxAntalSvarsposter>"
        ),
        expect=PermanentUpstreamError,
    ),
}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("wsdl", [PACKAGED_WSDL, OFFICIAL_WSDL], ids=["packaged", "official"])
async def test_official_answers_are_understood_or_refused_with_a_gateway_error(
    official: etree.XMLSchema, router: respx.MockRouter, name: str, wsdl: Path
) -> None:
    case = CASES[name]
    assert_valid(official, body_of(case.answer), name)  # the case itself is official-valid
    router.post(URL).mock(
        return_value=httpx.Response(200, content=case.answer, headers={"Content-Type": "text/xml"})
    )
    settings = SparSettings(url=URL, wsdl=str(wsdl), retry_attempts=1, cache_ttl=0)
    async with httpx.AsyncClient() as client:
        register = SparRegister(settings, client=client, today=lambda: TODAY)
        asked = pnr(case.asked)
        if isinstance(case.expect, type):
            with pytest.raises(case.expect):
                await register.lookup(asked)
            return
        record = await register.lookup(asked)
    if case.expect is None:
        assert record is None
        return
    assert isinstance(record, RegisterRecord)
    for attribute, value in case.expect.items():
        assert getattr(record, attribute) == value, attribute
