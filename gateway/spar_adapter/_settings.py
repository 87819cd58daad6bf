"""The SPAR adapter's own settings (``GATEWAY_SPAR_*``), built once in the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The contract kept with the code: startup never needs the network to read the WSDL.
PACKAGED_WSDL = Path(__file__).resolve().parent / "wsdl" / "PersonsokService.wsdl"


class SparSettings(BaseSettings):
    """Where SPAR PersonSök is, how long to wait for it, and who the gateway is to it."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_SPAR_", extra="forbid", frozen=True)

    url: str = Field(
        "http://127.0.0.1:8090/spar/personsok",
        pattern=r"^https?://",
        description="The PersonSök endpoint (overrides the WSDL's soap:address).",
    )
    wsdl: str = Field(
        str(PACKAGED_WSDL),
        description="The WSDL: a file path (default: the packaged copy) or a URL such as '<url>?wsdl'.",
    )
    timeout: float = Field(5.0, gt=0, description="Seconds for each HTTP request (connect, read, write).")
    retry_attempts: int = Field(3, ge=1, description="Tries per lookup, transient failures only.")
    retry_backoff: float = Field(0.2, ge=0, description="First wait between tries; doubles, plus jitter.")
    retry_max_backoff: float = Field(2.0, ge=0, description="Longest wait between tries.")
    breaker_failure_threshold: int = Field(5, ge=1, description="Failed lookups in a row that open it.")
    breaker_reset_time: float = Field(30.0, gt=0, description="Seconds open before a trial call.")
    cache_ttl: float = Field(300.0, ge=0, description="Seconds an answer is reused (0 = no cache).")
    cache_size: int = Field(10_000, ge=0, description="Most answers kept (0 = no cache).")
    client_cert: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    client_key: Path | None = Field(None, description="Its private key (PEM); may be inside client_cert.")
    client_key_password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="CA bundle that signs SPAR's server certificate.")
    kund_nr_leverans_mottagare: str = Field("500243", min_length=1)
    kund_nr_slutkund: str = Field("500243", min_length=1)
    uppdrag_id: str = Field("637", min_length=1)
    slut_anvandar_id: str = Field("integration-gateway", min_length=1)

    @model_validator(mode="after")
    def _tls_files_fit(self) -> SparSettings:
        if (self.client_key is not None or self.client_key_password is not None) and self.client_cert is None:
            raise ValueError("client_key and client_key_password need client_cert")
        for name in ("client_cert", "client_key", "ca_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self
