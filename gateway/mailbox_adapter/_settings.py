"""The mailbox adapter's own settings (``GATEWAY_MAILBOX_*``), built once in the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The contract version the adapter speaks: Mina meddelanden v3 (docs/mailbox.md).
CONTRACT_VERSION = "3"
#: The contracts kept with the code: startup never needs the network to read them.
WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
RECIPIENT_WSDL = WSDL_DIR / "Recipient.wsdl"
DELIVERY_WSDL = WSDL_DIR / "Service.wsdl"
#: The most recipients one isReachable call may carry.
MAX_BATCH = 1000


class MailboxSettings(BaseSettings):
    """Where the recipient service is, who the gateway is as a sender, how it signs and connects."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_MAILBOX_", extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="The recipient service (isReachable); none: the built-in mock.",
    )
    recipient_wsdl: str = Field(str(RECIPIENT_WSDL), description="WSDL file or URL of the recipient service.")
    delivery_wsdl: str = Field(str(DELIVERY_WSDL), description="WSDL file or URL of the delivery service.")
    sender_org_nr: str = Field(
        "2321000016",
        pattern=r"^(16)?\d{10}$",
        description="The sender's org number: 10 digits, or 12 as Mina meddelanden writes it (16 + 10).",
    )
    sender_name: str = Field("Region Stockholm", min_length=2, max_length=256)
    support_text: str = Field(
        "Frågor om brevet? Kontakta mottagningen som skickade det. Se 1177.se.",
        min_length=1,
        max_length=1024,
        description="Supportinfo Text: neutral, shown with every letter.",
    )
    support_url: str | None = Field("https://www.1177.se", pattern=r"^https?://", max_length=255)
    language: str = Field("svSE", min_length=2)
    sign_cert: Path | None = Field(None, description="Sender certificate (PEM); none: a throwaway one.")
    sign_key: Path | None = Field(None, description="Its private key (PEM); may be inside sign_cert.")
    sign_key_password: SecretStr | None = None
    client_cert: Path | None = Field(None, description="TLS client certificate (PEM), recipient service.")
    client_key: Path | None = Field(None, description="Its private key (PEM); may be inside client_cert.")
    client_key_password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="CA bundle for the recipient service's certificate.")
    operator_client_cert: Path | None = Field(
        None, description="TLS client certificate (PEM) to the operators; none: client_cert."
    )
    operator_client_key: Path | None = None
    operator_client_key_password: SecretStr | None = None
    operator_ca_file: Path | None = Field(None, description="CA bundle for the operators; none: ca_file.")
    timeout: float = Field(10.0, gt=0, description="Seconds for each HTTP request.")
    retry_attempts: int = Field(3, ge=1, description="Tries per call, transient failures only.")
    retry_backoff: float = Field(0.2, ge=0)
    retry_max_backoff: float = Field(2.0, ge=0)
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_time: float = Field(30.0, gt=0)
    batch_size: int = Field(MAX_BATCH, ge=1, le=MAX_BATCH, description="Recipients per isReachable call.")
    suppliers_file: Path | None = Field(
        None, description="The operator table (YAML); none: mappings/mailbox_suppliers.yaml."
    )
    service_addresses: dict[str, list[str]] = Field(
        default_factory=dict,
        description='More allowed ServiceAdress prefixes per supplier Id ("*": every supplier), JSON.',
    )

    @field_validator("sender_org_nr")
    @classmethod
    def _twelve(cls, value: str) -> str:
        return value if len(value) == 12 else f"16{value}"

    @model_validator(mode="after")
    def _files_fit(self) -> MailboxSettings:
        for prefix in ("sign", "client", "operator_client"):
            key, password = getattr(self, f"{prefix}_key"), getattr(self, f"{prefix}_key_password")
            if getattr(self, f"{prefix}_cert") is None and (key is not None or password is not None):
                raise ValueError(f"{prefix}_key and {prefix}_key_password need {prefix}_cert")
        for name in (
            "sign_cert",
            "sign_key",
            "client_cert",
            "client_key",
            "ca_file",
            "operator_client_cert",
            "operator_client_key",
            "operator_ca_file",
            "suppliers_file",
        ):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self
