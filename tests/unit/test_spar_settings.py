"""The SPAR adapter's settings and its public API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import gateway.spar_adapter as spar
from gateway.errors import ConfigurationError
from gateway.spar_adapter import PACKAGED_WSDL, SparRegister, SparSettings


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
