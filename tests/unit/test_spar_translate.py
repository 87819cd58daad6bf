"""SPAR answers (fixture files, tests/fixtures/spar/) -> RegisterRecord or the gateway's errors.

The fixtures go through zeep with the packaged contract, exactly as an answer off the wire does,
but without HTTP.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zeep
from zeep.helpers import serialize_object

from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import Address, Deregistration, Protection, RegisterRecord
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.spar_adapter import PACKAGED_WSDL, translate, translate_exception
from mocks.spar import WSDL_DIR
from tests.fakes import PNR, SAMO, pnr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spar"
BINDING = "{http://skatteverket.se/spar/personsok/2021.1}PersonsokBinding"


@pytest.fixture(scope="module")
def client() -> Any:
    return zeep.Client(str(PACKAGED_WSDL))  # type: ignore[no-untyped-call]


def decode(client: Any, name: str, status: int = 200) -> Any:
    """A fixture answer as zeep hands it to the adapter (plain dicts)."""
    binding = client.wsdl.bindings[BINDING]
    response = SimpleNamespace(
        status_code=status,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        content=(FIXTURES / name).read_bytes(),
        encoding="utf-8",
    )
    return serialize_object(binding.process_reply(client, binding.get("PersonSok"), response), dict)


def lookup(client: Any, name: str, asked: PersonId) -> RegisterRecord | None:
    return translate(decode(client, name), asked)


def test_an_ordinary_answer_becomes_a_full_record(client: Any) -> None:
    record = lookup(client, "svar-tolvan.xml", pnr("191212121212"))
    assert record == RegisterRecord(
        person=pnr("191212121212"),
        protection=Protection.NONE,
        given_name="Tolvan",
        family_name="Tolvansson",
        address=Address(None, "Tolvansvägen 12", None, "12345", "Tolvåsen"),
        birth_date=date(1912, 12, 12),
    )


def test_r_id_3_sekretessmarkering_is_read_from_the_register(client: Any) -> None:
    record = lookup(client, "svar-sekretessmarkering.xml", pnr("197605010128"))
    assert record is not None
    assert record.protection is Protection.SEKRETESSMARKERING and record.protected


def test_r_id_3_skyddad_folkbokforing_keeps_the_forwarding_address_for_the_gateway_to_hide(
    client: Any,
) -> None:
    record = lookup(client, "svar-skyddad-folkbokforing.xml", pnr("198203152452"))
    assert record is not None
    assert record.protection is Protection.SKYDDAD_FOLKBOKFORING
    assert record.address == Address(
        "Skatteverket", "Särskild postförmedling", "Box 2820", "40320", "Göteborg"
    )


def test_r_id_3_the_stronger_level_wins_when_both_flags_are_set(client: Any) -> None:
    answer = decode(client, "svar-sekretessmarkering.xml")
    answer["PersonsokningSvarspost"][0]["SkyddadFolkbokforing"] = "JA"
    record = translate(answer, pnr("197605010128"))
    assert record is not None and record.protection is Protection.SKYDDAD_FOLKBOKFORING


def test_r_id_3_missing_protection_flags_are_never_taken_as_unprotected(client: Any) -> None:
    # zeep (strict) already refuses the answer; the adapter maps that to permanent.
    with pytest.raises(zeep.exceptions.XMLParseError) as caught:
        decode(client, "svar-utan-skyddsflaggor.xml")
    assert isinstance(translate_exception(caught.value), PermanentUpstreamError)
    # And the translation refuses it on its own, should a lenient parser let it through.
    answer = decode(client, "svar-tolvan.xml")
    answer["PersonsokningSvarspost"][0]["Sekretessmarkering"] = None
    with pytest.raises(PermanentUpstreamError, match="Sekretessmarkering"):
        translate(answer, pnr("191212121212"))


def test_r_id_5_deceased_is_flagged_with_its_dates(client: Any) -> None:
    record = lookup(client, "svar-avliden.xml", pnr("193804262628"))
    assert record is not None and record.deceased
    assert record.deregistration_date == date(2026, 9, 30)
    assert record.deceased_date == date(2026, 9, 28)


def test_r_id_5_emigrated_is_flagged(client: Any) -> None:
    record = lookup(client, "svar-utvandrad.xml", pnr("195511302134"))
    assert record is not None and record.emigrated and not record.deceased


def test_r_id_5_an_old_number_refers_to_the_current_one(client: Any) -> None:
    record = lookup(client, "svar-gammalt-nummer.xml", pnr("197306142642"))
    assert record is not None and record.changed_number
    assert record.deregistration is Deregistration.OLD_NUMBER_GN
    assert record.referred_to == PersonId(IdKind.PERSONNUMMER, "197306142659", PNR)


def test_samordningsnummer_typ_gives_a_samordningsnummer(client: Any) -> None:
    asked = PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", SAMO)
    record = lookup(client, "svar-samordningsnummer.xml", asked)
    assert record is not None and record.person == asked


def test_the_register_decides_the_kind_of_number(client: Any) -> None:
    record = lookup(client, "svar-samordningsnummer.xml", pnr("199002712934"))
    assert record is not None
    assert record.person == PersonId(IdKind.SAMORDNINGSNUMMER, "199002712934", SAMO)


def test_no_svarspost_means_not_in_the_register(client: Any) -> None:
    assert lookup(client, "svar-ingen-traff.xml", pnr("198512242242")) is None


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("svar-undantag-ogiltig-inparameter.xml", PermanentUpstreamError),
        ("svar-undantag-max-antal-traffar.xml", PermanentUpstreamError),
        ("svar-undantag-generellt-fel.xml", TransientUpstreamError),
    ],
)
def test_undantag_codes_become_the_gateways_errors(
    client: Any, name: str, error: type[UpstreamError]
) -> None:
    with pytest.raises(error, match="SPAR Undantag"):
        lookup(client, name, pnr("191212121212"))


def test_an_answer_for_another_number_is_refused(client: Any) -> None:
    with pytest.raises(PermanentUpstreamError, match="0 for the number asked"):
        lookup(client, "svar-tolvan.xml", pnr("197605010128"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"PersonId": {"IdNummer": "191212121212", "Typ": "RESERVNUMMER"}}, "Typ"),
        ({"Sekretessmarkering": "KANSKE"}, "JA or NEJ"),
        ({"Persondetaljer": {"AvregistreringsorsakKod": "XX"}}, "AvregistreringsorsakKod"),
        ({"Persondetaljer": {"Hanvisning": [{"IdNummer": "197306142643", "Typ": "Till"}]}}, "Hanvisning"),
        ({"Persondetaljer": {"Fodelsedatum": "1912-13-12"}}, "Fodelsedatum"),
    ],
)
def test_content_that_breaks_the_contract_is_permanent(
    client: Any, change: dict[str, Any], match: str
) -> None:
    answer = decode(client, "svar-tolvan.xml")
    answer["PersonsokningSvarspost"][0].update(change)
    with pytest.raises(PermanentUpstreamError, match=match):
        translate(answer, pnr("191212121212"))


@pytest.mark.parametrize(
    ("name", "error"),
    [("fault-client.xml", PermanentUpstreamError), ("fault-server.xml", TransientUpstreamError)],
)
def test_soap_faults_become_the_gateways_errors(client: Any, name: str, error: type[UpstreamError]) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        decode(client, name, status=500)
    assert isinstance(translate_exception(caught.value), error)


def test_a_cut_off_answer_is_transient(client: Any) -> None:
    with pytest.raises(zeep.exceptions.TransportError) as caught:
        decode(client, "garbage.xml")
    mapped = translate_exception(caught.value)
    assert isinstance(mapped, TransientUpstreamError)
    assert "SPARPersonsokningSvar" not in str(mapped)  # never the body: it may carry names


def test_the_gateways_contract_is_the_one_the_mock_serves() -> None:
    """The packaged WSDL/XSD (what the gateway trusts) and the mock's own copy must not drift."""
    packaged = sorted(p.name for p in PACKAGED_WSDL.parent.iterdir())
    assert packaged == sorted(p.name for p in WSDL_DIR.iterdir())
    for name in packaged:
        assert (PACKAGED_WSDL.parent / name).read_bytes() == (WSDL_DIR / name).read_bytes(), name
