"""SPAR answers (fixture files, tests/fixtures/spar/) -> RegisterRecord or the gateway's errors.

The fixtures go through zeep with the packaged contract, exactly as an answer off the wire does,
but without HTTP. The 2021.1 shapes (history lists, ``sattAvSPAR``, incomplete dates, legacy
codes, ``Hanvisning`` both ways) are tables over plain data at the end; the same shapes through
Skatteverket's own WSDL are in ``tests/integration/test_spar_contract.py``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zeep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zeep.helpers import serialize_object

from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import Address, Deregistration, Protection, RegisterRecord
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError
from gateway.spar_adapter import CONTRACT_VERSION, CONTRACTS, PACKAGED_WSDL, translate, translate_exception
from mocks.spar import CONTRACT_DIR
from tests.fakes import PNR, SAMO, pnr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spar"
CONTRACT = CONTRACTS[CONTRACT_VERSION]
TODAY = date(2026, 12, 7)


@pytest.fixture(scope="module")
def client() -> Any:
    return zeep.Client(str(PACKAGED_WSDL))  # type: ignore[no-untyped-call]


def decode(client: Any, name: str, status: int = 200) -> Any:
    """A fixture answer as zeep hands it to the adapter (plain dicts)."""
    binding = client.wsdl.bindings[CONTRACT.binding]
    response = SimpleNamespace(
        status_code=status,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        content=(FIXTURES / name).read_bytes(),
        encoding="utf-8",
    )
    return serialize_object(binding.process_reply(client, binding.get(CONTRACT.operation), response), dict)


def lookup(client: Any, name: str, asked: PersonId) -> RegisterRecord | None:
    return translate(decode(client, name), asked, TODAY)


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
    record = translate(answer, pnr("197605010128"), TODAY)
    assert record is not None and record.protection is Protection.SKYDDAD_FOLKBOKFORING


def test_r_id_3_missing_protection_flags_are_never_taken_as_unprotected(client: Any) -> None:
    # zeep lets a missing referenced element through; the translation refuses the answer.
    answer = decode(client, "svar-utan-skyddsflaggor.xml")
    with pytest.raises(PermanentUpstreamError, match="Sekretessmarkering must be JA or NEJ"):
        translate(answer, pnr("191212121212"), TODAY)


def test_an_answer_zeep_cannot_read_against_the_schema_is_permanent(client: Any, tmp_path: Path) -> None:
    text = (FIXTURES / "svar-tolvan.xml").read_text(encoding="utf-8")
    broken = text.replace("<person:Typ>PERSONNUMMER</person:Typ>", "<person:Okand>x</person:Okand>")
    (tmp_path / "broken.xml").write_text(broken, encoding="utf-8")
    with pytest.raises(zeep.exceptions.Error) as caught:
        decode(client, str(tmp_path / "broken.xml"))
    assert isinstance(translate_exception(caught.value), PermanentUpstreamError)


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
        ("svar-overstiger-max-antal-svarsposter.xml", PermanentUpstreamError),
        ("svar-undantag-generellt-fel.xml", TransientUpstreamError),
    ],
)
def test_undantag_codes_become_the_gateways_errors(
    client: Any, name: str, error: type[UpstreamError]
) -> None:
    with pytest.raises(error, match=r"SPAR (Undantag|OverstigerMaxAntalSvarsposter)"):
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
        translate(answer, pnr("191212121212"), TODAY)


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
    assert packaged == sorted(p.name for p in CONTRACT_DIR.iterdir())
    for name in packaged:
        assert (PACKAGED_WSDL.parent / name).read_bytes() == (CONTRACT_DIR / name).read_bytes(), name


# --- the 2021.1 shapes, as tables over plain data (what zeep's serialize_object hands over) -----

OLD, NEW, OTHER = "197306142642", "197306142659", "197605010128"
OPEN = date(9999, 12, 31)


def post(number: str = "191212121212", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "PersonId": {"IdNummer": number, "Typ": "PERSONNUMMER"},
        "Sekretessmarkering": {"_value_1": "NEJ", "sattAvSPAR": None},
        "SkyddadFolkbokforing": "NEJ",
    }
    return base | fields


def period(start: date | None, end: date | None, **fields: Any) -> dict[str, Any]:
    return {"DatumFrom": start, "DatumTill": end, **fields}


def record_of(svarspost: dict[str, Any], number: str = "191212121212") -> RegisterRecord:
    record = translate({"PersonsokningSvarspost": [svarspost]}, pnr(number), TODAY)
    assert record is not None
    return record


@pytest.mark.parametrize(
    ("names", "family"),
    [
        ([{"Efternamn": "Nu"}], "Nu"),
        (
            [
                period(date(2001, 1, 1), date(2019, 12, 31), Efternamn="Förr"),
                period(date(2020, 1, 1), OPEN, Efternamn="Nu"),
            ],
            "Nu",
        ),
        (
            [
                period(date(2020, 1, 1), OPEN, Efternamn="Nu"),
                period(date(2001, 1, 1), date(2019, 12, 31), Efternamn="Förr"),
            ],
            "Nu",
        ),
        (
            [period(date(2020, 1, 1), OPEN, Efternamn="Nu"), period(date(2027, 1, 1), OPEN, Efternamn="Sen")],
            "Nu",
        ),
        (
            [
                period(date(2020, 1, 1), TODAY, Efternamn="Nu"),
                period(date(2026, 12, 8), OPEN, Efternamn="Sen"),
            ],
            "Nu",
        ),
        (
            [
                period(date(2020, 1, 1), OPEN, Efternamn="Länge"),
                period(date(2026, 1, 1), OPEN, Efternamn="Nyast"),
            ],
            "Nyast",
        ),
        (
            [
                period(date(2001, 1, 1), date(2010, 12, 31), Efternamn="A"),
                period(date(2011, 1, 1), date(2019, 12, 31), Efternamn="B"),
            ],
            "B",
        ),
        ([period(date(2027, 1, 1), OPEN, Efternamn="Sen")], None),
        ([], None),
    ],
    ids=[
        "no-period",
        "in-force",
        "any-order",
        "future-ignored",
        "ends-today",
        "latest-start",
        "ended-last",
        "only-future",
        "none",
    ],
)
def test_the_name_in_force_today_is_picked_from_the_history(
    names: list[dict[str, Any]], family: str | None
) -> None:
    assert record_of(post(Namn=names)).family_name == family


def test_the_address_in_force_today_is_picked_from_the_history() -> None:
    old = {"SvenskAdress": period(date(2001, 1, 1), date(2019, 12, 31), Utdelningsadress1="Gamla vägen 1")}
    now = {"SvenskAdress": period(date(2020, 1, 1), OPEN, Utdelningsadress2="Nya gatan 2", PostNr="12345")}
    address = record_of(post(Folkbokforingsadress=[now, old])).address
    assert address == Address(None, None, "Nya gatan 2", "12345", None)


def test_r_id_5_the_current_persondetaljer_decide_deregistration() -> None:
    alive = period(date(1938, 4, 26), date(2026, 9, 27))
    died = period(date(2026, 9, 28), OPEN, AvregistreringsorsakKod="AV", Avlidendatum="2026-09-28")
    record = record_of(post(Persondetaljer=[alive, died]))
    assert record.deceased and record.deceased_date == date(2026, 9, 28)
    assert not record_of(post(Persondetaljer=[alive | {"DatumTill": OPEN}])).deceased


@pytest.mark.parametrize(
    ("top", "details", "protection"),
    [
        (("NEJ", None, "NEJ"), {}, Protection.NONE),
        (("JA", None, "NEJ"), {}, Protection.SEKRETESSMARKERING),
        (("JA", "JA", "JA"), {}, Protection.SKYDDAD_FOLKBOKFORING),
        (("NEJ", None, "JA"), {}, Protection.SKYDDAD_FOLKBOKFORING),
        (
            ("NEJ", None, "NEJ"),
            {"Sekretessmarkering": {"_value_1": "JA", "sattAvSPAR": None}},
            Protection.SEKRETESSMARKERING,
        ),
        (("NEJ", None, "NEJ"), {"SkyddadFolkbokforing": "JA"}, Protection.SKYDDAD_FOLKBOKFORING),
        (("JA", None, "NEJ"), {"Sekretessmarkering": "NEJ"}, Protection.SEKRETESSMARKERING),
    ],
    ids=[
        "none",
        "sekretess",
        "skyddad-satt-av-spar",
        "skyddad",
        "details-sekretess",
        "details-skyddad",
        "either-says-ja",
    ],
)
def test_r_id_3_protection_reads_sekretessmarkering_with_satt_av_spar_and_the_current_details(
    top: tuple[str, str | None, str], details: dict[str, Any], protection: Protection
) -> None:
    secret, set_by_spar, sheltered = top
    svarspost = post(
        Sekretessmarkering={"_value_1": secret, "sattAvSPAR": set_by_spar},
        SkyddadFolkbokforing=sheltered,
        Persondetaljer=[details],
    )
    assert record_of(svarspost).protection is protection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-05-17", date(2019, 5, 17)),
        ("2019-01-00", date(2019, 1, 1)),
        ("2019-00-00", date(2019, 1, 1)),
        ("2019-00-05", date(2019, 1, 1)),
        ("0000-00-00", None),
        ("20190517", date(2019, 5, 17)),
        ("201905", date(2019, 5, 1)),
        ("2019", date(2019, 1, 1)),
        ("201", None),
        ("0", None),
        ("", None),
    ],
)
def test_r_id_5_incomplete_dates_become_the_first_day_of_what_is_known(
    text: str, expected: date | None
) -> None:
    details = {"AvregistreringsorsakKod": "AV", "Avlidendatum": text, "Avregistreringsdatum": text}
    record = record_of(post(Persondetaljer=[details]))
    assert record.deceased  # the flag comes from the code, whatever the date says
    assert record.deceased_date == expected and record.deregistration_date == expected


@pytest.mark.parametrize("text", ["2019-13-01", "2019-02-30", "igår", "2019/05/17"])
def test_a_date_that_is_no_date_even_incomplete_is_refused(text: str) -> None:
    with pytest.raises(PermanentUpstreamError, match="Avlidendatum is not a date"):
        record_of(post(Persondetaljer=[{"AvregistreringsorsakKod": "AV", "Avlidendatum": text}]))


def test_a_deceased_date_may_come_as_antraffad_dod() -> None:
    details = {"AvregistreringsorsakKod": "AV", "AntraffadDodDatum": "2026-11-00"}
    assert record_of(post(Persondetaljer=[details])).deceased_date == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AV", Deregistration.DECEASED),
        ("UV", Deregistration.EMIGRATED),
        ("GN", Deregistration.OLD_NUMBER_GN),
        ("GS", Deregistration.OLD_NUMBER_GS),
        ("AS", Deregistration.ANNULLED_SAMORDNINGSNUMMER),
        ("OB", Deregistration.MISSING),
        ("TA", Deregistration.TECHNICAL),
        ("FI", Deregistration.FALSE_IDENTITY),
        ("A", Deregistration.DECEASED),
        ("G", Deregistration.OLD_NUMBER_GN),
        ("O", Deregistration.OTHER_REASON),
    ],
)
def test_r_id_5_removal_codes_two_letter_and_legacy_one_letter(code: str, reason: Deregistration) -> None:
    record = record_of(post(Persondetaljer=[{"AvregistreringsorsakKod": code}]))
    assert record.deregistration is reason
    assert record.deceased is (reason is Deregistration.DECEASED)
    assert record.changed_number is (code in ("GN", "GS", "G"))


@pytest.mark.parametrize("code", ["XY", "Q", "av1"])
def test_r_id_5_an_unknown_removal_code_is_refused_never_read_as_registered(code: str) -> None:
    with pytest.raises(PermanentUpstreamError, match="unknown AvregistreringsorsakKod"):
        record_of(post(Persondetaljer=[{"AvregistreringsorsakKod": code}]))


def ref(number: str, typ: str | None) -> dict[str, Any]:
    return {"IdNummer": number, "Typ": typ}


@pytest.mark.parametrize(
    ("asked", "code", "referrals", "to", "from_"),
    [
        (OLD, "GN", [[ref(NEW, "Till")]], NEW, ()),
        (NEW, None, [[ref(OLD, "Fran")]], None, (OLD,)),
        (OLD, "GN", [[ref(NEW, "Till"), ref(OTHER, "Fran")]], NEW, (OTHER,)),
        (OLD, "G", [[ref(NEW, None)]], NEW, ()),
        (NEW, None, [[ref(OLD, None)]], None, (OLD,)),
        (NEW, None, [[ref(OLD, "Fran")], [ref(OTHER, "Fran"), ref(OLD, "Fran")]], None, (OLD, OTHER)),
        (OLD, "GN", [[], [ref(NEW, "Till")]], NEW, ()),
    ],
    ids=["till", "fran", "both", "legacy-g-untyped", "untyped-is-old", "across-entries", "till-in-history"],
)
def test_r_id_5_hanvisning_links_both_ways(
    asked: str,
    code: str | None,
    referrals: list[list[dict[str, Any]]],
    to: str | None,
    from_: tuple[str, ...],
) -> None:
    entries = [{"Hanvisning": r} for r in referrals]
    entries[-1]["AvregistreringsorsakKod"] = code
    record = record_of(post(asked, Persondetaljer=entries), asked)
    assert record.referred_to == (pnr(to) if to else None)
    assert record.referred_from == tuple(pnr(n) for n in from_)


@pytest.mark.parametrize(
    ("referrals", "match"),
    [
        ([ref(NEW, "Till"), ref(OTHER, "Till")], "2 Hanvisning Till"),
        ([ref(OLD, "Till")], "itself"),
        ([ref("197306142643", "Fran")], "Hanvisning IdNummer"),
    ],
)
def test_r_id_5_a_hanvisning_that_cannot_be_followed_is_refused(
    referrals: list[dict[str, Any]], match: str
) -> None:
    with pytest.raises(PermanentUpstreamError, match=match):
        record_of(post(OLD, Persondetaljer=[{"AvregistreringsorsakKod": "GN", "Hanvisning": referrals}]), OLD)


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        (
            {"OverstigerMaxAntalSvarsposter": {"AntalPoster": 120, "MaxAntalSvarsposter": 100}},
            PermanentUpstreamError,
            "120 persons",
        ),
        ({"Undantag": {"Kod": "GENERELLT_FEL", "Beskrivning": "x"}}, TransientUpstreamError, "GENERELLT_FEL"),
        ({"Undantag": {"Kod": "1002", "Beskrivning": "Okänt fel"}}, PermanentUpstreamError, "1002"),
    ],
)
def test_undantag_and_too_many_hits_are_the_gateways_errors(
    answer: dict[str, Any], error: type[UpstreamError], match: str
) -> None:
    with pytest.raises(error, match=match):
        translate(answer, pnr("191212121212"), TODAY)


@pytest.mark.parametrize(
    ("typ", "kind"), [("PERSONNUMMER", IdKind.PERSONNUMMER), ("Samordningsnummer", IdKind.SAMORDNINGSNUMMER)]
)
def test_the_person_id_typ_is_read_without_regard_to_case(typ: str, kind: IdKind) -> None:
    svarspost = post("199002712934", PersonId={"IdNummer": "199002712934", "Typ": typ})
    record = translate({"PersonsokningSvarspost": [svarspost]}, pnr("199002712934"), TODAY)
    assert record is not None and record.person.kind is kind


def test_an_undantag_description_quoting_the_number_is_masked() -> None:
    answer = {"Undantag": {"Kod": "OGILTIG_INPARAMETER", "Beskrivning": "IdNummer 191212121213 är ogiltigt"}}
    with pytest.raises(PermanentUpstreamError) as caught:
        translate(answer, pnr("191212121212"), TODAY)
    assert "191212121213" not in str(caught.value) and "19121212-****" in str(caught.value)


# --- never a crash: anything zeep can hand over from an official-valid answer -----------------

_texts = st.one_of(
    st.none(), st.sampled_from(["JA", "NEJ", "Till", "Fran", "", "A", "GN", "XY"]), st.text(max_size=14)
)
_numbers = st.one_of(
    st.sampled_from([OLD, NEW, OTHER, "191212121212", "199002712934"]),
    st.from_regex(r"[1-9][0-9]{11}", fullmatch=True),
)
_dates = st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31)))
_partial = st.one_of(
    st.none(), st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{0,7}", fullmatch=True), st.text(max_size=10)
)
_flag = st.one_of(
    st.sampled_from(["JA", "NEJ"]),
    st.fixed_dictionaries(
        {"_value_1": st.sampled_from(["JA", "NEJ"]), "sattAvSPAR": st.sampled_from([None, "JA"])}
    ),
)
_period = {"DatumFrom": _dates, "DatumTill": _dates}
_referral = st.fixed_dictionaries({"IdNummer": _numbers, "Typ": st.sampled_from([None, "Till", "Fran"])})
_details = st.fixed_dictionaries(
    {},
    optional={
        **_period,
        "Sekretessmarkering": _flag,
        "SkyddadFolkbokforing": st.sampled_from(["JA", "NEJ"]),
        "AvregistreringsorsakKod": _texts,
        "Avregistreringsdatum": _partial,
        "Avlidendatum": _partial,
        "AntraffadDodDatum": _partial,
        "Fodelsedatum": _dates,
        "Hanvisning": st.lists(_referral, max_size=3),
    },
)
_name = st.fixed_dictionaries(
    {}, optional={**_period, "Fornamn": _texts, "Efternamn": _texts, "Tilltalsnamn": st.integers(10, 99)}
)
_address = st.fixed_dictionaries(
    {
        "SvenskAdress": st.fixed_dictionaries(
            {}, optional={**_period, "Utdelningsadress1": _texts, "PostNr": _texts}
        )
    }
)
_svarspost = st.fixed_dictionaries(
    {
        "PersonId": st.fixed_dictionaries(
            {
                "IdNummer": _numbers,
                "Typ": st.sampled_from(["PERSONNUMMER", "SAMORDNINGSNUMMER", "IMMUNITETSNUMMER"]),
            }
        ),
        "Sekretessmarkering": _flag,
        "SkyddadFolkbokforing": st.sampled_from(["JA", "NEJ"]),
    },
    optional={
        "Namn": st.lists(_name, max_size=3),
        "Persondetaljer": st.lists(_details, max_size=3),
        "Folkbokforingsadress": st.lists(_address, max_size=3),
    },
)
_answers = st.one_of(
    st.fixed_dictionaries({"PersonsokningSvarspost": st.lists(_svarspost, max_size=2)}),
    st.fixed_dictionaries(
        {
            "Undantag": st.fixed_dictionaries(
                {"Kod": st.text(max_size=20), "Beskrivning": st.text(max_size=20)}
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "OverstigerMaxAntalSvarsposter": st.fixed_dictionaries(
                {"AntalPoster": st.integers(), "MaxAntalSvarsposter": st.integers()}
            )
        }
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=_answers, asked=_numbers, today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))
)
def test_every_answer_shape_is_understood_or_refused_with_a_gateway_error(
    answer: dict[str, Any], asked: str, today: date
) -> None:
    try:
        result = translate(answer, pnr(asked), today)
    except UpstreamError:
        return
    assert result is None or isinstance(result, RegisterRecord)
