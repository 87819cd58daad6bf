"""The SPAR adapter's own settings (``GATEWAY_SPAR_*``), built once in the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.spar_adapter._contract import CONTRACT_VERSION, CONTRACTS, PACKAGED_WSDL


class SparSettings(BaseSettings):
    """Where SPAR PersonSök is, how long to wait for it, and who the gateway is to it."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_SPAR_", extra="forbid", frozen=True)

    url: str = Field(
        "http://127.0.0.1:8090/spar/personsok",
        pattern=r"^https?://",
        description="The PersonSök endpoint (overrides the WSDL's soap:address).",
    )
    contract: str = Field(
        CONTRACT_VERSION, description=f"The PersonSök contract version spoken: {', '.join(CONTRACTS)}."
    )
    wsdl: str = Field(
        str(PACKAGED_WSDL),
        description="The WSDL: a file path (default: the packaged copy of the contract version), "
        "Skatteverket's own (schema locations local), or a URL such as '<url>?wsdl'.",
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
    # Identifieringsinformation, from the SPAR agreement; ranges as the contract's KundNrTYPE,
    # UppdragIdTYPE and SlutAnvandarIdTYPE, so a wrong number fails at startup, not per lookup.
    kund_nr_leverans_mottagare: int = Field(
        500243, ge=500001, le=599999, description="SPAR customer number of the client certificate's owner."
    )
    kund_nr_slutkund: int = Field(
        500243, ge=500001, le=599999, description="SPAR customer number of the customer allowed to ask."
    )
    uppdrag_id: int = Field(637, ge=1, description="SPAR's id of the assignment (uppdrag).")
    slut_anvandar_id: str = Field(
        "integration-gateway", min_length=1, max_length=256, description="The end user SPAR logs."
    )

    @model_validator(mode="before")
    @classmethod
    def _wsdl_of_the_contract(cls, data: Any) -> Any:
        """Another contract version without a WSDL of its own: that version's packaged copy."""
        if isinstance(data, dict) and data.get("contract") in CONTRACTS and not data.get("wsdl"):
            return {**data, "wsdl": str(CONTRACTS[data["contract"]].wsdl)}
        return data

    @model_validator(mode="after")
    def _tls_files_fit(self) -> SparSettings:
        if self.contract not in CONTRACTS:
            raise ValueError(f"contract: unknown version {self.contract!r}; known: {', '.join(CONTRACTS)}")
        if (self.client_key is not None or self.client_key_password is not None) and self.client_cert is None:
            raise ValueError("client_key and client_key_password need client_cert")
        for name in ("client_cert", "client_key", "ca_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self
