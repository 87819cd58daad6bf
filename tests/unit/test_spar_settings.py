"""The SPAR adapter's settings and its public API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import gateway.spar_adapter as spar
from gateway.errors import ConfigurationError
from gateway.spar_adapter import CONTRACT_VERSION, CONTRACTS, PACKAGED_WSDL, SparRegister, SparSettings


def test_public_api_is_exactly_all() -> None:
    public = {name for name in vars(spar) if not name.startswith("_")}
    assert public == set(spar.__all__)


def test_settings_come_from_gateway_spar_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    monkeypatch.setenv("GATEWAY_SPAR_URL", "https://spar.example/personsok")
    monkeypatch.setenv("GATEWAY_SPAR_RETRY_ATTEMPTS", "5")
    monkeypatch.setenv("GATEWAY_SPAR_CLIENT_CERT", str(cert))
    monkeypatch.setenv("GATEWAY_SPAR_CLIENT_KEY_PASSWORD", "hemligt")
    settings = SparSettings()
    assert settings.url == "https://spar.example/personsok"
    assert settings.retry_attempts == 5
    assert settings.client_cert == cert
    assert "hemligt" not in repr(settings)
    assert settings.wsdl == str(PACKAGED_WSDL)


@pytest.mark.parametrize(
    "values",
    [
        {"url": "ftp://spar"},
        {"timeout": 0},
        {"retry_attempts": 0},
        {"client_cert": "/no/such/file.pem"},
        {"client_key_password": "x"},
        {"unknown": 1},
    ],
)
def test_wrong_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SparSettings.model_validate(values)


def test_startup_reads_the_packaged_contract_offline() -> None:
    register = SparRegister(SparSettings(url="http://127.0.0.1:9/none"))
    assert register.settings.wsdl == str(PACKAGED_WSDL)


def test_an_unreadable_wsdl_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wsdl"
    broken.write_text("<definitions")
    with pytest.raises(ConfigurationError, match="WSDL"):
        SparRegister(SparSettings(wsdl=str(broken)))


def test_the_contract_version_is_one_setting_and_picks_its_packaged_wsdl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert SparSettings().contract == CONTRACT_VERSION == "2021.1"
    monkeypatch.setenv("GATEWAY_SPAR_CONTRACT", "2021.1")
    assert SparSettings().wsdl == str(CONTRACTS["2021.1"].wsdl)
    with pytest.raises(ValidationError, match="unknown version"):
        SparSettings(contract="2023.1")


@pytest.mark.parametrize(
    "values",
    [
        {"kund_nr_leverans_mottagare": 500000},
        {"kund_nr_slutkund": 600000},
        {"kund_nr_slutkund": "ABC"},
        {"uppdrag_id": 0},
        {"slut_anvandar_id": ""},
        {"slut_anvandar_id": "x" * 257},
    ],
)
def test_identification_outside_the_contracts_ranges_is_refused_at_startup(values: dict[str, object]) -> None:
    # KundNrTYPE 500001-599999, UppdragIdTYPE >= 1, SlutAnvandarIdTYPE 1-256 characters.
    with pytest.raises(ValidationError):
        SparSettings.model_validate(values)


def test_identification_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SPAR_KUND_NR_LEVERANS_MOTTAGARE", "512345")
    monkeypatch.setenv("GATEWAY_SPAR_KUND_NR_SLUTKUND", "523456")
    monkeypatch.setenv("GATEWAY_SPAR_UPPDRAG_ID", "42")
    settings = SparSettings()
    assert (settings.kund_nr_leverans_mottagare, settings.kund_nr_slutkund, settings.uppdrag_id) == (
        512345,
        523456,
        42,
    )


def test_a_wsdl_of_another_contract_is_a_configuration_error(tmp_path: Path) -> None:
    """The pre-2021 imitation: its binding is not PersonsokServiceSOAP."""
    old = tmp_path / "old.wsdl"
    old.write_text(
        CONTRACTS[CONTRACT_VERSION]
        .wsdl.read_text(encoding="utf-8")
        .replace('name="PersonsokServiceSOAP" type', 'name="PersonsokBinding" type')
        .replace('binding="tns:PersonsokServiceSOAP"', 'binding="tns:PersonsokBinding"'),
        encoding="utf-8",
    )
    # The schemas sit beside the packaged WSDL: point at them.
    old.write_text(
        old.read_text(encoding="utf-8").replace(
            'schemaLocation="', f'schemaLocation="{CONTRACTS[CONTRACT_VERSION].wsdl.parent}/'
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=r"PersonSök 2021\.1"):
        SparRegister(SparSettings(wsdl=str(old)))
